"""Unit tests for surrogate_al.simulation: PythonSimulator, and the Simulator protocol."""

from __future__ import annotations

import math
import os
import pickle
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from surrogate_al.errors import SimulatorError, SurrogateALError
from surrogate_al.simulation import PythonSimulator, ScriptSimulator, Simulator

# Module-level functions so "module:function" references and pickling by name work.
# __name__ depends on the import mode: "test_python_simulator" with rootdir/prepend.
HERE = __name__


def quadratic(x1: float, x2: float, scale: float = 1.0) -> dict[str, float]:
    return {"y": scale * (x1**2 + x2), "z": x1 - x2, "ignored": "extra keys are fine"}


def scalar(x1: float, x2: float) -> float:
    return x1 * x2


def numpy_scalar(x1: float, x2: float) -> np.float32:
    return np.float32(x1 + x2)


def raises(x1: float, x2: float) -> float:
    return x1 / (x2 - x2)


def returns_nan(x1: float, x2: float) -> dict[str, float]:
    return {"y": math.nan, "z": 1.0}


def returns_inf(x1: float, x2: float) -> float:
    return -math.inf


def omits(x1: float, x2: float) -> dict[str, float]:
    return {"z": 1.0}


def returns_text(x1: float, x2: float) -> dict[str, str]:
    return {"y": "diverged", "z": "1.0"}


def returns_list(x1: float, x2: float) -> list[float]:
    return [1.0, 2.0]


def returns_huge_int(x1: float, x2: float) -> int:
    return 10**400


def exits(x1: float, x2: float) -> float:
    sys.exit(3)


def sleeps(x1: float, x2: float) -> float:
    time.sleep(0.3)
    return 1.0


# ---------------------------------------------------------------------------------------
# PythonSimulator
# ---------------------------------------------------------------------------------------
def test_python_simulator_dict_return() -> None:
    sim = PythonSimulator(quadratic, ["x1", "x2"], ["y", "z"])
    before = time.time()
    res = sim({"x1": 2.0, "x2": 0.5}, run_id="r1")
    assert res.status == "ok", res.reason
    assert res.outputs == {"y": 4.5, "z": 1.5}
    assert res.reason == ""
    assert res.pid == os.getpid()
    assert res.host
    assert before <= res.started_at <= res.finished_at <= time.time()
    assert res.wall_time >= 0.0
    assert res.workdir is None


def test_python_simulator_scalar_returns() -> None:
    res = PythonSimulator(scalar, ["x1", "x2"], ["y"])({"x1": 3.0, "x2": 4.0})
    assert res.ok and res.outputs == {"y": 12.0}
    res = PythonSimulator(numpy_scalar, ["x1", "x2"], ["y"])({"x1": 0.5, "x2": 0.25})
    assert res.ok and res.outputs == {"y": 0.75}


def test_python_simulator_scalar_with_two_outputs_fails() -> None:
    res = PythonSimulator(scalar, ["x1", "x2"], ["y", "z"])({"x1": 3.0, "x2": 4.0})
    assert res.status == "invalid"  # returned normally, but unusable: "invalid", not "failed"
    assert "returned a float" in res.reason and "['y', 'z']" in res.reason


def test_python_simulator_exception_becomes_failed_result() -> None:
    res = PythonSimulator(raises, ["x1", "x2"], ["y"])({"x1": 1.0, "x2": 2.0})
    assert res.status == "failed"
    assert res.reason.startswith("ZeroDivisionError: ")
    assert "division by zero" in res.reason
    assert "Traceback" in res.stderr_tail and "in raises" in res.stderr_tail
    assert res.outputs == {}


def test_python_simulator_sys_exit_is_a_failed_run() -> None:
    res = PythonSimulator(exits, ["x1", "x2"], ["y"])({"x1": 1.0, "x2": 2.0})
    assert res.status == "failed"
    assert res.reason == "SystemExit: 3"


@pytest.mark.parametrize(
    ("function", "reason"),
    [
        (returns_nan, "output 'y' is nan"),
        (returns_inf, "output 'y' is -inf"),
        (omits, "output 'y' missing from the returned dict (found: ['z'])"),
        (returns_text, "output 'y' is not a number: 'diverged'"),
        (returns_list, "output 'y' is a list ([1.0, 2.0]), expected a number"),
        (returns_huge_int, "output 'y' is too large for a float"),
    ],
)
def test_python_simulator_bad_outputs_fail(function: object, reason: str) -> None:
    outputs = ["y"] if function in (returns_inf, returns_list, returns_huge_int) else ["y", "z"]
    res = PythonSimulator(function, ["x1", "x2"], outputs)({"x1": 1.0, "x2": 2.0})  # type: ignore[arg-type]
    assert res.status == "invalid"  # bad output of a call that returned: "invalid", not "failed"
    assert res.reason.startswith(reason), res.reason
    assert res.outputs == {}


def test_python_simulator_module_function_string_and_fixed_inputs() -> None:
    sim = PythonSimulator(f"{HERE}:quadratic", ["x1", "x2"], ["y"], fixed_inputs={"scale": 10.0})
    res = sim({"x1": 1.0, "x2": 1.0})
    assert res.ok and res.outputs == {"y": 20.0}


def test_python_simulator_unimportable_reference_is_a_failed_run() -> None:
    res = PythonSimulator("no_such_module_here:f", ["x1"], ["y"])({"x1": 1.0})
    assert res.status == "failed"
    assert res.reason.startswith("cannot import 'no_such_module_here:f': ModuleNotFoundError")
    res = PythonSimulator(f"{HERE}:does_not_exist", ["x1"], ["y"])({"x1": 1.0})
    assert res.status == "failed" and "AttributeError" in res.reason


@pytest.mark.parametrize("function", [quadratic, f"{HERE}:quadratic"])
def test_python_simulator_pickle_round_trip(function: object) -> None:
    sim = PythonSimulator(function, ["x1", "x2"], ["y", "z"])  # type: ignore[arg-type]
    clone = pickle.loads(pickle.dumps(sim))
    assert clone.input_names == ("x1", "x2") and clone.output_names == ("y", "z")
    res = clone({"x1": 2.0, "x2": 1.0})
    assert res.ok and res.outputs == {"y": 5.0, "z": 1.0}


def test_python_simulator_checks_inputs_per_call() -> None:
    sim = PythonSimulator(quadratic, ["x1", "x2"], ["y"], fixed_inputs={"scale": 2.0})
    res = sim({"x1": 1.0})
    assert res.status == "failed" and res.reason == "missing inputs ['x2'] (expected ['x1', 'x2'])"
    res = sim({"x1": 1.0, "x2": 2.0, "x3": 0.0})
    assert res.status == "failed" and res.reason == "unknown inputs ['x3'] (expected ['x1', 'x2'])"
    res = sim({"x1": 1.0, "x2": 2.0, "scale": 3.0})
    assert res.status == "failed" and "fixed_inputs" in res.reason
    res = sim([1.0, 2.0])  # type: ignore[arg-type]
    assert res.status == "failed" and "must be a mapping" in res.reason


def test_python_simulator_timeout_kills_the_call_in_its_child_process() -> None:
    res = PythonSimulator(sleeps, ["x1", "x2"], ["y"], timeout=0.05)({"x1": 1.0, "x2": 2.0})
    assert res.status == "timeout"
    assert "still running after the timeout of 0.05 s; its process group was killed" in res.reason
    assert res.outputs == {}


def test_python_simulator_with_a_timeout_returns_what_the_child_computed() -> None:
    res = PythonSimulator(quadratic, ["x1", "x2"], ["y", "z"], fixed_inputs={"scale": 2.0}, timeout=60)(
        {"x1": 1.0, "x2": 2.0}
    )
    assert res.status == "ok" and res.outputs == {"y": 6.0, "z": -1.0}, res.reason


def test_simulators_satisfy_the_protocol(workdir_root: Path) -> None:
    assert isinstance(PythonSimulator(quadratic, ["x1", "x2"], ["y"]), Simulator)
    script = ScriptSimulator([sys.executable, "-c", "pass", "{input}"], ["x1"], ["y"], workdir_root=workdir_root)
    assert isinstance(script, Simulator)
    assert not isinstance(object(), Simulator)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"function": "not a reference"}, "not a 'module:function' reference"),
        ({"function": 42}, "must be a callable"),
        ({"input_names": "x1"}, "input_names must be a list of names"),
        ({"input_names": ["x1", "x1"]}, r"duplicates \['x1'\]"),
        ({"input_names": ["x-1"]}, "'x-1' is not a valid identifier"),
        ({"output_names": []}, "output_names is empty"),
        ({"input_names": ["x1", "x2", "x3"]}, r"cannot be called with the keyword arguments \['x1', 'x2', 'x3'\]"),
        ({"fixed_inputs": {"x1": 1.0}}, "also in input_names"),
        ({"timeout": 0}, "timeout = 0 must be a positive number"),
    ],
)
def test_python_simulator_misconfiguration(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"function": quadratic, "input_names": ["x1", "x2"], "output_names": ["y"]}
    args.update(kwargs)
    with pytest.raises(SimulatorError, match=match) as info:
        PythonSimulator(**args)  # type: ignore[arg-type]
    assert isinstance(info.value, SurrogateALError)
