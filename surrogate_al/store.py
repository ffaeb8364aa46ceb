"""The campaign store: one HDF5 file per campaign, durable across a SIGKILL.

Everything a campaign knows lives in ``STORE.h5``: the spec, the proposals
with their scores, every attempt of every run (inputs, outputs, status,
timings, worker), checkpoints, metrics, events and the campaign state.

Durability model (see ``docs/store.md`` for the full argument):

* While a driver runs, the source of truth for its new records is an
  append-only journal ``STORE.h5.journal`` beside the file: one JSON line per
  record, written with ``os.write`` and ``os.fsync`` before the call that made
  it returns. A record is *acknowledged* when that call returns.
* The ``.h5`` file is a snapshot that is **never modified in place**: every
  snapshot is written to ``STORE.h5.tmp``, fsync'd, ``os.replace``'d over the
  old file and the directory fsync'd; then the journal is restarted from that
  snapshot. A SIGKILL at any instant therefore leaves either the old or the
  new complete file, always readable with plain ``h5py.File(path, "r")``.
  (Appending in place under SWMR was measured here and rejected: after a
  SIGKILL such a file opens only with ``swmr=True``; plain readers get
  "file is already open for write (may use <h5clear file> ...)".)
* Truth = the snapshot + the journal records with a higher sequence number.
  ``open(mode="a")`` replays them, writes a fresh snapshot and a fresh journal.
  ``close()`` writes the final snapshot and removes the journal, so a finished
  campaign is one ``.h5`` file.

A lock file ``STORE.h5.lock`` (created with ``O_CREAT | O_EXCL``) keeps a
second driver out; read-only opens take no lock.
"""

from __future__ import annotations

import atexit
import base64
import binascii
import errno
import json
import logging
import math
import operator
import os
import re
import socket
import sys
import threading
import time
import uuid
import weakref
import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import h5py
import numpy as np
import psutil
from numpy.typing import ArrayLike, NDArray

from surrogate_al.errors import CorruptJournalError, NotACampaignStoreError, StoreError, StoreLockedError

__all__ = [
    "CAMPAIGN_STATES",
    "FORMAT",
    "RUN_STATUSES",
    "SCHEMA_VERSION",
    "CampaignStore",
    "Checkpoint",
    "ProposalRecord",
    "RunRecord",
]

logger = logging.getLogger(__name__)

SCHEMA_VERSION: int = 1
"""Version of the HDF5 layout; files with a newer one are refused."""

FORMAT = "surrogate_al.campaign"
"""Value of the root attribute ``format`` that marks a campaign store."""

RUN_STATUSES: tuple[str, ...] = ("ok", "failed", "timeout", "invalid", "lost")
"""Allowed :attr:`RunRecord.status` values."""

CAMPAIGN_STATES: tuple[str, ...] = ("running", "completed", "stopped", "failed")
"""Allowed values of :meth:`CampaignStore.set_state`."""

_INITIAL_STATE = "created"  # what state() reports before the first set_state
_LOCK_WAIT_S = 0.9  # create/open(mode="a") must give up within 1 s
_LOCK_WRITE_GRACE_S = 2.0  # an unreadable lock younger than this is being written
_READ_RETRIES = 50  # a reader racing a live writer's snapshot retries this often
_SNAPSHOT_COST_FACTOR = 20.0  # periodic snapshots take at most ~1/20 of the time
_CHUNK_BYTES = 1 << 20  # target chunk size of the HDF5 datasets


# --------------------------------------------------------------------------- records


class _ArrayRecordEq:
    """Field-wise equality for records holding arrays (NaN equals NaN).

    Dataclass-generated ``__eq__`` would compare ndarrays with ``==`` and fail
    with "truth value is ambiguous"; records read back after a reopen must
    compare equal to the ones written, NaN scores included.
    """

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        for f in fields(self):  # type: ignore[arg-type]
            a, b = getattr(self, f.name), getattr(other, f.name)
            if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
                if not np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True):
                    return False
            elif isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
                continue
            elif a != b:
                return False
        return True


@dataclass(frozen=True, eq=False)
class RunRecord(_ArrayRecordEq):
    """One attempt of one proposal.

    Attributes:
        run_id: 0, 1, 2, ... in order of recording.
        proposal_id: The proposal this attempt evaluated.
        attempt: 1-based attempt number.
        final: True when this attempt settles the proposal (ok, or failed after
            the last retry).
        status: One of :data:`RUN_STATUSES` ("invalid": bad output; "lost":
            the worker died).
        inputs: ``d`` inputs in physical units (copied from the proposal).
        outputs: ``m`` outputs; NaN unless ``status == "ok"``.
        reason: Why the run failed (empty when ok).
        stderr_tail: Last lines of the simulator's stderr.
        submit_time: Epoch seconds when submitted.
        start_time: Epoch seconds when the simulator started.
        finish_time: Epoch seconds when it finished.
        wall_time: Seconds the simulator ran.
        worker: Dask worker address or name.
        host: Host name of the worker.
    """

    run_id: int
    proposal_id: int
    attempt: int
    final: bool
    status: str
    inputs: NDArray[np.float64]
    outputs: NDArray[np.float64]
    reason: str
    stderr_tail: str
    submit_time: float
    start_time: float
    finish_time: float
    wall_time: float
    worker: str
    host: str


@dataclass(frozen=True, eq=False)
class ProposalRecord(_ArrayRecordEq):
    """One proposed point.

    Attributes:
        proposal_id: 0, 1, 2, ... in order of proposal.
        batch_id: The batch the point was proposed in.
        inputs: ``d`` inputs in physical units.
        unit: ``d`` inputs in the unit cube.
        U: Uncertainty score (NaN where not scored: initial design, baselines).
        D: Diversity score (NaN where not scored).
        J: Hybrid score (NaN where not scored).
        lam: The lambda of the hybrid score (NaN where not scored).
        surrogate_version: Version of the surrogate that proposed it (-1: none).
        source: "initial" or the policy's name.
        created: Epoch seconds when recorded.
    """

    proposal_id: int
    batch_id: int
    inputs: NDArray[np.float64]
    unit: NDArray[np.float64]
    U: float
    D: float
    J: float
    lam: float
    surrogate_version: int
    source: str
    created: float


@dataclass(frozen=True, eq=False)
class Checkpoint(_ArrayRecordEq):
    """A checkpoint of the learned state (opaque bytes the campaign serialises).

    Attributes:
        version: Surrogate version the checkpoint belongs to.
        n_results: Number of final results the surrogate was fitted on.
        created: Epoch seconds when saved.
        surrogate_state: Serialised surrogate.
        policy_state: Serialised policy (RNG state, lambda schedule, ...).
    """

    version: int
    n_results: int
    created: float
    surrogate_state: bytes
    policy_state: bytes


# --------------------------------------------------------------------------- tables

_Kind = Literal["int", "float", "bool", "str", "bytes", "in", "out"]
_NP_DTYPES: dict[str, str] = {"int": "<i8", "float": "<f8", "bool": "?", "in": "<f8", "out": "<f8"}


@dataclass(frozen=True)
class _Col:
    name: str
    kind: _Kind


# One table per HDF5 group; every record kind appends rows to exactly one table.
_TABLES: dict[str, tuple[_Col, ...]] = {
    "proposals": (
        _Col("proposal_id", "int"),
        _Col("batch_id", "int"),
        _Col("X", "in"),
        _Col("unit", "in"),
        _Col("U", "float"),
        _Col("D", "float"),
        _Col("J", "float"),
        _Col("lam", "float"),
        _Col("surrogate_version", "int"),
        _Col("source", "str"),
        _Col("created", "float"),
    ),
    "runs": (
        _Col("run_id", "int"),
        _Col("proposal_id", "int"),
        _Col("attempt", "int"),
        _Col("final", "bool"),
        _Col("status", "str"),
        _Col("X", "in"),
        _Col("Y", "out"),
        _Col("reason", "str"),
        _Col("stderr_tail", "str"),
        _Col("submit_time", "float"),
        _Col("start_time", "float"),
        _Col("finish_time", "float"),
        _Col("wall_time", "float"),
        _Col("worker", "str"),
        _Col("host", "str"),
    ),
    "submissions": (
        _Col("proposal_id", "int"),
        _Col("attempt", "int"),
        _Col("submit_time", "float"),
    ),
    "checkpoints": (
        _Col("version", "int"),
        _Col("n_results", "int"),
        _Col("created", "float"),
        _Col("surrogate_state", "bytes"),
        _Col("policy_state", "bytes"),
    ),
    "metrics": (
        _Col("n_results", "int"),
        _Col("name", "str"),
        _Col("value", "float"),
    ),
    "events": (
        _Col("time", "float"),
        _Col("kind", "str"),
        _Col("message", "str"),
    ),
    "state": (
        _Col("time", "float"),
        _Col("status", "str"),
        _Col("reason", "str"),
    ),
}

# Journal record kind -> table its rows go to.
_KIND_TABLE: dict[str, str] = {
    "proposals": "proposals",
    "run": "runs",
    "submitted": "submissions",
    "checkpoint": "checkpoints",
    "metric": "metrics",
    "event": "events",
    "state": "state",
}


class _Table:
    """In-memory columns of one table: numpy arrays grown by doubling, lists for text.

    The writer keeps every table in memory so reads are columnar and cost no
    HDF5 access; the snapshot writes them out whole.
    """

    def __init__(self, cols: tuple[_Col, ...], d: int, m: int) -> None:
        self.cols = cols
        self.n = 0
        self._width = {c.name: d if c.kind == "in" else m if c.kind == "out" else 0 for c in cols}
        self._arr: dict[str, NDArray[Any]] = {}
        self._lst: dict[str, list[Any]] = {}
        for c in cols:
            if c.kind in ("str", "bytes"):
                self._lst[c.name] = []
            else:
                self._arr[c.name] = np.empty(self._shape(c.name, 16), dtype=_NP_DTYPES[c.kind])

    def _shape(self, name: str, n: int) -> tuple[int, ...]:
        w = self._width[name]
        return (n, w) if w else (n,)

    def append(self, row: Mapping[str, Any]) -> None:
        """Append one row given as decoded JSON (vectors as lists, bytes as base64)."""
        # Convert every value first so a bad value leaves the table untouched.
        values: dict[str, Any] = {}
        for c in self.cols:
            v = row[c.name]
            if c.kind == "bytes":
                values[c.name] = base64.b64decode(v, validate=True)
            elif c.kind == "str":
                if not isinstance(v, str):
                    raise TypeError(f"column {c.name!r} expects a string, got {type(v).__name__}")
                values[c.name] = v
            elif c.kind in ("in", "out"):
                vec = np.asarray(v, dtype=float)
                if vec.shape != (self._width[c.name],):
                    raise ValueError(f"column {c.name!r} expects {self._width[c.name]} values, got shape {vec.shape}")
                values[c.name] = vec
            elif c.kind == "bool":
                if not isinstance(v, bool):
                    raise TypeError(f"column {c.name!r} expects true/false, got {v!r}")
                values[c.name] = v
            elif c.kind == "int":
                values[c.name] = operator.index(v)
            else:
                values[c.name] = float(v)
        if self._arr:
            cap = next(iter(self._arr.values())).shape[0]
            if self.n == cap:
                for name, a in self._arr.items():
                    grown = np.empty(self._shape(name, 2 * cap), dtype=a.dtype)
                    grown[: self.n] = a[: self.n]
                    self._arr[name] = grown
        for name, v in values.items():
            if name in self._arr:
                self._arr[name][self.n] = v
            else:
                self._lst[name].append(v)
        self.n += 1

    def column(self, name: str) -> NDArray[Any]:
        """The first ``n`` rows of a column as a read-only array (text: a numpy ``str`` array)."""
        if name in self._arr:
            view = self._arr[name][: self.n].view()
            view.flags.writeable = False
            return view
        lst = self._lst[name]
        return np.array(lst, dtype=str) if lst else np.zeros((0,), dtype="<U1")

    def values(self, name: str) -> list[Any]:
        """A column as a list of Python values (fast path for building records)."""
        if name in self._lst:
            return list(self._lst[name])
        return self._arr[name][: self.n].tolist()

    def keep_last(self, k: int) -> None:
        """Drop all but the last ``k`` rows."""
        drop = self.n - k
        if drop <= 0:
            return
        for name, a in self._arr.items():
            self._arr[name] = a[drop : self.n].copy()
        for name, lst in self._lst.items():
            del lst[:drop]
        self.n = k

    def write_h5(self, group: h5py.Group) -> None:
        """Write every column as a chunked, extendable dataset of this group."""
        for c in self.cols:
            shape = self._shape(c.name, self.n)
            if c.kind == "str":
                dtype: Any = h5py.string_dtype()
                row_bytes = 16
            elif c.kind == "bytes":
                dtype = h5py.vlen_dtype(np.uint8)
                row_bytes = 1 << 16  # payloads are large; keep chunks of few rows
            else:
                dtype = _NP_DTYPES[c.kind]
                row_bytes = 8 * max(1, self._width[c.name])
            rows = max(1, min(4096, _CHUNK_BYTES // row_bytes))
            ds = group.create_dataset(
                c.name, shape=shape, maxshape=(None, *shape[1:]), chunks=(rows, *shape[1:]), dtype=dtype
            )
            if self.n == 0:
                continue
            if c.kind == "str":
                ds[...] = np.array(self._lst[c.name], dtype=object)
            elif c.kind == "bytes":
                # Row by row: h5py turns an object array of equal-length payloads
                # into a 2-D array and refuses it; there are only keep_checkpoints rows.
                for i, b in enumerate(self._lst[c.name]):
                    ds[i] = np.frombuffer(b, dtype=np.uint8)
            else:
                ds[...] = self._arr[c.name][: self.n]

    def read_h5(self, group: h5py.Group, where: str) -> None:
        """Replace the contents with the datasets of ``group``.

        Raises:
            ValueError: A dataset is missing or has the wrong shape (message names it).
        """
        data: dict[str, Any] = {}
        n: int | None = None
        for c in self.cols:
            if c.name not in group:
                raise ValueError(f"dataset {where}/{c.name} is missing")
            ds = group[c.name]
            if not isinstance(ds, h5py.Dataset):
                raise ValueError(f"{where}/{c.name} is not a dataset")
            width = self._width[c.name]
            rows = ds.shape[0] if ds.ndim >= 1 else 0
            want = (rows, width) if width else (rows,)
            if ds.shape != want:
                raise ValueError(f"dataset {where}/{c.name} has shape {ds.shape}, expected {want}")
            if n is None:
                n = ds.shape[0]
            elif ds.shape[0] != n:
                raise ValueError(f"dataset {where}/{c.name} has {ds.shape[0]} rows, expected {n} like its siblings")
            if c.kind == "str":
                data[c.name] = ds.asstr()[()].tolist()
            elif c.kind == "bytes":
                data[c.name] = [np.asarray(a, dtype=np.uint8).tobytes() for a in ds[()]]
            else:
                data[c.name] = np.asarray(ds[()], dtype=_NP_DTYPES[c.kind])
        self.n = int(n or 0)
        for c in self.cols:
            if c.kind in ("str", "bytes"):
                self._lst[c.name] = data[c.name]
            else:
                self._arr[c.name] = data[c.name] if self.n else np.empty(self._shape(c.name, 16), _NP_DTYPES[c.kind])


# --------------------------------------------------------------------------- small helpers


def _sidecar(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def _fsync_path(path: Path) -> None:
    """fsync a file or a directory by path (directories: makes a rename durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).isoformat(timespec="seconds")


def _clean_text(value: str) -> str:
    """Make text storable as an HDF5 UTF-8 string: no NULs, no lone surrogates."""
    # HDF5 strings are NUL-terminated (a NUL would silently cut the text) and
    # lone surrogates (from undecodable bytes) cannot be encoded as UTF-8.
    return value.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")


def _writer_version() -> str:
    try:
        return f"surrogate_al {metadata.version('surrogate_al')}"
    except metadata.PackageNotFoundError:
        return "surrogate_al (version unknown)"


# Errnos HDF5 reports when the file system does not support locks (Lustre/NFS
# give 524, ENOTSUPP); only then is opening without HDF5 locks the right fallback.
_NO_LOCK_SUPPORT = {524, errno.ENOSYS, errno.EOPNOTSUPP}


#: Errnos that mean "no room for more bytes": a full disk, a quota, a file size limit.
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def _no_space_hint(exc: BaseException) -> str:
    """Words to add to the message of an out-of-space error; an empty string for any other error.

    HDF5 wraps the errno in its own message ("errno = 28"), so the text is searched too.
    """
    code = getattr(exc, "errno", None)
    found = re.search(r"errno = (\d+)", str(exc))
    if code not in _NO_SPACE and not (found and int(found.group(1)) in _NO_SPACE):
        return ""
    if code == errno.EFBIG or (found and int(found.group(1)) == errno.EFBIG):
        return " (the file size limit is reached: check `ulimit -f`)"
    return " (the disk is full or the quota is used up)"


def _locks_unsupported(exc: OSError) -> bool:
    """Whether an HDF5 open failed because the file system has no file locks."""
    if exc.errno in _NO_LOCK_SUPPORT:
        return True
    found = re.search(r"errno = (\d+)", str(exc))  # HDF5 puts the lock errno in the message
    return bool(found and int(found.group(1)) in _NO_LOCK_SUPPORT)


@contextmanager
def _h5file(path: Path, mode: Literal["r", "w"]) -> Iterator[h5py.File]:
    """Open an HDF5 file with HDF5 file locking, falling back when the file system has none."""
    try:
        f = h5py.File(path, mode, locking=True)
    except OSError as exc:
        if not _locks_unsupported(exc):
            raise
        logger.warning(
            "%s: the file system does not support HDF5 file locks (%s); opening without them "
            "(safe here: the store never modifies an .h5 in place, and its lock file keeps writers apart)",
            path,
            _one_line(exc),
        )
        f = h5py.File(path, mode, locking=False)
    try:
        yield f
    finally:
        f.close()


_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _has_hdf5_signature(path: Path, size: int) -> bool:
    """HDF5's superblock signature at offset 0, 512, 1024, 2048, ... (no HDF5 call, so no lock)."""
    with path.open("rb") as fh:
        offset = 0
        while offset + len(_HDF5_SIGNATURE) <= size:
            fh.seek(offset)
            if fh.read(len(_HDF5_SIGNATURE)) == _HDF5_SIGNATURE:
                return True
            offset = 512 if offset == 0 else 2 * offset
    return False


def _as_int(field: str, value: object) -> int:
    if isinstance(value, bool):
        raise StoreError(f"{field} must be an integer, got {value!r}")
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise StoreError(f"{field} must be an integer, got {value!r} ({type(value).__name__})") from None


def _as_float(field: str, value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise StoreError(f"{field} must be a number, got {value!r} ({type(value).__name__})") from None


def _as_text(field: str, value: object, *, nonempty: bool = False) -> str:
    if not isinstance(value, str):
        raise StoreError(f"{field} must be a string, got {value!r} ({type(value).__name__})")
    if nonempty and not value:
        raise StoreError(f"{field} must be a non-empty string")
    return _clean_text(value)


def _names(field: str, names: Sequence[str]) -> tuple[str, ...]:
    if isinstance(names, str) or not all(isinstance(n, str) and n for n in names):
        raise StoreError(f"{field} must be a sequence of non-empty strings, got {names!r}")
    out = tuple(names)
    if not out:
        raise StoreError(f"{field} is empty; a campaign needs at least one name")
    if len(set(out)) != len(out):
        dup = sorted({n for n in out if out.count(n) > 1})
        raise StoreError(f"{field} has duplicate names {dup}; names must be unique")
    return out


def _floats_json(a: NDArray[np.float64]) -> list[Any]:
    return a.tolist()  # floats round-trip exactly through json (repr), NaN included


# --------------------------------------------------------------------------- journal


def _encode_record(rec: Mapping[str, Any]) -> bytes:
    """One journal line: canonical JSON of the record plus its CRC-32 as the last key."""
    body = json.dumps(rec, sort_keys=True, separators=(",", ":"))
    crc = zlib.crc32(body.encode("ascii"))
    return f'{body[:-1]},"crc":{crc}}}\n'.encode("ascii")


def _decode_record(line: bytes) -> dict[str, Any]:
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


@dataclass(frozen=True)
class _ParsedJournal:
    header: dict[str, Any] | None
    records: list[tuple[int, dict[str, Any]]]  # (1-based line number, record)
    torn: str  # why the last line was dropped; "" when it was not


def _parse_journal(path: Path, data: bytes) -> _ParsedJournal:
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
            parsed.append((i, _decode_record(line)))
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
    header: dict[str, Any] | None = None
    if parsed:
        line_no, first = parsed[0]
        if first["kind"] != "header":
            raise CorruptJournalError(f"{path}: journal line {line_no} is a {first['kind']!r} record, expected the header")
        header = first
        expected = first["seq"]
        for line_no, rec in parsed[1:]:
            expected += 1
            if rec["seq"] != expected:
                raise CorruptJournalError(
                    f"{path}: journal line {line_no} has seq {rec['seq']}, expected {expected}; "
                    "the journal was edited or spliced — restore it from a backup"
                )
    return _ParsedJournal(header, parsed[1:], torn)


class _JournalWriter:
    """The append side of the journal: one ``os.write`` + ``os.fsync`` per record."""

    def __init__(self, path: Path, fd: int, size: int) -> None:
        self.path = path
        self._fd = fd
        self._size = size
        self._broken = ""

    @classmethod
    def start(cls, path: Path, header: Mapping[str, Any]) -> _JournalWriter:
        """Atomically replace the journal by one holding only ``header``."""
        tmp = _sidecar(path, ".tmp")
        line = _encode_record(header)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        try:
            cls._write_all(fd, line)
            os.fsync(fd)
            os.replace(tmp, path)
        except BaseException:
            os.close(fd)
            raise
        try:
            _fsync_path(path.parent)
        except OSError as exc:  # the new journal is in place; only its durability across a power cut is weaker
            logger.warning("%s: could not fsync the directory after starting the journal: %s", path, exc)
        return cls(path, fd, len(line))

    @staticmethod
    def _write_all(fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]

    def append(self, rec: Mapping[str, Any]) -> None:
        """Write one record durably.

        Raises:
            StoreError: The write or fsync failed; the record was not saved.
        """
        if self._broken:
            raise StoreError(self._broken)
        line = _encode_record(rec)
        start = self._size
        try:
            self._write_all(self._fd, line)
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
            store = self.path.with_name(self.path.name.removesuffix(".journal"))
            raise StoreError(
                f"{self.path}: cannot append to the journal ({_one_line(exc)}){_no_space_hint(exc)}; the record "
                f"was NOT saved, every earlier one is — free disk space or check the file system, then "
                f"`surrogate-al resume {store}`"
            ) from exc
        self._size = start + len(line)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


# --------------------------------------------------------------------------- lock


@dataclass(frozen=True)
class _LockInfo:
    pid: int
    host: str
    started: float
    command: str
    create_time: float
    token: str

    def describe(self) -> str:
        return f"pid {self.pid} on host {self.host} since {_iso(self.started)} ({self.command})"


class _Lock:
    """``STORE.h5.lock``: one writing driver per store, stale locks broken safely."""

    def __init__(self, path: Path, raw: bytes, info: _LockInfo) -> None:
        self.path = path
        self._raw = raw
        self.info = info

    @classmethod
    def acquire(cls, path: Path, store: Path, *, force_unlock: bool) -> _Lock:
        """Take the lock or raise :class:`StoreLockedError` within about a second."""
        me = psutil.Process()
        info = _LockInfo(
            pid=os.getpid(),
            host=socket.gethostname(),
            started=time.time(),
            command=_one_line(" ".join(sys.argv))[:300],
            create_time=me.create_time(),
            token=uuid.uuid4().hex,
        )
        raw = json.dumps(info.__dict__).encode()
        t0 = time.monotonic()
        deadline = t0 + _LOCK_WAIT_S
        logger.debug("%s: taking the lock %s", store, path)
        while True:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                pass
            except OSError as exc:
                raise StoreError(
                    f"{store}: cannot create the lock file {path} ({exc.strerror}); the directory must exist and "
                    "be writable by the driver"
                ) from None
            else:
                try:
                    _JournalWriter._write_all(fd, raw)
                    os.fsync(fd)
                except BaseException as exc:
                    path.unlink(missing_ok=True)  # an empty lock would block others for a while
                    if isinstance(exc, OSError):
                        raise StoreError(
                            f"{store}: cannot write the lock file {path} ({_one_line(exc)}){_no_space_hint(exc)}; "
                            "free disk space or check the file system, then retry"
                        ) from exc
                    raise
                finally:
                    os.close(fd)
                return cls(path, raw, info)
            try:
                seen = path.read_bytes()
                age = time.time() - path.stat().st_mtime
            except FileNotFoundError:
                continue  # released between our two calls: try again
            holder = cls._parse(seen)
            if holder is None:
                if age < _LOCK_WRITE_GRACE_S and time.monotonic() < deadline:
                    time.sleep(0.02)  # its owner is still writing it
                    continue
                if age < _LOCK_WRITE_GRACE_S:
                    raise StoreLockedError(
                        f"{store}: the lock file {path} is being written by another process; retry in a few seconds"
                    )
                logger.warning("%s: breaking an unreadable lock file %s (%d s old)", store, path, int(age))
                cls._break(path, seen)
                continue
            verdict = cls._judge(holder)
            if verdict == "stale":
                logger.warning("%s: breaking the stale lock of %s (that process is gone)", store, holder.describe())
                cls._break(path, seen)
                continue
            if verdict == "foreign":
                if force_unlock:
                    logger.warning("%s: force_unlock: breaking the lock of %s", store, holder.describe())
                    cls._break(path, seen)
                    continue
                logger.debug("%s: lock refused after %.3f s (foreign holder)", store, time.monotonic() - t0)
                raise StoreLockedError(
                    f"{store}: locked by {holder.describe()}, a host this one cannot check; if that driver is "
                    "gone, pass force_unlock=True (CLI: --force-unlock) to break the lock"
                )
            hint = (
                "force_unlock only breaks locks of drivers that are gone — stop that process first"
                if force_unlock
                else "wait for that driver to finish or stop it"
            )
            who = "this process (close the other CampaignStore first)" if holder.pid == os.getpid() else "it"
            # The time from the first attempt to the refusal (tests and docs quote it).
            logger.debug("%s: lock refused after %.3f s (live holder)", store, time.monotonic() - t0)
            raise StoreLockedError(f"{store}: locked by live {holder.describe()}; {hint}; held by {who}")

    @staticmethod
    def _parse(raw: bytes) -> _LockInfo | None:
        try:
            d = json.loads(raw)
            return _LockInfo(
                pid=int(d["pid"]),
                host=str(d["host"]),
                started=float(d["started"]),
                command=str(d.get("command", "")),
                create_time=float(d.get("create_time", 0.0)),
                token=str(d.get("token", "")),
            )
        except (ValueError, KeyError, TypeError, RecursionError):  # RecursionError: deeply nested JSON
            return None

    @staticmethod
    def _judge(holder: _LockInfo) -> Literal["live", "stale", "foreign"]:
        if holder.host != socket.gethostname():
            return "foreign"
        if not psutil.pid_exists(holder.pid):
            return "stale"
        try:
            proc = psutil.Process(holder.pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                return "stale"  # dead, only not yet reaped by its parent
            # A different start time means the pid was reused by another program.
            if holder.create_time and abs(proc.create_time() - holder.create_time) > 1.0:
                return "stale"
        except psutil.NoSuchProcess:
            return "stale"
        except psutil.AccessDenied:
            return "live"  # cannot tell: never break what may be a live driver
        return "live"

    @staticmethod
    def _break(path: Path, seen: bytes) -> None:
        """Remove the lock file only if it still holds ``seen``.

        Renaming first makes the check-and-remove safe against another process
        that breaks the same stale lock and takes a fresh one in between.
        """
        aside = _sidecar(path, f".broken-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return
        try:
            moved = aside.read_bytes()
        except OSError:
            moved = seen
        if moved != seen:
            # We moved someone's fresh lock: put it back (unless a third one took the place).
            try:
                os.link(aside, path)
            except FileExistsError:
                logger.warning("%s: a lock changed hands while a stale lock was being broken", path)
        aside.unlink(missing_ok=True)

    def release(self) -> None:
        """Remove the lock file if it is still ours."""
        try:
            current = self.path.read_bytes()
        except FileNotFoundError:
            logger.warning("%s: lock file vanished before release (broken with force_unlock?)", self.path)
            return
        if current != self._raw:
            logger.warning("%s: lock file now belongs to someone else; leaving it", self.path)
            return
        self.path.unlink(missing_ok=True)


# --------------------------------------------------------------------------- store

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
        self._journal_path = _sidecar(self.path, ".journal")
        self._lock_path = _sidecar(self.path, ".lock")
        self._tmp_path = _sidecar(self.path, ".tmp")
        self._mode = mode
        self._keep_checkpoints = keep_checkpoints
        self._snapshot_interval = float(snapshot_interval)
        self._next_snapshot = 0.0
        self._mutex = threading.RLock()
        self._owner_pid = os.getpid()
        self._lock: _Lock | None = None
        self._journal: _JournalWriter | None = None
        self._closed = False
        self._store_id = ""
        self._created = 0.0
        self._seq = 0  # last record applied to memory
        self._snap_seq = -1  # last record in the .h5 on disk
        self.spec = {}
        self.input_names = ()
        self.output_names = ()
        self._tables: dict[str, _Table] = {}
        self._records_cache: dict[str, list[Any]] = {}

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
        ins, outs = _names("input_names", input_names), _names("output_names", output_names)
        # The lock before the existence check: when a live driver is writing this store,
        # naming it (StoreLockedError) tells more than "already exists".
        store._lock = _Lock.acquire(store._lock_path, store.path, force_unlock=False)
        if not force and (store.path.exists() or store._journal_path.exists()):
            store._lock.release()
            store._lock = None
            raise StoreError(
                f"{store.path}: a campaign store already exists; resume it with `surrogate-al resume {store.path}`, "
                "or delete it / pass force=True to start over"
            )
        try:
            for leftover in (store._journal_path, store._tmp_path, _sidecar(store._journal_path, ".tmp")):
                leftover.unlink(missing_ok=True)
            store.spec = json.loads(spec_json)  # exactly what a reopen will give
            store.input_names, store.output_names = ins, outs
            store._store_id = uuid.uuid4().hex
            store._created = time.time()
            store._reset_tables()
            store._snapshot()
        except BaseException:
            store._lock.release()
            store._lock = None
            raise
        _OPEN_STORES.add(store)
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
                when you know it is gone).
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
            store._load()
            return store
        store._check_exists()  # before taking the lock: a typo must not leave a lock file behind
        store._lock = _Lock.acquire(store._lock_path, store.path, force_unlock=force_unlock)
        try:
            for leftover in (store._tmp_path, _sidecar(store._journal_path, ".tmp")):
                leftover.unlink(missing_ok=True)  # a snapshot interrupted by a kill
            applied, torn = store._load()
            if applied or torn:
                store._snapshot()  # make the .h5 whole again and drop the torn line
            else:
                store._start_journal()
                store._next_snapshot = time.monotonic() + store._snapshot_interval
        except BaseException:
            store._lock.release()
            store._lock = None
            raise
        _OPEN_STORES.add(store)
        logger.info(
            "%s: opened for writing (%d proposals, %d runs; %d journal records replayed)",
            store.path,
            store._tables["proposals"].n,
            store._tables["runs"].n,
            applied,
        )
        return store

    # ----------------------------------------------------------------- loading

    def _reset_tables(self) -> None:
        d, m = len(self.input_names), len(self.output_names)
        self._tables = {name: _Table(cols, d, m) for name, cols in _TABLES.items()}
        self._final_of: dict[int, int] = {}  # proposal_id -> run_id of its final run
        self._attempts: set[tuple[int, int]] = set()
        self._pending: dict[int, None] = {}  # insertion-ordered set of unsettled proposal ids
        self._submitted: dict[int, float] = {}  # proposal_id -> last submit time (pending only)
        self._records_cache = {}

    def _check_exists(self) -> None:
        if not self.path.exists():
            raise NotACampaignStoreError(
                f"{self.path}: no such campaign store (file not found); check the path, or start a campaign "
                "with `surrogate-al run`"
            )
        if self.path.is_dir():
            raise NotACampaignStoreError(f"{self.path}: is a directory, not a campaign store file")

    def _not_a_store(self, what: str) -> NotACampaignStoreError:
        return NotACampaignStoreError(f"{self.path}: {_one_line(what)}")

    def _read_h5(self) -> None:
        """Load the snapshot into memory (replaces the current contents)."""
        self._check_exists()
        size = self.path.stat().st_size
        if size == 0:
            raise self._not_a_store("empty file (0 bytes), not a campaign store")
        if not _has_hdf5_signature(self.path, size):
            with self.path.open("rb") as fh:
                head = fh.read(8)
            raise self._not_a_store(f"not an HDF5 file (starts with {head!r}), so not a campaign store")
        try:
            with _h5file(self.path, "r") as f:
                fmt = f.attrs.get("format")
                fmt = fmt.decode() if isinstance(fmt, bytes) else fmt
                if fmt != FORMAT:
                    raise self._not_a_store(
                        f"an HDF5 file but not a surrogate_al campaign store (root attribute format={fmt!r}, "
                        f"expected {FORMAT!r})"
                    )
                version = f.attrs.get("schema_version")
                if not isinstance(version, (int, np.integer)):
                    raise self._not_a_store(f"schema_version attribute is {version!r}, expected an integer")
                if version > SCHEMA_VERSION:
                    raise self._not_a_store(
                        f"written with store schema_version {int(version)}, newer than this surrogate_al reads "
                        f"({SCHEMA_VERSION}); upgrade surrogate_al"
                    )
                if version != SCHEMA_VERSION:
                    raise self._not_a_store(
                        f"unknown store schema_version {int(version)} (this surrogate_al reads {SCHEMA_VERSION})"
                    )
                self.spec = json.loads(f["spec"].asstr()[()])
                self.input_names = tuple(f["inputs/names"].asstr()[()].tolist())
                self.output_names = tuple(f["outputs/names"].asstr()[()].tolist())
                self._store_id = str(f.attrs["store_id"])
                self._created = float(f.attrs["created"])
                self._snap_seq = self._seq = int(f.attrs["journal_seq"])
                self._reset_tables()
                for name, table in self._tables.items():
                    if name not in f:
                        raise ValueError(f"group /{name} is missing")
                    table.read_h5(f[name], f"/{name}")
        except NotACampaignStoreError:
            raise
        except RecursionError:  # json.loads of a deeply nested spec
            raise self._not_a_store("damaged campaign store (the spec is nested too deeply)") from None
        except OSError as exc:
            if exc.errno == errno.EAGAIN:
                raise StoreError(
                    f"{self.path}: another program has the file open for writing with HDF5 (file lock held, "
                    "errno 11); close it and retry"
                ) from None
            raise self._not_a_store(f"truncated or damaged HDF5 file (h5py: {exc})") from None
        except (KeyError, ValueError, TypeError) as exc:
            raise self._not_a_store(f"damaged campaign store ({exc})") from None
        self._reindex()

    def _reindex(self) -> None:
        """Rebuild the lookup structures from the loaded columns (vectorised: 100 000 runs in ms)."""
        runs = self._tables["runs"]
        pids = runs.column("proposal_id")
        final = runs.column("final")
        self._attempts = set(zip(pids.tolist(), runs.column("attempt").tolist()))
        self._final_of = dict(zip(pids[final].tolist(), runs.column("run_id")[final].tolist()))
        settled = np.zeros(self._tables["proposals"].n, dtype=bool)
        settled[pids[final]] = True
        self._pending = dict.fromkeys(np.flatnonzero(~settled).tolist())
        subs = self._tables["submissions"]
        self._submitted = {
            pid: t
            for pid, t in zip(subs.column("proposal_id").tolist(), subs.column("submit_time").tolist())
            if pid in self._pending
        }

    def _load(self) -> tuple[int, bool]:
        """Load the snapshot and apply the journal records past it.

        Returns:
            (number of journal records applied, whether a torn last line was dropped).
        """
        writer = self._mode == "a"
        for _ in range(_READ_RETRIES):
            self._read_h5()
            try:
                data = self._journal_path.read_bytes()
            except FileNotFoundError:
                return 0, False
            journal = _parse_journal(self._journal_path, data)
            if journal.torn:
                # A reader may catch a live writer mid-line; only a resuming writer reports it.
                log = logger.warning if writer else logger.debug
                log("%s: dropping the torn last journal record: %s (it was never acknowledged)",
                    self._journal_path, journal.torn)
            if journal.header is None:
                return 0, bool(journal.torn)
            if journal.header.get("store_id") != self._store_id:
                raise CorruptJournalError(
                    f"{self._journal_path}: journal belongs to another store (store_id "
                    f"{journal.header.get('store_id')!r}, the .h5 has {self._store_id!r}); move it aside if the "
                    ".h5 is the copy you want"
                )
            if journal.header["seq"] > self._seq:
                if writer:
                    raise CorruptJournalError(
                        f"{self._journal_path}: journal starts after record {journal.header['seq']} but the .h5 only "
                        f"holds up to {self._seq}; the records in between are missing (was the .h5 replaced by an "
                        "older copy?) — put the matching .h5 back"
                    )
                time.sleep(0.02)  # a live writer replaced the .h5 and journal between our reads
                continue
            applied = 0
            for line_no, rec in journal.records:
                if rec["seq"] <= self._seq:
                    continue
                try:
                    self._apply(rec)
                except (StoreError, KeyError, ValueError, TypeError, binascii.Error) as exc:
                    raise CorruptJournalError(
                        f"{self._journal_path}: journal line {line_no} ({rec.get('kind')!r} record, seq {rec['seq']}) "
                        f"cannot be applied: {_one_line(exc)}; the journal is inconsistent — restore it from a backup"
                    ) from None
                self._seq = rec["seq"]
                applied += 1
            return applied, bool(journal.torn)
        raise StoreError(f"{self.path}: the store kept changing while being read; retry")

    # ----------------------------------------------------------------- applying records

    def _check_settle(self, proposal_id: int, what: str) -> None:
        """Raise unless ``proposal_id`` exists and has no final run yet (the exactly-once guard)."""
        n = self._tables["proposals"].n
        if not 0 <= proposal_id < n:
            raise StoreError(
                f"{self.path}: {what} for unknown proposal_id {proposal_id} (the store has proposals 0..{n - 1})"
            )
        if proposal_id in self._final_of:
            raise StoreError(
                f"{self.path}: {what} for proposal_id {proposal_id}, which is already settled by run "
                f"{self._final_of[proposal_id]}; a proposal gets exactly one final run"
            )

    def _apply(self, rec: Mapping[str, Any]) -> None:
        """Apply one journal record to memory: the one path for live writes and replay."""
        kind = rec["kind"]
        if kind not in _KIND_TABLE:
            raise StoreError(f"unknown record kind {kind!r}")
        table = self._tables[_KIND_TABLE[kind]]
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
            self._check_settle(pid, "run")
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
            self._check_settle(row["proposal_id"], "submission")
            table.append(row)
            self._submitted[row["proposal_id"]] = float(row["submit_time"])
        else:
            for row in rows:
                table.append(row)
            if kind == "checkpoint":
                table.keep_last(self._keep_checkpoints)
        self._records_cache.pop(_KIND_TABLE[kind], None)

    def _write(self, kind: str, rows: list[dict[str, Any]]) -> None:
        """Journal a record durably, then apply it; snapshot when due."""
        with self._mutex:
            self._require_writable()
            assert self._journal is not None
            rec = {"seq": self._seq + 1, "kind": kind, "rows": rows}
            self._journal.append(rec)  # durable from here on: acknowledged when we return
            self._apply(rec)
            self._seq += 1
            if time.monotonic() >= self._next_snapshot:
                try:
                    self._snapshot()
                except Exception as exc:  # h5py raises OSError, RuntimeError, ... on a full disk
                    # The record is safe in the journal; a failed snapshot is retried later.
                    self._next_snapshot = time.monotonic() + max(self._snapshot_interval, 5.0)
                    logger.warning("%s: snapshot failed, will retry (records are safe in the journal): %s",
                                   self.path, _one_line(exc))

    def _require_writable(self) -> None:
        if self._closed:
            raise StoreError(f"{self.path}: the store is closed; open it again with CampaignStore.open(path, 'a')")
        if self._mode != "a":
            raise StoreError(
                f"{self.path}: opened read-only; open it with CampaignStore.open(path, 'a') to write"
            )

    # ----------------------------------------------------------------- snapshots

    def _header(self) -> dict[str, Any]:
        return {
            "seq": self._seq,
            "kind": "header",
            "store_id": self._store_id,
            "schema_version": SCHEMA_VERSION,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.time(),
        }

    def _start_journal(self) -> None:
        """Replace the journal by an empty one that starts at the snapshot's sequence number."""
        try:
            new = _JournalWriter.start(self._journal_path, self._header())
        except OSError as exc:
            _sidecar(self._journal_path, ".tmp").unlink(missing_ok=True)
            raise StoreError(
                f"{self._journal_path}: cannot start a new journal ({_one_line(exc)}){_no_space_hint(exc)}; the "
                f"store on disk is consistent — free disk space or check the file system, then "
                f"`surrogate-al resume {self.path}`"
            ) from exc
        if self._journal is not None:
            self._journal.close()
        self._journal = new

    def _write_h5(self, target: Path) -> None:
        """Write the snapshot to ``target`` and fsync it.

        The HDF5 file is built in memory (HDF5's core driver) and written with
        plain ``os.write``: a full disk or a file size limit then raises one
        clean OSError. Written by HDF5 itself, such a failure left the file
        half-closed inside the library, which retried the flush on every later
        call and crashed the process at exit (measured here with RLIMIT_FSIZE).
        """
        # The name is only a label: backing_store=False never touches the disk.
        with h5py.File(f"{target}.in-memory", "w", driver="core", backing_store=False, block_size=_CHUNK_BYTES) as f:
            self._fill_h5(f)
            f.flush()
            image = f.id.get_file_image()
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            _JournalWriter._write_all(fd, image)
            os.fsync(fd)
        finally:
            os.close(fd)

    def _fill_h5(self, f: h5py.File) -> None:
        """Write every attribute, name list and table of the store into the open file ``f``."""
        f.attrs["format"] = FORMAT
        f.attrs["schema_version"] = np.int64(SCHEMA_VERSION)
        f.attrs["created"] = self._created
        f.attrs["store_id"] = self._store_id
        f.attrs["journal_seq"] = np.int64(self._seq)
        f.attrs["writer"] = _writer_version()
        text = h5py.string_dtype()
        f.create_dataset("spec", data=json.dumps(self.spec), dtype=text)
        f.create_group("inputs").create_dataset("names", data=np.array(self.input_names, dtype=object), dtype=text)
        f.create_group("outputs").create_dataset(
            "names", data=np.array(self.output_names, dtype=object), dtype=text
        )
        for name, table in self._tables.items():
            table.write_h5(f.create_group(name))

    def _snapshot(self, *, restart_journal: bool = True) -> None:
        """Atomically rewrite the .h5 from memory, then restart the journal from it."""
        t0 = time.monotonic()
        try:
            self._write_h5(self._tmp_path)  # fsync'd
            os.replace(self._tmp_path, self.path)
        except BaseException as exc:
            self._tmp_path.unlink(missing_ok=True)  # a half-written snapshot is useless
            # h5py reports a full disk as OSError, RuntimeError or ValueError, with HDF5's
            # multi-line text; callers and the CLI need one StoreError line instead.
            if isinstance(exc, (OSError, RuntimeError, ValueError)) and not isinstance(exc, StoreError):
                raise StoreError(
                    f"{self.path}: cannot write a snapshot to {self._tmp_path.name} ({_one_line(exc)})"
                    f"{_no_space_hint(exc)}; the .h5 on disk is unchanged and later records stay in the journal "
                    f"— free disk space or check the file system, then `surrogate-al resume {self.path}`"
                ) from exc
            raise
        try:
            _fsync_path(self.path.parent)
        except OSError as exc:  # the rename is done; only its durability across a power cut is weaker
            logger.warning("%s: could not fsync the directory after a snapshot: %s", self.path, exc)
        self._snap_seq = self._seq
        if restart_journal:
            self._start_journal()
        took = time.monotonic() - t0
        # Keep periodic snapshots to a small share of the run time on big stores
        # (an interval of 0 is an explicit request for one after every record).
        wait = self._snapshot_interval and max(self._snapshot_interval, _SNAPSHOT_COST_FACTOR * took)
        self._next_snapshot = time.monotonic() + wait
        logger.debug("%s: snapshot at record %d took %.3f s", self.path, self._seq, took)

    def snapshot(self) -> None:
        """Rewrite the ``.h5`` now so plain HDF5 readers see every record.

        Records are durable without it (the journal); this only refreshes the
        view. Costs a rewrite of the whole file.

        Raises:
            StoreError: The store is read-only or closed.
        """
        with self._mutex:
            self._require_writable()
            self._snapshot()

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
            inputs: ``q x d`` points in physical units.
            unit: ``q x d`` the same points in the unit cube.
            batch_id: The batch number.
            U: ``q`` uncertainty scores, or None (NaN).
            D: ``q`` diversity scores, or None (NaN).
            J: ``q`` hybrid scores, or None (NaN).
            lam: The lambda used for J (NaN when not scored).
            surrogate_version: Version of the surrogate that proposed them (-1: none).
            source: "initial" or the policy's name.

        Returns:
            The new proposal ids, consecutive, in row order.

        Raises:
            StoreError: Read-only store, or an argument has the wrong shape/type.
        """
        d = len(self.input_names)
        X = np.asarray(inputs, dtype=float)
        Z = np.asarray(unit, dtype=float)
        if X.ndim != 2 or X.shape[1] != d:
            raise StoreError(f"add_proposals: inputs has shape {X.shape}, expected q x {d} (inputs {self.input_names})")
        q = X.shape[0]
        if Z.shape != X.shape:
            raise StoreError(f"add_proposals: unit has shape {Z.shape}, expected {X.shape} like inputs")
        if not (np.isfinite(X).all() and np.isfinite(Z).all()):
            raise StoreError("add_proposals: inputs and unit must be finite (found NaN or inf)")
        scores = {}
        for name, s in (("U", U), ("D", D), ("J", J)):
            arr = np.full(q, np.nan) if s is None else np.asarray(s, dtype=float)
            if arr.ndim == 0:
                arr = np.full(q, float(arr))
            if arr.shape != (q,):
                raise StoreError(f"add_proposals: {name} has shape {arr.shape}, expected ({q},) (one per point) or None")
            scores[name] = arr.tolist()
        batch = _as_int("add_proposals: batch_id", batch_id)
        version = _as_int("add_proposals: surrogate_version", surrogate_version)
        lam_f = _as_float("add_proposals: lam", lam)
        src = _as_text("add_proposals: source", source, nonempty=True)
        if q == 0:
            return []
        with self._mutex:
            self._require_writable()
            first = self._tables["proposals"].n
            now = time.time()
            rows = [
                {
                    "proposal_id": first + i,
                    "batch_id": batch,
                    "X": X[i].tolist(),
                    "unit": Z[i].tolist(),
                    "U": scores["U"][i],
                    "D": scores["D"][i],
                    "J": scores["J"][i],
                    "lam": lam_f,
                    "surrogate_version": version,
                    "source": src,
                    "created": now,
                }
                for i in range(q)
            ]
            self._write("proposals", rows)
            return list(range(first, first + q))

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
        status = _as_text("add_run: status", status)
        if status not in RUN_STATUSES:
            raise StoreError(f"add_run: status {status!r} is unknown; expected one of {RUN_STATUSES}")
        pid = _as_int("add_run: proposal_id", proposal_id)
        att = _as_int("add_run: attempt", attempt)
        if att < 1:
            raise StoreError(f"add_run: attempt must be >= 1 (1-based), got {att}")
        if not isinstance(final, (bool, np.bool_)):
            raise StoreError(f"add_run: final must be True or False, got {final!r}")
        if status == "ok" and not final:
            raise StoreError("add_run: an 'ok' run settles its proposal; pass final=True")
        Y = np.full(len(self.output_names), np.nan)
        if status == "ok":
            if not isinstance(outputs, Mapping):
                raise StoreError(
                    f"add_run: status 'ok' needs outputs, a mapping of {self.output_names} to numbers; got {outputs!r}"
                )
            unknown = sorted(set(outputs) - set(self.output_names))
            missing = [n for n in self.output_names if n not in outputs]
            if unknown or missing:
                raise StoreError(
                    f"add_run: outputs keys do not match the output names {self.output_names} "
                    f"(missing {missing}, unknown {unknown})"
                )
            Y = np.array([_as_float(f"add_run: outputs[{n!r}]", outputs[n]) for n in self.output_names])
            if not np.isfinite(Y).all():
                raise StoreError(
                    f"add_run: status 'ok' with non-finite outputs {dict(zip(self.output_names, Y.tolist()))}; "
                    "record it with status 'invalid'"
                )
        times = {
            name: _as_float(f"add_run: {name}", value)
            for name, value in (
                ("submit_time", submit_time),
                ("start_time", start_time),
                ("finish_time", finish_time),
                ("wall_time", wall_time),
            )
        }
        texts = {
            name: _as_text(f"add_run: {name}", value)
            for name, value in (("reason", reason), ("stderr_tail", stderr_tail), ("worker", worker), ("host", host))
        }
        with self._mutex:
            self._require_writable()
            self._check_settle(pid, "add_run")
            if (pid, att) in self._attempts:
                raise StoreError(
                    f"{self.path}: add_run: proposal_id {pid} already has attempt {att}; number retries 1, 2, 3, ..."
                )
            run_id = self._tables["runs"].n
            row = {
                "run_id": run_id,
                "proposal_id": pid,
                "attempt": att,
                "final": bool(final),
                "status": status,
                "X": self._tables["proposals"].column("X")[pid].tolist(),
                "Y": _floats_json(Y),
                **texts,
                **times,
            }
            self._write("run", [row])
            return run_id

    def mark_submitted(self, proposal_id: int, attempt: int, submit_time: float) -> None:
        """Record that an attempt of a proposal was handed to a worker (for ``status``).

        Raises:
            StoreError: Unknown or already settled proposal, or a read-only store.
        """
        pid = _as_int("mark_submitted: proposal_id", proposal_id)
        att = _as_int("mark_submitted: attempt", attempt)
        if att < 1:
            raise StoreError(f"mark_submitted: attempt must be >= 1 (1-based), got {att}")
        t = _as_float("mark_submitted: submit_time", submit_time)
        with self._mutex:
            self._require_writable()
            self._check_settle(pid, "mark_submitted")
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
            "version": _as_int("save_checkpoint: version", version),
            "n_results": _as_int("save_checkpoint: n_results", n_results),
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
            "n_results": _as_int("add_metric: n_results", n_results),
            "name": _as_text("add_metric: name", name, nonempty=True),
            "value": _as_float("add_metric: value", value),
        }
        self._write("metric", [row])

    def add_event(self, kind: str, message: str) -> None:
        """Record an event ("started", "resumed", "stopped", "breaker", "completed", "error", ...).

        Raises:
            StoreError: Bad argument, or a read-only store.
        """
        row = {
            "time": time.time(),
            "kind": _as_text("add_event: kind", kind, nonempty=True),
            "message": _as_text("add_event: message", message),
        }
        self._write("event", [row])

    def set_state(self, status: str, reason: str = "") -> None:
        """Set the campaign state (an append-only log; the latest entry wins).

        Raises:
            StoreError: Unknown status, or a read-only store.
        """
        status = _as_text("set_state: status", status)
        if status not in CAMPAIGN_STATES:
            raise StoreError(f"set_state: status {status!r} is unknown; expected one of {CAMPAIGN_STATES}")
        self._write("state", [{"time": time.time(), "status": status, "reason": _as_text("set_state: reason", reason)}])

    # ----------------------------------------------------------------- reads

    def _cached(self, table: str, build: Any) -> list[Any]:
        with self._mutex:
            if table not in self._records_cache:
                self._records_cache[table] = build()
            return list(self._records_cache[table])

    def proposals(self) -> list[ProposalRecord]:
        """All proposals, in proposal order."""

        def build() -> list[ProposalRecord]:
            t = self._tables["proposals"]
            X, Z = t.column("X"), t.column("unit")
            cols = {c.name: t.values(c.name) for c in t.cols if c.kind not in ("in",)}
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

        return self._cached("proposals", build)

    def runs(self) -> list[RunRecord]:
        """All attempts, in run order."""

        def build() -> list[RunRecord]:
            t = self._tables["runs"]
            X, Y = t.column("X").copy(), t.column("Y").copy()
            X.flags.writeable = Y.flags.writeable = False  # rows below are views of these
            cols = {c.name: t.values(c.name) for c in t.cols if c.kind not in ("in", "out")}
            return [
                RunRecord(
                    run_id=cols["run_id"][i],
                    proposal_id=cols["proposal_id"][i],
                    attempt=cols["attempt"][i],
                    final=cols["final"][i],
                    status=cols["status"][i],
                    inputs=X[i],
                    outputs=Y[i],
                    reason=cols["reason"][i],
                    stderr_tail=cols["stderr_tail"][i],
                    submit_time=cols["submit_time"][i],
                    start_time=cols["start_time"][i],
                    finish_time=cols["finish_time"][i],
                    wall_time=cols["wall_time"][i],
                    worker=cols["worker"][i],
                    host=cols["host"][i],
                )
                for i in range(t.n)
            ]

        return self._cached("runs", build)

    def final_runs(self) -> list[RunRecord]:
        """The final run of every settled proposal, in run order."""
        return [r for r in self.runs() if r.final]

    def pending_proposal_ids(self) -> list[int]:
        """Proposals without a final run, in proposal order (what a resumed driver must still run)."""
        with self._mutex:
            return list(self._pending)

    def latest_checkpoint(self) -> Checkpoint | None:
        """The last checkpoint saved, or None."""
        with self._mutex:
            t = self._tables["checkpoints"]
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
        with self._mutex:
            t = self._tables["metrics"]
            return list(zip(t.values("n_results"), t.values("name"), t.values("value")))

    def events(self) -> list[tuple[float, str, str]]:
        """All events as ``(time, kind, message)``, in recording order."""
        with self._mutex:
            t = self._tables["events"]
            return list(zip(t.values("time"), t.values("kind"), t.values("message")))

    def state(self) -> tuple[str, str]:
        """The latest ``(status, reason)``; ``("created", "")`` before the first :meth:`set_state`."""
        with self._mutex:
            t = self._tables["state"]
            if t.n == 0:
                return (_INITIAL_STATE, "")
            return (t.values("status")[-1], t.values("reason")[-1])

    def arrays(self) -> dict[str, NDArray[Any]]:
        """Columnar, read-only view of all runs (every attempt).

        Returns:
            ``run_id``, ``proposal_id``, ``attempt`` (int64, ``n``), ``final``
            (bool), ``status``, ``reason``, ``worker``, ``host`` (numpy str),
            ``X`` (``n x d``), ``Y`` (``n x m``, NaN unless ok), ``wall_time``,
            ``submit_time``, ``start_time``, ``finish_time`` (float64).
        """
        with self._mutex:
            t = self._tables["runs"]
            names = ("run_id", "proposal_id", "attempt", "final", "status", "X", "Y", "reason",
                     "wall_time", "submit_time", "start_time", "finish_time", "worker", "host")
            out = {}
            for name in names:
                col = t.column(name)
                # Numeric columns are views of buffers the writer keeps growing in place; copy them.
                col = col.copy() if col.base is not None else col
                col.flags.writeable = False
                out[name] = col
            return out

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
            runs = self._tables["runs"]
            final = runs.column("final")
            statuses = runs.column("status")[final]
            names, counts = np.unique(statuses, return_counts=True)
            campaign = self.spec.get("campaign")
            budget = campaign.get("budget") if isinstance(campaign, dict) else None
            last_metric: dict[str, float] = {}
            for _, name, value in self.metrics():
                last_metric[name] = value
            ckpt = self._tables["checkpoints"]
            state, reason = self.state()
            return {
                "path": str(self.path),
                "created": self._created,
                "state": state,
                "state_reason": reason,
                "budget": budget,
                "n_proposals": self._tables["proposals"].n,
                "n_final": int(final.sum()),
                "status_counts": {str(k): int(v) for k, v in zip(names, counts)},
                "n_attempts": runs.n,
                "in_flight": len(self._pending),
                "n_submitted": len(self._submitted),
                "metrics": last_metric,
                "checkpoint_version": int(ckpt.column("version")[-1]) if ckpt.n else None,
                "checkpoint_n_results": int(ckpt.column("n_results")[-1]) if ckpt.n else None,
                "checkpoint_time": float(ckpt.column("created")[-1]) if ckpt.n else None,
                "journal_records": self._seq - self._snap_seq,
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
        is raised; the lock is released either way. Idempotent.
        """
        with self._mutex:
            if self._closed:
                return
            self._closed = True
            _OPEN_STORES.discard(self)
            if self._mode != "a":
                return
            try:
                if self._snap_seq != self._seq:
                    self._snapshot(restart_journal=False)
                if self._journal is not None:
                    self._journal.close()
                    self._journal = None
                self._journal_path.unlink(missing_ok=True)
                _fsync_path(self.path.parent)
            finally:
                if self._journal is not None:
                    self._journal.close()
                    self._journal = None
                if self._lock is not None:
                    self._lock.release()
                    self._lock = None
            logger.info("%s: closed (%d runs)", self.path, self._tables["runs"].n)

    def __enter__(self) -> CampaignStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"mode={self._mode!r}"
        return (
            f"CampaignStore({str(self.path)!r}, {state}, proposals={self._tables['proposals'].n if self._tables else 0}, "
            f"runs={self._tables['runs'].n if self._tables else 0})"
        )
