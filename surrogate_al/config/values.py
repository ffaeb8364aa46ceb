"""Value types of a workflow: frozen tables, checked names, paths, durations, plain data.

Each type is an ``Annotated`` pydantic type whose validators raise
:class:`~surrogate_al.config.messages.FieldError`, so a bad value is reported in
the one-line format. Tables in a spec are :class:`FrozenMap` and arrays tuples:
a spec cannot change after validation.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AllowInfNan,
    BeforeValidator,
    ConfigDict,
    Strict,
    StrictStr,
    ValidationInfo,
    WrapSerializer,
)

from surrogate_al.config.messages import FieldError, show, toml_type
from surrogate_al.simulation.rules import CALLABLE_REF, filename_problem

__all__ = [
    "FREEZE",
    "MODEL_CONFIG",
    "THAW",
    "Context",
    "ExistingFile",
    "FrozenMap",
    "Identifier",
    "ModuleFunction",
    "Number",
    "PlainTable",
    "RelativeFilename",
    "ResolvedPath",
    "Seconds",
    "StringTable",
    "context",
    "list_not_string",
]

#: Every section model: unknown keys are errors, a validated spec is immutable.
MODEL_CONFIG = ConfigDict(extra="forbid", frozen=True)
# "2h", "30m", "90s", "1h30m", "1.5h", "1d 2h": units largest first, each at most once.
_DURATION = re.compile(
    r"^(?:(?P<d>\d+(?:\.\d*)?)d)?(?:(?P<h>\d+(?:\.\d*)?)h)?(?:(?P<m>\d+(?:\.\d*)?)m)?(?:(?P<s>\d+(?:\.\d*)?)s)?$",
    re.ASCII,
)
_DURATION_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}


class FrozenMap(Mapping[str, Any]):
    """An immutable, hashable mapping that keeps insertion order.

    Tables in a spec (``simulator.inputs``, ``simulator.env``, ``surrogate.options``,
    ...) are stored as ``FrozenMap`` so a spec cannot change after validation.
    Nested tables are ``FrozenMap`` too and arrays are tuples; :meth:`thaw` gives
    back plain ``dict``/``list`` data (what a constructor's keyword arguments want).

    Args:
        data: the items.
    """

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        self._data: dict[str, Any] = dict(data or {})

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return self._data == dict(other.items())
        return NotImplemented

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"

    def thaw(self) -> dict[str, Any]:
        """A deep copy as plain ``dict``/``list`` data."""
        return _thaw(self)


def _freeze(value: Any) -> Any:
    """Deep-freeze tables and arrays (dict -> FrozenMap, list -> tuple)."""
    if isinstance(value, Mapping):
        return FrozenMap({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    """Inverse of :func:`_freeze`; leaves models and scalars alone."""
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_thaw(v) for v in value]
    return value


def _serialize_thawed(value: Any, handler: Any) -> Any:
    return handler(_thaw(value))


FREEZE = AfterValidator(_freeze)
THAW = WrapSerializer(_serialize_thawed, when_used="always")


@dataclass(frozen=True)
class Context:
    """What validators need to know beyond the data (passed as pydantic context)."""

    base_dir: Path
    source: str
    check_files: bool = True


def context(info: ValidationInfo) -> Context:
    """The :class:`Context` a validator runs in (a file in the current directory when none was given)."""
    ctx = info.context
    if isinstance(ctx, Context):
        return ctx
    # Validated without our entry points (e.g. WorkflowSpec.model_validate): behave like a file in cwd.
    return Context(base_dir=Path.cwd(), source="<workflow>")


def _check_identifier(value: str) -> str:
    if not value.isidentifier():
        raise FieldError(
            f"{show(value)} is not a valid name; use letters, digits and underscores, "
            "not starting with a digit (e.g. 'inlet_velocity')"
        )
    return value


def _check_module_function(value: str) -> str:
    if not CALLABLE_REF.match(value):
        raise FieldError(
            f"{show(value)} is not of the form 'module:function'; give a dotted module path, a colon "
            "and a function name, e.g. 'mypackage.sims:branin'"
        )
    return value


def _check_relative_filename(value: str) -> str:
    if filename_problem(value) is not None:
        raise FieldError(
            f"{show(value)} must be a relative file name inside the run directory (not absolute, no '..'); "
            "e.g. 'output.json'"
        )
    return value


def _resolve_path(value: Any, info: ValidationInfo) -> Path:
    """A path from the workflow, made absolute against the workflow file's directory."""
    if not isinstance(value, (str, os.PathLike)) or isinstance(value, bytes):
        raise FieldError(
            f"wrong type (got {show(value)}, {toml_type(value)}); expected a path in quotes, e.g. 'data/file.csv'"
        )
    text = os.fspath(value)
    if not isinstance(text, str) or not text.strip() or "\x00" in text:
        raise FieldError(f"{show(text)} is not a usable path; give a file name, e.g. 'data/file.csv'")
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = context(info).base_dir / path
    # normpath (not resolve): keep symlinks as written, fold only '.' and '..'.
    return Path(os.path.normpath(path))


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # too long, permission, ... : treat as not there
        return False


def _check_exists(path: Path, info: ValidationInfo) -> Path:
    if context(info).check_files and not _is_file(path):
        raise FieldError(
            f"file not found (got {show(path)}); check the path (relative paths are relative to the "
            "workflow file's directory)"
        )
    return path


def _parse_seconds(value: Any) -> Any:
    """A duration: a number of seconds, or a string like '2h', '30m', '90s', '1h30m'."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise FieldError(
            f"wrong type (got {show(value)}, {toml_type(value)}); expected seconds as a number, "
            "or a string like '2h', '30m', '90s', '1h30m'"
        )
    if isinstance(value, str):
        text = value.replace(" ", "").lower()
        match = _DURATION.match(text)
        if not text or match is None or not any(match.groupdict().values()):
            raise FieldError(
                f"{show(value)} is not a duration; write seconds as a number (e.g. 5400) or a string "
                "of numbers with units d, h, m, s in that order, e.g. '2h', '30m', '90s', '1h30m'"
            )
        value = sum(float(n) * _DURATION_UNITS[u] for u, n in match.groupdict().items() if n)
    seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise FieldError(f"must be a finite, non-negative number of seconds (got {show(value)})")
    return seconds


def _check_plain(value: Any, path: tuple[str | int, ...] = ()) -> Any:
    """Accept only JSON-able TOML values (strings, numbers, booleans, arrays, tables)."""
    if isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise FieldError(f"must be a finite number (got {show(value)}); NaN and inf are not allowed", path)
        return value
    if isinstance(value, (list, tuple)):
        return [_check_plain(v, path + (i,)) for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        return {k: _check_plain(v, path + (k,)) for k, v in value.items()}
    raise FieldError(
        f"unsupported value (got {show(value)}, {toml_type(value)}); use a string, number, boolean, "
        "array or table (dates and times are not supported; write them as strings)",
        path,
    )


def _check_plain_table(value: Any) -> Any:
    if isinstance(value, Mapping):
        return _check_plain(value)
    return value  # not a table: let the Mapping schema report the type error


def list_not_string(example: str) -> Any:
    """A before-validator rejecting a bare string where an array is expected (the classic slip)."""

    def check(value: Any) -> Any:
        if isinstance(value, str):
            raise FieldError(f"must be an array, not a string (got {show(value)}); use a list, e.g. {example}")
        return value

    return BeforeValidator(check)


Number = Annotated[float, Strict(), AllowInfNan(False)]
Identifier = Annotated[StrictStr, AfterValidator(_check_identifier)]
ModuleFunction = Annotated[StrictStr, AfterValidator(_check_module_function)]
RelativeFilename = Annotated[StrictStr, AfterValidator(_check_relative_filename)]
ResolvedPath = Annotated[Path, BeforeValidator(_resolve_path)]
ExistingFile = Annotated[Path, BeforeValidator(_resolve_path), AfterValidator(_check_exists)]
Seconds = Annotated[float, BeforeValidator(_parse_seconds)]
PlainTable = Annotated[Mapping[str, Any], BeforeValidator(_check_plain_table), FREEZE, THAW]
StringTable = Annotated[Mapping[str, StrictStr], FREEZE, THAW]
