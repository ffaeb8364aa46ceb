"""The Dask scheduler is SIGKILLed while runs are in flight; the driver stops cleanly; resume completes.

Everything is a real process: a ``dask scheduler`` and a ``dask worker``
(2 Nanny worker processes) that the test starts itself on 127.0.0.1, a
driver that is the real CLI (``python -m surrogate_al.cli run``) with a
workflow whose ``[cluster]`` is ``kind = "address"``, and the HDF5 store.

The bar:

* no cancelled future is ever stored as a result: after the kill the store
  holds only real ``ok`` records, and the runs that were in flight are
  pending (re-run on resume), not recorded;
* the driver exits with code 1 and one clear line on stderr that names the
  lost scheduler and the resume command (no traceback);
* a resume against a fresh scheduler at the same address completes with
  exactly the budget, no proposal settled twice, every earlier result
  unchanged.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from surrogate_al.store import CampaignStore

from .helpers import REPO, assert_exactly_budget, cli, n_final, reap, start_cli, unit_square_tail, wait_until

PY = sys.executable


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    """A Dask process in its own session (so :func:`reap` takes its nannies and workers too)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    with open(log, "ab") as fh:
        return subprocess.Popen(
            [PY, "-m", *args], stdout=fh, stderr=subprocess.STDOUT, cwd=log.parent, env=env, start_new_session=True
        )


def _start_scheduler(port: int, log: Path) -> subprocess.Popen[bytes]:
    return _start(
        [
            "distributed.cli.dask_scheduler",
            "--host", "127.0.0.1", "--port", str(port),
            "--no-dashboard", "--dashboard-address", "127.0.0.1:0",  # nothing on 0.0.0.0
        ],
        log,
    )


def _start_workers(port: int, log: Path) -> subprocess.Popen[bytes]:
    return _start(
        [
            "distributed.cli.dask_worker", f"tcp://127.0.0.1:{port}",
            "--host", "127.0.0.1", "--nworkers", "2", "--nthreads", "1",
            "--no-dashboard", "--dashboard-address", "127.0.0.1:0",
            "--local-directory", str(log.parent / "dask-worker-space"),
        ],
        log,
    )


def _wait_for_workers(port: int, n: int, timeout: float = 120.0) -> None:
    from distributed import Client

    with Client(f"tcp://127.0.0.1:{port}", timeout="60s") as client:
        client.wait_for_workers(n, timeout=timeout)


def _snapshot(store: Path) -> dict[int, tuple[np.ndarray, np.ndarray, str]]:
    with CampaignStore.open(store, mode="r") as st:
        return {r.proposal_id: (r.inputs.copy(), r.outputs.copy(), r.status) for r in st.final_runs()}


@pytest.mark.slow
def test_scheduler_killed_mid_batch_driver_stops_cleanly_and_resume_completes(tmp_path: Path) -> None:
    budget = 12
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    store = tmp_path / "sd.h5"
    wf = tmp_path / "sd.toml"
    wf.write_text(
        textwrap.dedent(
            f"""\
            [campaign]
            name = "sd"
            budget = {budget}
            concurrency = 2
            initial_design = {{ size = 4 }}
            store = "sd.h5"

            [simulator]
            kind = "python"
            function = "simulators.sleepy:run"
            outputs = ["y"]
            fixed_inputs = {{ median = 1.0, spread = 1.5 }}

            """
        )
        + unit_square_tail(f'kind = "address"\naddress = "{address}"')
    )
    dask_procs: list[subprocess.Popen[bytes]] = []
    driver = None
    try:
        scheduler = _start_scheduler(port, tmp_path / "scheduler-1.log")
        dask_procs.append(scheduler)
        dask_procs.append(_start_workers(port, tmp_path / "workers-1.log"))
        _wait_for_workers(port, 2)

        driver = start_cli("run", str(wf), "--no-progress")
        wait_until("4 stored results", lambda: n_final(store) >= 4, driver, timeout=180)
        killed_at = time.monotonic()
        os.kill(scheduler.pid, signal.SIGKILL)
        out, err = driver.communicate(timeout=180)
        exit_after = time.monotonic() - killed_at
        reap(driver)
        for proc in dask_procs:  # the old workers: a resume gets fresh ones
            reap(proc)  # type: ignore[arg-type]
        dask_procs.clear()

        # The driver: exit 1, one clear line naming the scheduler and the resume command.
        assert driver.returncode == 1, (driver.returncode, err[-3000:])
        assert "Traceback" not in err, err[-3000:]
        errors = [line for line in err.splitlines() if line.startswith("surrogate-al: error:")]
        assert len(errors) == 1, err[-3000:]
        assert err.rstrip().splitlines()[-1] == errors[0]
        assert errors[0].startswith(f"surrogate-al: error: lost the Dask scheduler at {address} while proposal ")
        assert f"`surrogate-al resume {store}` continues" in errors[0]

        # The store: only real results; what was in flight is pending, not recorded.
        with CampaignStore.open(store, mode="r") as st:
            runs = st.runs()
            pending = st.pending_proposal_ids()
            state, reason = st.state()
        assert {(r.status, r.reason, r.final) for r in runs} == {("ok", "", True)}
        assert len({r.proposal_id for r in runs}) == len(runs)
        assert 4 <= len(runs) < budget and pending
        assert state == "stopped" and f"lost the Dask scheduler at {address}" in (reason or "")
        before = _snapshot(store)

        # Resume on a fresh scheduler at the same address.
        dask_procs.append(_start_scheduler(port, tmp_path / "scheduler-2.log"))
        dask_procs.append(_start_workers(port, tmp_path / "workers-2.log"))
        _wait_for_workers(port, 2)
        res = cli("resume", str(store), "--no-progress", timeout=300)
        assert res.returncode == 0, res.stderr[-3000:]
        assert_exactly_budget(store, budget)
        with CampaignStore.open(store, mode="r") as st:
            runs_after = st.runs()
        assert len(runs_after) == budget  # one record per proposal: no cancelled or duplicate run stored
        assert {(r.status, r.attempt) for r in runs_after} == {("ok", 1)}
        after = _snapshot(store)
        for pid, (x, y, status) in before.items():
            assert np.array_equal(after[pid][0], x) and np.array_equal(after[pid][1], y, equal_nan=True)
            assert after[pid][2] == status
        print(
            f"\nscheduler death: {len(runs)} results kept, {len(pending)} proposals pending (in flight or "
            f"prepared), none stored from a cancelled future; driver exited {exit_after:.1f} s after the kill"
        )
    finally:
        if driver is not None and driver.poll() is None:
            reap(driver)
        for proc in dask_procs:
            reap(proc)  # type: ignore[arg-type]
