"""A smooth 2-D surface with one narrow Gaussian peak off-centre.

Inputs (dimensionless):

* ``x1``, ``x2`` in [0, 1]

Output:

* ``y`` = b(x) + H exp(-|x - c|^2 / (2 w^2)), with the smooth background
  b(x) = sin(1.2 pi x1) cos(0.8 pi x2) (amplitude 1, wavelengths ~1.7 and 2.5 box
  widths), peak height H = 5, centre c = (0.73, 0.29) and width (standard
  deviation) w = 0.025.

The feature: the peak rises above 10 % of its height only within a radius
w sqrt(2 ln 10) = 0.054 of c, a disc of area 0.0091, i.e. 0.9 % of the box. A
uniform or space-filling design of n points therefore puts about n / 110 points
on it (64 points: most likely none), and a surrogate trained on them sees a
smooth function of amplitude 1 and misses a peak five times taller. An adaptive
design that follows the surrogate's uncertainty or the observed variation
should find it and spend runs there. Use it to show where active learning pays.

Reference: a constructed test in the spirit of the localized-feature functions
used for adaptive sampling, e.g. the exponential-peak functions of S. Mo et
al., "A Taylor expansion-based adaptive design strategy for global surrogate
modeling with applications in groundwater modeling", Water Resources Research
53, 2017; the Gaussian peak of A. Genz, "Testing multidimensional integration
routines", in Tools, Methods and Languages for Scientific and Engineering
Computation, 1984.
"""

from __future__ import annotations

import math

from surrogate_al.space import Dimension, InputSpace

__all__ = ["INPUTS", "OUTPUTS", "run", "CENTER", "WIDTH", "HEIGHT"]

INPUTS = InputSpace([Dimension("x1", 0.0, 1.0), Dimension("x2", 0.0, 1.0)])
OUTPUTS: tuple[str, ...] = ("y",)

#: Centre of the peak; off-centre and off the diagonals, so designs symmetric about the middle miss it too.
CENTER: tuple[float, float] = (0.73, 0.29)
#: Standard deviation of the Gaussian peak (same in both directions).
WIDTH = 0.025
#: Height of the peak above the background.
HEIGHT = 5.0


def run(*, x1: float, x2: float) -> dict[str, float]:
    """Evaluate the background plus the narrow peak.

    Args:
        x1: coordinate in [0, 1].
        x2: coordinate in [0, 1].

    Returns:
        ``{"y": value}``.
    """
    background = math.sin(1.2 * math.pi * x1) * math.cos(0.8 * math.pi * x2)
    r2 = (x1 - CENTER[0]) ** 2 + (x2 - CENTER[1]) ** 2
    return {"y": float(background + HEIGHT * math.exp(-r2 / (2.0 * WIDTH**2)))}


if __name__ == "__main__":
    from simulators._cli import main

    raise SystemExit(main(INPUTS, OUTPUTS, run))
