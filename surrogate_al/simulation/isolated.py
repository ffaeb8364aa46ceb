"""Calling a Python function in a child interpreter that is killed when its timeout passes.

A call running in a Dask worker's thread cannot be stopped from outside, so a
:class:`~surrogate_al.simulation.PythonSimulator` with a timeout runs the call
here instead: in a fresh interpreter (``python -m
surrogate_al.simulation.child_call``, started with ``subprocess``, never
forked from the multi-threaded worker) that leads a process group of its own.
At the timeout the group gets SIGTERM and, after a short grace, SIGKILL (see
:mod:`surrogate_al.simulation.process`), so the worker's thread is free again
and nothing of the call keeps running.

The function and its keyword arguments travel by cloudpickle (a function of
an importable module by name, anything else by value) together with the
caller's ``sys.path``; the return value comes back the same way.
"""

from __future__ import annotations

import os
import pickle
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from surrogate_al.simulation.process import signal_name, start_in_group, wait_and_reap
from surrogate_al.simulation.rundir import read_tail

__all__ = ["KILL_GRACE", "ChildOutcome", "call_in_child"]

#: Seconds between SIGTERM and SIGKILL of a call past its timeout.
KILL_GRACE = 1.0
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


@dataclass(frozen=True)
class ChildOutcome:
    """What a call in a child process came to.

    Attributes:
        kind: ``"returned"`` (``value`` holds the return value), ``"raised"``
            (the function raised), ``"import_failed"`` (the function could not
            be imported or unpickled), ``"timeout"`` (killed at the timeout) or
            ``"crashed"`` (the child died without a report).
        value: the return value when ``kind == "returned"``.
        reason: one line for the other kinds.
        traceback: the child's traceback, when there is one.
        stdout_tail: the end of the child's standard output (the function's prints).
        stderr_tail: the end of its standard error.
    """

    kind: Literal["returned", "raised", "import_failed", "timeout", "crashed"]
    value: Any = None
    reason: str = ""
    traceback: str = ""
    stdout_tail: str = ""
    stderr_tail: str = ""


def call_in_child(
    function: Callable[..., Any] | str,
    kwargs: Mapping[str, Any],
    timeout: float,
    *,
    run_id: str | None = None,
    tail_bytes: int = 4096,
) -> ChildOutcome:
    """Call ``function(**kwargs)`` in a child process; kill its process group after ``timeout`` seconds.

    Args:
        function: a callable (pickled with cloudpickle), or a ``"module:function"``
            reference that the child imports.
        kwargs: the keyword arguments (pickled with cloudpickle).
        timeout: seconds from the child's start (its interpreter start included)
            to the kill.
        run_id: names the run in log messages.
        tail_bytes: how much of the child's stdout and stderr to keep.

    Returns:
        The outcome; never raises for what the function or the child did.

    Raises:
        pickle.PicklingError: ``function`` or ``kwargs`` cannot be pickled
            (a caller's mistake, not a failed run).
        OSError: the child interpreter cannot be started.
    """
    import cloudpickle

    payload = pickle.dumps({"sys_path": list(sys.path), "call": cloudpickle.dumps((function, dict(kwargs)))})
    with tempfile.TemporaryDirectory(prefix="sal-call-") as tmp:
        directory = Path(tmp)
        call_path, result_path = directory / "call.pkl", directory / "result.pkl"
        call_path.write_bytes(payload)
        env = dict(os.environ)
        # The child imports this very package before it takes over the caller's sys.path.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH", "")) if p)
        argv = [sys.executable, "-m", "surrogate_al.simulation.child_call", str(call_path), str(result_path)]
        with open(directory / "stdout.txt", "wb") as out, open(directory / "stderr.txt", "wb") as err:
            proc = start_in_group(argv, cwd=Path.cwd(), env=env, stdout=out, stderr=err)
            timed_out = wait_and_reap(proc, timeout, KILL_GRACE, run_id or "?")
        stdout_tail, _ = read_tail(directory / "stdout.txt", tail_bytes)
        stderr_tail, _ = read_tail(directory / "stderr.txt", tail_bytes)
        if timed_out:
            return ChildOutcome(
                "timeout",
                reason=f"still running after the timeout of {timeout} s; its process group was killed",
                stdout_tail=stdout_tail,
                stderr_tail=stderr_tail,
            )
        if not result_path.exists():
            code = proc.returncode
            how = f"was killed by {signal_name(code)}" if code < 0 else f"exited with code {code}"
            return ChildOutcome(
                "crashed",
                reason=f"the process running the function {how} before it returned",
                stdout_tail=stdout_tail,
                stderr_tail=stderr_tail,
            )
        kind, value, trace = pickle.loads(result_path.read_bytes())
    if kind == "returned":
        return ChildOutcome("returned", value=value, stdout_tail=stdout_tail, stderr_tail=stderr_tail)
    return ChildOutcome(kind, reason=str(value), traceback=trace, stdout_tail=stdout_tail, stderr_tail=stderr_tail)
