"""The script entry point shared by every simulator module.

``python -m simulators.NAME INPUT.json OUTPUT.json`` reads a JSON object
``{input name: number}``, calls the module's ``run`` and writes a JSON object
``{output name: number}``. Each module ends with::

    if __name__ == "__main__":
        raise SystemExit(main(INPUTS, OUTPUTS, run))

Exit codes: ``0`` success; ``2`` a usage or input problem (wrong arguments,
unreadable or invalid JSON, missing / unknown / non-numeric inputs), reported
as one line on stderr and nothing written; ``1`` the simulation itself failed
(an exception in ``run``, a non-finite output), also one line on stderr.
These messages go straight to stderr because they are the script's own user
interface, not library logging.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from surrogate_al.space import InputSpace

__all__ = ["main", "EXIT_OK", "EXIT_FAILED", "EXIT_USAGE"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class _UsageError(Exception):
    """A problem with the command line or the input file (exit code 2)."""


def _program() -> str:
    """How the user invoked us, for messages: ``python -m simulators.NAME``."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return f"python -m {spec.name}" if spec is not None else Path(sys.argv[0]).name


def _read_inputs(path: Path, inputs: InputSpace) -> dict[str, float]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _UsageError(f"cannot read input file {str(path)!r}: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _UsageError(f"input file {str(path)!r} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise _UsageError(
            f"input file {str(path)!r} holds a JSON {type(data).__name__}; expected an object "
            f"{{name: number}} with keys {list(inputs.names)}"
        )
    missing = [n for n in inputs.names if n not in data]
    unknown = sorted(k for k in data if k not in inputs.names)
    if missing or unknown:
        raise _UsageError(
            f"input file {str(path)!r}: missing inputs {missing}, unknown inputs {unknown}; "
            f"expected exactly {list(inputs.names)}"
        )
    values: dict[str, float] = {}
    for name in inputs.names:
        value = data[name]
        # bool is an int subclass: true/false in JSON is a typo, not 1/0.
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise _UsageError(f"input {name!r} = {value!r} in {str(path)!r} must be a finite number")
        values[name] = float(value)
    return values


def _write_outputs(path: Path, outputs: Mapping[str, float]) -> None:
    # Write beside the target and rename: a reader never sees a half-written file.
    path = path.resolve()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(dict(outputs), fh, indent=2, allow_nan=False)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(
    inputs: InputSpace,
    outputs: Sequence[str],
    run: Callable[..., Mapping[str, float]],
    argv: Sequence[str] | None = None,
) -> int:
    """Run one simulation from a JSON input file into a JSON output file.

    Args:
        inputs: the module's ``INPUTS``; its names are exactly the keys the
            input file must hold.
        outputs: the module's ``OUTPUTS``; exactly these keys are written.
        run: the module's ``run(**inputs) -> {output: value}``.
        argv: the arguments after the program name (default ``sys.argv[1:]``):
            ``INPUT.json OUTPUT.json``.

    Returns:
        The exit code: ``EXIT_OK``, ``EXIT_FAILED`` or ``EXIT_USAGE``.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    prog = _program()
    if len(args) != 2 or any(a in ("-h", "--help") for a in args):
        print(
            f"usage: {prog} INPUT.json OUTPUT.json  (INPUT.json: an object with the inputs "
            f"{list(inputs.names)}; got arguments {args})",
            file=sys.stderr,
        )
        return EXIT_USAGE
    in_path, out_path = Path(args[0]), Path(args[1])
    try:
        values = _read_inputs(in_path, inputs)
        if not out_path.resolve().parent.is_dir():
            raise _UsageError(f"output directory {str(out_path.resolve().parent)!r} does not exist; create it first")
    except _UsageError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        result = run(**values)
    except Exception as exc:  # the simulation failed: report it as one line, not a traceback
        print(f"{prog}: simulation failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    written: dict[str, float] = {}
    for name in outputs:
        value: Any = result.get(name) if isinstance(result, Mapping) else None
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if isinstance(value, bool) or not math.isfinite(number):
            print(f"{prog}: simulation failed: output {name!r} is {value!r}, expected a finite number", file=sys.stderr)
            return EXIT_FAILED
        written[name] = number
    try:
        _write_outputs(out_path, written)
    except OSError as exc:
        print(f"{prog}: cannot write output file {str(out_path)!r}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK
