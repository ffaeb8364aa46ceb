"""Analytic benchmarks against known values from the literature and by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import minimize

from simulators import borehole, branin, friedman, hartmann6, ishigami, sharp_peak

BRANIN_MIN = 0.397887


# -- Branin ------------------------------------------------------------------------------
@pytest.mark.parametrize("x1, x2", [(-math.pi, 12.275), (math.pi, 2.275), (9.42478, 2.475)])
def test_branin_global_minima(x1: float, x2: float) -> None:
    assert branin.run(x1=x1, x2=x2)["y"] == pytest.approx(BRANIN_MIN, abs=1e-6)


def test_branin_by_hand_and_nothing_below_the_minimum() -> None:
    # At (0, 0): (-6)^2 + 10 (1 - 1/(8 pi)) + 10 = 55.602112...
    assert branin.run(x1=0.0, x2=0.0)["y"] == pytest.approx(36.0 + 10.0 * (1.0 - 1.0 / (8.0 * math.pi)) + 10.0)
    values = [branin.run(**r)["y"] for r in branin.INPUTS.to_records(branin.INPUTS.sobol(1024, seed=0))]
    assert min(values) >= BRANIN_MIN - 1e-9


# -- Ishigami ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "x, expected",
    [
        ((0.0, 0.0, 0.0), 0.0),
        ((math.pi / 2, math.pi / 2, 0.0), 1.0 + 7.0),
        ((math.pi / 2, 0.0, math.pi), 1.0 + 0.1 * math.pi**4),
        ((-math.pi / 2, -math.pi / 2, -math.pi), -1.0 + 7.0 - 0.1 * math.pi**4),
    ],
)
def test_ishigami_known_values(x: tuple[float, float, float], expected: float) -> None:
    assert ishigami.run(x1=x[0], x2=x[1], x3=x[2])["y"] == pytest.approx(expected, abs=1e-12)


def test_ishigami_mean_and_variance_match_the_analytic_moments() -> None:
    a, b = ishigami.A, ishigami.B
    points = ishigami.INPUTS.sobol(2**14, seed=1)
    y = np.array([ishigami.run(**r)["y"] for r in ishigami.INPUTS.to_records(points)])
    variance = a**2 / 8 + b * math.pi**4 / 5 + b**2 * math.pi**8 / 18 + 0.5  # 13.8446
    assert y.mean() == pytest.approx(a / 2, abs=0.02)
    assert y.var() == pytest.approx(variance, rel=0.01)


# -- Hartmann 6 --------------------------------------------------------------------------
def test_hartmann6_global_minimum_value_and_location() -> None:
    x_star = dict(zip(hartmann6.INPUTS.names, hartmann6.X_STAR))
    assert hartmann6.run(**x_star)["y"] == pytest.approx(-3.32237, abs=1e-5)
    # x* is a stationary point: a local optimiser started there does not go anywhere lower.
    result = minimize(lambda x: hartmann6.run(**dict(zip(hartmann6.INPUTS.names, x)))["y"],
                      np.array(hartmann6.X_STAR), bounds=[(0, 1)] * 6, method="L-BFGS-B")
    assert result.fun == pytest.approx(-3.32237, abs=1e-5)
    assert np.max(np.abs(result.x - np.array(hartmann6.X_STAR))) < 1e-3


def test_hartmann6_design_never_beats_the_minimum() -> None:
    points = hartmann6.INPUTS.sobol(512, seed=2)
    values = [hartmann6.run(**r)["y"] for r in hartmann6.INPUTS.to_records(points)]
    assert min(values) > -3.32237
    assert max(values) <= 0.0  # a sum of negative terms


# -- Borehole ----------------------------------------------------------------------------
def test_borehole_value_derived_by_hand() -> None:
    # rw = 0.1, r = 100: ln(r/rw) = ln(1000); 2 L Tu / (ln(1000) rw^2 Kw) = 3e8 / (100 ln(1000)), so
    # f = 2 pi 1e5 200 / (ln(1000) (1 + 3e6 / ln(1000) + 1000)) = 4e7 pi / (1001 ln(1000) + 3e6).
    point = {"rw": 0.1, "r": 100.0, "Tu": 1e5, "Hu": 1000.0, "Tl": 100.0, "Hl": 800.0, "L": 1500.0, "Kw": 1e4}
    expected = 4e7 * math.pi / (1001 * math.log(1000.0) + 3e6)
    assert borehole.run(**point)["flow_rate"] == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(41.7916, abs=1e-4)


def test_borehole_is_proportional_to_the_head_difference_and_grows_with_rw() -> None:
    centre = dict(zip(borehole.INPUTS.names, (borehole.INPUTS.lower + borehole.INPUTS.upper) / 2))
    base = borehole.run(**centre)["flow_rate"]
    doubled = borehole.run(**{**centre, "Hl": centre["Hu"] - 2 * (centre["Hu"] - centre["Hl"])})["flow_rate"]
    assert doubled == pytest.approx(2 * base, rel=1e-12)
    assert borehole.run(**{**centre, "rw": 0.15})["flow_rate"] > base > borehole.run(**{**centre, "rw": 0.05})[
        "flow_rate"
    ]


# -- Friedman ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "x, expected",
    [
        ((0.5, 0.5, 0.5, 0.5, 0.5), 5.0 * math.sqrt(2.0) + 5.0 + 2.5),  # 10 sin(pi/4) + 0 + 5 + 2.5
        ((1.0, 0.5, 1.0, 0.0, 0.0), 10.0 + 5.0),  # 10 sin(pi/2) + 20 (1/2)^2
        ((0.0, 0.0, 0.0, 0.0, 0.0), 5.0),  # 20 (1/2)^2
        ((1.0, 1.0, 0.5, 1.0, 1.0), 15.0),  # sin(pi) = 0, + 10 + 5
    ],
)
def test_friedman_by_hand(x: tuple[float, ...], expected: float) -> None:
    assert friedman.run(**dict(zip(friedman.INPUTS.names, x)))["y"] == pytest.approx(expected, abs=1e-12)


# -- Sharp peak --------------------------------------------------------------------------
def test_sharp_peak_height_and_width() -> None:
    cx, cy = sharp_peak.CENTER
    background = math.sin(1.2 * math.pi * cx) * math.cos(0.8 * math.pi * cy)
    assert sharp_peak.run(x1=cx, x2=cy)["y"] == pytest.approx(background + sharp_peak.HEIGHT, abs=1e-12)
    # One width away along x1 the bump has fallen to exp(-1/2) of its height.
    x1 = cx + sharp_peak.WIDTH
    background = math.sin(1.2 * math.pi * x1) * math.cos(0.8 * math.pi * cy)
    expected = background + sharp_peak.HEIGHT * math.exp(-0.5)
    assert sharp_peak.run(x1=x1, x2=cy)["y"] == pytest.approx(expected, abs=1e-12)


def test_sharp_peak_occupies_the_documented_fraction_of_the_box() -> None:
    # Documented: bump > 10 % of its height on a disc of radius w sqrt(2 ln 10), about 0.9 % of the box.
    points = sharp_peak.INPUTS.sobol(2**15, seed=4)
    cx, cy = sharp_peak.CENTER
    background = np.sin(1.2 * np.pi * points[:, 0]) * np.cos(0.8 * np.pi * points[:, 1])
    y = np.array([sharp_peak.run(x1=a, x2=b)["y"] for a, b in points])
    bump = y - background
    fraction = np.mean(bump > 0.1 * sharp_peak.HEIGHT)
    expected = math.pi * (sharp_peak.WIDTH * math.sqrt(2 * math.log(10))) ** 2
    assert expected == pytest.approx(0.0091, abs=2e-4)
    assert fraction == pytest.approx(expected, rel=0.1)
    # Outside that disc the function is the smooth background, of amplitude <= 1.
    assert np.all(np.abs(y[bump <= 0.1 * sharp_peak.HEIGHT]) <= 1.0 + 0.1 * sharp_peak.HEIGHT)
    assert np.hypot(points[:, 0] - cx, points[:, 1] - cy)[np.argmax(y)] < sharp_peak.WIDTH
