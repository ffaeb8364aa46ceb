"""``python -m simulators.NAME input.json output.json``: real subprocesses, and the shared entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from simulators import _cli, branin, heat2d

ROOT = Path(__file__).resolve().parents[3]  # the repository root: simulators/ is importable from there


def run_script(name: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", f"simulators.{name}", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def branin_main(*argv: str | Path) -> int:
    return _cli.main(branin.INPUTS, branin.OUTPUTS, branin.run, [str(a) for a in argv])


# -- real subprocesses -------------------------------------------------------------------
def test_analytic_script_writes_the_same_outputs_as_run(tmp_path: Path) -> None:
    inputs = {"x1": -3.14159, "x2": 12.275}
    (tmp_path / "in.json").write_text(json.dumps(inputs))
    proc = run_script("branin", tmp_path / "in.json", tmp_path / "out.json")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert json.loads((tmp_path / "out.json").read_text()) == branin.run(**inputs)
    assert {p.name for p in tmp_path.iterdir()} == {"in.json", "out.json"}  # no temporary file left behind


def test_physics_script_writes_the_same_outputs_as_run(tmp_path: Path) -> None:
    inputs = {"k_sw": 0.3, "k_se": 2.0, "k_nw": 5.0, "k_ne": 0.8, "source": 250, "t_left": 360.0}
    (tmp_path / "in.json").write_text(json.dumps(inputs))
    proc = run_script("heat2d", tmp_path / "in.json", tmp_path / "out.json")
    assert proc.returncode == 0, proc.stderr
    written = json.loads((tmp_path / "out.json").read_text())
    assert set(written) == set(heat2d.OUTPUTS)
    assert written == pytest.approx(heat2d.run(**inputs), rel=1e-12)


@pytest.mark.parametrize(
    "content, needle",
    [('{"x1": 1.0, ', "is not valid JSON"), ('{"x1": 1.0}', "missing inputs ['x2']")],
    ids=["truncated-json", "missing-input"],
)
def test_script_with_bad_input_json_exits_2_with_one_line(tmp_path: Path, content: str, needle: str) -> None:
    (tmp_path / "in.json").write_text(content)
    proc = run_script("branin", tmp_path / "in.json", tmp_path / "out.json")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("python -m simulators.branin: ") and needle in lines[0]
    assert not (tmp_path / "out.json").exists()


# -- the entry point in-process (same code, without an interpreter start per case) -------
@pytest.mark.parametrize(
    "content, needles",
    [
        ("[1.0, 2.0]", ["JSON list", "'x1'", "'x2'"]),
        ('{"x1": 1.0, "x2": 2.0, "x3": 0.5}', ["unknown inputs ['x3']"]),
        ('{"x2": 2.0, "y": 0.5}', ["missing inputs ['x1']", "unknown inputs ['y']"]),
        ('{"x1": "one", "x2": 2.0}', ["input 'x1' = 'one'", "finite number"]),
        ('{"x1": true, "x2": 2.0}', ["input 'x1' = True", "finite number"]),
        ('{"x1": NaN, "x2": 2.0}', ["input 'x1' = nan", "finite number"]),
    ],
    ids=["not-an-object", "unknown", "missing-and-unknown", "string", "bool", "nan"],
)
def test_bad_inputs_exit_2_with_one_line_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, needles: list[str]
) -> None:
    (tmp_path / "in.json").write_text(content)
    assert branin_main(tmp_path / "in.json", tmp_path / "out.json") == _cli.EXIT_USAGE
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    for needle in needles:
        assert needle in lines[0]
    assert not (tmp_path / "out.json").exists()


def test_wrong_arguments_missing_file_and_missing_directory_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert branin_main(tmp_path / "in.json") == _cli.EXIT_USAGE
    assert "usage: " in capsys.readouterr().err
    assert branin_main(tmp_path / "absent.json", tmp_path / "out.json") == _cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "cannot read input file" in err and "absent.json" in err
    (tmp_path / "in.json").write_text('{"x1": 1.0, "x2": 2.0}')
    assert branin_main(tmp_path / "in.json", tmp_path / "no" / "out.json") == _cli.EXIT_USAGE
    assert "does not exist" in capsys.readouterr().err


def test_failing_simulation_exits_1_with_the_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inputs = {"k_sw": 0.0, "k_se": 2.0, "k_nw": 5.0, "k_ne": 0.8, "source": 250, "t_left": 360.0}
    (tmp_path / "in.json").write_text(json.dumps(inputs))
    code = _cli.main(heat2d.INPUTS, heat2d.OUTPUTS, heat2d.run, [str(tmp_path / "in.json"), str(tmp_path / "o.json")])
    assert code == _cli.EXIT_FAILED
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "simulation failed: DataError: k_sw = 0.0 must be > 0" in lines[0]
    assert not (tmp_path / "o.json").exists()


@pytest.mark.parametrize("returned, shown", [({"y": float("inf")}, "inf"), ({"y": "abc"}, "'abc'"), ({}, "None")])
def test_bad_output_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], returned: dict[str, object], shown: str
) -> None:
    (tmp_path / "in.json").write_text('{"x1": 1.0, "x2": 2.0}')
    def broken(**_: float) -> dict[str, object]:
        return returned

    argv = [str(tmp_path / "in.json"), str(tmp_path / "out.json")]
    assert _cli.main(branin.INPUTS, branin.OUTPUTS, broken, argv) == _cli.EXIT_FAILED  # type: ignore[arg-type]
    assert f"output 'y' is {shown}, expected a finite number" in capsys.readouterr().err
    assert not (tmp_path / "out.json").exists()
