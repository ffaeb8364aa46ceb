"""A simulator that holds its runs while a file exists, imported by name on Dask workers.

Workflows name it ``"hold_sims:held_branin"`` with ``fixed_inputs = { hold = "<path>" }``;
the tests put this directory on the driver's ``PYTHONPATH`` (``helpers.driver_env``),
which its LocalCluster workers inherit. A test keeps a real driver busy, with
its cluster up and its store locked, for exactly as long as it needs, then lets
it finish normally by deleting the file.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

__all__ = ["MAX_HOLD_S", "held_branin"]

#: A forgotten hold file must not keep a worker busy forever.
MAX_HOLD_S = 300.0


def held_branin(x1: float, x2: float, hold: str) -> dict[str, float]:
    """Branin-Hoo, returned once the file ``hold`` is gone (or after :data:`MAX_HOLD_S`).

    Each call first touches ``<hold>.started-<pid>`` so a test can see that a
    worker process is running a simulation.

    Args:
        x1: in [-5, 10].
        x2: in [0, 15].
        hold: path of the hold file.

    Returns:
        ``{"y": value}``.
    """
    Path(f"{hold}.started-{os.getpid()}").touch()
    deadline = time.monotonic() + MAX_HOLD_S
    while os.path.exists(hold) and time.monotonic() < deadline:
        time.sleep(0.05)
    a, b, c, r, s, t = 1.0, 5.1 / (4 * math.pi**2), 5 / math.pi, 6.0, 10.0, 1 / (8 * math.pi)
    return {"y": a * (x2 - b * x1**2 + c * x1 - r) ** 2 + s * (1 - t) * math.cos(x1) + s}
