"""The campaign: initial design -> dispatch -> record -> refit -> propose, until a stop rule.

:class:`Campaign` is the only module that composes the others. Its core is
ask / tell:

* :meth:`Campaign.ask` hands out trials: first proposals already recorded but
  not yet run (the initial design, or runs a killed driver left in flight),
  then new proposals from the policy, with every point still running passed
  to it as pending. Every proposal is durable in the store before it is
  handed out.
* :meth:`Campaign.tell` records one finished attempt (durable before it
  returns), decides whether it settles its proposal or is retried, and keeps
  the training data current.

:meth:`Campaign.run` is a thin loop over them on a Dask cluster. Asynchronous
mode keeps ``concurrency`` runs in flight and refills a worker as soon as its
run finishes; synchronous mode dispatches a batch, waits for all of it, refits
and proposes the next batch (deterministic for a given seed, also across a
kill and resume).

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
  creates (:func:`worker_death_tries`), the scheduler's own
  ``allowed-failures + 1`` on an ``address`` cluster -- settles with status ``lost`` and a reason
  starting with "worker died" that gives the number of tries. ``lost`` is a
  failed status (:data:`FAILED_STATUSES`): it counts as a failure for the
  breaker, ``count_failed`` and the feasibility model, and is never training
  data; it stays apart from ``failed`` so that a crash of the worker process
  is not mistaken for an error the simulator reported.
* A lost scheduler cancels every future: a cancelled future is never stored;
  :meth:`Campaign.run` raises :class:`CampaignError` naming the scheduler and
  the resume command, and a resume re-runs what was in flight.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from surrogate_al.checkpoint import state_from_bytes, state_to_bytes
from surrogate_al.data import Dataset
from surrogate_al.errors import CampaignError, DispatchError, StoreError, SurrogateALError
from surrogate_al.simulation import SimulationResult
from surrogate_al.surrogates.selection import AutoSurrogate, BackgroundChoiceExecutor

__all__ = ["Campaign", "Trial", "Progress", "CampaignOutcome"]

logger = logging.getLogger(__name__)

#: Successful runs a model needs before it can propose anything.
MIN_POINTS_FOR_MODEL = 2

#: Key in a checkpoint's policy state under which it carries the proposal round it was saved for.
_ROUND_KEY = "_campaign_round"

#: Statuses of a settled run that are not a success ("invalid": the run finished but
#: its output was unusable; "lost": its worker died on every try).
FAILED_STATUSES = ("failed", "timeout", "invalid", "lost")


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


def _worker_died_reason(exc: BaseException) -> str:
    """The stored reason of a run whose worker died on every try (from ``KilledWorker``)."""
    tries = getattr(exc, "allowed_failures", None)
    last = getattr(getattr(exc, "last_worker", None), "address", "")
    count = f" on all {tries + 1} tries" if isinstance(tries, int) else ""
    where = f"; last worker {last}" if last else ""
    return (
        f"worker died while running it{count} (its worker process was gone each time: a crash, a signal "
        f"or the memory limit){where}"
    )


def _driver_side_failure(reason: str, submit_time: float) -> SimulationResult:
    """A failed result for a run whose worker never sent one (it died, or the task broke)."""
    import socket

    return SimulationResult(
        status="failed", reason=reason, host=socket.gethostname(), started_at=submit_time, finished_at=time.time()
    )


@dataclass(frozen=True)
class Trial:
    """One attempt at one proposal, handed out by :meth:`Campaign.ask`.

    Attributes:
        proposal_id: the proposal's id in the store.
        attempt: 1-based attempt number.
        inputs: named inputs in the scientist's units.
        unit: ``d`` point in the unit cube.
    """

    proposal_id: int
    attempt: int
    inputs: dict[str, float]
    unit: NDArray[np.float64]


@dataclass(frozen=True)
class Progress:
    """A snapshot for progress bars and logs."""

    settled: int
    budget: int
    in_flight: int
    failed: int
    estimated_error: float
    lam: float
    elapsed: float


@dataclass(frozen=True)
class CampaignOutcome:
    """How :meth:`Campaign.run` ended.

    Attributes:
        status: ``completed`` (budget or target reached) or ``stopped``.
        reason: why, in words.
        settled: proposals settled (ok or failed for good).
        ok: successful runs.
        store: path of the campaign file.
    """

    status: str
    reason: str
    settled: int
    ok: int
    store: Path


@dataclass(frozen=True)
class _ProposalPlan:
    """A snapshot for one proposal round: taken under the lock, used outside it."""

    want: int
    data: Dataset
    pending: NDArray[np.float64]
    progress: float
    refit: bool


@dataclass(frozen=True)
class _RecordedScores:
    """The scores of a proposal round read back from a checkpoint (what ``_record_proposals`` needs)."""

    U: NDArray[np.float64] | None
    D: NDArray[np.float64] | None
    J: NDArray[np.float64] | None
    lam: float


@dataclass
class _Ledger:
    """In-memory mirror of what the store says about runs (rebuilt on resume)."""

    X_ok: list[NDArray[np.float64]] = field(default_factory=list)
    Y_ok: list[NDArray[np.float64]] = field(default_factory=list)
    X_failed: list[NDArray[np.float64]] = field(default_factory=list)
    settled: set[int] = field(default_factory=set)
    attempts: dict[int, int] = field(default_factory=dict)
    n_failed_settled: int = 0


class _Lookahead:
    """How many prepared points the asynchronous loop keeps queued.

    A worker that frees up must find a point waiting. While the proposer
    spends ``τ`` seconds on a round, the workers take about ``r τ`` points
    (``r``: runs finished per second, ``concurrency`` over the mean turnaround
    of a run); the round then tops the queue back up to ``L``. So the queue
    starts a round holding about ``L − r τ`` points and is lowest at its end,
    ``L − 2 r τ``: keeping ``L = 2 r τ + 2 concurrency`` leaves two points per
    worker of margin for runs that end together. With runs much longer than a
    proposal round (the usual case) that is two points per worker; runs as
    short as a round raise it, up to sixteen per worker. A larger queue only
    proposes further ahead of the results (every queued point is pending to
    the policy); it never changes which runs count. The cap was eight per
    worker until the ``auto`` surrogate's rounds (3-6 s with an ensemble)
    met the throughput benchmark's 0.5 s runs: the queue then wanted 19-34
    points on 2 workers, and 16 left them idle 18 % of the time (10 % with
    32; docs/benchmarks.md, "Fourteenth session").

    Args:
        concurrency: runs kept in flight.
    """

    #: Weight of the newest observation in the running means.
    SMOOTHING = 0.25

    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self.round_seconds: float | None = None
        self.run_seconds: float | None = None

    @classmethod
    def _mean(cls, current: float | None, seconds: float) -> float:
        return seconds if current is None else (1.0 - cls.SMOOTHING) * current + cls.SMOOTHING * seconds

    def observe_round(self, seconds: float) -> None:
        """A proposal round took ``seconds`` (fit, acquisition and recording)."""
        self.round_seconds = self._mean(self.round_seconds, max(0.0, seconds))

    def observe_run(self, seconds: float) -> None:
        """A run came back ``seconds`` after its submission."""
        self.run_seconds = self._mean(self.run_seconds, max(0.0, seconds))

    @property
    def size(self) -> int:
        """Points to keep queued: between ``2 x`` and ``16 x concurrency``."""
        floor, cap = 2 * self.concurrency, 16 * self.concurrency
        if self.round_seconds is None or not self.run_seconds:
            return floor
        rate = self.concurrency / self.run_seconds
        return min(cap, floor + round(2.0 * rate * self.round_seconds))


class _BackgroundProposer:
    """Runs :meth:`Campaign.prepare` in a thread, one round at a time.

    A round that proposes nothing (the model needs more results, or the
    budget is covered) is not retried until the campaign's state changes, so
    the loop does not spin on it.
    """

    def __init__(self, campaign: Campaign, lookahead: _Lookahead) -> None:
        self.campaign = campaign
        self.lookahead = lookahead
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.empty_at: tuple[int, int, int] | None = None

    def _state(self) -> tuple[int, int, int]:
        c = self.campaign
        return len(c.ledger_.settled), len(c.in_flight_), len(c.queue_)

    @property
    def busy(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def starved(self) -> bool:
        """Whether the last round proposed nothing and nothing changed since."""
        return self.empty_at == self._state()

    def start(self, n: int) -> None:
        state = self._state()
        if self.busy or self.empty_at == state:
            return

        def work() -> None:
            try:
                started = time.perf_counter()
                with self.campaign._choice_paused():
                    proposed = self.campaign.prepare(n)
                if proposed:
                    self.lookahead.observe_round(time.perf_counter() - started)
                self.empty_at = None if proposed else state
            except BaseException as exc:  # handed to the main thread, which raises it
                self.error = exc

        self.thread = threading.Thread(target=work, name="surrogate_al-proposer", daemon=True)
        self.thread.start()

    def raise_if_failed(self) -> None:
        if self.error is not None:
            error, self.error = self.error, None
            raise error

    def join(self) -> None:
        if self.thread is not None:
            self.thread.join()


class Campaign:
    """An active-learning campaign bound to one store.

    Build one with :meth:`create` (new store from a workflow spec) or
    :meth:`resume` (existing store); then call :meth:`run`, or drive it by
    hand with :meth:`ask` / :meth:`tell`.

    Args:
        spec: the validated workflow spec (``surrogate_al.config.WorkflowSpec``).
        store: the open campaign store (writable).
        on_progress: called with a :class:`Progress` after every settled run.
    """

    def __init__(self, spec: Any, store: Any, *, on_progress: Callable[[Progress], None] | None = None) -> None:
        from surrogate_al.factory import build_policy, build_simulator, load_validation

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
        self.ledger_ = _Ledger()
        self.queue_: deque[int] = deque()
        self.in_flight_: dict[int, Trial] = {}
        self.units_: dict[int, NDArray[np.float64]] = {}
        self.model_version_ = 0
        self.fitted_on_ = -1  # number of ok results the surrogate was last fitted on
        self.next_batch_id_ = 0
        self.estimated_error_ = math.nan
        self.last_lambda_ = math.nan
        self.session_settled_ = 0
        self.session_failed_ = 0
        self.scheduler_address_ = ""  # set by run(); names the scheduler in "lost" messages
        self.t0_ = time.monotonic()
        # Guards the bookkeeping and the store: the asynchronous loop proposes in a
        # background thread while the main thread tells results and dispatches.
        self._lock = threading.RLock()
        self._closing = False
        # The asynchronous loop's process for an `auto` surrogate's cross-validation (None outside it).
        self._choice_executor: BackgroundChoiceExecutor | None = None
        self._restore()

    # ------------------------------------------------------------------------------------
    # construction
    @classmethod
    def create(cls, spec: Any, *, force: bool = False, on_progress: Callable[[Progress], None] | None = None) -> Campaign:
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
                self._settle(run.proposal_id, run.status, self.units_[run.proposal_id], run.outputs)
        self.queue_.extend(self.store.pending_proposal_ids())
        self.next_batch_id_ = 1 + max((p.batch_id for p in proposals), default=-1)
        checkpoint = self.store.latest_checkpoint()
        if checkpoint is not None:
            self._load_checkpoint(checkpoint)

    def _load_checkpoint(self, checkpoint: Any) -> None:
        policy_state = state_from_bytes(checkpoint.policy_state)
        lost_round = policy_state.pop(_ROUND_KEY, None)
        self.policy.load_state_dict(policy_state)
        surrogate = getattr(self.policy, "surrogate", None)
        if checkpoint.surrogate_state and surrogate is not None:
            surrogate.load_state_dict(state_from_bytes(checkpoint.surrogate_state))
            self.fitted_on_ = checkpoint.n_results
        self.model_version_ = checkpoint.version
        logger.info("restored checkpoint %d (fitted on %d results)", checkpoint.version, checkpoint.n_results)
        if lost_round is not None and lost_round["first_id"] == len(self.units_):
            # A kill came between this checkpoint and its round's proposals (see prepare()):
            # record them now, as the uninterrupted campaign did.
            logger.warning("recording the %d proposals of the round a kill interrupted", len(lost_round["unit"]))
            scores = {
                k: None if lost_round[k] is None else np.asarray(lost_round[k], dtype=float) for k in ("U", "D", "J")
            }
            self._record_proposals(
                np.asarray(lost_round["unit"], dtype=float),
                source=lost_round["source"],
                proposal=_RecordedScores(lam=float(lost_round["lam"]), **scores),
            )

    def _record_initial_design(self) -> None:
        from surrogate_al.factory import initial_design_size

        c = self.spec.campaign
        # One rule for the size: build_policy also uses it (a Sobol policy continues after the design).
        size = initial_design_size(self.spec, self.space.dim)
        unit = self.space.design_unit(c.initial_design.kind, size, seed=c.seed)
        self._record_proposals(unit, source="initial")

    def _record_proposals(self, unit: NDArray[np.float64], *, source: str, proposal: Any = None) -> list[int]:
        inputs = self.space.from_unit(unit)
        scores: dict[str, Any] = {}
        if proposal is not None:
            scores = {"U": proposal.U, "D": proposal.D, "J": proposal.J, "lam": float(proposal.lam)}
            self.last_lambda_ = float(proposal.lam)
        ids = self.store.add_proposals(
            inputs, unit, batch_id=self.next_batch_id_, surrogate_version=self.model_version_, source=source, **scores
        )
        self.next_batch_id_ += 1
        self.units_.update(zip(ids, np.asarray(unit, dtype=float)))
        self.queue_.extend(ids)
        return ids

    # ------------------------------------------------------------------------------------
    # bookkeeping
    def _settle(self, proposal_id: int, status: str, unit: NDArray[np.float64], outputs: NDArray[np.float64]) -> None:
        self.ledger_.settled.add(proposal_id)
        if status == "ok":
            self.ledger_.X_ok.append(np.asarray(unit, dtype=float))
            self.ledger_.Y_ok.append(np.asarray(outputs, dtype=float))
        else:
            self.ledger_.X_failed.append(np.asarray(unit, dtype=float))
            self.ledger_.n_failed_settled += 1

    @property
    def budget(self) -> int:
        """Settled runs the campaign aims for."""
        return int(self.spec.campaign.budget)

    def counted(self) -> int:
        """Settled runs that count toward the budget (failures too unless ``count_failed`` is off)."""
        if self.spec.campaign.count_failed:
            return len(self.ledger_.settled)
        return len(self.ledger_.X_ok)

    def dataset(self) -> Dataset:
        """The successful runs (and failed points) in unit-cube coordinates."""
        d, m = self.space.dim, len(self.output_names)
        X = np.array(self.ledger_.X_ok).reshape(-1, d)
        Y = np.array(self.ledger_.Y_ok).reshape(-1, m)
        X_failed = np.array(self.ledger_.X_failed).reshape(-1, d)
        return Dataset(X=X, Y=Y, X_failed=X_failed)

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

    # ------------------------------------------------------------------------------------
    # model
    def refit(self) -> None:
        """Fit the surrogate on all successful runs now and record the estimated error."""
        with self._lock:
            data = self.dataset()
        self.policy.fit(data)
        error = self._estimate_error(data)
        with self._lock:
            self._record_fit(data.n, error)

    def fit_final_model(self) -> bool:
        """Fit the surrogate on every successful run and checkpoint it: the model the campaign delivers.

        Proposal rounds fit on the runs finished by then, so a campaign's last
        results arrive after its last fit; without this the stored surrogate
        (``report``, ``predict``, :func:`~surrogate_al.factory.restore_surrogate`)
        would miss them. A surrogate that chooses its kind
        (:class:`~surrogate_al.surrogates.selection.AutoSurrogate`) chooses
        afresh here, on all the runs. A fit that fails is logged and the last
        round's model stays stored: the runs are safe, and a resume tries again.

        Returns:
            Whether a fit was made (not when the policy has no model, there are
            too few runs, or the stored model was fitted on all of them and,
            for an ``auto`` surrogate, chosen on all of them).
        """
        surrogate = getattr(self.policy, "surrogate", None)
        if not getattr(self.policy, "needs_model", True):
            return False
        with self._lock:
            data = self.dataset()
        if data.n < MIN_POINTS_FOR_MODEL:
            return False
        # A RemoteFitSurrogate forwards both to its local copy, whose state the remote fit starts from.
        choose_again = getattr(surrogate, "choose_again", None)
        chosen_on = getattr(surrogate, "selected_at_n_", data.n)
        if self.fitted_on_ == data.n and (choose_again is None or chosen_on == data.n):
            return False
        if choose_again is not None:
            choose_again()
        try:
            self.refit()
        except StoreError:
            raise
        except (SurrogateALError, RuntimeError) as exc:  # the surrogates' data errors, numerical breakdowns, GPU memory
            logger.warning("the final fit on %d runs failed (%s); the stored surrogate is the last round's", data.n, exc)
            return False
        with self._lock:
            self.checkpoint()
        logger.info("final fit on %d runs (model version %d)", data.n, self.model_version_)
        return True

    def _record_fit(self, n: int, error: tuple[str, float] | None) -> None:
        self.model_version_ += 1
        self.fitted_on_ = n
        if error is not None:
            self.estimated_error_ = error[1]
            self.store.add_metric(n_results=n, name=error[0], value=error[1])

    def checkpoint(self, round_points: dict[str, Any] | None = None) -> None:
        """Save the surrogate and policy state (durable) with the model version.

        Args:
            round_points: the proposal round this state was saved for (from
                :meth:`_round_points`); a resumed campaign records it if a kill
                came before the proposals were.
        """
        surrogate = getattr(self.policy, "surrogate", None)
        surrogate_state = state_to_bytes(surrogate.state_dict()) if surrogate is not None and self.fitted_on_ >= 0 else b""
        policy_state = dict(self.policy.state_dict())
        if round_points is not None:
            policy_state[_ROUND_KEY] = round_points
        self.store.save_checkpoint(
            version=self.model_version_,
            n_results=max(self.fitted_on_, 0),
            surrogate_state=surrogate_state,
            policy_state=state_to_bytes(policy_state),
        )

    def _round_points(self, unit: NDArray[np.float64], proposal: Any) -> dict[str, Any]:
        """A proposal round as plain data (a checkpoint is read back with ``weights_only``)."""

        def floats(values: Any) -> list[float] | None:
            return None if values is None else np.asarray(values, dtype=float).reshape(-1).tolist()

        return {
            "first_id": len(self.units_),
            "unit": unit.tolist(),
            "source": self.spec.acquisition.policy,
            "U": floats(proposal.U),
            "D": floats(proposal.D),
            "J": floats(proposal.J),
            "lam": float(proposal.lam),
        }

    def _estimate_error(self, data: Dataset) -> tuple[str, float] | None:
        """Test NRMSE on the validation set, else a model-based estimate.

        The model-based estimate is ``sqrt(mean epistemic variance) / std(Y)``
        over a fixed Sobol reference set, averaged over outputs: the error the
        model expects of itself, comparable across refits of one campaign.
        """
        surrogate = getattr(self.policy, "surrogate", None)
        if surrogate is None or data.n < 2:
            return None
        import torch

        if self.validation_ is not None:
            X_test, Y_test = self.validation_
            with torch.no_grad():
                pred = surrogate.predict(torch.as_tensor(self.space.to_unit(X_test)))
            mean = pred.mean.detach().cpu().double().numpy()
            rmse = np.sqrt(np.mean((mean - Y_test) ** 2, axis=0))
            scale = np.std(Y_test, axis=0)
            value, name = float(np.mean(rmse / np.where(scale > 0, scale, 1.0))), "test_nrmse"
        else:
            reference = self.space.design_unit("sobol", 1024, seed=12345)
            with torch.no_grad():
                pred = surrogate.predict(torch.as_tensor(reference))
            var = pred.epistemic_var.detach().cpu().double().numpy()
            scale = np.std(data.Y, axis=0)
            value = float(np.mean(np.sqrt(var.mean(axis=0)) / np.where(scale > 0, scale, 1.0)))
            name = "estimated_nrmse"
        return name, value

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
        with self._lock:
            trials = self._take_queued(n)
        if len(trials) < n:
            self.prepare(n - len(trials))
            with self._lock:
                trials += self._take_queued(n - len(trials))
        return trials

    def _take_queued(self, n: int) -> list[Trial]:
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
        with self._lock:
            plan = self._plan(n)
        if plan is None:
            return []
        started = time.perf_counter()
        error = None
        if plan.refit:
            self.policy.fit(plan.data)
            error = self._estimate_error(plan.data)
        proposal = self.policy.propose(plan.data, plan.want, pending=plan.pending, progress=plan.progress)
        seconds = time.perf_counter() - started
        with self._lock:
            if self._closing:
                return []
            if plan.refit:
                self._record_fit(plan.data.n, error)
            # Fit + acquisition time: what a worker would wait without the look-ahead.
            self.store.add_metric(n_results=plan.data.n, name="proposal_seconds", value=seconds)
            unit = np.asarray(proposal.X, dtype=float)
            # The policy's own state (proposal counter, Sobol position) moved on: keep it with
            # the model so a resumed campaign proposes exactly what an uninterrupted one would.
            # The checkpoint goes first and carries the round's points: a kill between the two
            # writes leaves a round that _load_checkpoint() records on resume, never recorded
            # points with an older policy state (which would propose the same points again).
            self.checkpoint(self._round_points(unit, proposal))
            ids = self._record_proposals(unit, source=self.spec.acquisition.policy, proposal=proposal)
        return ids

    def _plan(self, n: int) -> _ProposalPlan | None:
        """What the next proposal round needs, read consistently under the lock."""
        want = min(n, self.budget - self.counted() - len(self.in_flight_) - len(self.queue_))
        if want <= 0:
            return None
        data = self.dataset()
        needs_model = getattr(self.policy, "needs_model", True)
        if needs_model and data.n < MIN_POINTS_FOR_MODEL:
            return None  # wait for results before the model can say anything
        due = self.fitted_on_ < 0 or data.n - self.fitted_on_ >= self.spec.campaign.refit_every
        # A worker waiting with nothing queued gets a point from the current model first;
        # the refit follows in the next round instead of keeping that worker idle.
        waiting = not self.queue_ and len(self.in_flight_) < int(self.spec.campaign.concurrency)
        refit = needs_model and (self.fitted_on_ < 0 or (due and not (waiting and self.spec.campaign.mode == "async")))
        busy = [t.unit for t in self.in_flight_.values()] + [self.units_[pid] for pid in self.queue_]
        return _ProposalPlan(
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
        """
        with self._lock:
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
        self._settle(trial.proposal_id, status, trial.unit, y)
        self.session_settled_ += 1
        if status != "ok":
            self.session_failed_ += 1
            logger.warning("proposal %d failed for good after %d attempts: %s", trial.proposal_id, trial.attempt, result.reason)
        if self.on_progress is not None:
            self.on_progress(self.progress())
        self._check_breaker()
        return True

    # ------------------------------------------------------------------------------------
    # stop rules
    def _check_breaker(self) -> None:
        """Stop when too many runs of this session failed (after a minimum count).

        Counting only this session's runs lets a resume after a fix go on.
        """
        c = self.spec.campaign
        n = self.session_settled_
        if n >= c.min_runs_for_breaker and self.session_failed_ / n > c.max_failure_fraction:
            message = (
                f"{self.session_failed_} of {n} runs failed (more than max_failure_fraction = "
                f"{c.max_failure_fraction}); fix the simulator, then `surrogate-al resume {self.store.path}`"
            )
            self.store.add_event("breaker", message)
            raise CampaignError(message)

    def _stop_reason(self) -> str | None:
        c = self.spec.campaign
        if c.stop.max_wall_time is not None and time.monotonic() - self.t0_ >= c.stop.max_wall_time:
            return f"wall time {c.stop.max_wall_time:.0f} s reached"
        if c.stop.target_error is not None and self.estimated_error_ <= c.stop.target_error:
            return f"estimated error {self.estimated_error_:.4g} <= target {c.stop.target_error}"
        return None

    # ------------------------------------------------------------------------------------
    # the loop
    def run(self) -> CampaignOutcome:
        """Run to the budget (or a stop rule) on the workflow's Dask cluster.

        Raises:
            CampaignError: the failure-rate breaker tripped or the cluster was lost.
            KeyboardInterrupt: after recording the interruption; in-flight runs
                stay pending for :meth:`resume`.
        """
        from surrogate_al.dispatch import Dispatcher

        self.t0_ = time.monotonic()
        self._share_cores_with_local_workers()
        self.store.set_state("running")
        dispatcher = Dispatcher(
            self.spec.cluster,
            self.spec.campaign.name,
            gpu_runs=bool(self.spec.simulator.gpu),
            allowed_failures=worker_death_tries(self.spec.simulator.retries) - 1,
        )
        try:
            dispatcher.start()
            self.scheduler_address_ = dispatcher.scheduler_address
            self._fit_on_gpu_workers(dispatcher)
            if self.spec.campaign.mode == "sync":
                reason = self._run_sync(dispatcher)
            else:
                reason = self._run_async(dispatcher)
            # Not after a wall-time stop: the limit is the scientist's, and a resume fits at its end.
            if reason is None or not reason.startswith("wall time"):
                self.fit_final_model()
        except KeyboardInterrupt:
            self._finish("stopped", "interrupted; in-flight runs will be re-run on resume")
            raise
        except (CampaignError, DispatchError, StoreError) as exc:
            self._finish("stopped", str(exc))
            raise
        finally:
            dispatcher.close()
        status = "completed" if reason is None or reason.startswith("estimated error") else "stopped"
        reason = reason or f"budget of {self.budget} runs reached"
        self._finish(status, reason)
        return CampaignOutcome(status, reason, len(self.ledger_.settled), len(self.ledger_.X_ok), Path(self.store.path))

    def _fit_on_gpu_workers(self, dispatcher: Any) -> None:
        """With ``surrogate.gpu``, refits run as Dask tasks on workers with a ``GPU`` resource."""
        surrogate = getattr(self.policy, "surrogate", None)
        if not self.spec.surrogate.gpu or surrogate is None:
            return
        from surrogate_al.dispatch import RemoteFitSurrogate
        from surrogate_al.factory import surrogate_options

        options = surrogate_options(self.spec, self.space.dim)
        options["device"] = "auto"  # the worker's GPU
        local = surrogate.local if isinstance(surrogate, RemoteFitSurrogate) else surrogate
        self.policy.surrogate = RemoteFitSurrogate(local, dispatcher.client, self.spec.surrogate.kind, options)

    def _share_cores_with_local_workers(self) -> None:
        """Leave the local workers their cores: torch in the driver takes only what is left.

        Without this the driver's fits (torch uses every core by default) and
        the simulator processes oversubscribe the machine and both slow down.
        """
        cluster = self.spec.cluster
        if cluster.kind != "local" or not cluster.processes:
            return
        import torch

        free = max(1, (os.cpu_count() or 1) - int(cluster.workers) * int(cluster.threads_per_worker))
        torch.set_num_threads(min(torch.get_num_threads(), free))

    def _finish(self, status: str, reason: str) -> None:
        with self._lock:
            self._record_end(status, reason)

    def _record_end(self, status: str, reason: str) -> None:
        try:
            self.store.set_state(status, reason)
            self.store.add_event(status, reason)
        except StoreError as exc:
            logger.error("could not record the campaign's end (%s): %s", status, exc)

    def _harvest(self, future: Any, trial: Trial, submit_time: float) -> bool:
        """Turn a finished future into a told result; returns whether it settled.

        ``KilledWorker`` (the run's worker died on every one of its tries) settles
        the proposal with status ``lost``: Dask has already re-run it as often as
        ``simulator.retries`` allows (:func:`worker_death_tries`), so the campaign
        does not retry it again. A cancelled future (the scheduler was lost) is
        never stored: it raises :class:`CampaignError`.
        """
        from asyncio import CancelledError as AsyncCancelledError
        from concurrent.futures import CancelledError

        from distributed import KilledWorker

        try:
            outcome = future.result()
        except KilledWorker as exc:
            result = _driver_side_failure(_worker_died_reason(exc), submit_time)
            return self.tell(trial, result, submit_time=submit_time, status_override="lost", final=True)
        except (Exception, AsyncCancelledError) as exc:  # asyncio's is a BaseException
            if isinstance(exc, (CancelledError, AsyncCancelledError)) or future.status == "cancelled":
                # A cancelled future is no result: never store it; resume re-runs the proposal.
                where = f" at {self.scheduler_address_}" if self.scheduler_address_ else ""
                raise CampaignError(
                    f"lost the Dask scheduler{where} while proposal {trial.proposal_id} was running; "
                    f"runs in flight were not recorded and will run again; every finished run is stored: "
                    f"`surrogate-al resume {self.store.path}` continues once a scheduler is reachable"
                ) from exc
            result = _driver_side_failure(f"task error {type(exc).__name__}: {exc}", submit_time)
            return self.tell(trial, result, submit_time=submit_time)
        # A worker in a batch job is recorded with its job id: "tcp://10.0.0.5:40321 job=123456".
        worker = f"{outcome.worker} job={outcome.job_id}" if outcome.job_id else outcome.worker
        return self.tell(trial, outcome.result, worker=worker, submit_time=submit_time)

    def _submit(self, dispatcher: Any, trials: Iterable[Trial]) -> list[tuple[Any, Trial, float]]:
        out = []
        for trial in trials:
            now = time.time()
            with self._lock:
                self.store.mark_submitted(trial.proposal_id, trial.attempt, now)
            out.append((dispatcher.submit(self.simulator, trial.inputs, trial.proposal_id, trial.attempt), trial, now))
        return out

    def _run_async(self, dispatcher: Any) -> str | None:
        """Keep ``concurrency`` runs in flight; refill each worker as soon as its run ends.

        The main thread only tells results and dispatches, so a worker that
        frees up gets a prepared point within milliseconds. Refitting and
        proposing happen in a background thread (:class:`_BackgroundProposer`)
        that keeps prepared points in the queue, two per worker or more when
        runs are as short as a proposal round (:class:`_Lookahead`), passing
        every point in flight or queued to the policy as pending. Results that
        arrive together are told together, so one refit serves all of them.
        An ``auto`` surrogate's cross-validation runs in a separate process
        meanwhile (:meth:`~surrogate_al.surrogates.selection.AutoSurrogate.choose_in_background`),
        so a round does not stall for the model choice.
        """
        from distributed import as_completed

        concurrency = int(self.spec.campaign.concurrency)
        lookahead = _Lookahead(concurrency)
        running: dict[Any, tuple[Trial, float]] = {}
        completed = as_completed()
        proposer = _BackgroundProposer(self, lookahead)

        def dispatch() -> None:
            # `running` (not in_flight_) decides: a finished run frees its worker before it is told.
            free = concurrency - len(running)
            if free <= 0 or self._stop_reason() is not None:
                return
            with self._lock:
                trials = self._take_queued(free)
            for future, trial, t in self._submit(dispatcher, trials):
                running[future] = (trial, t)
                completed.add(future)

        with self._background_model_choice():
            try:
                for future, trial, t in self._submit(dispatcher, self.ask(concurrency)):
                    running[future] = (trial, t)
                    completed.add(future)
                while not self.done():
                    if completed.has_ready():
                        finished = [(future, *running.pop(future)) for future in completed.next_batch(block=False)]
                        # Refill the freed workers first (their next points are already durable
                        # proposals), then record the results: the fsyncs no longer delay them.
                        dispatch()
                        for future, trial, submitted in finished:
                            lookahead.observe_run(time.time() - submitted)
                            self._harvest(future, trial, submitted)
                        dispatcher.keep_jobs_up()
                    proposer.raise_if_failed()
                    dispatch()
                    stop = self._stop_reason()
                    if stop is not None and not running:
                        break
                    if stop is None and len(self.queue_) < lookahead.size and not proposer.busy:
                        proposer.start(lookahead.size - len(self.queue_))
                    if not running and not self.queue_ and not proposer.busy and proposer.starved() and not self.done():
                        raise CampaignError("the campaign stalled: no runs in flight and the policy proposed none")
                    time.sleep(0.005)
            except BaseException:
                # Leave a proposal round still computing behind (a daemon thread): an interrupt
                # must not wait for a fit, and close() keeps it from writing afterwards.
                raise
            proposer.join()
            proposer.raise_if_failed()
            return self._stop_reason() if not self.done() else None

    @contextlib.contextmanager
    def _background_model_choice(self) -> Iterator[None]:
        """While the asynchronous loop runs, an ``auto`` surrogate cross-validates in its own process.

        Cross-validating a GP and an ensemble takes 11-21 s on 40-200 runs on
        this project's 2-core machine; inside a proposal round that left the
        workers waiting whenever runs were shorter (docs/benchmarks.md,
        throughput). The process is stopped while a round runs
        (:meth:`_choice_paused`) and goes when the loop ends; the final fit
        chooses in place, on all runs.
        """
        surrogate = getattr(self.policy, "surrogate", None)
        if not isinstance(surrogate, AutoSurrogate):
            yield
            return
        executor = BackgroundChoiceExecutor()
        surrogate.choose_in_background(executor)
        self._choice_executor = executor
        try:
            yield
        finally:
            # The proposer thread may still be in a fit that submits; it then falls back to choosing in place.
            surrogate.choose_in_background(None)
            self._choice_executor = None
            executor.terminate()

    def _choice_paused(self) -> contextlib.AbstractContextManager[None]:
        """A proposal round's context: the background model choice, if any, is stopped meanwhile."""
        executor = self._choice_executor
        return executor.paused() if executor is not None else contextlib.nullcontext()

    def _run_sync(self, dispatcher: Any) -> str | None:
        from distributed import wait

        batch_size = int(self.spec.campaign.batch_size)
        while not self.done():
            reason = self._stop_reason()
            if reason is not None:
                return reason
            # The whole initial design (or what a killed driver left) is one batch.
            n = max(batch_size, len(self.queue_))
            trials = self.ask(n)
            if not trials:
                raise CampaignError("the campaign stalled: the policy proposed no points")
            while trials:
                batch = self._submit(dispatcher, trials)
                wait([f for f, _, _ in batch])
                retry = []
                for future, trial, submitted in batch:
                    if not self._harvest(future, trial, submitted):
                        retry.append(trial.proposal_id)
                dispatcher.keep_jobs_up()
                trials = self.ask(len(retry)) if retry else []
        return None

    # ------------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the store (folds its journal); a proposal still being computed is dropped."""
        with self._lock:
            self._closing = True
            self.store.close()

    def __enter__(self) -> Campaign:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
