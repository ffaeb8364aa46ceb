"""The child side of an isolated Python call: ``python -m surrogate_al.simulation.child_call CALL RESULT``.

:mod:`surrogate_al.simulation.isolated` starts this module in a process of its
own. It reads the call from the file ``CALL`` (a pickle of the caller's
``sys.path`` and a cloudpickle of ``(function, kwargs)``), calls the function
and writes what happened to the file ``RESULT`` as a pickled
:data:`ChildReport`: ``("returned", value, "")``, ``("raised", reason,
traceback)`` or ``("import_failed", reason, traceback)``. The report is
written under a temporary name and renamed, so a process killed while writing
leaves no report rather than half of one.
"""

from __future__ import annotations

import os
import pickle
import sys
import traceback
from pathlib import Path
from typing import Any

__all__ = ["ChildReport", "main"]

#: ``(kind, value or reason, traceback)`` as the child writes it.
ChildReport = tuple[str, Any, str]


def _write(path: Path, report: ChildReport) -> None:
    import cloudpickle

    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(cloudpickle.dumps(report))
    os.replace(partial, path)


def main(argv: list[str]) -> int:
    """Run the call described by ``argv = [CALL, RESULT]``; 0 once a report is written."""
    import cloudpickle

    from surrogate_al.simulation.base import resolve_callable
    from surrogate_al.simulation.result import exception_reason

    call_path, result_path = Path(argv[0]), Path(argv[1])
    payload = pickle.loads(call_path.read_bytes())
    # The caller's import path: the simulator's module is importable here exactly when it is there.
    sys.path[:] = payload["sys_path"]
    try:
        function, kwargs = cloudpickle.loads(payload["call"])
        fn = resolve_callable(function)
    except Exception as exc:  # the import runs user code: anything can come out
        _write(result_path, ("import_failed", exception_reason("", exc), traceback.format_exc()))
        return 0
    try:
        value = fn(**kwargs)
    except (Exception, SystemExit) as exc:  # user code: any failure is a failed run
        _write(result_path, ("raised", exception_reason("", exc), traceback.format_exc()))
        return 0
    try:
        _write(result_path, ("returned", value, ""))
    except Exception as exc:  # an unpicklable return value
        _write(result_path, ("raised", exception_reason("the return value cannot be sent back: ", exc), ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
