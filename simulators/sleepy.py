"""A cheap function that takes a long, uneven time: for throughput and scheduling tests.

Inputs (dimensionless):

* ``x1``, ``x2`` in [0, 1]

Output:

* ``y`` = sin(3 x1) + cos(2 x2) + x1 x2 (smooth, so any surrogate learns it).

Run time: the call sleeps for a log-normal time with median ``median`` seconds
(default 0.5) and log-standard-deviation ln(``spread``) / (2 x 1.645), so the
5th to 95th percentile of run times spans a factor ``spread`` (default 10).
The duration is drawn from a generator seeded by the inputs: the same point
always takes the same time, as a real simulator would. Durations are clipped
to [median / 20, median x 20].

``median`` and ``spread`` are keyword arguments that a workflow sets through
``simulator.fixed_inputs``; they are not part of the input box.
"""

from __future__ import annotations

import math
import struct
import time
import zlib

import numpy as np

from surrogate_al.space import Dimension, InputSpace

__all__ = ["INPUTS", "OUTPUTS", "run", "duration"]

INPUTS = InputSpace([Dimension("x1", 0.0, 1.0), Dimension("x2", 0.0, 1.0)])
OUTPUTS: tuple[str, ...] = ("y",)

#: z-score of the 95th percentile: a 5-95 % range of ``spread`` needs sigma = ln(spread) / (2 * 1.645).
_Z95 = 1.6448536269514722


def duration(x1: float, x2: float, *, median: float = 0.5, spread: float = 10.0) -> float:
    """The run time (seconds) of the point ``(x1, x2)``."""
    seed = zlib.crc32(struct.pack("<dd", float(x1), float(x2)))
    sigma = math.log(spread) / (2.0 * _Z95)
    value = median * math.exp(sigma * np.random.default_rng(seed).standard_normal())
    return float(min(max(value, median / 20.0), median * 20.0))


def run(*, x1: float, x2: float, median: float = 0.5, spread: float = 10.0) -> dict[str, float]:
    """Sleep for :func:`duration`, then return the smooth output.

    Args:
        x1: coordinate in [0, 1].
        x2: coordinate in [0, 1].
        median: median run time in seconds.
        spread: ratio of the 95th to the 5th percentile of run times.

    Returns:
        ``{"y": value}``.
    """
    time.sleep(duration(x1, x2, median=median, spread=spread))
    return {"y": float(math.sin(3.0 * x1) + math.cos(2.0 * x2) + x1 * x2)}


if __name__ == "__main__":
    from simulators._cli import main

    raise SystemExit(main(INPUTS, OUTPUTS, run))
