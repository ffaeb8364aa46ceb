"""Dask worker processes that die mid-run: a killed worker, and a simulator that segfaults it.

Everything is real: an in-process :class:`~surrogate_al.campaign.Campaign`
drives a LocalCluster of Nanny worker processes (the nanny restarts a worker
that dies), the simulators are Python functions running inside those worker
processes (``worker_fault_sims``), and the store is the HDF5 file plus its
journal. Each simulator call leaves a marker file with the worker's pid, so
the tests can count tries across processes that no longer exist.

What "the configured number of attempts" means for a worker death (see
``surrogate_al.campaign.worker_death_tries``): a run may take its worker down
``1 + max(1, simulator.retries)`` times; the dispatcher sets Dask's
``distributed.scheduler.allowed-failures`` to match on the clusters it
creates. Re-runs after a worker death are Dask's, under the same task key, so
a bystander is recorded once with attempt 1; a run whose worker died on every
try settles with status ``lost`` (one of ``FAILED_STATUSES``; kept apart from
``failed`` so a crashed worker process is not mistaken for an error the
simulator reported) and a reason that starts with "worker died".
"""

from __future__ import annotations

import os
import signal
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from surrogate_al.campaign import FAILED_STATUSES, Campaign, worker_death_tries
from surrogate_al.config import load_workflow
from surrogate_al.store import CampaignStore

from .worker_fault_sims import read_markers, smooth

FAULTS_DIR = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def _sims_importable_on_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Spawned Dask workers start with the parent's sys.path: put ``worker_fault_sims`` on it."""
    monkeypatch.syspath_prepend(str(FAULTS_DIR))


def _workflow(
    directory: Path,
    *,
    budget: int,
    design: int,
    concurrency: int,
    workers: int,
    threads: int,
    function: str,
    fixed: str,
    retries: int = 1,
) -> Path:
    text = textwrap.dedent(
        f"""\
        [campaign]
        name = "wd"
        budget = {budget}
        concurrency = {concurrency}
        initial_design = {{ size = {design}, kind = "sobol" }}
        seed = 0
        store = "wd.h5"

        [simulator]
        kind = "python"
        function = "{function}"
        outputs = ["y"]
        retries = {retries}
        fixed_inputs = {{ {fixed} }}

        [simulator.inputs]
        x1 = {{ low = 0.0, high = 1.0 }}
        x2 = {{ low = 0.0, high = 1.0 }}

        [acquisition]
        policy = "random"  # model-free: no fits; "sobol" would repeat the initial design's points

        [cluster]
        kind = "local"
        workers = {workers}
        threads_per_worker = {threads}
        """
    )
    path = directory / "wd.toml"
    path.write_text(text)
    return path


class _Killer(threading.Thread):
    """SIGKILLs the worker process once ``n`` runs are in flight on it (all inside their sleep)."""

    def __init__(self, marker_dir: Path, n: int, timeout: float = 120.0) -> None:
        super().__init__(name="worker-killer", daemon=True)
        self.marker_dir = marker_dir
        self.n = n
        self.timeout = timeout
        self.killed_pid: int | None = None
        self.killed_at: float | None = None
        self.error: str | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + self.timeout
        while not self.stop.is_set() and time.monotonic() < deadline:
            markers = read_markers(self.marker_dir)
            pids = [m["pid"] for m in markers]
            if len(markers) >= self.n:
                if len(set(pids[: self.n])) != 1:
                    self.error = f"the first {self.n} runs started in different processes: {pids}"
                    return
                self.killed_pid = int(pids[0])
                self.killed_at = time.time()
                os.kill(self.killed_pid, signal.SIGKILL)
                return
            time.sleep(0.02)
        self.error = f"{self.n} runs never were in flight together"


def test_worker_killed_with_4_runs_in_flight_reruns_all_4_and_records_each_once(tmp_path: Path) -> None:
    """SIGKILL of a 4-thread worker process while its 4 runs sleep: each re-runs, each is recorded once.

    The test kills the worker's pid itself (like ``os._exit``, the process ends without any cleanup or
    goodbye to the scheduler), once the marker files show all 4 runs started in that process.
    """
    markers = tmp_path / "markers"
    markers.mkdir()
    budget = 6
    wf = _workflow(
        tmp_path,
        budget=budget,
        design=4,
        concurrency=4,
        workers=1,
        threads=4,
        function="worker_fault_sims:slow_marked",
        fixed=f'marker_dir = "{markers}", seconds = 3.0',
    )
    killer = _Killer(markers, n=4)
    campaign = Campaign.from_workflow(wf)
    try:
        killer.start()
        t0 = time.monotonic()
        outcome = campaign.run()
        elapsed = time.monotonic() - t0
    finally:
        killer.stop.set()
        campaign.close()
    killer.join(5)
    assert killer.error is None, killer.error
    assert killer.killed_pid is not None and killer.killed_at is not None
    assert outcome.status == "completed" and outcome.settled == budget and outcome.ok == budget

    calls = read_markers(markers)
    killed = [c for c in calls if c["pid"] == killer.killed_pid]
    assert len(killed) == 4
    # Each of the 4 ran again, in another (the restarted) worker process, after the kill.
    reruns = {}
    for k in killed:
        again = [c for c in calls if (c["x1"], c["x2"]) == (k["x1"], k["x2"]) and c["pid"] != killer.killed_pid]
        assert len(again) == 1, f"point {(k['x1'], k['x2'])} ran {len(again)} times after the kill"
        assert again[0]["t"] > killer.killed_at
        reruns[(k["x1"], k["x2"])] = again[0]["t"] - killer.killed_at
    assert len(calls) == budget + 4  # 6 runs, 4 of them twice: nothing else ran twice

    with CampaignStore.open(tmp_path / "wd.h5", mode="r") as st:
        runs = st.runs()
        final = st.final_runs()
        assert st.pending_proposal_ids() == []
        assert st.state()[0] == "completed"
    # Recorded exactly once: one run record per proposal, no lost attempt, no duplicate.
    assert len(runs) == budget and len(final) == budget
    assert sorted(r.proposal_id for r in runs) == list(range(budget))
    assert {(r.status, r.attempt, r.final) for r in runs} == {("ok", 1, True)}
    for r in final:
        assert r.outputs[0] == pytest.approx(smooth(*r.inputs))
    killed_points = {(k["x1"], k["x2"]) for k in killed}
    assert killed_points <= {tuple(r.inputs) for r in final}
    print(  # measured figures for the docs (pytest -s)
        f"\nworker death: 4 in flight, 4 re-run, duplicates 0; re-runs started "
        f"{min(reruns.values()):.2f}-{max(reruns.values()):.2f} s after the kill; campaign {elapsed:.1f} s"
    )


@pytest.mark.parametrize("retries", [0, 2])
def test_simulator_that_segfaults_its_worker_is_recorded_lost_after_the_configured_tries(
    tmp_path: Path, retries: int
) -> None:
    """A point whose simulator SIGSEGVs the worker every time: ``lost``, "worker died", N tries; the rest finish."""
    markers = tmp_path / "markers"
    markers.mkdir()
    budget = 6
    common: dict[str, Any] = {
        "budget": budget,
        "design": budget,
        "concurrency": 2,
        "workers": 2,
        "threads": 1,
        "function": "worker_fault_sims:segfault_above",
        "retries": retries,
    }
    # Pick the threshold so exactly one design point (the largest x1) crashes.
    probe = load_workflow(_workflow(tmp_path, **common, fixed=f'marker_dir = "{markers}", threshold = 2.0, seconds = 0.3'))
    x1 = np.sort(probe.space().from_unit(probe.space().design_unit("sobol", budget, seed=0))[:, 0])
    threshold = float((x1[-1] + x1[-2]) / 2)
    wf = _workflow(tmp_path, **common, fixed=f'marker_dir = "{markers}", threshold = {threshold!r}, seconds = 0.3')
    tries = worker_death_tries(retries)
    assert tries == 1 + max(1, retries)

    campaign = Campaign.from_workflow(wf)
    try:
        t0 = time.monotonic()
        outcome = campaign.run()
        elapsed = time.monotonic() - t0
        data = campaign.dataset()
    finally:
        campaign.close()
    assert outcome.status == "completed", outcome.reason  # the campaign ends normally
    assert outcome.settled == budget and outcome.ok == budget - 1

    with CampaignStore.open(tmp_path / "wd.h5", mode="r") as st:
        runs = st.runs()
        assert st.pending_proposal_ids() == []
    lost = [r for r in runs if r.inputs[0] > threshold]
    others = [r for r in runs if r.inputs[0] <= threshold]
    assert len(lost) == 1, [(r.proposal_id, r.status, r.reason) for r in runs]
    record = lost[0]
    assert record.status == "lost" and record.status in FAILED_STATUSES
    assert record.final and record.attempt == 1  # Dask re-ran it; the store holds one settled record
    assert record.reason.startswith(f"worker died while running it on all {tries} tries"), record.reason
    assert "last worker tcp://127.0.0.1:" in record.reason
    assert np.all(np.isnan(record.outputs))
    # The other runs finish, each recorded once and ok.
    assert len(others) == budget - 1
    assert {(r.status, r.attempt, r.final) for r in others} == {("ok", 1, True)}

    # Exactly `tries` calls at the crashing point, each in a different worker process (each one died).
    calls = [c for c in read_markers(markers) if c["x1"] > threshold]
    assert len(calls) == tries
    assert len({c["pid"] for c in calls}) == tries
    # Not training data: the surrogate's dataset holds the 5 good runs; the crash point is a failure.
    assert data.n == budget - 1 and not np.isnan(data.Y).any()
    assert data.X_failed.shape == (1, 2)
    print(f"\nsegfaulting simulator, retries = {retries}: {tries} worker deaths, then lost; campaign {elapsed:.1f} s")
