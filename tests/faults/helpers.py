"""Shared pieces of the fault-injection suite: workflows, CLI drivers, kills, store reads.

Everything is real: the driver is ``python -m surrogate_al.cli`` in its own
session (so a kill of its process group also reaches its Dask workers), the
cluster is a LocalCluster of Nanny worker processes, the store is the HDF5
file plus its journal on disk.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import psutil

from surrogate_al.store import CampaignStore

from .fault_sims import GATE_AFTER_ENV, GATE_DIR_ENV

__all__ = [
    "FAULTS_DIR",
    "REPO",
    "assert_exactly_budget",
    "cli",
    "driver_env",
    "kill_driver",
    "kill_when_gate_holds",
    "n_final",
    "reap",
    "start_cli",
    "unit_square_tail",
    "wait_until",
    "write_workflow",
]

REPO = Path(__file__).resolve().parents[2]
FAULTS_DIR = Path(__file__).resolve().parent


def write_workflow(
    directory: Path,
    *,
    name: str,
    budget: int,
    function: str = "fault_sims:branin",
    mode: str = "async",
    seed: int = 0,
    concurrency: int = 2,
    batch_size: int | None = None,
    design_size: int = 8,
    policy: str = "default",
    feasibility: bool = True,
    surrogate: str = "gp",
    unit_square: bool = False,
    campaign_extra: str = "",
    simulator_extra: str = "",
) -> Path:
    """Write a workflow file ``<directory>/<name>.toml`` whose store is ``<name>.h5`` beside it.

    Args:
        directory: where the workflow and its store go.
        name: campaign name (and file stem).
        budget: settled runs to reach.
        function: the simulator, ``"module:function"``.
        mode: ``"async"`` or ``"sync"``.
        seed: the campaign seed.
        concurrency: runs in flight (and local workers).
        batch_size: sync batch size; default ``concurrency``.
        design_size: initial design size.
        policy: acquisition policy.
        feasibility: the default policy's feasibility weighting.
        surrogate: surrogate kind.
        unit_square: inputs x1, x2 in [0, 1] instead of Branin's box.
        campaign_extra: extra ``[campaign]`` lines.
        simulator_extra: extra ``[simulator]`` lines.

    Returns:
        The workflow file.
    """
    box = (
        "x1 = { low = 0.0, high = 1.0 }\nx2 = { low = 0.0, high = 1.0 }"
        if unit_square
        else "x1 = { low = -5.0, high = 10.0 }\nx2 = { low = 0.0, high = 15.0 }"
    )
    batch = f"batch_size = {batch_size}" if batch_size is not None else ""
    text = textwrap.dedent(
        """\
        [campaign]
        name = "{name}"
        budget = {budget}
        concurrency = {concurrency}
        mode = "{mode}"
        {batch}
        initial_design = {{ size = {design_size}, kind = "sobol" }}
        seed = {seed}
        store = "{name}.h5"
        {campaign_extra}

        [simulator]
        kind = "python"
        function = "{function}"
        outputs = ["y"]
        {simulator_extra}

        [simulator.inputs]
        {box}

        [surrogate]
        kind = "{surrogate}"

        [acquisition]
        policy = "{policy}"
        raw_samples = 256
        restarts = 4
        {feasibility}

        [cluster]
        kind = "local"
        workers = {concurrency}
        """
    ).format(
        name=name,
        budget=budget,
        concurrency=concurrency,
        mode=mode,
        batch=batch,
        design_size=design_size,
        seed=seed,
        campaign_extra=campaign_extra,
        function=function,
        simulator_extra=simulator_extra,
        box=box,
        surrogate=surrogate,
        policy=policy,
        feasibility=f"feasibility = {'true' if feasibility else 'false'}" if policy == "default" else "",
    )
    path = directory / f"{name}.toml"
    path.write_text(text)
    return path


def unit_square_tail(cluster: str) -> str:
    """The end of a hand-written workflow: inputs x1, x2 in [0, 1], random proposals, a ``[cluster]``.

    Args:
        cluster: the ``[cluster]`` table's lines (not indented).

    Returns:
        TOML text from ``[simulator.inputs]`` on, ending in a newline; what
        comes before it ends the ``[simulator]`` table and a blank line.
    """
    return textwrap.dedent(
        """\
        [simulator.inputs]
        x1 = { low = 0.0, high = 1.0 }
        x2 = { low = 0.0, high = 1.0 }

        [acquisition]
        policy = "random"

        [cluster]
        """
    ) + textwrap.dedent(cluster).strip("\n") + "\n"


def batch_workflow(directory: Path, name: str, kind: str, cluster_lines: str = "", option_lines: str = "") -> Path:
    """``directory/name.toml``: a 4-run Branin campaign on a batch-queue ``[cluster]`` of ``kind``.

    Args:
        directory: where the file goes (its store would be ``name.h5`` there).
        name: the campaign's name and the file's stem.
        kind: ``cluster.kind``.
        cluster_lines: more ``[cluster]`` lines (``insecure = true``, ``tls = {...}``).
        option_lines: more ``[cluster.options]`` lines; one starting with ``memory``
            replaces the default ``memory = "1GB"``.
    """
    memory = "" if option_lines.startswith("memory") else 'memory = "1GB"\n'
    text = textwrap.dedent(
        f"""\
        [campaign]
        name = "{name}"
        budget = 4
        store = "{name}.h5"

        [simulator]
        kind = "python"
        function = "simulators.branin:run"
        outputs = ["y"]

        [simulator.inputs]
        x1 = {{ low = -5.0, high = 10.0 }}
        x2 = {{ low = 0.0, high = 15.0 }}

        [cluster]
        kind = "{kind}"
        """
    )
    path = directory / f"{name}.toml"
    path.write_text(text + cluster_lines + "\n\n[cluster.options]\ncores = 1\n" + memory + option_lines + "\n")
    return path


def driver_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a driver: ``fault_sims`` importable there and on its workers."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAULTS_")}
    paths = [str(FAULTS_DIR), str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(extra or {})
    return env


def cli(*args: str, env: Mapping[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run ``surrogate-al ARGS`` to completion (in its own session, reaped on timeout)."""
    proc = start_cli(*args, env=env)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_driver(proc)
        raise
    finally:
        reap(proc)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def start_cli(
    *args: str,
    env: Mapping[str, str] | None = None,
    cwd: Path = REPO,
    command: Sequence[str] = (sys.executable, "-m", "surrogate_al.cli"),
) -> subprocess.Popen[str]:
    """Start ``surrogate-al ARGS`` as a driver in a new session (its workers share its process group).

    Args:
        args: the CLI's arguments.
        env: extra environment variables (see :func:`driver_env`).
        cwd: the driver's working directory.
        command: how to call the CLI; default ``python -m surrogate_al.cli`` of this interpreter.
    """
    return subprocess.Popen(
        [*command, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env=driver_env(env),
        start_new_session=True,
    )


def reap(proc: subprocess.Popen[str], timeout: float = 20.0) -> None:
    """Kill whatever is left of a driver's process group (orphaned Dask workers) and wait for it.

    PID 1 on the test machines does not always reap orphans at once, so a
    zombie member of the group does not count as left behind.
    """
    pgid = proc.pid
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if proc.poll() is None:
        proc.wait(timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = []
        for p in psutil.process_iter(["pid", "status"]):
            try:
                if os.getpgid(p.info["pid"]) == pgid and p.info["status"] != psutil.STATUS_ZOMBIE:
                    alive.append(p.info["pid"])
            except (ProcessLookupError, psutil.NoSuchProcess):
                continue
        if not alive:
            return
        time.sleep(0.05)
    raise AssertionError(f"processes of driver group {pgid} survived SIGKILL: {alive}")


def kill_driver(proc: subprocess.Popen[str]) -> int:
    """SIGKILL the driver alone (a crash: its workers are orphaned), then clean up its group.

    Returns:
        The driver's return code (``-9`` when the kill, not an exit, ended it).
    """
    try:
        proc.send_signal(signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(60)
    reap(proc)
    if proc.stdout is not None:
        proc.stdout.close()
    if proc.stderr is not None:
        proc.stderr.close()
    return proc.returncode


def kill_when_gate_holds(wf: Path, gate: Path, *, after: int, batch: int) -> int:
    """Run the campaign ``wf`` (simulator ``fault_sims:gated_branin``) and SIGKILL its driver mid-campaign.

    The gate (the existing directory ``gate``) lets ``after`` calls through;
    the driver is killed alone (:func:`kill_driver`) once its store ``<wf
    stem>.h5`` holds ``after`` results and the next ``batch`` calls wait at
    the gate.

    Returns:
        The driver's return code (``-9`` when the kill, not an exit, ended it).
    """
    store = wf.with_suffix(".h5")
    proc = start_cli("run", str(wf), "--no-progress", env={GATE_DIR_ENV: str(gate), GATE_AFTER_ENV: str(after)})
    try:
        wait_until(
            f"the batch after result {after} to hang",
            lambda: len(list(gate.glob("blocked-*"))) == batch and n_final(store) >= after,
            proc,
        )
    finally:
        rc = kill_driver(proc)
    return rc


def n_final(store: Path) -> int:
    """Final runs in the store as a reader sees them now (0 while it cannot be opened yet)."""
    try:
        with CampaignStore.open(store, mode="r") as st:
            return len(st.final_runs())
    except Exception:  # noqa: BLE001 -- not created yet, or caught mid-creation: any error means "not yet"
        return 0


def wait_until(
    what: str, predicate: Callable[[], bool], proc: subprocess.Popen[str], timeout: float = 300.0, poll: float = 0.05
) -> None:
    """Poll ``predicate`` until true; fail early if the driver exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr is not None else ""
            raise AssertionError(f"driver exited ({proc.returncode}) before {what}: {err[-3000:]}")
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def assert_exactly_budget(store: Path, budget: int, *, state: str = "completed") -> None:
    """Exactly ``budget`` settled proposals, each settled once, nothing pending, attempts unique."""
    with CampaignStore.open(store, mode="r") as st:
        final = st.final_runs()
        ids = [r.proposal_id for r in final]
        assert len(final) == budget, f"{len(final)} settled runs, budget {budget}"
        assert len(set(ids)) == len(ids), "a proposal was settled twice"
        assert st.pending_proposal_ids() == []
        pairs = [(r.proposal_id, r.attempt) for r in st.runs()]
        assert len(set(pairs)) == len(pairs), "an attempt was recorded twice"
        units = np.array([p.unit for p in st.proposals()])
        assert len(np.unique(units, axis=0)) == len(units), "a point was proposed twice"
        assert st.state()[0] == state, st.state()
