"""The journal ``STORE.h5.journal``: one CRC-checked JSON line per record, fsync'd before it is acknowledged.

The first line is a header (``kind == "header"``) naming the store, the
sequence number of the snapshot the journal continues and the token of the
writer's lock (``lock_token``; headers written before it existed lack it and
load the same); every later line is a
record with the next sequence number. Only the last line may be torn (a write
cut short by a kill): it was never acknowledged and is dropped on reading.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from surrogate_al.errors import CorruptJournalError, StoreError
from surrogate_al.store.fileio import fsync_path, no_space_hint, one_line, sidecar, write_all

__all__ = ["JournalWriter", "ParsedJournal", "decode_record", "encode_record", "header", "parse_journal"]

logger = logging.getLogger(__package__)  # one logger for the store: log lines name "surrogate_al.store"


def encode_record(rec: Mapping[str, Any]) -> bytes:
    """One journal line: canonical JSON of the record plus its CRC-32 as the last key."""
    body = json.dumps(rec, sort_keys=True, separators=(",", ":"))
    crc = zlib.crc32(body.encode("ascii"))
    return f'{body[:-1]},"crc":{crc}}}\n'.encode("ascii")


def decode_record(line: bytes) -> dict[str, Any]:
    """Parse and verify one journal line (without its newline).

    Raises:
        ValueError: Not JSON, no CRC, or CRC mismatch (message says which).
    """
    cut = line.rfind(b',"crc":')
    if cut < 0 or not line.endswith(b"}"):
        raise ValueError("no CRC field")
    body = line[:cut] + b"}"
    try:
        crc = int(line[cut + 7 : -1])
    except ValueError:
        raise ValueError("malformed CRC field") from None
    if zlib.crc32(body) != crc:
        raise ValueError(f"CRC mismatch (stored {crc}, computed {zlib.crc32(body)})")
    try:
        rec = json.loads(body)
    except (ValueError, RecursionError) as exc:  # undecodable, not JSON, a 5000-digit int, too deeply nested
        raise ValueError(f"not JSON ({exc})") from None
    if not isinstance(rec, dict) or not isinstance(rec.get("seq"), int) or not isinstance(rec.get("kind"), str):
        raise ValueError("not a journal record (no integer 'seq' and string 'kind')")
    return rec


def header(seq: int, store_id: str, schema_version: int, lock_token: str = "") -> dict[str, Any]:
    """The first record of a journal that continues the snapshot holding records up to ``seq``.

    ``lock_token`` names the lock of the writer that starts the journal, so a
    journal tells which lock holder wrote it.
    """
    return {
        "seq": seq,
        "kind": "header",
        "store_id": store_id,
        "schema_version": schema_version,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.time(),
        "lock_token": lock_token,
    }


@dataclass(frozen=True)
class ParsedJournal:
    """A journal split into its parts.

    Attributes:
        header: The header record; None for an empty journal.
        records: ``(1-based line number, record)`` of every record after the header.
        torn: Why the last line was dropped; "" when it was not.
    """

    header: dict[str, Any] | None
    records: list[tuple[int, dict[str, Any]]]
    torn: str


def parse_journal(path: Path, data: bytes) -> ParsedJournal:
    """Split a journal into header and records, tolerating only a torn last line.

    Raises:
        CorruptJournalError: A record before the last line is corrupt, or sequence numbers skip.
    """
    lines = data.split(b"\n")
    complete, tail = lines[:-1], lines[-1]
    parsed: list[tuple[int, dict[str, Any]]] = []
    torn = ""
    for i, line in enumerate(complete, start=1):
        try:
            parsed.append((i, decode_record(line)))
        except ValueError as exc:
            if i == len(complete) and not tail:
                torn = f"line {i} is damaged ({exc})"
                break
            raise CorruptJournalError(
                f"{path}: journal line {i} of {len(complete) + bool(tail)} is corrupt ({exc}) and records follow it, "
                "so it is not a torn final write; restore the journal from a backup, or move it aside to "
                "fall back to the last snapshot in the .h5 (losing the records after it)"
            ) from None
    if tail:
        torn = f"line {len(complete) + 1} has no newline ({len(tail)} bytes)"
    first: dict[str, Any] | None = None
    if parsed:
        line_no, first = parsed[0]
        if first["kind"] != "header":
            raise CorruptJournalError(f"{path}: journal line {line_no} is a {first['kind']!r} record, expected the header")
        expected = first["seq"]
        for line_no, rec in parsed[1:]:
            expected += 1
            if rec["seq"] != expected:
                raise CorruptJournalError(
                    f"{path}: journal line {line_no} has seq {rec['seq']}, expected {expected}; "
                    "the journal was edited or spliced — restore it from a backup"
                )
    return ParsedJournal(first, parsed[1:], torn)


def _store_of(path: Path) -> Path:
    return path.with_name(path.name.removesuffix(".journal"))


class JournalWriter:
    """The append side of the journal: one ``os.write`` + ``os.fsync`` per record."""

    def __init__(self, path: Path, fd: int, size: int) -> None:
        self.path = path
        self._fd = fd
        self._size = size
        self._broken = ""

    @classmethod
    def start(cls, path: Path, first: Mapping[str, Any], before_replace: Callable[[], None] = lambda: None) -> JournalWriter:
        """Atomically replace the journal by one holding only the header ``first``.

        Args:
            path: The journal.
            first: The header record.
            before_replace: Called right before the new journal replaces the
                old one (the writer's fence); what it raises leaves the old one.

        Raises:
            StoreError: The new journal could not be written; the old one is in place.
        """
        tmp = sidecar(path, ".tmp")
        line = encode_record(first)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
            try:
                write_all(fd, line)
                os.fsync(fd)
                before_replace()
                os.replace(tmp, path)
            except BaseException:
                os.close(fd)
                raise
        except StoreError:
            raise  # the fence: the file at ``tmp`` may be the new holder's by now
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise StoreError(
                f"{path}: cannot start a new journal ({one_line(exc)}){no_space_hint(exc)}; the "
                f"store on disk is consistent — free disk space or check the file system, then "
                f"`surrogate-al resume {_store_of(path)}`"
            ) from exc
        try:
            fsync_path(path.parent)
        except OSError as exc:  # the new journal is in place; only its durability across a power cut is weaker
            logger.warning("%s: could not fsync the directory after starting the journal: %s", path, exc)
        return cls(path, fd, len(line))

    def append(self, rec: Mapping[str, Any]) -> None:
        """Write one record durably.

        Raises:
            StoreError: The write or fsync failed; the record was not saved.
        """
        if self._broken:
            raise StoreError(self._broken)
        line = encode_record(rec)
        start = self._size
        try:
            write_all(self._fd, line)
            os.fsync(self._fd)
        except OSError as exc:
            # Cut the partial line off, or every later record would be glued to
            # it and the journal would be corrupt in the middle.
            try:
                os.ftruncate(self._fd, start)
                os.fsync(self._fd)
            except OSError:
                self._broken = (
                    f"{self.path}: journal is in an unknown state after an I/O error; "
                    "close the store and resume it with `surrogate-al resume`"
                )
            raise StoreError(
                f"{self.path}: cannot append to the journal ({one_line(exc)}){no_space_hint(exc)}; the record "
                f"was NOT saved, every earlier one is — free disk space or check the file system, then "
                f"`surrogate-al resume {_store_of(self.path)}`"
            ) from exc
        self._size = start + len(line)

    def close(self) -> None:
        """Close the file descriptor (idempotent)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
