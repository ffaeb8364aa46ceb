"""The HDF5 layout of a store: root attributes, name lists, and one columnar table per group.

Layout of ``STORE.h5`` (:data:`SCHEMA_VERSION` 1)::

    attrs: format, schema_version, created, store_id, journal_seq, writer
    /spec            JSON text of the campaign spec
    /inputs/names    the d input names
    /outputs/names   the m output names
    /<table>/<column>  one chunked, extendable dataset per column of TABLES

Every table keeps its columns in memory (:class:`Table`) so reads cost no HDF5
access; a snapshot writes them out whole.
"""

from __future__ import annotations

import base64
import json
import operator
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from numpy.typing import NDArray

from surrogate_al.errors import NotACampaignStoreError
from surrogate_al.store.fileio import one_line
from surrogate_al.store.records import RUN_COLUMNS, Column

__all__ = [
    "FORMAT",
    "KIND_TABLE",
    "SCHEMA_VERSION",
    "TABLES",
    "SnapshotContents",
    "StoreMeta",
    "Table",
    "make_tables",
    "not_a_store",
    "read_layout",
    "write_layout",
]

SCHEMA_VERSION: int = 1
"""Version of the HDF5 layout; files with a newer one are refused."""

FORMAT = "surrogate_al.campaign"
"""Value of the root attribute ``format`` that marks a campaign store."""

CHUNK_BYTES = 1 << 20  # target chunk size of the HDF5 datasets
_NP_DTYPES: dict[str, str] = {"int": "<i8", "float": "<f8", "bool": "?", "in": "<f8", "out": "<f8"}

# One table per HDF5 group; every record kind appends rows to exactly one table.
TABLES: dict[str, tuple[Column, ...]] = {
    "proposals": (
        Column("proposal_id", "int"),
        Column("batch_id", "int"),
        Column("X", "in"),
        Column("unit", "in"),
        Column("U", "float"),
        Column("D", "float"),
        Column("J", "float"),
        Column("lam", "float"),
        Column("surrogate_version", "int"),
        Column("source", "str"),
        Column("created", "float"),
    ),
    "runs": RUN_COLUMNS,
    "submissions": (
        Column("proposal_id", "int"),
        Column("attempt", "int"),
        Column("submit_time", "float"),
    ),
    "checkpoints": (
        Column("version", "int"),
        Column("n_results", "int"),
        Column("created", "float"),
        Column("surrogate_state", "bytes"),
        Column("policy_state", "bytes"),
    ),
    "metrics": (
        Column("n_results", "int"),
        Column("name", "str"),
        Column("value", "float"),
    ),
    "events": (
        Column("time", "float"),
        Column("kind", "str"),
        Column("message", "str"),
    ),
    "state": (
        Column("time", "float"),
        Column("status", "str"),
        Column("reason", "str"),
    ),
}

KIND_TABLE: dict[str, str] = {
    "proposals": "proposals",
    "run": "runs",
    "submitted": "submissions",
    "checkpoint": "checkpoints",
    "metric": "metrics",
    "event": "events",
    "state": "state",
}
"""Journal record kind -> the table its rows go to."""


class Table:
    """In-memory columns of one table: numpy arrays grown by doubling, lists for text.

    Args:
        cols: The table's columns.
        d: Width of ``"in"`` columns.
        m: Width of ``"out"`` columns.
    """

    def __init__(self, cols: tuple[Column, ...], d: int, m: int) -> None:
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
        """The first ``n`` rows of a column as a read-only array: ``(n,)``, or ``(n, d)`` / ``(n, m)`` for vectors.

        Text columns come as a numpy ``str`` array.
        """
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
            rows = max(1, min(4096, CHUNK_BYTES // row_bytes))
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


def make_tables(d: int, m: int) -> dict[str, Table]:
    """Empty tables of :data:`TABLES` for ``d`` inputs and ``m`` outputs."""
    return {name: Table(cols, d, m) for name, cols in TABLES.items()}


@dataclass(frozen=True)
class StoreMeta:
    """What a store is, besides its records.

    Attributes:
        store_id: Random hex id of the store (a journal names it in its header).
        created: Epoch seconds when the store was created.
        spec: The campaign spec.
        input_names: The ``d`` input names.
        output_names: The ``m`` output names.
    """

    store_id: str
    created: float
    spec: dict[str, Any]
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]


@dataclass(frozen=True)
class SnapshotContents:
    """Everything a snapshot file holds.

    Attributes:
        meta: The store's identity, spec and names.
        seq: Sequence number of the last journal record the snapshot holds.
        tables: Table name -> its columns.
    """

    meta: StoreMeta
    seq: int
    tables: dict[str, Table]


def not_a_store(path: Path, what: str) -> NotACampaignStoreError:
    """The error for a file at ``path`` that is not a readable campaign store."""
    return NotACampaignStoreError(f"{path}: {one_line(what)}")


def _writer_version() -> str:
    try:
        return f"surrogate_al {metadata.version('surrogate_al')}"
    except metadata.PackageNotFoundError:
        return "surrogate_al (version unknown)"


def write_layout(f: h5py.File, contents: SnapshotContents) -> None:
    """Write every attribute, name list and table of ``contents`` into the open, empty file ``f``."""
    f.attrs["format"] = FORMAT
    f.attrs["schema_version"] = np.int64(SCHEMA_VERSION)
    meta = contents.meta
    f.attrs["created"] = meta.created
    f.attrs["store_id"] = meta.store_id
    f.attrs["journal_seq"] = np.int64(contents.seq)
    f.attrs["writer"] = _writer_version()
    text = h5py.string_dtype()
    f.create_dataset("spec", data=json.dumps(meta.spec), dtype=text)
    f.create_group("inputs").create_dataset("names", data=np.array(meta.input_names, dtype=object), dtype=text)
    f.create_group("outputs").create_dataset("names", data=np.array(meta.output_names, dtype=object), dtype=text)
    for name, table in contents.tables.items():
        table.write_h5(f.create_group(name))


def read_layout(f: h5py.File, path: Path) -> SnapshotContents:
    """Read a whole store from the open file ``f`` (``path`` names it in errors).

    Raises:
        NotACampaignStoreError: Not a campaign store, or of another schema version.
        KeyError, ValueError, TypeError: A part of the layout is missing or malformed.
        RecursionError: The spec is nested too deeply to parse.
    """
    fmt = f.attrs.get("format")
    fmt = fmt.decode() if isinstance(fmt, bytes) else fmt
    if fmt != FORMAT:
        raise not_a_store(
            path,
            f"an HDF5 file but not a surrogate_al campaign store (root attribute format={fmt!r}, expected {FORMAT!r})",
        )
    version = f.attrs.get("schema_version")
    if not isinstance(version, (int, np.integer)):
        raise not_a_store(path, f"schema_version attribute is {version!r}, expected an integer")
    if version > SCHEMA_VERSION:
        raise not_a_store(
            path,
            f"written with store schema_version {int(version)}, newer than this surrogate_al reads "
            f"({SCHEMA_VERSION}); upgrade surrogate_al",
        )
    if version != SCHEMA_VERSION:
        raise not_a_store(path, f"unknown store schema_version {int(version)} (this surrogate_al reads {SCHEMA_VERSION})")
    spec = json.loads(f["spec"].asstr()[()])
    input_names = tuple(f["inputs/names"].asstr()[()].tolist())
    output_names = tuple(f["outputs/names"].asstr()[()].tolist())
    store_id = str(f.attrs["store_id"])
    created = float(f.attrs["created"])
    seq = int(f.attrs["journal_seq"])
    tables = make_tables(len(input_names), len(output_names))
    for name, table in tables.items():
        if name not in f:
            raise ValueError(f"group /{name} is missing")
        table.read_h5(f[name], f"/{name}")
    return SnapshotContents(StoreMeta(store_id, created, spec, input_names, output_names), seq, tables)
