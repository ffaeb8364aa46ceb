"""The CLI's contract on bad input: exit 2, one line on stderr, no traceback, nothing stored."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from surrogate_al.cli import main

BAD_WORKFLOWS = sorted((Path(__file__).parent / "data" / "workflows_bad").glob("*.toml"))


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


def assert_one_clear_line(err: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("surrogate-al: error: ")
    assert "Traceback" not in err


@pytest.mark.parametrize("workflow", BAD_WORKFLOWS, ids=lambda p: p.stem)
def test_broken_workflow_exits_2_with_one_line_naming_the_file(
    workflow: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run_main(capsys, "run", str(workflow), "--no-progress")
    assert code == 2
    assert_one_clear_line(err)
    assert workflow.name in err
    assert not list(tmp_path.glob("*.h5")), "a broken workflow must not create a store"


def test_at_least_twenty_broken_workflows_are_exercised() -> None:
    assert len(BAD_WORKFLOWS) >= 20


def test_missing_argument_is_a_usage_error_on_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(capsys, "run")
    assert code == 2
    assert_one_clear_line(err)
    assert "WORKFLOW" in err


def test_console_script_help_runs() -> None:
    res = subprocess.run([sys.executable, "-m", "surrogate_al.cli", "--help"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0
    for command in ("run", "resume", "status", "report", "predict", "export"):
        assert command in res.stdout


def test_broken_workflow_through_a_real_process(tmp_path: Path) -> None:
    bad = Path(__file__).parent / "data" / "workflows_bad" / "bounds_reversed.toml"
    res = subprocess.run(
        [sys.executable, "-m", "surrogate_al.cli", "run", str(bad)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert res.returncode == 2
    assert_one_clear_line(res.stderr)
    assert "simulator.inputs" in res.stderr
