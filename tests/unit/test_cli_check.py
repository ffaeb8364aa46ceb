"""``surrogate-al check WORKFLOW`` (every problem at once, the simulator, one run) and ``status --json``."""

from __future__ import annotations

import json
import math
import os
import sys
import textwrap
from pathlib import Path

import pytest

from surrogate_al.campaign import Campaign
from surrogate_al.cli import main
from surrogate_al.config import load_workflow
from surrogate_al.errors import ConfigError

ADD_SCRIPT = textwrap.dedent(
    """\
    import json, sys
    x = json.load(open(sys.argv[1]))
    json.dump({"y": x["x1"] + 2 * x["x2"]}, open(sys.argv[2], "w"))
    """
)


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = 0
    try:
        main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def script_workflow(tmp_path: Path, command: list[str], *, campaign: str = "budget = 4", kind: str = "gp") -> Path:
    wf = tmp_path / "wf.toml"
    wf.write_text(
        textwrap.dedent(
            f"""\
            [campaign]
            {campaign}
            store = "wf.h5"

            [simulator]
            kind = "script"
            command = {json.dumps(command)}
            outputs = ["y"]

            [simulator.inputs]
            x1 = {{ low = 0.0, high = 1.0 }}
            x2 = {{ low = 2.0, high = 4.0 }}

            [surrogate]
            kind = "{kind}"
            """
        )
    )
    return wf


def add_command(tmp_path: Path) -> list[str]:
    script = tmp_path / "add.py"
    script.write_text(ADD_SCRIPT)
    return [sys.executable, str(script), "{input}", "{output}"]


def test_three_mistakes_give_three_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wf = script_workflow(tmp_path, add_command(tmp_path), campaign='budget = "ten"\nconcurency = 2', kind="gpx")

    code, _, err = run_main(capsys, "check", str(wf))

    lines = err.strip().splitlines()
    assert code == 2
    assert len(lines) == 3, err
    assert all(line.startswith(f"surrogate-al: error: {wf}: ") for line in lines), err
    assert "campaign.budget: wrong type" in err
    assert "campaign.concurency: unknown key; did you mean 'concurrency'?" in err
    assert "surrogate.kind: 'gpx' is not a known surrogate kind" in err
    assert "Traceback" not in err
    assert not (tmp_path / "wf.h5").exists()


def test_load_workflow_still_raises_the_first_problem_alone(tmp_path: Path) -> None:
    wf = script_workflow(tmp_path, add_command(tmp_path), campaign='budget = "ten"\nconcurency = 2', kind="gpx")
    with pytest.raises(ConfigError) as info:
        load_workflow(wf)
    assert str(info.value).startswith(f"{wf}: campaign.concurency: unknown key")
    assert "surrogate.kind" not in str(info.value)


def test_a_good_workflow_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(capsys, "check", str(script_workflow(tmp_path, add_command(tmp_path))))
    assert code == 0, err
    assert err == ""
    assert "workflow ok" in out


def test_a_missing_program_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wf = script_workflow(tmp_path, [str(tmp_path / "no_such_solver"), "{input}", "{x1}", "{x2}"])
    code, _, err = run_main(capsys, "check", str(wf))
    assert code == 2
    assert f"simulator.command[0]: {str(tmp_path / 'no_such_solver')!r} does not exist" in err, err
    assert len(err.strip().splitlines()) == 1


def test_a_program_not_on_path_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wf = script_workflow(tmp_path, ["no-such-solver-39", "{input}"])
    code, _, err = run_main(capsys, "check", str(wf))
    assert code == 2
    assert "simulator.command[0]: 'no-such-solver-39' is not on PATH" in err, err


def test_a_program_that_is_not_executable_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    solver = tmp_path / "solver.sh"
    solver.write_text("#!/bin/sh\nexit 0\n")
    os.chmod(solver, 0o644)
    code, _, err = run_main(capsys, "check", str(script_workflow(tmp_path, [str(solver), "{input}"])))
    assert code == 2
    assert f"simulator.command[0]: {str(solver)!r} is not executable; chmod +x" in err, err


def test_a_python_function_that_cannot_be_imported_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wf = tmp_path / "py.toml"
    wf.write_text(
        textwrap.dedent(
            """\
            [campaign]
            budget = 4

            [simulator]
            kind = "python"
            function = "no_such_module_39:run"
            outputs = ["y"]
            inputs = { x1 = { low = 0.0, high = 1.0 } }
            """
        )
    )
    code, _, err = run_main(capsys, "check", str(wf))
    assert code == 2
    assert "simulator.function: cannot import 'no_such_module_39:run'" in err, err


def test_run_one_runs_the_script_at_the_centre_and_shows_its_outputs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wf = script_workflow(tmp_path, add_command(tmp_path))
    code, out, err = run_main(capsys, "check", str(wf), "--run-one")
    assert code == 0, err
    assert "x1 = 0.5" in out and "x2 = 3" in out, out
    assert "y = 6.5" in out, out  # 0.5 + 2 * 3
    assert not (tmp_path / "wf.h5").exists()


def test_run_one_reports_a_failing_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "fails.py"
    script.write_text("import sys\nsys.stderr.write('mesh too coarse\\n')\nsys.exit(3)\n")
    wf = script_workflow(tmp_path, [sys.executable, str(script), "{input}"])
    code, _, err = run_main(capsys, "check", str(wf), "--run-one")
    assert code == 2
    assert "the test run failed: exit code 3" in err, err
    assert "mesh too coarse" in err


def test_status_json_has_state_budget_and_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wf = script_workflow(tmp_path, add_command(tmp_path), campaign="budget = 5\ninitial_design = { size = 3 }")
    campaign = Campaign.create(load_workflow(wf))
    with campaign:
        for trial in campaign.ask(2):
            campaign.tell(trial, campaign.simulator(trial.inputs))
    store = tmp_path / "wf.h5"

    code, out, err = run_main(capsys, "status", "--json", str(store))

    assert code == 0, err
    data = json.loads(out)
    assert data["path"] == str(store)
    assert data["state"] == "created"
    assert data["budget"] == {"used": 2, "total": 5}
    assert data["counts"] == {"ok": 2}
    assert data["in_flight"] == 1
    assert data["driver"] is None
    assert all(v is None or math.isfinite(v) for v in data["metrics"].values())
