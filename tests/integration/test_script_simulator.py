"""ScriptSimulator end to end: real subprocesses, real files, real process groups.

The helper scripts live in tests/integration/scripts/ and are run as
``[sys.executable, script, ...]`` or ``["/bin/sh", script, ...]``.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from script_helpers import BEHAVE, behave

from surrogate_al.simulation import PythonSimulator, ScriptSimulator, SimulationResult

SCRIPTS = Path(__file__).resolve().parent / "scripts"
PY = sys.executable
INPUTS = {"x1": 1.5, "x2": 0.25}
Y, Z = 1.5**2 + 0.25, 1.5 - 0.25


def _alive(pid: int) -> bool:
    """Whether a process runs (zombies count as gone: they hold no resources but a table slot)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


# ---------------------------------------------------------------------------------------
# Round trips per input / output format
# ---------------------------------------------------------------------------------------
def test_json_round_trip_and_workdir_removed_on_success(root: Path) -> None:
    sim = behave(root, "ok")
    res = sim(INPUTS, run_id="r-001")
    assert res.status == "ok", (res.reason, res.stderr_tail)
    assert res.outputs == {"y": Y, "z": Z}
    assert res.reason == "" and res.workdir is None
    assert res.pid == os.getpid()  # the process that ran the wrapper (the worker), not the child
    assert "running mode ok in " + str(root / "r-001") in res.stdout_tail  # cwd was the run directory
    assert res.finished_at >= res.started_at and res.wall_time > 0
    assert list(root.iterdir()) == []  # the run directory is gone


def test_keep_workdirs_keeps_inputs_and_logs(root: Path) -> None:
    res = behave(root, "ok", keep_workdirs=True)({"x1": 2.0, "x2": 1.0}, run_id="kept")
    assert res.ok and res.workdir == str(root / "kept")
    run_dir = Path(res.workdir)
    assert json.loads((run_dir / "input.json").read_text()) == {"x1": 2.0, "x2": 1.0}
    assert (run_dir / "stdout.txt").read_text().startswith("running mode ok")
    assert (run_dir / "stderr.txt").exists()


def test_template_input_deck_and_regex_on_stdout(root: Path, tmp_path: Path) -> None:
    deck = tmp_path / "deck.tmpl"
    deck.write_text(
        "! run ${run_id}\n&params\n  x1 = ${x1}\n  x2 = $x2\n  mesh = ${mesh}\n/\n! cost $$5\n", encoding="utf-8"
    )
    sim = ScriptSimulator(
        [PY, str(SCRIPTS / "deck_sim.py"), "{input}"],
        ["x1", "x2"],
        ["y", "z"],
        template=deck,
        input_filename="case.nml",
        fixed_inputs={"mesh": 64},
        output_format="regex",
        output_regex={"y": r"^RESULT y = (\S+)$", "z": r"RESULT z = (\S+)"},
        workdir_root=root,
        keep_workdirs=True,
    )
    res = sim({"x1": 0.5, "x2": 2.0}, run_id="deck-1")
    assert res.status == "ok", (res.reason, res.stderr_tail)
    assert res.outputs == {"y": 0.5 * 64 + 2.0, "z": 0.5 - 2.0}  # the last RESULT y line wins
    rendered = (Path(res.workdir or "") / "case.nml").read_text(encoding="utf-8")
    assert rendered == "! run deck-1\n&params\n  x1 = 0.5\n  x2 = 2.0\n  mesh = 64\n/\n! cost $5\n"


def test_keyvalue_on_stdout_last_value_wins_and_fortran_exponents(root: Path) -> None:
    sim = ScriptSimulator(
        [PY, BEHAVE, "keyvalue", "{input}", "unused"], ["x1", "x2"], ["y", "z"], output_format="keyvalue",
        workdir_root=root,
    )
    res = sim(INPUTS)
    assert res.status == "ok", res.reason
    assert res.outputs["y"] == Y
    assert res.outputs["z"] == pytest.approx(Z)


def test_keyvalue_from_an_output_file(root: Path) -> None:
    sim = ScriptSimulator(
        [PY, "-c", "open('res.txt', 'w').write('# result\\ny = 2.5\\n')"],
        ["x1"],
        ["y"],
        input_format="json",
        output_format="keyvalue",
        output_filename="res.txt",
        workdir_root=root,
    )
    res = sim({"x1": 1.0})
    assert res.status == "ok", res.reason
    assert res.outputs == {"y": 2.5}


def test_env_variables_reach_the_script_and_bare_names_use_path(root: Path) -> None:
    res = behave(root, "env", env={"SA_TEST_SCALE": "3.5", "SA_TEST_TAG": "ab c"})(INPUTS)
    assert res.status == "ok", (res.reason, res.stderr_tail)
    assert res.outputs == {"y": 3.5 * 1.5, "z": 4.0}
    # "sh" has no slash: resolved on PATH (inherited from os.environ).
    sh = ScriptSimulator(["sh", str(SCRIPTS / "background.sh"), "{output}"], ["x1"], ["y"], workdir_root=root)
    res = sh({"x1": 0.0})
    assert res.status == "ok", res.reason and res.outputs == {"y": 1.5}


def test_missing_executable_is_a_failed_run(root: Path) -> None:
    sim = ScriptSimulator(["no-such-solver-xyz", "{input}"], ["x1"], ["y"], workdir_root=root)
    res = sim({"x1": 1.0})
    assert res.status == "failed"
    assert res.reason.startswith("executable 'no-such-solver-xyz' not found on PATH")
    sim = ScriptSimulator([str(root / "nope" / "solver"), "{input}"], ["x1"], ["y"], workdir_root=root)
    res = sim({"x1": 1.0})
    assert res.status == "failed" and "FileNotFoundError" in res.reason


# Moved to tests/faults/ (issue 7): run directories -> test_path_confinement.py; bad
# outputs (regex, CSV shape, parse function, malformed/NaN/missing, large stdout) ->
# test_bad_output.py; timeouts of a process tree -> test_timeout_tree.py; hostile
# values -> test_shell_injection.py.


# ---------------------------------------------------------------------------------------
# MUST-SHOW: failures come back as results with a reason
# ---------------------------------------------------------------------------------------
def test_exit_code_1_is_failed_and_workdir_kept(root: Path) -> None:
    res = behave(root, "exit1")(INPUTS, run_id="bad")
    assert res.status == "failed"
    assert res.reason == "exit code 1"
    assert res.outputs == {}
    assert "solver diverged at step 17" in res.stderr_tail
    assert res.workdir == str(root / "bad") and (root / "bad" / "input.json").exists()


def test_signal_death_names_the_signal(root: Path) -> None:
    res = behave(root, "segv")(INPUTS)
    assert res.status == "failed"
    assert res.reason == "killed by signal SIGSEGV (exit code -11)"


def test_normal_exit_kills_background_leftovers(root: Path) -> None:
    sim = ScriptSimulator(
        ["/bin/sh", str(SCRIPTS / "background.sh"), "{output}"], ["x1"], ["y"], workdir_root=root, keep_workdirs=True
    )
    res = sim({"x1": 1.0})
    assert res.status == "ok", res.reason
    assert res.outputs == {"y": 1.5}
    bg = int(Path(res.workdir or "", "bg.pid").read_text())
    assert not _alive(bg)


# ---------------------------------------------------------------------------------------
# MUST-SHOW: values are passed verbatim; nothing runs
# ---------------------------------------------------------------------------------------
def test_placeholders_and_format_specs(root: Path) -> None:
    sim = ScriptSimulator(
        [PY, str(SCRIPTS / "echo_received.py"), "{input}", "{output}", "{x1:.3e}", "--id={run_id}", "{workdir}", "{{x1}}"],
        ["x1"],
        ["n_args"],
        fixed_inputs={"mesh": 8},
        workdir_root=root,
        keep_workdirs=True,
    )
    res = sim({"x1": 1234.5678}, run_id="case/7")
    assert res.status == "ok", (res.reason, res.stderr_tail)
    run_dir = Path(res.workdir or "")
    assert run_dir == root / "case_7"
    received = json.loads((run_dir / "received.json").read_text(encoding="utf-8"))
    assert received["args"] == ["1.235e+03", "--id=case/7", str(run_dir), "{x1}"]
    assert received["cwd"] == str(run_dir)
    assert json.loads(received["input_text"]) == {"mesh": 8, "x1": 1234.5678}  # fixed inputs go in the JSON too
    # A format spec that does not fit the value is a failed run, not an exception.
    res = sim({"x1": "text"})
    assert res.status == "failed" and res.reason.startswith("cannot build the command: ValueError")


# ---------------------------------------------------------------------------------------
# Shipping to workers
# ---------------------------------------------------------------------------------------
def test_pickle_round_trip(root: Path) -> None:
    sim = behave(root, "ok", timeout=30.0, env={"A": "1"})
    clone = pickle.loads(pickle.dumps(sim))
    assert clone.command == sim.command and clone.timeout == 30.0
    res = clone(INPUTS)
    assert res.status == "ok" and res.outputs == {"y": Y, "z": Z}


def test_simulators_run_in_a_fresh_interpreter_after_pickling(root: Path, tmp_path: Path) -> None:
    """As on a Dask worker: unpickle in another process, run, send the result back as plain data."""
    sims = {
        "script": behave(root, "ok"),
        "python": PythonSimulator("simhelpers:quadratic", ["x1", "x2"], ["y", "z"], fixed_inputs={"scale": 2.0}),
    }
    blob = tmp_path / "sims.pkl"
    blob.write_bytes(pickle.dumps(sims))
    code = (
        "import json, pickle, sys\n"
        "sims = pickle.load(open(sys.argv[1], 'rb'))\n"
        "print(json.dumps({k: s({'x1': 1.5, 'x2': 0.25}).to_dict() for k, s in sims.items()}))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SCRIPTS), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([PY, "-c", code, str(blob)], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    results = {k: SimulationResult.from_dict(v) for k, v in json.loads(proc.stdout).items()}
    assert results["script"].ok and results["script"].outputs == {"y": Y, "z": Z}
    assert results["python"].ok and results["python"].outputs == {"y": 2 * Y, "z": Z}
    assert results["python"].pid != os.getpid()
