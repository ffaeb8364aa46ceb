"""A Dask worker SIGKILLed while its script simulator runs: the simulator must die with it.

Everything is real: the driver is ``python -m surrogate_al.cli run`` with a
LocalCluster of one Nanny worker (the nanny restarts the killed worker and
Dask re-runs the task under the same key); the simulator is
``scripts/hang_once.sh``, whose first run (a shell and its background sleep,
one process group) never finishes and records both pids; the kill is
``os.kill(worker, SIGKILL)``.

The bar: neither process of the first run is alive after the kill (the
worker took its process group with it), the campaign completes with the
re-run, and the first run's directory counts two executions of that run.
"""

from __future__ import annotations

import os
import signal
import textwrap
from pathlib import Path

import psutil

from surrogate_al.store import CampaignStore

from .helpers import FAULTS_DIR, reap, start_cli, unit_square_tail, wait_until

HANG_ONCE = FAULTS_DIR / "scripts" / "hang_once.sh"


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_killed_worker_takes_its_simulator_with_it(tmp_path: Path) -> None:
    claim, runs = tmp_path / "claimed", tmp_path / "runs"
    wf = tmp_path / "wk.toml"
    wf.write_text(
        textwrap.dedent(
            f"""\
            [campaign]
            name = "wk"
            budget = 1
            concurrency = 1
            initial_design = {{ size = 1, kind = "sobol" }}
            store = "wk.h5"

            [simulator]
            kind = "script"
            command = ["/bin/sh", "{HANG_ONCE}", "{claim}", "{{x1}}", "{{x2}}"]
            input_format = "none"
            output_format = "keyvalue"
            retries = 1
            workdir = "{runs}"
            outputs = ["y"]

            """
        )
        + unit_square_tail('kind = "local"\nworkers = 1')
    )
    proc = start_cli("run", str(wf), "--no-progress")
    pids: list[int] = []
    try:
        pids_file = claim / "pids.txt"
        wait_until(
            "the first run to start", lambda: pids_file.exists() and len(pids_file.read_text().split()) == 2, proc
        )
        pids = [int(p) for p in pids_file.read_text().split()]
        worker = psutil.Process(pids[0]).ppid()
        assert "python" in psutil.Process(worker).name().lower()
        os.kill(worker, signal.SIGKILL)
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        left = [p for p in pids if _alive(p)]
        assert left == [], f"processes {left} of the killed worker's run are still alive"
    finally:
        reap(proc)
        for p in pids:
            if _alive(p):
                os.kill(p, signal.SIGKILL)
    with CampaignStore.open(wf.with_suffix(".h5"), mode="r") as st:
        [run] = st.final_runs()
        assert run.status == "ok"
    names = sorted(p.name for p in runs.iterdir())
    [first] = [runs / n for n in names if "-retry" not in n]  # the killed execution's directory
    executions = (first / "executions").read_text().splitlines()
    assert len(executions) == 2, executions  # the killed execution and Dask's re-run
