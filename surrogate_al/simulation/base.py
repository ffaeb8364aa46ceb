"""The :class:`Simulator` protocol and what the two wrappers share.

A simulator maps named inputs to named scalar outputs. Simulators are shipped
to Dask workers, so they hold plain data only (strings, tuples, dicts, numbers
and the user's callable) and pickle cleanly.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from surrogate_al.errors import SimulatorError
from surrogate_al.simulation.result import SimulationResult
from surrogate_al.simulation.rules import CALLABLE_REF

__all__ = ["NamedSimulator", "Simulator", "callable_name", "check_callable_ref", "resolve_callable"]


@runtime_checkable
class Simulator(Protocol):
    """Anything that runs one simulation for named inputs.

    Implementations never raise for a failed run: exceptions, bad outputs,
    non-zero exits and timeouts come back as a :class:`SimulationResult` with
    status ``"failed"``, ``"timeout"`` or ``"invalid"``. They must be picklable (Dask ships
    them to workers).
    """

    input_names: tuple[str, ...]
    output_names: tuple[str, ...]

    def __call__(self, inputs: Mapping[str, Any], run_id: str | None = None) -> SimulationResult:
        """Run once for ``inputs`` (``{input name: value}``)."""
        ...


class NamedSimulator:
    """Input/output names, fixed inputs and the per-call input check shared by the wrappers."""

    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    fixed_inputs: dict[str, Any]

    def _init_names(
        self, input_names: Sequence[str], output_names: Sequence[str], fixed_inputs: Mapping[str, Any] | None
    ) -> None:
        self.input_names = _check_names(input_names, "input_names")
        self.output_names = _check_names(output_names, "output_names")
        self.fixed_inputs = _check_fixed(fixed_inputs, self.input_names)

    def _merge_inputs(self, inputs: Any) -> tuple[dict[str, Any], str]:
        """``({name: value} incl. fixed inputs, "")`` or ``({}, reason)``."""
        if not isinstance(inputs, Mapping):
            return {}, f"inputs must be a mapping {{name: value}}, got {type(inputs).__name__}"
        missing = [n for n in self.input_names if n not in inputs]
        if missing:
            return {}, f"missing inputs {missing} (expected {list(self.input_names)})"
        fixed = sorted(set(inputs) & set(self.fixed_inputs))
        if fixed:
            return {}, f"inputs {fixed} are fixed_inputs of this simulator; do not pass them per run"
        unknown = sorted(str(k) for k in set(inputs) - set(self.input_names))
        if unknown:
            return {}, f"unknown inputs {unknown} (expected {list(self.input_names)})"
        return {**self.fixed_inputs, **{n: inputs[n] for n in self.input_names}}, ""

    @staticmethod
    def _check_timeout(timeout: Any) -> float | None:
        if timeout is None:
            return None
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise SimulatorError(f"timeout = {timeout!r} must be a positive number of seconds or None")
        return float(timeout)


def _check_names(names: Any, what: str) -> tuple[str, ...]:
    if isinstance(names, str) or not isinstance(names, Sequence):
        raise SimulatorError(f"{what} must be a list of names, got {names!r}; e.g. {what}=['x1', 'x2']")
    out = tuple(names)
    if not out:
        raise SimulatorError(f"{what} is empty; give at least one name")
    for name in out:
        if not isinstance(name, str) or not name.isidentifier():
            raise SimulatorError(
                f"{what}: {name!r} is not a valid identifier; use letters, digits and underscores, "
                "not starting with a digit"
            )
    duplicates = sorted({n for n in out if out.count(n) > 1})
    if duplicates:
        raise SimulatorError(f"{what} has duplicates {duplicates}; every name must be unique")
    return out


def _check_fixed(fixed: Mapping[str, Any] | None, input_names: tuple[str, ...]) -> dict[str, Any]:
    if fixed is None:
        return {}
    if not isinstance(fixed, Mapping):
        raise SimulatorError(f"fixed_inputs must be a mapping {{name: value}}, got {type(fixed).__name__}")
    out = dict(fixed)
    invalid = [name for name in out if not (isinstance(name, str) and name.isidentifier())]
    if invalid:
        raise SimulatorError(f"fixed_inputs: {invalid[0]!r} is not a valid identifier")
    if clash := sorted(set(out) & set(input_names)):
        raise SimulatorError(
            f"fixed_inputs {clash} are also in input_names; an input is either varied by the campaign "
            "or fixed, not both"
        )
    return out


def check_callable_ref(ref: Any, what: str) -> Callable[..., Any] | str:
    """A callable, or a ``"module:function"`` string (checked for its form, not imported).

    Raises:
        SimulatorError: neither a callable nor such a string.
    """
    if isinstance(ref, str):
        if not CALLABLE_REF.match(ref):
            raise SimulatorError(
                f"{what} = {ref!r} is not a 'module:function' reference; e.g. 'mypkg.models:flow_solver'"
            )
        return ref
    if not callable(ref):
        raise SimulatorError(f"{what} must be a callable or a 'module:function' string, got {ref!r}")
    return ref


def resolve_callable(ref: Callable[..., Any] | str) -> Callable[..., Any]:
    """Import a ``"module:qualname"`` reference (lazily, on the worker).

    Raises:
        Exception: whatever importing the module raises (it runs user code);
            TypeError when the name is not callable.
    """
    if not isinstance(ref, str):
        return ref
    module_name, _, qualname = ref.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{ref!r} resolves to a {type(obj).__name__}, which is not callable")
    return obj


def callable_name(ref: Callable[..., Any] | str) -> str:
    """The reference string, or the callable's qualified name, for messages."""
    return ref if isinstance(ref, str) else getattr(ref, "__qualname__", repr(ref))
