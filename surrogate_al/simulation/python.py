"""Simulators that call a Python function: in the worker process, or in a child process with a timeout."""

from __future__ import annotations

import inspect
import logging
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from surrogate_al.errors import SimulatorError
from surrogate_al.simulation.base import NamedSimulator, check_callable_ref, resolve_callable
from surrogate_al.simulation.isolated import call_in_child
from surrogate_al.simulation.result import TAIL_BYTES, RunClock, SimulationResult, collect_outputs, exception_reason, tail

__all__ = ["PythonSimulator"]

logger = logging.getLogger(__name__)


class PythonSimulator(NamedSimulator):
    """A simulator that calls a Python function.

    Args:
        function: a callable, or a ``"module:function"`` string that is imported
            lazily at call time (so the simulator pickles by name and the module
            only needs to be importable on the workers). It is called with the
            inputs (and ``fixed_inputs``) as keyword arguments and returns a dict
            ``{output name: number}``, or a plain number when there is one output.
        input_names: names of the varied inputs.
        output_names: names of the outputs to take from the return value (extra
            keys are ignored).
        fixed_inputs: keyword arguments passed unchanged to every call.
        timeout: seconds, or None. Without a timeout the function is called in
            the worker process itself. With one, each call runs in a fresh child
            interpreter (:func:`~surrogate_al.simulation.isolated.call_in_child`)
            whose process group is killed when the timeout passes: the run gets
            status ``"timeout"`` and the worker is free for the next run. The
            function, its arguments and its return value then cross a process
            boundary, so they must pickle (cloudpickle), and the timeout includes
            the child's start (a fraction of a second).

    Statuses: an exception (``SystemExit`` included) is ``"failed"``; a return
    value that is unusable (NaN or inf, a missing output name, a list where a
    number belongs) is ``"invalid"``.

    Raises:
        SimulatorError: bad names, a bad function reference, or a callable whose
            signature cannot take the inputs.

    Notes:
        In the worker process the function's own prints are not captured
        (redirecting ``sys.stdout`` is process-wide and unsafe in threaded
        workers): ``stdout_tail`` is empty and ``stderr_tail`` holds the
        traceback of an exception. In a child process (with a timeout) both
        tails hold the ends of the child's output.
    """

    def __init__(
        self,
        function: Callable[..., Any] | str,
        input_names: Sequence[str],
        output_names: Sequence[str],
        *,
        fixed_inputs: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> None:
        self._init_names(input_names, output_names, fixed_inputs)
        self.function = check_callable_ref(function, "function")
        self.timeout = self._check_timeout(timeout)
        if callable(self.function):
            self._check_signature(self.function)

    def _check_signature(self, fn: Callable[..., Any]) -> None:
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError):
            return  # builtins without a signature: nothing to check ahead of time.
        names = (*self.input_names, *self.fixed_inputs)
        try:
            sig.bind(**{n: 0.0 for n in names})
        except TypeError as exc:
            raise SimulatorError(
                f"function {getattr(fn, '__qualname__', fn)!r}{sig} cannot be called with the keyword "
                f"arguments {list(names)}: {exc}; make its parameters match input_names and fixed_inputs"
            ) from None

    def __repr__(self) -> str:
        fn = self.function if isinstance(self.function, str) else getattr(self.function, "__qualname__", "?")
        return (
            f"PythonSimulator({fn!r}, input_names={list(self.input_names)}, "
            f"output_names={list(self.output_names)}, timeout={self.timeout})"
        )

    def __call__(self, inputs: Mapping[str, Any], run_id: str | None = None) -> SimulationResult:
        """Call the function once; never raises for a failed run."""
        clock = RunClock()
        kwargs, reason = self._merge_inputs(inputs)
        if reason:
            return clock.result("failed", reason=reason)
        if self.timeout is not None:
            return self._call_in_child(kwargs, self.timeout, clock, run_id)
        try:
            fn = resolve_callable(self.function)
        except Exception as exc:  # the import runs user code: anything can come out
            return clock.result(
                "failed",
                reason=exception_reason(f"cannot import {self.function!r}: ", exc),
                stderr_tail=tail(traceback.format_exc(), TAIL_BYTES),
            )
        try:
            value = fn(**kwargs)
        except (Exception, SystemExit) as exc:  # user code: any failure is a failed run
            logger.debug("run %s: %r raised %r", run_id, self.function, exc)
            return clock.result(
                "failed",
                reason=exception_reason("", exc),
                stderr_tail=tail(traceback.format_exc(), TAIL_BYTES),
            )
        return self._result_of(value, clock)

    def _call_in_child(
        self, kwargs: dict[str, Any], timeout: float, clock: RunClock, run_id: str | None
    ) -> SimulationResult:
        """The call in a child process that is killed at ``timeout``."""
        try:
            outcome = call_in_child(self.function, kwargs, timeout, run_id=run_id, tail_bytes=TAIL_BYTES)
        except Exception as exc:  # unpicklable function or inputs, or no interpreter to start
            return clock.result("failed", reason=exception_reason("cannot start the call in a child process: ", exc))
        tails = {"stdout_tail": outcome.stdout_tail, "stderr_tail": outcome.stderr_tail}
        if outcome.kind == "returned":
            result = self._result_of(outcome.value, clock)
            return clock.result(result.status, result.outputs, result.reason, **tails)
        if outcome.kind == "timeout":
            logger.info("run %s: %r %s", run_id, self.function, outcome.reason)
            return clock.result("timeout", reason=outcome.reason, **tails)
        if outcome.kind == "import_failed":
            reason = f"cannot import {self.function!r}: {outcome.reason}"
        else:
            reason = outcome.reason
        stderr = tail(outcome.traceback, TAIL_BYTES) if outcome.traceback else outcome.stderr_tail
        return clock.result("failed", reason=reason, stdout_tail=outcome.stdout_tail, stderr_tail=stderr)

    def _result_of(self, value: Any, clock: RunClock) -> SimulationResult:
        """The result for what the function returned: ``"ok"``, or ``"invalid"`` with the reason."""
        if isinstance(value, Mapping):
            outputs, reason = collect_outputs(value, self.output_names, "the returned dict")
        elif len(self.output_names) == 1:
            outputs, reason = collect_outputs({self.output_names[0]: value}, self.output_names, "the return value")
        else:
            outputs, reason = {}, (
                f"the function returned a {type(value).__name__}; with outputs {list(self.output_names)} "
                "it must return a dict {name: value}"
            )
        if reason:
            # The call returned normally: what it returned is unusable (NaN, missing name, wrong type).
            return clock.result("invalid", reason=reason)
        return clock.result("ok", outputs)
