"""The records a store holds and the one declared schema of a run.

:data:`RUN_COLUMNS` declares every column of a run once: the HDF5 dataset under
``/runs`` and the key of a journal ``run`` row (:attr:`Column.name`), how it is
stored (:attr:`Column.kind`), the :class:`RunRecord` attribute it fills
(:attr:`RunColumn.field`), and whether the caller of ``CampaignStore.add_run``
passes it (with which default) or the store fills it. The ``/runs`` table, the
journal row :func:`run_row` builds and the records ``CampaignStore.runs`` returns
all follow it; :class:`RunRecord` and ``add_run``'s keywords are checked against
it when the package is imported, so none of them can drift from the others.
"""

from __future__ import annotations

import inspect
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from surrogate_al.errors import StoreError

__all__ = [
    "CAMPAIGN_STATES",
    "RUN_COLUMNS",
    "RUN_STATUSES",
    "Checkpoint",
    "Column",
    "Kind",
    "ProposalRecord",
    "RunColumn",
    "RunRecord",
    "as_bool",
    "as_float",
    "as_int",
    "as_text",
    "check_run_arguments",
    "clean_text",
    "names",
    "proposal_rows",
    "run_row",
    "run_values",
]

RUN_STATUSES: tuple[str, ...] = ("ok", "failed", "timeout", "invalid", "lost")
"""Allowed :attr:`RunRecord.status` values."""

CAMPAIGN_STATES: tuple[str, ...] = ("running", "completed", "stopped", "failed")
"""Allowed values of ``CampaignStore.set_state``."""


# --------------------------------------------------------------------------- record types


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
    """One attempt of one proposal (its fields follow :data:`RUN_COLUMNS`).

    Attributes:
        run_id: 0, 1, 2, ... in order of recording.
        proposal_id: The proposal this attempt evaluated.
        attempt: 1-based attempt number.
        final: True when this attempt settles the proposal (ok, or failed after
            the last retry).
        status: One of :data:`RUN_STATUSES` ("invalid": bad output; "lost":
            the worker died).
        inputs: ``(d,)`` inputs in physical units (copied from the proposal).
        outputs: ``(m,)`` outputs; NaN unless ``status == "ok"``.
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
        inputs: ``(d,)`` inputs in physical units.
        unit: ``(d,)`` inputs in the unit cube.
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


# --------------------------------------------------------------------------- columns

Kind = Literal["int", "float", "bool", "str", "bytes", "in", "out"]
"""How a column is stored: int64, float64, bool, UTF-8 text, opaque bytes (base64 in
the journal), a vector of the ``d`` inputs or of the ``m`` outputs (float64)."""


@dataclass(frozen=True)
class Column:
    """One column of a table: a dataset of the table's HDF5 group and a key of its journal rows.

    Attributes:
        name: Dataset name and journal key.
        kind: How the values are stored.
    """

    name: str
    kind: Kind


@dataclass(frozen=True)
class RunColumn(Column):
    """One column of the run table.

    Attributes:
        field: The :class:`RunRecord` attribute it fills (and, for a caller
            column, the keyword of ``add_run``).
        filled_by: ``"caller"``: an ``add_run`` keyword; ``"store"``: the store
            fills it (the run id, the inputs copied from the proposal).
        default: The keyword's default; None: the keyword is required.
    """

    field: str
    filled_by: Literal["caller", "store"] = "caller"
    default: str | None = None


RUN_COLUMNS: tuple[RunColumn, ...] = (
    RunColumn("run_id", "int", "run_id", filled_by="store"),
    RunColumn("proposal_id", "int", "proposal_id"),
    RunColumn("attempt", "int", "attempt"),
    RunColumn("final", "bool", "final"),
    RunColumn("status", "str", "status"),
    RunColumn("X", "in", "inputs", filled_by="store"),
    RunColumn("Y", "out", "outputs"),
    RunColumn("reason", "str", "reason", default=""),
    RunColumn("stderr_tail", "str", "stderr_tail", default=""),
    RunColumn("submit_time", "float", "submit_time"),
    RunColumn("start_time", "float", "start_time"),
    RunColumn("finish_time", "float", "finish_time"),
    RunColumn("wall_time", "float", "wall_time"),
    RunColumn("worker", "str", "worker", default=""),
    RunColumn("host", "str", "host", default=""),
)
"""The run table's columns, in the order of the datasets and of :class:`RunRecord`'s fields."""

if tuple(f.name for f in fields(RunRecord)) != tuple(c.field for c in RUN_COLUMNS):
    raise TypeError("RunRecord's fields and RUN_COLUMNS disagree; they must name the same fields in the same order")


def check_run_arguments(add_run: Callable[..., Any]) -> None:
    """Check that ``add_run``'s keyword-only parameters are the caller columns of :data:`RUN_COLUMNS`.

    Raises:
        TypeError: The names, their order or their defaults differ.
    """
    params = [p for p in inspect.signature(add_run).parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    got = [(p.name, None if p.default is inspect.Parameter.empty else p.default) for p in params]
    want = [(c.field, c.default) for c in RUN_COLUMNS if c.filled_by == "caller"]
    if got != want:
        raise TypeError(f"add_run's keywords {got} disagree with the caller columns of RUN_COLUMNS {want}")


# --------------------------------------------------------------------------- argument checks


def clean_text(value: str) -> str:
    """Make text storable as an HDF5 UTF-8 string: no NULs, no lone surrogates."""
    # HDF5 strings are NUL-terminated (a NUL would silently cut the text) and
    # lone surrogates (from undecodable bytes) cannot be encoded as UTF-8.
    return value.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")


def as_int(field: str, value: object) -> int:
    """``value`` as an int (bools refused); ``field`` names it in the error."""
    if isinstance(value, bool):
        raise StoreError(f"{field} must be an integer, got {value!r}")
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise StoreError(f"{field} must be an integer, got {value!r} ({type(value).__name__})") from None


def as_float(field: str, value: object) -> float:
    """``value`` as a float; ``field`` names it in the error."""
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise StoreError(f"{field} must be a number, got {value!r} ({type(value).__name__})") from None


def as_text(field: str, value: object, *, nonempty: bool = False) -> str:
    """``value`` as storable text (:func:`clean_text`); ``field`` names it in the error."""
    if not isinstance(value, str):
        raise StoreError(f"{field} must be a string, got {value!r} ({type(value).__name__})")
    if nonempty and not value:
        raise StoreError(f"{field} must be a non-empty string")
    return clean_text(value)


def as_bool(field: str, value: object) -> bool:
    """``value`` as a bool (Python or numpy bools only); ``field`` names it in the error."""
    if not isinstance(value, (bool, np.bool_)):
        raise StoreError(f"{field} must be True or False, got {value!r}")
    return bool(value)


def names(field: str, given: Sequence[str]) -> tuple[str, ...]:
    """Unique, non-empty input or output names as a tuple."""
    if isinstance(given, str) or not all(isinstance(n, str) and n for n in given):
        raise StoreError(f"{field} must be a sequence of non-empty strings, got {given!r}")
    out = tuple(given)
    if not out:
        raise StoreError(f"{field} is empty; a campaign needs at least one name")
    if len(set(out)) != len(out):
        dup = sorted({n for n in out if out.count(n) > 1})
        raise StoreError(f"{field} has duplicate names {dup}; names must be unique")
    return out


_SCALAR: dict[str, Callable[[str, object], Any]] = {"int": as_int, "float": as_float, "str": as_text, "bool": as_bool}


# --------------------------------------------------------------------------- journal rows


def _outputs(status: str, outputs: object, output_names: tuple[str, ...]) -> list[float]:
    """The ``(m,)`` output vector of a run: the checked values for "ok", NaN otherwise."""
    if status != "ok":
        return [math.nan] * len(output_names)
    if not isinstance(outputs, Mapping):
        raise StoreError(
            f"add_run: status 'ok' needs outputs, a mapping of {output_names} to numbers; got {outputs!r}"
        )
    unknown = sorted(set(outputs) - set(output_names))
    missing = [n for n in output_names if n not in outputs]
    if unknown or missing:
        raise StoreError(
            f"add_run: outputs keys do not match the output names {output_names} "
            f"(missing {missing}, unknown {unknown})"
        )
    Y = [as_float(f"add_run: outputs[{n!r}]", outputs[n]) for n in output_names]
    if not all(math.isfinite(y) for y in Y):
        raise StoreError(
            f"add_run: status 'ok' with non-finite outputs {dict(zip(output_names, Y))}; "
            "record it with status 'invalid'"
        )
    return Y  # floats round-trip exactly through json (repr), NaN included


def run_values(given: Mapping[str, object], output_names: tuple[str, ...]) -> dict[str, Any]:
    """Check ``add_run``'s keyword arguments and convert them to journal values.

    Args:
        given: Every caller column's :attr:`RunColumn.field` -> the value passed.
        output_names: The ``m`` output names (``outputs`` must map each of them for "ok").

    Returns:
        Field -> JSON-able value for every caller column (``outputs``: ``m`` floats).

    Raises:
        StoreError: A value has the wrong type, an unknown status, an attempt
            below 1, an "ok" run that is not final, or bad outputs.
    """
    values = {
        c.field: _SCALAR[c.kind](f"add_run: {c.field}", given[c.field])
        for c in RUN_COLUMNS
        if c.filled_by == "caller" and c.kind != "out"
    }
    status = values["status"]
    if status not in RUN_STATUSES:
        raise StoreError(f"add_run: status {status!r} is unknown; expected one of {RUN_STATUSES}")
    if values["attempt"] < 1:
        raise StoreError(f"add_run: attempt must be >= 1 (1-based), got {values['attempt']}")
    if status == "ok" and not values["final"]:
        raise StoreError("add_run: an 'ok' run settles its proposal; pass final=True")
    values["outputs"] = _outputs(status, given["outputs"], output_names)
    return values


def run_row(values: Mapping[str, Any], *, run_id: int, inputs: list[float]) -> dict[str, Any]:
    """The journal row of a run, keyed by column name.

    Args:
        values: :func:`run_values`' result.
        run_id: The new run's id.
        inputs: The ``d`` inputs of its proposal.
    """
    filled = {**values, "run_id": run_id, "inputs": inputs}
    return {c.name: filled[c.field] for c in RUN_COLUMNS}


def proposal_rows(
    input_names: tuple[str, ...],
    inputs: ArrayLike,
    unit: ArrayLike,
    scores: Mapping[str, ArrayLike | None],
    *,
    batch_id: object,
    lam: object,
    surrogate_version: object,
    source: object,
) -> list[dict[str, Any]]:
    """Check ``add_proposals``' arguments and build its journal rows, without ``proposal_id`` and ``created``.

    Args:
        input_names: The ``d`` input names.
        inputs: ``(q, d)`` points in physical units.
        unit: ``(q, d)`` the same points in the unit cube.
        scores: ``"U"``, ``"D"``, ``"J"`` -> ``(q,)`` scores, a scalar for all, or None (NaN).
        batch_id: The batch number.
        lam: The lambda of J.
        surrogate_version: Version of the proposing surrogate.
        source: "initial" or the policy's name.

    Returns:
        ``q`` rows, keyed by column name.

    Raises:
        StoreError: An argument has the wrong shape or type, or a point is not finite.
    """
    d = len(input_names)
    X = np.asarray(inputs, dtype=float)
    Z = np.asarray(unit, dtype=float)
    if X.ndim != 2 or X.shape[1] != d:
        raise StoreError(f"add_proposals: inputs has shape {X.shape}, expected q x {d} (inputs {input_names})")
    q = X.shape[0]
    if Z.shape != X.shape:
        raise StoreError(f"add_proposals: unit has shape {Z.shape}, expected {X.shape} like inputs")
    if not (np.isfinite(X).all() and np.isfinite(Z).all()):
        raise StoreError("add_proposals: inputs and unit must be finite (found NaN or inf)")
    columns = {}
    for name, s in scores.items():
        arr = np.full(q, np.nan) if s is None else np.asarray(s, dtype=float)
        if arr.ndim == 0:
            arr = np.full(q, float(arr))
        if arr.shape != (q,):
            raise StoreError(f"add_proposals: {name} has shape {arr.shape}, expected ({q},) (one per point) or None")
        columns[name] = arr.tolist()
    common = {
        "batch_id": as_int("add_proposals: batch_id", batch_id),
        "surrogate_version": as_int("add_proposals: surrogate_version", surrogate_version),
        "lam": as_float("add_proposals: lam", lam),
        "source": as_text("add_proposals: source", source, nonempty=True),
    }
    return [
        {"X": X[i].tolist(), "unit": Z[i].tolist(), **{k: v[i] for k, v in columns.items()}, **common}
        for i in range(q)
    ]
