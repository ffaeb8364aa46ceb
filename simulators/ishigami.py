"""Ishigami function: a 3-D benchmark with strong nonlinearity and interactions.

Inputs (dimensionless, angles in radians):

* ``x1``, ``x2``, ``x3`` in [-pi, pi]

Output:

* ``y`` = sin(x1) + a sin^2(x2) + b x3^4 sin(x1), with a = 7, b = 0.1.

For independent uniform inputs on the box the mean is a / 2 = 3.5 and the
variance is a^2 / 8 + b pi^4 / 5 + b^2 pi^8 / 18 + 1 / 2 (= 13.8446); ``x3``
acts only through its interaction with ``x1`` (first-order Sobol index 0).
A standard test for sensitivity analysis and for surrogates of functions with
interactions.

Reference: T. Ishigami and T. Homma, "An importance quantification technique in
uncertainty analysis for computer models", Proc. ISUMA '90, 1990, pp. 398-403;
A. Saltelli et al., Sensitivity Analysis in Practice, Wiley, 2004.
"""

from __future__ import annotations

import math

from surrogate_al.space import Dimension, InputSpace

__all__ = ["INPUTS", "OUTPUTS", "run", "A", "B"]

#: The standard coefficients (Ishigami and Homma 1990; Sobol' and Levitan 1999).
A = 7.0
B = 0.1

INPUTS = InputSpace([Dimension(f"x{i}", -math.pi, math.pi) for i in (1, 2, 3)])
OUTPUTS: tuple[str, ...] = ("y",)


def run(*, x1: float, x2: float, x3: float) -> dict[str, float]:
    """Evaluate the Ishigami function with a = 7, b = 0.1.

    Args:
        x1: angle in [-pi, pi].
        x2: angle in [-pi, pi].
        x3: angle in [-pi, pi].

    Returns:
        ``{"y": value}``.
    """
    y = math.sin(x1) + A * math.sin(x2) ** 2 + B * x3**4 * math.sin(x1)
    return {"y": float(y)}


if __name__ == "__main__":
    from simulators._cli import main

    raise SystemExit(main(INPUTS, OUTPUTS, run))
