"""A Python simulator's timeout kills the call: the run ends as ``timeout`` and nothing is left running.

Real parts: a :class:`distributed.LocalCluster` of one Nanny worker process
with one thread, a simulator (``hang_sims:hang``) that sleeps for 600 s, and
psutil over the machine's processes. Each waits for a result is bounded, so a
call that is not killed fails the test with an assertion instead of hanging
the suite.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from surrogate_al.simulation import PythonSimulator, SimulationResult

from .hang_sims import HANG_DIR_ENV, hang
from .helpers import FAULTS_DIR

# Far longer than a killed call needs (start of the child + the timeout + the kill), far
# shorter than the hang: a call that is not killed fails here.
WAIT = 60.0
INPUTS = {"x1": 0.25, "x2": 0.5}


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _started_pids(directory: Path) -> list[int]:
    return sorted(int(p.name) for p in directory.iterdir())


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """A client of a one-worker, one-thread LocalCluster whose worker imports ``hang_sims``."""
    from distributed import Client, LocalCluster

    marks = tmp_path / "marks"
    marks.mkdir()
    monkeypatch.setenv(HANG_DIR_ENV, str(marks))
    # Spawned worker processes start with this process's sys.path.
    monkeypatch.syspath_prepend(str(FAULTS_DIR))
    cluster = LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0"
    )
    try:
        with Client(cluster) as c:
            yield c
    finally:
        cluster.close(timeout=30)


def _result(future: object, what: str) -> SimulationResult:
    from distributed import TimeoutError as DaskTimeoutError

    try:
        return future.result(timeout=WAIT)  # type: ignore[attr-defined]
    except (DaskTimeoutError, TimeoutError):
        raise AssertionError(f"{what} did not come back within {WAIT} s: the timeout did not stop the call") from None


def test_a_hung_python_simulator_is_killed_at_its_timeout_and_the_worker_goes_on(
    client: object, tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    hung = PythonSimulator("hang_sims:hang", ["x1", "x2"], ["y"], timeout=2)
    res = _result(client.submit(hung, INPUTS, "hang-0", pure=False), "the hung run")  # type: ignore[attr-defined]
    assert res.status == "timeout", (res.status, res.reason)
    assert "killed" in res.reason and "2.0 s" in res.reason, res.reason
    assert res.outputs == {}
    started = _started_pids(marks)
    assert len(started) == 1, started
    assert not _alive(started[0]), f"the hung call's process {started[0]} still runs"

    # The worker's only thread is free: the next run is served at once.
    quick = PythonSimulator("hang_sims:quick", ["x1", "x2"], ["y"], timeout=30)
    res = _result(client.submit(quick, INPUTS, "quick-1", pure=False), "the run after the hung one")  # type: ignore[attr-defined]
    assert res.status == "ok" and res.outputs == {"y": 0.75}, (res.status, res.reason)


def _call_bounded(sim: PythonSimulator, what: str) -> SimulationResult:
    """``sim(INPUTS)`` in a daemon thread, waited for at most WAIT seconds."""
    results: list[SimulationResult] = []
    thread = threading.Thread(target=lambda: results.append(sim(INPUTS, run_id="direct")), daemon=True)
    thread.start()
    thread.join(WAIT)
    if not results:
        raise AssertionError(f"{what} did not return within {WAIT} s: the timeout did not stop the call")
    return results[0]


def test_the_timeout_kills_a_callable_passed_by_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In the calling process (no Dask): a function object, not a reference string, is killed too."""
    marks = tmp_path / "marks"
    marks.mkdir()
    monkeypatch.setenv(HANG_DIR_ENV, str(marks))
    res = _call_bounded(PythonSimulator(hang, ["x1", "x2"], ["y"], timeout=1), "the hung call")
    assert res.status == "timeout", (res.status, res.reason)
    (pid,) = _started_pids(marks)
    assert pid != os.getpid() and not _alive(pid)


def test_a_child_call_reports_what_the_function_did(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a timeout the statuses are those of the in-process call: ok, failed with the traceback, invalid."""
    marks = tmp_path / "marks"
    marks.mkdir()
    monkeypatch.setenv(HANG_DIR_ENV, str(marks))
    monkeypatch.syspath_prepend(str(FAULTS_DIR))  # the child starts with this process's sys.path
    ok = PythonSimulator("hang_sims:quick", ["x1", "x2"], ["y"], timeout=30)(INPUTS)
    assert ok.status == "ok" and ok.outputs == {"y": 0.75}, ok.reason
    (pid,) = _started_pids(marks)
    assert pid != os.getpid(), "with a timeout the call runs in a child process"
    failed = PythonSimulator("hang_sims:quick", ["x1", "x2"], ["y"], timeout=30)({"x1": "a", "x2": 1.0})
    assert failed.status == "failed" and failed.reason.startswith("TypeError"), failed.reason
    assert "Traceback" in failed.stderr_tail
    missing = PythonSimulator("hang_sims:no_such_function", ["x1", "x2"], ["y"], timeout=30)(INPUTS)
    assert missing.status == "failed" and "cannot import 'hang_sims:no_such_function'" in missing.reason
    invalid = PythonSimulator("hang_sims:quick", ["x1", "x2"], ["z"], timeout=30)(INPUTS)
    assert invalid.status == "invalid", invalid.reason
