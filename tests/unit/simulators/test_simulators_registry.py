"""The simulators package: registry, module contract, and use through PythonSimulator."""

from __future__ import annotations

import inspect
import math

import pytest

import simulators
from surrogate_al.errors import ConfigError
from surrogate_al.simulation import PythonSimulator
from surrogate_al.space import InputSpace

ANALYTIC = ("branin", "ishigami", "hartmann6", "borehole", "friedman", "sharp_peak")
PHYSICS = ("burgers", "heat2d", "ignition")
#: Test utilities: extra keyword arguments (run-time model) besides the inputs.
UTILITY = ("sleepy",)


def test_available_lists_every_registered_simulator_sorted() -> None:
    assert simulators.available() == tuple(sorted(ANALYTIC + PHYSICS + UTILITY))
    assert set(simulators.SIMULATORS) == set(ANALYTIC + PHYSICS + UTILITY)
    assert all(path == f"simulators.{name}" for name, path in simulators.SIMULATORS.items())


def test_unknown_name_is_a_config_error_listing_the_known_names() -> None:
    with pytest.raises(ConfigError) as info:
        simulators.load("brannin")
    message = str(info.value)
    assert "'brannin'" in message
    for name in ANALYTIC + PHYSICS:
        assert name in message


@pytest.mark.parametrize("name", ANALYTIC + PHYSICS)
def test_module_contract(name: str) -> None:
    module = simulators.load(name)
    assert isinstance(module.INPUTS, InputSpace)
    assert isinstance(module.OUTPUTS, tuple) and module.OUTPUTS
    # run takes exactly the input names, as keyword-only arguments.
    params = inspect.signature(module.run).parameters
    assert tuple(params) == module.INPUTS.names
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params.values())
    # The module docstring documents every input and output by name, and cites a reference.
    doc = module.__doc__ or ""
    for field in (*module.INPUTS.names, *module.OUTPUTS):
        assert f"``{field}``" in doc, f"{name}: {field!r} is not documented in the module docstring"
    assert "Reference" in doc


@pytest.mark.parametrize("name", ANALYTIC)
def test_analytic_runs_return_exactly_the_named_finite_outputs(name: str) -> None:
    module = simulators.load(name)
    for record in module.INPUTS.to_records(module.INPUTS.design("sobol", 16, seed=3)):
        out = module.run(**record)
        assert set(out) == set(module.OUTPUTS)
        assert all(isinstance(v, float) and math.isfinite(v) for v in out.values())


def test_python_simulator_runs_a_registered_simulator_by_reference() -> None:
    module = simulators.load("branin")
    sim = PythonSimulator("simulators.branin:run", module.INPUTS.names, module.OUTPUTS)
    result = sim({"x1": math.pi, "x2": 2.275})
    assert result.ok
    assert result.outputs["y"] == pytest.approx(0.397887, abs=1e-6)


def test_non_physical_input_is_a_failed_run_naming_the_input() -> None:
    module = simulators.load("heat2d")
    sim = PythonSimulator("simulators.heat2d:run", module.INPUTS.names, module.OUTPUTS)
    inputs = {"k_sw": -1.0, "k_se": 1.0, "k_nw": 1.0, "k_ne": 1.0, "source": 100.0, "t_left": 350.0}
    result = sim(inputs)
    assert result.status == "failed"
    assert "DataError" in result.reason and "k_sw" in result.reason


def test_sleepy_run_time_is_a_deterministic_lognormal_of_the_inputs() -> None:
    import numpy as np

    from simulators import sleepy

    points = np.random.default_rng(0).random((3000, 2))
    times = np.array([sleepy.duration(a, b) for a, b in points])
    assert sleepy.duration(0.3, 0.7) == sleepy.duration(0.3, 0.7)
    assert 0.45 < float(np.median(times)) < 0.55
    ratio = np.percentile(times, 95) / np.percentile(times, 5)
    assert 8.0 < ratio < 12.5
    fast = sleepy.run(x1=0.3, x2=0.7, median=0.001)
    assert fast["y"] == pytest.approx(math.sin(0.9) + math.cos(1.4) + 0.21)
