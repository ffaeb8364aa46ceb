"""Entry points: a workflow file (TOML) or stored spec data -> a validated, frozen :class:`WorkflowSpec`.

Relative paths are resolved against the workflow file's directory; the spec
round-trips through plain data (:meth:`WorkflowSpec.to_dict` /
:func:`spec_from_dict`), which the campaign stores in its HDF5 file and resume
rebuilds the spec from.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from surrogate_al.config.messages import (
    DOCS,
    INTERNAL_KEYS,
    config_error,
    config_errors,
    format_path,
    known_keys,
    one_line,
    show,
)
from surrogate_al.config.spec import WorkflowSpec
from surrogate_al.config.values import Context
from surrogate_al.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib

__all__ = ["check_workflow", "load_workflow", "parse_workflow", "spec_from_dict"]

logger = logging.getLogger(__name__)


def _validate(data: Any, ctx: Context) -> WorkflowSpec:
    try:
        return WorkflowSpec.model_validate(data, context=ctx)
    except ValidationError as exc:
        raise config_error(exc, ctx.source, WorkflowSpec) from None


def _prepare(data: Any, base_dir: Path, source: str) -> tuple[dict[str, Any], Context]:
    """The top-level table with the loader's own keys added, and the validation context."""
    if not isinstance(data, Mapping):
        raise ConfigError(one_line(f"{source}: expected a table of sections (got {show(data)}); {DOCS}"))
    for key in data:
        if key in INTERNAL_KEYS:
            known = ", ".join(known_keys(WorkflowSpec))
            raise ConfigError(
                one_line(f"{source}: {format_path((key,))}: unknown key; it is set by the loader, not the file "
                          f"(known keys: {known})")
            )
    ctx = Context(base_dir=Path(os.path.abspath(Path(base_dir).expanduser())), source=source)
    return {**data, "workflow_dir": str(ctx.base_dir)}, ctx


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
    full, ctx = _prepare(data, base_dir, source)
    spec = _validate(full, ctx)
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
    return parse_workflow(_read_toml(file, os.fspath(path)), file.parent, os.fspath(path))


def check_workflow(path: str | os.PathLike[str]) -> tuple[WorkflowSpec | None, list[ConfigError]]:
    """Read and validate a workflow file, collecting every problem instead of stopping at the first.

    A file that cannot be read or is not TOML is one problem; otherwise each
    invalid value is one, in the form :func:`load_workflow` raises. Checks
    that span sections (:class:`WorkflowSpec`'s own) run once every section
    is valid.

    Args:
        path: the TOML file.

    Returns:
        The spec (None when there are problems) and the problems, one
        single-line :class:`ConfigError` each.
    """
    file = Path(path)
    source = os.fspath(path)
    try:
        full, ctx = _prepare(_read_toml(file, source), file.parent, source)
    except ConfigError as exc:
        return None, [exc]
    try:
        return WorkflowSpec.model_validate(full, context=ctx), []
    except ValidationError as exc:
        return None, config_errors(exc, source, WorkflowSpec)


def _read_toml(file: Path, source: str) -> dict[str, Any]:
    """The file's TOML data; every reading or syntax problem is one :class:`ConfigError` line."""
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise ConfigError(one_line(f"{source}: workflow file not found; check the path")) from None
    except OSError as exc:
        raise ConfigError(one_line(f"{source}: cannot read the workflow file ({exc.strerror or exc})")) from None
    try:
        # utf-8-sig: editors on Windows start UTF-8 files with a byte order mark; it is not TOML.
        return tomllib.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise ConfigError(
            one_line(f"{source}: not UTF-8 text ({exc.reason} at byte {exc.start}); save the file as UTF-8")
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(one_line(f"{source}: {_toml_error_text(str(exc))}")) from None
    except RecursionError:  # tomllib recurses once per nesting level of arrays and inline tables
        raise ConfigError(
            f"{source}: invalid TOML: arrays or inline tables are nested too deeply; a workflow needs a few levels"
        ) from None
    except ValueError as exc:  # tomllib lets int() errors through, e.g. an integer of more than 4300 digits
        raise ConfigError(one_line(f"{source}: invalid TOML: {exc}; fix the value")) from None


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
    ctx = Context(base_dir=base_dir, source="<stored spec>", check_files=check_files)
    if not isinstance(data, Mapping):
        raise ConfigError(one_line(f"{ctx.source}: expected a dict (got {show(data)})"))
    return _validate(dict(data), ctx)
