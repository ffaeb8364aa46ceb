"""Two campaigns with the same name on one scheduler: no result crosses from one to the other.

Everything is a real process: a ``dask scheduler`` and a ``dask worker`` (2
Nanny worker processes) on 127.0.0.1, and two drivers that are the real CLI,
each running a workflow file called ``workflow.toml`` in its own directory
(so both campaigns get the default name ``workflow``) with ``cluster.kind =
"address"``. The simulator returns its input (``y = x1``) and the two input
boxes do not overlap, so a result handed to the wrong campaign shows as an
output that differs from its own input.

Each run waits at a gate (a file) until both campaigns' runs are on the
scheduler; only then would equal task keys make Dask treat two campaigns'
runs as one computation.

The bar: every stored output equals its own stored input (keys exchanged:
0), and the scheduler held one task per submitted run (8 keys, each wanted
by one client).

Behind the keys, the driver checks each outcome: a future whose outcome
names another key, proposal or attempt (or is no run outcome at all) is a
``failed`` run with a reason that names both, logged as an error, and its
output is never taken for this proposal's (real in-process LocalCluster).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import logging

import numpy as np
import pytest

from surrogate_al.campaign.faults import finished_run
from surrogate_al.dispatch import execute_run, run_key
from surrogate_al.simulation import PythonSimulator
from surrogate_al.store import CampaignStore

from .helpers import FAULTS_DIR, REPO, reap, start_cli

PY = sys.executable
BUDGET = 4
BOXES = {"a": (0.0, 0.4), "b": (0.6, 1.0)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_dask(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    """A Dask process in its own session (so :func:`reap` takes its nannies and workers too)."""
    path = [str(FAULTS_DIR), str(REPO)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    with open(log, "ab") as fh:
        return subprocess.Popen(
            [PY, "-m", *args], stdout=fh, stderr=subprocess.STDOUT, cwd=log.parent, env=env, start_new_session=True
        )


def _workflow(directory: Path, box: tuple[float, float], address: str, gate: Path) -> Path:
    directory.mkdir()
    wf = directory / "workflow.toml"
    wf.write_text(
        textwrap.dedent(
            f"""\
            [campaign]
            budget = {BUDGET}
            concurrency = 2
            mode = "sync"
            batch_size = {BUDGET}
            initial_design = {{ size = {BUDGET} }}

            [simulator]
            kind = "python"
            function = "echo_sims:gated_echo"
            outputs = ["y"]
            fixed_inputs = {{ gate = "{gate}" }}

            [simulator.inputs]
            x1 = {{ low = {box[0]}, high = {box[1]} }}
            x2 = {{ low = 0.0, high = 1.0 }}

            [acquisition]
            policy = "random"

            [cluster]
            kind = "address"
            address = "{address}"
            """
        )
    )
    return wf


def _run_tasks(address: str) -> dict[str, int]:
    """The scheduler's run tasks: key -> how many clients hold a future for it."""
    from distributed import Client

    with Client(address, timeout="60s") as client:
        return client.run_on_scheduler(
            lambda dask_scheduler: {
                str(key): len(ts.who_wants) for key, ts in dask_scheduler.tasks.items() if str(key).startswith("sim-")
            }
        )


def test_two_campaigns_named_alike_on_one_scheduler_keep_their_own_results(tmp_path: Path) -> None:
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    gate = tmp_path / "gate-open"
    procs: list[subprocess.Popen] = []
    try:
        procs.append(
            _start_dask(
                [
                    "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port),
                    "--no-dashboard", "--dashboard-address", "127.0.0.1:0",
                ],
                tmp_path / "scheduler.log",
            )
        )
        procs.append(
            _start_dask(
                [
                    "distributed.cli.dask_worker", address, "--host", "127.0.0.1", "--nworkers", "2",
                    "--nthreads", "1", "--no-dashboard", "--dashboard-address", "127.0.0.1:0",
                    "--local-directory", str(tmp_path / "dask-worker-space"),
                ],
                tmp_path / "workers.log",
            )
        )
        workflows = {name: _workflow(tmp_path / name, box, address, gate) for name, box in BOXES.items()}
        drivers = {name: start_cli("run", str(wf), "--no-progress") for name, wf in workflows.items()}
        procs.extend(drivers.values())

        # Both campaigns have handed all their runs to the scheduler (each run is wanted by
        # one or more clients) before any run may finish.
        deadline = time.monotonic() + 240
        tasks: dict[str, int] = {}
        while sum(tasks.values()) < 2 * BUDGET:
            for name, proc in drivers.items():
                if proc.poll() is not None:
                    raise AssertionError(f"driver {name} exited ({proc.returncode}): {proc.stderr.read()[-3000:]}")
            assert time.monotonic() < deadline, f"the runs of both campaigns never reached the scheduler: {tasks}"
            time.sleep(0.1)
            tasks = _run_tasks(address)
        gate.touch()

        for name, proc in drivers.items():
            _, err = proc.communicate(timeout=240)
            assert proc.returncode == 0, f"driver {name} exited {proc.returncode}: {err[-3000:]}"

        crossed = []
        for name, (low, high) in BOXES.items():
            with CampaignStore.open(tmp_path / name / "workflow.h5", mode="r") as st:
                runs = st.final_runs()
            assert len(runs) == BUDGET and {r.status for r in runs} == {"ok"}, [(r.status, r.reason) for r in runs]
            for r in runs:
                x1, y = float(r.inputs[0]), float(r.outputs[0])
                assert low <= x1 <= high, f"campaign {name}: input x1 = {x1} outside its box [{low}, {high}]"
                if not np.isclose(y, x1, rtol=0, atol=1e-12):
                    crossed.append(f"campaign {name} proposal {r.proposal_id}: asked x1 = {x1}, stored y = {y}")
        assert not crossed, f"{len(crossed)} results crossed campaigns: " + "; ".join(crossed)
        assert len(tasks) == 2 * BUDGET and set(tasks.values()) == {1}, f"runs joined on the scheduler: {tasks}"
        print(f"\ncross-campaign keys: {len(tasks)} run tasks for {2 * BUDGET} runs, keys exchanged: {len(crossed)}")
    finally:
        for proc in procs:
            reap(proc)  # type: ignore[arg-type]


def _echo(x1: float) -> dict[str, float]:
    return {"y": x1}


def test_an_outcome_for_another_run_is_never_taken_as_this_proposals(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from distributed import Client, LocalCluster, wait

    simulator = PythonSimulator(_echo, ["x1"], ["y"])
    mine = run_key("workflow", 0, 1, store_id="a" * 32)
    theirs = run_key("workflow", 0, 1, store_id="b" * 32)
    with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster, Client(cluster) as client:
        futures = {
            # the outcome of another store's run, delivered under this driver's key
            "another key": client.submit(
                execute_run, simulator, {"x1": 0.1}, theirs, proposal_id=0, attempt=1, key=mine, pure=False
            ),
            # the right key, the wrong proposal and attempt
            "another proposal": client.submit(
                execute_run, simulator, {"x1": 0.2}, mine.replace("-p0-a1", "-p0-a2"), proposal_id=7, attempt=2,
                key=mine.replace("-p0-a1", "-p0-a2"), pure=False,
            ),
            "not a run outcome": client.submit(dict, y=0.3, key=mine.replace("-p0-a1", "-p0-a3"), pure=False),
        }
        expected = {"another key": 1, "another proposal": 2, "not a run outcome": 3}
        wait(list(futures.values()), timeout=60)
        with caplog.at_level(logging.ERROR, logger="surrogate_al.campaign.faults"):
            runs = {
                what: finished_run(
                    future,
                    proposal_id=0,
                    attempt=expected[what],
                    submit_time=time.time(),
                    scheduler_address=cluster.scheduler_address,
                    store_path=tmp_path / "workflow.h5",
                )
                for what, future in futures.items()
            }
    for what, run in runs.items():
        assert run.result.status == "failed", (what, run)
        assert run.result.outputs == {}, f"{what}: a foreign output was taken: {run.result.outputs}"
        assert run.result.reason.startswith("result not accepted: task 'sim-workflow-"), run.result.reason
        assert "its output is not stored" in run.result.reason
        assert run.worker == "" and run.status_override is None
    assert f"returned the outcome of task {theirs!r} (proposal 0 attempt 1)" in runs["another key"].result.reason
    assert "(proposal 7 attempt 2)" in runs["another proposal"].result.reason
    assert "returned a dict, not a run outcome" in runs["not a run outcome"].result.reason
    assert [r.levelno for r in caplog.records].count(logging.ERROR) == 3
