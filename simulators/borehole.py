"""Borehole function: water flow through a borehole between two aquifers (8-D).

Inputs (the ranges used for metamodelling since Morris et al. 1993):

* ``rw`` in [0.05, 0.15] m: radius of the borehole
* ``r`` in [100, 50000] m: radius of influence
* ``Tu`` in [63070, 115600] m^2/yr: transmissivity of the upper aquifer
* ``Hu`` in [990, 1110] m: potentiometric head of the upper aquifer
* ``Tl`` in [63.1, 116] m^2/yr: transmissivity of the lower aquifer
* ``Hl`` in [700, 820] m: potentiometric head of the lower aquifer
* ``L`` in [1120, 1680] m: length of the borehole
* ``Kw`` in [9855, 12045] m/yr: hydraulic conductivity of the borehole

Output:

* ``flow_rate`` (m^3/yr) = 2 pi Tu (Hu - Hl) /
  ( ln(r/rw) [1 + 2 L Tu / (ln(r/rw) rw^2 Kw) + Tu / Tl] )

Steady, laminar, isothermal flow from the upper aquifer through the borehole
into the lower one (Darcy flow, no flow across the aquitard). The flow rate is
proportional to the head difference ``Hu - Hl`` and dominated by ``rw``.

Reference: W. V. Harper and S. K. Gupta, "Sensitivity/uncertainty analysis of
a borehole scenario comparing Latin hypercube sampling and deterministic
sensitivity approaches", Office of Nuclear Waste Isolation, BMI/ONWI-516, 1983;
M. D. Morris, T. J. Mitchell and D. Ylvisaker, "Bayesian design and analysis
of computer experiments: use of derivatives in surface prediction",
Technometrics 35(3), 1993, pp. 243-255.
"""

from __future__ import annotations

import math

from surrogate_al.space import Dimension, InputSpace

__all__ = ["INPUTS", "OUTPUTS", "run"]

INPUTS = InputSpace(
    [
        Dimension("rw", 0.05, 0.15),
        Dimension("r", 100.0, 50000.0),
        Dimension("Tu", 63070.0, 115600.0),
        Dimension("Hu", 990.0, 1110.0),
        Dimension("Tl", 63.1, 116.0),
        Dimension("Hl", 700.0, 820.0),
        Dimension("L", 1120.0, 1680.0),
        Dimension("Kw", 9855.0, 12045.0),
    ]
)
OUTPUTS: tuple[str, ...] = ("flow_rate",)


def run(
    *, rw: float, r: float, Tu: float, Hu: float, Tl: float, Hl: float, L: float, Kw: float  # noqa: N803
) -> dict[str, float]:
    """Evaluate the borehole flow rate.

    Args:
        rw: radius of the borehole (m).
        r: radius of influence (m), larger than ``rw``.
        Tu: transmissivity of the upper aquifer (m^2/yr).
        Hu: potentiometric head of the upper aquifer (m).
        Tl: transmissivity of the lower aquifer (m^2/yr).
        Hl: potentiometric head of the lower aquifer (m).
        L: length of the borehole (m).
        Kw: hydraulic conductivity of the borehole (m/yr).

    Returns:
        ``{"flow_rate": value}`` in m^3/yr.
    """
    log_ratio = math.log(r / rw)
    denominator = log_ratio * (1.0 + 2.0 * L * Tu / (log_ratio * rw**2 * Kw) + Tu / Tl)
    return {"flow_rate": float(2.0 * math.pi * Tu * (Hu - Hl) / denominator)}


if __name__ == "__main__":
    from simulators._cli import main

    raise SystemExit(main(INPUTS, OUTPUTS, run))
