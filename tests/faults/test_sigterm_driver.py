"""SIGTERM, SIGINT and SIGUSR1 to a running driver (walltime, ``scancel``, preemption, Ctrl-C).

Everything is real: the driver is ``python -m surrogate_al.cli run`` in its
own session with a LocalCluster of Nanny workers; the simulator is a shell
script (``scripts/sleeper.sh``) that sleeps 60 s in a background child, so
each run is a process group of two; the signal comes from ``os.kill``. The
simulators carry a marker in their environment, so psutil finds every one of
them after the driver exits, whoever their parent is by then.

The bar: the driver exits with the signal's code and one line, the store
says ``stopped`` with the signal as the reason, the lock is released, no
simulator process is left, and the runs that were in flight stay pending
proposals that ``resume`` runs at the same points.
"""

from __future__ import annotations

import signal
import textwrap
import uuid
from pathlib import Path

import psutil
import pytest

from surrogate_al.store import CampaignStore

from .helpers import FAULTS_DIR, cli, reap, start_cli, unit_square_tail, wait_until

SLEEPER = FAULTS_DIR / "scripts" / "sleeper.sh"

#: Exit code and the signal's name in the one line, per signal (documented in docs/workflow.md).
EXPECTED = {signal.SIGTERM: 143, signal.SIGINT: 130, signal.SIGUSR1: 138}


def _workflow(directory: Path, marker: str, *, grace: float = 0.0, mode: str = "async") -> Path:
    wf = directory / "sig.toml"
    wf.write_text(
        textwrap.dedent(
            f"""\
            [campaign]
            name = "sig"
            budget = 2
            concurrency = 2
            mode = "{mode}"
            initial_design = {{ size = 2, kind = "sobol" }}
            store = "sig.h5"
            {f"stop = {{ grace = {grace} }}" if grace else ""}

            [simulator]
            kind = "script"
            command = ["/bin/sh", "{SLEEPER}", "{directory}", "{{x1}}", "{{x2}}"]
            input_format = "none"
            output_format = "keyvalue"
            retries = 0
            outputs = ["y"]
            env = {{ SIGTEST_MARKER = "{marker}" }}

            """
        )
        + unit_square_tail('kind = "local"\nworkers = 2')
    )
    return wf


def _simulators(marker: str) -> list[psutil.Process]:
    """Live (non-zombie) processes whose environment carries ``marker``."""
    found = []
    for p in psutil.process_iter(["status"]):
        try:
            if p.info["status"] != psutil.STATUS_ZOMBIE and p.environ().get("SIGTEST_MARKER") == marker:
                found.append(p)
        except (psutil.Error, OSError):
            continue
    return found


def _describe(p: psutil.Process) -> str:
    try:
        return f"{p.pid} {p.name()} (parent {p.ppid()})"
    except psutil.Error:
        return f"{p.pid} (exited while looked at)"


def _kill_all(procs: list[psutil.Process]) -> None:
    for p in procs:
        try:
            p.kill()
        except psutil.Error:
            pass


def _stop_driver(directory: Path, sig: signal.Signals, *, mode: str = "async") -> tuple[Path, int, str, str]:
    """Start a driver, wait until both runs (4 processes) are in flight, send ``sig``, wait for its exit.

    Returns:
        The store, the exit code, stderr, and the marker of this campaign's simulators.
    """
    marker = uuid.uuid4().hex
    wf = _workflow(directory, marker, mode=mode)
    proc = start_cli("run", str(wf), "--no-progress")
    try:
        wait_until("both runs in flight", lambda: len(_simulators(marker)) >= 4, proc)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        reap(proc)  # the driver's own group (its Dask workers), whatever happened
        found = _simulators(marker)
        left = [_describe(p) for p in found]
        _kill_all(found)
    assert left == [], f"{len(left)} simulator processes outlived the driver: {left}"
    return wf.with_suffix(".h5"), proc.returncode, err, marker


def _status(store: Path) -> str:
    res = cli("status", str(store))
    assert res.returncode == 0, res.stderr
    return res.stdout


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1, signal.SIGINT], ids=lambda s: s.name)
def test_signal_stops_the_driver_and_kills_its_runs(tmp_path: Path, sig: signal.Signals) -> None:
    store, rc, err, _ = _stop_driver(tmp_path, sig)
    assert rc == EXPECTED[sig], f"exit code {rc}: {err[-2000:]}"
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and sig.name in lines[0] and "resume" in lines[0], err
    assert "Traceback" not in err
    assert not Path(f"{store}.lock").exists(), "the lock was left behind"
    status = _status(store)
    assert f"state:           stopped ({sig.name}" in status, status
    with CampaignStore.open(store, mode="r") as st:
        assert st.final_runs() == []
        assert st.pending_proposal_ids() == [0, 1], "the runs in flight are not pending proposals"


@pytest.mark.parametrize("mode", ["async", "sync"])
def test_resume_after_sigterm_runs_the_same_points(tmp_path: Path, mode: str) -> None:
    store, rc, err, marker = _stop_driver(tmp_path, signal.SIGTERM, mode=mode)
    assert rc == 143, err
    with CampaignStore.open(store, mode="r") as st:
        points = {p.proposal_id: list(p.unit) for p in st.proposals()}
    (tmp_path / "fast").touch()
    res = cli("resume", str(store), "--no-progress")
    assert res.returncode == 0, res.stderr
    assert _simulators(marker) == []
    with CampaignStore.open(store, mode="r") as st:
        assert {p.proposal_id: list(p.unit) for p in st.proposals()} == points, "resume proposed new points"
        final = sorted(st.final_runs(), key=lambda r: r.proposal_id)
        assert [r.proposal_id for r in final] == [0, 1]
        assert [r.status for r in final] == ["ok", "ok"]
        assert st.state()[0] == "completed"


def test_grace_lets_in_flight_runs_finish(tmp_path: Path) -> None:
    """``campaign.stop.grace = 60``: the 2 s runs in flight at the SIGTERM finish and are stored."""
    (tmp_path / "short").touch()
    marker = uuid.uuid4().hex
    wf = _workflow(tmp_path, marker, grace=60)
    proc = start_cli("run", str(wf), "--no-progress")
    try:
        wait_until("both runs in flight", lambda: len(_simulators(marker)) >= 2, proc)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        reap(proc)
        _kill_all(_simulators(marker))
    assert proc.returncode == 143, err
    store = wf.with_suffix(".h5")
    assert not Path(f"{store}.lock").exists()
    with CampaignStore.open(store, mode="r") as st:
        assert sorted(r.proposal_id for r in st.final_runs()) == [0, 1], "the runs in flight were not stored"
        assert st.state()[0] == "stopped"
