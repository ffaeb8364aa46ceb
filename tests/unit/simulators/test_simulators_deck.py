"""The compiled input-deck example: build with the machine's C compiler, run through ScriptSimulator."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from simulators import deck_solver
from surrogate_al.errors import SimulatorError

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def executable(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler (cc/gcc) on PATH")
    return deck_solver.build(tmp_path_factory.mktemp("deck_bin"))


def test_script_simulator_matches_the_python_reference(executable: Path, tmp_path: Path) -> None:
    sim = deck_solver.script_simulator(executable, tmp_path / "runs", timeout=60)
    assert sim.input_names == deck_solver.INPUTS.names and sim.output_names == deck_solver.OUTPUTS
    for i, record in enumerate(deck_solver.INPUTS.to_records(deck_solver.INPUTS.design("sobol", 3, seed=5))):
        result = sim(record, run_id=f"p{i}")
        assert result.status == "ok", (result.reason, result.stderr_tail)
        expected = deck_solver.reference(**record)
        for name in deck_solver.OUTPUTS:
            assert result.outputs[name] == pytest.approx(expected[name], rel=1e-9, abs=1e-12), name
    assert list((tmp_path / "runs").iterdir()) == []  # successful run directories are cleaned up


def test_amplitude_matches_the_steady_state_formula(executable: Path, tmp_path: Path) -> None:
    sim = deck_solver.script_simulator(executable, tmp_path / "runs")
    fixed = deck_solver.fixed_parameters()
    k = fixed["mass"] * fixed["natural_frequency"] ** 2
    for zeta, r, f0 in ((0.05, 1.0, 1.0), (0.3, 0.6, 2.0), (0.5, 1.4, 0.5)):
        result = sim({"damping_ratio": zeta, "frequency_ratio": r, "force_amplitude": f0})
        assert result.ok, result.reason
        steady = (f0 / k) / math.sqrt((1 - r**2) ** 2 + (2 * zeta * r) ** 2)
        assert result.outputs["amplitude"] == pytest.approx(steady, rel=1e-4)


def test_rendered_deck_holds_the_inputs_and_the_fixed_entries(executable: Path, tmp_path: Path) -> None:
    sim = deck_solver.script_simulator(executable, tmp_path / "runs", keep_workdirs=True)
    inputs = {"damping_ratio": 0.123, "frequency_ratio": 0.987, "force_amplitude": 1.5}
    result = sim(inputs, run_id="kept")
    assert result.ok and result.workdir is not None
    deck = deck_solver.read_deck((Path(result.workdir) / "deck.in").read_text())
    assert {k: float(deck[k]) for k in inputs} == inputs
    assert {k: float(v) for k, v in deck.items() if k not in inputs} == deck_solver.fixed_parameters()


def test_invalid_deck_value_is_a_failed_run_with_the_solvers_message(executable: Path, tmp_path: Path) -> None:
    sim = deck_solver.script_simulator(executable, tmp_path / "runs")
    result = sim({"damping_ratio": 0.1, "frequency_ratio": -1.0, "force_amplitude": 1.0})
    assert result.status == "failed"
    assert result.reason == "exit code 2"
    assert "frequency_ratio" in result.stderr_tail


def test_executable_rejects_bad_decks_with_exit_2(executable: Path, tmp_path: Path) -> None:
    template = deck_solver.TEMPLATE.read_text()
    cases = {
        "missing": ("\n".join(line for line in template.splitlines() if not line.startswith("x0")), "'x0' is missing"),
        "unknown": (template + "\ndamping = 0.1\n", "unknown key 'damping'"),
        "not-a-number": (template.replace("${damping_ratio}", "0.1abc"), "'damping_ratio' is not a finite number"),
    }
    for name, (text, needle) in cases.items():
        deck = tmp_path / f"{name}.in"
        deck.write_text(text.replace("${damping_ratio}", "0.1").replace("${frequency_ratio}", "1.0")
                        .replace("${force_amplitude}", "1.0"))
        proc = subprocess.run([str(executable), str(deck)], capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode == 2, name
        assert needle in proc.stderr, (name, proc.stderr)
        assert proc.stdout == ""


def test_build_as_a_script_prints_the_executable(tmp_path: Path) -> None:
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler (cc/gcc) on PATH")
    proc = subprocess.run([sys.executable, "-m", "simulators.deck_solver", str(tmp_path / "bin")], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    built = Path(proc.stdout.strip())
    assert built == (tmp_path / "bin" / "deck_solver").resolve() and built.is_file()
    assert [p.name for p in built.parent.iterdir()] == ["deck_solver"]  # no partial file left


def test_build_without_a_compiler_says_how_to_get_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no cc, no gcc
    with pytest.raises(SimulatorError, match=r"no C compiler \(cc or gcc\) on PATH.*cc -O2 -o deck_solver"):
        deck_solver.build(tmp_path / "bin")


def test_script_simulator_needs_an_executable(tmp_path: Path) -> None:
    with pytest.raises(SimulatorError, match="is not an executable file; build it first"):
        deck_solver.script_simulator(tmp_path / "deck_solver", tmp_path / "runs")


def test_read_deck_errors_name_the_line() -> None:
    with pytest.raises(SimulatorError, match="deck line 2: expected 'key = value'"):
        deck_solver.read_deck("mass = 1\nnonsense\n")
    with pytest.raises(SimulatorError, match="deck line 1: unknown key 'masss'"):
        deck_solver.read_deck("masss = 1\n")
    with pytest.raises(SimulatorError, match="deck line 2: key 'mass' given twice"):
        deck_solver.read_deck("mass = 1\nmass = 2  # again\n")
