"""The campaign: initial design -> dispatch -> record -> refit -> propose, until a stop rule.

:class:`Campaign` is the object that composes the others. Its core is
ask / tell:

* :meth:`Campaign.ask` hands out trials: first proposals already recorded but
  not yet run (the initial design, or runs a killed driver left in flight),
  then new proposals from the policy, with every point still running passed
  to it as pending. Every proposal is durable in the store before it is
  handed out.
* :meth:`Campaign.tell` records one finished attempt (durable before it
  returns), decides whether it settles its proposal or is retried, and keeps
  the training data current.

:meth:`Campaign.run` drives them on a Dask cluster
(:mod:`surrogate_al.campaign.loops`).

Exactly-once: a proposal is settled by exactly one final run record (the
store refuses a second). A resumed campaign re-dispatches the proposals
without one and never re-proposes what was settled.

Faults and what is recorded:

* A run that fails, times out or returns invalid output is recorded as a
  not-final attempt and handed out again, up to ``simulator.retries`` times;
  the last attempt settles the proposal with its status.
* A worker that dies (killed, out of memory, a segfaulting simulator): Dask
  re-runs the tasks it held elsewhere under the same key, so a bystander run
  is recorded once, as if nothing happened. A run whose worker died on every
  try -- ``1 + max(1, simulator.retries)`` tries on a cluster the campaign
  creates (:func:`~surrogate_al.campaign.faults.worker_death_tries`), the
  scheduler's own ``allowed-failures + 1`` on an ``address`` cluster --
  settles with status ``lost`` and a reason starting with "worker died" that
  gives the number of tries. ``lost`` is a failed status
  (:data:`~surrogate_al.campaign.faults.FAILED_STATUSES`): it counts as a
  failure for the breaker, ``count_failed`` and the feasibility model, and is
  never training data; it stays apart from ``failed`` so that a crash of the
  worker process is not mistaken for an error the simulator reported.
* A lost scheduler cancels every future: a cancelled future is never stored;
  :meth:`Campaign.run` raises :class:`~surrogate_al.errors.CampaignError`
  naming the scheduler and the resume command, and a resume re-runs what was
  in flight.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from surrogate_al.campaign.build import build_policy, build_simulator, initial_design_size, load_validation
from surrogate_al.campaign.checkpoint import CheckpointContents, ProposalRound
from surrogate_al.campaign.estimate import ErrorEstimate, estimate_error
from surrogate_al.campaign.state import MIN_POINTS_FOR_MODEL, CampaignOutcome, Ledger, Progress, ProposalPlan, Trial
from surrogate_al.campaign.stopping import FailureBreaker, StopReason, stop_rules
from surrogate_al.data import Dataset
from surrogate_al.errors import CampaignError, StoreError, SurrogateALError
from surrogate_al.policies.base import ModelPolicyLike, Proposal
from surrogate_al.simulation import SimulationResult
from surrogate_al.store.lock import LockLostError
from surrogate_al.surrogates.selection import KindChoosing

if TYPE_CHECKING:
    from distributed import Future

    from surrogate_al.config import WorkflowSpec
    from surrogate_al.store import CampaignStore, Checkpoint
    from surrogate_al.surrogates.base import Surrogate

__all__ = ["Campaign"]

logger = logging.getLogger(__name__)


def _kind_chooser(surrogate: Surrogate | None) -> KindChoosing | None:
    """The part of ``surrogate`` that chooses its kind, if it chooses one.

    A surrogate fitted on GPU workers keeps its choice in its local copy, whose
    state every remote fit starts from.
    """
    from surrogate_al.dispatch import RemoteFitSurrogate

    local = surrogate.local if isinstance(surrogate, RemoteFitSurrogate) else surrogate
    return local if isinstance(local, KindChoosing) else None


class Campaign:
    """An active-learning campaign bound to one store.

    Build one with :meth:`create` (new store from a workflow spec) or
    :meth:`resume` (existing store); then call :meth:`run`, or drive it by
    hand with :meth:`ask` / :meth:`tell`.

    Args:
        spec: the validated workflow spec.
        store: the open campaign store (writable).
        on_progress: called with a :class:`~surrogate_al.campaign.state.Progress`
            after every settled run.

    Attributes:
        lock: guards the bookkeeping and the store: the asynchronous loop
            proposes in a background thread while the main thread tells
            results and dispatches.
        scheduler_address_: the Dask scheduler of the current :meth:`run`
            (named in the lost-scheduler message).
    """

    def __init__(
        self, spec: WorkflowSpec, store: CampaignStore, *, on_progress: Callable[[Progress], None] | None = None
    ) -> None:
        self.spec = spec
        self.store = store
        self.on_progress = on_progress
        self.space = spec.space()
        self.output_names: tuple[str, ...] = tuple(spec.simulator.outputs)
        self.simulator = build_simulator(spec, self.space)
        self.policy = build_policy(spec, self.space)
        self.validation_ = (
            load_validation(spec.validation.file, self.space, self.output_names) if spec.validation is not None else None
        )
        c = spec.campaign
        self.stop_rules = stop_rules(c)
        self.breaker = FailureBreaker(int(c.min_runs_for_breaker), float(c.max_failure_fraction))
        self.ledger_ = Ledger()
        self.queue_: deque[int] = deque()
        self.in_flight_: dict[int, Trial] = {}
        # The running loop's submitted futures, (trial, submit time) each: what a stop signal settles.
        self.running_: dict[Future, tuple[Trial, float]] = {}
        self.units_: dict[int, NDArray[np.float64]] = {}
        self.model_version_ = 0
        self.fitted_on_ = -1  # number of ok results the surrogate was last fitted on
        self.next_batch_id_ = 0
        self.estimated_error_ = math.nan
        self.last_lambda_ = math.nan
        self.session_settled_ = 0
        self.session_failed_ = 0
        self.scheduler_address_ = ""
        self.t0_ = time.monotonic()
        self.lock = threading.RLock()
        self._closing = False
        self._restore()

    # ------------------------------------------------------------------------------------
    # construction
    @classmethod
    def create(
        cls, spec: WorkflowSpec, *, force: bool = False, on_progress: Callable[[Progress], None] | None = None
    ) -> Campaign:
        """Start a new campaign: create its store and record the initial design."""
        from surrogate_al.store import CampaignStore

        space = spec.space()
        store_path = Path(spec.campaign.store)
        store_path.parent.mkdir(parents=True, exist_ok=True)
        store = CampaignStore.create(
            store_path,
            spec=spec.to_dict(),
            input_names=space.names,
            output_names=tuple(spec.simulator.outputs),
            force=force,
        )
        try:
            campaign = cls(spec, store, on_progress=on_progress)
            campaign._record_initial_design()
            store.add_event("started", f"budget {spec.campaign.budget}, mode {spec.campaign.mode}")
        except BaseException:
            store.close()
            raise
        return campaign

    @classmethod
    def from_workflow(cls, path: str | Path, *, force: bool = False, **kwargs: Any) -> Campaign:
        """:meth:`create` from a workflow file."""
        from surrogate_al.config import load_workflow

        return cls.create(load_workflow(path), force=force, **kwargs)

    @classmethod
    def resume(
        cls, path: str | Path, *, force_unlock: bool = False, on_progress: Callable[[Progress], None] | None = None
    ) -> Campaign:
        """Reopen a campaign from its store: data, pending runs, surrogate and policy state."""
        from surrogate_al.config import spec_from_dict
        from surrogate_al.store import CampaignStore

        store = CampaignStore.open(path, mode="a", force_unlock=force_unlock)
        try:
            spec = spec_from_dict(store.spec)
            campaign = cls(spec, store, on_progress=on_progress)
            store.add_event("resumed", f"{len(campaign.ledger_.settled)} settled, {len(campaign.queue_)} to re-dispatch")
        except BaseException:
            store.close()
            raise
        return campaign

    def _restore(self) -> None:
        """Rebuild the in-memory state from the store (a no-op for a new store)."""
        proposals = self.store.proposals()
        self.units_ = {p.proposal_id: np.asarray(p.unit, dtype=float) for p in proposals}
        for run in self.store.runs():
            self.ledger_.attempts[run.proposal_id] = max(self.ledger_.attempts.get(run.proposal_id, 0), run.attempt)
            if run.final:
                self.ledger_.settle(run.proposal_id, run.status, self.units_[run.proposal_id], run.outputs)
        self.queue_.extend(self.store.pending_proposal_ids())
        self.next_batch_id_ = 1 + max((p.batch_id for p in proposals), default=-1)
        checkpoint = self.store.latest_checkpoint()
        if checkpoint is not None:
            self._load_checkpoint(checkpoint)

    def _load_checkpoint(self, checkpoint: Checkpoint) -> None:
        contents = CheckpointContents.from_record(checkpoint)
        self.policy.load_state_dict(contents.policy_state)
        surrogate = self._surrogate()
        if contents.surrogate_state is not None and surrogate is not None:
            surrogate.load_state_dict(contents.surrogate_state)
            self.fitted_on_ = contents.n_results
        self.model_version_ = contents.version
        logger.info("restored checkpoint %d (fitted on %d results)", contents.version, contents.n_results)
        lost = contents.round
        if lost is not None and lost.first_id == len(self.units_):
            # A kill came between this checkpoint and its round's proposals (see prepare()):
            # record them now, as the uninterrupted campaign did.
            logger.warning("recording the %d proposals of the round a kill interrupted", len(lost.unit))
            self._record_proposals(lost.unit, source=lost.source, scores=lost)

    def _record_initial_design(self) -> None:
        c = self.spec.campaign
        # One rule for the size: build_policy also uses it (a Sobol policy continues after the design).
        size = initial_design_size(self.spec, self.space.dim)
        unit = self.space.design_unit(c.initial_design.kind, size, seed=c.seed)
        self._record_proposals(unit, source="initial")

    def _record_proposals(
        self, unit: NDArray[np.float64], *, source: str, scores: Proposal | ProposalRound | None = None
    ) -> list[int]:
        """Record ``q x d`` unit-cube points as one batch of proposals (durable) and queue them."""
        inputs = self.space.from_unit(unit)
        recorded: dict[str, Any] = {}
        if scores is not None:
            recorded = {"U": scores.U, "D": scores.D, "J": scores.J, "lam": float(scores.lam)}
            self.last_lambda_ = float(scores.lam)
        ids = self.store.add_proposals(
            inputs, unit, batch_id=self.next_batch_id_, surrogate_version=self.model_version_, source=source, **recorded
        )
        self.next_batch_id_ += 1
        self.units_.update(zip(ids, np.asarray(unit, dtype=float)))
        self.queue_.extend(ids)
        return ids

    # ------------------------------------------------------------------------------------
    # bookkeeping
    def _surrogate(self) -> Surrogate | None:
        """The policy's surrogate (None for a model-free policy)."""
        return self.policy.surrogate if isinstance(self.policy, ModelPolicyLike) else None

    @property
    def budget(self) -> int:
        """Settled runs the campaign aims for."""
        return int(self.spec.campaign.budget)

    def counted(self) -> int:
        """Settled runs that count toward the budget (failures too unless ``count_failed`` is off)."""
        return self.ledger_.counted(bool(self.spec.campaign.count_failed))

    def dataset(self) -> Dataset:
        """The successful runs (and failed points) in unit-cube coordinates."""
        return self.ledger_.dataset(self.space.dim, len(self.output_names))

    def progress(self) -> Progress:
        """Where the campaign stands now."""
        return Progress(
            settled=len(self.ledger_.settled),
            budget=self.budget,
            in_flight=len(self.in_flight_),
            failed=self.ledger_.n_failed_settled,
            estimated_error=self.estimated_error_,
            lam=self.last_lambda_,
            elapsed=time.monotonic() - self.t0_,
        )

    def done(self) -> bool:
        """Whether the budget is reached and nothing is left to run."""
        return self.counted() >= self.budget and not self.in_flight_

    def stop_reason(self) -> StopReason | None:
        """The first stop rule that says stop now (wall time, then target error), or None."""
        progress = self.progress()
        for rule in self.stop_rules:
            reason = rule.check(progress)
            if reason is not None:
                return reason
        return None

    # ------------------------------------------------------------------------------------
    # model
    def _estimate(self, data: Dataset) -> ErrorEstimate | None:
        surrogate = self._surrogate()
        return None if surrogate is None else estimate_error(surrogate, self.space, data, self.validation_)

    def refit(self) -> None:
        """Fit the surrogate on all successful runs now and record the estimated error."""
        with self.lock:
            data = self.dataset()
        self.policy.fit(data)
        error = self._estimate(data)
        with self.lock:
            self._record_fit(data.n, error)

    def fit_final_model(self) -> bool:
        """Fit the surrogate on every successful run and checkpoint it: the model the campaign delivers.

        Proposal rounds fit on the runs finished by then, so a campaign's last
        results arrive after its last fit; without this the stored surrogate
        (``report``, ``predict``,
        :func:`~surrogate_al.campaign.build.restore_surrogate`) would miss
        them. A surrogate that chooses its kind
        (:class:`~surrogate_al.surrogates.selection.KindChoosing`) chooses
        afresh here, on all the runs. A fit that fails is logged and the last
        round's model stays stored: the runs are safe, and a resume tries again.

        Returns:
            Whether a fit was made (not when the policy has no model, there are
            too few runs, or the stored model was fitted on all of them and,
            for a kind-choosing surrogate, chosen on all of them).
        """
        if not self.policy.needs_model:
            return False
        with self.lock:
            data = self.dataset()
        if data.n < MIN_POINTS_FOR_MODEL:
            return False
        chooser = _kind_chooser(self._surrogate())
        chosen_on = chooser.selected_at_n_ if chooser is not None else data.n
        if self.fitted_on_ == data.n and chosen_on == data.n:
            return False
        if chooser is not None:
            chooser.choose_again()
        try:
            self.refit()
        except StoreError:
            raise
        except (SurrogateALError, RuntimeError) as exc:  # the surrogates' data errors, numerical breakdowns, GPU memory
            logger.warning("the final fit on %d runs failed (%s); the stored surrogate is the last round's", data.n, exc)
            return False
        with self.lock:
            self.checkpoint()
        logger.info("final fit on %d runs (model version %d)", data.n, self.model_version_)
        return True

    def _record_fit(self, n: int, error: ErrorEstimate | None) -> None:
        self.model_version_ += 1
        self.fitted_on_ = n
        if error is not None:
            self.estimated_error_ = error.value
            self.store.add_metric(n_results=n, name=error.name, value=error.value)

    def checkpoint(self, round_: ProposalRound | None = None) -> None:
        """Save the surrogate and policy state (durable) with the model version.

        Args:
            round_: the proposal round this state was saved for; a resumed
                campaign records it if a kill came before the proposals were.
        """
        surrogate = self._surrogate()
        contents = CheckpointContents(
            version=self.model_version_,
            n_results=max(self.fitted_on_, 0),
            surrogate_state=surrogate.state_dict() if surrogate is not None and self.fitted_on_ >= 0 else None,
            policy_state=dict(self.policy.state_dict()),
            round=round_,
        )
        surrogate_state, policy_state = contents.payloads()
        self.store.save_checkpoint(version=contents.version, n_results=contents.n_results,
                                   surrogate_state=surrogate_state, policy_state=policy_state)

    # ------------------------------------------------------------------------------------
    # ask / tell
    def _make_trial(self, proposal_id: int, unit: NDArray[np.float64]) -> Trial:
        attempt = self.ledger_.attempts.get(proposal_id, 0) + 1
        self.ledger_.attempts[proposal_id] = attempt
        inputs = dict(zip(self.space.names, (float(v) for v in self.space.from_unit(unit[None, :])[0])))
        trial = Trial(proposal_id=proposal_id, attempt=attempt, inputs=inputs, unit=unit)
        self.in_flight_[proposal_id] = trial
        return trial

    def ask(self, n: int) -> list[Trial]:
        """Up to ``n`` trials to run now (fewer when the budget or the data do not allow more).

        Hands out recorded-but-unsettled proposals first (retries, the initial
        design, runs a killed driver left, points prepared ahead), then asks
        the policy for new ones. Every proposal is durable in the store before
        it is handed out.
        """
        with self.lock:
            trials = self.take_queued(n)
        if len(trials) < n:
            self.prepare(n - len(trials))
            with self.lock:
                trials += self.take_queued(n - len(trials))
        return trials

    def take_queued(self, n: int) -> list[Trial]:
        """Up to ``n`` trials of proposals already recorded, without proposing any (call under :attr:`lock`)."""
        trials: list[Trial] = []
        while self.queue_ and len(trials) < n:
            pid = self.queue_.popleft()
            if pid in self.ledger_.settled or pid in self.in_flight_:
                continue
            trials.append(self._make_trial(pid, self.units_[pid]))
        return trials

    def prepare(self, n: int) -> list[int]:
        """Propose up to ``n`` new points and queue them (durable), without handing them out.

        Points in flight and points already queued are passed to the policy as
        pending. Safe to call from a background thread while the main loop
        tells results and dispatches: the campaign's lock guards the
        bookkeeping and the store, and the fit and acquisition run outside it.

        Returns:
            The new proposal ids (empty when the budget is covered or the model
            has too little data yet).
        """
        with self.lock:
            plan = self._plan(n)
        if plan is None:
            return []
        started = time.perf_counter()
        error = None
        if plan.refit:
            self.policy.fit(plan.data)
            error = self._estimate(plan.data)
        proposal = self.policy.propose(plan.data, plan.want, pending=plan.pending, progress=plan.progress)
        seconds = time.perf_counter() - started
        with self.lock:
            if self._closing:
                return []
            if plan.refit:
                self._record_fit(plan.data.n, error)
            # Fit + acquisition time: what a worker would wait without the look-ahead.
            self.store.add_metric(n_results=plan.data.n, name="proposal_seconds", value=seconds)
            round_ = ProposalRound.from_proposal(len(self.units_), proposal, self.spec.acquisition.policy)
            # The policy's own state (proposal counter, Sobol position) moved on: keep it with
            # the model so a resumed campaign proposes exactly what an uninterrupted one would.
            # The checkpoint goes first and carries the round (surrogate_al.campaign.checkpoint).
            self.checkpoint(round_)
            ids = self._record_proposals(round_.unit, source=round_.source, scores=proposal)
        return ids

    def _plan(self, n: int) -> ProposalPlan | None:
        """What the next proposal round needs, read consistently under the lock."""
        want = min(n, self.budget - self.counted() - len(self.in_flight_) - len(self.queue_))
        if want <= 0:
            return None
        data = self.dataset()
        needs_model = self.policy.needs_model
        if needs_model and data.n < MIN_POINTS_FOR_MODEL:
            return None  # wait for results before the model can say anything
        due = self.fitted_on_ < 0 or data.n - self.fitted_on_ >= self.spec.campaign.refit_every
        # A worker waiting with nothing queued gets a point from the current model first;
        # the refit follows in the next round instead of keeping that worker idle.
        waiting = not self.queue_ and len(self.in_flight_) < int(self.spec.campaign.concurrency)
        refit = needs_model and (self.fitted_on_ < 0 or (due and not (waiting and self.spec.campaign.mode == "async")))
        busy = [t.unit for t in self.in_flight_.values()] + [self.units_[pid] for pid in self.queue_]
        return ProposalPlan(
            want=want,
            data=data,
            pending=np.array(busy).reshape(-1, self.space.dim),
            progress=min(1.0, self.counted() / self.budget),
            refit=refit,
        )

    def tell(
        self,
        trial: Trial,
        result: SimulationResult,
        *,
        worker: str = "",
        submit_time: float | None = None,
        status_override: str | None = None,
        final: bool | None = None,
    ) -> bool:
        """Record one finished attempt; returns True when it settled its proposal.

        A failed attempt with retries left is recorded as not final and the
        proposal goes back to the front of the queue; the next :meth:`ask`
        hands it out again.

        Args:
            trial: the attempt, as handed out by :meth:`ask`.
            result: what the simulator returned (or a driver-side failure).
            worker: the Dask worker that ran it.
            submit_time: when it was submitted (default: its start time).
            status_override: the status to store instead of ``result.status``
                (``"lost"`` for a run whose worker died).
            final: settle the proposal now (True) or not (False) whatever the
                retries left; ``None`` decides by status and ``simulator.retries``.
                A run that already used up its re-runs inside Dask (worker
                deaths) is final.

        Raises:
            CampaignError: the failure-rate breaker tripped.
        """
        with self.lock:
            return self._tell(
                trial, result, worker=worker, submit_time=submit_time, status_override=status_override, final=final
            )

    def _tell(
        self,
        trial: Trial,
        result: SimulationResult,
        *,
        worker: str,
        submit_time: float | None,
        status_override: str | None,
        final: bool | None = None,
    ) -> bool:
        status = status_override or result.status
        retries = int(self.spec.simulator.retries)
        if final is None:
            final = status == "ok" or trial.attempt > retries
        # Only the declared outputs are stored; a simulator may report more.
        outputs = {name: result.outputs[name] for name in self.output_names} if status == "ok" else None
        submit = submit_time if submit_time is not None else result.started_at
        self.store.add_run(
            proposal_id=trial.proposal_id,
            attempt=trial.attempt,
            final=final,
            status=status,
            outputs=outputs,
            reason=result.reason,
            stderr_tail=result.stderr_tail,
            submit_time=submit,
            start_time=result.started_at,
            finish_time=result.finished_at,
            wall_time=result.wall_time,
            worker=worker,
            host=result.host,
        )
        self.in_flight_.pop(trial.proposal_id, None)
        if not final:
            logger.info("proposal %d attempt %d %s (%s); retrying", trial.proposal_id, trial.attempt, status, result.reason)
            self.queue_.appendleft(trial.proposal_id)
            return False
        y = np.array([result.outputs[name] for name in self.output_names]) if status == "ok" else None
        self.ledger_.settle(trial.proposal_id, status, trial.unit, y)
        self.session_settled_ += 1
        if status != "ok":
            self.session_failed_ += 1
            logger.warning("proposal %d failed for good after %d attempts: %s", trial.proposal_id, trial.attempt, result.reason)
        if self.on_progress is not None:
            self.on_progress(self.progress())
        self._check_breaker()
        return True

    def stall_error(self, what: str) -> CampaignError:
        """The error for a loop that cannot go on: "every run failed" with the first reason, else ``what``.

        A campaign whose every run failed before the breaker may trip has no
        data for a model, so the policy proposes nothing; the cause to report
        is the failures, not the stall.
        """
        with self.lock:
            n = len(self.ledger_.settled)
            if n == 0 or self.ledger_.n_failed_settled < n:
                return CampaignError(f"the campaign stalled: {what}")
            first = next((r for r in self.store.runs() if r.final and r.status != "ok"), None)
        reason = first.reason if first is not None and first.reason else "unknown"
        stderr = " ".join(first.stderr_tail.strip().splitlines()[-2:]) if first is not None else ""
        said = f" (stderr ends: {stderr[-200:]})" if stderr else ""
        return CampaignError(
            f"all {n} runs failed; first reason: {reason}{said}; fix the simulator (surrogate-al check WORKFLOW "
            "--run-one tries one call) and start again with surrogate-al run --force WORKFLOW"
        )

    def _check_breaker(self) -> None:
        """Stop when too many runs of this session failed (:class:`~surrogate_al.campaign.stopping.FailureBreaker`)."""
        message = self.breaker.tripped(self.session_settled_, self.session_failed_, str(self.store.path))
        if message is not None:
            self.store.add_event("breaker", message)
            raise CampaignError(message)

    # ------------------------------------------------------------------------------------
    # running and ending
    def run(self) -> CampaignOutcome:
        """Run to the budget (or a stop rule) on the workflow's Dask cluster.

        Raises:
            CampaignError: the failure-rate breaker tripped or the cluster was lost.
            KeyboardInterrupt: SIGTERM, SIGINT or SIGUSR1 (a
                :class:`~surrogate_al.campaign.stop_signals.StopSignal` under the
                CLI's handlers) or Ctrl-C, after recording state ``stopped``; the
                runs in flight were stopped and stay pending for :meth:`resume`.
        """
        from surrogate_al.campaign.loops import run_on_cluster

        return run_on_cluster(self)

    def end(self, status: str, reason: str) -> None:
        """Record how the campaign ended (its state and an event); a store error is logged, not raised."""
        with self.lock:
            try:
                self.store.set_state(status, reason)
                self.store.add_event(status, reason)
            except LockLostError as exc:
                # Another driver owns the store now: this one writes nothing, and the CLI's one line says why.
                logger.debug("the campaign's end (%s) is not recorded: %s", status, exc)
            except StoreError as exc:
                logger.error("could not record the campaign's end (%s): %s", status, exc)

    def close(self) -> None:
        """Close the store (folds its journal); a proposal still being computed is dropped."""
        with self.lock:
            self._closing = True
            self.store.close()

    def __enter__(self) -> Campaign:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
