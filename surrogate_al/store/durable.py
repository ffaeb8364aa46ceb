"""The on-disk half of a store: the snapshot, the journal past it, and when to rewrite the snapshot.

Truth = the snapshot + the journal records with a higher sequence number. A
record is journaled (fsync'd) before it is applied to memory, so it is durable
when :meth:`DurableStore.record` returns. Opening for writing replays the
records a killed driver left, writes a fresh snapshot and a fresh journal;
:meth:`DurableStore.fold` writes the final snapshot and removes the journal.

Every write is fenced by :attr:`DurableStore.fence` (the writer's lock check):
before a record is written and again after its fsync, before it is applied
and acknowledged, so an acknowledged record was in the journal while this
writer still held the lock, where the next holder reads it; and before every
snapshot, rename and journal removal, so a writer whose lock was taken over
replaces nothing of the new holder's.
"""

from __future__ import annotations

import binascii
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from surrogate_al.errors import CorruptJournalError, StoreError
from surrogate_al.store.fileio import fsync_path, one_line, sidecar
from surrogate_al.store.journal import JournalWriter, header, parse_journal
from surrogate_al.store.ledger import Ledger
from surrogate_al.store.lock import LockLostError
from surrogate_al.store.snapshot import read_snapshot, write_snapshot
from surrogate_al.store.tables import SCHEMA_VERSION, SnapshotContents, StoreMeta, make_tables

__all__ = ["DurableStore"]

logger = logging.getLogger(__package__)  # one logger for the store: log lines name "surrogate_al.store"

_READ_RETRIES = 50  # a reader racing a live writer's snapshot retries this often
_SNAPSHOT_COST_FACTOR = 20.0  # periodic snapshots take at most ~1/20 of the time


def _unfenced(*, full: bool = False) -> None:
    """The fence of a store without a lock (read-only): nothing to check."""


class DurableStore:
    """The snapshot ``path`` and its journal, with the records in memory (:attr:`ledger`).

    Not thread-safe: ``CampaignStore`` serialises calls.

    Args:
        path: The ``.h5`` file.
        keep_checkpoints: How many of the latest checkpoints to keep.
        snapshot_interval: Minimum seconds between automatic snapshots (0: after every record).

    Attributes:
        fence: Raises unless this writer still holds the lock (``full=True``:
            compare the lock file's content, not only its stat); set by the
            lock holder.
        lock_token: The writer's lock token, written into each journal header.
    """

    fence: Callable[..., None]

    def __init__(self, path: Path, keep_checkpoints: int, snapshot_interval: float) -> None:
        self.path = path
        self.journal_path = sidecar(path, ".journal")
        self._tmp_path = sidecar(path, ".tmp")
        self._keep_checkpoints = keep_checkpoints
        self._interval = snapshot_interval
        self._next_snapshot = 0.0
        self._journal: JournalWriter | None = None
        self.seq = 0  # last record applied to memory
        self.snap_seq = -1  # last record in the .h5 on disk
        self.meta = StoreMeta("", 0.0, {}, (), ())
        self.ledger = Ledger(path, make_tables(0, 0), keep_checkpoints)
        self.fence = _unfenced
        self.lock_token = ""

    def _remove_leftovers(self, *extra: Path) -> None:
        for leftover in (*extra, self._tmp_path, sidecar(self.journal_path, ".tmp")):
            leftover.unlink(missing_ok=True)  # a snapshot or journal start interrupted by a kill

    def create(self, meta: StoreMeta) -> None:
        """Start an empty store: write its first snapshot and journal over whatever was there."""
        self._remove_leftovers(self.journal_path)
        self.meta = meta
        self.ledger = Ledger(self.path, make_tables(len(meta.input_names), len(meta.output_names)),
                             self._keep_checkpoints)
        self.snapshot()

    def open_for_writing(self) -> int:
        """Load the store, replay the journal and start a fresh one.

        Returns:
            The number of journal records replayed.
        """
        self._remove_leftovers()
        applied, torn = self.load(writer=True)
        if applied or torn:
            self.snapshot()  # make the .h5 whole again and drop the torn line
        else:
            self._start_journal()
            self._next_snapshot = time.monotonic() + self._interval
        return applied

    def load(self, *, writer: bool) -> tuple[int, bool]:
        """Load the snapshot and apply the journal records past it.

        Args:
            writer: Whether a resuming writer loads (else a reader, which may
                race a live writer and then retries).

        Returns:
            (number of journal records applied, whether a torn last line was dropped).

        Raises:
            NotACampaignStoreError: The ``.h5`` is not a readable store.
            CorruptJournalError: The journal is corrupt, spliced, or of another store.
        """
        for _ in range(_READ_RETRIES):
            snap = read_snapshot(self.path)
            self.meta = snap.meta
            self.snap_seq = self.seq = snap.seq
            self.ledger = Ledger(self.path, snap.tables, self._keep_checkpoints)
            try:
                data = self.journal_path.read_bytes()
            except FileNotFoundError:
                return 0, False
            journal = parse_journal(self.journal_path, data)
            if journal.torn:
                # A reader may catch a live writer mid-line; only a resuming writer reports it.
                log = logger.warning if writer else logger.debug
                log("%s: dropping the torn last journal record: %s (it was never acknowledged)",
                    self.journal_path, journal.torn)
            if journal.header is None:
                return 0, bool(journal.torn)
            if journal.header.get("store_id") != self.meta.store_id:
                raise CorruptJournalError(
                    f"{self.journal_path}: journal belongs to another store (store_id "
                    f"{journal.header.get('store_id')!r}, the .h5 has {self.meta.store_id!r}); move it aside if the "
                    ".h5 is the copy you want"
                )
            if journal.header["seq"] > self.seq:
                if writer:
                    raise CorruptJournalError(
                        f"{self.journal_path}: journal starts after record {journal.header['seq']} but the .h5 only "
                        f"holds up to {self.seq}; the records in between are missing (was the .h5 replaced by an "
                        "older copy?) — put the matching .h5 back"
                    )
                time.sleep(0.02)  # a live writer replaced the .h5 and journal between our reads
                continue
            applied = 0
            for line_no, rec in journal.records:
                if rec["seq"] <= self.seq:
                    continue
                try:
                    self.ledger.apply(rec)
                except (StoreError, KeyError, ValueError, TypeError, binascii.Error) as exc:
                    raise CorruptJournalError(
                        f"{self.journal_path}: journal line {line_no} ({rec.get('kind')!r} record, seq {rec['seq']}) "
                        f"cannot be applied: {one_line(exc)}; the journal is inconsistent — restore it from a backup"
                    ) from None
                self.seq = rec["seq"]
                applied += 1
            return applied, bool(journal.torn)
        raise StoreError(f"{self.path}: the store kept changing while being read; retry")

    def record(self, kind: str, rows: list[dict[str, Any]]) -> None:
        """Journal a record durably, then apply it; snapshot when due.

        Raises:
            StoreError: The journal write failed (the record was not saved).
        """
        assert self._journal is not None
        rec = {"seq": self.seq + 1, "kind": kind, "rows": rows}
        self.fence()
        self._journal.append(rec)
        # Durable and still ours: the next holder reads the journal only after breaking
        # this lock, so from here the record is acknowledged.
        self.fence()
        self.ledger.apply(rec)
        self.seq += 1
        if time.monotonic() >= self._next_snapshot:
            try:
                self.snapshot()
            except LockLostError:
                # The record was acknowledged under the lock; the next write reports the loss.
                logger.debug("%s: periodic snapshot skipped: the lock was taken over", self.path)
            except Exception as exc:  # h5py raises OSError, RuntimeError, ... on a full disk
                # The record is safe in the journal; a failed snapshot is retried later.
                self._next_snapshot = time.monotonic() + max(self._interval, 5.0)
                logger.warning("%s: snapshot failed, will retry (records are safe in the journal): %s",
                               self.path, one_line(exc))

    def _start_journal(self) -> None:
        """Replace the journal by an empty one that starts at the snapshot's sequence number."""
        new = JournalWriter.start(
            self.journal_path, header(self.seq, self.meta.store_id, SCHEMA_VERSION, self.lock_token), self.fence
        )
        self.close_journal()
        self._journal = new

    def snapshot(self, *, restart_journal: bool = True) -> None:
        """Atomically rewrite the .h5 from memory, then restart the journal from it.

        Raises:
            StoreError: The snapshot or the new journal could not be written.
        """
        t0 = time.monotonic()
        self.fence(full=True)
        write_snapshot(self.path, self._tmp_path, SnapshotContents(self.meta, self.seq, self.ledger.tables), self.fence)
        self.snap_seq = self.seq
        if restart_journal:
            self._start_journal()
        took = time.monotonic() - t0
        # Keep periodic snapshots to a small share of the run time on big stores
        # (an interval of 0 is an explicit request for one after every record).
        wait = self._interval and max(self._interval, _SNAPSHOT_COST_FACTOR * took)
        self._next_snapshot = time.monotonic() + wait
        logger.debug("%s: snapshot at record %d took %.3f s", self.path, self.seq, took)

    def fold(self) -> None:
        """Write the final snapshot (when records are past it) and remove the journal.

        Raises:
            StoreError: The final snapshot failed; the journal is kept.
        """
        if self.snap_seq != self.seq:
            self.snapshot(restart_journal=False)
        self.close_journal()
        self.fence()  # the journal at this path may be a new holder's
        self.journal_path.unlink(missing_ok=True)
        fsync_path(self.path.parent)

    def close_journal(self) -> None:
        """Close the journal's file descriptor, if open (idempotent)."""
        if self._journal is not None:
            self._journal.close()
            self._journal = None
