"""Campaign.ask / tell driven by hand (no Dask): bookkeeping, retries, budget, breaker, metrics."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from surrogate_al.campaign import Campaign
from surrogate_al.config import load_workflow
from surrogate_al.errors import CampaignError
from surrogate_al.simulation import SimulationResult
from surrogate_al.store import CampaignStore


def make(tmp_path: Path, *, function: str = "campaign_helpers:branin", budget: int = 12, policy: str = "sobol",
         extra_campaign: str = "", extra_simulator: str = "", extra: str = "") -> Campaign:
    text = textwrap.dedent(f"""
        [campaign]
        name = "t"
        budget = {budget}
        concurrency = 2
        initial_design = {{ size = 4 }}
        store = "t.h5"
        {extra_campaign}

        [simulator]
        kind = "python"
        function = "{function}"
        outputs = ["y"]
        {extra_simulator}

        [simulator.inputs]
        x1 = {{ low = -5.0, high = 10.0 }}
        x2 = {{ low = 0.0, high = 15.0 }}

        [acquisition]
        policy = "{policy}"
        raw_samples = 128
        restarts = 2
        {extra}
        """)
    path = tmp_path / "t.toml"
    path.write_text(text)
    return Campaign.create(load_workflow(path))


def drive(campaign: Campaign, max_rounds: int = 200) -> None:
    """The asynchronous loop without Dask: ask for free slots, run in-process, tell."""
    for _ in range(max_rounds):
        if campaign.done():
            return
        trials = campaign.ask(2)
        assert trials, "ask gave nothing while the budget is not reached"
        for trial in trials:
            campaign.tell(trial, campaign.simulator(trial.inputs, run_id=f"p{trial.proposal_id}a{trial.attempt}"))
    raise AssertionError("the campaign did not finish")


def test_every_trial_is_a_durable_proposal_and_the_budget_is_exact(tmp_path: Path) -> None:
    c = make(tmp_path)
    trials = c.ask(3)
    with CampaignStore.open(tmp_path / "t.h5") as other_reader:
        recorded = {p.proposal_id for p in other_reader.proposals()}
    assert {t.proposal_id for t in trials} <= recorded
    for t in trials:
        c.tell(t, c.simulator(t.inputs))
    drive(c)
    c.close()
    with CampaignStore.open(tmp_path / "t.h5") as st:
        final = st.final_runs()
        assert len(final) == 12 and len({r.proposal_id for r in final}) == 12
        assert all(r.status == "ok" for r in final)
        assert [p.source for p in st.proposals()][:4] == ["initial"] * 4


def test_ask_never_exceeds_the_budget(tmp_path: Path) -> None:
    c = make(tmp_path, budget=5)
    trials = c.ask(10)
    assert len(trials) == 5
    assert c.ask(1) == []
    c.close()


@pytest.mark.parametrize(("retries", "status", "attempts"), [(2, "ok", 3), (1, "failed", 2)])
def test_retries_follow_the_policy(tmp_path: Path, retries: int, status: str, attempts: int) -> None:
    counters = tmp_path / "counters"
    counters.mkdir()
    c = make(
        tmp_path,
        function="campaign_helpers:flaky",
        budget=4,
        extra_simulator=f'retries = {retries}\nfixed_inputs = {{ counter_dir = "{counters}", failures = 2 }}',
    )
    drive(c)
    c.close()
    with CampaignStore.open(tmp_path / "t.h5") as st:
        final = st.final_runs()
        assert len(final) == 4
        assert {r.status for r in final} == {status}
        assert {r.attempt for r in final} == {attempts}
        if status == "failed":
            assert all("transient failure 2" in r.reason for r in final)
        assert len(st.runs()) == 4 * attempts  # every attempt is recorded


def test_failure_rate_breaker_stops_and_says_why(tmp_path: Path) -> None:
    c = make(
        tmp_path,
        function="campaign_helpers:always_fails",
        budget=30,
        extra_campaign="min_runs_for_breaker = 5\nmax_failure_fraction = 0.5",
        extra_simulator="retries = 0",
    )
    with pytest.raises(CampaignError, match="5 of 5 runs failed"):
        drive(c)
    c.close()
    with CampaignStore.open(tmp_path / "t.h5") as st:
        assert any(kind == "breaker" for _, kind, _ in st.events())
        assert all(r.reason.startswith("ValueError") or "solver diverged" in r.reason for r in st.final_runs())


def test_failures_outside_the_budget_when_count_failed_is_off(tmp_path: Path) -> None:
    c = make(
        tmp_path,
        function="campaign_helpers:fails_in_corner",
        budget=16,
        extra_campaign="count_failed = false\nmax_failure_fraction = 1.0",
        extra_simulator="retries = 0",
    )
    drive(c)
    c.close()
    with CampaignStore.open(tmp_path / "t.h5") as st:
        statuses = [r.status for r in st.final_runs()]
    assert statuses.count("ok") == 16
    assert statuses.count("failed") >= 1  # the Sobol sequence visits the corner


def test_a_failed_point_never_enters_the_training_data(tmp_path: Path) -> None:
    c = make(tmp_path, function="campaign_helpers:fails_in_corner", budget=16, extra_simulator="retries = 0",
             extra_campaign="max_failure_fraction = 1.0")
    drive(c)
    data = c.dataset()
    c.close()
    X = c.space.from_unit(data.X)
    assert not np.any((X[:, 0] > 5.0) & (X[:, 1] > 10.0))
    assert len(data.X_failed) >= 1 and np.all(np.isfinite(data.Y))


def test_model_policy_records_scores_lambda_and_estimated_error(tmp_path: Path) -> None:
    c = make(tmp_path, policy="default", budget=8)
    drive(c)
    c.close()
    with CampaignStore.open(tmp_path / "t.h5") as st:
        later = [p for p in st.proposals() if p.source != "initial"]
        metrics = {name for _, name, _ in st.metrics()}
        checkpoint = st.latest_checkpoint()
    assert later and all(np.isfinite(p.lam) and 0.0 <= p.lam <= 1.0 for p in later)
    assert all(np.isfinite(p.U) and np.isfinite(p.J) for p in later)
    assert {"estimated_nrmse", "proposal_seconds"} <= metrics
    assert checkpoint is not None and checkpoint.surrogate_state


def test_validation_file_gives_test_nrmse(tmp_path: Path) -> None:
    from campaign_helpers import branin

    rng = np.random.default_rng(0)
    X = np.column_stack([rng.uniform(-5, 10, 200), rng.uniform(0, 15, 200)])
    rows = ["x1,x2,y"] + [f"{a},{b},{branin(a, b)['y']}" for a, b in X.tolist()]
    (tmp_path / "test.csv").write_text("\n".join(rows) + "\n")
    c = make(tmp_path, policy="default", budget=8, extra='\n[validation]\nfile = "test.csv"')
    drive(c)
    c.close()
    with CampaignStore.open(tmp_path / "t.h5") as st:
        values = [v for _, name, v in st.metrics() if name == "test_nrmse"]
    assert values and all(0.0 < v < 2.0 for v in values)


def test_telling_a_failed_result_keeps_outputs_out(tmp_path: Path) -> None:
    c = make(tmp_path, budget=4)
    trial = c.ask(1)[0]
    bad = SimulationResult(status="timeout", reason="timed out after 1.0 s")
    assert c.tell(trial, bad) is False  # retried: default retries = 1
    again = c.ask(1)[0]
    assert again.proposal_id == trial.proposal_id and again.attempt == 2
    assert c.tell(again, bad) is True
    assert c.ask(1)[0].proposal_id != trial.proposal_id  # settled: never handed out again
    c.close()
    with CampaignStore.open(tmp_path / "t.h5") as st:
        runs = st.runs()
    assert [r.final for r in runs] == [False, True]
    assert all(np.all(np.isnan(r.outputs)) for r in runs)


def _auto_surrogate(option: str = "") -> str:
    """A workflow's ``[surrogate]`` table for a small, fast ``auto`` surrogate (plus one more option line)."""
    return textwrap.dedent(f"""
        [surrogate]
        kind = "auto"
        [surrogate.options]
        folds = 2
        {option}
        candidate_options = {{ ensemble = {{ num_members = 3, max_epochs = 50, hidden_layers = [16, 16] }} }}
        """)


def test_auto_surrogate_from_the_workflow_chooses_and_checkpoints_its_choice(tmp_path: Path) -> None:
    import torch

    from surrogate_al.campaign.build import restore_surrogate
    from surrogate_al.state_bytes import state_from_bytes

    c = make(tmp_path, policy="default", budget=10, extra=_auto_surrogate())
    drive(c)
    X = torch.rand(5, 2, dtype=torch.float64)
    live = c.policy.surrogate.predict(X).mean.detach()
    c.close()
    with CampaignStore.open(tmp_path / "t.h5") as st:
        state = state_from_bytes(st.latest_checkpoint().surrogate_state)
        _, restored = restore_surrogate(st)
    assert state["kind"] == "auto" and state["selected"] in ("gp", "ensemble")
    assert set(state["cv_scores"]) == {"gp", "ensemble"} and state["selected_at_n"] >= 4
    # The resumed model is the chosen kind with the saved fit: the campaign's predictions.
    assert restored.selected_ == state["selected"]
    torch.testing.assert_close(restored.predict(X).mean.detach(), live)


def test_the_final_fit_takes_every_run_and_chooses_afresh(tmp_path: Path) -> None:
    from surrogate_al.state_bytes import state_from_bytes

    c = make(tmp_path, policy="default", budget=10, extra=_auto_surrogate("reselect_growth = 4.0"))
    drive(c)
    # The last round was fitted before its own results came in, and with growth 4 its
    # choice dates from the first fit.
    assert c.fitted_on_ < 10 and c.policy.surrogate.selected_at_n_ < 10
    assert c.fit_final_model() is True
    assert c.fit_final_model() is False  # already on every run: nothing to do
    c.close()
    with CampaignStore.open(tmp_path / "t.h5") as st:
        checkpoint = st.latest_checkpoint()
        state = state_from_bytes(checkpoint.surrogate_state)
    assert checkpoint.n_results == 10 and state["selected_at_n"] == 10 and state["choice_due"] is False


def test_no_final_fit_for_a_policy_without_a_model(tmp_path: Path) -> None:
    c = make(tmp_path, policy="sobol", budget=6)
    drive(c)
    assert c.fit_final_model() is False
    c.close()


def test_a_driver_whose_lock_was_taken_over_ends_without_an_error_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The CLI prints the one LockLostError line; ending the campaign adds no second one."""
    import json
    import time

    campaign = make(tmp_path)
    lock = Path(f"{campaign.store.path}.lock")
    lock.unlink()
    lock.write_text(json.dumps({"pid": 4242, "host": "node-b.example", "started": time.time(),
                                "command": "surrogate-al resume", "create_time": 0.0, "token": "theirs"}))
    with caplog.at_level("DEBUG", logger="surrogate_al"):
        campaign.end("stopped", "a test")
    assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text
    assert "is not recorded" in caplog.text
    campaign.close()
