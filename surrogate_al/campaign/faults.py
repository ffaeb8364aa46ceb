"""What a finished Dask future becomes in the store: a result, a ``lost`` run, or a lost scheduler.

* A run that returned: its :class:`~surrogate_al.simulation.SimulationResult`,
  recorded with the worker that ran it, once the outcome's task key, proposal
  id and attempt are those this driver submitted.
* An outcome for another run (its key, proposal or attempt differ: a task of
  another campaign or driver under the same key): never stored as this
  proposal's output. It becomes a driver-side ``failed`` result whose reason
  names both runs, logged as an error; the retry runs under a new key.
* ``KilledWorker`` (the run's worker died on every one of its tries): a
  driver-side failure that settles the proposal with status ``lost``. Dask has
  already re-run it as often as ``simulator.retries`` allows
  (:func:`worker_death_tries`), so the campaign does not retry it again.
* Any other task error: a driver-side ``failed`` result, retried like a
  failure the simulator reported.
* A cancelled future (the scheduler was lost) is no result and is never
  stored: :class:`~surrogate_al.errors.CampaignError` names the scheduler and
  the resume command.
"""

from __future__ import annotations

import logging
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from surrogate_al.dispatch.runs import RunOutcome
from surrogate_al.errors import CampaignError
from surrogate_al.simulation import SimulationResult

if TYPE_CHECKING:
    from distributed import Future

__all__ = ["FAILED_STATUSES", "FinishedRun", "finished_run", "worker_death_tries"]

#: Statuses of a settled run that are not a success ("invalid": the run finished but
#: its output was unusable; "lost": its worker died on every try).
FAILED_STATUSES = ("failed", "timeout", "invalid", "lost")

logger = logging.getLogger(__name__)


def worker_death_tries(retries: int) -> int:
    """How many times a run may take its worker down before it settles as ``lost``.

    ``1 + max(1, retries)``: the worker deaths a run may cause follow
    ``simulator.retries`` like every other failure, except that a worker death
    always gets one re-run even with ``retries = 0``. A worker that dies takes
    down every run it holds (all threads of the process, and runs queued on
    it); only one of them caused it, and Dask cannot tell which, so one death
    must not settle the others.
    """
    return 1 + max(1, int(retries))


def worker_died_reason(exc: BaseException) -> str:
    """The stored reason of a run whose worker died on every try (from ``KilledWorker``)."""
    tries = getattr(exc, "allowed_failures", None)
    last = getattr(getattr(exc, "last_worker", None), "address", "")
    count = f" on all {tries + 1} tries" if isinstance(tries, int) else ""
    where = f"; last worker {last}" if last else ""
    return (
        f"worker died while running it{count} (its worker process was gone each time: a crash, a signal "
        f"or the memory limit){where}"
    )


def driver_side_failure(reason: str, submit_time: float) -> SimulationResult:
    """A failed result for a run whose worker never sent one (it died, or the task broke)."""
    return SimulationResult(
        status="failed", reason=reason, host=socket.gethostname(), started_at=submit_time, finished_at=time.time()
    )


@dataclass(frozen=True)
class FinishedRun:
    """What :meth:`~surrogate_al.campaign.Campaign.tell` records for one finished future.

    Attributes:
        result: the simulator's result, or a driver-side failure.
        worker: the worker that ran it ("" when it never reported back).
        status_override: the status to store instead of ``result.status``.
        final: settle the proposal whatever the retries left (None: decided by
            status and ``simulator.retries``).
    """

    result: SimulationResult
    worker: str = ""
    status_override: str | None = None
    final: bool | None = None


def foreign_outcome_reason(outcome: object, key: str, proposal_id: int, attempt: int) -> str | None:
    """Why ``outcome`` is not the result of the run submitted as ``key``; None when it is.

    Args:
        outcome: what the future returned.
        key: the task key this driver submitted.
        proposal_id: the proposal submitted under it.
        attempt: the attempt submitted under it.
    """
    if not isinstance(outcome, RunOutcome):
        got = f"a {type(outcome).__name__}, not a run outcome"
    elif (outcome.key, outcome.proposal_id, outcome.attempt) != (key, proposal_id, attempt):
        got = f"the outcome of task {outcome.key!r} (proposal {outcome.proposal_id} attempt {outcome.attempt})"
    else:
        return None
    return (
        f"result not accepted: task {key!r} (proposal {proposal_id} attempt {attempt}) returned {got}; "
        "another campaign or driver on this scheduler uses the same task key; its output is not stored"
    )


def finished_run(
    future: Future,
    *,
    proposal_id: int,
    attempt: int,
    submit_time: float,
    scheduler_address: str,
    store_path: str | Path,
) -> FinishedRun:
    """Turn a finished future into what is told (see the module docstring).

    Args:
        future: a done future of :meth:`~surrogate_al.dispatch.Dispatcher.submit`.
        proposal_id: the proposal it ran (named in the lost-scheduler message).
        attempt: the attempt of that proposal it ran.
        submit_time: when it was submitted.
        scheduler_address: the scheduler, named in the lost-scheduler message.
        store_path: the campaign's store, named in the resume command.

    Raises:
        CampaignError: the future was cancelled (the scheduler was lost).
    """
    from asyncio import CancelledError as AsyncCancelledError
    from concurrent.futures import CancelledError

    from distributed import KilledWorker

    try:
        outcome = future.result()
    except KilledWorker as exc:
        return FinishedRun(driver_side_failure(worker_died_reason(exc), submit_time), status_override="lost", final=True)
    except (Exception, AsyncCancelledError) as exc:  # asyncio's is a BaseException
        if isinstance(exc, (CancelledError, AsyncCancelledError)) or future.status == "cancelled":
            # A cancelled future is no result: never store it; resume re-runs the proposal.
            where = f" at {scheduler_address}" if scheduler_address else ""
            raise CampaignError(
                f"lost the Dask scheduler{where} while proposal {proposal_id} was running; "
                f"runs in flight were not recorded and will run again; every finished run is stored: "
                f"`surrogate-al resume {store_path}` continues once a scheduler is reachable"
            ) from exc
        return FinishedRun(driver_side_failure(f"task error {type(exc).__name__}: {exc}", submit_time))
    foreign = foreign_outcome_reason(outcome, str(future.key), proposal_id, attempt)
    if foreign is not None:
        logger.error("%s", foreign)
        return FinishedRun(driver_side_failure(foreign, submit_time))
    # A worker in a batch job is recorded with its job id: "tcp://10.0.0.5:40321 job=123456".
    worker = f"{outcome.worker} job={outcome.job_id}" if outcome.job_id else outcome.worker
    return FinishedRun(outcome.result, worker=worker)
