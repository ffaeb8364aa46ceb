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
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest

from surrogate_al.simulation import PythonSimulator, ScriptSimulator, SimulationResult

SCRIPTS = Path(__file__).resolve().parent / "scripts"
BEHAVE = str(SCRIPTS / "behave.py")
PY = sys.executable
INPUTS = {"x1": 1.5, "x2": 0.25}
Y, Z = 1.5**2 + 0.25, 1.5 - 0.25


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "runs"


def behave(root: Path, mode: str, **kwargs: object) -> ScriptSimulator:
    """A simulator around behave.py in the given mode (JSON in, JSON out by default)."""
    args: dict[str, object] = {"output_names": ["y", "z"], "workdir_root": root}
    args.update(kwargs)
    return ScriptSimulator([PY, BEHAVE, mode, "{input}", "{output}"], ["x1", "x2"], **args)  # type: ignore[arg-type]


def _alive(pid: int) -> bool:
    """Whether a process runs (zombies count as gone: they hold no resources but a table slot)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _live_members(pgid: int) -> list[int]:
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc.pid)
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return members


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


def test_regex_that_does_not_match_names_the_output(root: Path, tmp_path: Path) -> None:
    sim = ScriptSimulator(
        [PY, str(SCRIPTS / "deck_sim.py"), "{input}"],
        ["x1", "x2"],
        ["y"],
        template="x1 = ${x1}\nx2 = ${x2}\nmesh = 2\n",
        output_format="regex",
        output_regex={"y": r"FINAL y: (\S+)"},
        workdir_root=root,
    )
    res = sim(INPUTS)
    assert res.status == "failed"
    assert res.reason == "output 'y' missing from stdout: regex 'FINAL y: (\\\\S+)' does not match"


def test_csv_output(root: Path) -> None:
    res = behave(root, "csv", output_format="csv")(INPUTS)
    assert res.status == "ok", res.reason
    assert res.outputs == {"y": Y, "z": Z}
    res = behave(root, "csv_rows", output_format="csv")(INPUTS)
    assert res.status == "failed"
    assert "output.csv" in res.reason and "exactly one data row, found 3" in res.reason


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


def test_user_parse_function(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(SCRIPTS))
    sim = behave(root, "parse", output_format="parse", output_filename="output.json", parse="simhelpers:parse_log")
    res = sim(INPUTS)
    assert res.status == "ok", res.reason
    assert res.outputs == {"y": Y, "z": Z}
    # A parse function that raises is a failed run that names it.
    broken = behave(root, "ok", output_format="parse", output_filename="output.json", parse="simhelpers:parse_log")
    res = broken(INPUTS)
    assert res.status == "failed"
    assert res.reason.startswith("parse function simhelpers:parse_log raised FileNotFoundError")
    assert "z.txt" in res.reason


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


# ---------------------------------------------------------------------------------------
# Run directories
# ---------------------------------------------------------------------------------------
def test_two_runs_never_share_a_workdir(root: Path) -> None:
    sim = behave(root, "ok", keep_workdirs=True)
    first = sim(INPUTS, run_id="same")
    retry = sim(INPUTS, run_id="same")
    assert first.workdir == str(root / "same")
    assert retry.workdir == str(root / "same-retry1")
    # Concurrent runs from threads (as in a threaded Dask worker) with one run id.
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: sim(INPUTS, run_id="same"), range(4)))
    dirs = {r.workdir for r in results} | {first.workdir, retry.workdir}
    assert len(dirs) == 6 and all(r.ok for r in results)
    # Every directory holds exactly its own run's files.
    for d in dirs:
        assert sorted(p.name for p in Path(d or "").iterdir()) == ["input.json", "output.json", "stderr.txt", "stdout.txt"]
    # Without a run id every run gets a fresh unique name.
    anon = {sim(INPUTS).workdir for _ in range(2)}
    assert len(anon) == 2


def test_run_id_is_sanitized_into_the_workdir_root(root: Path) -> None:
    sim = behave(root, "exit1")
    res = sim(INPUTS, run_id="../../escape me/$(x)")
    assert res.status == "failed"
    run_dir = Path(res.workdir or "")
    assert run_dir.parent == root
    assert run_dir.name == "escape_me_x_"
    assert not (root.parent / "escape me").exists()


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


def test_malformed_json_is_failed_naming_json(root: Path) -> None:
    res = behave(root, "malformed")(INPUTS)
    assert res.status == "failed"
    assert res.reason.startswith("output file output.json is not valid JSON: ")
    assert res.workdir is not None and Path(res.workdir, "output.json").exists()


def test_missing_output_is_failed_naming_it(root: Path) -> None:
    res = behave(root, "omit")(INPUTS)
    assert res.status == "failed"
    assert res.reason == "output 'y' missing from output.json (found: ['w', 'z'])"


def test_nan_output_is_failed_naming_nan(root: Path) -> None:
    res = behave(root, "nan")(INPUTS)
    assert res.status == "failed"
    assert res.reason == "output 'y' is nan"


def test_non_numeric_output_and_missing_file(root: Path) -> None:
    res = behave(root, "text")(INPUTS)
    assert res.status == "failed" and res.reason == "output 'y' is not a number: 'diverged'"
    res = behave(root, "nofile")(INPUTS)
    assert res.status == "failed"
    assert res.reason == "output file output.json was not written (the run directory holds ['input.json'])"


@pytest.mark.parametrize(
    "command",
    [
        ["/bin/sh", str(SCRIPTS / "hang.sh")],
        ["/bin/sh", str(SCRIPTS / "hang_trap.sh")],
        [PY, str(SCRIPTS / "hang_trap.py")],
    ],
    ids=["sleep-forever", "sh-traps-sigterm", "python-ignores-sigterm"],
)
def test_timeout_kills_the_whole_process_group(root: Path, command: list[str]) -> None:
    sim = ScriptSimulator(command, ["x1"], ["y"], timeout=1.0, kill_grace=0.5, workdir_root=root)
    start = time.monotonic()
    res = sim({"x1": 1.0}, run_id="hang")
    elapsed = time.monotonic() - start
    assert res.status == "timeout"
    assert res.reason == "timed out after 1.0 s"
    assert elapsed < 3.0, f"took {elapsed:.1f} s"  # required bound: 1 s timeout + 0.5 s grace + slack
    assert res.workdir == str(root / "hang")
    pids = [int(p) for p in (root / "hang" / "pids.txt").read_text().split()]
    assert len(pids) == 2  # the script and its backgrounded grandchild
    leader = pids[0]
    assert [p for p in pids if _alive(p)] == []
    assert _live_members(leader) == []  # nothing of that process group survives


def test_normal_exit_kills_background_leftovers(root: Path) -> None:
    sim = ScriptSimulator(
        ["/bin/sh", str(SCRIPTS / "background.sh"), "{output}"], ["x1"], ["y"], workdir_root=root, keep_workdirs=True
    )
    res = sim({"x1": 1.0})
    assert res.status == "ok", res.reason
    assert res.outputs == {"y": 1.5}
    bg = int(Path(res.workdir or "", "bg.pid").read_text())
    assert not _alive(bg)


def test_large_stdout_is_capped(root: Path) -> None:
    res = behave(root, "big", max_output_bytes=1000)(INPUTS)
    assert res.status == "ok", res.reason
    assert res.outputs == {"y": Y, "z": Z}
    assert len(res.stdout_tail.encode()) <= 1000
    assert res.stdout_tail.endswith("x\nEND\n")


# ---------------------------------------------------------------------------------------
# MUST-SHOW: values are passed verbatim; nothing runs
# ---------------------------------------------------------------------------------------
HOSTILE = {
    "semi": "; rm -rf x",
    "subst": "$(touch PWNED)",
    "ticks": "`touch PWNED_TICKS`",
    "newline": "line one\nline two; touch PWNED_NL",
    "spaces": "  a  b   c ",
    "uni": "ünïcødé ✓ 日本語 \u00a0",
    "dash": "-rf",
    "braces": "{x1} ${semi} %s \\n",
}


def _assert_nothing_ran(*dirs: Path) -> None:
    for d in dirs:
        assert sorted(p.name for p in d.rglob("PWNED*")) == []
        assert (d / "x").exists(), "the file x was removed"


def test_hostile_values_reach_the_script_verbatim_as_arguments_and_json(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x").write_text("must survive")
    names = list(HOSTILE)
    command = [PY, str(SCRIPTS / "echo_received.py"), "{input}", "{output}"]
    command += [f"{{{n}}}" for n in names] + ["--label={semi}|{dash}"]
    sim = ScriptSimulator(command, names, ["n_args"], workdir_root=root, keep_workdirs=True)
    res = sim(HOSTILE, run_id="hostile")
    assert res.status == "ok", (res.reason, res.stderr_tail)
    assert res.outputs == {"n_args": len(names) + 1}
    run_dir = Path(res.workdir or "")
    (run_dir / "x").write_text("also must survive")
    received = json.loads((run_dir / "received.json").read_text(encoding="utf-8"))
    assert received["args"] == [HOSTILE[n] for n in names] + ["--label=; rm -rf x|-rf"]
    assert json.loads(received["input_text"]) == HOSTILE
    _assert_nothing_ran(tmp_path, run_dir)


def test_hostile_values_reach_the_script_verbatim_in_a_template(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x").write_text("must survive")
    names = list(HOSTILE)
    template = "".join(f"{n}=${{{n}}}\n" for n in names) + "literal $$HOME\n"
    sim = ScriptSimulator(
        [PY, str(SCRIPTS / "echo_received.py"), "{input}", "{output}", "{dash}"],
        names,
        ["n_args"],
        template=template,
        input_filename="deck.in",
        workdir_root=root,
        keep_workdirs=True,
    )
    res = sim(HOSTILE)
    assert res.status == "ok", (res.reason, res.stderr_tail)
    run_dir = Path(res.workdir or "")
    received = json.loads((run_dir / "received.json").read_text(encoding="utf-8"))
    assert received["args"] == ["-rf"]
    assert received["input_text"] == "".join(f"{n}={HOSTILE[n]}\n" for n in names) + "literal $HOME\n"
    _assert_nothing_ran(tmp_path)


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
