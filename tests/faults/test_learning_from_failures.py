"""The default policy learns where the simulator fails and stops proposing there.

``fault_sims:corner_fails`` crashes in the corner x1 > 0.5 and x2 > 0.5 of
the unit square: a quarter of the box, so a space-filling design sends about
25 % of its points there. A real campaign (CLI, LocalCluster, synchronous so
the outcome is the same on every run) with the default policy (feasibility
on) must send fewer than 10 % of the proposals made after the first failure
into the corner. The same count for a Sobol policy, and in the slow test for
the default policy with ``feasibility = false``, shows the test can fail.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from surrogate_al.store import CampaignStore

from .helpers import assert_exactly_budget, cli, write_workflow


def corner_share(tmp_path: Path, name: str, *, budget: int, policy: str = "default", feasibility: bool = True) -> float:
    """Run a campaign; the share of its proposals made after the first failure that lie in the failing corner."""
    wf = write_workflow(
        tmp_path, name=name, budget=budget, mode="sync", policy=policy, feasibility=feasibility, unit_square=True,
        function="fault_sims:corner_fails",
        # A failure at a point is deterministic: retrying it would only waste runs.
        simulator_extra="retries = 0",
        # The breaker is not under test; a baseline may fail often.
        campaign_extra="max_failure_fraction = 1.0",
    )
    res = cli("run", str(wf), "--no-progress")
    assert res.returncode == 0, res.stderr[-3000:]
    store = wf.with_suffix(".h5")
    assert_exactly_budget(store, budget)
    with CampaignStore.open(store) as st:
        runs = st.final_runs()
        proposals = st.proposals()
    failed = [r for r in runs if r.status != "ok"]
    assert failed, "nothing failed: the test proves nothing"
    X_failed = np.array([r.inputs for r in failed])
    assert np.all((X_failed[:, 0] > 0.5) & (X_failed[:, 1] > 0.5)), "a run failed outside the corner"
    assert all("mesh generation failed" in r.reason for r in failed)
    first_failure = min(r.finish_time for r in failed)
    # Proposals from the policy (not the initial design) made once a failure was known.
    later = np.array([p.inputs for p in proposals if p.source != "initial" and p.created > first_failure])
    assert len(later) >= budget // 2, f"only {len(later)} proposals after the first failure"
    share = float(np.mean((later[:, 0] > 0.5) & (later[:, 1] > 0.5)))
    print(f"{name}: {share:.1%} of {len(later)} proposals after the first failure in the failing corner")
    return share


def test_default_policy_learns_to_avoid_the_failing_corner(tmp_path: Path) -> None:
    learned = corner_share(tmp_path, "feasible", budget=30)
    baseline = corner_share(tmp_path, "sobol", budget=60, policy="sobol")
    assert learned < 0.10, f"{learned:.1%} of proposals went into the failing corner (a uniform design sends ~25 %)"
    assert baseline > 0.18, f"the Sobol baseline sent only {baseline:.1%} into the corner: the check cannot tell"


@pytest.mark.slow
def test_sixty_runs_feasibility_on_versus_off(tmp_path: Path) -> None:
    learned = corner_share(tmp_path, "feasible", budget=60)
    blind = corner_share(tmp_path, "blind", budget=60, feasibility=False)
    assert learned < 0.10, f"{learned:.1%} of proposals went into the failing corner (a uniform design sends ~25 %)"
    # Without the feasibility model the policy keeps going back (failed points still count as
    # covered and condition the information gain, so less often than a uniform design).
    assert blind > 2 * learned and blind > 0.12, f"feasibility off: {blind:.1%}, on: {learned:.1%}"
