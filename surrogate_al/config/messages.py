"""Error plumbing: every validation problem becomes one line naming field, value and fix.

Validators raise :class:`FieldError` with a message in our format (and the path
below their field); :func:`config_error` turns pydantic's report into a single
:class:`~surrogate_al.errors.ConfigError` (:func:`config_errors` into one per
problem, for ``surrogate-al check``), describing pydantic's own errors
(missing keys, typos, wrong types, bounds, unknown choices) in the same style::

    quickstart.toml: simulator.inputs.x1: low = 10.0 must be smaller than high = -5.0; swap the bounds ...
"""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from surrogate_al.errors import ConfigError

__all__ = [
    "DOCS",
    "INTERNAL_KEYS",
    "FieldError",
    "config_error",
    "config_errors",
    "error_line",
    "error_parts",
    "format_path",
    "known_keys",
    "one_line",
    "only_when",
    "set_fields",
    "show",
    "toml_type",
]

DOCS = "see docs/workflow.md"
# Keys the program fills in; a workflow file must not set them.
INTERNAL_KEYS = frozenset({"workflow_dir"})


class FieldError(ValueError):
    """A validation failure with a message in our format and a path below the validator's field.

    Pydantic wraps ``ValueError`` raised by validators and keeps the exception in
    the error's context; :func:`config_error` appends :attr:`path` to the error's
    location and uses :attr:`message` verbatim.
    """

    def __init__(self, message: str, path: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.path = path


def show(value: Any, limit: int = 60) -> str:
    """A short, single-line rendering of a value, written as it would be in TOML."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        text = "nothing"
    elif isinstance(value, Path):
        return show(str(value), limit=10_000)  # a cut path is useless: show it whole
    elif isinstance(value, str):
        # A TOML literal string shows regex backslashes exactly as the user typed them.
        literal = "'" not in value and value.isprintable()
        text = f"'{value}'" if literal else repr(value)
    elif isinstance(value, Mapping):
        text = "a table {" + ", ".join(str(k) for k in list(value)[:6]) + ("}" if len(value) <= 6 else ", ...}")
    elif isinstance(value, (list, tuple)):
        text = "[" + ", ".join(show(v, limit) for v in value[:8]) + (", ...]" if len(value) > 8 else "]")
    else:
        text = repr(value)
    text = text.replace("\n", "\\n").replace("\r", "\\r")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def toml_type(value: Any) -> str:
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


def one_line(text: str) -> str:
    """``text`` with line breaks turned into spaces (a ConfigError is one line)."""
    return text.replace("\r", " ").replace("\n", " ")


def format_path(loc: tuple[Any, ...]) -> str:
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
    return one_line(out)


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


def _locate(root: type[BaseModel], loc: tuple[Any, ...]) -> tuple[type[BaseModel] | None, FieldInfo | None]:
    """The model that holds ``loc[-1]`` and that field's info (None where unknown)."""
    node: Any = root
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


def known_keys(model: type[BaseModel]) -> list[str]:
    """The keys a workflow file may write in ``model``'s table."""
    return [name for name in model.model_fields if name not in INTERNAL_KEYS]


def _choices(field: FieldInfo | None, ctx: Mapping[str, Any]) -> list[str]:
    """The allowed values of a Literal field, from its annotation (fallback: pydantic's text)."""
    if field is not None:
        annotation = field.annotation
        if get_origin(annotation) in _UNION_TYPES:
            annotation = next((a for a in get_args(annotation) if get_origin(a) is Literal), annotation)
        if get_origin(annotation) is Literal:
            return [repr(a) for a in get_args(annotation)]
    return [str(ctx.get("expected", "?"))]


def _describe(err: Mapping[str, Any], loc: tuple[Any, ...], root: type[BaseModel]) -> str:
    """Our one-line description of a built-in pydantic error at ``loc``."""
    etype = err["type"]
    value = err.get("input")
    ctx = err.get("ctx") or {}
    model, field = _locate(root, loc)
    key = str(loc[-1]) if loc else ""
    section = "[" + format_path(loc[:-1]) + "]" if len(loc) > 1 else "the top level"
    what = f" ({key}: {field.description})" if field is not None and field.description else ""
    if etype == "missing":
        if field is not None and _unwrap_model(field.annotation) is not None:
            return f"missing required section [{format_path(loc)}]; add a [{format_path(loc)}] table ({DOCS})"
        return f"missing required key; add {key} = ... to {section}{what}"
    if etype == "extra_forbidden":
        known = known_keys(model) if model is not None else []
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? " if close else "remove it or fix its spelling "
        return f"unknown key; {hint}(known keys: {', '.join(known)})"
    if etype == "literal_error":
        choices = _choices(field, ctx)
        # "surrogate kind", "cluster kind"; but "scale", not "x1 scale", below a user-named table entry.
        parent_is_section = len(loc) >= 2 and _locate(root, loc[:-1])[1] is not None
        noun = f"{loc[-2]} {key}" if parent_is_section else key
        plain = [c.strip("'") for c in choices]
        close = difflib.get_close_matches(str(value), plain, n=1, cutoff=0.6) if isinstance(value, str) else []
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"{show(value)} is not a known {noun}; expected one of {', '.join(choices)}{hint}"
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
        return f"wrong type (got {show(value)}, {toml_type(value)}); expected {expected}{what}{unquote}"
    bounds = {
        "greater_than": (">", "gt"),
        "greater_than_equal": (">=", "ge"),
        "less_than": ("<", "lt"),
        "less_than_equal": ("<=", "le"),
    }
    if etype in bounds:
        op, name = bounds[etype]
        return f"must be {op} {ctx.get(name)} (got {show(value)}); use a value {op} {ctx.get(name)}{what}"
    if etype == "finite_number":
        return f"must be a finite number (got {show(value)}); NaN and inf are not allowed"
    if etype == "too_short":
        return f"must not be empty (got {show(value)}){what}"
    if etype == "invalid_key":
        return f"table keys must be strings (got {show(value)}); quote the key"
    return f"{err.get('msg', 'invalid value')} (got {show(value)}); {DOCS}"


def _parses_as(text: str, etype: str) -> bool:
    """Whether a quoted value would have been valid without the quotes."""
    if etype.startswith("bool"):
        return text.strip().lower() in ("true", "false")
    try:
        float(text) if etype.startswith("float") else int(text)
    except ValueError:
        return False
    return True


def error_parts(
    err: Mapping[str, Any], root: type[BaseModel], prefix: tuple[Any, ...] = ()
) -> tuple[tuple[Any, ...], str]:
    """Location (below ``prefix``) and our message for one pydantic error."""
    # Pydantic marks a bad dict key with a trailing '[key]' element; our paths just name the key.
    loc = tuple(part for part in err["loc"] if part != "[key]")
    cause = (err.get("ctx") or {}).get("error")
    if isinstance(cause, FieldError):
        return loc + cause.path, cause.message
    if isinstance(cause, BaseException):
        return loc, str(cause)
    return loc, _describe(err, prefix + loc, root)


def error_line(err: Mapping[str, Any], source: str, root: type[BaseModel]) -> ConfigError:
    """One pydantic error as a single-line :class:`ConfigError`: ``source: field.path: what; fix``."""
    loc, message = error_parts(err, root)
    where = f"{format_path(loc)}: " if loc else ""
    return ConfigError(one_line(f"{source}: {where}{message}"))


def config_error(exc: ValidationError, source: str, root: type[BaseModel]) -> ConfigError:
    """Turn pydantic's report into one single-line :class:`ConfigError` (one error: the most telling)."""
    errors = exc.errors()
    # A misspelt key usually also makes a required key "missing"; the typo is the cause, so report it first.
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    return error_line(err, source, root)


def config_errors(exc: ValidationError, source: str, root: type[BaseModel]) -> list[ConfigError]:
    """Every problem in pydantic's report, one :class:`ConfigError` line each, in the file's order.

    A "missing" key whose table also holds a misspelling of it (``budgt`` for
    ``budget``) is left out: the typo is the one problem, and its line already
    names the key it was meant to be.
    """
    errors = exc.errors()
    typos: set[tuple[tuple[Any, ...], str]] = set()
    for err in errors:
        if err["type"] == "extra_forbidden" and err["loc"]:
            model, _ = _locate(root, tuple(err["loc"]))
            known = known_keys(model) if model is not None else []
            for close in difflib.get_close_matches(str(err["loc"][-1]), known, n=1, cutoff=0.6):
                typos.add((tuple(err["loc"][:-1]), close))
    kept = [
        e for e in errors
        if not (e["type"] == "missing" and e["loc"] and (tuple(e["loc"][:-1]), str(e["loc"][-1])) in typos)
    ]
    return [error_line(e, source, root) for e in kept]


def only_when(model: BaseModel, names: tuple[str, ...], condition: str, fix: str | None = None) -> None:
    """Reject fields that differ from their default although ``condition`` does not hold.

    ``fix`` is the setting that would make them meaningful (default: ``condition``).

    Comparing with the default (not "was it written") keeps :func:`spec_from_dict`
    working: :meth:`WorkflowSpec.to_dict` writes every field, defaults included.
    """
    for name in names:
        value = getattr(model, name)
        default = type(model).model_fields[name].get_default(call_default_factory=True)
        if value != default:
            raise FieldError(
                f"only used when {condition} (got {show(value)}); remove it, or set {fix or condition}", (name,)
            )


def set_fields(model: BaseModel, **values: Any) -> None:
    """Fill resolved defaults on a frozen model while it is being validated."""
    for name, value in values.items():
        object.__setattr__(model, name, value)
