"""What one simulator run returns, and the checks that make its outputs numbers.

A run that fails -- an exception in user code, a non-zero exit, a timeout, a
missing or malformed output -- is *data* (a :class:`SimulationResult` with status
``"failed"``, ``"timeout"`` or ``"invalid"`` and a reason), never an exception: a
campaign keeps failed points (they tell a feasibility model where the simulator
breaks) and goes on.
"""

from __future__ import annotations

import math
import numbers
import os
import re
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from surrogate_al.errors import DataError

__all__ = [
    "STATUSES",
    "TAIL_BYTES",
    "RunClock",
    "SimulationResult",
    "Status",
    "clip",
    "collect_outputs",
    "exception_reason",
    "tail",
    "to_float",
]

Status = Literal["ok", "failed", "timeout", "invalid"]
#: ``invalid``: the run finished (exit code 0, no exception) but its output cannot be
#: used: no output file, malformed, NaN/inf, wrong shape, a missing output name.
#: Kept apart from ``failed`` (the program itself reported an error) because the two
#: call for different fixes: the solver, or the way its results are read.
STATUSES: tuple[str, ...] = ("ok", "failed", "timeout", "invalid")

#: Default size of the stdout / stderr tails kept in a result (bytes).
TAIL_BYTES = 4096

# Fortran writes exponents with D (1.5D+03); float() does not read them.
_FORTRAN_FLOAT = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))[dD]([+-]?\d+)$")


@dataclass(frozen=True)
class SimulationResult:
    """What one simulator run returned.

    Attributes:
        status: ``"ok"``, ``"failed"``, ``"timeout"`` or ``"invalid"`` (the run
            finished but its output is unusable: missing, malformed, NaN/inf,
            wrong shape).
        outputs: ``{output name: value}`` (finite floats); empty unless ``ok``.
        reason: ``""`` when ``ok``; otherwise what went wrong, e.g. ``"exit code 1"``
            or ``"output 'y' is nan"``.
        stderr_tail: the last bytes of the run's stderr (decoded UTF-8), or the
            traceback of a Python exception.
        stdout_tail: the last bytes of the run's stdout (decoded UTF-8).
        wall_time: seconds the run took.
        host: host name of the machine that ran it.
        pid: process id of the (worker) process that ran it.
        started_at: unix time the run started.
        finished_at: unix time the run finished.
        workdir: the run directory when it was kept (failures, timeouts,
            ``keep_workdirs``), else ``None``.

    Raises:
        DataError: inconsistent fields (e.g. outputs on a failed run, a NaN output,
            an ``ok`` result with a reason).
    """

    status: Status
    outputs: dict[str, float] = field(default_factory=dict, hash=False)
    reason: str = ""
    stderr_tail: str = ""
    stdout_tail: str = ""
    wall_time: float = 0.0
    host: str = ""
    pid: int = 0
    started_at: float = 0.0
    finished_at: float = 0.0
    workdir: str | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise DataError(f"SimulationResult.status = {self.status!r}; expected one of {list(STATUSES)}")
        if not isinstance(self.outputs, Mapping):
            raise DataError(
                f"SimulationResult.outputs must be a mapping {{name: value}}, got {type(self.outputs).__name__}"
            )
        outputs: dict[str, float] = {}
        for name, value in self.outputs.items():
            number, problem = to_float(value)
            if problem:
                raise DataError(f"SimulationResult.outputs[{name!r}] {problem}")
            outputs[str(name)] = number
        if self.status == "ok":
            if self.reason:
                raise DataError(f"an ok SimulationResult has reason {self.reason!r}; reason must be ''")
        else:
            if outputs:
                raise DataError(
                    f"a {self.status} SimulationResult has outputs {sorted(outputs)}; only ok results carry outputs"
                )
            if not self.reason:
                raise DataError(f"a {self.status} SimulationResult needs a reason saying what went wrong")
        for name in ("reason", "stderr_tail", "stdout_tail", "host"):
            if not isinstance(getattr(self, name), str):
                raise DataError(f"SimulationResult.{name} must be a str, got {getattr(self, name)!r}")
        if self.workdir is not None and not isinstance(self.workdir, str):
            raise DataError(f"SimulationResult.workdir must be a str or None, got {self.workdir!r}")
        object.__setattr__(self, "outputs", outputs)
        for name, kind in (("wall_time", float), ("started_at", float), ("finished_at", float), ("pid", int)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise DataError(f"SimulationResult.{name} = {value!r} must be a number")
            object.__setattr__(self, name, kind(value))

    @property
    def ok(self) -> bool:
        """Whether the run succeeded (``status == "ok"``)."""
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        """The result as plain JSON types (for stores and logs)."""
        return {f.name: (dict(self.outputs) if f.name == "outputs" else getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SimulationResult:
        """Inverse of :meth:`to_dict`.

        Raises:
            DataError: keys missing or unknown, or inconsistent values.
        """
        if not isinstance(data, Mapping):
            raise DataError(f"SimulationResult.from_dict expects a mapping, got {type(data).__name__}")
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in data]
        unknown = sorted(set(data) - set(names))
        if missing or unknown:
            raise DataError(
                f"SimulationResult.from_dict: missing keys {missing}, unknown keys {unknown}; "
                f"expected exactly {names} (as written by to_dict)"
            )
        return cls(**{n: data[n] for n in names})


def to_float(value: Any) -> tuple[float, str]:
    """``(number, "")`` or ``(nan, problem)`` where problem reads after ``"output 'y' "``.

    Accepts numbers, numeric strings (a Fortran ``D`` exponent included) and
    0-d array-likes (numpy scalars, 0-d arrays and tensors, Decimal, Fraction).
    """
    if isinstance(value, bool):
        return math.nan, f"is a bool ({value!r}), expected a number"
    try:
        if isinstance(value, str):
            text = value.strip()
            fortran = _FORTRAN_FLOAT.match(text)
            if fortran:
                text = f"{fortran.group(1)}e{fortran.group(2)}"
            number = float(text)
        elif isinstance(value, (int, float)) or (hasattr(value, "__float__") and getattr(value, "ndim", 0) == 0):
            number = float(value)
        else:
            return math.nan, f"is a {type(value).__name__} ({clip(repr(value), 80)}), expected a number"
    except OverflowError:
        return math.nan, f"is too large for a float ({clip(str(value), 80)})"
    except (TypeError, ValueError):
        return math.nan, f"is not a number: {clip(value if isinstance(value, str) else repr(value), 80)!r}"
    if math.isnan(number):
        return number, "is nan"
    if math.isinf(number):
        return number, f"is {'-inf' if number < 0 else 'inf'}"
    return number, ""


def clip(text: str, n: int) -> str:
    """``text`` cut to ``n`` characters, ending in ``...`` when cut."""
    return text if len(text) <= n else text[: n - 3] + "..."


def tail(text: str, n_bytes: int) -> str:
    """The last ``n_bytes`` bytes of ``text`` (UTF-8), decoded leniently."""
    data = text.encode("utf-8", errors="replace")
    return data[-n_bytes:].decode("utf-8", errors="replace") if len(data) > n_bytes else text


def collect_outputs(
    raw: Mapping[str, Any], output_names: Sequence[str], source: str
) -> tuple[dict[str, float], str]:
    """Pick ``output_names`` from ``raw``; ``(outputs, "")`` or ``({}, reason)``.

    Args:
        raw: what the run produced, ``{name: value}`` (extra names are ignored).
        output_names: the names to take, each converted by :func:`to_float`.
        source: where ``raw`` came from, for the reason (e.g. ``"output.json"``).
    """
    outputs: dict[str, float] = {}
    for name in output_names:
        if name not in raw:
            found = sorted(str(k) for k in raw)
            return {}, f"output {name!r} missing from {source} (found: {clip(repr(found), 300)})"
        number, problem = to_float(raw[name])
        if problem:
            return {}, f"output {name!r} {problem}"
        outputs[name] = number
    return outputs, ""


def exception_reason(prefix: str, exc: BaseException) -> str:
    """``prefix`` followed by the exception's type and (clipped) message."""
    message = str(exc)
    return f"{prefix}{type(exc).__name__}: {clip(message, 500)}" if message else f"{prefix}{type(exc).__name__}"


class RunClock:
    """Start time of a run, and the common fields of its result."""

    def __init__(self) -> None:
        self.started_at = time.time()
        self._t0 = time.perf_counter()

    def elapsed(self) -> float:
        """Seconds since the run started."""
        return time.perf_counter() - self._t0

    def result(
        self,
        status: Status,
        outputs: Mapping[str, float] | None = None,
        reason: str = "",
        *,
        stdout_tail: str = "",
        stderr_tail: str = "",
        workdir: str | None = None,
    ) -> SimulationResult:
        """The result of the run, stamped with its timing, host and process id."""
        wall = self.elapsed()
        return SimulationResult(
            status=status,
            outputs=dict(outputs or {}),
            reason=reason,
            stderr_tail=stderr_tail,
            stdout_tail=stdout_tail,
            wall_time=wall,
            host=socket.gethostname(),
            pid=os.getpid(),
            started_at=self.started_at,
            finished_at=self.started_at + wall,
            workdir=workdir,
        )
