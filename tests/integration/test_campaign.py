"""End-to-end campaigns on a real LocalCluster, real HDF5 stores and the real CLI."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from faults.helpers import REPO, n_final, start_cli
from faults.helpers import cli as faults_cli
from faults.helpers import write_workflow as write_faults_workflow

from surrogate_al.store import CampaignStore


def write_workflow(tmp_path: Path, *, name: str = "e2e", budget: int = 20, mode: str = "async", seed: int = 0) -> Path:
    """A Branin campaign (``simulators.branin:run``, a 6-point design, 2 local workers) in ``<name>.toml``."""
    return write_faults_workflow(
        tmp_path, name=name, budget=budget, mode=mode, seed=seed, design_size=6, function="simulators.branin:run"
    )


def cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "surrogate_al.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


def wait_for_final(store: Path, n: int, proc: subprocess.Popen[str], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"driver exited early ({proc.returncode}): {out}\n{err}")
        if n_final(store) >= n:
            return
        time.sleep(0.2)
    raise AssertionError(f"{n} results not reached in {timeout} s")


def snapshot(store: Path) -> dict[int, tuple[np.ndarray, np.ndarray, str]]:
    with CampaignStore.open(store, mode="r") as st:
        return {r.proposal_id: (r.inputs.copy(), r.outputs.copy(), r.status) for r in st.final_runs()}


def assert_complete(store: Path, budget: int) -> None:
    with CampaignStore.open(store, mode="r") as st:
        final = st.final_runs()
        ids = [r.proposal_id for r in final]
        assert len(final) == budget
        assert len(set(ids)) == budget, "a proposal was settled twice"
        assert st.pending_proposal_ids() == []
        assert st.state()[0] == "completed"


def test_quickstart_runs_end_to_end_then_status_report_export(tmp_path: Path) -> None:
    wf = write_workflow(tmp_path, budget=14)
    store = tmp_path / "e2e.h5"
    res = cli("run", str(wf), "--no-progress")
    assert res.returncode == 0, res.stderr
    assert str(store) in res.stdout
    assert_complete(store, 14)
    with CampaignStore.open(store, mode="r") as st:
        # The delivered surrogate was fitted on every run, the last batch's too.
        assert st.latest_checkpoint().n_results == 14

    status = cli("status", str(store))
    assert status.returncode == 0, status.stderr
    assert "14 / 14" in status.stdout

    report = cli("report", str(store), "-o", str(tmp_path / "report"))
    assert report.returncode == 0, report.stderr
    for name in ("learning_curve.png", "samples.png", "slices_1d.png", "map_2d.png", "summary.md"):
        assert (tmp_path / "report" / name).stat().st_size > 0, name

    points = tmp_path / "points.csv"
    points.write_text("x1,x2\n0.0,5.0\n9.0,2.0\n")
    pred = cli("predict", str(store), str(points))
    assert pred.returncode == 0, pred.stderr
    lines = pred.stdout.strip().splitlines()
    assert lines[0] == "x1,x2,y_mean,y_std,y_epistemic_std"
    assert len(lines) == 3

    export = cli("export", str(store), "--format", "csv", "-o", str(tmp_path / "runs.csv"))
    assert export.returncode == 0, export.stderr
    assert len((tmp_path / "runs.csv").read_text().strip().splitlines()) == 15


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "sigkill"])
def test_interrupted_campaign_resumes_to_exact_budget(tmp_path: Path, sig: signal.Signals) -> None:
    budget = 20
    # Runs of 0.3 s: the last 10 take at least 1.5 s on 2 workers, so the signal lands mid-campaign
    # however few proposal rounds the loop needs for them (instant runs let it queue up to 8 per worker).
    wf = write_faults_workflow(
        tmp_path, name=f"kill{int(sig)}", budget=budget, design_size=6,
        function="fault_sims:slow_branin", simulator_extra="fixed_inputs = { delay = 0.3 }",
    )
    store = tmp_path / f"kill{int(sig)}.h5"
    proc = start_cli("run", str(wf), "--no-progress")
    try:
        wait_for_final(store, budget // 2, proc)
        if sig == signal.SIGKILL:
            proc.send_signal(sig)  # the driver alone: its workers are orphaned, as in a real crash
        else:
            os.killpg(proc.pid, sig)  # Ctrl-C reaches the whole foreground group
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode != 0
    before = snapshot(store)
    assert budget // 2 <= len(before) < budget

    res = faults_cli("resume", str(store), "--no-progress")  # fault_sims importable on its workers
    assert res.returncode == 0, res.stderr
    assert_complete(store, budget)
    after = snapshot(store)
    for pid, (x, y, status) in before.items():
        assert np.array_equal(after[pid][0], x) and np.array_equal(after[pid][1], y, equal_nan=True)
        assert after[pid][2] == status


def test_sync_mode_resume_proposes_exactly_the_same_points(tmp_path: Path) -> None:
    budget = 16
    first = tmp_path / "a"
    second = tmp_path / "b"
    first.mkdir()
    second.mkdir()
    wf_a = write_workflow(first, name="sync", budget=budget, mode="sync", seed=5)
    wf_b = write_workflow(second, name="sync", budget=budget, mode="sync", seed=5)

    res = cli("run", str(wf_a), "--no-progress")
    assert res.returncode == 0, res.stderr

    proc = start_cli("run", str(wf_b), "--no-progress")
    try:
        wait_for_final(second / "sync.h5", 10, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    res = cli("resume", str(second / "sync.h5"), "--no-progress")
    assert res.returncode == 0, res.stderr

    with CampaignStore.open(first / "sync.h5") as a, CampaignStore.open(second / "sync.h5") as b:
        pa, pb = a.proposals(), b.proposals()
        assert len(pa) == len(pb) == budget
        for x, y in zip(pa, pb):
            assert x.proposal_id == y.proposal_id and x.batch_id == y.batch_id
            np.testing.assert_array_equal(x.unit, y.unit)
        ra = {r.proposal_id: r.outputs for r in a.final_runs()}
        rb = {r.proposal_id: r.outputs for r in b.final_runs()}
        assert ra.keys() == rb.keys()
        for k in ra:
            np.testing.assert_array_equal(ra[k], rb[k])


def test_async_auto_campaign_chooses_its_model_off_the_proposal_rounds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An ``auto`` surrogate's cross-validation runs in its own process while the asynchronous loop proposes."""
    import multiprocessing
    import textwrap

    from surrogate_al.campaign import Campaign
    from surrogate_al.state_bytes import state_from_bytes

    wf = tmp_path / "bg.toml"
    wf.write_text(textwrap.dedent(f"""
        [campaign]
        name = "bg"
        budget = 40
        concurrency = 2
        mode = "async"
        initial_design = {{ size = 8, kind = "sobol" }}
        store = "{tmp_path / 'bg.h5'}"

        [simulator]
        kind = "python"
        function = "simulators.sleepy:run"
        fixed_inputs = {{ median = 0.3, spread = 4.0 }}
        outputs = ["y"]

        [simulator.inputs]
        x1 = {{ low = 0.0, high = 1.0 }}
        x2 = {{ low = 0.0, high = 1.0 }}

        [surrogate]
        kind = "auto"
        [surrogate.options]
        folds = 3
        candidate_options = {{ ensemble = {{ num_members = 3, max_epochs = 100, hidden_layers = [16, 16] }} }}

        [acquisition]
        raw_samples = 128
        restarts = 2

        [cluster]
        kind = "local"
        workers = 2
        """))
    campaign = Campaign.from_workflow(wf)
    try:
        with caplog.at_level(logging.DEBUG, logger="surrogate_al.surrogates.selection"):
            outcome = campaign.run()
    finally:
        campaign.close()
    assert outcome.status == "completed" and outcome.settled == 40

    messages = [r.getMessage() for r in caplog.records if r.name == "surrogate_al.surrogates.selection"]
    submitted = [m for m in messages if m.startswith("AutoSurrogate: choosing in the background")]
    served = [m for m in messages if " serves on " in m]
    in_place = [m for m in messages if " chosen at n = " in m and ", fitted on " not in m]
    # Due once the runs grew by half since the last choice: handed to the background process
    # (whether its scores come back before the 40th run depends on the machine's load).
    assert submitted, messages
    # The first fit serves the GP at once, unscored; the only choice made in place is the final fit's, on all 40 runs.
    assert served and served[0].startswith("AutoSurrogate: gp serves on "), messages
    assert len(in_place) == 1 and "n = 40 " in in_place[0], messages
    with CampaignStore.open(tmp_path / "bg.h5", mode="r") as st:
        assert state_from_bytes(st.latest_checkpoint().surrogate_state)["selected_at_n"] == 40
    # The background process goes with the loop.
    deadline = time.monotonic() + 20
    while multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not multiprocessing.active_children()
