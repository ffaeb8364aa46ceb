"""What a script simulator's settings may be: formats, file names, placeholders, patterns.

:class:`~surrogate_al.simulation.script.ScriptSimulator` (constructor arguments)
and the ``[simulator]`` section of a workflow (:mod:`surrogate_al.config.simulator`)
both check a script's settings. Each phrases its own messages -- an argument name
there, a workflow field path here -- but what is allowed is decided in this module
only, so a workflow that validates builds a simulator that accepts it.

Plain data and pure functions, no torch: loading a workflow imports this module.
"""

from __future__ import annotations

import os
import re
import string
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePath
from types import MappingProxyType
from typing import Literal, get_args

__all__ = [
    "CALLABLE_REF",
    "DEFAULT_INPUT_FILES",
    "DEFAULT_OUTPUT_FILES",
    "INPUT_FORMATS",
    "OUTPUT_FORMATS",
    "PLACEHOLDERS",
    "REGEX_GROUPS",
    "STDERR_FILE",
    "STDOUT_FILE",
    "WRAPPER_FILES",
    "CommandField",
    "FilenameProblem",
    "InputFormat",
    "OutputFormat",
    "available_placeholders",
    "command_fields",
    "default_input_filename",
    "default_output_filename",
    "env_name_ok",
    "env_value_ok",
    "filename_problem",
    "plain_field",
    "regex_groups",
    "spec_error",
    "unused_inputs",
]

InputFormat = Literal["json", "template", "none"]
OutputFormat = Literal["json", "csv", "keyvalue", "regex", "parse"]
INPUT_FORMATS: tuple[str, ...] = get_args(InputFormat)
OUTPUT_FORMATS: tuple[str, ...] = get_args(OutputFormat)

#: Names a command argument (and a template) may use besides the input names.
PLACEHOLDERS: tuple[str, ...] = ("input", "output", "workdir", "run_id")

#: Files the wrapper itself writes into every run directory.
STDOUT_FILE = "stdout.txt"
STDERR_FILE = "stderr.txt"
WRAPPER_FILES: tuple[str, ...] = (STDOUT_FILE, STDERR_FILE)

#: Input file name per input format; ``"none"`` writes no file.
DEFAULT_INPUT_FILES = MappingProxyType({"json": "input.json", "template": "input.txt"})
#: Output file name per output format; the others read stdout unless a file is named.
DEFAULT_OUTPUT_FILES = MappingProxyType({"json": "output.json", "csv": "output.csv"})

#: Capture groups an output pattern must have: the one around the number.
REGEX_GROUPS = 1

#: A ``"module:function"`` reference (the part after the colon may be a dotted qualname).
CALLABLE_REF = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")

FilenameProblem = Literal["empty", "nul", "absolute", "parent", "directory"]


def default_input_filename(input_format: str) -> str | None:
    """The input file a format writes when none is named (``None``: no input file)."""
    return DEFAULT_INPUT_FILES.get(input_format)


def default_output_filename(output_format: str) -> str | None:
    """The output file a format reads when none is named (``None``: stdout)."""
    return DEFAULT_OUTPUT_FILES.get(output_format)


def filename_problem(value: str) -> FilenameProblem | None:
    """What keeps ``value`` from naming a file inside the run directory, or None.

    Every file the wrapper touches stays inside the run's own directory, so a
    name must be relative, without ``..``, and name a file (not a directory).
    """
    if not value.strip():
        return "empty"
    if "\x00" in value:
        return "nul"
    path = PurePath(value)
    if path.is_absolute() or value.startswith("~"):
        return "absolute"
    if ".." in path.parts:
        return "parent"
    if path.parts in ((), (".",)) or value.endswith(("/", os.sep)):
        return "directory"
    return None


def available_placeholders(*, input_file: bool, output_file: bool) -> tuple[str, ...]:
    """The placeholders of :data:`PLACEHOLDERS` a run can fill.

    ``{input}`` and ``{output}`` name files, so they exist only when the
    configuration has that file (an input format other than ``"none"``; an
    output file name).
    """
    return tuple(
        name
        for name in PLACEHOLDERS
        if (name != "input" or input_file) and (name != "output" or output_file)
    )


@dataclass(frozen=True)
class CommandField:
    """One piece of a command argument in ``str.format`` syntax.

    Attributes:
        literal: the text before the field.
        name: the field name, or None for the trailing text.
        spec: the format spec (``".6e"`` in ``{x1:.6e}``), ``""`` when none.
        conversion: ``"r"``/``"s"``/``"a"`` of ``{x!r}``, or None.
    """

    literal: str
    name: str | None
    spec: str
    conversion: str | None


def command_fields(text: str) -> list[CommandField]:
    """Split a command argument into its literal text and ``{placeholder}`` fields.

    Raises:
        ValueError: unbalanced braces (``str.format`` cannot parse ``text``).
    """
    return [
        CommandField(literal, name, spec or "", conversion)
        for literal, name, spec, conversion in string.Formatter().parse(text)
    ]


def plain_field(field: CommandField) -> bool:
    """Whether a placeholder is ``{name}`` or ``{name:spec}``, the only forms a run fills.

    A conversion (``{x!r}``) or a nested field (``{x:{w}}``) is not plain.
    """
    return not field.conversion and "{" not in field.spec


def spec_error(spec: str) -> str:
    """``""`` when a format spec can format a number (``".6e"``), else why it cannot."""
    try:
        format(1.0, spec)
    except ValueError as exc:
        return str(exc)
    return ""


def regex_groups(pattern: str) -> int:
    """Number of capture groups of an output pattern (as applied: ``re.MULTILINE``).

    Raises:
        re.error: the pattern does not compile.
    """
    return re.compile(pattern, re.MULTILINE).groups


def env_name_ok(name: str) -> bool:
    """Whether ``name`` can be an environment variable name (non-empty, no ``=``, no NUL)."""
    return bool(name) and "=" not in name and "\x00" not in name


def env_value_ok(value: str) -> bool:
    """Whether ``value`` can be an environment variable's value (no NUL)."""
    return "\x00" not in value


def unused_inputs(input_names: Iterable[str], used: Iterable[str]) -> list[str]:
    """The inputs, in order, that no template field or command placeholder passes on."""
    seen = set(used)
    return [name for name in input_names if name not in seen]
