"""The records of a store in memory: the one path that applies a journal record, and the reads.

A :class:`Ledger` owns the tables and the lookups built from them (the final
run of each proposal, the attempts made, the unsettled proposals); it enforces
that a proposal gets exactly one final run, both for live writes and for a
replayed journal. It is not thread-safe: ``CampaignStore`` serialises calls.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from surrogate_al.errors import StoreError
from surrogate_al.store.records import RUN_COLUMNS, Checkpoint, ProposalRecord, RunRecord
from surrogate_al.store.tables import KIND_TABLE, Table

__all__ = ["ARRAY_COLUMNS", "INITIAL_STATE", "Ledger"]

INITIAL_STATE = "created"
"""What :meth:`Ledger.state` reports before the first ``set_state``."""

ARRAY_COLUMNS: tuple[str, ...] = (
    "run_id", "proposal_id", "attempt", "final", "status", "X", "Y", "reason",
    "wall_time", "submit_time", "start_time", "finish_time", "worker", "host",
)
"""The run columns :meth:`Ledger.arrays` returns, in its order."""

_R = TypeVar("_R")


class Ledger:
    """The tables of one store plus their lookups.

    Args:
        path: The store's ``.h5`` path (named in error messages).
        tables: The tables, as made by ``make_tables`` or read from a snapshot.
        keep_checkpoints: How many of the latest checkpoints to keep.
    """

    def __init__(self, path: Path, tables: dict[str, Table], keep_checkpoints: int) -> None:
        self.path = path
        self.tables = tables
        self._keep_checkpoints = keep_checkpoints
        self._final_of: dict[int, int] = {}  # proposal_id -> run_id of its final run
        self._attempts: set[tuple[int, int]] = set()
        self._pending: dict[int, None] = {}  # insertion-ordered set of unsettled proposal ids
        self._submitted: dict[int, float] = {}  # proposal_id -> last submit time (pending only)
        self._records_cache: dict[str, list[Any]] = {}
        self._reindex()

    def _reindex(self) -> None:
        """Build the lookups from the loaded columns (vectorised: 100 000 runs in ms)."""
        runs = self.tables["runs"]
        pids = runs.column("proposal_id")
        final = runs.column("final")
        self._attempts = set(zip(pids.tolist(), runs.column("attempt").tolist()))
        self._final_of = dict(zip(pids[final].tolist(), runs.column("run_id")[final].tolist()))
        settled = np.zeros(self.tables["proposals"].n, dtype=bool)
        settled[pids[final]] = True
        self._pending = dict.fromkeys(np.flatnonzero(~settled).tolist())
        subs = self.tables["submissions"]
        self._submitted = {
            pid: t
            for pid, t in zip(subs.column("proposal_id").tolist(), subs.column("submit_time").tolist())
            if pid in self._pending
        }

    # ----------------------------------------------------------------- applying records

    def check_settle(self, proposal_id: int, what: str) -> None:
        """Raise unless ``proposal_id`` exists and has no final run yet (the exactly-once guard).

        Raises:
            StoreError: Unknown or already settled proposal.
        """
        n = self.tables["proposals"].n
        if not 0 <= proposal_id < n:
            raise StoreError(
                f"{self.path}: {what} for unknown proposal_id {proposal_id} (the store has proposals 0..{n - 1})"
            )
        if proposal_id in self._final_of:
            raise StoreError(
                f"{self.path}: {what} for proposal_id {proposal_id}, which is already settled by run "
                f"{self._final_of[proposal_id]}; a proposal gets exactly one final run"
            )

    def has_attempt(self, proposal_id: int, attempt: int) -> bool:
        """Whether a run of this attempt of the proposal is recorded."""
        return (proposal_id, attempt) in self._attempts

    def proposal_inputs(self, proposal_id: int) -> list[float]:
        """The ``d`` physical inputs of a proposal."""
        return self.tables["proposals"].column("X")[proposal_id].tolist()

    def apply(self, rec: Mapping[str, Any]) -> None:
        """Apply one journal record: the one path for live writes and replay.

        Raises:
            StoreError: Unknown kind, ids out of order, or a second final run.
            KeyError, ValueError, TypeError, binascii.Error: A row is malformed.
        """
        kind = rec["kind"]
        if kind not in KIND_TABLE:
            raise StoreError(f"unknown record kind {kind!r}")
        table = self.tables[KIND_TABLE[kind]]
        rows = rec["rows"]
        if kind == "proposals":
            for row in rows:
                if row["proposal_id"] != table.n:
                    raise StoreError(f"proposal_id {row['proposal_id']} out of order (expected {table.n})")
                table.append(row)
                self._pending[row["proposal_id"]] = None
        elif kind == "run":
            (row,) = rows
            pid, attempt = row["proposal_id"], row["attempt"]
            if row["run_id"] != table.n:
                raise StoreError(f"run_id {row['run_id']} out of order (expected {table.n})")
            self.check_settle(pid, "run")
            if (pid, attempt) in self._attempts:
                raise StoreError(f"proposal_id {pid} already has an attempt {attempt}")
            table.append(row)
            self._attempts.add((pid, attempt))
            if row["final"]:
                self._final_of[pid] = row["run_id"]
                self._pending.pop(pid, None)
                self._submitted.pop(pid, None)
        elif kind == "submitted":
            (row,) = rows
            self.check_settle(row["proposal_id"], "submission")
            table.append(row)
            self._submitted[row["proposal_id"]] = float(row["submit_time"])
        else:
            for row in rows:
                table.append(row)
            if kind == "checkpoint":
                table.keep_last(self._keep_checkpoints)
        self._records_cache.pop(KIND_TABLE[kind], None)

    # ----------------------------------------------------------------- reads

    def _cached(self, table: str, build: Callable[[], list[_R]]) -> list[_R]:
        if table not in self._records_cache:
            self._records_cache[table] = build()
        return list(self._records_cache[table])

    def _build_proposals(self) -> list[ProposalRecord]:
        t = self.tables["proposals"]
        X, Z = t.column("X"), t.column("unit")
        cols = {c.name: t.values(c.name) for c in t.cols if c.kind != "in"}
        return [
            ProposalRecord(
                proposal_id=cols["proposal_id"][i],
                batch_id=cols["batch_id"][i],
                inputs=X[i],
                unit=Z[i],
                U=cols["U"][i],
                D=cols["D"][i],
                J=cols["J"][i],
                lam=cols["lam"][i],
                surrogate_version=cols["surrogate_version"][i],
                source=cols["source"][i],
                created=cols["created"][i],
            )
            for i in range(t.n)
        ]

    def _build_runs(self) -> list[RunRecord]:
        t = self.tables["runs"]
        columns: list[Any] = []
        for c in RUN_COLUMNS:  # in RunRecord's field order
            if c.kind in ("in", "out"):
                rows = t.column(c.name).copy()
                rows.flags.writeable = False  # the records' vectors are views of these
                columns.append(rows)
            else:
                columns.append(t.values(c.name))
        return [RunRecord(*values) for values in zip(*columns)]

    def proposals(self) -> list[ProposalRecord]:
        """All proposals, in proposal order."""
        return self._cached("proposals", self._build_proposals)

    def runs(self) -> list[RunRecord]:
        """All attempts, in run order."""
        return self._cached("runs", self._build_runs)

    def pending(self) -> list[int]:
        """Proposals without a final run, in proposal order."""
        return list(self._pending)

    def n_pending(self) -> int:
        """How many proposals have no final run."""
        return len(self._pending)

    def n_submitted(self) -> int:
        """How many unsettled proposals were handed to a worker."""
        return len(self._submitted)

    def latest_checkpoint(self) -> Checkpoint | None:
        """The last checkpoint saved, or None."""
        t = self.tables["checkpoints"]
        if t.n == 0:
            return None
        i = t.n - 1
        return Checkpoint(
            version=int(t.column("version")[i]),
            n_results=int(t.column("n_results")[i]),
            created=float(t.column("created")[i]),
            surrogate_state=t.values("surrogate_state")[i],
            policy_state=t.values("policy_state")[i],
        )

    def metrics(self) -> list[tuple[int, str, float]]:
        """All metric values as ``(n_results, name, value)``, in recording order."""
        t = self.tables["metrics"]
        return list(zip(t.values("n_results"), t.values("name"), t.values("value")))

    def events(self) -> list[tuple[float, str, str]]:
        """All events as ``(time, kind, message)``, in recording order."""
        t = self.tables["events"]
        return list(zip(t.values("time"), t.values("kind"), t.values("message")))

    def state(self) -> tuple[str, str]:
        """The latest ``(status, reason)``; ``(INITIAL_STATE, "")`` before the first state record."""
        t = self.tables["state"]
        if t.n == 0:
            return (INITIAL_STATE, "")
        return (t.values("status")[-1], t.values("reason")[-1])

    def arrays(self) -> dict[str, NDArray[Any]]:
        """Read-only copies of the :data:`ARRAY_COLUMNS` of every run.

        Returns:
            Column name -> ``(n,)`` array; ``X`` is ``(n, d)`` and ``Y`` ``(n, m)``.
        """
        t = self.tables["runs"]
        out = {}
        for name in ARRAY_COLUMNS:
            col = t.column(name)
            # Numeric columns are views of buffers the writer keeps growing in place; copy them.
            col = col.copy() if col.base is not None else col
            col.flags.writeable = False
            out[name] = col
        return out
