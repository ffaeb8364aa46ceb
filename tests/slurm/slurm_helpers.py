"""Helpers for the SLURM tests: is SLURM up, test workflows from workflows/slurm.toml, squeue/sacct.

The workflows are built from ``workflows/slurm.toml`` itself (parsed, a few
keys changed, written back as TOML), so the example file is what the tests run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomllib

from surrogate_al.store import CampaignStore

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
EXAMPLE = REPO / "workflows" / "slurm.toml"
WORKER_RE = re.compile(r"^tcp://127\.0\.0\.1:\d+ job=(\d+)$")


# ---------------------------------------------------------------------------------------
# Is SLURM up?
def node_state() -> str:
    """``sinfo``'s state of the (first) node, e.g. 'idle'; '' when slurmctld does not answer."""
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%t"], check=False, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip().splitlines()[0].strip() if out.returncode == 0 and out.stdout.strip() else ""


def slurm_unavailable() -> str | None:
    """Why the SLURM tests cannot run here, or None when a SLURM node is idle."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "SLURM is not installed (no sinfo/sbatch on PATH); start one with `sudo ci/slurm-up.sh`"
    deadline = time.monotonic() + 30  # a previous test's jobs may still be ending
    state = node_state()
    while state != "idle" and state in ("mix", "alloc", "comp") and time.monotonic() < deadline:
        time.sleep(1)
        state = node_state()
    if state != "idle":
        return f"no idle SLURM node (sinfo -h -o %t says {state or 'nothing: slurmctld does not answer'!r}); " \
            "start one with `sudo ci/slurm-up.sh`"
    return None


# ---------------------------------------------------------------------------------------
# Workflows
def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are valid TOML basic-string escapes
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {value!r} as TOML")


def dump_toml(data: Mapping[str, Any]) -> str:
    """Sections of a workflow as TOML (tables of tables become [a.b] sections)."""
    lines: list[str] = []

    def section(prefix: str, table: Mapping[str, Any]) -> None:
        scalars = {k: v for k, v in table.items() if not isinstance(v, Mapping) or prefix == "simulator.inputs"}
        tables = {k: v for k, v in table.items() if k not in scalars}
        lines.append(f"[{prefix}]")
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in scalars.items())
        lines.append("")
        for k, v in tables.items():
            section(f"{prefix}.{k}", v)

    for name, table in data.items():
        section(name, table)
    return "\n".join(lines)


def example() -> dict[str, Any]:
    """workflows/slurm.toml as a dict."""
    return tomllib.loads(EXAMPLE.read_text())


def write_workflow(
    tmp_path: Path,
    name: str,
    *,
    budget: int,
    delay: float | None = None,
    death_timeout: int | None = None,
) -> tuple[Path, Path]:
    """The example workflow with its own name, store and log directory in ``tmp_path``.

    With ``delay``, the simulator is :mod:`slurm_slow_sim` (same Branin, slower,
    with start/done markers in ``tmp_path / 'markers'``), imported by the workers
    through ``PYTHONPATH`` set in ``job_script_prologue``.

    Returns:
        The workflow file and the store path.
    """
    data = example()
    store = tmp_path / f"{name}.h5"
    data["campaign"].update(name=name, budget=budget, store=str(store))
    options = data["cluster"]["options"]
    options["log_directory"] = str(tmp_path / "logs")
    options["local_directory"] = str(tmp_path / "scratch")
    if death_timeout is not None:
        options["death_timeout"] = death_timeout
    if delay is not None:
        markers = tmp_path / "markers"
        markers.mkdir(exist_ok=True)
        data["simulator"]["function"] = "slurm_slow_sim:run"
        data["simulator"]["fixed_inputs"] = {"delay": delay, "marker_dir": str(markers)}
        options["job_script_prologue"] = [*options.get("job_script_prologue", []), f"export PYTHONPATH={HERE}"]
    path = tmp_path / f"{name}.toml"
    path.write_text(dump_toml(data))
    return path, store


def job_name(campaign: str) -> str:
    """The SLURM job name the dispatcher gives a campaign's worker jobs."""
    return "sal-" + campaign


# ---------------------------------------------------------------------------------------
# The driver
def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "surrogate_al.cli", *args],
        check=False, capture_output=True, text=True, timeout=timeout, cwd=REPO, stdin=subprocess.DEVNULL,
    )


def start_cli(*args: str, log: Path) -> subprocess.Popen[bytes]:
    """The driver in the background; its stdout and stderr go to ``log``."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "surrogate_al.cli", *args],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO, start_new_session=True,
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def n_final(store: Path) -> int:
    try:
        with CampaignStore.open(store, mode="r") as st:
            return len(st.final_runs())
    except Exception:  # not created yet, or mid-creation
        return 0


def wait_for_final(store: Path, n: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"driver exited early ({proc.returncode}):\n{log.read_text()[-3000:]}")
        if n_final(store) >= n:
            return
        time.sleep(0.5)
    raise AssertionError(f"{n} results not reached in {timeout} s:\n{log.read_text()[-3000:]}")


def assert_complete(store: Path, budget: int) -> list[Any]:
    """Exactly ``budget`` settled proposals, each settled once, nothing pending; returns the final runs."""
    with CampaignStore.open(store, mode="r") as st:
        final = st.final_runs()
        ids = [r.proposal_id for r in final]
        assert len(final) == budget, f"{len(final)} settled runs, budget {budget}"
        assert len(set(ids)) == budget, "a proposal was settled twice"
        assert st.pending_proposal_ids() == []
        assert st.state()[0] == "completed", st.state()
        assert len(st.proposals()) == budget, "more proposals than the budget"
        return list(final)


def run_job_id(run: Any) -> str:
    """The SLURM job id recorded with a run (its worker field is 'tcp://127.0.0.1:PORT job=ID')."""
    match = WORKER_RE.match(run.worker)
    assert match, f"run {run.run_id} was not recorded as run in a SLURM job: worker = {run.worker!r}"
    return match[1]


# ---------------------------------------------------------------------------------------
# squeue / sacct / scancel
def squeue(name: str) -> dict[str, str]:
    """Job id -> state (R, PD, CG, ...) of the jobs named ``name``."""
    out = subprocess.run(["squeue", "-h", "--name", name, "-o", "%i %t"], check=False, capture_output=True, text=True, timeout=20)
    jobs = {}
    for line in out.stdout.split("\n"):
        if line.strip():
            job, state = line.split()
            jobs[job] = state
    return jobs


def finished_jobs(name: str) -> dict[str, str]:
    """Job id -> final state of the finished jobs named ``name``, from the job completion log.

    The test SLURM has no accounting database; ``sacct -c`` reads the completion
    log that ci/slurm-up.sh configures (jobcomp/filetxt).
    """
    out = subprocess.run(["sacct", "-c", "-n", "-P", "-o", "JobID,JobName,State"], check=False,
                         capture_output=True, text=True, timeout=20)
    jobs = {}
    for line in out.stdout.splitlines():
        parts = line.split("|")
        if len(parts) >= 3 and parts[1] == name:
            jobs[parts[0]] = parts[2]
    return jobs


def cancel_all(name: str, timeout: float = 60) -> None:
    """scancel the jobs named ``name`` and wait until squeue no longer lists them."""
    subprocess.run(["scancel", "--name", name], check=False, capture_output=True, timeout=20)
    deadline = time.monotonic() + timeout
    while squeue(name) and time.monotonic() < deadline:
        time.sleep(0.5)


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def markers(tmp_path: Path) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Start and done markers of the slow simulator: token -> info."""
    started, done = {}, {}
    for path in (tmp_path / "markers").iterdir():
        try:
            info = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # being written
        (started if path.suffix == ".start" else done)[path.stem] = info
    return started, done


def make_certificates(directory: Path) -> dict[str, str]:
    """A throw-away CA and one certificate signed by it, made as docs/hpc.md tells users (``surrogate-al tls``)."""
    from surrogate_al.certificates import make_certificates as make

    files = make(directory, days=2, bits=2048)
    return {"ca_file": str(files.ca_file), "cert": str(files.cert), "key": str(files.key)}
