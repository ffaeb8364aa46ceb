"""Retries and the failure-rate breaker through the real CLI and a LocalCluster.

The ask/tell unit tests drive the campaign by hand in one process; here the
simulator runs on Dask worker processes, so a retry may land on another
process than the failed attempt. ``fault_sims:flaky`` keeps its per-point
call count in files keyed by the inputs, which is what makes "fails twice,
then succeeds" hold across processes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from surrogate_al.store import CampaignStore

from .helpers import assert_exactly_budget, cli, write_workflow


@pytest.mark.parametrize(("retries", "status", "attempts"), [(2, "ok", 3), (1, "failed", 2)],
                         ids=["retries2-ok", "retries1-failed"])
def test_point_failing_twice_follows_the_retry_policy(tmp_path: Path, retries: int, status: str, attempts: int) -> None:
    budget = 6
    counters = tmp_path / "counters"
    counters.mkdir()
    wf = write_workflow(
        tmp_path, name="retry", budget=budget, design_size=4, policy="sobol", function="fault_sims:flaky",
        # Every point fails; the breaker must not stop what the retry policy is being tested on.
        campaign_extra="max_failure_fraction = 1.0",
        simulator_extra=f'retries = {retries}\nfixed_inputs = {{ counter_dir = "{counters}", failures = 2 }}',
    )
    store = wf.with_suffix(".h5")

    res = cli("run", str(wf), "--no-progress")

    assert res.returncode == 0, res.stderr[-3000:]
    assert_exactly_budget(store, budget)
    with CampaignStore.open(store) as st:
        final = st.final_runs()
        runs = st.runs()
    assert {r.status for r in final} == {status}
    assert {r.attempt for r in final} == {attempts}
    for r in final:
        tries = sorted((x for x in runs if x.proposal_id == r.proposal_id), key=lambda x: x.attempt)
        assert [x.attempt for x in tries] == list(range(1, attempts + 1))
        assert [x.final for x in tries] == [False] * (attempts - 1) + [True]
        assert all(x.status == "failed" and "transient failure" in x.reason for x in tries[:2])
        assert all(x.worker for x in tries)  # each attempt ran on a Dask worker
    if status == "failed":
        assert all("transient failure 2" in r.reason for r in final)
    else:
        assert all(r.reason == "" for r in final)
    # The simulator itself ran exactly `attempts` times per point, whichever process ran it.
    calls = sorted(json.loads(p.read_text()) for p in counters.iterdir())
    assert calls == [attempts] * budget
    assert len(runs) == budget * attempts


def test_breaker_stops_says_why_and_resume_after_the_fix_reaches_the_budget(tmp_path: Path) -> None:
    budget = 20
    fixed = tmp_path / "fixed"
    wf = write_workflow(
        tmp_path, name="breaker", budget=budget, design_size=8, policy="sobol", function="fault_sims:mostly_fails",
        campaign_extra="min_runs_for_breaker = 6\nmax_failure_fraction = 0.5",
        simulator_extra=f'retries = 0\nfixed_inputs = {{ fixed_flag = "{fixed}" }}',
    )
    store = wf.with_suffix(".h5")

    res = cli("run", str(wf), "--no-progress")

    assert res.returncode == 1, (res.returncode, res.stderr[-3000:])
    errors = [line for line in res.stderr.splitlines() if line.startswith("surrogate-al: error: ")]
    assert len(errors) == 1 and "Traceback" not in res.stderr, res.stderr[-3000:]
    assert "runs failed (more than max_failure_fraction = 0.5)" in errors[0]
    assert f"surrogate-al resume {store}" in errors[0]
    with CampaignStore.open(store) as st:
        state, reason = st.state()
        breaker = [message for _, kind, message in st.events() if kind == "breaker"]
        stopped = st.final_runs()
    assert state == "stopped" and "runs failed" in reason
    assert len(breaker) == 1 and breaker[0] in errors[0]
    n_failed = sum(r.status == "failed" for r in stopped)
    assert len(stopped) >= 6 and n_failed / len(stopped) > 0.5 and len(stopped) < budget
    assert all("solver diverged" in r.reason for r in stopped if r.status == "failed")

    fixed.touch()  # the simulator is fixed
    res = cli("resume", str(store), "--no-progress")

    assert res.returncode == 0, res.stderr[-3000:]
    assert_exactly_budget(store, budget)
    with CampaignStore.open(store) as st:
        final = {r.proposal_id: r for r in st.final_runs()}
        kinds = [kind for _, kind, _ in st.events()]
    # What failed before the fix stays failed (settled once); everything after it succeeded.
    assert all(final[r.proposal_id].run_id == r.run_id for r in stopped)
    later = [r for pid, r in final.items() if pid not in {s.proposal_id for s in stopped}]
    assert len(later) == budget - len(stopped) and all(r.status == "ok" for r in later)
    assert kinds.count("breaker") == 1 and kinds[-1] == "completed" and "resumed" in kinds
