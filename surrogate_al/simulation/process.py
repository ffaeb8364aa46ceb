"""Child processes in their own process group: start, time out, stop, leave nothing behind.

POSIX only (``os.killpg``). The child leads a new session (``start_new_session``),
so its process group id is its pid and every process it starts in the
background belongs to that group unless it deliberately makes a session of
its own (a daemon), which is out of reach.

On Linux the child is also started with ``PR_SET_PDEATHSIG = SIGKILL``: it
dies when the thread that started it ends, which is the thread waiting for
it (:func:`wait_and_reap`), so in practice when the worker process dies,
even by SIGKILL. That signal reaches the leader only; the rest of its group
is killed by :func:`kill_recorded_groups` when the run is started again on
that host, or by the driver on a stop signal (same host).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Protocol

import psutil

__all__ = ["kill_recorded_groups", "leader_start_time", "signal_name", "start_in_group", "wait_and_reap"]

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with_parent_hook() -> Callable[[], None] | None:
    """A ``preexec_fn`` that sets ``PR_SET_PDEATHSIG = SIGKILL`` (Linux), or None elsewhere.

    ``preexec_fn`` runs between fork and exec, where a threaded parent's
    locks may be held by threads that do not exist in the child. The hook
    therefore does nothing that takes a lock: the C function and its
    arguments are resolved here, in the parent, and the child makes one
    ``prctl`` call and one ``getppid`` call.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    option, sig = ctypes.c_int(_PR_SET_PDEATHSIG), ctypes.c_ulong(signal.SIGKILL)
    zero = ctypes.c_ulong(0)
    parent = os.getpid()

    def hook() -> None:
        prctl(option, sig, zero, zero, zero)
        if os.getppid() != parent:  # the parent died before the prctl: nobody waits for this run
            os._exit(1)

    return hook


def start_in_group(
    argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], stdout: IO[bytes], stderr: IO[bytes]
) -> subprocess.Popen[bytes]:
    """Start ``argv`` (no shell) as the leader of a new session, stdin from ``/dev/null``.

    Raises:
        OSError: the program cannot be started (not found, not executable, ...).
        ValueError: an argument cannot be passed to ``exec`` (e.g. a NUL byte).
    """
    # No shell; setsid via start_new_session; the only preexec_fn is the lock-free pdeathsig hook.
    return subprocess.Popen(
        list(argv),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        env=dict(env),
        start_new_session=True,
        preexec_fn=_die_with_parent_hook(),  # noqa: PLW1509 -- lock-free, see _die_with_parent_hook
        close_fds=True,
        shell=False,
    )


def leader_start_time(pid: int) -> float:
    """The start time of process ``pid`` (epoch seconds), 0 when it has exited."""
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return 0.0


class _Recorded(Protocol):
    """What a recorded start needs to be found again: host, group and leader start time."""

    @property
    def host(self) -> str: ...

    @property
    def pgid(self) -> int: ...

    @property
    def started(self) -> float: ...


def kill_recorded_groups(executions: Iterable[_Recorded], why: str) -> int:
    """SIGKILL the process groups of recorded starts that are still alive on this host.

    A group is killed only when it is the recorded one: its leader is alive
    with the recorded start time, or the leader is gone but members of the
    group remain (Linux does not reuse a pid while it is a live group's id).
    A leader pid reused by an unrelated process is left alone, and so is a
    leader that is a child of this process (a start of the same run id that
    another thread here is waiting for).

    Args:
        executions: recorded starts (:class:`~surrogate_al.simulation.rundir.Execution`).
        why: names the occasion in the log message.

    Returns:
        How many groups were killed.
    """
    host = socket.gethostname()
    killed = 0
    for ex in executions:
        if ex.host != host or ex.pgid <= 1 or not _signal_group(ex.pgid, 0):
            continue
        try:
            leader = psutil.Process(ex.pgid)
            same = ex.started > 0 and abs(leader.create_time() - ex.started) < 0.1 and os.getpgid(ex.pgid) == ex.pgid
            # A child of this process is a start another thread here still waits for, not a leftover.
            same = same and leader.ppid() != os.getpid()
        except (psutil.NoSuchProcess, ProcessLookupError):
            same = True  # leaderless group: only the recorded run's members can hold this id
        except (psutil.Error, OSError):
            same = False
        if same and _signal_group(ex.pgid, signal.SIGKILL):
            logger.info("%s: killed process group %d", why, ex.pgid)
            _wait_group_gone(ex.pgid)
            killed += 1
    return killed


def wait_and_reap(proc: subprocess.Popen[bytes], timeout: float | None, kill_grace: float, run_id: str) -> bool:
    """Wait for ``proc``; stop its group past ``timeout``; kill what it left behind.

    Args:
        proc: a process started by :func:`start_in_group`.
        timeout: seconds to wait (``None``: no limit).
        kill_grace: seconds between SIGTERM and SIGKILL on a timeout.
        run_id: names the run in log messages.

    Returns:
        Whether the run timed out. On return the leader is reaped and no live
        process of its group is left (within a short wait after SIGKILL).
    """
    timed_out = False
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        logger.info("run %s: timed out after %s s; stopping process group %d", run_id, timeout, proc.pid)
        _terminate_group(proc, kill_grace)
    finally:
        if proc.returncode is None:  # interrupted while waiting: leave nothing running
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
        # The leader is gone; background processes it left behind must not outlive the run.
        if _signal_group(proc.pid, signal.SIGKILL):
            logger.debug("run %s: killed processes left in group %d", run_id, proc.pid)
            _wait_group_gone(proc.pid)
    return timed_out


def _terminate_group(proc: subprocess.Popen[bytes], kill_grace: float) -> None:
    """SIGTERM the group, wait up to ``kill_grace`` for it to empty, then SIGKILL it."""
    pgid = proc.pid  # start_new_session: the child leads its own group
    _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + kill_grace
    while time.monotonic() < deadline:
        # Reap the leader first: a zombie leader still counts as a group member.
        if proc.poll() is not None and not _group_has_live_members(pgid):
            return
        time.sleep(0.05)
    _signal_group(pgid, signal.SIGKILL)
    proc.wait()


def _signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to process group ``pgid``; False when the group no longer exists."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        # Happens on macOS for a group made only of zombies; nothing left to stop.
        return False
    return True


def _group_has_live_members(pgid: int) -> bool:
    """Whether process group ``pgid`` still has a member that is not a zombie.

    ``killpg(pgid, 0)`` alone is not enough: a killed grandchild is re-parented
    to init and stays a zombie (still a group member) until init reaps it,
    which some container inits do late or never. Zombies run nothing, so they
    do not count. The process table is scanned only while the group exists.
    """
    if not _signal_group(pgid, 0):
        return False
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                return True
        except (OSError, psutil.Error):
            continue  # exited (or not ours to inspect) while we looked
    return False


def _wait_group_gone(pgid: int, limit: float = 2.0) -> None:
    """Wait (briefly) until no live process of group ``pgid`` is left after a SIGKILL.

    ``kill`` returns before the targets have died; waiting makes "nothing left
    behind" true when the run's result is returned.
    """
    deadline = time.monotonic() + limit
    while _group_has_live_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.005)


def signal_name(returncode: int) -> str:
    """``"SIGKILL"`` for a return code of -9 (the name of the signal that ended a process)."""
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"
