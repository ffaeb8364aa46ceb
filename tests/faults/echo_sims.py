"""A simulator whose output names its own input, for the cross-campaign key test.

``y = x1`` exactly, so a stored run whose output differs from its input was
handed another run's result. The gate (a file path) holds every call until
the test creates it: both campaigns' runs are then known to be on the
scheduler at once, the moment equal task keys would make Dask join them.
"""

from __future__ import annotations

import time
from pathlib import Path

__all__ = ["gated_echo"]

#: Seconds a call waits for its gate before it fails (a test that never opens it).
GATE_WAIT = 300.0


def gated_echo(x1: float, x2: float, gate: str) -> dict[str, float]:
    """``{"y": x1}`` once the file ``gate`` exists.

    Args:
        x1: the input the output repeats.
        x2: unused (the box is two-dimensional).
        gate: path of a file whose creation lets the call return.

    Raises:
        TimeoutError: the gate stayed shut for :data:`GATE_WAIT` seconds.
    """
    deadline = time.monotonic() + GATE_WAIT
    while not Path(gate).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {gate} stayed shut for {GATE_WAIT:.0f} s")
        time.sleep(0.02)
    return {"y": x1}
