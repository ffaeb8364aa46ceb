"""Physics solvers: finite over their box, physically right trends, conservation, grid convergence."""

from __future__ import annotations

import math
from types import ModuleType

import numpy as np
import pytest

from simulators import SolverError, burgers, heat2d, ignition
from surrogate_al.errors import DataError, SurrogateALError

SOLVERS = (burgers, heat2d, ignition)


@pytest.mark.parametrize("module", SOLVERS, ids=lambda m: m.__name__)
def test_outputs_are_finite_over_sobol_points_of_the_box(module: ModuleType) -> None:
    for record in module.INPUTS.to_records(module.INPUTS.design("sobol", 4, seed=7)):
        out = module.run(**record)
        assert set(out) == set(module.OUTPUTS)
        assert all(isinstance(v, float) and math.isfinite(v) for v in out.values()), (record, out)


# -- Burgers -----------------------------------------------------------------------------
BURGERS_STEEP = {"amplitude": 1.4, "viscosity": 0.012, "asymmetry": 0.2, "t_final": 2.0}


def test_burgers_more_viscosity_gives_a_less_steep_front() -> None:
    base = {"amplitude": 1.0, "asymmetry": 0.1, "t_final": 2.0}
    gradients = [burgers.run(viscosity=nu, **base)["max_gradient"] for nu in (0.015, 0.03, 0.08)]
    assert gradients[0] > gradients[1] > gradients[2]
    # A formed viscous front is ~ (jump)^2 / (8 nu) steep: far steeper than the initial slope ~ A.
    assert gradients[0] > 10 * base["amplitude"]


def test_burgers_front_position_depends_on_the_inputs() -> None:
    symmetric = burgers.run(amplitude=1.0, viscosity=0.02, asymmetry=0.0, t_final=2.0)
    # With s = 0 the wave is odd about x = pi, so the front sits exactly there.
    assert symmetric["shock_position"] == pytest.approx(math.pi, abs=1e-9)
    skewed = burgers.run(amplitude=1.0, viscosity=0.02, asymmetry=0.2, t_final=2.0)
    later = burgers.run(amplitude=1.0, viscosity=0.02, asymmetry=0.2, t_final=3.0)
    assert abs(skewed["shock_position"] - math.pi) > 0.05
    assert abs(later["shock_position"] - skewed["shock_position"]) > 0.01  # the front drifts


def test_burgers_conserves_mass_and_dissipates_energy() -> None:
    sol = burgers.solve(**BURGERS_STEEP)
    dx = sol.x[1] - sol.x[0]
    assert abs(np.sum(sol.u) * dx) < 1e-10  # the initial wave has zero mean; the scheme conserves it
    initial_energy = 0.5 * np.sum(sol.u0**2) * dx
    assert 0.0 < sol.outputs["energy"] < initial_energy
    assert np.max(np.abs(sol.u)) <= np.max(np.abs(sol.u0))  # maximum principle


def test_burgers_grid_refinement_changes_outputs_by_less_than_a_few_percent() -> None:
    coarse = burgers.solve(**BURGERS_STEEP).outputs
    fine = burgers.solve(**BURGERS_STEEP, n_points=2 * burgers.N_POINTS).outputs
    assert coarse["max_gradient"] == pytest.approx(fine["max_gradient"], rel=0.03)
    assert coarse["shock_position"] == pytest.approx(fine["shock_position"], abs=1e-3)
    assert coarse["energy"] == pytest.approx(fine["energy"], rel=1e-3)


def test_burgers_rejects_non_physical_inputs() -> None:
    with pytest.raises(DataError, match="viscosity = 0.0 must be > 0"):
        burgers.run(amplitude=1.0, viscosity=0.0, asymmetry=0.1, t_final=1.0)
    with pytest.raises(DataError, match="n_points"):
        burgers.solve(1.0, 0.02, 0.1, 1.0, n_points=8)


# -- heat2d ------------------------------------------------------------------------------
HEAT = {"k_sw": 0.3, "k_se": 2.0, "k_nw": 5.0, "k_ne": 0.8, "source": 400.0, "t_left": 350.0}


def test_heat2d_higher_conductivity_gives_lower_max_temperature() -> None:
    t_max = []
    for factor in (1.0, 3.0, 9.0):
        scaled = {**HEAT, **{k: HEAT[k] * factor for k in ("k_sw", "k_se", "k_nw", "k_ne")}}
        t_max.append(heat2d.run(**scaled)["t_max"])
    assert t_max[0] > t_max[1] > t_max[2] >= HEAT["t_left"]
    # Raising one quadrant's conductivity alone also cools the plate.
    assert heat2d.run(**{**HEAT, "k_sw": 3.0})["t_max"] < t_max[0]


def test_heat2d_energy_balance_and_maximum_principle() -> None:
    sol = heat2d.solve(**HEAT)
    # Steady state: heat out through the right edge = heat in through the left + the source over 1 m^2.
    assert sol.heat_out_right - sol.heat_in_left == pytest.approx(HEAT["source"], rel=1e-9)
    assert sol.outputs["heat_flux_right"] == sol.heat_out_right
    no_source = heat2d.run(**{**HEAT, "source": 0.0})
    assert no_source["t_max"] == pytest.approx(HEAT["t_left"], abs=1e-9)  # max on the boundary


def test_heat2d_uniform_plate_matches_the_exact_1d_solution() -> None:
    k, q, t_left = 2.0, 300.0, 380.0
    sol = heat2d.solve(k, k, k, k, q, t_left, n_cells=50)
    x = sol.x
    exact = t_left + (heat2d.T_RIGHT - t_left) * x + q * x * (1.0 - x) / (2.0 * k)
    assert np.max(np.abs(sol.temperature - exact[:, None])) < 1e-3 * (exact.max() - exact.min())
    # Insulated top and bottom: no variation along y.
    assert np.max(np.ptp(sol.temperature, axis=1)) < 1e-9


def test_heat2d_grid_refinement_changes_outputs_by_less_than_a_few_percent() -> None:
    coarse = heat2d.solve(**HEAT).outputs
    fine = heat2d.solve(**HEAT, n_cells=2 * heat2d.N_CELLS).outputs
    for name in heat2d.OUTPUTS:
        assert coarse[name] == pytest.approx(fine[name], rel=0.01), name


def test_heat2d_rejects_a_bad_grid() -> None:
    with pytest.raises(DataError, match="n_cells = 51 must be an even integer"):
        heat2d.solve(**HEAT, n_cells=51)


# -- ignition ----------------------------------------------------------------------------
IGNITION = {
    "t0": 1100.0,
    "activation_energy": 150.0,
    "heat_release": 1500.0,
    "pre_exponential": 1e10,
    "residence_time": 1e-2,
}


def test_ignition_hotter_start_ignites_sooner() -> None:
    delays = [ignition.run(**{**IGNITION, "t0": t0})["log10_ignition_delay"] for t0 in (950.0, 1100.0, 1300.0)]
    assert delays[0] > delays[1] > delays[2]
    # Higher activation energy: slower at the same temperature.
    assert ignition.run(**{**IGNITION, "activation_energy": 170.0})["log10_ignition_delay"] > delays[1]


def test_ignition_delay_is_close_to_the_frank_kamenetskii_estimate_and_energy_is_conserved() -> None:
    sol = ignition.solve(**IGNITION)
    # The estimate neglects fuel consumption, so it is a little short: same order of magnitude.
    assert 1.0 < sol.ignition_delay / sol.delay_estimate < 2.0
    # Adiabatic: T + dT_ad Y is conserved along the trajectory.
    invariant = sol.y[1] + IGNITION["heat_release"] * sol.y[0]
    assert np.max(np.abs(invariant - (IGNITION["t0"] + IGNITION["heat_release"]))) < 1e-6
    assert sol.n_steps > 100  # the runaway forces many small steps: a stiff problem


def test_ignition_final_temperature_jumps_when_the_residence_time_passes_the_delay() -> None:
    delay = 10 ** ignition.run(**IGNITION)["log10_ignition_delay"]
    before = ignition.run(**{**IGNITION, "residence_time": 0.1 * delay})["final_temperature"]
    after = ignition.run(**{**IGNITION, "residence_time": 10 * delay})["final_temperature"]
    assert before == pytest.approx(IGNITION["t0"], rel=0.01)
    assert after == pytest.approx(IGNITION["t0"] + IGNITION["heat_release"], rel=1e-6)


def test_ignition_tighter_tolerance_changes_outputs_by_less_than_a_few_percent() -> None:
    default = ignition.solve(**IGNITION).outputs
    tight = ignition.solve(**IGNITION, rtol=1e-12).outputs
    assert default["log10_ignition_delay"] == pytest.approx(tight["log10_ignition_delay"], rel=1e-6)
    assert default["final_temperature"] == pytest.approx(tight["final_temperature"], rel=1e-6)


def test_ignition_rejects_non_physical_inputs() -> None:
    with pytest.raises(DataError, match="heat_release = -5.0 must be > 0"):
        ignition.run(**{**IGNITION, "heat_release": -5.0})


def test_ignition_not_found_is_a_solver_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # Integrate only to 1 % of the estimated delay: the runaway is never reached.
    monkeypatch.setattr(ignition, "_HORIZON", 0.01)
    with pytest.raises(SolverError, match="no ignition within") as info:
        ignition.run(**{**IGNITION, "residence_time": 1e-5})
    assert isinstance(info.value, SurrogateALError) and isinstance(info.value, RuntimeError)
