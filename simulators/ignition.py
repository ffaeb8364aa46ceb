"""Thermal explosion: ignition of a fuel in an adiabatic batch reactor.

A homogeneous, adiabatic, constant-volume reactor holds a fuel that burns by a
single irreversible first-order Arrhenius reaction (fuel -> products). With Y
the fuel mass fraction (Y(0) = 1) and T the temperature (T(0) = T0):

    dY/dt = -w,    dT/dt = dT_ad w,    w = A Y exp(-E / (R T))

where dT_ad is the adiabatic temperature rise (heat of reaction over heat
capacity; T + dT_ad Y is conserved). The mixture first heats up slowly, then
runs away: the reaction rate grows like exp(-E/RT) as it heats, so after an
induction period the temperature jumps by dT_ad in a time shorter by the
factor ~ R T0^2 / (E dT_ad) (Semenov / Frank-Kamenetskii theory). The induction
period, the ignition delay, is roughly
tau ~ (R T0^2 / E) / (dT_ad A exp(-E / (R T0))).

The ratio of the fast (runaway) to the slow (induction) time scales makes the
system stiff; it is solved with ``scipy.integrate.solve_ivp(method="BDF")``,
the analytic Jacobian and tight tolerances (rtol 1e-10, so the numerical noise
in the outputs, ~1e-8 relative, is far below anything a surrogate resolves). A
run takes about 0.1-0.17 s of CPU; tightening rtol to 1e-12 changes the outputs
by < 1e-7 relative.

Inputs:

* ``t0`` in [900, 1500] K: initial temperature
* ``activation_energy`` E in [120, 180] kJ/mol
* ``heat_release`` dT_ad in [500, 2500] K: adiabatic temperature rise
* ``pre_exponential`` A in [1e9, 1e11] 1/s, log scale
* ``residence_time`` in [1e-5, 1e-1] s, log scale: when the reactor is
  sampled (the time the mixture spends in a flow reactor)

Outputs:

* ``log10_ignition_delay``: log10 of the ignition delay in s, the time at
  which T has risen by half of dT_ad (the steepest part of the runaway; the
  time of the maximum heating rate differs by a fraction of a percent). About
  -8 to +0.5 over the box.
* ``final_temperature`` (K): T at ``residence_time``. Near T0 when the
  mixture has not ignited yet, near T0 + dT_ad when it has: a sharp front in
  the input space along delay = residence time.

Reference: N. N. Semenov, Chemical Kinetics and Chain Reactions, Oxford, 1935;
D. A. Frank-Kamenetskii, Diffusion and Heat Transfer in Chemical Kinetics,
Plenum, 1969; F. A. Williams, Combustion Theory, 2nd ed., Addison-Wesley,
1985, ch. 9; solver: L. F. Shampine and M. W. Reichelt, "The MATLAB ODE
suite", SIAM J. Sci. Comput. 18(1), 1997 (variable-order BDF/NDF).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.integrate import solve_ivp

from simulators import _checks
from simulators._checks import SolverError
from surrogate_al.space import Dimension, InputSpace

__all__ = ["INPUTS", "OUTPUTS", "run", "solve", "IgnitionSolution", "GAS_CONSTANT", "RTOL"]

logger = logging.getLogger(__name__)

INPUTS = InputSpace(
    [
        Dimension("t0", 900.0, 1500.0),
        Dimension("activation_energy", 120.0, 180.0),
        Dimension("heat_release", 500.0, 2500.0),
        Dimension("pre_exponential", 1e9, 1e11, scale="log"),
        Dimension("residence_time", 1e-5, 1e-1, scale="log"),
    ]
)
OUTPUTS: tuple[str, ...] = ("log10_ignition_delay", "final_temperature")

#: Molar gas constant, J/(mol K).
GAS_CONSTANT = 8.314462618
#: Default relative tolerance of the BDF integration.
RTOL = 1e-10
# The integration runs to this multiple of the Frank-Kamenetskii estimate of the
# delay (which the true delay exceeds by ~25 % in the box): far enough to see the
# ignition for any inputs where the estimate is meaningful.
_HORIZON = 100.0


@dataclass(frozen=True)
class IgnitionSolution:
    """The integrated trajectory and the quantities derived from it.

    Attributes:
        t: accepted solver times, shape ``m``.
        y: fuel mass fraction and temperature at those times, ``2 x m``.
        ignition_delay: time at which T = T0 + dT_ad / 2 (s).
        delay_estimate: Frank-Kamenetskii estimate of the delay (s).
        n_steps: accepted steps.
        outputs: ``{"log10_ignition_delay", "final_temperature"}``.
    """

    t: NDArray[np.float64]
    y: NDArray[np.float64]
    ignition_delay: float
    delay_estimate: float
    n_steps: int
    outputs: dict[str, float]


def solve(
    t0: float,
    activation_energy: float,
    heat_release: float,
    pre_exponential: float,
    residence_time: float,
    *,
    rtol: float = RTOL,
) -> IgnitionSolution:
    """Integrate the thermal-explosion model through ignition and to the residence time.

    Args:
        t0: initial temperature (K), > 0.
        activation_energy: activation energy (kJ/mol), > 0.
        heat_release: adiabatic temperature rise (K), > 0.
        pre_exponential: pre-exponential factor (1/s), > 0.
        residence_time: sampling time (s), > 0.
        rtol: relative tolerance of the BDF integration (the accuracy knob; not
            a physical input). The absolute tolerances scale with it.

    Returns:
        The trajectory and the outputs.

    Raises:
        DataError: an input that is not a finite positive number.
        SolverError: the integrator failed or no ignition was found within
            100 times the estimated delay.
    """
    t0 = _checks.positive("t0", t0)
    energy = _checks.positive("activation_energy", activation_energy) * 1e3 / GAS_CONSTANT  # E/R in K
    rise = _checks.positive("heat_release", heat_release)
    a = _checks.positive("pre_exponential", pre_exponential)
    t_res = _checks.positive("residence_time", residence_time)
    rtol = _checks.positive("rtol", rtol)

    def rhs(_: float, state: NDArray[np.float64]) -> NDArray[np.float64]:
        fuel, temp = state
        # Round-off can push Y a hair below zero after the fuel is gone; no reaction then.
        rate = a * max(fuel, 0.0) * math.exp(-energy / temp)
        return np.array([-rate, rise * rate])

    def jacobian(_: float, state: NDArray[np.float64]) -> NDArray[np.float64]:
        fuel, temp = state
        k = a * math.exp(-energy / temp)
        dk_dtemp = k * energy / temp**2
        dw_dfuel = k if fuel > 0.0 else 0.0
        dw_dtemp = max(fuel, 0.0) * dk_dtemp
        return np.array([[-dw_dfuel, -dw_dtemp], [rise * dw_dfuel, rise * dw_dtemp]])

    half_rise = t0 + 0.5 * rise

    def ignited(_: float, state: NDArray[np.float64]) -> float:
        return float(state[1] - half_rise)

    ignited.direction = 1  # type: ignore[attr-defined]

    estimate = (t0**2 / energy) / (rise * a * math.exp(-energy / t0))
    t_end = max(t_res, _HORIZON * estimate)
    sol = solve_ivp(
        rhs,
        (0.0, t_end),
        np.array([1.0, t0]),
        method="BDF",
        jac=jacobian,
        rtol=rtol,
        # Y is O(1) and T is O(1000 K): absolute floors scaled to each.
        atol=np.array([1e-4, 1e-1]) * rtol,
        events=ignited,
        dense_output=True,
    )
    if sol.status < 0:
        raise SolverError(f"ignition: the BDF integration failed: {sol.message}")
    if len(sol.t_events[0]) == 0:
        raise SolverError(
            f"ignition: no ignition within {t_end:.3g} s ({_HORIZON:g} x the estimated delay {estimate:.3g} s); "
            "the inputs are far outside the box the model was sized for"
        )
    delay = float(sol.t_events[0][0])
    final_temperature = float(sol.sol(t_res)[1])
    outputs = {"log10_ignition_delay": math.log10(delay), "final_temperature": final_temperature}
    logger.debug(
        "ignition: delay %.4g s (estimate %.4g s), %d steps, %d rhs calls", delay, estimate, sol.t.size - 1, sol.nfev
    )
    return IgnitionSolution(
        t=np.asarray(sol.t),
        y=np.asarray(sol.y),
        ignition_delay=delay,
        delay_estimate=estimate,
        n_steps=int(sol.t.size) - 1,
        outputs=outputs,
    )


def run(
    *,
    t0: float,
    activation_energy: float,
    heat_release: float,
    pre_exponential: float,
    residence_time: float,
) -> dict[str, float]:
    """Run the ignition model at the default tolerance.

    Args:
        t0: initial temperature, in [900, 1500] K.
        activation_energy: in [120, 180] kJ/mol.
        heat_release: adiabatic temperature rise, in [500, 2500] K.
        pre_exponential: in [1e9, 1e11] 1/s.
        residence_time: in [1e-5, 1e-1] s.

    Returns:
        ``{"log10_ignition_delay", "final_temperature"}``.
    """
    return solve(t0, activation_energy, heat_release, pre_exponential, residence_time).outputs


if __name__ == "__main__":
    from simulators._cli import main

    raise SystemExit(main(INPUTS, OUTPUTS, run))
