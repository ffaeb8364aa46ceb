"""Work the asynchronous loop keeps off its main thread: proposal rounds and the model choice.

* :class:`BackgroundProposer` runs :meth:`~surrogate_al.campaign.Campaign.prepare`
  in a thread, one round at a time, so a worker that frees up gets a prepared
  point within milliseconds.
* :class:`BackgroundChoiceExecutor` is one separate process in which a
  kind-choosing surrogate
  (:class:`~surrogate_al.surrogates.selection.KindChoosing`) cross-validates
  its candidates; :func:`background_model_choice` attaches it for the
  loop's duration. The surrogate itself only sees a plain
  :class:`concurrent.futures.Executor`.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING

from surrogate_al.campaign.lookahead import Lookahead
from surrogate_al.policies.base import ModelPolicyLike, PolicyLike
from surrogate_al.surrogates.selection import KindChoosing

if TYPE_CHECKING:
    from surrogate_al.campaign.core import Campaign

__all__ = ["BackgroundChoiceExecutor", "BackgroundProposer", "background_model_choice"]

#: Seconds :meth:`BackgroundChoiceExecutor.terminate` waits for its process to be gone.
TERMINATE_WAIT_SECONDS = 30.0


def _background_process_setup() -> None:
    # The background process shares the machine with the caller and the simulator's
    # workers: one core's worth of work, as the caller's own choice would take.
    import torch

    torch.set_num_threads(1)


class BackgroundChoiceExecutor(ProcessPoolExecutor):
    """One separate process for a surrogate's background model choice, torch on one thread.

    Started with ``spawn`` (as Dask starts its local workers): a script that
    runs a campaign needs the usual ``if __name__ == "__main__":`` guard. The
    process is started at construction, with an empty task, because its start
    (importing torch and BoTorch, seconds on a busy machine) would otherwise
    delay the first choice handed to it. End it with :meth:`terminate`.

    While the caller proposes, :meth:`paused` stops the process, so a
    cross-validation never slows a proposal round: beside a round it would
    take cores the round's fits need, and at the lowest priority instead
    (``nice 19``) it gets no CPU at all beside CPU-bound work, which on a
    local cluster of busy simulators would leave every choice undone.
    """

    def __init__(self) -> None:
        super().__init__(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                         initializer=_background_process_setup)
        self.submit(int)

    def _live_processes(self) -> list[BaseProcess]:
        # The pool's processes: private, but kept since Python 3.2 (3.14 adds terminate_workers()).
        return [p for p in list((getattr(self, "_processes", None) or {}).values()) if p.is_alive()]

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Stop the process (``SIGSTOP``) for the duration of the block, and continue it after.

        A no-op where the platform has no job-control signals.
        """
        stop, cont = getattr(signal, "SIGSTOP", None), getattr(signal, "SIGCONT", None)
        processes = self._live_processes() if stop is not None and cont is not None else []
        stopped = []
        try:
            for process in processes:
                with contextlib.suppress(ProcessLookupError):  # it may have just exited
                    os.kill(process.pid, stop)
                    stopped.append(process)
            yield
        finally:
            for process in stopped:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, cont)

    def terminate(self) -> None:
        """Shut down now: a cross-validation in progress is abandoned, and the process is gone on return.

        ``shutdown`` would let a running cross-validation finish (tens of
        seconds, more on a busy machine), keeping the process and its CPU
        after the campaign ended.
        """
        processes = self._live_processes()
        self.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()
            # A stopped process acts on SIGTERM only once continued.
            with contextlib.suppress(ProcessLookupError, AttributeError):
                os.kill(process.pid, signal.SIGCONT)
        deadline = time.monotonic() + TERMINATE_WAIT_SECONDS
        for process in processes:
            # Polled, not join()ed: the pool's manager thread, woken by shutdown(), joins the
            # same process, and when it reaps it first this thread's join returns at once
            # with the exit status not yet recorded. is_alive() reaps or sees it recorded.
            while process.is_alive() and time.monotonic() < deadline:
                time.sleep(0.01)


@contextlib.contextmanager
def background_model_choice(policy: PolicyLike) -> Iterator[BackgroundChoiceExecutor | None]:
    """While the block runs, a kind-choosing surrogate cross-validates in its own process.

    Cross-validating every candidate takes seconds to tens of seconds; inside
    a proposal round that leaves the workers waiting whenever runs are
    shorter. The process is stopped while a round runs
    (:meth:`BackgroundChoiceExecutor.paused`) and goes when the block ends;
    the final fit chooses in place, on all runs.

    Yields:
        The executor, or None when the policy's surrogate does not choose its
        kind here (no model, a fixed kind, or fits that run on a GPU worker,
        which builds its own surrogate and never uses a local executor).
    """
    from surrogate_al.dispatch import RemoteFitSurrogate

    surrogate = policy.surrogate if isinstance(policy, ModelPolicyLike) else None
    if isinstance(surrogate, RemoteFitSurrogate) or not isinstance(surrogate, KindChoosing):
        yield None
        return
    executor = BackgroundChoiceExecutor()
    surrogate.choose_in_background(executor)
    try:
        yield executor
    finally:
        # The proposer thread may still be in a fit that submits; it then falls back to choosing in place.
        surrogate.choose_in_background(None)
        executor.terminate()


class BackgroundProposer:
    """Runs :meth:`~surrogate_al.campaign.Campaign.prepare` in a thread, one round at a time.

    A round that proposes nothing (the model needs more results, or the
    budget is covered) is not retried until the campaign's state changes, so
    the loop does not spin on it.

    Args:
        campaign: the campaign whose rounds it runs.
        lookahead: told how long each round that proposed something took.
        choice: the background model choice, stopped while a round runs (None: none).
    """

    def __init__(self, campaign: Campaign, lookahead: Lookahead, choice: BackgroundChoiceExecutor | None) -> None:
        self.campaign = campaign
        self.lookahead = lookahead
        self.choice = choice
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.empty_at: tuple[int, int, int] | None = None

    def _state(self) -> tuple[int, int, int]:
        c = self.campaign
        return len(c.ledger_.settled), len(c.in_flight_), len(c.queue_)

    @property
    def busy(self) -> bool:
        """Whether a round is computing."""
        return self.thread is not None and self.thread.is_alive()

    def starved(self) -> bool:
        """Whether the last round proposed nothing and nothing changed since."""
        return self.empty_at == self._state()

    def _paused_choice(self) -> contextlib.AbstractContextManager[None]:
        return self.choice.paused() if self.choice is not None else contextlib.nullcontext()

    def start(self, n: int) -> None:
        """Start a round proposing up to ``n`` points, unless one is running or would propose nothing."""
        state = self._state()
        if self.busy or self.empty_at == state:
            return

        def work() -> None:
            try:
                started = time.perf_counter()
                with self._paused_choice():
                    proposed = self.campaign.prepare(n)
                if proposed:
                    self.lookahead.observe_round(time.perf_counter() - started)
                self.empty_at = None if proposed else state
            except BaseException as exc:  # handed to the main thread, which raises it
                self.error = exc

        self.thread = threading.Thread(target=work, name="surrogate_al-proposer", daemon=True)
        self.thread.start()

    def raise_if_failed(self) -> None:
        """Raise, in the caller's thread, what the last round raised."""
        if self.error is not None:
            error, self.error = self.error, None
            raise error

    def join(self) -> None:
        """Wait for the round in progress, if any."""
        if self.thread is not None:
            self.thread.join()
