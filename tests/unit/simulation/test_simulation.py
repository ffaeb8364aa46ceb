"""Unit tests for surrogate_al.simulation: results, PythonSimulator, ScriptSimulator construction.

Runs of external scripts are in tests/integration/test_script_simulator.py.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from surrogate_al.errors import DataError, SimulatorError, SurrogateALError
from surrogate_al.simulation import (
    PythonSimulator,
    ScriptSimulator,
    SimulationResult,
    Simulator,
)

# Module-level functions so "module:function" references and pickling by name work.
# __name__ is "test_simulation" or "tests.unit.test_simulation" depending on pytest's import mode.
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


@pytest.fixture
def workdir_root(tmp_path: Path) -> Path:
    return tmp_path / "runs"


# ---------------------------------------------------------------------------------------
# SimulationResult
# ---------------------------------------------------------------------------------------
def _result(**overrides: object) -> SimulationResult:
    kw: dict[str, object] = dict(
        status="ok",
        outputs={"y": 1.5, "z": np.float64(-2.0)},
        stdout_tail="out",
        stderr_tail="err",
        wall_time=0.25,
        host="node7",
        pid=1234,
        started_at=1_700_000_000.0,
        finished_at=1_700_000_000.25,
        workdir=None,
    )
    kw.update(overrides)
    return SimulationResult(**kw)  # type: ignore[arg-type]


def test_result_round_trips_through_json() -> None:
    for res in (_result(), _result(status="timeout", outputs={}, reason="timed out after 1.0 s", workdir="/r/1")):
        data = json.loads(json.dumps(res.to_dict()))
        back = SimulationResult.from_dict(data)
        assert back == res
        assert type(back.outputs["y"] if back.ok else 0.0) is float


def test_result_ok_property_and_plain_types() -> None:
    res = _result()
    assert res.ok
    assert not _result(status="failed", outputs={}, reason="exit code 1").ok
    assert res.outputs == {"y": 1.5, "z": -2.0}
    assert all(type(v) is float for v in res.outputs.values())
    with pytest.raises(AttributeError):
        res.status = "failed"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"status": "crashed"}, "status = 'crashed'"),
        ({"reason": "why"}, "reason must be ''"),
        ({"status": "failed", "reason": "exit code 1"}, "only ok results carry outputs"),
        ({"status": "failed", "outputs": {}}, "needs a reason"),
        ({"outputs": {"y": math.nan}}, r"outputs\['y'\] is nan"),
        ({"outputs": {"y": "abc"}}, r"outputs\['y'\] is not a number"),
        ({"outputs": [1.0]}, "must be a mapping"),
        ({"pid": "12"}, "pid = '12' must be a number"),
    ],
)
def test_result_rejects_inconsistent_fields(overrides: dict[str, object], match: str) -> None:
    with pytest.raises(DataError, match=match):
        _result(**overrides)


def test_result_from_dict_names_missing_and_unknown_keys() -> None:
    data = _result().to_dict()
    del data["host"]
    data["colour"] = "blue"
    with pytest.raises(DataError, match=r"missing keys \['host'\], unknown keys \['colour'\]"):
        SimulationResult.from_dict(data)


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


def test_python_simulator_timeout_is_checked_after_the_call() -> None:
    res = PythonSimulator(sleeps, ["x1", "x2"], ["y"], timeout=0.05)({"x1": 1.0, "x2": 2.0})
    assert res.status == "timeout"
    assert "over the timeout of 0.05 s" in res.reason
    assert res.outputs == {}
    assert res.wall_time >= 0.3


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


# ---------------------------------------------------------------------------------------
# ScriptSimulator construction (no runs)
# ---------------------------------------------------------------------------------------
def _script(root: Path, **kwargs: object) -> ScriptSimulator:
    args: dict[str, object] = {
        "command": [sys.executable, "/abs/sim.py", "{input}", "{output}"],
        "input_names": ["x1", "x2"],
        "output_names": ["y"],
        "workdir_root": root,
    }
    args.update(kwargs)
    return ScriptSimulator(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"command": "python sim.py {input}"}, r"is a string; give an argument list such as \['python', 'sim.py'"),
        ({"command": []}, "must be a non-empty list"),
        ({"command": ["sim", 3]}, r"command\[1\] = 3 must be a str"),
        ({"command": ["sim", "{x3}"]}, r"unknown placeholder \{x3\}"),
        ({"command": ["sim", "{x1.__class__}"]}, r"unknown placeholder \{x1.__class__\}.*attribute or index access"),
        ({"command": ["sim", "{x1[0]}"]}, r"unknown placeholder \{x1\[0\]\}"),
        ({"command": ["sim", "{x1!r}"]}, "uses a conversion"),
        ({"command": ["sim", "{x1:{x2}}"]}, "nested field"),
        ({"command": ["sim", "{x1:q}"]}, "format spec 'q'"),
        ({"command": ["sim", "{x1"]}, "literal braces"),
        ({"output_filename": "../x.json"}, r"output_filename = '\.\./x\.json' contains '\.\.'"),
        ({"output_filename": "/tmp/x.json"}, "is absolute"),
        ({"output_filename": "~/x.json"}, "is absolute"),
        ({"input_filename": "sub/../../x.json"}, "contains '..'"),
        ({"input_filename": "."}, "names a directory"),
        ({"input_filename": "stdout.txt"}, "taken by the wrapper's own log files"),
        ({"input_filename": "io.json", "output_filename": "io.json"}, "use two files"),
        ({"input_names": ["input"], "command": ["sim"]}, "collide with the command placeholders"),
        ({"input_format": "yaml"}, "input_format = 'yaml'"),
        ({"output_format": "xml"}, "output_format = 'xml'"),
        ({"output_format": "keyvalue"}, r"unknown placeholder \{output\} \(\{output\} needs output_filename\)"),
        ({"input_format": "none"}, r"unknown placeholder \{input\}"),
        ({"input_format": "none", "command": ["sim", "{x1}"]}, r"inputs \['x2'\] do not appear in the command"),
        ({"output_format": "regex", "output_filename": "log.txt"}, "needs output_regex"),
        ({"output_format": "regex", "output_filename": "l", "output_regex": {"y": r"y = \S+"}}, "has 0 groups"),
        ({"output_format": "regex", "output_filename": "l", "output_regex": {"y": "(a)(b)"}}, "has 2 groups"),
        ({"output_format": "regex", "output_filename": "l", "output_regex": {"y": "(a"}}, "not a valid regex"),
        ({"output_format": "regex", "output_filename": "l", "output_regex": {"q": "(a)"}}, r"missing \['y'\]"),
        ({"output_regex": {"y": "(a)"}}, "output_regex given but output_format = 'json'"),
        ({"output_format": "parse"}, "needs parse="),
        ({"parse": "mod:fn"}, "parse given but output_format = 'json'"),
        ({"output_format": "parse", "parse": "not-a-ref"}, "not a 'module:function' reference"),
        ({"timeout": -1}, "timeout = -1"),
        ({"kill_grace": -0.5}, "kill_grace = -0.5"),
        ({"max_output_bytes": 0}, "max_output_bytes = 0"),
        ({"env": {"A": 1}}, r"env\['A'\] = 1 must be a string"),
        ({"env": {"A=B": "1"}}, "variable name 'A=B' is invalid"),
        ({"fixed_inputs": {"x2": 1.0}}, "also in input_names"),
        ({"workdir_root": None}, "workdir_root = None"),
        ({"template": "x = ${x1}\ny = ${x2}\n", "input_format": "json"}, "template given but input_format = 'json'"),
        ({"input_format": "template"}, "needs template="),
    ],
)
def test_script_simulator_misconfiguration(workdir_root: Path, kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(SimulatorError, match=match):
        _script(workdir_root, **kwargs)


def test_script_simulator_template_checks(workdir_root: Path, tmp_path: Path) -> None:
    cmd = [sys.executable, "/abs/deck.py", "{input}"]
    with pytest.raises(SimulatorError, match=r"template uses unknown fields \['mesh'\]"):
        _script(workdir_root, command=cmd, template="x1 = ${x1}\nx2 = ${x2}\nmesh = ${mesh}\n")
    with pytest.raises(SimulatorError, match=r"invalid placeholder at line 2 .*literal dollar sign as \$\$"):
        _script(workdir_root, command=cmd, template="x1 = ${x1}\ncost = $5\nx2=$x2\n")
    with pytest.raises(SimulatorError, match=r"inputs \['x2'\] appear neither in the template nor in the command"):
        _script(workdir_root, command=cmd, template="x1 = ${x1}\n")
    with pytest.raises(SimulatorError, match="neither an existing file nor template text"):
        _script(workdir_root, command=cmd, template="missing_deck.tmpl")
    with pytest.raises(SimulatorError, match="cannot be read"):
        _script(workdir_root, command=cmd, template=tmp_path / "nope.tmpl")

    # Fields that are inputs, fixed inputs or placeholders are fine; $$ is a literal dollar.
    deck = tmp_path / "deck.tmpl"
    deck.write_text("run ${run_id}\nx1 = ${x1}\nx2 = $x2\nmesh = ${mesh}\ncost $$ 5\n", encoding="utf-8")
    for template in (deck, str(deck)):
        sim = _script(workdir_root, command=cmd, template=template, fixed_inputs={"mesh": 64})
        assert sim.input_format == "template" and sim.input_filename == "input.txt"
        assert sim.template == deck.read_text(encoding="utf-8")  # read at construction: workers need no file
    # A command-line placeholder counts as reaching the script.
    sim = _script(workdir_root, command=[*cmd, "--x2={x2}"], template="x1 = ${x1}\n")
    assert sim.template == "x1 = ${x1}\n"


def test_script_simulator_defaults_and_paths(workdir_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    sim = ScriptSimulator(["./bin/solver", "{input}", "{output}"], ["x1"], ["y"], workdir_root="runs")
    # Relative paths are anchored at construction (the driver's directory), not at the worker's.
    assert sim.command[0] == str(tmp_path / "bin" / "solver")
    assert sim.workdir_root == str(tmp_path / "runs")
    assert sim.input_filename == "input.json" and sim.output_filename == "output.json"
    csv_sim = ScriptSimulator(["solver", "{output}"], ["x1"], ["y"], output_format="csv", workdir_root="runs")
    assert csv_sim.output_filename == "output.csv"
    kv = ScriptSimulator(["solver"], ["x1"], ["y"], output_format="keyvalue", workdir_root="runs")
    assert kv.output_filename is None  # stdout
    nested = ScriptSimulator(["solver"], ["x1"], ["y"], output_filename="results/out.json", workdir_root="runs")
    assert nested.output_filename == "results/out.json"
    (tmp_path / "runs").mkdir()
    (tmp_path / "afile").write_text("")
    with pytest.raises(SimulatorError, match="exists and is not a directory"):
        ScriptSimulator(["solver"], ["x1"], ["y"], workdir_root=tmp_path / "afile")
