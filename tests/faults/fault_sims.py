"""Simulator functions for the fault-injection suite, imported by name on Dask workers.

Workflows name them ``"fault_sims:<function>"``; the tests put this directory on
``PYTHONPATH`` of the driver, whose LocalCluster workers inherit it. Any state
a simulator keeps across calls lives in files, because consecutive attempts
at one point may run in different worker processes.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

__all__ = ["branin", "corner_fails", "flaky", "gated_branin", "mostly_fails", "slow_branin"]

#: Environment variables of :func:`gated_branin` (set for one driver, not for its resume).
GATE_DIR_ENV = "FAULTS_GATE_DIR"
GATE_AFTER_ENV = "FAULTS_GATE_AFTER"


def branin(x1: float, x2: float) -> dict[str, float]:
    """Branin-Hoo, the same formula as ``simulators.branin``.

    Args:
        x1: in [-5, 10].
        x2: in [0, 15].

    Returns:
        ``{"y": value}``.
    """
    a, b, c, r, s, t = 1.0, 5.1 / (4 * math.pi**2), 5 / math.pi, 6.0, 10.0, 1 / (8 * math.pi)
    return {"y": a * (x2 - b * x1**2 + c * x1 - r) ** 2 + s * (1 - t) * math.cos(x1) + s}


def _claim_call_number(directory: Path) -> int:
    """A process-safe 0-based call counter: the first free ``call-<i>`` name, created with O_EXCL."""
    i = 0
    while True:
        try:
            fd = os.open(directory / f"call-{i}", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            i += 1
            continue
        os.close(fd)
        return i


def gated_branin(x1: float, x2: float) -> dict[str, float]:
    """Branin, except that calls past a count block forever while the gate is armed.

    With ``FAULTS_GATE_DIR`` and ``FAULTS_GATE_AFTER=N`` in the environment,
    calls number ``N, N+1, ...`` (0-based, counted across all worker
    processes) sleep until the process is killed. The driver then holds
    exactly ``N`` results (when no run fails or is retried) and sits waiting
    for the next batch: the moment a test kills it. Without the variables it
    is :func:`branin`, so the resumed driver and a reference run compute the
    same values.
    """
    gate = os.environ.get(GATE_DIR_ENV)
    if gate:
        n = _claim_call_number(Path(gate))
        if n >= int(os.environ[GATE_AFTER_ENV]):
            (Path(gate) / f"blocked-{n}").touch()
            while True:  # killed with the driver's process group
                time.sleep(1.0)
    return branin(x1, x2)


def slow_branin(x1: float, x2: float, delay: float) -> dict[str, float]:
    """Branin after ``delay`` seconds: keeps a driver writing at a steady, bounded rate."""
    time.sleep(delay)
    return branin(x1, x2)


def flaky(x1: float, x2: float, counter_dir: str, failures: float) -> dict[str, float]:
    """Fail the first ``failures`` calls at each point, then succeed.

    The count is kept in a file keyed by the inputs' exact ``repr``, so a retry
    on another worker process sees the earlier attempts.
    """
    path = Path(counter_dir) / f"{x1!r}_{x2!r}.json"
    calls = json.loads(path.read_text()) if path.exists() else 0
    path.write_text(json.dumps(calls + 1))
    if calls < failures:
        raise RuntimeError(f"transient failure {calls + 1}")
    return branin(x1, x2)


def mostly_fails(x1: float, x2: float, fixed_flag: str) -> dict[str, float]:
    """A broken solver: fails for x1 > -2 (80 % of the box) until the file ``fixed_flag`` exists."""
    if x1 > -2.0 and not Path(fixed_flag).exists():
        raise ValueError("solver diverged")
    return branin(x1, x2)


def corner_fails(x1: float, x2: float) -> dict[str, float]:
    """A smooth function on the unit square that crashes in the corner x1 > 0.5 and x2 > 0.5."""
    if x1 > 0.5 and x2 > 0.5:
        raise RuntimeError("mesh generation failed")
    return {"y": math.sin(3.0 * x1) + math.cos(2.0 * x2) + x1 * x2}
