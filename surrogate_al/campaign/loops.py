"""The campaign on a Dask cluster: the asynchronous and synchronous loops over ask / tell.

Asynchronous mode keeps ``concurrency`` runs in flight and refills a worker as
soon as its run finishes; synchronous mode dispatches a batch, waits for all of
it, refits and proposes the next batch (deterministic for a given seed, also
across a kill and resume).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from surrogate_al.campaign.background import BackgroundProposer, background_model_choice
from surrogate_al.campaign.build import surrogate_options
from surrogate_al.campaign.faults import finished_run, worker_death_tries
from surrogate_al.campaign.lookahead import Lookahead
from surrogate_al.campaign.state import CampaignOutcome, Trial
from surrogate_al.campaign.stop_signals import StopSignal, settle_in_flight
from surrogate_al.campaign.stopping import BudgetReached, StopReason
from surrogate_al.errors import CampaignError, DispatchError, StoreError
from surrogate_al.policies.base import ModelPolicyLike

if TYPE_CHECKING:
    from distributed import Future

    from surrogate_al.campaign.core import Campaign
    from surrogate_al.config import ClusterSpec
    from surrogate_al.dispatch import Dispatcher

__all__ = ["run_async", "run_on_cluster", "run_sync"]

logger = logging.getLogger(__name__)

#: Seconds the asynchronous loop sleeps between looks at its futures and its proposer.
POLL_SECONDS = 0.005

#: A submitted attempt: its future, the trial, and the submission time (epoch seconds).
_Submitted = tuple["Future", Trial, float]


def run_on_cluster(campaign: Campaign) -> CampaignOutcome:
    """:meth:`~surrogate_al.campaign.Campaign.run`: start the cluster, loop, fit the final model, record the end.

    Raises:
        CampaignError: the failure-rate breaker tripped or the cluster was lost.
        KeyboardInterrupt: a stop signal (:class:`~surrogate_al.campaign.stop_signals.StopSignal`
            for SIGTERM, SIGINT, SIGUSR1) or a plain Ctrl-C, after the stop
            was recorded (:func:`_stop_on_signal`); in-flight runs stay
            pending for a resume.
    """
    from surrogate_al.dispatch import Dispatcher

    spec = campaign.spec
    campaign.t0_ = time.monotonic()
    share_cores_with_local_workers(spec.cluster)
    campaign.store.set_state("running")
    dispatcher = Dispatcher(
        spec.cluster,
        spec.campaign.name,
        store_id=campaign.store.store_id,
        gpu_runs=bool(spec.simulator.gpu),
        allowed_failures=worker_death_tries(spec.simulator.retries) - 1,
    )
    try:
        dispatcher.start()
        campaign.scheduler_address_ = dispatcher.scheduler_address
        fit_on_gpu_workers(campaign, dispatcher)
        stop = run_sync(campaign, dispatcher) if spec.campaign.mode == "sync" else run_async(campaign, dispatcher)
        stop = stop or BudgetReached(campaign.budget).reason()
        if stop.fits_final_model:
            campaign.fit_final_model()
    except KeyboardInterrupt as exc:  # a stop signal (stop_signals), or Ctrl-C in a program of the user's
        campaign.end("stopped", _stop_on_signal(campaign, dispatcher, exc))
        raise
    except (CampaignError, DispatchError, StoreError) as exc:
        campaign.end("stopped", str(exc))
        raise
    finally:
        dispatcher.close()
    status = "completed" if stop.completes else "stopped"
    campaign.end(status, stop.text)
    return CampaignOutcome(
        status, stop.text, len(campaign.ledger_.settled), len(campaign.ledger_.X_ok), Path(campaign.store.path)
    )


def _stop_on_signal(campaign: Campaign, dispatcher: Dispatcher, exc: KeyboardInterrupt) -> str:
    """Settle the runs in flight after a stop signal (:func:`~surrogate_al.campaign.stop_signals.settle_in_flight`).

    Runs that finish within ``campaign.stop.grace`` are told; the others are
    cancelled and their process groups killed, and stay pending proposals.
    ``exc`` gains ``stopped_runs`` (how many) for the CLI's line.

    Returns:
        The reason recorded with state ``stopped``, starting with the signal's name.
    """
    name = exc.name if isinstance(exc, StopSignal) else "SIGINT"

    def harvest(future: Future, trial: Trial, submitted: float) -> None:
        if trial.proposal_id not in campaign.in_flight_:
            return  # told before the signal came
        try:
            _harvest(campaign, future, trial, submitted)
        except CampaignError as err:  # the breaker: the campaign is stopping anyway
            logger.info("after %s: %s", name, err)

    # Only what is still in flight: a synchronous batch stays listed after it was told.
    running = {f: (t, s) for f, (t, s) in campaign.running_.items() if t.proposal_id in campaign.in_flight_}
    finished, stopped = settle_in_flight(
        running,
        grace=float(campaign.spec.campaign.stop.grace),
        harvest=harvest,
        cancel=dispatcher.client.cancel if dispatcher.client_ is not None else lambda _: None,
        simulator=campaign.simulator,
        run_name=lambda trial: dispatcher.run_name(trial.proposal_id, trial.attempt),
    )
    campaign.running_ = {}
    exc.stopped_runs = stopped  # type: ignore[attr-defined]
    done = f"{finished} runs finished within the grace, " if finished else ""
    return f"{name}: stopped by a signal; {done}{stopped} runs in flight were stopped and run again on resume"


def fit_on_gpu_workers(campaign: Campaign, dispatcher: Dispatcher) -> None:
    """With ``surrogate.gpu``, refits run as Dask tasks on workers with a ``GPU`` resource."""
    from surrogate_al.dispatch import RemoteFitSurrogate

    policy, spec = campaign.policy, campaign.spec
    if not spec.surrogate.gpu or not isinstance(policy, ModelPolicyLike) or policy.surrogate is None:
        return
    options = surrogate_options(spec, campaign.space.dim)
    options["device"] = "auto"  # the worker's GPU
    surrogate = policy.surrogate
    local = surrogate.local if isinstance(surrogate, RemoteFitSurrogate) else surrogate
    policy.surrogate = RemoteFitSurrogate(local, dispatcher.client, spec.surrogate.kind, options)


def share_cores_with_local_workers(cluster: ClusterSpec) -> None:
    """Leave the local workers their cores: torch in the driver takes only what is left.

    Without this the driver's fits (torch uses every core by default) and
    the simulator processes oversubscribe the machine and both slow down.
    """
    if cluster.kind != "local" or not cluster.processes:
        return
    import torch

    free = max(1, (os.cpu_count() or 1) - int(cluster.workers) * int(cluster.threads_per_worker))
    torch.set_num_threads(min(torch.get_num_threads(), free))


def _harvest(campaign: Campaign, future: Future, trial: Trial, submit_time: float) -> bool:
    """Tell what a finished future became (:mod:`surrogate_al.campaign.faults`); returns whether it settled."""
    run = finished_run(
        future,
        proposal_id=trial.proposal_id,
        attempt=trial.attempt,
        submit_time=submit_time,
        scheduler_address=campaign.scheduler_address_,
        store_path=campaign.store.path,
    )
    return campaign.tell(
        trial, run.result, worker=run.worker, submit_time=submit_time, status_override=run.status_override,
        final=run.final,
    )


def _submit(campaign: Campaign, dispatcher: Dispatcher, trials: Iterable[Trial]) -> list[_Submitted]:
    """Mark each trial submitted (durable), then hand it to the cluster."""
    out = []
    for trial in trials:
        now = time.time()
        with campaign.lock:
            campaign.store.mark_submitted(trial.proposal_id, trial.attempt, now)
        out.append((dispatcher.submit(campaign.simulator, trial.inputs, trial.proposal_id, trial.attempt), trial, now))
    return out


def run_async(campaign: Campaign, dispatcher: Dispatcher) -> StopReason | None:
    """Keep ``concurrency`` runs in flight; refill each worker as soon as its run ends.

    The main thread only tells results and dispatches, so a worker that
    frees up gets a prepared point within milliseconds. Refitting and
    proposing happen in a background thread
    (:class:`~surrogate_al.campaign.background.BackgroundProposer`) that keeps
    prepared points in the queue, two per worker or more when runs are as
    short as a proposal round (:class:`~surrogate_al.campaign.lookahead.Lookahead`),
    passing every point in flight or queued to the policy as pending. Results
    that arrive together are told together, so one refit serves all of them.
    A kind-choosing surrogate's cross-validation runs in a separate process
    meanwhile (:func:`~surrogate_al.campaign.background.background_model_choice`),
    so a round does not stall for the model choice.

    Returns:
        The stop rule's reason, or None when the budget was reached.
    """
    from distributed import as_completed

    concurrency = int(campaign.spec.campaign.concurrency)
    lookahead = Lookahead(concurrency)
    running: dict[Future, tuple[Trial, float]] = {}
    campaign.running_ = running  # what a stop signal settles
    completed = as_completed()

    def track(submitted: list[_Submitted]) -> None:
        for future, trial, t in submitted:
            running[future] = (trial, t)
            completed.add(future)

    def dispatch() -> None:
        # `running` (not in_flight_) decides: a finished run frees its worker before it is told.
        free = concurrency - len(running)
        if free <= 0 or campaign.stop_reason() is not None:
            return
        with campaign.lock:
            trials = campaign.take_queued(free)
        track(_submit(campaign, dispatcher, trials))

    with background_model_choice(campaign.policy) as choice:
        # A proposal round still computing when the loop raises is left behind (a daemon
        # thread): an interrupt must not wait for a fit, and close() keeps it from writing.
        proposer = BackgroundProposer(campaign, lookahead, choice)
        track(_submit(campaign, dispatcher, campaign.ask(concurrency)))
        while not campaign.done():
            if completed.has_ready():
                finished = [(future, *running.pop(future)) for future in completed.next_batch(block=False)]
                # Refill the freed workers first (their next points are already durable
                # proposals), then record the results: the fsyncs no longer delay them.
                dispatch()
                for future, trial, submitted in finished:
                    lookahead.observe_run(time.time() - submitted)
                    _harvest(campaign, future, trial, submitted)
                dispatcher.keep_jobs_up()
            proposer.raise_if_failed()
            dispatch()
            stop = campaign.stop_reason()
            if stop is not None and not running:
                break
            if stop is None and len(campaign.queue_) < lookahead.size and not proposer.busy:
                proposer.start(lookahead.size - len(campaign.queue_))
            if not running and not campaign.queue_ and not proposer.busy and proposer.starved() and not campaign.done():
                raise campaign.stall_error("no runs in flight and the policy proposed none")
            time.sleep(POLL_SECONDS)
        proposer.join()
        proposer.raise_if_failed()
        return campaign.stop_reason() if not campaign.done() else None


def run_sync(campaign: Campaign, dispatcher: Dispatcher) -> StopReason | None:
    """Dispatch a batch, wait for all of it, tell it, and propose the next batch.

    Returns:
        The stop rule's reason, or None when the budget was reached.
    """
    from distributed import wait

    batch_size = int(campaign.spec.campaign.batch_size)
    while not campaign.done():
        reason = campaign.stop_reason()
        if reason is not None:
            return reason
        # The whole initial design (or what a killed driver left) is one batch.
        n = max(batch_size, len(campaign.queue_))
        trials = campaign.ask(n)
        if not trials:
            raise campaign.stall_error("the policy proposed no points")
        while trials:
            batch = _submit(campaign, dispatcher, trials)
            campaign.running_ = {f: (t, submitted) for f, t, submitted in batch}  # what a stop signal settles
            wait([f for f, _, _ in batch])
            retry = []
            for future, trial, submitted in batch:
                if not _harvest(campaign, future, trial, submitted):
                    retry.append(trial.proposal_id)
            dispatcher.keep_jobs_up()
            trials = campaign.ask(len(retry)) if retry else []
    return None
