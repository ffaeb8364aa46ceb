"""How inputs reach a script and outputs come back: input writers and output parsers.

Inputs are written as a JSON object or rendered into a :class:`string.Template`
input deck. Outputs are read from a JSON object, a CSV file of one header row
and one data row, ``name = value`` lines, regular expressions, or a user
function. Every function here reports a problem as a reason string (the run is
then ``failed`` or ``invalid``), never as an exception; only the template check
done at construction raises.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import string
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from surrogate_al.errors import SimulatorError
from surrogate_al.simulation.base import callable_name, resolve_callable
from surrogate_al.simulation.result import collect_outputs, exception_reason

__all__ = [
    "ParseFunction",
    "call_parse",
    "input_text",
    "parse_output_text",
    "template_fields",
]

#: ``parse(run_dir, stdout) -> {output name: value}``.
ParseFunction = Callable[[Path, str], Mapping[str, Any]]
Outputs = tuple[dict[str, float], str]

_KEYVALUE_LINE = re.compile(r"^\s*([A-Za-z_][\w.\-]*)\s*=\s*(.*?)\s*$")


# ---------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------
def input_text(
    input_format: str, values: Mapping[str, Any], fields: Mapping[str, Any], template: str | None
) -> tuple[str, str]:
    """The inputs file's text: ``(text, "")`` or ``("", reason)``.

    Args:
        input_format: ``"json"`` or ``"template"``.
        values: ``{input name: value}``, fixed inputs included (the JSON object).
        fields: what a template may use: the values plus ``workdir``, ``run_id``,
            ``input`` and ``output`` where they exist.
        template: the template text (for ``"template"``).
    """
    if input_format == "json":
        try:
            return json.dumps(values, indent=2, ensure_ascii=False, allow_nan=False, default=_json_default), ""
        except (TypeError, ValueError) as exc:
            return "", exception_reason("inputs cannot be written as JSON: ", exc)
    assert template is not None
    try:
        return string.Template(template).substitute({k: str(v) for k, v in fields.items()}), ""
    except (KeyError, ValueError) as exc:
        return "", exception_reason("the template cannot be rendered: ", exc)


def _json_default(value: Any) -> Any:
    """JSON for numpy scalars and paths in inputs (the campaign passes numpy floats)."""
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"{type(value).__name__} value {value!r} is not JSON serializable")


def template_fields(text: str, what: str) -> list[str]:
    """Names used as ``$name`` / ``${name}`` in ``string.Template`` text (Python 3.10-safe).

    Raises:
        SimulatorError: an invalid ``$`` placeholder (the line is named).
    """
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


# ---------------------------------------------------------------------------------------
# Outputs
# ---------------------------------------------------------------------------------------
def call_parse(parse: ParseFunction | str, run_dir: Path, stdout: str, output_names: Sequence[str]) -> Outputs:
    """Outputs from the user's ``parse(run_dir, stdout)``; an exception in it is a reason."""
    name = callable_name(parse)
    try:
        raw = resolve_callable(parse)(run_dir, stdout)
    except Exception as exc:  # user code
        return {}, exception_reason(f"parse function {name} raised ", exc)
    if not isinstance(raw, Mapping):
        return {}, f"parse function {name} returned a {type(raw).__name__}; it must return a dict {{name: value}}"
    return collect_outputs(raw, output_names, f"the dict returned by {name}")


def parse_output_text(
    output_format: str,
    text: str,
    source: str,
    output_names: Sequence[str],
    output_regex: Mapping[str, str] | None = None,
) -> Outputs:
    """Outputs read from ``text`` in ``output_format`` (``json``, ``csv``, ``keyvalue``, ``regex``).

    Args:
        output_format: the format.
        text: the output file's text, or the stdout tail.
        source: where ``text`` came from, for reasons (a file name or ``"stdout"``).
        output_names: the outputs to take.
        output_regex: for ``"regex"``: ``{output name: pattern with one group}``.

    Returns:
        ``(outputs, "")`` or ``({}, reason)``.
    """
    if output_format == "json":
        return _parse_json(text, source, output_names)
    if output_format == "csv":
        return _parse_csv(text, source, output_names)
    if output_format == "keyvalue":
        raw = {}
        for line in text.splitlines():
            match = _KEYVALUE_LINE.match(line)
            if match:
                raw[match.group(1)] = match.group(2)
        return collect_outputs(raw, output_names, f"the 'name = value' lines of {source}")
    assert output_regex is not None
    raw = {}
    for name, pattern in output_regex.items():
        # The last match wins: solvers print progress, the final value last.
        matches = re.findall(pattern, text, re.MULTILINE)
        if not matches:
            return {}, f"output {name!r} missing from {source}: regex {pattern!r} does not match"
        raw[name] = matches[-1]
    return collect_outputs(raw, output_names, source)


def _parse_json(text: str, source: str, output_names: Sequence[str]) -> Outputs:
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError; a 5000-digit integer; nesting too deep
        return {}, f"output file {source} is not valid JSON: {exc}"
    if not isinstance(raw, dict):
        return {}, f"output file {source} holds a JSON {type(raw).__name__}; expected an object {{name: value}}"
    return collect_outputs(raw, output_names, source)


def _parse_csv(text: str, source: str, output_names: Sequence[str]) -> Outputs:
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
    return collect_outputs(dict(zip(header, rows[1])), output_names, source)
