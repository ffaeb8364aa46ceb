"""Hartmann 6-D function: a multimodal benchmark on the unit hypercube.

Inputs (dimensionless):

* ``x1``, ``x2``, ``x3``, ``x4``, ``x5``, ``x6`` in [0, 1]

Output:

* ``y`` = -sum_{i=1..4} alpha_i exp(-sum_{j=1..6} A_ij (x_j - P_ij)^2)

with the standard constants ``alpha``, ``A`` and ``P`` below. It has six local
minima; the global minimum y* = -3.32237 is at
x* = (0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573).

Reference: L. C. W. Dixon and G. P. Szegö (eds.), Towards Global Optimisation 2,
North-Holland, 1978; S. Surjanovic and D. Bingham, Virtual Library of
Simulation Experiments, https://www.sfu.ca/~ssurjano/hart6.html.
"""

from __future__ import annotations

import numpy as np

from surrogate_al.space import Dimension, InputSpace

__all__ = ["INPUTS", "OUTPUTS", "run", "X_STAR", "Y_STAR"]

INPUTS = InputSpace([Dimension(f"x{j}", 0.0, 1.0) for j in range(1, 7)])
OUTPUTS: tuple[str, ...] = ("y",)

#: Location and value of the global minimum (to the precision usually quoted).
X_STAR: tuple[float, ...] = (0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573)
Y_STAR = -3.32237

_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_A = np.array(
    [
        [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
        [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
        [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
        [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
    ]
)
_P = 1e-4 * np.array(
    [
        [1312.0, 1696.0, 5569.0, 124.0, 8283.0, 5886.0],
        [2329.0, 4135.0, 8307.0, 3736.0, 1004.0, 9991.0],
        [2348.0, 1451.0, 3522.0, 2883.0, 3047.0, 6650.0],
        [4047.0, 8828.0, 8732.0, 5743.0, 1091.0, 381.0],
    ]
)


def run(*, x1: float, x2: float, x3: float, x4: float, x5: float, x6: float) -> dict[str, float]:
    """Evaluate the Hartmann 6-D function.

    Args:
        x1: coordinate in [0, 1].
        x2: coordinate in [0, 1].
        x3: coordinate in [0, 1].
        x4: coordinate in [0, 1].
        x5: coordinate in [0, 1].
        x6: coordinate in [0, 1].

    Returns:
        ``{"y": value}``.
    """
    x = np.array([x1, x2, x3, x4, x5, x6], dtype=float)
    inner = np.sum(_A * (x - _P) ** 2, axis=1)
    return {"y": float(-np.sum(_ALPHA * np.exp(-inner)))}


if __name__ == "__main__":
    from simulators._cli import main

    raise SystemExit(main(INPUTS, OUTPUTS, run))
