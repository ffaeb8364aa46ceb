"""Argument checks and the failure type shared by the physics solvers.

A non-physical input (a negative viscosity, a zero time) makes a solver fail
with a clear :class:`~surrogate_al.errors.DataError` naming the input, instead
of returning NaNs or running forever; a numerical failure raises
:class:`SolverError`. Wrapped in a PythonSimulator either becomes a failed run
with the message as its reason (failed runs are data, not crashes).
"""

from __future__ import annotations

import math

from surrogate_al.errors import DataError, SurrogateALError

__all__ = ["SolverError", "positive", "finite", "resolution"]


class SolverError(SurrogateALError, RuntimeError):
    """A physics solver could not produce a valid result (divergence, no ignition found)."""


def finite(name: str, value: float) -> float:
    """``value`` as a float, or a DataError if it is not a finite number."""
    if isinstance(value, bool):
        raise DataError(f"{name} = {value!r} is a bool; expected a finite number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{name} = {value!r} is not a number") from None
    if not math.isfinite(number):
        raise DataError(f"{name} = {value!r} must be a finite number")
    return number


def positive(name: str, value: float) -> float:
    """``value`` as a float, or a DataError if it is not a finite number > 0."""
    number = finite(name, value)
    if number <= 0.0:
        raise DataError(f"{name} = {value!r} must be > 0")
    return number


def resolution(name: str, value: int, minimum: int, *, even: bool = False) -> int:
    """A grid size: an int >= ``minimum`` (and even when asked), or a DataError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or (even and value % 2):
        parity = "an even " if even else "an "
        raise DataError(f"{name} = {value!r} must be {parity}integer >= {minimum}")
    return value
