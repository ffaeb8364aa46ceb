"""Constructor arguments of :class:`~surrogate_al.simulation.script.ScriptSimulator`, checked.

Each check raises :class:`~surrogate_al.errors.SimulatorError` naming the
argument and the fix; what is allowed comes from
:mod:`surrogate_al.simulation.rules`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any

from surrogate_al.errors import SimulatorError
from surrogate_al.simulation.rules import (
    CommandField,
    command_fields,
    env_name_ok,
    env_value_ok,
    filename_problem,
    plain_field,
)

__all__ = [
    "check_env",
    "check_nonnegative",
    "check_positive_int",
    "check_relative_filename",
    "check_workdir_root",
    "format_fields",
    "load_template",
]


def check_relative_filename(value: Any, what: str) -> str:
    """A file name confined to the run directory (relative, no ``..``)."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    problem = filename_problem(value) if isinstance(value, str) else "empty"
    if problem == "empty":
        raise SimulatorError(f"{what} = {value!r} must be a non-empty file name such as 'input.json'")
    if problem == "nul":
        raise SimulatorError(f"{what} = {value!r} contains a NUL byte")
    if problem == "absolute":
        raise SimulatorError(
            f"{what} = {value!r} is absolute; give a name relative to the run directory (e.g. 'out.json'): "
            "every file the wrapper touches stays inside that directory"
        )
    if problem == "parent":
        raise SimulatorError(
            f"{what} = {value!r} contains '..' and could point outside the run directory; "
            "give a plain name relative to it (e.g. 'out.json' or 'results/out.json')"
        )
    if problem == "directory":
        raise SimulatorError(f"{what} = {value!r} names a directory; give a file name")
    return str(PurePath(value))


def format_fields(text: str, what: str) -> list[CommandField]:
    """The pieces of a command argument (``str.format`` syntax), only plain placeholders allowed."""
    try:
        fields = command_fields(text)
    except ValueError as exc:
        raise SimulatorError(
            f"{what} = {text!r}: {exc}; write {{{{ and }}}} for literal braces"
        ) from None
    for field in fields:
        if field.name is not None and not plain_field(field):
            conversion, spec = field.conversion, field.spec
            raise SimulatorError(
                f"{what} = {text!r}: placeholder {{{field.name}{'!' + conversion if conversion else ''}"
                f"{':' + spec if spec else ''}}} uses a conversion or a nested field; only "
                "{name} and {name:format} (e.g. {x1:.6e}) are allowed"
            )
    return fields


def check_nonnegative(value: Any, what: str) -> float:
    """``value`` as seconds, checked to be a number >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise SimulatorError(f"{what} = {value!r} must be a number of seconds >= 0")
    return float(value)

def check_positive_int(value: Any, what: str) -> int:
    """``value`` checked to be an integer >= 1 (a size in bytes)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SimulatorError(f"{what} = {value!r} must be a positive integer (bytes)")
    return value

def check_workdir_root(root: Any) -> str:
    """The absolute path of the directory run directories go under (it may not exist yet)."""
    if root is None or not isinstance(root, (str, os.PathLike)) or not os.fspath(root):
        raise SimulatorError(f"workdir_root = {root!r} must be a directory path (created when missing)")
    path = Path(root).expanduser().absolute()
    if path.exists() and not path.is_dir():
        raise SimulatorError(f"workdir_root = {str(path)!r} exists and is not a directory")
    return str(path)

def check_env(env: Any) -> dict[str, str]:
    """Extra environment variables, checked to be str names and values a process can get."""
    if env is None:
        return {}
    if not isinstance(env, Mapping):
        raise SimulatorError(f"env must be a mapping {{NAME: value}}, got {type(env).__name__}")
    for key, value in env.items():
        if not isinstance(key, str) or not env_name_ok(key):
            raise SimulatorError(f"env: variable name {key!r} is invalid; use a non-empty name without '='")
        if not isinstance(value, str) or not env_value_ok(value):
            raise SimulatorError(f"env[{key!r}] = {value!r} must be a string (convert numbers with str())")
    return dict(env)

def load_template(template: Any) -> str:
    """The template text: read from a path (or a string naming an existing file), or given as text."""
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
