"""Stopping a running campaign on SIGTERM, SIGINT or SIGUSR1: one path for all three.

A batch system ends a driver with SIGTERM (``scancel``, the walltime,
preemption), may warn it with SIGUSR1 ahead of the walltime
(``sbatch --signal=USR1@120``), and a user presses Ctrl-C (SIGINT). Each
handler raises :class:`StopSignal` (a :class:`KeyboardInterrupt`, so
whatever already stopped cleanly on Ctrl-C stops the same way) in the main
thread. The loop then stops launching, lets the runs in flight finish for
``campaign.stop.grace`` seconds, cancels the rest and kills their process
groups (:func:`settle_in_flight`); the runs it cancelled stay pending
proposals, which ``resume`` runs again at the same points.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from distributed import Future

    from surrogate_al.campaign.state import Trial
    from surrogate_al.simulation import Simulator

__all__ = ["EXIT_CODES", "STOP_SIGNALS", "StopSignal", "exit_code", "handle_stop_signals", "settle_in_flight"]

logger = logging.getLogger(__name__)

#: The signals that stop a campaign.
STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)

#: The CLI's exit code per stop signal: 128 + the signal number, as a shell reports a death by it.
EXIT_CODES: Mapping[int, int] = {int(s): 128 + int(s) for s in STOP_SIGNALS}

#: Seconds a stop waits for the tasks of killed process groups to end before cancelling them.
KILLED_RUN_WAIT_S = 5.0

# While False, a stop signal is noted but raises nothing: the stop is being recorded.
_raise_on_signal = True


class StopSignal(KeyboardInterrupt):
    """A stop signal arrived; ``signum`` says which (SIGINT for a plain Ctrl-C)."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        self.signum = int(signum)
        super().__init__(self.name)

    @property
    def name(self) -> str:
        """``"SIGTERM"``, ``"SIGINT"`` or ``"SIGUSR1"``."""
        return signal.Signals(self.signum).name


def exit_code(exc: BaseException) -> int:
    """The CLI's exit code for a stop by ``exc`` (a :class:`StopSignal` or a plain KeyboardInterrupt)."""
    return EXIT_CODES.get(exc.signum if isinstance(exc, StopSignal) else int(signal.SIGINT), 130)


def _handler(signum: int, frame: FrameType | None) -> None:
    global _raise_on_signal
    if _raise_on_signal:
        # One stop at a time: recording it (the end state, the lock) must not be cut short.
        _raise_on_signal = False
        raise StopSignal(signum)
    logger.info("%s while the stop is being recorded: ignored", signal.Signals(signum).name)


@contextlib.contextmanager
def handle_stop_signals() -> Iterator[None]:
    """Within the block, SIGTERM, SIGINT and SIGUSR1 raise :class:`StopSignal` in the main thread.

    Outside the main thread (where Python cannot install handlers) it does nothing.
    """
    global _raise_on_signal
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _handler) for s in STOP_SIGNALS}
    _raise_on_signal = True
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)
        _raise_on_signal = True


@contextlib.contextmanager
def _signals_armed(armed: bool) -> Iterator[None]:
    """Within the block a stop signal raises (``armed``) or is ignored; afterwards it is ignored."""
    global _raise_on_signal
    _raise_on_signal = armed
    try:
        yield
    finally:
        _raise_on_signal = False


def settle_in_flight(
    running: Mapping[Future, tuple[Trial, float]],
    *,
    grace: float,
    harvest: Callable[[Future, Trial, float], Any],
    cancel: Callable[[list[Future]], None],
    simulator: Simulator,
    run_name: Callable[[Trial], str],
) -> tuple[int, int]:
    """After a stop signal: let the runs in flight finish for ``grace`` s, then cancel and kill the rest.

    A second signal during the grace ends the wait; a signal at any other
    time, until :func:`handle_stop_signals` ends, is ignored: the stop must be
    recorded and the lock released.

    Args:
        running: the in-flight futures with their trial and submission time.
        grace: seconds the runs may take to finish (``campaign.stop.grace``).
        harvest: records a finished run (the loop's tell).
        cancel: cancels futures on the cluster.
        simulator: the campaign's simulator; a script simulator's run
            directories name the process groups to kill.
        run_name: the name of a trial's run (its run directory's name).

    Returns:
        How many runs finished during the grace and how many were stopped.
    """
    pending = dict(running)
    finished = 0
    if grace > 0 and pending:
        logger.info("stop signal: waiting up to %g s for %d runs in flight", grace, len(pending))
        deadline = time.monotonic() + grace
        try:
            while pending and time.monotonic() < deadline:
                with _signals_armed(True):
                    done = [f for f in pending if f.done()]
                    time.sleep(0.05)
                for future in done:
                    trial, submitted = pending.pop(future)
                    harvest(future, trial, submitted)
                    finished += 1
        except StopSignal:
            logger.info("a second stop signal: the grace ends")
    with _signals_armed(False):
        stopped = list(pending)
        if stopped:
            # Killed first, so the tasks end on their own and cancelling a running task (which
            # Dask workers log as a warning on the driver's terminal) is left for what is not
            # a recorded process group: Python simulators, runs not started yet.
            if _kill_run_groups(simulator, [run_name(pending[f][0]) for f in stopped]):
                deadline = time.monotonic() + KILLED_RUN_WAIT_S
                while not all(f.done() for f in stopped) and time.monotonic() < deadline:
                    time.sleep(0.01)
            cancel(stopped)
    return finished, len(stopped)


def _kill_run_groups(simulator: Simulator, run_ids: list[str]) -> int:
    """Kill the process groups this host's script runs ``run_ids`` recorded; returns how many.

    Only the script simulator has run directories that record process
    groups; for others nothing is killed here.
    """
    from surrogate_al.simulation import ScriptSimulator
    from surrogate_al.simulation.process import kill_recorded_groups
    from surrogate_al.simulation.rundir import read_executions

    if not isinstance(simulator, ScriptSimulator):
        return 0
    root = Path(simulator.workdir_root)
    return sum(kill_recorded_groups(read_executions(root, r), f"stopping run {r}") for r in run_ids)
