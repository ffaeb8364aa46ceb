"""Friedman #1 function (noise-free): a 5-D regression benchmark.

Inputs (dimensionless):

* ``x1``, ``x2``, ``x3``, ``x4``, ``x5`` in [0, 1]

Output:

* ``y`` = 10 sin(pi x1 x2) + 20 (x3 - 1/2)^2 + 10 x4 + 5 x5

The original benchmark adds N(0, 1) noise and five irrelevant inputs; this
version is the deterministic core on the five active inputs, so a surrogate's
error can be measured exactly. It mixes an interaction (x1 x2), a quadratic
(x3) and linear terms (x4, x5).

Reference: J. H. Friedman, "Multivariate adaptive regression splines", The
Annals of Statistics 19(1), 1991, pp. 1-67.
"""

from __future__ import annotations

import math

from surrogate_al.space import Dimension, InputSpace

__all__ = ["INPUTS", "OUTPUTS", "run"]

INPUTS = InputSpace([Dimension(f"x{j}", 0.0, 1.0) for j in range(1, 6)])
OUTPUTS: tuple[str, ...] = ("y",)


def run(*, x1: float, x2: float, x3: float, x4: float, x5: float) -> dict[str, float]:
    """Evaluate the noise-free Friedman #1 function.

    Args:
        x1: coordinate in [0, 1].
        x2: coordinate in [0, 1].
        x3: coordinate in [0, 1].
        x4: coordinate in [0, 1].
        x5: coordinate in [0, 1].

    Returns:
        ``{"y": value}``.
    """
    y = 10.0 * math.sin(math.pi * x1 * x2) + 20.0 * (x3 - 0.5) ** 2 + 10.0 * x4 + 5.0 * x5
    return {"y": float(y)}


if __name__ == "__main__":
    from simulators._cli import main

    raise SystemExit(main(INPUTS, OUTPUTS, run))
