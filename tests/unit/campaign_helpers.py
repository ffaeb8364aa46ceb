"""Simulator functions for the campaign tests (imported by name, as a workflow would)."""

from __future__ import annotations

import json
import math
from pathlib import Path


def branin(x1: float, x2: float) -> dict[str, float]:
    """Branin-Hoo."""
    a, b, c, r, s, t = 1.0, 5.1 / (4 * math.pi**2), 5 / math.pi, 6.0, 10.0, 1 / (8 * math.pi)
    return {"y": a * (x2 - b * x1**2 + c * x1 - r) ** 2 + s * (1 - t) * math.cos(x1) + s}


def flaky(x1: float, x2: float, counter_dir: str, failures: float) -> dict[str, float]:
    """Fail the first ``failures`` calls at each point, then succeed (state in files)."""
    path = Path(counter_dir) / f"{x1!r}_{x2!r}.json"
    calls = json.loads(path.read_text()) if path.exists() else 0
    path.write_text(json.dumps(calls + 1))
    if calls < failures:
        raise RuntimeError(f"transient failure {calls + 1}")
    return branin(x1, x2)


def always_fails(x1: float, x2: float) -> dict[str, float]:
    """A broken simulator."""
    raise ValueError("solver diverged")


def fails_in_corner(x1: float, x2: float) -> dict[str, float]:
    """Crashes where both inputs are in the top third of their range."""
    if x1 > 5.0 and x2 > 10.0:
        raise RuntimeError("mesh generation failed")
    return branin(x1, x2)
