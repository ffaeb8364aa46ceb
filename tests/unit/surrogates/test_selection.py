"""AutoSurrogate: the choice by cross-validation, its cadence, failures and errors (real fits)."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import pytest
import torch
from auto_helpers import BOUNDS, DT, SMALL_ENSEMBLE
from auto_helpers import quick_auto as _auto
from auto_helpers import smooth_data as _data

from surrogate_al.errors import ConfigError, DataError
from surrogate_al.surrogates import (
    AutoSurrogate,
    DeepEnsemble,
    GaussianProcess,
    make_surrogate,
)


def test_picks_the_candidate_that_predicts_held_out_points_better() -> None:
    X, Y = _data(24)
    # A GP whose fixed noise is ten times the output variance shrinks to the mean: poor held-out error.
    smothered = _auto(candidate_options={"ensemble": SMALL_ENSEMBLE, "gp": {"noise": 10.0}}).fit(X, Y)
    assert smothered.selected_ == "ensemble"
    assert smothered.cv_scores_["gp"] > 2 * smothered.cv_scores_["ensemble"]
    # An ensemble trained for one epoch barely moves from its initialisation: the ordinary GP wins,
    # though the ensemble is listed first.
    untrained = _auto(candidates=["ensemble", "gp"], candidate_options={"ensemble": SMALL_ENSEMBLE | {"max_epochs": 1}}).fit(X, Y)
    assert untrained.selected_ == "gp"
    assert isinstance(untrained.selected_model, GaussianProcess)
    # Predictions are the chosen model's, so the BoTorch adapter can delegate to the GP.
    assert untrained.model_ is untrained.selected_model.model_
    torch.testing.assert_close(untrained.predict(X[:4]).mean, untrained.selected_model.predict(X[:4]).mean)
    assert untrained.cv_scores_["gp"] < 0.2


_GP_HELD_OUT = torch.tensor([0.2, 1.8] * 8, dtype=DT)  # per-point squared errors of 16 points, mean 1.0
# 1.5 lower on 4 of the GP's large errors, 0.05 higher on the other 12 points: mean 0.66.
_FEW_BIG_WINS = torch.tensor([0.25, 0.3] * 4 + [0.25, 1.85] * 4, dtype=DT)


@pytest.mark.parametrize(
    ("ensemble_held_out", "se_margin", "chosen"),
    [
        # Lower on average (0.66) thanks to 4 points, worse on the other 12 of 16: not clearly better
        # (the sign test's z = -2), though the lowest score (margin 0).
        (_FEW_BIG_WINS, 1.0, "gp"),
        (_FEW_BIG_WINS, 0.0, "ensemble"),
        # Better on 11 of 16 (z = 1.5) and lower on average: clearly better at a margin of 1, not of 2.
        (_GP_HELD_OUT - torch.tensor([0.1] * 11 + [-0.05] * 5, dtype=DT), 1.0, "ensemble"),
        (_GP_HELD_OUT - torch.tensor([0.1] * 11 + [-0.05] * 5, dtype=DT), 2.0, "gp"),
        # Better on 10 of 16 (z = 1): clearly better at the default margin of 0.5 (None: the
        # constructor's default), not at the margin of 1 that was the default until 2026-12.
        (_GP_HELD_OUT - torch.tensor([0.1] * 10 + [-0.05] * 6, dtype=DT), None, "ensemble"),
        (_GP_HELD_OUT - torch.tensor([0.1] * 10 + [-0.05] * 6, dtype=DT), 1.0, "gp"),
        # Better on every point: any margin up to sqrt(16) = 4 is passed.
        (_GP_HELD_OUT - 0.05, 3.9, "ensemble"),
        # Higher on average, even if better on most points: never chosen over the GP.
        (_GP_HELD_OUT - torch.tensor([0.01] * 15 + [-1.0], dtype=DT), 0.0, "gp"),
    ],
)
def test_a_later_candidate_is_chosen_only_when_clearly_better(
    monkeypatch: pytest.MonkeyPatch, ensemble_held_out: torch.Tensor, se_margin: float | None, chosen: str
) -> None:
    """The one-standard-error rule on given held-out errors.

    The cross-validation is replaced by fixed per-point errors (so that the
    rule, not the noise of two real fits, is what is tested); the fit on all
    points is real.
    """
    held_out = {"gp": _GP_HELD_OUT, "ensemble": ensemble_held_out}

    def fixed(self: AutoSurrogate, kind: str, X: object, Y: object, Yvar: object) -> tuple[float, torch.Tensor, str]:
        return math.sqrt(float(held_out[kind].mean())), held_out[kind], ""

    monkeypatch.setattr(AutoSurrogate, "_cross_validate", fixed)
    X, Y = _data(24)
    model = (_auto() if se_margin is None else _auto(se_margin=se_margin)).fit(X, Y)
    assert model.selected_ == chosen
    assert isinstance(model.selected_model, GaussianProcess if chosen == "gp" else DeepEnsemble)


def test_held_out_errors_are_per_point_and_reproducible() -> None:
    """Each kind's per-point errors line up point for point, and their mean is the score squared."""
    X, Y = _data(24)
    model = _auto()
    scores, losses = {}, {}
    for kind in ("gp", "ensemble"):
        scores[kind], losses[kind], reason = model._cross_validate(kind, X, Y, None)
        assert reason == "" and losses[kind].shape == (24,)
        torch.testing.assert_close(float(losses[kind].mean()), scores[kind] ** 2)
    # The same points are held out in the same order: a kind scored twice gives the same errors.
    _, again, _ = model._cross_validate("gp", X, Y, None)
    torch.testing.assert_close(again, losses["gp"])


def test_choice_is_revisited_only_when_the_data_grew_by_the_factor() -> None:
    X, Y = _data(40)
    model = _auto(reselect_growth=1.5).fit(X[:20], Y[:20])
    assert model.selected_at_n_ == 20
    before = model.predict(X[30:34]).mean.detach()
    model.fit(X[:29], Y[:29])
    assert model.selected_at_n_ == 20  # 29 < 1.5 x 20: no new choice ...
    assert not torch.equal(model.predict(X[30:34]).mean.detach(), before)  # ... but the chosen model was refitted
    model.fit(X[:30], Y[:30])
    assert model.selected_at_n_ == 30
    # A new output column forces a new choice whatever the growth.
    model.fit(X[:31], torch.cat([Y[:31], X[:31, :1]], dim=1))
    assert model.selected_at_n_ == 31 and model.num_outputs == 2


def test_a_candidate_that_cannot_be_fitted_is_not_chosen(caplog: pytest.LogCaptureFixture) -> None:
    X, Y = _data(24)
    model = _auto(candidate_options={"ensemble": SMALL_ENSEMBLE, "gp": {"max_exact_points": 10}})
    with caplog.at_level(logging.WARNING, logger="surrogate_al.surrogates.selection"):
        model.fit(X, Y)
    assert model.selected_ == "ensemble" and isinstance(model.selected_model, DeepEnsemble)
    assert model.cv_scores_["gp"] == float("inf")
    assert "gp failed in cross-validation at n = 24" in caplog.text


class _NeverFits(GaussianProcess):
    """A GP whose every fit fails as a numerically hopeless one would."""

    def fit(self, X: torch.Tensor, Y: torch.Tensor, Yvar: torch.Tensor | None = None) -> _NeverFits:
        raise DataError("Cholesky failed for every jitter tried")


def test_every_candidate_failing_is_a_clear_data_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from surrogate_al import surrogates

    monkeypatch.setitem(surrogates.SURROGATES, "never_fits", _NeverFits)
    X, Y = _data(24)
    model = _auto(candidates=["gp", "never_fits"], candidate_options={"gp": {"max_exact_points": 10}})
    with pytest.raises(DataError, match=r"no candidate could be fitted on 24 points.*gp: .*10.*never_fits: Cholesky failed"):
        model.fit(X, Y)
    assert model.selected_ is None


def test_state_round_trip_keeps_the_choice_and_its_cadence() -> None:
    X, Y = _data(20)
    model = _auto().fit(X, Y)
    state = model.state_dict()
    assert state["kind"] == "auto" and state["selected"] == model.selected_ and state["fitted_shape"] == [2, 1]
    fresh = _auto().load_state_dict(state)
    assert (fresh.selected_, fresh.selected_at_n_, fresh.cv_scores_) == (model.selected_, 20, model.cv_scores_)
    torch.testing.assert_close(fresh.predict(X[:5]).mean, model.predict(X[:5]).mean, rtol=0.0, atol=0.0)
    X2, Y2 = _data(40, seed=1)
    fresh.fit(X2[:25], Y2[:25])
    assert fresh.selected_at_n_ == 20  # the cadence carries over: 25 < 1.5 x 20
    with pytest.raises(ConfigError, match=r"not among candidates = \['gp'\]"):
        make_surrogate("auto", candidates=["gp"], bounds=BOUNDS, device="cpu").load_state_dict(state | {"selected": "ensemble"})
    with pytest.raises(ConfigError, match="not an AutoSurrogate state"):
        _auto().load_state_dict(model.selected_model.state_dict())


def test_bounds_set_later_reach_every_candidate() -> None:
    model = make_surrogate("auto", device="cpu", candidate_options={"ensemble": SMALL_ENSEMBLE})
    assert model.bounds is None
    model.bounds = BOUNDS
    assert all(torch.equal(m.bounds, BOUNDS) for m in model._models.values())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"candidates": []}, r"candidates = \[\]; expected a non-empty list"),
        ({"candidates": "gp"}, r"candidates = 'gp'; expected a non-empty list"),
        ({"candidates": ["gp", "forest"]}, r"candidate 'forest' is not a surrogate kind; choose from \['ensemble', 'gp', 'mc_dropout'\]"),
        ({"candidates": ["gp", "auto"]}, r"candidate 'auto' is not a surrogate kind"),
        ({"candidates": ["gp", "gp"]}, r"name a kind twice"),
        ({"folds": 1}, r"folds = 1; expected an integer >= 2"),
        ({"reselect_growth": 0.5}, r"reselect_growth = 0.5; expected a number >= 1"),
        ({"se_margin": -1}, r"se_margin = -1; expected a number >= 0"),
        ({"se_margin": float("nan")}, r"se_margin = nan; expected a number >= 0"),
        ({"candidate_options": {"mc_dropout": {}}}, r"entry for 'mc_dropout', which is not among candidates"),
        ({"candidate_options": {"gp": {"seed": 3}}}, r"candidate_options\['gp'\] sets \['seed'\]"),
        ({"candidate_options": {"ensemble": {"num_member": 3}}}, r"candidate 'ensemble': .*has no option\(s\) \['num_member'\]"),
        ({"candidate_options": {"ensemble": {"max_epochs": 0}}}, r"candidate 'ensemble': DeepEnsemble: max_epochs"),
    ],
)
def test_bad_configuration_names_the_field(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_surrogate("auto", **options)


def test_too_few_points_to_cross_validate_take_the_first_candidate() -> None:
    X, Y = _data(2)
    model = _auto(candidates=["ensemble", "gp"]).fit(X, Y)
    assert model.selected_ == "ensemble" and all(math.isnan(s) for s in model.cv_scores_.values())  # unscored


def test_data_box_is_used_for_the_folds_when_no_bounds_are_given() -> None:
    X, Y = _data(12)
    X = X * 10.0 + 5.0  # far outside the unit cube
    X[:, 1] = 7.0  # a constant column must not divide by zero
    model = make_surrogate("auto", device="cpu", folds=3, candidate_options={"ensemble": SMALL_ENSEMBLE}).fit(X, Y)
    assert all(torch.isfinite(torch.tensor(s)) for s in model.cv_scores_.values())


def test_a_chosen_kind_that_cannot_take_all_points_gives_way_to_the_next(caplog: pytest.LogCaptureFixture) -> None:
    X, Y = _data(24)
    # The GP wins the folds (16 points each, within its limit of 20) but cannot take all 24.
    model = _auto(candidate_options={"gp": {"max_exact_points": 20}, "ensemble": SMALL_ENSEMBLE | {"max_epochs": 1}})
    with caplog.at_level(logging.WARNING, logger="surrogate_al.surrogates.selection"):
        model.fit(X, Y)
    assert model.cv_scores_["gp"] < model.cv_scores_["ensemble"]
    assert model.selected_ == "ensemble" and isinstance(model.selected_model, DeepEnsemble)
    assert "gp could not be fitted on all 24 points" in caplog.text


def test_choice_survives_the_remote_fit_round_trip() -> None:
    from surrogate_al.state_bytes import state_from_bytes
    from surrogate_al.dispatch import fit_surrogate_on_worker

    X, Y = _data(40)
    options = {"folds": 3, "candidate_options": {"ensemble": SMALL_ENSEMBLE}, "bounds": BOUNDS, "device": "cpu"}
    first = fit_surrogate_on_worker("auto", options, X[:20], Y[:20], None, None)
    second = state_from_bytes(fit_surrogate_on_worker("auto", options, X[:25], Y[:25], None, first))
    assert second["selected"] == state_from_bytes(first)["selected"] and second["selected_at_n"] == 20
    third = state_from_bytes(fit_surrogate_on_worker("auto", options, X[:30], Y[:30], None, first))
    assert third["selected_at_n"] == 30


def test_choose_again_makes_the_next_fit_choose_whatever_the_growth() -> None:
    X, Y = _data(40)
    model = _auto(reselect_growth=1.5).fit(X[:20], Y[:20])
    assert model.choose_again() is model and model.choice_due_
    model.fit(X[:22], Y[:22])
    assert model.selected_at_n_ == 22 and not model.choice_due_  # 22 < 1.5 x 20, chosen all the same
    model.fit(X[:24], Y[:24])
    assert model.selected_at_n_ == 22  # once: the cadence is back


def test_choose_again_survives_the_state_and_the_remote_fit() -> None:
    from surrogate_al.state_bytes import state_from_bytes, state_to_bytes
    from surrogate_al.dispatch import fit_surrogate_on_worker

    X, Y = _data(40)
    model = _auto().fit(X[:20], Y[:20]).choose_again()
    state = model.state_dict()
    assert state["choice_due"] is True and _auto().load_state_dict(state).choice_due_
    options = {"folds": 3, "candidate_options": {"ensemble": SMALL_ENSEMBLE}, "bounds": BOUNDS, "device": "cpu"}
    after = state_from_bytes(fit_surrogate_on_worker("auto", options, X[:21], Y[:21], None, state_to_bytes(state)))
    assert after["selected_at_n"] == 21 and after["choice_due"] is False
    # A state saved before the flag existed loads as "not due".
    old = {k: v for k, v in state.items() if k != "choice_due"}
    assert _auto().load_state_dict(old).choice_due_ is False


class _HeldExecutor(Executor):
    """Runs what is submitted only when released: the test decides when the background work is done."""

    def __init__(self) -> None:
        self.held: list[tuple[Future[object], Callable[..., object], tuple[object, ...]]] = []

    def submit(self, fn: Callable[..., object], /, *args: object, **kwargs: object) -> Future[object]:
        future: Future[object] = Future()
        self.held.append((future, fn, args))
        return future

    def release(self) -> None:
        for future, fn, args in self.held:
            if future.set_running_or_notify_cancel():
                future.set_result(fn(*args))
        self.held.clear()


def test_a_background_choice_is_adopted_by_a_later_fit_and_is_the_choice_in_place() -> None:
    X, Y = _data(40)
    model = _auto(reselect_growth=1.5).fit(X[:12], Y[:12])  # the first choice is made in place
    executor = _HeldExecutor()
    assert model.choose_in_background(executor) is model
    model.fit(X[:18], Y[:18])  # due (18 >= 1.5 x 12): submitted, and the kind in use refitted on all 18
    assert len(executor.held) == 1 and model.selected_at_n_ == 12
    before = model.predict(X[30:34]).mean.detach()
    model.fit(X[:20], Y[:20])  # still scoring: not submitted twice, the kind in use refitted again
    assert executor.held and len(executor.held) == 1 and model.selected_at_n_ == 12
    assert not torch.equal(model.predict(X[30:34]).mean.detach(), before)
    executor.release()
    model.fit(X[:21], Y[:21])
    # Adopted: chosen on the 18 runs it was submitted with, fitted on all 21.
    in_place = _auto().fit(X[:18], Y[:18])
    assert model.selected_at_n_ == 18 and model.selected_ == in_place.selected_
    assert model.cv_scores_ == pytest.approx(in_place.cv_scores_, rel=1e-9)
    assert model.selected_ == "gp" and model.selected_model.train_X_.shape[0] == 21  # the GP, on these data
    model.fit(X[:22], Y[:22])
    assert not executor.held  # the cadence restarts from 18: not due before 27


def test_the_first_candidate_serves_until_the_first_background_choice_is_back() -> None:
    X, Y = _data(40)
    executor = _HeldExecutor()
    model = _auto().choose_in_background(executor).fit(X[:12], Y[:12])
    # Nothing in use yet: the GP serves at once, unscored, and the choice goes to the background.
    assert model.selected_ == "gp" and model.selected_at_n_ == 0 and math.isnan(model.cv_scores_["gp"])
    assert len(executor.held) == 1 and model.selected_model.train_X_.shape[0] == 12
    model.fit(X[:13], Y[:13])  # every fit looks for the scores; none yet, so the GP is refitted
    assert model.selected_at_n_ == 0 and len(executor.held) == 1 and model.selected_model.train_X_.shape[0] == 13
    executor.release()
    model.fit(X[:14], Y[:14])
    assert model.selected_at_n_ == 12 and model.cv_scores_ == pytest.approx(_auto().fit(X[:12], Y[:12]).cv_scores_)
    # A new output: nothing in use fits it, so the first candidate serves again while the choice is scored.
    model.fit(X[:15], torch.cat([Y[:15], X[:15, :1]], dim=1))
    assert model.selected_at_n_ == 0 and model.num_outputs == 2 and len(executor.held) == 1


def test_a_background_choice_outgrown_by_the_runs_is_scored_again_not_adopted() -> None:
    X, Y = _data(48)
    executor = _HeldExecutor()
    model = _auto(reselect_growth=1.5).fit(X[:12], Y[:12]).choose_in_background(executor)
    model.fit(X[:18], Y[:18])
    first = executor.held[0][0]
    executor.release()
    assert first.done()
    # Back only at 41 runs (over 1.5 x 1.5 x 18): two reselection steps late, so these runs are scored.
    model.fit(X[:41], Y[:41])
    assert model.selected_at_n_ == 12 and len(executor.held) == 1
    assert executor.held[0][2][1].shape[0] == 41  # the runs handed to score_candidates
    executor.release()
    model.fit(X[:42], Y[:42])
    assert model.selected_at_n_ == 41


def test_the_final_choice_is_made_in_place() -> None:
    X, Y = _data(40)
    executor = _HeldExecutor()
    model = _auto().fit(X[:12], Y[:12]).choose_in_background(executor)
    model.fit(X[:18], Y[:18])
    assert len(executor.held) == 1
    model.choose_again().fit(X[:19], Y[:19])
    assert model.selected_at_n_ == 19 and executor.held[0][0].cancelled()  # the older background choice is dropped
    executor.release()
    model.fit(X[:20], Y[:20])
    assert model.selected_at_n_ == 19 and not executor.held  # not due again before 1.5 x 19


def test_a_broken_executor_falls_back_to_choosing_in_place(caplog: pytest.LogCaptureFixture) -> None:
    X, Y = _data(40)
    executor = ThreadPoolExecutor(max_workers=1)
    executor.shutdown()
    model = _auto().fit(X[:12], Y[:12]).choose_in_background(executor)
    with caplog.at_level(logging.WARNING, logger="surrogate_al.surrogates.selection"):
        model.fit(X[:18], Y[:18])
    assert model.selected_at_n_ == 18  # chosen here, not left undone
    assert "cannot cross-validate in the background" in caplog.text

    failing = _HeldExecutor()
    model = _auto().fit(X[:12], Y[:12]).choose_in_background(failing)
    model.fit(X[:18], Y[:18])
    failing.held[0][0].set_exception(BrokenProcessPool("the process died"))
    failing.held.clear()
    with caplog.at_level(logging.WARNING, logger="surrogate_al.surrogates.selection"):
        model.fit(X[:19], Y[:19])
    assert model.selected_at_n_ == 19 and "the background cross-validation failed (BrokenProcessPool" in caplog.text
    model.fit(X[:29], Y[:29])
    assert model.selected_at_n_ == 29 and not failing.held  # in place from now on
