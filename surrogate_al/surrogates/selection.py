"""A surrogate that picks its model by cross-validation on the runs so far.

No one model class is best for every simulator: the exact GP is the better
model on smooth analytic functions, the deep ensemble on rougher physics
solvers (docs/decisions.md). A scientist cannot know in advance which kind
their simulator is, so :class:`AutoSurrogate` (registry kind ``"auto"``)
measures it: on each reselection it fits every candidate kind ``folds``
times, each time without one fold of the runs, scores the held-out
predictions by NRMSE (RMSE / standard deviation of the outputs, averaged over
outputs) and keeps the best kind. It then fits that kind on all runs and
serves every prediction from it, so the acquisition and the BoTorch adapter
see an ordinary GP or ensemble.

On a few dozen runs the held-out error is itself noisy, and on an adaptive
design it is dominated by a handful of points, so a rule that compares mean
errors switches kinds on the strength of two or three points. A kind later in
``candidates`` therefore replaces an earlier one only if it is clearly
better, in the spirit of the one-standard-error rule of model selection
(Hastie, Tibshirani & Friedman, *Elements of Statistical Learning*, 7.10)
but with a test that a few points cannot sway: its cross-validated NRMSE is lower
*and* it predicts more of the held-out points better than a fair coin
would, by more than ``se_margin`` standard errors (the sign test: ``wins -
n/2 > se_margin * sqrt(n)/2`` over the ``n`` held-out points, paired, since
every kind gets the same folds). The GP, listed first by default, is kept
until the data show the ensemble is better on most of the box. The default
margin is half a standard error: on an adaptive design the held-out points
sit where the function is hardest, both models err there, and a full
standard error keeps the GP where the ensemble is the better model
(docs/decisions.md).

Cross-validation costs ``folds`` fits per candidate, so it is not repeated
at every refit: the choice is revisited when the number of training points
has grown by ``reselect_growth`` (1.5 by default) since the last choice,
about ten times over a campaign of 8 to 320 runs. Between reselections only
the chosen model is refitted, as it would be on its own. :meth:`choose_again`
makes the next fit choose afresh whatever the growth: a campaign calls it
before its final fit, so the model it delivers was chosen on all its runs,
not on the fraction of them it had at the last reselection.

A campaign that proposes while runs are in flight (asynchronous mode) cannot
afford to stop for the choice: cross-validating a GP and an ensemble takes
seconds to tens of seconds, and with runs shorter than that the workers
wait. :meth:`choose_in_background` hands the cross-validation to an executor
(the campaign's: one separate process,
:class:`~surrogate_al.campaign.background.BackgroundChoiceExecutor`): a due
choice is submitted there, the model in use is refitted on all points as
usual, and the first fit after the scores come back adopts their choice. The
choice is then made on the runs of the fit that submitted it, a round or two
behind, and until the first one is back the GP (the first candidate)
serves; the final fit's choice (:meth:`choose_again`) is always made in
place, on all runs. :class:`KindChoosing` is the protocol the campaign checks
for these capabilities.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from linear_operator.utils.errors import NotPSDError
from torch import Tensor

from surrogate_al.errors import ConfigError, DataError, SurrogateALError
from surrogate_al.surrogates.base import (
    Prediction,
    as_tensor,
    check_bounds,
    check_training_data,
    epistemic_cross_covariance,
    require_fitted,
    resolve_device,
)

__all__ = ["AutoSurrogate", "KindChoosing", "score_candidates"]

logger = logging.getLogger(__name__)

#: Options the selector hands to every candidate itself.
_SHARED_OPTIONS = ("seed", "device", "dtype", "bounds")

#: Failures of a candidate's fit that make it unusable on these data but must not stop
#: the campaign: the surrogates' own data errors, numerical breakdowns, GPU memory.
#: Anything else (a device or dtype mix-up, a bug) is raised.
_FIT_FAILURES = (SurrogateALError, torch.linalg.LinAlgError, NotPSDError, torch.cuda.OutOfMemoryError)

#: What a cross-validation returns: per kind, the NRMSE, the held-out points' squared
#: errors (``n_held_out``, None when not scored) and why a score is ``inf``.
_Scores = tuple[dict[str, float], dict[str, Tensor | None], dict[str, str]]


@dataclass
class _PendingChoice:
    """A cross-validation running in the background, and the data it scores."""

    future: Future[_Scores]
    n: int  # training points it was submitted with
    shape: tuple[int, int]  # (d, m) of those points


@runtime_checkable
class KindChoosing(Protocol):
    """A surrogate that chooses its model kind from the data, as :class:`AutoSurrogate` does.

    The campaign checks for it with ``isinstance``: it makes the final fit
    choose afresh on all runs and, in the asynchronous loop, hands the choice
    to a background process.

    Attributes:
        selected_at_n_: training points the kind in use was chosen on (0
            while a kind serves unscored).
    """

    selected_at_n_: int

    def choose_again(self) -> KindChoosing:
        """Make the next fit choose the kind afresh, however few runs came since; returns ``self``."""
        ...

    def choose_in_background(self, executor: Executor | None) -> KindChoosing:
        """Cross-validate on ``executor`` from now on (None: inside ``fit`` again); returns ``self``."""
        ...


def score_candidates(settings: dict[str, Any], X: Tensor, Y: Tensor, Yvar: Tensor | None) -> _Scores:
    """Cross-validate every candidate of an :class:`AutoSurrogate` built from ``settings``.

    A module-level function, so an executor in another process can run it:
    ``settings`` are the selector's constructor arguments (plain data,
    :meth:`AutoSurrogate.settings`), and the result is the same as the
    selector's own cross-validation on these points.

    Args:
        settings: :meth:`AutoSurrogate.settings` of the selector.
        X: ``n x d`` inputs.
        Y: ``n x m`` outputs.
        Yvar: optional ``n x m`` known noise variances.

    Returns:
        Per candidate kind: the cross-validated NRMSE, the ``n`` held-out
        squared errors (on the CPU; None for a kind not scored) and why a
        score is ``inf``.
    """
    selector = AutoSurrogate(**settings)
    dev = resolve_device(selector.device)
    X, Y = X.to(dev, selector.dtype), Y.to(dev, selector.dtype)
    Yvar = None if Yvar is None else Yvar.to(dev, selector.dtype)
    scores, losses, reasons = selector._score(X, Y, Yvar)
    return scores, {k: None if v is None else v.cpu() for k, v in losses.items()}, reasons


class AutoSurrogate:
    """Chooses among surrogate kinds by K-fold cross-validation (see module docstring).

    Args:
        candidates: registry kinds to choose from, in order of preference
            (``"gp"``, ``"ensemble"``, ``"mc_dropout"``); at least one. A
            later kind is chosen over an earlier one only if it is clearly
            better (``se_margin``).
        folds: K of the K-fold cross-validation (>= 2; with fewer training
            points than folds, leave-one-out).
        reselect_growth: revisit the choice once the training set has grown
            by this factor since the last choice (>= 1; 1 reselects at every
            fit).
        se_margin: by how many standard errors of a fair coin's count a later
            candidate must predict more held-out points better than an
            earlier one to be chosen over it (the sign test; >= 0; 0 chooses
            the lowest cross-validated NRMSE; 0.5 by default).
        candidate_options: per kind, constructor options of that candidate
            (e.g. ``{"ensemble": {"num_members": 5}}``); ``seed``, ``device``,
            ``dtype`` and ``bounds`` are this model's and passed on.
        seed: seed of every candidate and of the fold assignment.
        device: torch device of every candidate (``"auto"``: CUDA when available).
        dtype: floating type of every candidate.
        bounds: ``2 x d`` input box; None to take the training data's box.

    Attributes:
        selected_: the kind in use (None before the first fit).
        cv_scores_: cross-validated NRMSE per candidate kind at the last
            choice (``inf`` for a kind whose fits failed).
        selected_at_n_: training points at the last choice (0 while a kind serves
            unscored, waiting for a background choice).
        choice_due_: whether the next fit chooses afresh (:meth:`choose_again`).

    Raises:
        ConfigError: an argument is out of range or a candidate's options are
            not accepted by its kind (the message names them).

    Example:
        >>> model = AutoSurrogate(bounds=bounds).fit(X, Y)
        >>> model.selected_, model.cv_scores_
        ('ensemble', {'gp': 0.21, 'ensemble': 0.12})
    """

    def __init__(
        self,
        candidates: Sequence[str] = ("gp", "ensemble"),
        folds: int = 5,
        reselect_growth: float = 1.5,
        se_margin: float = 0.5,
        candidate_options: Mapping[str, Mapping[str, Any]] | None = None,
        seed: int = 0,
        device: str | torch.device = "auto",
        dtype: torch.dtype = torch.float64,
        bounds: Any | None = None,
    ) -> None:
        # Imported here: the registry module imports this one.
        from surrogate_al.surrogates import SURROGATES

        if isinstance(candidates, str) or not isinstance(candidates, Sequence) or not candidates:
            raise ConfigError(
                f"AutoSurrogate: candidates = {candidates!r}; expected a non-empty list of surrogate kinds, "
                "e.g. ['gp', 'ensemble']"
            )
        kinds = [str(k) for k in candidates]
        for kind in kinds:
            if kind not in SURROGATES or kind == "auto":
                choices = sorted(k for k in SURROGATES if k != "auto")
                raise ConfigError(f"AutoSurrogate: candidate {kind!r} is not a surrogate kind; choose from {choices}")
        if len(set(kinds)) != len(kinds):
            raise ConfigError(f"AutoSurrogate: candidates = {kinds!r} name a kind twice; list each kind once")
        if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
            raise ConfigError(f"AutoSurrogate: folds = {folds!r}; expected an integer >= 2 (5 is typical)")
        if (isinstance(reselect_growth, bool) or not isinstance(reselect_growth, (int, float))
                or not math.isfinite(reselect_growth) or reselect_growth < 1.0):
            raise ConfigError(
                f"AutoSurrogate: reselect_growth = {reselect_growth!r}; expected a number >= 1 "
                "(1 cross-validates at every fit, 1.5 whenever the data grew by half)"
            )
        if (isinstance(se_margin, bool) or not isinstance(se_margin, (int, float))
                or not math.isfinite(se_margin) or se_margin < 0):
            raise ConfigError(
                f"AutoSurrogate: se_margin = {se_margin!r}; expected a number >= 0 (standard errors of the sign "
                "test; 0.5 by default, 0 chooses the lowest cross-validated error)"
            )
        if candidate_options is not None and not isinstance(candidate_options, Mapping):
            raise ConfigError(
                f"AutoSurrogate: candidate_options = {candidate_options!r}; expected a table from kind to its "
                "options, e.g. {'ensemble': {'num_members': 5}}"
            )
        options = dict(candidate_options or {})
        for kind, opts in options.items():
            if kind not in kinds:
                raise ConfigError(
                    f"AutoSurrogate: candidate_options has an entry for {kind!r}, which is not among "
                    f"candidates = {kinds!r}; add it to candidates or remove the entry"
                )
            if not isinstance(opts, Mapping):
                raise ConfigError(f"AutoSurrogate: candidate_options[{kind!r}] = {opts!r}; expected a table of options")
            shared = sorted(set(opts) & set(_SHARED_OPTIONS))
            if shared:
                raise ConfigError(
                    f"AutoSurrogate: candidate_options[{kind!r}] sets {shared}; these are the AutoSurrogate's own "
                    "and passed to every candidate: remove them there"
                )
        # seed, device and dtype are checked by every candidate's constructor below.
        self.candidates = tuple(kinds)
        self.folds = folds
        self.reselect_growth = float(reselect_growth)
        self.se_margin = float(se_margin)
        self.candidate_options = {k: dict(v) for k, v in options.items()}
        self.seed = seed
        self.device = device
        self.dtype = dtype
        self._bounds = None if bounds is None else check_bounds(bounds, "AutoSurrogate")
        # One model per kind; the chosen one is refitted on every fit (a GP then starts
        # from its previous hyperparameters). Building them here checks every
        # candidate's options now, not at the first choice.
        self._models = {kind: self._new_model(kind, self._bounds) for kind in self.candidates}

        self.selected_: str | None = None
        self.cv_scores_: dict[str, float] = {}
        self.selected_at_n_: int = 0
        self.choice_due_: bool = False
        self.fitted_shape_: tuple[int, int] | None = None  # (d, m) of the last fit
        self._executor: Executor | None = None
        self._pending: _PendingChoice | None = None

    def settings(self) -> dict[str, Any]:
        """The constructor arguments, as plain data (what :func:`score_candidates` rebuilds this selector from)."""
        return {
            "candidates": list(self.candidates),
            "folds": self.folds,
            "reselect_growth": self.reselect_growth,
            "se_margin": self.se_margin,
            "candidate_options": {k: dict(v) for k, v in self.candidate_options.items()},
            "seed": self.seed,
            "device": str(self.device),
            "dtype": self.dtype,
            "bounds": None if self._bounds is None else self._bounds.cpu(),
        }

    def choose_in_background(self, executor: Executor | None) -> AutoSurrogate:
        """Cross-validate on ``executor`` from now on, instead of inside :meth:`fit` (None: inside again).

        A due choice is then submitted to the executor and :meth:`fit` refits
        the kind in use; a later fit adopts the choice once its scores are
        back. With no kind in use yet (the first fit, or the data's shape
        changed) the first candidate that can be fitted serves meanwhile,
        unscored (``selected_at_n_`` 0). A choice asked for by
        :meth:`choose_again` is still made inside :meth:`fit`. If the
        executor fails (say its process died), the choice is made inside
        :meth:`fit` and the executor is not used again.

        Args:
            executor: runs :func:`score_candidates`, or None. A process
                (:class:`~surrogate_al.campaign.background.BackgroundChoiceExecutor`)
                keeps the cross-validation off the caller's core and its Python lock.

        Returns:
            ``self``.
        """
        if executor is None:
            self._drop_pending()
        self._executor = executor
        return self

    # -- configuration ---------------------------------------------------------------------
    @property
    def bounds(self) -> Tensor | None:
        """``2 x d`` input box shared by every candidate (None: from the training data)."""
        return self._bounds

    @bounds.setter
    def bounds(self, value: Any | None) -> None:
        self._bounds = None if value is None else check_bounds(value, "AutoSurrogate")
        for model in self._models.values():
            model.bounds = self._bounds

    def _new_model(self, kind: str, bounds: Tensor | None) -> Any:
        from surrogate_al.surrogates import make_surrogate

        options = dict(self.candidate_options.get(kind, {}))
        options.update(seed=self.seed, device=self.device, dtype=self.dtype, bounds=bounds)
        try:
            return make_surrogate(kind, **options)
        except ConfigError as exc:
            raise ConfigError(f"AutoSurrogate: candidate {kind!r}: {exc}") from exc

    # -- fitting ------------------------------------------------------------------------
    def fit(self, X: Tensor, Y: Tensor, Yvar: Tensor | None = None) -> AutoSurrogate:
        """Choose a kind by cross-validation when due, then fit it on all points.

        If the chosen kind cannot be fitted on all points (say a GP past its
        ``max_exact_points``), the next best scored kind is fitted instead,
        and the choice is made again at the next fit.

        Args:
            X: ``n x d`` inputs.
            Y: ``n x m`` outputs (or ``n``).
            Yvar: optional ``n x m`` known noise variances.

        Returns:
            ``self``, fitted.

        Raises:
            ShapeError, DataError: bad training data; DataError also when no
                candidate can be fitted (the message gives each one's reason).
        """
        dev = resolve_device(self.device)
        X = as_tensor(X, self.dtype, dev, "X").detach()
        Y = as_tensor(Y, self.dtype, dev, "Y").detach()
        Yvar = None if Yvar is None else as_tensor(Yvar, self.dtype, dev, "Yvar").detach()
        X, Y, Yvar = check_training_data(X, Y, Yvar, None if self._bounds is None else self._bounds.shape[1])
        n = X.shape[0]
        shape_changed = self.fitted_shape_ != (X.shape[1], Y.shape[1])
        due = (self.choice_due_ or self.selected_ is None or shape_changed
               or n >= self.reselect_growth * self.selected_at_n_)
        executor = self._executor  # read once: the campaign may detach it from another thread
        if due and executor is not None and not self.choice_due_ and len(self.candidates) > 1:
            serve_first = self.selected_ is None or shape_changed
            due = not self._choose_in_background(executor, X, Y, Yvar, serve_first=serve_first)
        elif not due:
            due = not self._refit_in_use(X, Y, Yvar)
        if due:
            self._choose_and_fit(X, Y, Yvar)
        self.fitted_shape_ = (X.shape[1], Y.shape[1])
        return self

    def choose_again(self) -> AutoSurrogate:
        """Make the next :meth:`fit` choose the kind afresh by cross-validation, however few runs came since.

        Survives :meth:`state_dict` (so a remote or resumed fit honours it);
        cleared once a choice is made.

        Returns:
            ``self``.
        """
        self.choice_due_ = True
        return self

    def _drop_pending(self) -> None:
        if self._pending is not None:
            self._pending.future.cancel()
            self._pending = None

    def _choose_in_background(
        self, executor: Executor, X: Tensor, Y: Tensor, Yvar: Tensor | None, *, serve_first: bool
    ) -> bool:
        """Fit with the choice on ``executor`` (see :meth:`choose_in_background`).

        Args:
            serve_first: no kind in use fits these data (the first fit, or the
                data's shape changed): serve the first candidate that can be
                fitted until the scores are back.

        Returns:
            Whether the model is fitted; False when the choice must be made in
            place (the executor failed, or the kind in use cannot be refitted).
        """
        n, shape = X.shape[0], (X.shape[1], Y.shape[1])
        pending = self._pending
        if pending is not None and pending.future.done():
            self._pending = None
            try:
                scores, losses, reasons = pending.future.result()
            except Exception as exc:  # a dead process, an unpicklable option: choose here from now on
                logger.warning("AutoSurrogate: the background cross-validation failed (%s: %s); "
                               "choosing in place from now on", type(exc).__name__, exc)
                self._executor = None
                return False
            # At most one reselection step late: a choice on runs that have since grown by the
            # factor twice over (a choice on the first 3 runs arriving at 36) is scored again on
            # the current runs instead. With runs much shorter than a cross-validation no choice
            # is in time, and the kind in use, the GP from the start, goes on serving.
            stale = self.reselect_growth > 1 and n >= self.reselect_growth**2 * pending.n
            if pending.shape == shape and not stale:
                self._fit_best(X, Y, Yvar, scores, losses, reasons, chosen_on=pending.n)
                return True
            logger.debug("AutoSurrogate: not adopting the choice scored on %d points (now %d)", pending.n, n)
            pending = None
        if pending is None:
            data = (X.cpu(), Y.cpu(), None if Yvar is None else Yvar.cpu())
            try:
                future = executor.submit(score_candidates, self.settings(), *data)
            except Exception as exc:  # a shut-down or broken executor
                logger.warning("AutoSurrogate: cannot cross-validate in the background (%s: %s); "
                               "choosing in place from now on", type(exc).__name__, exc)
                self._executor = None
                return False
            self._pending = _PendingChoice(future, n, shape)
            logger.debug("AutoSurrogate: choosing in the background on %d points", n)
        if serve_first:
            # Unscored, in the order of preference; chosen on 0 points, so every fit looks for the scores.
            self._fit_best(X, Y, Yvar, {kind: math.nan for kind in self.candidates}, {}, {}, chosen_on=0)
            return True
        return self._refit_in_use(X, Y, Yvar)

    def _refit_in_use(self, X: Tensor, Y: Tensor, Yvar: Tensor | None) -> bool:
        """Refit the kind in use on all points; False (logged) if it cannot be, so a choice is made."""
        assert self.selected_ is not None
        try:
            self._models[self.selected_].fit(X, Y, Yvar)
        except _FIT_FAILURES as exc:
            logger.warning("AutoSurrogate: %s could not be refitted on %d points (%s); choosing again",
                           self.selected_, X.shape[0], exc)
            return False
        return True

    def _score(self, X: Tensor, Y: Tensor, Yvar: Tensor | None) -> _Scores:
        """Cross-validate every candidate (unscored, NaN, when there is nothing to compare)."""
        reasons: dict[str, str] = {}
        losses: dict[str, Tensor | None] = {}
        if len(self.candidates) == 1 or X.shape[0] < 3:
            # Nothing to compare, or too few points to hold one out and still fit on two:
            # the candidates in the order given, unscored.
            return {kind: math.nan for kind in self.candidates}, losses, reasons
        scores = {}
        for kind in self.candidates:
            scores[kind], losses[kind], reasons[kind] = self._cross_validate(kind, X, Y, Yvar)
        return scores, losses, reasons

    def _choose_and_fit(self, X: Tensor, Y: Tensor, Yvar: Tensor | None) -> None:
        """Score the candidates, then fit the best one that can be fitted on all points."""
        self._drop_pending()  # this choice is on more runs than the one in the background
        scores, losses, reasons = self._score(X, Y, Yvar)
        self._fit_best(X, Y, Yvar, scores, losses, reasons, chosen_on=X.shape[0])

    def _fit_best(
        self, X: Tensor, Y: Tensor, Yvar: Tensor | None, scores: Mapping[str, float],
        losses: Mapping[str, Tensor | None], reasons: dict[str, str], *, chosen_on: int,
    ) -> None:
        """Fit the best scored kind that can be fitted on all points; ``chosen_on``: points it was scored on."""
        n = X.shape[0]
        losses = {k: None if v is None else v.to(X.device) for k, v in losses.items()}
        ranked = self._rank(scores, losses)
        for kind in ranked:
            # A kind not in use since an earlier choice starts afresh: its old fit is stale,
            # and a remote or resumed fit would start it afresh too.
            model = self._models[kind] if kind == self.selected_ else self._new_model(kind, self._bounds)
            try:
                model.fit(X, Y, Yvar)
            except _FIT_FAILURES as exc:
                logger.warning("AutoSurrogate: %s could not be fitted on all %d points: %s", kind, n, exc)
                reasons[kind] = f"{reasons[kind]}; on all points: {exc}" if reasons.get(kind) else str(exc)
                continue
            if self.selected_ is not None and kind != self.selected_:
                logger.info("AutoSurrogate: switching from %s to %s at n = %d", self.selected_, kind, n)
            if chosen_on == 0:
                logger.info("AutoSurrogate: %s serves on %d points until the background choice is back", kind, n)
            else:
                logger.info(
                    "AutoSurrogate: %s chosen at n = %d%s (cross-validated NRMSE %s)",
                    kind, chosen_on, "" if chosen_on == n else f", fitted on {n}",
                    ", ".join(f"{k} {s:.4g}" for k, s in scores.items()),
                )
            self._models[kind] = model
            self.selected_, self.cv_scores_, self.selected_at_n_ = kind, dict(scores), chosen_on
            self.choice_due_ = False
            return
        detail = "; ".join(f"{k}: {r}" for k, r in reasons.items())
        raise DataError(f"AutoSurrogate: no candidate could be fitted on {n} points ({detail})")

    def _rank(self, scores: Mapping[str, float], losses: Mapping[str, Tensor | None]) -> list[str]:
        """The candidates in the order to try them: the choice first, then the rest by score.

        The choice is the first candidate, in the order of preference, that no
        other candidate is clearly better than (see the module docstring).
        """
        # sorted() is stable: equal scores keep the candidates' order of preference;
        # unscored (NaN) kinds come last.
        ranked = sorted(self.candidates, key=lambda k: (math.isnan(scores[k]), scores[k]))
        if self.se_margin == 0 or not math.isfinite(scores[ranked[0]]):
            return ranked
        # Nothing is clearly better than the lowest score, so some candidate always qualifies.
        chosen = next(
            kind for kind in self.candidates
            if math.isfinite(scores[kind])
            and not any(self._clearly_better(other, kind, scores, losses) for other in self.candidates if other != kind)
        )
        if chosen != ranked[0]:
            logger.info(
                "AutoSurrogate: keeping %s: %s's lower held-out error (%.4g against %.4g) is not "
                "better on enough of the held-out points (se_margin = %g)", chosen, ranked[0],
                scores[ranked[0]], scores[chosen], self.se_margin,
            )
        return [chosen] + [k for k in ranked if k != chosen]

    def _clearly_better(
        self, challenger: str, incumbent: str, scores: Mapping[str, float], losses: Mapping[str, Tensor | None]
    ) -> bool:
        """Whether ``challenger`` scores lower and wins the sign test against ``incumbent`` by ``se_margin``."""
        if not scores[challenger] < scores[incumbent]:
            return False
        a, b = losses.get(incumbent), losses.get(challenger)
        if a is None or b is None:
            return True  # nothing to pair (the incumbent failed): the score decides
        # Ties (both exact) count half to each side, as in the sign test's usual handling.
        wins = float((b < a).sum()) + 0.5 * float((b == a).sum())
        return wins - len(a) / 2 > self.se_margin * math.sqrt(len(a)) / 2

    def _cross_validate(
        self, kind: str, X: Tensor, Y: Tensor, Yvar: Tensor | None
    ) -> tuple[float, Tensor | None, str]:
        """Score ``kind`` by ``folds``-fold cross-validation.

        Every kind gets the same folds at the same ``n`` (the split is seeded by
        ``seed`` and ``n``), so the per-point errors of two kinds pair up.

        Returns:
            The NRMSE of the held-out predictions (``inf`` if a fit failed);
            the held-out points' squared errors in units of each output's
            standard deviation, averaged over outputs (``n_held_out``, None on
            failure); and why the score is ``inf``, if it is.
        """
        n = X.shape[0]
        k = min(self.folds, n)
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + n)
        folds = torch.tensor_split(torch.randperm(n, generator=generator).to(X.device), k)
        # Every fold's model scales inputs to the same box: the data's when no bounds are set.
        bounds = self._bounds
        if bounds is None:
            lower, upper = X.min(0).values.cpu(), X.max(0).values.cpu()
            bounds = torch.stack([lower, torch.where(upper > lower, upper, lower + 1.0)])  # a constant column: unit span
        scale = Y.std(0)
        scale = torch.where(scale > 1e-12, scale, torch.ones_like(scale))
        squared_errors: list[Tensor] = []  # each fold's (n_fold x m) squared errors
        for fold in folds:
            train = torch.ones(n, dtype=torch.bool, device=X.device)
            train[fold] = False
            if int(train.sum()) < 2:
                continue
            try:
                model = self._new_model(kind, bounds).fit(X[train], Y[train], None if Yvar is None else Yvar[train])
                with torch.no_grad():
                    mean = model.predict(X[fold]).mean.to(Y)
            except _FIT_FAILURES as exc:
                # A candidate that cannot be fitted here is not chosen; the campaign goes on.
                logger.warning("AutoSurrogate: %s failed in cross-validation at n = %d: %s", kind, n, exc)
                return math.inf, None, str(exc)
            squared_errors.append((mean - Y[fold]) ** 2)
        if not squared_errors:
            return math.inf, None, "too few points to hold any out"
        squared_error = torch.cat(squared_errors)
        score = float((squared_error.mean(0).sqrt() / scale).mean())
        return score, (squared_error / scale**2).mean(1), ""

    # -- prediction (served by the chosen model) ---------------------------------------------
    @property
    def selected_model(self) -> Any:
        """The fitted model of the chosen kind."""
        require_fitted(self, "selected_")
        assert self.selected_ is not None
        return self._models[self.selected_]

    @property
    def sampled_covariance(self) -> bool:
        """Whether the chosen model's epistemic covariance is an empirical one over networks (False before a fit)."""
        if self.selected_ is None:
            return False
        return bool(getattr(self._models[self.selected_], "sampled_covariance", False))

    @property
    def model_(self) -> Any:
        """The chosen model's BoTorch model (GP) or None, so the adapter can delegate to it."""
        return getattr(self._models[self.selected_], "model_", None) if self.selected_ is not None else None

    def predict(self, X: Tensor) -> Prediction:
        """Predictive moments of the chosen model at ``n x d`` inputs (``n x m`` each); differentiable in ``X``."""
        return self.selected_model.predict(X)

    def joint_epistemic_covariance(self, X: Tensor) -> Tensor:
        """``m x n x n`` epistemic covariance of the chosen model (standardised units)."""
        return self.selected_model.joint_epistemic_covariance(X)

    def epistemic_cross_covariance(self, Z: Tensor, X: Tensor) -> tuple[Tensor, Tensor]:
        """The chosen model's ``m x z x b`` cross-covariances and ``m x b`` variances (standardised units)."""
        return epistemic_cross_covariance(self.selected_model, Z, X)

    @property
    def num_outputs(self) -> int:
        """Number of outputs ``m`` (after fit)."""
        return self.selected_model.num_outputs

    # -- state ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The choice, its scores and the chosen model's state, as plain data.

        Returns:
            ``{"kind": "auto", "selected", "selected_at_n", "choice_due",
            "cv_scores", "fitted_shape", "model"}``.
        """
        model = self.selected_model
        return {
            "kind": "auto",
            "selected": self.selected_,
            "selected_at_n": self.selected_at_n_,
            "choice_due": self.choice_due_,
            "cv_scores": dict(self.cv_scores_),
            "fitted_shape": list(self.fitted_shape_ or ()),
            "model": model.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> AutoSurrogate:
        """Restore the choice and the chosen model from :meth:`state_dict`.

        Raises:
            ConfigError: the state is not an AutoSurrogate's, or its chosen
                kind is not among this model's candidates.
        """
        missing = {"selected", "selected_at_n", "model"} - set(state)
        if state.get("kind") != "auto" or missing:
            raise ConfigError(
                f"AutoSurrogate.load_state_dict: state is not an AutoSurrogate state (kind = {state.get('kind')!r}, "
                f"missing keys {sorted(missing)}); pass the dict produced by AutoSurrogate.state_dict()"
            )
        kind = state["selected"]
        if kind not in self._models:
            raise ConfigError(
                f"AutoSurrogate.load_state_dict: the saved model is a {kind!r}, not among candidates = "
                f"{list(self.candidates)}; construct the AutoSurrogate with {kind!r} among its candidates"
            )
        self._models[kind].load_state_dict(state["model"])
        self._drop_pending()  # scored on data the restored model may not have seen
        self.selected_ = kind
        self.selected_at_n_ = int(state["selected_at_n"])
        self.choice_due_ = bool(state.get("choice_due", False))  # optional: older stored states lack it
        self.cv_scores_ = {str(k): float(v) for k, v in dict(state.get("cv_scores", {})).items()}
        shape = tuple(int(v) for v in state.get("fitted_shape", ()))
        # Without a recorded shape the next fit simply chooses again.
        self.fitted_shape_ = (shape[0], shape[1]) if len(shape) == 2 else None
        return self
