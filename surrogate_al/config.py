"""Workflow files (TOML) -> a validated, frozen campaign spec.

A campaign is described by one TOML file with the sections ``[campaign]``,
``[simulator]``, ``[surrogate]``, ``[acquisition]``, ``[cluster]`` and
``[validation]`` (see ``docs/workflow.md`` for every key). This module reads the
file, checks every value, fills defaults (some depend on other fields:
``campaign.batch_size`` defaults to ``campaign.concurrency``), resolves relative
paths against the workflow file's directory and returns a :class:`WorkflowSpec`
whose values are all frozen (tables become :class:`FrozenMap`, lists become
tuples).

Every problem is reported as one :class:`~surrogate_al.errors.ConfigError`
whose message is a single line naming the file, the field path, the bad value
and the fix, e.g.::

    quickstart.toml: simulator.inputs.x1: low = 10.0 must be smaller than high = -5.0; swap the bounds ...

The spec round-trips through plain data (:meth:`WorkflowSpec.to_dict` /
:func:`spec_from_dict`); the campaign stores that data in its HDF5 file and
resume rebuilds the spec from it.
"""

from __future__ import annotations

import csv
import difflib
import inspect
import ipaddress
import logging
import math
import os
import re
import string
import sys
import types
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    AfterValidator,
    AllowInfNan,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    SerializationInfo,
    Strict,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    WrapSerializer,
    model_validator,
)
from pydantic.fields import FieldInfo

from surrogate_al.errors import ConfigError, SpaceError
from surrogate_al.space import Dimension, InputSpace

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib

__all__ = [
    "FrozenMap",
    "WorkflowSpec",
    "CampaignSpec",
    "InitialDesignSpec",
    "StopSpec",
    "SimulatorSpec",
    "InputBounds",
    "SurrogateSpec",
    "AcquisitionSpec",
    "LambdaScheduleSpec",
    "ClusterSpec",
    "AdaptSpec",
    "TLSFiles",
    "ValidationSpec",
    "load_workflow",
    "parse_workflow",
    "spec_from_dict",
    "JOBQUEUE_KINDS",
    "COMMAND_PLACEHOLDERS",
]

logger = logging.getLogger(__name__)

#: Cluster kinds served by dask-jobqueue.
JOBQUEUE_KINDS: tuple[str, ...] = ("slurm", "pbs", "sge", "lsf", "htcondor")
#: Placeholders a script command may use besides the input names.
COMMAND_PLACEHOLDERS: tuple[str, ...] = ("input", "output", "workdir", "run_id")

_DOCS = "see docs/workflow.md"
_MODEL_CONFIG = ConfigDict(extra="forbid", frozen=True)
_MODULE_FUNCTION = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")
# "2h", "30m", "90s", "1h30m", "1.5h", "1d 2h": units largest first, each at most once.
_DURATION = re.compile(
    r"^(?:(?P<d>\d+(?:\.\d*)?)d)?(?:(?P<h>\d+(?:\.\d*)?)h)?(?:(?P<m>\d+(?:\.\d*)?)m)?(?:(?P<s>\d+(?:\.\d*)?)s)?$",
    re.ASCII,
)
_DURATION_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_MEMORY = re.compile(r"^(auto|\d+(\.\d+)?\s*([kmgtp]i?)?b?)$", re.IGNORECASE | re.ASCII)
_ADDRESS = re.compile(r"^(?P<scheme>tcp|tls|ucx|ws|wss)://(?P<host>\[[^\]]+\]|[^:/\s]+):(?P<port>[0-9]{1,5})$")


# --------------------------------------------------------------------------------------
# Frozen tables
# --------------------------------------------------------------------------------------
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


_FREEZE = AfterValidator(_freeze)
_THAW = WrapSerializer(_serialize_thawed, when_used="always")


# --------------------------------------------------------------------------------------
# Error plumbing
# --------------------------------------------------------------------------------------
class _FieldError(ValueError):
    """A validation failure with a message in our format and a path below the validator's field.

    Pydantic wraps ``ValueError`` raised by validators and keeps the exception in
    the error's context; :func:`_config_error` appends :attr:`path` to the error's
    location and uses :attr:`message` verbatim.
    """

    def __init__(self, message: str, path: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.path = path


@dataclass(frozen=True)
class _Context:
    """What validators need to know beyond the data (passed as pydantic context)."""

    base_dir: Path
    source: str
    check_files: bool = True


def _context(info: ValidationInfo) -> _Context:
    ctx = info.context
    if isinstance(ctx, _Context):
        return ctx
    # Validated without our entry points (e.g. WorkflowSpec.model_validate): behave like a file in cwd.
    return _Context(base_dir=Path.cwd(), source="<workflow>")


def _show(value: Any, limit: int = 60) -> str:
    """A short, single-line rendering of a value, written as it would be in TOML."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        text = "nothing"
    elif isinstance(value, Path):
        return _show(str(value), limit=10_000)  # a cut path is useless: show it whole
    elif isinstance(value, str):
        # A TOML literal string shows regex backslashes exactly as the user typed them.
        literal = "'" not in value and value.isprintable()
        text = f"'{value}'" if literal else repr(value)
    elif isinstance(value, Mapping):
        text = "a table {" + ", ".join(str(k) for k in list(value)[:6]) + ("}" if len(value) <= 6 else ", ...}")
    elif isinstance(value, (list, tuple)):
        text = "[" + ", ".join(_show(v, limit) for v in value[:8]) + (", ...]" if len(value) > 8 else "]")
    else:
        text = repr(value)
    text = text.replace("\n", "\\n").replace("\r", "\\r")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _toml_type(value: Any) -> str:
    """The TOML-ish name of a value's type, for 'wrong type' messages."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, (list, tuple)):
        return "an array"
    if value is None:
        return "empty"
    return f"a {type(value).__name__}"


def _one_line(text: str) -> str:
    return text.replace("\r", " ").replace("\n", " ")


def _format_path(loc: tuple[Any, ...]) -> str:
    """``('simulator', 'inputs', 'x 1', 'low')`` -> ``simulator.inputs."x 1".low``; ints -> ``[i]``."""
    out = ""
    for part in loc:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
            continue
        text = str(part)
        if not re.fullmatch(r"[A-Za-z0-9_-]+", text):
            text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
        out += ("." if out else "") + text
    return _one_line(out)


# typing.Union[X, None] and X | None (types.UnionType) are different origins at runtime.
_UNION_TYPES = (Union, types.UnionType)


def _unwrap_model(annotation: Any) -> Any:
    """The model class inside an annotation, ``('map', inner)`` for a table of models, else None."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _unwrap_model(get_args(annotation)[0])
    if origin in _UNION_TYPES:
        inner = [a for a in get_args(annotation) if a is not type(None)]
        models = [m for m in (_unwrap_model(a) for a in inner) if m is not None]
        return models[0] if len(models) == 1 else None
    if origin in (Mapping, dict):
        inner_model = _unwrap_model(get_args(annotation)[1])
        return ("map", inner_model) if inner_model is not None else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _locate(loc: tuple[Any, ...]) -> tuple[type[BaseModel] | None, FieldInfo | None]:
    """The model that holds ``loc[-1]`` and that field's info (None where unknown)."""
    node: Any = WorkflowSpec
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, tuple):  # a table of models: this part is a user key
            node = node[1]
            if last:
                return None, None
            continue
        if not (isinstance(node, type) and issubclass(node, BaseModel)):
            return None, None
        field = node.model_fields.get(part) if isinstance(part, str) else None
        if last:
            return node, field
        if field is None:
            return None, None
        node = _unwrap_model(field.annotation)
    return None, None


def _known_keys(model: type[BaseModel]) -> list[str]:
    return [name for name in model.model_fields if name not in _INTERNAL_KEYS]


def _choices(field: FieldInfo | None, ctx: Mapping[str, Any]) -> list[str]:
    """The allowed values of a Literal field, from its annotation (fallback: pydantic's text)."""
    if field is not None:
        annotation = field.annotation
        if get_origin(annotation) in _UNION_TYPES:
            annotation = next((a for a in get_args(annotation) if get_origin(a) is Literal), annotation)
        if get_origin(annotation) is Literal:
            return [repr(a) for a in get_args(annotation)]
    return [str(ctx.get("expected", "?"))]


def _describe(err: Mapping[str, Any], loc: tuple[Any, ...]) -> str:
    """Our one-line description of a built-in pydantic error at ``loc``."""
    etype = err["type"]
    value = err.get("input")
    ctx = err.get("ctx") or {}
    model, field = _locate(loc)
    key = str(loc[-1]) if loc else ""
    section = "[" + _format_path(loc[:-1]) + "]" if len(loc) > 1 else "the top level"
    what = f" ({key}: {field.description})" if field is not None and field.description else ""
    if etype == "missing":
        if field is not None and _unwrap_model(field.annotation) is not None:
            return f"missing required section [{_format_path(loc)}]; add a [{_format_path(loc)}] table ({_DOCS})"
        return f"missing required key; add {key} = ... to {section}{what}"
    if etype == "extra_forbidden":
        known = _known_keys(model) if model is not None else []
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? " if close else "remove it or fix its spelling "
        return f"unknown key; {hint}(known keys: {', '.join(known)})"
    if etype == "literal_error":
        choices = _choices(field, ctx)
        # "surrogate kind", "cluster kind"; but "scale", not "x1 scale", below a user-named table entry.
        parent_is_section = len(loc) >= 2 and _locate(loc[:-1])[1] is not None
        noun = f"{loc[-2]} {key}" if parent_is_section else key
        plain = [c.strip("'") for c in choices]
        close = difflib.get_close_matches(str(value), plain, n=1, cutoff=0.6) if isinstance(value, str) else []
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"{_show(value)} is not a known {noun}; expected one of {', '.join(choices)}{hint}"
    expected = {
        "int_type": "an integer",
        "int_parsing": "an integer",
        "int_from_float": "an integer",
        "float_type": "a number",
        "float_parsing": "a number",
        "bool_type": "true or false",
        "bool_parsing": "true or false",
        "string_type": "a string in quotes",
        "model_type": "a table",
        "model_attributes_type": "a table",
        "dict_type": "a table",
        "mapping_type": "a table",
        "list_type": "an array",
        "tuple_type": "an array",
        "iterable_type": "an array",
    }.get(etype)
    if expected is not None:
        unquote = ""
        if isinstance(value, str) and etype.startswith(("int", "float", "bool")):
            unquote = "; write the value without quotes" if _parses_as(value, etype) else ""
        return f"wrong type (got {_show(value)}, {_toml_type(value)}); expected {expected}{what}{unquote}"
    bounds = {
        "greater_than": (">", "gt"),
        "greater_than_equal": (">=", "ge"),
        "less_than": ("<", "lt"),
        "less_than_equal": ("<=", "le"),
    }
    if etype in bounds:
        op, name = bounds[etype]
        return f"must be {op} {ctx.get(name)} (got {_show(value)}); use a value {op} {ctx.get(name)}{what}"
    if etype == "finite_number":
        return f"must be a finite number (got {_show(value)}); NaN and inf are not allowed"
    if etype == "too_short":
        return f"must not be empty (got {_show(value)}){what}"
    if etype == "invalid_key":
        return f"table keys must be strings (got {_show(value)}); quote the key"
    return f"{err.get('msg', 'invalid value')} (got {_show(value)}); {_DOCS}"


def _parses_as(text: str, etype: str) -> bool:
    """Whether a quoted value would have been valid without the quotes."""
    if etype.startswith("bool"):
        return text.strip().lower() in ("true", "false")
    try:
        float(text) if etype.startswith("float") else int(text)
    except ValueError:
        return False
    return True


def _error_parts(err: Mapping[str, Any], prefix: tuple[Any, ...] = ()) -> tuple[tuple[Any, ...], str]:
    """Location (below ``prefix``) and our message for one pydantic error."""
    # Pydantic marks a bad dict key with a trailing '[key]' element; our paths just name the key.
    loc = tuple(part for part in err["loc"] if part != "[key]")
    cause = (err.get("ctx") or {}).get("error")
    if isinstance(cause, _FieldError):
        return loc + cause.path, cause.message
    if isinstance(cause, BaseException):
        return loc, str(cause)
    return loc, _describe(err, prefix + loc)


def _config_error(exc: ValidationError, source: str) -> ConfigError:
    """Turn pydantic's report into one single-line :class:`ConfigError` (one error: the most telling)."""
    errors = exc.errors()
    # A misspelt key usually also makes a required key "missing"; the typo is the cause, so report it first.
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc, message = _error_parts(err)
    where = f"{_format_path(loc)}: " if loc else ""
    return ConfigError(_one_line(f"{source}: {where}{message}"))


def _only_when(model: BaseModel, names: tuple[str, ...], condition: str, fix: str | None = None) -> None:
    """Reject fields that differ from their default although ``condition`` does not hold.

    ``fix`` is the setting that would make them meaningful (default: ``condition``).

    Comparing with the default (not "was it written") keeps :func:`spec_from_dict`
    working: :meth:`WorkflowSpec.to_dict` writes every field, defaults included.
    """
    for name in names:
        value = getattr(model, name)
        default = type(model).model_fields[name].get_default(call_default_factory=True)
        if value != default:
            raise _FieldError(
                f"only used when {condition} (got {_show(value)}); remove it, or set {fix or condition}", (name,)
            )


def _set(model: BaseModel, **values: Any) -> None:
    """Fill resolved defaults on a frozen model while it is being validated."""
    for name, value in values.items():
        object.__setattr__(model, name, value)


# --------------------------------------------------------------------------------------
# Field types
# --------------------------------------------------------------------------------------
def _check_identifier(value: str) -> str:
    if not value.isidentifier():
        raise _FieldError(
            f"{_show(value)} is not a valid name; use letters, digits and underscores, "
            "not starting with a digit (e.g. 'inlet_velocity')"
        )
    return value


def _check_module_function(value: str) -> str:
    if not _MODULE_FUNCTION.match(value):
        raise _FieldError(
            f"{_show(value)} is not of the form 'module:function'; give a dotted module path, a colon "
            "and a function name, e.g. 'mypackage.sims:branin'"
        )
    return value


def _check_relative_filename(value: str) -> str:
    parts = Path(value).parts
    if not value or Path(value).is_absolute() or ".." in parts or "\x00" in value:
        raise _FieldError(
            f"{_show(value)} must be a relative file name inside the run directory (not absolute, no '..'); "
            "e.g. 'output.json'"
        )
    return value


def _resolve_path(value: Any, info: ValidationInfo) -> Path:
    """A path from the workflow, made absolute against the workflow file's directory."""
    if not isinstance(value, (str, os.PathLike)) or isinstance(value, bytes):
        raise _FieldError(
            f"wrong type (got {_show(value)}, {_toml_type(value)}); expected a path in quotes, e.g. 'data/file.csv'"
        )
    text = os.fspath(value)
    if not isinstance(text, str) or not text.strip() or "\x00" in text:
        raise _FieldError(f"{_show(text)} is not a usable path; give a file name, e.g. 'data/file.csv'")
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = _context(info).base_dir / path
    # normpath (not resolve): keep symlinks as written, fold only '.' and '..'.
    return Path(os.path.normpath(path))


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # too long, permission, ... : treat as not there
        return False


def _check_exists(path: Path, info: ValidationInfo) -> Path:
    if _context(info).check_files and not _is_file(path):
        raise _FieldError(
            f"file not found (got {_show(path)}); check the path (relative paths are relative to the "
            "workflow file's directory)"
        )
    return path


def _parse_seconds(value: Any) -> Any:
    """A duration: a number of seconds, or a string like '2h', '30m', '90s', '1h30m'."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _FieldError(
            f"wrong type (got {_show(value)}, {_toml_type(value)}); expected seconds as a number, "
            "or a string like '2h', '30m', '90s', '1h30m'"
        )
    if isinstance(value, str):
        text = value.replace(" ", "").lower()
        match = _DURATION.match(text)
        if not text or match is None or not any(match.groupdict().values()):
            raise _FieldError(
                f"{_show(value)} is not a duration; write seconds as a number (e.g. 5400) or a string "
                "of numbers with units d, h, m, s in that order, e.g. '2h', '30m', '90s', '1h30m'"
            )
        value = sum(float(n) * _DURATION_UNITS[u] for u, n in match.groupdict().items() if n)
    seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise _FieldError(f"must be a finite, non-negative number of seconds (got {_show(value)})")
    return seconds


def _check_plain(value: Any, path: tuple[str | int, ...] = ()) -> Any:
    """Accept only JSON-able TOML values (strings, numbers, booleans, arrays, tables)."""
    if isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _FieldError(f"must be a finite number (got {_show(value)}); NaN and inf are not allowed", path)
        return value
    if isinstance(value, (list, tuple)):
        return [_check_plain(v, path + (i,)) for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        return {k: _check_plain(v, path + (k,)) for k, v in value.items()}
    raise _FieldError(
        f"unsupported value (got {_show(value)}, {_toml_type(value)}); use a string, number, boolean, "
        "array or table (dates and times are not supported; write them as strings)",
        path,
    )


def _check_plain_table(value: Any) -> Any:
    if isinstance(value, Mapping):
        return _check_plain(value)
    return value  # not a table: let the Mapping schema report the type error


def _list_not_string(example: str) -> Any:
    """A before-validator rejecting a bare string where an array is expected (the classic slip)."""

    def check(value: Any) -> Any:
        if isinstance(value, str):
            raise _FieldError(f"must be an array, not a string (got {_show(value)}); use a list, e.g. {example}")
        return value

    return BeforeValidator(check)


Number = Annotated[float, Strict(), AllowInfNan(False)]
Identifier = Annotated[StrictStr, AfterValidator(_check_identifier)]
ModuleFunction = Annotated[StrictStr, AfterValidator(_check_module_function)]
RelativeFilename = Annotated[StrictStr, AfterValidator(_check_relative_filename)]
ResolvedPath = Annotated[Path, BeforeValidator(_resolve_path)]
ExistingFile = Annotated[Path, BeforeValidator(_resolve_path), AfterValidator(_check_exists)]
Seconds = Annotated[float, BeforeValidator(_parse_seconds)]
PlainTable = Annotated[Mapping[str, Any], BeforeValidator(_check_plain_table), _FREEZE, _THAW]
StringTable = Annotated[Mapping[str, StrictStr], _FREEZE, _THAW]


# --------------------------------------------------------------------------------------
# [campaign]
# --------------------------------------------------------------------------------------
class InitialDesignSpec(BaseModel):
    """``[campaign.initial_design]``: the space-filling design run before any model is fitted."""

    model_config = _MODEL_CONFIG

    size: StrictInt | None = Field(
        default=None, ge=1, description="number of design runs; absent: max(2*d+2, 8) capped at the budget"
    )
    kind: Literal["sobol", "lhs", "random"] = Field(default="sobol", description="design kind")


class StopSpec(BaseModel):
    """``[campaign.stop]``: optional early-stopping rules (the budget always applies)."""

    model_config = _MODEL_CONFIG

    max_wall_time: Seconds | None = Field(
        default=None, gt=0, description="stop after this long (seconds or '2h', '30m', '1h30m')"
    )
    target_error: Number | None = Field(
        default=None, gt=0, description="stop when the estimated surrogate error drops below this"
    )


def _check_campaign_name(value: str) -> str:
    if not value.strip() or any(c in value for c in "/\\\x00\n\r") or value in (".", ".."):
        raise _FieldError(
            f"{_show(value)} cannot name a campaign (it names the store file); use letters, digits, "
            "'-', '_' or '.', e.g. 'branin_gp'"
        )
    return value


class CampaignSpec(BaseModel):
    """``[campaign]``: budget, parallelism, initial design, store and stop rules.

    After validation ``name``, ``batch_size`` and ``store`` are always set.
    """

    model_config = _MODEL_CONFIG

    name: Annotated[StrictStr, AfterValidator(_check_campaign_name)] | None = Field(
        default=None, description="campaign name (default: the workflow file's stem)"
    )
    budget: StrictInt = Field(ge=1, description="number of settled runs (int >= 1)")
    concurrency: StrictInt = Field(default=2, ge=1, description="runs in flight at once")
    mode: Literal["async", "sync"] = Field(default="async", description="refill as runs finish, or batch by batch")
    batch_size: StrictInt | None = Field(
        default=None, ge=1, description="points proposed at once (default: concurrency)"
    )
    initial_design: InitialDesignSpec = Field(default_factory=InitialDesignSpec)
    seed: StrictInt = Field(default=0, ge=0, description="seed of every random choice")
    store: ResolvedPath | None = Field(default=None, description="HDF5 campaign file (default: <name>.h5)")
    refit_every: StrictInt = Field(default=1, ge=1, description="refit the surrogate after this many new results")
    count_failed: StrictBool = Field(default=True, description="failed runs count toward the budget")
    max_failure_fraction: Number = Field(
        default=0.5, gt=0, le=1, description="stop when more than this fraction of runs fail"
    )
    min_runs_for_breaker: StrictInt = Field(
        default=10, ge=1, description="settled runs before the failure-rate breaker may trip"
    )
    stop: StopSpec = Field(default_factory=StopSpec)

    @model_validator(mode="after")
    def _resolve_defaults(self, info: ValidationInfo) -> CampaignSpec:
        ctx = _context(info)
        if self.name is None:
            stem = Path(ctx.source).stem
            _set(self, name=stem if stem and not ctx.source.startswith("<") else "campaign")
        if self.batch_size is None:
            _set(self, batch_size=self.concurrency)
        if self.store is None:
            _set(self, store=Path(os.path.normpath(ctx.base_dir / f"{self.name}.h5")))
        size = self.initial_design.size
        if size is not None and size > self.budget:
            raise _FieldError(
                f"size = {size} exceeds the budget = {self.budget}; lower initial_design.size or raise "
                "campaign.budget",
                ("initial_design", "size"),
            )
        return self


# --------------------------------------------------------------------------------------
# [simulator]
# --------------------------------------------------------------------------------------
class InputBounds(BaseModel):
    """One entry of ``[simulator.inputs]``: ``x1 = {low = 0, high = 1, scale = "linear"}``."""

    model_config = _MODEL_CONFIG

    low: Number = Field(description="lower bound")
    high: Number = Field(description="upper bound")
    scale: Literal["linear", "log"] = Field(default="linear", description="'linear' or 'log' (needs low > 0)")


def _validate_inputs(value: Any) -> Any:
    """Check every bound through :class:`~surrogate_al.space.Dimension` so the rules live in one place."""
    for name, bounds in value.items():
        try:
            Dimension(name, bounds.low, bounds.high, bounds.scale)
        except SpaceError as exc:
            # Dimension prefixes its messages with "input 'x1': "; our path already names the input.
            raise _FieldError(str(exc).removeprefix(f"input {name!r}: "), (name,)) from exc
    return value


# Default file names per format (as surrogate_al.simulation.ScriptSimulator): stdout when absent.
_DEFAULT_INPUT_FILES = {"json": "input.json", "template": "input.txt"}
_DEFAULT_OUTPUT_FILES = {"json": "output.json", "csv": "output.csv"}

_SCRIPT_ONLY = (
    "command",
    "input_format",
    "template",
    "input_filename",
    "output_format",
    "output_filename",
    "output_regex",
    "parse",
    "env",
    "kill_grace",
)


class SimulatorSpec(BaseModel):
    """``[simulator]``: what to run (a Python function or an external program), its inputs and outputs."""

    model_config = _MODEL_CONFIG

    kind: Literal["python", "script"] = Field(description="'python' (a function) or 'script' (a program)")
    function: ModuleFunction | None = Field(default=None, description="python kind: 'module:function'")
    command: Annotated[
        tuple[StrictStr, ...] | None, _list_not_string('["python", "sim.py", "{input}", "{output}"]')
    ] = Field(default=None, description='script kind: program and arguments, e.g. ["python", "sim.py", "{input}"]')
    input_format: Literal["json", "template", "none"] = Field(default="json", description="how inputs are written")
    template: ExistingFile | None = Field(default=None, description="template file (input_format = 'template')")
    input_filename: RelativeFilename | None = Field(
        default=None, description="input file name in the run dir (default: by input_format)"
    )
    output_format: Literal["json", "csv", "keyvalue", "regex", "parse"] = Field(
        default="json", description="how outputs are read"
    )
    output_filename: RelativeFilename | None = Field(
        default=None, description="output file name in the run dir (default: by output_format)"
    )
    output_regex: Annotated[Mapping[StrictStr, StrictStr], _FREEZE, _THAW] | None = Field(
        default=None, description="output name -> pattern with one group (output_format = 'regex')"
    )
    parse: ModuleFunction | None = Field(default=None, description="'module:function' (output_format = 'parse')")
    env: StringTable = Field(default_factory=FrozenMap, description="extra environment variables")
    workdir: ResolvedPath | None = Field(default=None, description="root of per-run directories")
    keep_workdirs: StrictBool = Field(default=False, description="keep run directories of successful runs")
    kill_grace: Seconds = Field(default=5.0, description="seconds between SIGTERM and SIGKILL on timeout")
    timeout: Seconds | None = Field(default=None, gt=0, description="seconds before a run is killed")
    retries: StrictInt = Field(default=1, ge=0, description="extra attempts after a failed, timed-out or invalid run (a run that kills its worker gets 1 + max(1, retries) tries)")
    gpu: StrictBool = Field(default=False, description="runs need a GPU worker")
    deterministic: StrictBool = Field(
        default=False,
        description="the same inputs always give the same outputs (no noise); lets the acquisition localise a "
        "deep ensemble's covariances (acquisition.localisation)",
    )
    fixed_inputs: PlainTable = Field(default_factory=FrozenMap, description="constants passed to every run")
    inputs: Annotated[Mapping[StrictStr, InputBounds], AfterValidator(_validate_inputs), _FREEZE, _THAW] = Field(
        description="table of inputs, e.g. x1 = {low = 0, high = 1}"
    )
    outputs: Annotated[tuple[Identifier, ...], _list_not_string("['y']")] = Field(
        description="names of the outputs, e.g. ['y']"
    )

    @model_validator(mode="after")
    def _check_consistency(self) -> SimulatorSpec:
        if not self.inputs:
            raise _FieldError("no inputs; add at least one, e.g. x1 = {low = 0.0, high = 1.0}", ("inputs",))
        if not self.outputs:
            raise _FieldError("no outputs; list at least one, e.g. outputs = ['y']", ("outputs",))
        duplicates = sorted({n for n in self.outputs if self.outputs.count(n) > 1})
        if duplicates:
            raise _FieldError(f"duplicate names {duplicates}; every output needs its own name", ("outputs",))
        clash = sorted(set(self.outputs) & set(self.inputs))
        if clash:
            raise _FieldError(f"names {clash} are both inputs and outputs; rename one of them", ("outputs",))
        self._check_fixed_inputs()
        if self.kind == "python":
            if self.function is None:
                raise _FieldError(
                    "required for kind = 'python'; give 'module:function', e.g. 'mypackage.sims:branin'",
                    ("function",),
                )
            _only_when(self, _SCRIPT_ONLY, "kind = 'script'")
        else:
            _only_when(self, ("function",), "kind = 'python'")
            self._check_script()
        return self

    def _check_fixed_inputs(self) -> None:
        for name in self.fixed_inputs:
            if not name.isidentifier():
                raise _FieldError(
                    f"{_show(name)} is not a valid name; use letters, digits and underscores, not starting "
                    "with a digit",
                    ("fixed_inputs", name),
                )
            if name in self.inputs or name in self.outputs:
                raise _FieldError(
                    f"{name!r} is also an input or output; a fixed input must have its own name", ("fixed_inputs", name)
                )

    def _check_script(self) -> None:
        if self.command is None:
            raise _FieldError(
                "required for kind = 'script'; give the program and its arguments as an array, "
                'e.g. ["python", "sim.py", "{input}", "{output}"]',
                ("command",),
            )
        if not self.command:
            raise _FieldError(
                "is empty (got []); give the program and its arguments, "
                'e.g. ["python", "sim.py", "{input}", "{output}"]',
                ("command",),
            )
        if not self.command[0].strip():
            raise _FieldError("the program name is empty; give the program to run first, e.g. 'python'", ("command", 0))
        for section in ("inputs", "fixed_inputs"):
            for name in getattr(self, section):
                if name in COMMAND_PLACEHOLDERS:
                    raise _FieldError(
                        f"the name {name!r} is reserved for the command placeholder {{{name}}}; rename the input",
                        (section, name),
                    )
        self._check_files()
        self._check_output_parsing()
        self._check_command_placeholders()
        if self.env:
            for key in self.env:
                if not key or "=" in key or "\x00" in key or "\x00" in self.env[key]:
                    raise _FieldError(
                        f"{_show(key)} is not a usable environment variable; names must be non-empty "
                        "without '=' and values without NUL characters",
                        ("env", key),
                    )

    def _check_files(self) -> None:
        """Template and file names; fills the file-name defaults (they depend on the formats)."""
        if self.input_format == "template" and self.template is None:
            raise _FieldError("required when input_format = 'template'; give the template file", ("template",))
        if self.input_format != "template":
            _only_when(self, ("template",), "input_format = 'template'")
        if self.input_format == "none":
            _only_when(self, ("input_filename",), "input_format is 'json' or 'template'", "input_format = 'json'")
        elif self.input_filename is None:
            _set(self, input_filename=_DEFAULT_INPUT_FILES[self.input_format])
        if self.output_filename is None and self.output_format in _DEFAULT_OUTPUT_FILES:
            _set(self, output_filename=_DEFAULT_OUTPUT_FILES[self.output_format])
        if self.input_filename is not None and self.input_filename == self.output_filename:
            raise _FieldError(
                f"equals input_filename (got {_show(self.output_filename)}); the two files need different names",
                ("output_filename",),
            )

    def _check_command_placeholders(self) -> None:
        """Every {name} in the command must be something the simulator fills in for each run."""
        allowed = [*COMMAND_PLACEHOLDERS, *self.inputs, *self.fixed_inputs]
        # {input}/{output} name files; without the file there is nothing to substitute.
        unavailable = {
            "input": "input_format = 'none' writes no input file; use input_format = 'json' or the input names",
            "output": "no output_filename is set (outputs are read from stdout); set output_filename",
        }
        if self.input_format != "none":
            unavailable.pop("input")
        if self.output_filename is not None:
            unavailable.pop("output")
        for i, arg in enumerate(self.command or ()):
            if "\x00" in arg:
                raise _FieldError(f"contains a NUL character (got {_show(arg)}); remove it", ("command", i))
            for name in _placeholders(arg, ("command", i)):
                if name in unavailable:
                    raise _FieldError(f"placeholder {{{name}}} cannot be filled: {unavailable[name]}", ("command", i))
                if name not in allowed:
                    raise _FieldError(
                        f"unknown placeholder {{{name}}} (got {_show(arg)}); allowed: "
                        f"{', '.join('{' + a + '}' for a in allowed)}; write {{{{ and }}}} for literal braces",
                        ("command", i),
                    )

    def _check_output_parsing(self) -> None:
        if self.output_format == "regex":
            if not self.output_regex:
                raise _FieldError(
                    "required when output_format = 'regex'; give one pattern per output, "
                    "e.g. output_regex = { y = 'result: (\\S+)' }",
                    ("output_regex",),
                )
            for name, pattern in self.output_regex.items():
                if name not in self.outputs:
                    raise _FieldError(
                        f"{name!r} is not an output; patterns are keyed by the names in outputs = "
                        f"{list(self.outputs)}",
                        ("output_regex", name),
                    )
                try:
                    groups = re.compile(pattern).groups
                except re.error as exc:
                    raise _FieldError(
                        f"pattern {_show(pattern)} does not compile ({exc}); fix the regular expression",
                        ("output_regex", name),
                    ) from exc
                if groups != 1:
                    raise _FieldError(
                        f"pattern {_show(pattern)} has {groups} capture groups; it needs exactly one group "
                        "around the number, e.g. 'result: (\\S+)' (use (?:...) for other groups)",
                        ("output_regex", name),
                    )
            missing = [n for n in self.outputs if n not in self.output_regex]
            if missing:
                raise _FieldError(f"no pattern for outputs {missing}; add one per output", ("output_regex",))
        else:
            _only_when(self, ("output_regex",), "output_format = 'regex'")
        if self.output_format == "parse":
            if self.parse is None:
                raise _FieldError(
                    "required when output_format = 'parse'; give 'module:function' that reads the run "
                    "directory, e.g. 'mypackage.io:read_outputs'",
                    ("parse",),
                )
        else:
            _only_when(self, ("parse",), "output_format = 'parse'")


def _placeholders(arg: str, path: tuple[str | int, ...]) -> list[str]:
    """Names of the ``{placeholders}`` in one command argument (str.format syntax)."""
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(arg) if f is not None]
    except ValueError as exc:
        raise _FieldError(
            f"bad braces in {_show(arg)} ({exc}); write {{name}} for a placeholder and {{{{ }}}} for literal braces",
            path,
        ) from exc
    for name in fields:
        if not name.isidentifier():
            raise _FieldError(
                f"placeholder {{{name}}} in {_show(arg)} is not a plain name; use e.g. {{input}} or {{x1}}", path
            )
    return fields


# --------------------------------------------------------------------------------------
# [surrogate]
# --------------------------------------------------------------------------------------
# Constructor arguments the campaign supplies itself; a second source of truth would disagree.
_MANAGED_SURROGATE_OPTIONS = {
    "bounds": "the campaign passes the unit-cube bounds of the input space",
    "seed": "use campaign.seed",
    "device": "use surrogate.device",
    "dtype": "the campaign uses float64 (a torch dtype cannot be written in TOML)",
}

class SurrogateSpec(BaseModel):
    """``[surrogate]``: the model that learns the simulator."""

    model_config = _MODEL_CONFIG

    kind: Literal["gp", "ensemble", "mc_dropout", "auto"] = Field(
        default="auto",
        description="surrogate model ('auto', the default: the GP unless the ensemble cross-validates better)",
    )
    options: PlainTable = Field(default_factory=FrozenMap, description="constructor keyword arguments")
    device: Literal["auto", "cpu", "cuda"] = Field(default="auto", description="torch device for fitting")
    gpu: StrictBool = Field(default=False, description="fit on a GPU worker")

    @model_validator(mode="after")
    def _check_options(self) -> SurrogateSpec:
        if not self.options:
            return self  # nothing to check; avoids importing torch for the common case
        # Imported here: the registry pulls in torch, which config must not need otherwise.
        from surrogate_al.surrogates import SURROGATES

        params = inspect.signature(SURROGATES[self.kind]).parameters.values()
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
            return self
        known = [
            p.name
            for p in params
            if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        ]
        for name in self.options:
            if name in _MANAGED_SURROGATE_OPTIONS:
                raise _FieldError(
                    f"cannot be set here: {_MANAGED_SURROGATE_OPTIONS[name]}; remove it from surrogate.options",
                    ("options", name),
                )
            if name not in known:
                close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise _FieldError(
                    f"unknown option for kind = {self.kind!r}; {hint}(known options: {', '.join(known)})",
                    ("options", name),
                )
        return self


# --------------------------------------------------------------------------------------
# [acquisition]
# --------------------------------------------------------------------------------------
class LambdaScheduleSpec(BaseModel):
    """``[acquisition.lambda_schedule]``: weight λ of uncertainty vs diversity over the campaign."""

    model_config = _MODEL_CONFIG

    kind: Literal["constant", "linear", "cosine", "exponential"] = Field(default="constant", description="schedule shape")
    # None: 0.9 for 'constant' (the default λ), 0.3 for the others (an exploratory opening), so
    # choosing an annealed kind without a start does not give a flat line.
    start: Number | None = Field(
        default=None, ge=0, le=1, description="λ at the start of the campaign (throughout for 'constant')"
    )
    end: Number = Field(default=0.9, ge=0, le=1, description="λ at the end of the budget")


class AcquisitionSpec(BaseModel):
    """``[acquisition]``: how the next inputs are chosen."""

    model_config = _MODEL_CONFIG

    policy: Literal["default", "random", "sobol", "uncertainty", "qnipv"] = Field(
        default="default", description="acquisition policy"
    )
    mode: Literal["synthesis", "pool"] = Field(default="synthesis", description="optimise over the box or a pool")
    candidates: ExistingFile | None = Field(default=None, description="CSV or .npy file of candidate inputs (pool)")
    lambda_schedule: LambdaScheduleSpec = Field(default_factory=LambdaScheduleSpec)
    batch: Literal["greedy", "topq"] = Field(default="greedy", description="batch selection")
    information: Literal["variance", "logdet"] = Field(
        default="variance", description="information term of the greedy batch objective"
    )
    surprise_cap: Number = Field(
        default=1.0, ge=1,
        description="largest weight of a candidate near a run the model cannot predict (leave-one-out); 1: off",
    )
    localisation: Number | None = Field(
        default=None, ge=0,
        description="taper lengthscale (a multiple of sqrt(d / 6)) of a deep ensemble's covariances in the batch "
        "objective; 0: no taper; default: 0.5 when simulator.deterministic = true, else 0",
    )
    raw_samples: StrictInt = Field(default=1024, ge=1, description="random starts screened by the optimiser")
    restarts: StrictInt = Field(default=8, ge=1, description="gradient restarts of the optimiser")
    feasibility: StrictBool = Field(default=True, description="learn where the simulator fails and avoid it")

    @model_validator(mode="after")
    def _check_mode(self) -> AcquisitionSpec:
        if self.mode == "pool":
            if self.candidates is None:
                raise _FieldError(
                    "required when mode = 'pool'; give a CSV (header = input names) or .npy file of candidates",
                    ("candidates",),
                )
            if self.candidates.suffix.lower() not in (".csv", ".npy"):
                raise _FieldError(
                    f"unsupported file type (got {_show(self.candidates)}); expected a .csv or .npy file",
                    ("candidates",),
                )
        else:
            _only_when(self, ("candidates",), "mode = 'pool'")
        if self.batch == "topq":
            _only_when(self, ("surprise_cap", "localisation"), "batch = 'greedy'")
        return self


# --------------------------------------------------------------------------------------
# [cluster]
# --------------------------------------------------------------------------------------
class AdaptSpec(BaseModel):
    """``[cluster.adapt]``: let dask-jobqueue scale the number of jobs with the load."""

    model_config = _MODEL_CONFIG

    minimum: StrictInt = Field(default=0, ge=0, description="fewest jobs")
    maximum: StrictInt = Field(ge=1, description="most jobs")

    @model_validator(mode="after")
    def _check_order(self) -> AdaptSpec:
        if self.minimum > self.maximum:
            raise _FieldError(
                f"minimum = {self.minimum} is larger than maximum = {self.maximum}; "
                "use 0 <= minimum <= maximum",
                ("minimum",),
            )
        return self


class TLSFiles(BaseModel):
    """``[cluster.tls]``: certificate files for encrypted Dask connections."""

    model_config = _MODEL_CONFIG

    ca_file: ExistingFile = Field(description="certificate authority file")
    cert: ExistingFile = Field(description="certificate file")
    key: ExistingFile = Field(description="private key file")


def _validate_tls(value: Any, info: ValidationInfo) -> TLSFiles | str | None:
    """``None``, the string 'temporary', or a table of files (one validator: no union noise in errors)."""
    if value is None or value == "temporary" or isinstance(value, TLSFiles):
        return value
    if isinstance(value, Mapping):
        try:
            return TLSFiles.model_validate(value, context=info.context)
        except ValidationError as exc:
            loc, message = _error_parts(exc.errors()[0], prefix=("cluster", "tls"))
            raise _FieldError(message, loc) from exc
    raise _FieldError(
        f"wrong value (got {_show(value)}); expected a table {{ca_file, cert, key}} of certificate files, "
        "or 'temporary' for in-memory certificates on a local cluster"
    )


def _serialize_tls(value: TLSFiles | str | None, info: SerializationInfo) -> Any:
    # Explicit: pydantic's union serializer cannot infer the member after a PlainValidator.
    return value.model_dump(mode=info.mode) if isinstance(value, TLSFiles) else value


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: assume it is reachable from elsewhere


def _validate_dashboard(value: Any) -> bool | str:
    """``false``, or 'HOST:PORT'."""
    if value is False:
        return False
    if isinstance(value, str):
        host, sep, port = value.rpartition(":")
        if sep and host.strip("[]") and re.fullmatch(r"[0-9]{1,5}", port) and int(port) <= 65535:
            return value
    raise _FieldError(
        f"wrong value (got {_show(value)}); expected false (no dashboard) or 'HOST:PORT', e.g. '127.0.0.1:8787'"
    )


_LOCAL_ONLY = (
    "workers",
    "threads_per_worker",
    "processes",
    "memory_limit",
    "dashboard",
    "host",
    "allow_remote",
    "worker_gpus",
)
_JOBQUEUE_ONLY = ("jobs", "adapt", "options", "gpus_per_worker")
# dask-jobqueue keywords that other cluster keys control; two sources of truth would disagree.
_MANAGED_JOBQUEUE_OPTIONS = {"n_workers": "cluster.jobs", "security": "cluster.tls", "protocol": "cluster.tls"}


class ClusterSpec(BaseModel):
    """``[cluster]``: where runs execute (Dask). Everything binds to localhost unless told otherwise.

    After validation ``workers`` is set for ``kind = 'local'`` (default: campaign.concurrency)
    and None for other kinds.
    """

    model_config = _MODEL_CONFIG

    kind: Literal["local", "address", "slurm", "pbs", "sge", "lsf", "htcondor"] = Field(
        default="local", description="cluster kind"
    )
    workers: StrictInt | None = Field(default=None, ge=1, description="local workers (default: concurrency)")
    threads_per_worker: StrictInt = Field(default=1, ge=1, description="threads per local worker")
    processes: StrictBool = Field(default=True, description="local workers are processes (not threads)")
    memory_limit: StrictStr | None = Field(default=None, description="memory per local worker, e.g. '4GB'")
    dashboard: Annotated[bool | str, PlainValidator(_validate_dashboard)] = Field(
        default=False, description="false or 'HOST:PORT'"
    )
    host: StrictStr = Field(default="127.0.0.1", description="interface the local scheduler binds to")
    allow_remote: StrictBool = Field(default=False, description="allow non-loopback host/dashboard")
    worker_gpus: StrictInt = Field(default=0, ge=0, description="GPU resource on each local worker")
    address: StrictStr | None = Field(default=None, description="scheduler address (kind = 'address')")
    jobs: StrictInt = Field(default=1, ge=1, description="batch jobs to submit (jobqueue kinds)")
    adapt: AdaptSpec | None = Field(default=None, description="adaptive scaling {minimum, maximum}")
    options: PlainTable = Field(default_factory=FrozenMap, description="dask-jobqueue keyword arguments")
    gpus_per_worker: StrictInt = Field(default=0, ge=0, description="GPU resource per jobqueue worker")
    tls: Annotated[TLSFiles | str | None, PlainValidator(_validate_tls), PlainSerializer(_serialize_tls)] = Field(
        default=None, description="{ca_file, cert, key} or 'temporary'"
    )

    @model_validator(mode="after")
    def _check_kind(self) -> ClusterSpec:
        if self.kind != "local":
            _only_when(self, _LOCAL_ONLY, "kind = 'local'")
            if self.tls == "temporary":
                raise _FieldError(
                    "'temporary' certificates only work for kind = 'local'; give {ca_file, cert, key} files",
                    ("tls",),
                )
        else:
            self._check_local()
        if self.kind == "address":
            self._check_address()
        else:
            _only_when(self, ("address",), "kind = 'address'")
        if self.kind in JOBQUEUE_KINDS:
            if self.adapt is not None:
                _only_when(self, ("jobs",), "[cluster.adapt] is absent (adapt decides the number of jobs)",
                           "either jobs or adapt, not both")
            for name in self.options:
                if name in _MANAGED_JOBQUEUE_OPTIONS:
                    raise _FieldError(
                        f"is set by {_MANAGED_JOBQUEUE_OPTIONS[name]}; remove it from cluster.options",
                        ("options", name),
                    )
        else:
            _only_when(
                self,
                _JOBQUEUE_ONLY,
                f"kind is a batch-queue kind ({', '.join(JOBQUEUE_KINDS)})",
                "kind = 'slurm' (or another batch-queue kind)",
            )
        return self

    def _check_local(self) -> None:
        if not self.host.strip():
            raise _FieldError("is empty; give the interface to bind, e.g. '127.0.0.1'", ("host",))
        if not self.allow_remote:
            if not _is_loopback(self.host):
                raise _FieldError(
                    f"{_show(self.host)} is not a loopback address, so the scheduler would be reachable from "
                    "other machines; use '127.0.0.1', or set allow_remote = true if you mean it",
                    ("host",),
                )
            if isinstance(self.dashboard, str) and not _is_loopback(self.dashboard.rpartition(":")[0]):
                raise _FieldError(
                    f"{_show(self.dashboard)} is not on a loopback address, so the dashboard would be reachable "
                    "from other machines; use '127.0.0.1:8787', or set allow_remote = true if you mean it",
                    ("dashboard",),
                )
        if self.memory_limit is not None and not _MEMORY.match(self.memory_limit.strip()):
            raise _FieldError(
                f"{_show(self.memory_limit)} is not a memory size; write e.g. '4GB', '512MiB' or 'auto'",
                ("memory_limit",),
            )

    def _check_address(self) -> None:
        if self.address is None:
            raise _FieldError(
                "required for kind = 'address'; give the scheduler address, e.g. 'tcp://127.0.0.1:8786'",
                ("address",),
            )
        match = _ADDRESS.match(self.address)
        if match is None or int(match["port"]) > 65535:
            raise _FieldError(
                f"{_show(self.address)} is not a scheduler address; write PROTOCOL://HOST:PORT, "
                "e.g. 'tcp://127.0.0.1:8786' or 'tls://scheduler.example.org:8786'",
                ("address",),
            )
        encrypted = match["scheme"] in ("tls", "wss")
        if encrypted and not isinstance(self.tls, TLSFiles):
            raise _FieldError(
                f"{_show(self.address)} is encrypted; give certificate files in [cluster.tls] "
                "(ca_file, cert, key)",
                ("tls",),
            )
        if not encrypted and self.tls is not None:
            raise _FieldError(
                f"certificates are given but {_show(self.address)} is not encrypted; use a tls:// address "
                "or remove [cluster.tls]",
                ("address",),
            )


# --------------------------------------------------------------------------------------
# [validation]
# --------------------------------------------------------------------------------------
class ValidationSpec(BaseModel):
    """``[validation]``: a held-out CSV (inputs and outputs) to measure the surrogate's error."""

    model_config = _MODEL_CONFIG

    file: ExistingFile = Field(description="CSV with columns = input names + output names")


# --------------------------------------------------------------------------------------
# The whole workflow
# --------------------------------------------------------------------------------------
# Keys the program fills in; a workflow file must not set them.
_INTERNAL_KEYS = frozenset({"workflow_dir"})


class WorkflowSpec(BaseModel):
    """A validated, frozen campaign description.

    Attributes:
        campaign: ``[campaign]``.
        simulator: ``[simulator]``.
        surrogate: ``[surrogate]`` (defaults when absent).
        acquisition: ``[acquisition]`` (defaults when absent).
        cluster: ``[cluster]`` (a local cluster when absent).
        validation: ``[validation]`` or None.
        workflow_dir: the directory relative paths were resolved against (the
            workflow file's directory); set by the loader, not by the file.
    """

    model_config = _MODEL_CONFIG

    campaign: CampaignSpec
    simulator: SimulatorSpec
    surrogate: SurrogateSpec = Field(default_factory=SurrogateSpec)
    acquisition: AcquisitionSpec = Field(default_factory=AcquisitionSpec)
    cluster: ClusterSpec = Field(default_factory=ClusterSpec)
    validation: ValidationSpec | None = None
    workflow_dir: ResolvedPath

    @model_validator(mode="after")
    def _cross_checks(self, info: ValidationInfo) -> WorkflowSpec:
        store = self.campaign.store
        assert store is not None  # resolved by CampaignSpec
        if self.simulator.workdir is None:
            _set(self.simulator, workdir=store.parent / f"{store.stem}_runs")
        if self.cluster.kind == "local" and self.cluster.workers is None:
            _set(self.cluster, workers=self.campaign.concurrency)
        self._check_gpu_workers()
        if _context(info).check_files:
            self._check_file_headers()
        return self

    def _check_gpu_workers(self) -> None:
        # A task needing a GPU resource no worker offers waits forever in Dask: refuse it up front.
        cluster = self.cluster
        if cluster.kind == "address":
            return  # the remote workers' resources are unknown here
        has_gpus = cluster.worker_gpus > 0 if cluster.kind == "local" else cluster.gpus_per_worker > 0
        fix = "worker_gpus" if cluster.kind == "local" else "gpus_per_worker"
        for section, spec in (("simulator", self.simulator), ("surrogate", self.surrogate)):
            if spec.gpu and not has_gpus:
                raise _FieldError(
                    f"gpu = true but no worker of the {cluster.kind} cluster has a GPU, so the work would never "
                    f"start; set cluster.{fix} >= 1, or gpu = false",
                    (section, "gpu"),
                )

    def _check_file_headers(self) -> None:
        names = list(self.simulator.inputs)
        candidates = self.acquisition.candidates
        if candidates is not None:
            if candidates.suffix.lower() == ".csv":
                _require_columns(candidates, names, ("acquisition", "candidates"))
            else:
                _require_npy_columns(candidates, len(names), ("acquisition", "candidates"))
        if self.validation is not None:
            _require_columns(self.validation.file, names + list(self.simulator.outputs), ("validation", "file"))

    def space(self) -> InputSpace:
        """The campaign's input space, in the order of ``[simulator.inputs]``."""
        return InputSpace(Dimension(n, b.low, b.high, b.scale) for n, b in self.simulator.inputs.items())

    def to_dict(self) -> dict[str, Any]:
        """The spec as JSON-able data (paths as strings); :func:`spec_from_dict` inverts it."""
        return self.model_dump(mode="json")


def _require_columns(path: Path, columns: list[str], field: tuple[str, ...]) -> None:
    """Check that a CSV file's header names every one of ``columns``."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            header = next(csv.reader(fh), None)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise _FieldError(
            f"cannot read {_show(path)} as CSV ({exc}); give a UTF-8 CSV file with a header row", field
        ) from exc
    present = {h.strip() for h in header or []}
    missing = [c for c in columns if c not in present]
    if missing:
        raise _FieldError(
            f"{_show(path)} lacks columns {missing} (header: {sorted(present)}); its first row must name "
            f"the columns {columns}",
            field,
        )


def _require_npy_columns(path: Path, d: int, field: tuple[str, ...]) -> None:
    """Check that a .npy file holds an ``n x d`` array (reads the header only)."""
    import numpy as np

    try:
        shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
    except (OSError, ValueError) as exc:
        raise _FieldError(f"cannot read {_show(path)} as .npy ({exc}); save it with numpy.save", field) from exc
    if len(shape) != 2 or shape[1] != d or shape[0] < 1:
        raise _FieldError(
            f"{_show(path)} holds an array of shape {shape}; expected (n, {d}) with one column per input", field
        )


# --------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------
def _validate(data: Any, ctx: _Context) -> WorkflowSpec:
    try:
        return WorkflowSpec.model_validate(data, context=ctx)
    except ValidationError as exc:
        raise _config_error(exc, ctx.source) from None


def parse_workflow(data: dict[str, Any], base_dir: Path, source: str = "<workflow>") -> WorkflowSpec:
    """Validate a workflow given as parsed TOML data.

    Args:
        data: the top-level table (``{"campaign": {...}, "simulator": {...}, ...}``).
        base_dir: directory that relative paths are resolved against.
        source: name used at the start of error messages (usually the file path);
            its stem is the default campaign name.

    Returns:
        The validated, frozen spec with every default filled in.

    Raises:
        ConfigError: the data is invalid; the one-line message names the field path.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(_one_line(f"{source}: expected a table of sections (got {_show(data)}); {_DOCS}"))
    for key in data:
        if key in _INTERNAL_KEYS:
            known = ", ".join(_known_keys(WorkflowSpec))
            raise ConfigError(
                _one_line(f"{source}: {_format_path((key,))}: unknown key; it is set by the loader, not the file "
                          f"(known keys: {known})")
            )
    ctx = _Context(base_dir=Path(os.path.abspath(Path(base_dir).expanduser())), source=source)
    spec = _validate({**data, "workflow_dir": str(ctx.base_dir)}, ctx)
    logger.debug("workflow %s: campaign %r, %d inputs", source, spec.campaign.name, len(spec.simulator.inputs))
    return spec


def load_workflow(path: str | os.PathLike[str]) -> WorkflowSpec:
    """Read, validate and freeze a workflow file.

    Relative paths in the file (``campaign.store``, ``simulator.workdir``,
    ``simulator.template``, ``acquisition.candidates``, ``validation.file``,
    ``cluster.tls.*``) are resolved against the file's directory.
    ``simulator.command`` is passed on untouched.

    Args:
        path: the TOML file.

    Returns:
        The validated spec.

    Raises:
        ConfigError: the file is missing or unreadable, is not valid TOML (the
            message gives line and column), or fails validation.
    """
    file = Path(path)
    source = os.fspath(path)
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise ConfigError(_one_line(f"{source}: workflow file not found; check the path")) from None
    except OSError as exc:
        raise ConfigError(_one_line(f"{source}: cannot read the workflow file ({exc.strerror or exc})")) from None
    try:
        # utf-8-sig: editors on Windows start UTF-8 files with a byte order mark; it is not TOML.
        data = tomllib.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise ConfigError(
            _one_line(f"{source}: not UTF-8 text ({exc.reason} at byte {exc.start}); save the file as UTF-8")
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(_one_line(f"{source}: {_toml_error_text(str(exc))}")) from None
    except RecursionError:  # tomllib recurses once per nesting level of arrays and inline tables
        raise ConfigError(
            f"{source}: invalid TOML: arrays or inline tables are nested too deeply; a workflow needs a few levels"
        ) from None
    except ValueError as exc:  # tomllib lets int() errors through, e.g. an integer of more than 4300 digits
        raise ConfigError(_one_line(f"{source}: invalid TOML: {exc}; fix the value")) from None
    return parse_workflow(data, file.parent, source)


def _toml_error_text(message: str) -> str:
    """'Invalid value (at line 3, column 10)' -> 'line 3, column 10: invalid TOML: Invalid value; ...'."""
    fix = "fix the syntax there (strings need quotes, sections are written [name], pairs key = value)"
    match = re.search(r"\s*\(at line (\d+), column (\d+)\)\s*$", message)
    if match:
        return f"line {match[1]}, column {match[2]}: invalid TOML: {message[: match.start()]}; {fix}"
    return f"invalid TOML: {message}; {fix}"


def spec_from_dict(data: Mapping[str, Any], *, check_files: bool = True) -> WorkflowSpec:
    """Rebuild a spec from :meth:`WorkflowSpec.to_dict` data (resume, reports).

    ``spec_from_dict(spec.to_dict()) == spec``.

    Args:
        data: the stored dict.
        check_files: check that referenced files (template, candidates,
            validation file, TLS files) still exist; pass False to inspect a
            campaign file on a machine without them (status, report).

    Raises:
        ConfigError: the data is not a valid spec (message prefixed ``<stored spec>``).
    """
    base = data.get("workflow_dir") if isinstance(data, Mapping) else None
    base_dir = Path(base) if isinstance(base, str) and base else Path.cwd()
    ctx = _Context(base_dir=base_dir, source="<stored spec>", check_files=check_files)
    if not isinstance(data, Mapping):
        raise ConfigError(_one_line(f"{ctx.source}: expected a dict (got {_show(data)})"))
    return _validate(dict(data), ctx)
