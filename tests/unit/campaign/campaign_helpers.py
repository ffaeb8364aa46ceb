"""Simulator functions for the campaign tests (imported by name, as a workflow would).

``branin`` and ``flaky`` are the fault-injection suite's (``faults.fault_sims``).
"""

from __future__ import annotations

from faults.fault_sims import branin, flaky

__all__ = ["always_fails", "branin", "fails_in_corner", "flaky"]


def always_fails(x1: float, x2: float) -> dict[str, float]:
    """A broken simulator."""
    raise ValueError("solver diverged")


def fails_in_corner(x1: float, x2: float) -> dict[str, float]:
    """Crashes where both inputs are in the top third of their range."""
    if x1 > 5.0 and x2 > 10.0:
        raise RuntimeError("mesh generation failed")
    return branin(x1, x2)
