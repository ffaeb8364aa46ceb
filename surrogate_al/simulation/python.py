"""Simulators that call a Python function in the worker process."""

from __future__ import annotations

import inspect
import logging
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from surrogate_al.errors import SimulatorError
from surrogate_al.simulation.base import NamedSimulator, check_callable_ref, resolve_callable
from surrogate_al.simulation.result import TAIL_BYTES, RunClock, SimulationResult, collect_outputs, exception_reason, tail

__all__ = ["PythonSimulator"]

logger = logging.getLogger(__name__)


class PythonSimulator(NamedSimulator):
    """A simulator that calls a Python function in the worker process.

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
        timeout: seconds. A running Python call cannot be interrupted safely from
            inside its own (Dask worker) thread, so this is checked *after* the
            call returns: a run that took longer gets status ``"timeout"`` and its
            outputs are discarded. Wrap long-running code in a
            :class:`ScriptSimulator` for a hard limit.

    Statuses: an exception (``SystemExit`` included) is ``"failed"``; a return
    value that is unusable (NaN or inf, a missing output name, a list where a
    number belongs) is ``"invalid"``.

    Raises:
        SimulatorError: bad names, a bad function reference, or a callable whose
            signature cannot take the inputs.

    Notes:
        The function's own prints are not captured (redirecting ``sys.stdout``
        is process-wide and unsafe in threaded workers); ``stdout_tail`` is
        empty and ``stderr_tail`` holds the traceback of an exception.
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
        if self.timeout is not None and clock.elapsed() > self.timeout:
            return clock.result(
                "timeout",
                reason=f"took {clock.elapsed():.1f} s, over the timeout of {self.timeout} s "
                "(checked after the call returned)",
            )
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
