"""The campaign store: one HDF5 file per campaign, durable across a SIGKILL.

Everything a campaign knows lives in ``STORE.h5``: the spec, the proposals
with their scores, every attempt of every run (inputs, outputs, status,
timings, worker), checkpoints, metrics, events and the campaign state.
:class:`CampaignStore` checks every argument, keeps a second driver out with
the lock file ``STORE.h5.lock`` (:mod:`.lock`; read-only opens take no lock),
which also fences every write (a writer whose lock was taken over stops)
and hands records to :class:`~surrogate_al.store.durable.DurableStore`, which
journals each one durably before the call returns and keeps the ``.h5``
snapshot, never modified in place, up to date (see ``docs/store.md`` for the
full argument). ``close()`` folds the journal into the ``.h5``, so a finished
campaign is one file.
"""

from __future__ import annotations

import atexit
import base64
import json
import logging
import os
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from surrogate_al.errors import StoreError
from surrogate_al.store.durable import DurableStore
from surrogate_al.store.fileio import sidecar
from surrogate_al.store.lock import Lock
from surrogate_al.store.records import (
    CAMPAIGN_STATES,
    Checkpoint,
    ProposalRecord,
    RunRecord,
    as_float,
    as_int,
    as_text,
    check_run_arguments,
    names,
    proposal_rows,
    run_row,
    run_values,
)
from surrogate_al.store.snapshot import check_exists
from surrogate_al.store.tables import StoreMeta

__all__ = ["CampaignStore"]

logger = logging.getLogger(__package__)  # one logger for the store: log lines name "surrogate_al.store"

_T = TypeVar("_T")

_OPEN_STORES: weakref.WeakSet[CampaignStore] = weakref.WeakSet()


@atexit.register
def _close_open_stores() -> None:
    """Best effort: fold and unlock stores a program forgot to close."""
    for store in list(_OPEN_STORES):
        if store._owner_pid != os.getpid():
            continue  # inherited through fork: the parent owns it
        try:
            store.close()
        except StoreError as exc:  # a known cause (a full disk, ...): its one line says it all
            logger.error("%s: could not close the campaign store at exit: %s", store.path, exc)
        except Exception:  # an exit hook must not mask the program's own outcome
            logger.exception("%s: could not close the campaign store at exit", store.path)


class CampaignStore:
    """One campaign's durable record: ``STORE.h5`` plus, while a driver runs, its journal.

    Build one with :meth:`create` or :meth:`open`, never with the constructor.
    Writes need ``mode="a"``; each is durable (journal fsync'd) before it
    returns. Reads work in either mode and come from memory (columnar).

    Attributes:
        path: Absolute path of the ``.h5`` file.
        spec: The campaign spec (a JSON-able dict).
        input_names: The ``d`` input names.
        output_names: The ``m`` output names.
    """

    path: Path
    spec: dict[str, Any]
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]

    def __init__(self, path: Path, mode: Literal["r", "a"], keep_checkpoints: int, snapshot_interval: float) -> None:
        if isinstance(keep_checkpoints, bool) or not isinstance(keep_checkpoints, int) or keep_checkpoints < 1:
            raise StoreError(f"keep_checkpoints must be an integer >= 1, got {keep_checkpoints!r}")
        if not isinstance(snapshot_interval, (int, float)) or not snapshot_interval >= 0:
            raise StoreError(f"snapshot_interval must be a number of seconds >= 0, got {snapshot_interval!r}")
        self.path = Path(path).absolute()
        self._lock_path = sidecar(self.path, ".lock")
        self._mode = mode
        self._mutex = threading.RLock()
        self._owner_pid = os.getpid()
        self._lock: Lock | None = None
        self._closed = False
        self._disk = DurableStore(self.path, keep_checkpoints, float(snapshot_interval))
        self._adopt_meta()

    def _adopt_meta(self) -> None:
        """Take the spec and names of what was just created or loaded."""
        meta = self._disk.meta
        self.spec, self.input_names, self.output_names = meta.spec, meta.input_names, meta.output_names

    @property
    def store_id(self) -> str:
        """The store's random hex id, fixed when it is created (its journal names it too)."""
        return self._disk.meta.store_id

    # ----------------------------------------------------------------- construction

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        *,
        spec: dict[str, Any],
        input_names: Sequence[str],
        output_names: Sequence[str],
        force: bool = False,
        keep_checkpoints: int = 3,
        snapshot_interval: float = 30.0,
    ) -> CampaignStore:
        """Create a new store and open it for writing (takes the lock).

        Args:
            path: The ``.h5`` file to create.
            spec: The campaign spec; any JSON-able dict (stored as a JSON string).
            input_names: ``d`` unique input names.
            output_names: ``m`` unique output names.
            force: Replace an existing store at ``path``.
            keep_checkpoints: How many of the latest checkpoints the ``.h5`` keeps.
            snapshot_interval: Minimum seconds between automatic rewrites of the
                ``.h5`` while running (the journal is durable in between). The
                store also waits at least 20 times the last rewrite's duration,
                unless this is 0, which means after every record.

        Returns:
            The store, in mode ``"a"``.

        Raises:
            StoreError: The file exists and ``force`` is false, or an argument is invalid.
            StoreLockedError: Another live driver holds the lock.
        """
        store = cls(Path(path), "a", keep_checkpoints, snapshot_interval)
        if not isinstance(spec, dict):
            raise StoreError(f"spec must be a dict, got {type(spec).__name__}")
        try:
            spec_json = json.dumps(spec, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise StoreError(f"spec must be JSON-serialisable (plain dicts, lists, str, finite numbers): {exc}") from None
        ins, outs = names("input_names", input_names), names("output_names", output_names)
        # The lock before the existence check: when a live driver is writing this store,
        # naming it (StoreLockedError) tells more than "already exists".
        store._take_lock(force_unlock=False)
        if not force and (store.path.exists() or store._disk.journal_path.exists()):
            store._release_lock()
            raise StoreError(
                f"{store.path}: a campaign store already exists; resume it with `surrogate-al resume {store.path}`, "
                "or delete it / pass force=True to start over"
            )

        def start() -> None:  # the spec as parsed back: exactly what a reopen will give
            store._disk.create(StoreMeta(uuid.uuid4().hex, time.time(), json.loads(spec_json), ins, outs))

        store._start_locked(start)
        logger.info("%s: created campaign store (d=%d, m=%d)", store.path, len(ins), len(outs))
        return store

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        mode: Literal["r", "a"] = "r",
        *,
        force_unlock: bool = False,
        keep_checkpoints: int = 3,
        snapshot_interval: float = 30.0,
    ) -> CampaignStore:
        """Open an existing store.

        ``"r"`` takes no lock and works on a finished store, a killed one, and
        one a live driver is writing (it reads the ``.h5`` plus the journal
        records past it). ``"a"`` takes the lock, replays the journal left by a
        killed driver, writes a fresh snapshot, and opens for writing.

        Args:
            path: The ``.h5`` file.
            mode: ``"r"`` (read-only) or ``"a"`` (resume writing).
            force_unlock: Break a lock held by a driver on another host (only
                when you know it is gone; one still alive stops at its next
                write with :class:`~surrogate_al.store.lock.LockLostError`).
                A live holder on this host is never broken.
            keep_checkpoints: How many of the latest checkpoints the ``.h5`` keeps.
            snapshot_interval: See :meth:`create`.

        Returns:
            The store.

        Raises:
            NotACampaignStoreError: Missing, empty, not HDF5, not a campaign store,
                truncated or damaged, or of another schema version.
            StoreLockedError: ``mode="a"`` and another live driver holds the lock.
            CorruptJournalError: The journal is corrupt before its last line, or
                belongs to another store (a ``StoreError``).
        """
        if mode not in ("r", "a"):
            raise StoreError(f"mode must be 'r' or 'a', got {mode!r}")
        store = cls(Path(path), mode, keep_checkpoints, snapshot_interval)
        if mode == "r":
            store._disk.load(writer=False)
            store._adopt_meta()
            return store
        check_exists(store.path)  # before taking the lock: a typo must not leave a lock file behind
        store._take_lock(force_unlock=force_unlock)
        applied = store._start_locked(store._disk.open_for_writing)
        logger.info(
            "%s: opened for writing (%d proposals, %d runs; %d journal records replayed)",
            store.path,
            store._disk.ledger.tables["proposals"].n,
            store._disk.ledger.tables["runs"].n,
            applied,
        )
        return store

    def _start_locked(self, start: Callable[[], _T]) -> _T:
        """Run ``start`` (create or replay) under the lock just taken; release the lock if it fails."""
        try:
            result = start()
            self._adopt_meta()
        except BaseException:
            self._release_lock()
            raise
        _OPEN_STORES.add(self)
        return result

    def _take_lock(self, *, force_unlock: bool) -> None:
        """Take the lock and fence every later write of this store with it."""
        self._lock = Lock.acquire(self._lock_path, self.path, force_unlock=force_unlock)
        self._disk.fence = self._lock.check
        self._disk.lock_token = self._lock.info.token

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    # ----------------------------------------------------------------- writing records

    def _write(self, kind: str, rows: list[dict[str, Any]]) -> None:
        """Journal a record durably, then apply it; snapshot when due."""
        with self._mutex:
            self._require_writable()
            self._disk.record(kind, rows)

    def _require_writable(self) -> None:
        if self._closed:
            raise StoreError(f"{self.path}: the store is closed; open it again with CampaignStore.open(path, 'a')")
        if self._mode != "a":
            raise StoreError(
                f"{self.path}: opened read-only; open it with CampaignStore.open(path, 'a') to write"
            )

    def snapshot(self) -> None:
        """Rewrite the ``.h5`` now so plain HDF5 readers see every record.

        Records are durable without it (the journal); this only refreshes the
        view. Costs a rewrite of the whole file.

        Raises:
            StoreError: The store is read-only or closed.
        """
        with self._mutex:
            self._require_writable()
            self._disk.snapshot()

    # ----------------------------------------------------------------- writes

    def add_proposals(
        self,
        inputs: ArrayLike,
        unit: ArrayLike,
        *,
        batch_id: int,
        U: ArrayLike | None = None,
        D: ArrayLike | None = None,
        J: ArrayLike | None = None,
        lam: float = float("nan"),
        surrogate_version: int = -1,
        source: str,
    ) -> list[int]:
        """Record a batch of proposed points (one durable record for the batch).

        Args:
            inputs: ``(q, d)`` points in physical units.
            unit: ``(q, d)`` the same points in the unit cube.
            batch_id: The batch number.
            U: ``(q,)`` uncertainty scores, or None (NaN).
            D: ``(q,)`` diversity scores, or None (NaN).
            J: ``(q,)`` hybrid scores, or None (NaN).
            lam: The lambda used for J (NaN when not scored).
            surrogate_version: Version of the surrogate that proposed them (-1: none).
            source: "initial" or the policy's name.

        Returns:
            The new proposal ids, consecutive, in row order.

        Raises:
            StoreError: Read-only store, or an argument has the wrong shape/type.
        """
        rows = proposal_rows(
            self.input_names, inputs, unit, {"U": U, "D": D, "J": J},
            batch_id=batch_id, lam=lam, surrogate_version=surrogate_version, source=source,
        )
        if not rows:
            return []
        with self._mutex:
            self._require_writable()
            first = self._disk.ledger.tables["proposals"].n
            now = time.time()
            self._write("proposals", [{**row, "proposal_id": first + i, "created": now} for i, row in enumerate(rows)])
            return list(range(first, first + len(rows)))

    def add_run(
        self,
        *,
        proposal_id: int,
        attempt: int,
        final: bool,
        status: str,
        outputs: Mapping[str, float] | None,
        reason: str = "",
        stderr_tail: str = "",
        submit_time: float,
        start_time: float,
        finish_time: float,
        wall_time: float,
        worker: str = "",
        host: str = "",
    ) -> int:
        """Record one attempt of a proposal; durable before it returns.

        The keywords are the caller columns of ``RUN_COLUMNS`` (checked on import).

        Args:
            proposal_id: The proposal evaluated.
            attempt: 1-based attempt number (unique per proposal).
            final: True when this attempt settles the proposal; must be True for "ok".
            status: One of :data:`RUN_STATUSES`.
            outputs: For "ok", a value for every output name (finite); ignored
                (stored as NaN) for other statuses.
            reason: Why it failed.
            stderr_tail: Last lines of stderr.
            submit_time: Epoch seconds when submitted.
            start_time: Epoch seconds when started.
            finish_time: Epoch seconds when finished.
            wall_time: Seconds it ran.
            worker: Dask worker address or name.
            host: Worker host name.

        Returns:
            The new run_id.

        Raises:
            StoreError: Unknown proposal or status, the proposal already has a
                final run (exactly-once guard), a repeated attempt number, bad
                outputs, or a read-only store.
        """
        given = dict(locals())  # exactly the keywords: this is the first statement
        del given["self"]
        values = run_values(given, self.output_names)
        pid, att = values["proposal_id"], values["attempt"]
        with self._mutex:
            self._require_writable()
            self._disk.ledger.check_settle(pid, "add_run")
            if self._disk.ledger.has_attempt(pid, att):
                raise StoreError(
                    f"{self.path}: add_run: proposal_id {pid} already has attempt {att}; number retries 1, 2, 3, ..."
                )
            run_id = self._disk.ledger.tables["runs"].n
            self._write("run", [run_row(values, run_id=run_id, inputs=self._disk.ledger.proposal_inputs(pid))])
            return run_id

    def mark_submitted(self, proposal_id: int, attempt: int, submit_time: float) -> None:
        """Record that an attempt of a proposal was handed to a worker (for ``status``).

        Raises:
            StoreError: Unknown or already settled proposal, or a read-only store.
        """
        pid = as_int("mark_submitted: proposal_id", proposal_id)
        att = as_int("mark_submitted: attempt", attempt)
        if att < 1:
            raise StoreError(f"mark_submitted: attempt must be >= 1 (1-based), got {att}")
        t = as_float("mark_submitted: submit_time", submit_time)
        with self._mutex:
            self._require_writable()
            self._disk.ledger.check_settle(pid, "mark_submitted")
            self._write("submitted", [{"proposal_id": pid, "attempt": att, "submit_time": t}])

    def save_checkpoint(self, *, version: int, n_results: int, surrogate_state: bytes, policy_state: bytes) -> None:
        """Save a checkpoint; the ``.h5`` keeps the latest ``keep_checkpoints`` of them.

        Raises:
            StoreError: A payload is not bytes, or a read-only store.
        """
        payloads = {}
        for name, value in (("surrogate_state", surrogate_state), ("policy_state", policy_state)):
            if not isinstance(value, (bytes, bytearray, memoryview)):
                raise StoreError(f"save_checkpoint: {name} must be bytes, got {type(value).__name__}")
            payloads[name] = base64.b64encode(bytes(value)).decode("ascii")
        row = {
            "version": as_int("save_checkpoint: version", version),
            "n_results": as_int("save_checkpoint: n_results", n_results),
            "created": time.time(),
            **payloads,
        }
        self._write("checkpoint", [row])

    def add_metric(self, *, n_results: int, name: str, value: float) -> None:
        """Record a metric value (e.g. ``"estimated_nrmse"``, ``"test_nrmse"``, ``"lambda"``).

        Raises:
            StoreError: Bad argument, or a read-only store.
        """
        row = {
            "n_results": as_int("add_metric: n_results", n_results),
            "name": as_text("add_metric: name", name, nonempty=True),
            "value": as_float("add_metric: value", value),
        }
        self._write("metric", [row])

    def add_event(self, kind: str, message: str) -> None:
        """Record an event ("started", "resumed", "stopped", "breaker", "completed", "error", ...).

        Raises:
            StoreError: Bad argument, or a read-only store.
        """
        row = {
            "time": time.time(),
            "kind": as_text("add_event: kind", kind, nonempty=True),
            "message": as_text("add_event: message", message),
        }
        self._write("event", [row])

    def set_state(self, status: str, reason: str = "") -> None:
        """Set the campaign state (an append-only log; the latest entry wins).

        Raises:
            StoreError: Unknown status, or a read-only store.
        """
        status = as_text("set_state: status", status)
        if status not in CAMPAIGN_STATES:
            raise StoreError(f"set_state: status {status!r} is unknown; expected one of {CAMPAIGN_STATES}")
        self._write("state", [{"time": time.time(), "status": status, "reason": as_text("set_state: reason", reason)}])

    # ----------------------------------------------------------------- reads

    def proposals(self) -> list[ProposalRecord]:
        """All proposals, in proposal order."""
        with self._mutex:
            return self._disk.ledger.proposals()

    def runs(self) -> list[RunRecord]:
        """All attempts, in run order."""
        with self._mutex:
            return self._disk.ledger.runs()

    def final_runs(self) -> list[RunRecord]:
        """The final run of every settled proposal, in run order."""
        return [r for r in self.runs() if r.final]

    def pending_proposal_ids(self) -> list[int]:
        """Proposals without a final run, in proposal order (what a resumed driver must still run)."""
        with self._mutex:
            return self._disk.ledger.pending()

    def latest_checkpoint(self) -> Checkpoint | None:
        """The last checkpoint saved, or None."""
        with self._mutex:
            return self._disk.ledger.latest_checkpoint()

    def metrics(self) -> list[tuple[int, str, float]]:
        """All metric values as ``(n_results, name, value)``, in recording order."""
        with self._mutex:
            return self._disk.ledger.metrics()

    def events(self) -> list[tuple[float, str, str]]:
        """All events as ``(time, kind, message)``, in recording order."""
        with self._mutex:
            return self._disk.ledger.events()

    def state(self) -> tuple[str, str]:
        """The latest ``(status, reason)``; ``("created", "")`` before the first :meth:`set_state`."""
        with self._mutex:
            return self._disk.ledger.state()

    def arrays(self) -> dict[str, NDArray[Any]]:
        """Columnar, read-only view of all runs (every attempt).

        Returns:
            ``run_id``, ``proposal_id``, ``attempt`` (int64, ``(n,)``), ``final``
            (bool), ``status``, ``reason``, ``worker``, ``host`` (numpy str),
            ``X`` (``(n, d)``), ``Y`` (``(n, m)``, NaN unless ok), ``wall_time``,
            ``submit_time``, ``start_time``, ``finish_time`` (float64).
        """
        with self._mutex:
            return self._disk.ledger.arrays()

    def summary(self) -> dict[str, Any]:
        """Status of the campaign, for ``surrogate-al status``.

        Returns:
            A dict with ``path``, ``created``, ``state``, ``state_reason``,
            ``budget`` (``spec["campaign"]["budget"]`` or None), ``n_proposals``,
            ``n_final``, ``status_counts`` (status -> count among final runs),
            ``n_attempts``, ``in_flight`` (proposed or submitted, not settled),
            ``n_submitted`` (of those, handed to a worker), ``metrics`` (name ->
            last value), ``checkpoint_version``, ``checkpoint_n_results`` and
            ``checkpoint_time`` (None without a checkpoint), ``journal_records``
            (records not yet in the ``.h5`` snapshot).
        """
        with self._mutex:
            tables = self._disk.ledger.tables
            runs = tables["runs"]
            final = runs.column("final")
            statuses, counts = np.unique(runs.column("status")[final], return_counts=True)
            campaign = self.spec.get("campaign")
            budget = campaign.get("budget") if isinstance(campaign, dict) else None
            last_metric: dict[str, float] = {}
            for _, name, value in self._disk.ledger.metrics():
                last_metric[name] = value
            ckpt = tables["checkpoints"]
            state, reason = self._disk.ledger.state()
            return {
                "path": str(self.path),
                "created": self._disk.meta.created,
                "state": state,
                "state_reason": reason,
                "budget": budget,
                "n_proposals": tables["proposals"].n,
                "n_final": int(final.sum()),
                "status_counts": {str(k): int(v) for k, v in zip(statuses, counts)},
                "n_attempts": runs.n,
                "in_flight": self._disk.ledger.n_pending(),
                "n_submitted": self._disk.ledger.n_submitted(),
                "metrics": last_metric,
                "checkpoint_version": int(ckpt.column("version")[-1]) if ckpt.n else None,
                "checkpoint_n_results": int(ckpt.column("n_results")[-1]) if ckpt.n else None,
                "checkpoint_time": float(ckpt.column("created")[-1]) if ckpt.n else None,
                "journal_records": self._disk.seq - self._disk.snap_seq,
            }

    # ----------------------------------------------------------------- closing

    @property
    def mode(self) -> Literal["r", "a"]:
        """``"r"`` or ``"a"``."""
        return self._mode

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def close(self) -> None:
        """Fold the journal into the ``.h5`` (atomic rewrite), remove it and release the lock.

        After a successful close the campaign is the single ``.h5`` file. If the
        final snapshot fails the journal is kept (nothing is lost) and the error
        is raised; the lock is released either way. A store whose lock was taken
        over (:class:`~surrogate_al.store.lock.LockLostError`) writes nothing
        more: close only closes its journal. Idempotent.
        """
        with self._mutex:
            if self._closed:
                return
            self._closed = True
            _OPEN_STORES.discard(self)
            if self._mode != "a":
                return
            if self._lock is not None and self._lock.lost:
                # Another driver holds the store now: fold nothing, leave its lock alone.
                self._disk.close_journal()
                self._lock = None
                logger.info("%s: closed without folding: the lock was taken over", self.path)
                return
            try:
                self._disk.fold()
            finally:
                self._disk.close_journal()
                self._release_lock()
            logger.info("%s: closed (%d runs)", self.path, self._disk.ledger.tables["runs"].n)

    def __enter__(self) -> CampaignStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"mode={self._mode!r}"
        tables = self._disk.ledger.tables
        return f"CampaignStore({str(self.path)!r}, {state}, proposals={tables['proposals'].n}, runs={tables['runs'].n})"


check_run_arguments(CampaignStore.add_run)
