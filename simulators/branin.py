"""Branin (Branin-Hoo) function: a 2-D benchmark with three global minima.

Inputs (dimensionless):

* ``x1`` in [-5, 10]
* ``x2`` in [0, 15]

Output:

* ``y`` = a (x2 - b x1^2 + c x1 - r)^2 + s (1 - t) cos(x1) + s,
  with a = 1, b = 5.1 / (4 pi^2), c = 5 / pi, r = 6, s = 10, t = 1 / (8 pi).

The global minimum y* = 0.397887 is reached at (-pi, 12.275), (pi, 2.275)
and (9.42478, 2.475). Smooth and cheap; the classic first test of a surrogate.

Reference: L. C. W. Dixon and G. P. Szegö, "The global optimisation problem: an
introduction", in Towards Global Optimisation 2, North-Holland, 1978; S.
Surjanovic and D. Bingham, Virtual Library of Simulation Experiments,
https://www.sfu.ca/~ssurjano/branin.html.
"""

from __future__ import annotations

import math

from surrogate_al.space import Dimension, InputSpace

__all__ = ["INPUTS", "OUTPUTS", "run"]

INPUTS = InputSpace([Dimension("x1", -5.0, 10.0), Dimension("x2", 0.0, 15.0)])
OUTPUTS: tuple[str, ...] = ("y",)

_A = 1.0
_B = 5.1 / (4.0 * math.pi**2)
_C = 5.0 / math.pi
_R = 6.0
_S = 10.0
_T = 1.0 / (8.0 * math.pi)


def run(*, x1: float, x2: float) -> dict[str, float]:
    """Evaluate the Branin function.

    Args:
        x1: first coordinate, in [-5, 10].
        x2: second coordinate, in [0, 15].

    Returns:
        ``{"y": value}``.
    """
    y = _A * (x2 - _B * x1**2 + _C * x1 - _R) ** 2 + _S * (1.0 - _T) * math.cos(x1) + _S
    return {"y": float(y)}


if __name__ == "__main__":
    from simulators._cli import main

    raise SystemExit(main(INPUTS, OUTPUTS, run))
