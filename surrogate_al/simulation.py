"""Simulators: the expensive functions a campaign learns, and what one run returns.

A simulator maps named inputs to named scalar outputs. Two wrappers cover what
scientists have:

* :class:`PythonSimulator` wraps a Python callable (or a ``"module:function"``
  string, imported lazily on the worker).
* :class:`ScriptSimulator` wraps an existing script or executable: it writes the
  inputs into a file (JSON, or a text input deck rendered from a template) in a
  fresh run directory, runs the command as an argument list (never a shell),
  enforces a timeout by killing the whole process group, and parses the outputs
  (JSON, CSV, ``key = value`` lines, regular expressions, or a user function).

Every call returns a :class:`SimulationResult`. A run that fails -- an exception
in user code, a non-zero exit, a timeout, a missing or malformed output -- is
*data* (status ``"failed"``, ``"timeout"`` or ``"invalid"`` with a reason), never
an exception:
a campaign keeps failed points (they tell a feasibility model where the
simulator breaks) and goes on. Only misconfiguration at construction time
raises :class:`~surrogate_al.errors.SimulatorError`.

Simulators are shipped to Dask workers, so they hold plain data only (strings,
tuples, dicts, numbers and the user's callable) and pickle cleanly.

The script wrapper is POSIX-only (process groups, ``os.killpg``).
"""

from __future__ import annotations

import csv
import importlib
import inspect
import io
import json
import logging
import math
import numbers
import os
import re
import shutil
import signal
import socket
import string
import subprocess
import time
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path, PurePath
from typing import Any, Literal, Protocol, runtime_checkable

import psutil

from surrogate_al.errors import DataError, SimulatorError

__all__ = [
    "Status",
    "STATUSES",
    "SimulationResult",
    "Simulator",
    "PythonSimulator",
    "ScriptSimulator",
    "InputFormat",
    "OutputFormat",
    "PLACEHOLDERS",
    "TAIL_BYTES",
]

logger = logging.getLogger(__name__)

Status = Literal["ok", "failed", "timeout", "invalid"]
#: ``invalid``: the run finished (exit code 0, no exception) but its output cannot be
#: used: no output file, malformed, NaN/inf, wrong shape, a missing output name.
#: Kept apart from ``failed`` (the program itself reported an error) because the two
#: call for different fixes: the solver, or the way its results are read.
STATUSES: tuple[str, ...] = ("ok", "failed", "timeout", "invalid")
InputFormat = Literal["json", "template", "none"]
OutputFormat = Literal["json", "csv", "keyvalue", "regex", "parse"]
INPUT_FORMATS: tuple[str, ...] = ("json", "template", "none")
OUTPUT_FORMATS: tuple[str, ...] = ("json", "csv", "keyvalue", "regex", "parse")

#: Names a command argument (and a template) may use besides the input names.
PLACEHOLDERS: tuple[str, ...] = ("input", "output", "workdir", "run_id")

#: Default size of the stdout / stderr tails kept in a result (bytes).
TAIL_BYTES = 4096

# Files the wrapper itself writes into every run directory.
_STDOUT_FILE = "stdout.txt"
_STDERR_FILE = "stderr.txt"

_CALLABLE_REF = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")
# Fortran writes exponents with D (1.5D+03); float() does not read them.
_FORTRAN_FLOAT = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))[dD]([+-]?\d+)$")
_KEYVALUE_LINE = re.compile(r"^\s*([A-Za-z_][\w.\-]*)\s*=\s*(.*?)\s*$")
_UNSAFE_DIRNAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


# ---------------------------------------------------------------------------------------
# Result
# ---------------------------------------------------------------------------------------
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
            number, problem = _to_float(value)
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


# ---------------------------------------------------------------------------------------
# Protocol
# ---------------------------------------------------------------------------------------
@runtime_checkable
class Simulator(Protocol):
    """Anything that runs one simulation for named inputs.

    Implementations never raise for a failed run: exceptions, bad outputs,
    non-zero exits and timeouts come back as a :class:`SimulationResult` with
    status ``"failed"``, ``"timeout"`` or ``"invalid"``. They must be picklable (Dask ships
    them to workers).
    """

    input_names: tuple[str, ...]
    output_names: tuple[str, ...]

    def __call__(self, inputs: Mapping[str, Any], run_id: str | None = None) -> SimulationResult:
        """Run once for ``inputs`` (``{input name: value}``)."""
        ...


# ---------------------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------------------
def _to_float(value: Any) -> tuple[float, str]:
    """``(number, "")`` or ``(nan, problem)`` where problem reads after ``"output 'y' "``."""
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
            # The second case: numpy scalars, 0-d arrays, 0-d torch tensors, Decimal, Fraction.
            number = float(value)
        else:
            return math.nan, f"is a {type(value).__name__} ({_clip(repr(value), 80)}), expected a number"
    except OverflowError:
        return math.nan, f"is too large for a float ({_clip(str(value), 80)})"
    except (TypeError, ValueError):
        return math.nan, f"is not a number: {_clip(value if isinstance(value, str) else repr(value), 80)!r}"
    if math.isnan(number):
        return number, "is nan"
    if math.isinf(number):
        return number, f"is {'-inf' if number < 0 else 'inf'}"
    return number, ""


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


def _tail(text: str, n_bytes: int) -> str:
    """The last ``n_bytes`` bytes of ``text`` (UTF-8), decoded leniently."""
    data = text.encode("utf-8", errors="replace")
    return data[-n_bytes:].decode("utf-8", errors="replace") if len(data) > n_bytes else text


def _collect_outputs(
    raw: Mapping[str, Any], output_names: Sequence[str], source: str
) -> tuple[dict[str, float], str]:
    """Pick ``output_names`` from ``raw``; ``(outputs, "")`` or ``({}, reason)``."""
    outputs: dict[str, float] = {}
    for name in output_names:
        if name not in raw:
            found = sorted(str(k) for k in raw)
            return {}, f"output {name!r} missing from {source} (found: {_clip(repr(found), 300)})"
        number, problem = _to_float(raw[name])
        if problem:
            return {}, f"output {name!r} {problem}"
        outputs[name] = number
    return outputs, ""


def _check_names(names: Any, what: str) -> tuple[str, ...]:
    if isinstance(names, str) or not isinstance(names, Sequence):
        raise SimulatorError(f"{what} must be a list of names, got {names!r}; e.g. {what}=['x1', 'x2']")
    out = tuple(names)
    if not out:
        raise SimulatorError(f"{what} is empty; give at least one name")
    for name in out:
        if not isinstance(name, str) or not name.isidentifier():
            raise SimulatorError(
                f"{what}: {name!r} is not a valid identifier; use letters, digits and underscores, "
                "not starting with a digit"
            )
    duplicates = sorted({n for n in out if out.count(n) > 1})
    if duplicates:
        raise SimulatorError(f"{what} has duplicates {duplicates}; every name must be unique")
    return out


def _check_fixed(fixed: Mapping[str, Any] | None, input_names: tuple[str, ...]) -> dict[str, Any]:
    if fixed is None:
        return {}
    if not isinstance(fixed, Mapping):
        raise SimulatorError(f"fixed_inputs must be a mapping {{name: value}}, got {type(fixed).__name__}")
    out = dict(fixed)
    for name in out:
        if not isinstance(name, str) or not name.isidentifier():
            raise SimulatorError(f"fixed_inputs: {name!r} is not a valid identifier")
    clash = sorted(set(out) & set(input_names))
    if clash:
        raise SimulatorError(
            f"fixed_inputs {clash} are also in input_names; an input is either varied by the campaign "
            "or fixed, not both"
        )
    return out


def _check_callable_ref(ref: Any, what: str) -> Callable[..., Any] | str:
    if isinstance(ref, str):
        if not _CALLABLE_REF.match(ref):
            raise SimulatorError(
                f"{what} = {ref!r} is not a 'module:function' reference; e.g. 'mypkg.models:flow_solver'"
            )
        return ref
    if not callable(ref):
        raise SimulatorError(f"{what} must be a callable or a 'module:function' string, got {ref!r}")
    return ref


def _resolve_callable(ref: Callable[..., Any] | str) -> Callable[..., Any]:
    """Import a ``"module:qualname"`` reference (lazily, on the worker)."""
    if not isinstance(ref, str):
        return ref
    module_name, _, qualname = ref.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{ref!r} resolves to a {type(obj).__name__}, which is not callable")
    return obj


def _exception_reason(prefix: str, exc: BaseException) -> str:
    message = str(exc)
    return f"{prefix}{type(exc).__name__}: {_clip(message, 500)}" if message else f"{prefix}{type(exc).__name__}"


class _Clock:
    """Start time of a run, and the common fields of its result."""

    def __init__(self) -> None:
        self.started_at = time.time()
        self._t0 = time.perf_counter()

    def elapsed(self) -> float:
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


class _NamedSimulator:
    """Input/output names, fixed inputs and the per-call input check shared by the wrappers."""

    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    fixed_inputs: dict[str, Any]

    def _init_names(
        self, input_names: Sequence[str], output_names: Sequence[str], fixed_inputs: Mapping[str, Any] | None
    ) -> None:
        self.input_names = _check_names(input_names, "input_names")
        self.output_names = _check_names(output_names, "output_names")
        self.fixed_inputs = _check_fixed(fixed_inputs, self.input_names)

    def _merge_inputs(self, inputs: Any) -> tuple[dict[str, Any], str]:
        """``({name: value} incl. fixed inputs, "")`` or ``({}, reason)``."""
        if not isinstance(inputs, Mapping):
            return {}, f"inputs must be a mapping {{name: value}}, got {type(inputs).__name__}"
        missing = [n for n in self.input_names if n not in inputs]
        if missing:
            return {}, f"missing inputs {missing} (expected {list(self.input_names)})"
        fixed = sorted(set(inputs) & set(self.fixed_inputs))
        if fixed:
            return {}, f"inputs {fixed} are fixed_inputs of this simulator; do not pass them per run"
        unknown = sorted(str(k) for k in set(inputs) - set(self.input_names))
        if unknown:
            return {}, f"unknown inputs {unknown} (expected {list(self.input_names)})"
        return {**self.fixed_inputs, **{n: inputs[n] for n in self.input_names}}, ""

    @staticmethod
    def _check_timeout(timeout: Any) -> float | None:
        if timeout is None:
            return None
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise SimulatorError(f"timeout = {timeout!r} must be a positive number of seconds or None")
        return float(timeout)


# ---------------------------------------------------------------------------------------
# Python callables
# ---------------------------------------------------------------------------------------
class PythonSimulator(_NamedSimulator):
    """A simulator that calls a Python function in the worker process.

    Args:
        function: a callable, or a ``"module:function"`` string that is imported
            lazily at call time (so the simulator pickles by name and the module
            only needs to be importable on the workers). It is called with the
            inputs (and ``fixed_inputs``) as keyword arguments and returns a dict
            ``{output name: number}``, or a plain number when there is one output.
        input_names: names of the varied inputs.
        output_names: names of the outputs to take from the return value (extra
            keys are ignored).
        fixed_inputs: keyword arguments passed unchanged to every call.
        timeout: seconds. A running Python call cannot be interrupted safely from
            inside its own (Dask worker) thread, so this is checked *after* the
            call returns: a run that took longer gets status ``"timeout"`` and its
            outputs are discarded. Wrap long-running code in a
            :class:`ScriptSimulator` for a hard limit.

    Statuses: an exception (``SystemExit`` included) is ``"failed"``; a return
    value that is unusable (NaN or inf, a missing output name, a list where a
    number belongs) is ``"invalid"``.

    Raises:
        SimulatorError: bad names, a bad function reference, or a callable whose
            signature cannot take the inputs.

    Notes:
        The function's own prints are not captured (redirecting ``sys.stdout``
        is process-wide and unsafe in threaded workers); ``stdout_tail`` is
        empty and ``stderr_tail`` holds the traceback of an exception.
    """

    def __init__(
        self,
        function: Callable[..., Any] | str,
        input_names: Sequence[str],
        output_names: Sequence[str],
        *,
        fixed_inputs: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> None:
        self._init_names(input_names, output_names, fixed_inputs)
        self.function = _check_callable_ref(function, "function")
        self.timeout = self._check_timeout(timeout)
        if callable(self.function):
            self._check_signature(self.function)

    def _check_signature(self, fn: Callable[..., Any]) -> None:
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError):
            return  # builtins without a signature: nothing to check ahead of time.
        names = (*self.input_names, *self.fixed_inputs)
        try:
            sig.bind(**{n: 0.0 for n in names})
        except TypeError as exc:
            raise SimulatorError(
                f"function {getattr(fn, '__qualname__', fn)!r}{sig} cannot be called with the keyword "
                f"arguments {list(names)}: {exc}; make its parameters match input_names and fixed_inputs"
            ) from None

    def __repr__(self) -> str:
        fn = self.function if isinstance(self.function, str) else getattr(self.function, "__qualname__", "?")
        return (
            f"PythonSimulator({fn!r}, input_names={list(self.input_names)}, "
            f"output_names={list(self.output_names)}, timeout={self.timeout})"
        )

    def __call__(self, inputs: Mapping[str, Any], run_id: str | None = None) -> SimulationResult:
        """Call the function once; never raises for a failed run."""
        clock = _Clock()
        kwargs, reason = self._merge_inputs(inputs)
        if reason:
            return clock.result("failed", reason=reason)
        try:
            fn = _resolve_callable(self.function)
        except Exception as exc:  # the import runs user code: anything can come out
            return clock.result(
                "failed",
                reason=_exception_reason(f"cannot import {self.function!r}: ", exc),
                stderr_tail=_tail(traceback.format_exc(), TAIL_BYTES),
            )
        try:
            value = fn(**kwargs)
        except (Exception, SystemExit) as exc:  # user code: any failure is a failed run
            logger.debug("run %s: %r raised %r", run_id, self.function, exc)
            return clock.result(
                "failed",
                reason=_exception_reason("", exc),
                stderr_tail=_tail(traceback.format_exc(), TAIL_BYTES),
            )
        if self.timeout is not None and clock.elapsed() > self.timeout:
            return clock.result(
                "timeout",
                reason=f"took {clock.elapsed():.1f} s, over the timeout of {self.timeout} s "
                "(checked after the call returned)",
            )
        if isinstance(value, Mapping):
            outputs, reason = _collect_outputs(value, self.output_names, "the returned dict")
        elif len(self.output_names) == 1:
            outputs, reason = _collect_outputs({self.output_names[0]: value}, self.output_names, "the return value")
        else:
            outputs, reason = {}, (
                f"the function returned a {type(value).__name__}; with outputs {list(self.output_names)} "
                "it must return a dict {name: value}"
            )
        if reason:
            # The call returned normally: what it returned is unusable (NaN, missing name, wrong type).
            return clock.result("invalid", reason=reason)
        return clock.result("ok", outputs)


# ---------------------------------------------------------------------------------------
# External scripts and executables
# ---------------------------------------------------------------------------------------
def _check_relative_filename(value: Any, what: str) -> str:
    """A file name confined to the run directory (relative, no ``..``)."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value.strip():
        raise SimulatorError(f"{what} = {value!r} must be a non-empty file name such as 'input.json'")
    if "\x00" in value:
        raise SimulatorError(f"{what} = {value!r} contains a NUL byte")
    path = PurePath(value)
    if path.is_absolute() or value.startswith("~"):
        raise SimulatorError(
            f"{what} = {value!r} is absolute; give a name relative to the run directory (e.g. 'out.json'): "
            "every file the wrapper touches stays inside that directory"
        )
    if ".." in path.parts:
        raise SimulatorError(
            f"{what} = {value!r} contains '..' and could point outside the run directory; "
            "give a plain name relative to it (e.g. 'out.json' or 'results/out.json')"
        )
    if path.parts in ((), (".",)) or value.endswith(("/", os.sep)):
        raise SimulatorError(f"{what} = {value!r} names a directory; give a file name")
    return str(path)


def _format_fields(text: str, what: str) -> list[tuple[str, str | None, str]]:
    """Split ``text`` into ``(literal, field name or None, format spec)`` pieces (str.format syntax)."""
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise SimulatorError(
            f"{what} = {text!r}: {exc}; write {{{{ and }}}} for literal braces"
        ) from None
    pieces: list[tuple[str, str | None, str]] = []
    for literal, name, spec, conversion in parsed:
        if name is not None and (conversion or "{" in (spec or "")):
            raise SimulatorError(
                f"{what} = {text!r}: placeholder {{{name}{'!' + conversion if conversion else ''}"
                f"{':' + spec if spec else ''}}} uses a conversion or a nested field; only "
                "{name} and {name:format} (e.g. {x1:.6e}) are allowed"
            )
        pieces.append((literal, name, spec or ""))
    return pieces


def _template_fields(text: str, what: str) -> list[str]:
    """Names used as ``$name`` / ``${name}`` in ``string.Template`` text (Python 3.10-safe)."""
    names: list[str] = []
    for match in string.Template.pattern.finditer(text):
        if match.group("invalid") is not None:
            start = match.start("invalid")
            line = text.count("\n", 0, start) + 1
            snippet = text[start : start + 20].splitlines()[0] if text[start:] else "$"
            raise SimulatorError(
                f"{what}: invalid placeholder at line {line} ({snippet!r}); fields are written ${{name}} "
                "and a literal dollar sign as $$"
            )
        name = match.group("named") or match.group("braced")
        if name is not None:
            names.append(name)
    return names


def _sanitize_run_id(run_id: str) -> str:
    """A safe directory name for ``run_id``: ``[A-Za-z0-9._-]``, not starting with ``.``/``_``/``-``, <= 100 chars."""
    # No separators survive, and no leading dot: never "..", never hidden, never read as an option.
    name = _UNSAFE_DIRNAME_CHARS.sub("_", run_id).lstrip("._-")[:100]
    return name or "run"


def _read_tail(path: Path, n_bytes: int) -> tuple[str, bool]:
    """The last ``n_bytes`` of a file, decoded leniently, and whether it was cut."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - n_bytes))
            data = fh.read(n_bytes)
    except OSError:
        return "", False
    cut = size > n_bytes
    if cut:  # drop a character split by the cut rather than decode half of it
        data = data.lstrip(bytes(range(0x80, 0xC0)))
    return data.decode("utf-8", errors="replace"), cut


def _signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to process group ``pgid``; False when the group no longer exists."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        # Happens on macOS for a group made only of zombies; nothing left to stop.
        return False
    return True


def _group_has_live_members(pgid: int) -> bool:
    """Whether process group ``pgid`` still has a member that is not a zombie.

    ``killpg(pgid, 0)`` alone is not enough: a killed grandchild is re-parented
    to init and stays a zombie (still a group member) until init reaps it,
    which some container inits do late or never. Zombies run nothing, so they
    do not count. The process table is scanned only while the group exists.
    """
    if not _signal_group(pgid, 0):
        return False
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                return True
        except (OSError, psutil.Error):
            continue  # exited (or not ours to inspect) while we looked
    return False


def _wait_group_gone(pgid: int, limit: float = 2.0) -> None:
    """Wait (briefly) until no live process of group ``pgid`` is left after a SIGKILL.

    ``kill`` returns before the targets have died; waiting makes "nothing left
    behind" true when the run's result is returned.
    """
    deadline = time.monotonic() + limit
    while _group_has_live_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.005)


def _signal_name(returncode: int) -> str:
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


class ScriptSimulator(_NamedSimulator):
    """A simulator that runs an external script or executable once per point.

    Each run gets its own directory ``workdir_root/<run_id>`` (the run id with
    every character outside ``[A-Za-z0-9._-]`` replaced by ``_``; created with
    ``exist_ok=False``, so a retry of the same run id, or a clash, gets a
    ``-retryN`` suffix and two runs never share a directory). The wrapper writes the
    inputs file there, runs ``command`` with that directory as the current
    directory, stdin from ``/dev/null`` and stdout / stderr into
    ``stdout.txt`` / ``stderr.txt`` there, then parses the outputs. The
    directory is removed after a successful run (unless ``keep_workdirs``) and
    kept after a failure or timeout, its path in the result.

    Args:
        command: the argument list, e.g. ``["python", "/abs/sim.py", "{input}",
            "--out", "{output}"]``. A plain string is rejected: there is no shell,
            so quoting and ``;`` / ``$(...)`` mean nothing. Each argument may hold
            placeholders in ``str.format`` syntax, ``{name}`` or ``{name:spec}``
            (``{x1:.6e}``): ``{input}`` / ``{output}`` (absolute paths of the
            input and output files), ``{workdir}`` (the run directory),
            ``{run_id}``, and any input or fixed input name. Values are inserted
            verbatim into that one argument; nothing is interpreted. ``command[0]``
            without a slash is looked up on ``PATH`` at run time; with a slash
            and relative, it is made absolute against the current directory at
            construction. Other relative paths in arguments are relative to the
            run directory (the child's working directory): pass absolute paths.
        input_names: names of the varied inputs.
        output_names: names of the outputs to parse.
        input_format: how inputs reach the script besides the command line:
            ``"json"`` (a JSON object ``{name: value}``, fixed inputs included,
            written to ``input_filename``), ``"template"`` (``template`` rendered
            into ``input_filename``), ``"none"`` (no input file; use ``{name}``
            placeholders). Default: ``"template"`` when a template is given, else
            ``"json"``.
        template: an input deck in :class:`string.Template` syntax: fields are
            ``${name}`` (or ``$name``), a literal dollar is ``$$``. Fields may be
            input names, fixed input names, ``run_id``, ``workdir`` and ``output``.
            A :class:`pathlib.Path`, or a string naming an existing file, is read
            as a file (once, at construction, so workers need not see it); any
            other string is the template text itself (a one-line string without
            ``$`` that names no file is rejected as a mistyped path). Unknown fields and inputs
            that reach the script neither through the template nor the command
            are rejected at construction.
        input_filename: file name (relative, inside the run directory) of the
            inputs file. Default ``"input.json"`` for JSON, ``"input.txt"``
            for a template.
        output_format: ``"json"`` (a JSON object file), ``"csv"`` (a
            comma-separated file with one header row and exactly one data row),
            ``"keyvalue"`` (``name = value`` lines; other lines are ignored; the
            last occurrence of a name wins), ``"regex"`` (``output_regex``), or
            ``"parse"`` (``parse``). ``keyvalue`` and ``regex`` read stdout unless
            ``output_filename`` is given, then that file. Numbers may use a
            Fortran ``D`` exponent (``1.5D+03``).
        output_filename: file (relative, inside the run directory) holding the
            outputs. Default ``"output.json"`` for JSON, ``"output.csv"`` for
            CSV, none (stdout) for ``keyvalue`` / ``regex`` / ``parse``.
        output_regex: for ``"regex"``: ``{output name: pattern}``, each pattern
            with exactly one capture group; applied with ``re.MULTILINE``; the
            last match wins (solvers print progress, the final value last).
        parse: for ``"parse"``: a callable or ``"module:function"`` called as
            ``parse(workdir: Path, stdout: str) -> dict``; an exception in it is an
            invalid run. ``{output}`` is available only when ``output_filename``
            is given.
        workdir_root: directory under which run directories are created (made
            absolute at construction; created when missing).
        keep_workdirs: keep the run directory after a successful run too.
        timeout: seconds before the run is stopped (``None``: no limit). On
            expiry the whole process group gets SIGTERM, then SIGKILL after
            ``kill_grace`` seconds; the result has status ``"timeout"``.
        env: extra environment variables (str to str) on top of the worker's
            ``os.environ``.
        fixed_inputs: values passed to every run (in the JSON, the template and
            as ``{name}`` placeholders).
        kill_grace: seconds between SIGTERM and SIGKILL on a timeout.
        max_output_bytes: size of the stdout / stderr tails kept in the result.
        max_parse_bytes: most bytes of stdout (its tail) or of an output file
            read for parsing; a larger output file is an invalid run. The
            program's stdout and stderr go to files in the run directory, never
            through a pipe into the worker, so their size does not reach the
            worker's memory: only these bounded tails are read back.

    Statuses:
        ``"failed"``: the program could not start, exited non-zero or was killed
        by a signal. ``"timeout"``: it ran past ``timeout``. ``"invalid"``: it
        exited 0 but its outputs are unusable: the output file was not written
        or is a symbolic link leading outside the run directory, malformed
        JSON/CSV, a missing name, NaN or inf, a list where a number belongs, a
        CSV of more than one data row, or ``parse`` raised. The reason names the
        output and what was wrong; failed and invalid runs keep their directory.

    Path confinement:
        Every file the wrapper writes or reads (inputs, outputs, ``stdout.txt``,
        ``stderr.txt``) lies inside the run's own directory: file names are
        relative without ``..`` (checked at construction), the run id is
        sanitized, the directory is new for every run, the inputs file is
        created with ``O_EXCL`` (never through a symbolic link), and an output
        path that resolves outside the directory (a symbolic link the program
        made) is not read. The program itself is not sandboxed: it can write
        wherever its user can.

    Raises:
        SimulatorError: any misconfiguration, with the offending argument named.

    Notes:
        POSIX only. The child runs in its own session (``start_new_session``);
        after it exits -- normally or not -- the whole process group is killed,
        so processes it left in the background do not survive. A process that
        deliberately escapes into its own session (a daemon) is out of reach.
    """

    def __init__(
        self,
        command: Sequence[str],
        input_names: Sequence[str],
        output_names: Sequence[str],
        *,
        input_format: InputFormat | None = None,
        template: str | os.PathLike[str] | None = None,
        input_filename: str | None = None,
        output_format: OutputFormat = "json",
        output_filename: str | None = None,
        output_regex: Mapping[str, str] | None = None,
        parse: Callable[[Path, str], Mapping[str, Any]] | str | None = None,
        workdir_root: str | os.PathLike[str],
        keep_workdirs: bool = False,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        fixed_inputs: Mapping[str, Any] | None = None,
        kill_grace: float = 5.0,
        max_output_bytes: int = TAIL_BYTES,
        max_parse_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        if os.name != "posix":
            raise SimulatorError("ScriptSimulator needs a POSIX system (process groups); use PythonSimulator here")
        self._init_names(input_names, output_names, fixed_inputs)
        reserved = sorted(set(PLACEHOLDERS) & (set(self.input_names) | set(self.fixed_inputs)))
        if reserved:
            raise SimulatorError(
                f"input names {reserved} collide with the command placeholders {list(PLACEHOLDERS)}; rename them"
            )
        self.timeout = self._check_timeout(timeout)
        self.kill_grace = self._check_nonnegative(kill_grace, "kill_grace")
        self.max_output_bytes = self._check_positive_int(max_output_bytes, "max_output_bytes")
        self.max_parse_bytes = self._check_positive_int(max_parse_bytes, "max_parse_bytes")
        self.keep_workdirs = bool(keep_workdirs)
        self.workdir_root = self._check_workdir_root(workdir_root)
        self.env = self._check_env(env)

        # -- inputs -----------------------------------------------------------------------
        if input_format is None:
            input_format = "template" if template is not None else "json"
        if input_format not in INPUT_FORMATS:
            raise SimulatorError(f"input_format = {input_format!r}; expected one of {list(INPUT_FORMATS)}")
        self.input_format: InputFormat = input_format
        self.template: str | None = None
        if input_format == "template":
            if template is None:
                raise SimulatorError("input_format = 'template' needs template= (a file path or the template text)")
            self.template = self._load_template(template)
        elif template is not None:
            raise SimulatorError(
                f"template given but input_format = {input_format!r}; pass input_format='template' or drop template"
            )
        if input_format == "none":
            if input_filename is not None:
                raise SimulatorError("input_filename given but input_format = 'none' writes no input file")
            self.input_filename: str | None = None
        else:
            default_in = "input.json" if input_format == "json" else "input.txt"
            self.input_filename = _check_relative_filename(
                default_in if input_filename is None else input_filename, "input_filename"
            )

        # -- outputs ----------------------------------------------------------------------
        if output_format not in OUTPUT_FORMATS:
            raise SimulatorError(f"output_format = {output_format!r}; expected one of {list(OUTPUT_FORMATS)}")
        self.output_format: OutputFormat = output_format
        if output_filename is None and output_format in ("json", "csv"):
            output_filename = f"output.{output_format}"
        self.output_filename: str | None = (
            None if output_filename is None else _check_relative_filename(output_filename, "output_filename")
        )
        self.output_regex: dict[str, str] | None = None
        if output_format == "regex":
            self.output_regex = self._check_regex(output_regex)
        elif output_regex is not None:
            raise SimulatorError(f"output_regex given but output_format = {output_format!r}; use output_format='regex'")
        self.parse: Callable[[Path, str], Mapping[str, Any]] | str | None = None
        if output_format == "parse":
            if parse is None:
                raise SimulatorError("output_format = 'parse' needs parse= (a callable or 'module:function')")
            self.parse = _check_callable_ref(parse, "parse")
        elif parse is not None:
            raise SimulatorError(f"parse given but output_format = {output_format!r}; use output_format='parse'")
        own = {_STDOUT_FILE, _STDERR_FILE}
        for what, name in (("input_filename", self.input_filename), ("output_filename", self.output_filename)):
            if name in own:
                raise SimulatorError(f"{what} = {name!r} is taken by the wrapper's own log files {sorted(own)}")
        if self.input_filename is not None and self.input_filename == self.output_filename:
            raise SimulatorError(f"input_filename and output_filename are both {self.input_filename!r}; use two files")

        # -- command ----------------------------------------------------------------------
        self.command = self._check_command(command)

    # -- construction checks ------------------------------------------------------------
    @staticmethod
    def _check_nonnegative(value: Any, what: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise SimulatorError(f"{what} = {value!r} must be a number of seconds >= 0")
        return float(value)

    @staticmethod
    def _check_positive_int(value: Any, what: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise SimulatorError(f"{what} = {value!r} must be a positive integer (bytes)")
        return value

    @staticmethod
    def _check_workdir_root(root: Any) -> str:
        if root is None or not isinstance(root, (str, os.PathLike)) or not os.fspath(root):
            raise SimulatorError(f"workdir_root = {root!r} must be a directory path (created when missing)")
        path = Path(root).expanduser().absolute()
        if path.exists() and not path.is_dir():
            raise SimulatorError(f"workdir_root = {str(path)!r} exists and is not a directory")
        return str(path)

    @staticmethod
    def _check_env(env: Any) -> dict[str, str]:
        if env is None:
            return {}
        if not isinstance(env, Mapping):
            raise SimulatorError(f"env must be a mapping {{NAME: value}}, got {type(env).__name__}")
        for key, value in env.items():
            if not isinstance(key, str) or not key or "=" in key or "\x00" in key:
                raise SimulatorError(f"env: variable name {key!r} is invalid; use a non-empty name without '='")
            if not isinstance(value, str) or "\x00" in value:
                raise SimulatorError(f"env[{key!r}] = {value!r} must be a string (convert numbers with str())")
        return dict(env)

    def _known_fields(self) -> set[str]:
        names = set(self.input_names) | set(self.fixed_inputs) | {"workdir", "run_id"}
        if self.input_filename is not None:
            names.add("input")
        if self.output_filename is not None:
            names.add("output")
        return names

    def _load_template(self, template: Any) -> str:
        if isinstance(template, os.PathLike) or (
            isinstance(template, str) and "\n" not in template and os.path.isfile(template)
        ):
            path = Path(template)
            try:
                return path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise SimulatorError(f"template file {str(path)!r} cannot be read: {exc}") from None
        if not isinstance(template, str):
            raise SimulatorError(f"template must be a pathlib.Path or a str, got {type(template).__name__}")
        if "\n" not in template and "$" not in template:
            raise SimulatorError(
                f"template = {template!r} is neither an existing file nor template text (it has no ${{name}} "
                "fields); pass pathlib.Path(...) for a file, and check that the file exists"
            )
        return template

    def _check_regex(self, output_regex: Any) -> dict[str, str]:
        if not isinstance(output_regex, Mapping):
            raise SimulatorError(
                "output_format = 'regex' needs output_regex = {output name: pattern with one group}, "
                f"got {output_regex!r}"
            )
        missing = [n for n in self.output_names if n not in output_regex]
        unknown = sorted(str(k) for k in set(output_regex) - set(self.output_names))
        if missing or unknown:
            raise SimulatorError(
                f"output_regex must have one pattern per output: missing {missing}, unknown {unknown} "
                f"(outputs: {list(self.output_names)})"
            )
        for name, pattern in output_regex.items():
            if not isinstance(pattern, str):
                raise SimulatorError(f"output_regex[{name!r}] = {pattern!r} must be a str pattern")
            try:
                groups = re.compile(pattern, re.MULTILINE).groups
            except re.error as exc:
                raise SimulatorError(f"output_regex[{name!r}] = {pattern!r} is not a valid regex: {exc}") from None
            if groups != 1:
                raise SimulatorError(
                    f"output_regex[{name!r}] = {pattern!r} has {groups} groups; it needs exactly one capture "
                    r"group around the number, e.g. r'drag = (\S+)' (use (?:...) for other groups)"
                )
        # Store the strings (compiled lazily, cached by re) so the simulator stays plain data.
        return {n: output_regex[n] for n in self.output_names}

    def _check_command(self, command: Any) -> tuple[str, ...]:
        if isinstance(command, (str, bytes)):
            raise SimulatorError(
                f"command = {command!r} is a string; give an argument list such as "
                f"{command.split() if isinstance(command, str) else ['prog', 'arg']!r} "
                "(there is no shell: each list item is one argument, passed verbatim)"
            )
        if not isinstance(command, Sequence) or not command:
            raise SimulatorError(f"command = {command!r} must be a non-empty list of strings")
        args = []
        for i, arg in enumerate(command):
            if isinstance(arg, os.PathLike):
                arg = os.fspath(arg)
            if not isinstance(arg, str):
                raise SimulatorError(f"command[{i}] = {arg!r} must be a str (convert numbers and paths with str())")
            if "\x00" in arg:
                raise SimulatorError(f"command[{i}] = {arg!r} contains a NUL byte")
            args.append(arg)
        known = self._known_fields()
        used: set[str] = set()
        for i, arg in enumerate(args):
            for _, name, spec in _format_fields(arg, f"command[{i}]"):
                if name is None:
                    continue
                if name not in known:
                    hint = (
                        " ({input} needs an input file; input_format is 'none')"
                        if name == "input"
                        else " ({output} needs output_filename)"
                        if name == "output"
                        else ""
                    )
                    raise SimulatorError(
                        f"command[{i}] = {arg!r}: unknown placeholder {{{name}}}{hint}; known names: "
                        f"{sorted(known)} (attribute or index access is not allowed; write {{{{ for a literal brace)"
                    )
                if spec:
                    try:
                        format(1.0, spec)
                    except ValueError as exc:
                        raise SimulatorError(
                            f"command[{i}] = {arg!r}: format spec {spec!r} of {{{name}}} is invalid: {exc}"
                        ) from None
                used.add(name)
        if self.template is not None:
            fields_ = _template_fields(self.template, "template")
            unknown = sorted(set(fields_) - known)
            if unknown:
                raise SimulatorError(
                    f"template uses unknown fields {unknown}; known names: {sorted(known)} "
                    "(write $$ for a literal dollar sign)"
                )
            used.update(fields_)
            unused = [n for n in self.input_names if n not in used]
            if unused:
                raise SimulatorError(
                    f"inputs {unused} appear neither in the template nor in the command, so the script would "
                    "never see them; add ${name} fields to the template or {name} arguments to the command"
                )
        if self.input_format == "none":
            unused = [n for n in self.input_names if n not in used]
            if unused:
                raise SimulatorError(
                    f"input_format = 'none' but inputs {unused} do not appear in the command; "
                    "add {name} arguments or use input_format='json'"
                )
        first = args[0]
        if "/" in first and not os.path.isabs(first) and "{" not in first:
            # Relative to the driver's current directory, which is what the user sees when configuring.
            args[0] = os.path.abspath(first)
        elif "/" not in first and "{" not in first and shutil.which(first) is None:
            logger.warning("executable %r is not on PATH here; runs will fail unless workers have it", first)
        for i, arg in enumerate(args[1:], start=1):
            if "{" not in arg and not os.path.isabs(arg) and os.path.isfile(arg) and ("/" in arg or "." in arg):
                logger.warning(
                    "command[%d] = %r is a relative path to an existing file, but the command runs inside the "
                    "run directory; pass an absolute path",
                    i,
                    arg,
                )
        return tuple(args)

    def __repr__(self) -> str:
        return (
            f"ScriptSimulator(command={list(self.command)!r}, input_names={list(self.input_names)}, "
            f"output_names={list(self.output_names)}, input_format={self.input_format!r}, "
            f"output_format={self.output_format!r}, workdir_root={self.workdir_root!r})"
        )

    # -- a run ------------------------------------------------------------------------------
    def __call__(self, inputs: Mapping[str, Any], run_id: str | None = None) -> SimulationResult:
        """Run the command once; never raises for a failed run.

        Args:
            inputs: ``{input name: value}`` for every name in ``input_names``.
            run_id: names the run directory (sanitized) and fills ``{run_id}``;
                a unique id is generated when ``None``.
        """
        clock = _Clock()
        values, reason = self._merge_inputs(inputs)
        if reason:
            return clock.result("failed", reason=reason)
        run_id = f"run-{uuid.uuid4().hex[:12]}" if run_id is None else str(run_id)
        try:
            run_dir = self._make_run_dir(run_id)
        except OSError as exc:
            return clock.result("failed", reason=_exception_reason("cannot create a run directory: ", exc))
        try:
            result = self._run_in(run_dir, run_id, values, clock)
        except Exception as exc:  # e.g. a full disk: must still come back as a result, directory kept
            logger.exception("run %s: the script wrapper failed", run_id)
            result = clock.result(
                "failed",
                reason=_exception_reason("cannot run the command: ", exc),
                stderr_tail=_tail(traceback.format_exc(), self.max_output_bytes),
                workdir=str(run_dir),
            )
        if result.ok and not self.keep_workdirs:
            try:
                shutil.rmtree(run_dir)
            except OSError as exc:  # the result stands; a leftover directory is only clutter
                logger.warning("run %s: cannot remove run directory %s: %s", run_id, run_dir, exc)
        return result

    def _make_run_dir(self, run_id: str) -> Path:
        root = Path(self.workdir_root)
        root.mkdir(parents=True, exist_ok=True)
        base = _sanitize_run_id(run_id)
        for attempt in range(10_000):
            name = base if attempt == 0 else f"{base}-retry{attempt}"
            path = root / name
            try:
                # exist_ok=False: two runs (or a retry of a killed run) never share a directory.
                path.mkdir(exist_ok=False)
            except FileExistsError:
                continue
            return path
        raise FileExistsError(f"no free run directory name for run id {run_id!r} under {root}")

    def _fields(self, run_dir: Path, run_id: str, values: Mapping[str, Any]) -> dict[str, Any]:
        names: dict[str, Any] = dict(values)
        names["workdir"] = str(run_dir)
        names["run_id"] = run_id
        if self.input_filename is not None:
            names["input"] = str(run_dir / self.input_filename)
        if self.output_filename is not None:
            names["output"] = str(run_dir / self.output_filename)
        return names

    def _confined(self, run_dir: Path, filename: str) -> Path:
        target = run_dir / filename
        if not target.resolve().is_relative_to(run_dir.resolve()):
            raise OSError(f"{filename!r} resolves outside the run directory {run_dir}")
        return target

    def _write_inputs(self, run_dir: Path, names: Mapping[str, Any], values: Mapping[str, Any]) -> str:
        """Write the inputs file; ``""`` or the reason it failed."""
        if self.input_filename is None:
            return ""
        if self.input_format == "json":
            try:
                text = json.dumps(values, indent=2, ensure_ascii=False, allow_nan=False, default=_json_default)
            except (TypeError, ValueError) as exc:
                return _exception_reason("inputs cannot be written as JSON: ", exc)
        else:
            assert self.template is not None
            try:
                text = string.Template(self.template).substitute({k: str(v) for k, v in names.items()})
            except (KeyError, ValueError) as exc:
                return _exception_reason("the template cannot be rendered: ", exc)
        try:
            target = self._confined(run_dir, self.input_filename)
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "x", encoding="utf-8") as fh:
                fh.write(text)
        except (OSError, UnicodeEncodeError) as exc:
            return _exception_reason(f"cannot write {self.input_filename}: ", exc)
        return ""

    def _render_command(self, names: Mapping[str, Any]) -> list[str]:
        argv = []
        for i, arg in enumerate(self.command):
            parts = []
            for literal, name, spec in _format_fields(arg, f"command[{i}]"):
                parts.append(literal)
                if name is not None:
                    value = names[name]
                    # Verbatim: str() of the value, one argument, no interpretation.
                    parts.append(format(value, spec) if spec else str(value))
            argv.append("".join(parts))
        return argv

    def _run_in(self, run_dir: Path, run_id: str, values: Mapping[str, Any], clock: _Clock) -> SimulationResult:
        workdir = str(run_dir)
        names = self._fields(run_dir, run_id, values)
        reason = self._write_inputs(run_dir, names, values)
        if reason:
            return clock.result("failed", reason=reason, workdir=workdir)
        try:
            argv = self._render_command(names)
        except (ValueError, TypeError) as exc:
            return clock.result("failed", reason=_exception_reason("cannot build the command: ", exc), workdir=workdir)
        env = {**os.environ, **self.env}
        if "/" not in argv[0]:
            exe = shutil.which(argv[0], path=env.get("PATH", os.defpath))
            if exe is None:
                return clock.result(
                    "failed",
                    reason=f"executable {argv[0]!r} not found on PATH ({_clip(env.get('PATH', ''), 200)})",
                    workdir=workdir,
                )
            argv[0] = exe

        stdout_path, stderr_path = run_dir / _STDOUT_FILE, run_dir / _STDERR_FILE
        timed_out = False
        with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
            try:
                # No shell, no preexec_fn (unsafe in threaded workers): setsid via start_new_session.
                proc = subprocess.Popen(
                    argv,
                    cwd=run_dir,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    env=env,
                    start_new_session=True,
                    close_fds=True,
                    shell=False,
                )
            except (OSError, ValueError) as exc:
                return clock.result(
                    "failed", reason=_exception_reason(f"cannot start {argv[0]!r}: ", exc), workdir=workdir
                )
            logger.debug("run %s: started pid %d: %s", run_id, proc.pid, argv)
            try:
                proc.wait(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                logger.info("run %s: timed out after %s s; stopping process group %d", run_id, self.timeout, proc.pid)
                self._terminate_group(proc)
            finally:
                if proc.returncode is None:  # interrupted while waiting: leave nothing running
                    _signal_group(proc.pid, signal.SIGKILL)
                    proc.wait()
                # The leader is gone; background processes it left behind must not outlive the run.
                if _signal_group(proc.pid, signal.SIGKILL):
                    logger.debug("run %s: killed processes left in group %d", run_id, proc.pid)
                    _wait_group_gone(proc.pid)

        stdout_tail, _ = _read_tail(stdout_path, self.max_output_bytes)
        stderr_tail, _ = _read_tail(stderr_path, self.max_output_bytes)

        def finish(status: Status, outputs: Mapping[str, float] | None = None, reason: str = "") -> SimulationResult:
            keep = status != "ok" or self.keep_workdirs
            return clock.result(
                status,
                outputs,
                reason,
                stdout_tail=stdout_tail,
                stderr_tail=stderr_tail,
                workdir=workdir if keep else None,
            )

        if timed_out:
            return finish("timeout", reason=f"timed out after {self.timeout} s")
        code = proc.returncode
        if code < 0:
            return finish("failed", reason=f"killed by signal {_signal_name(code)} (exit code {code})")
        if code != 0:
            return finish("failed", reason=f"exit code {code}")
        outputs, reason = self._parse_outputs(run_dir, stdout_path)
        if reason:
            # Exit code 0, but the outputs are missing, malformed, NaN/inf or of the wrong shape.
            return finish("invalid", reason=reason)
        return finish("ok", outputs)

    def _terminate_group(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGTERM the group, wait up to ``kill_grace`` for it to empty, then SIGKILL it."""
        pgid = proc.pid  # start_new_session: the child leads its own group
        _signal_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + self.kill_grace
        while time.monotonic() < deadline:
            # Reap the leader first: a zombie leader still counts as a group member.
            if proc.poll() is not None and not _group_has_live_members(pgid):
                return
            time.sleep(0.05)
        _signal_group(pgid, signal.SIGKILL)
        proc.wait()

    # -- outputs ----------------------------------------------------------------------------
    def _read_stdout(self, stdout_path: Path) -> str:
        """The stdout tail that parsers see (at most ``max_parse_bytes``)."""
        text, cut = _read_tail(stdout_path, self.max_parse_bytes)
        return text.split("\n", 1)[-1] if cut else text  # a cut first line is partial: drop it

    def _read_output_text(self, run_dir: Path, stdout_path: Path) -> tuple[str, str, str]:
        """``(text, source name, reason)`` of what the outputs are parsed from."""
        if self.output_filename is None:
            return self._read_stdout(stdout_path), "stdout", ""
        path = run_dir / self.output_filename
        name = self.output_filename
        # The program may have made the output (or a directory on its way) a symbolic link;
        # following one out of the run directory would read a file that belongs to no run.
        # No race: the program and its process group are gone by now.
        try:
            target = path.resolve()
        except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python < 3.13)
            return "", name, _exception_reason(f"output file {name} cannot be resolved: ", exc)
        if not target.is_relative_to(run_dir.resolve()):
            return "", name, (
                f"output file {name} is a symbolic link to {_clip(str(target), 200)}, outside the run directory "
                f"{run_dir}; the wrapper reads outputs only from inside it: write the file itself there"
            )
        if not path.is_file():
            present = sorted(p.name for p in run_dir.iterdir() if p.name not in (_STDOUT_FILE, _STDERR_FILE))
            return "", name, f"output file {name} was not written (the run directory holds {_clip(repr(present), 300)})"
        try:
            size = path.stat().st_size
            if size > self.max_parse_bytes:
                return "", name, (
                    f"output file {name} is {size} bytes, more than max_parse_bytes = {self.max_parse_bytes}"
                )
            data = path.read_bytes()
        except OSError as exc:
            return "", name, _exception_reason(f"output file {name} cannot be read: ", exc)
        try:
            return data.decode("utf-8"), name, ""
        except UnicodeDecodeError as exc:
            return "", name, f"output file {name} is not UTF-8 text: {exc}"

    def _parse_outputs(self, run_dir: Path, stdout_path: Path) -> tuple[dict[str, float], str]:
        if self.output_format == "parse":
            assert self.parse is not None
            try:
                raw = _resolve_callable(self.parse)(run_dir, self._read_stdout(stdout_path))
            except Exception as exc:  # user code
                return {}, _exception_reason(f"parse function {self._parse_name()} raised ", exc)
            if not isinstance(raw, Mapping):
                return {}, (
                    f"parse function {self._parse_name()} returned a {type(raw).__name__}; "
                    "it must return a dict {name: value}"
                )
            return _collect_outputs(raw, self.output_names, f"the dict returned by {self._parse_name()}")
        text, source, reason = self._read_output_text(run_dir, stdout_path)
        if reason:
            return {}, reason
        if self.output_format == "json":
            return self._parse_json(text, source)
        if self.output_format == "csv":
            return self._parse_csv(text, source)
        if self.output_format == "keyvalue":
            raw = {}
            for line in text.splitlines():
                match = _KEYVALUE_LINE.match(line)
                if match:
                    raw[match.group(1)] = match.group(2)
            return _collect_outputs(raw, self.output_names, f"the 'name = value' lines of {source}")
        assert self.output_regex is not None
        raw = {}
        for name, pattern in self.output_regex.items():
            matches = re.findall(pattern, text, re.MULTILINE)
            if not matches:
                return {}, f"output {name!r} missing from {source}: regex {pattern!r} does not match"
            raw[name] = matches[-1]
        return _collect_outputs(raw, self.output_names, source)

    def _parse_name(self) -> str:
        return self.parse if isinstance(self.parse, str) else getattr(self.parse, "__qualname__", repr(self.parse))

    def _parse_json(self, text: str, source: str) -> tuple[dict[str, float], str]:
        try:
            raw = json.loads(text)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError; a 5000-digit integer; nesting too deep
            return {}, f"output file {source} is not valid JSON: {exc}"
        if not isinstance(raw, dict):
            return {}, f"output file {source} holds a JSON {type(raw).__name__}; expected an object {{name: value}}"
        return _collect_outputs(raw, self.output_names, source)

    def _parse_csv(self, text: str, source: str) -> tuple[dict[str, float], str]:
        try:
            rows = [row for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]
        except csv.Error as exc:
            return {}, f"output file {source} is not valid CSV: {exc}"
        if len(rows) != 2:
            return {}, (
                f"output file {source} is not valid CSV for outputs: expected a header row and exactly one data "
                f"row, found {len(rows)} non-empty rows"
            )
        header = [cell.strip() for cell in rows[0]]
        if len(rows[1]) != len(header):
            return {}, (
                f"output file {source} is not valid CSV for outputs: the header has {len(header)} columns, "
                f"the data row {len(rows[1])}"
            )
        return _collect_outputs(dict(zip(header, rows[1])), self.output_names, source)


def _json_default(value: Any) -> Any:
    """JSON for numpy scalars and paths in inputs (the campaign passes numpy floats)."""
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"{type(value).__name__} value {value!r} is not JSON serializable")
