"""Every shipped workflow file loads, and its simulator runs one point of its initial design."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from surrogate_al.config import load_workflow
from surrogate_al.campaign.build import build_policy, build_simulator

WORKFLOWS = sorted((Path(__file__).resolve().parents[2] / "workflows").glob("*.toml"))


def test_the_expected_workflows_ship() -> None:
    names = {p.stem for p in WORKFLOWS}
    assert {"quickstart", "burgers", "heat2d", "ignition", "script_heat2d"} <= names


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_workflow_builds_and_its_simulator_runs(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Script workflows call `python`: make it this interpreter, as an activated venv would.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    spec = load_workflow(path)
    space = spec.space()
    build_policy(spec, space)  # the surrogate and acquisition options are accepted
    sim = build_simulator(spec, space)
    if spec.simulator.kind == "script":
        sim.workdir_root = tmp_path  # keep test runs out of the repository
    point = space.to_records(space.design("sobol", 1, seed=spec.campaign.seed))[0]
    result = sim(point, run_id="check")
    assert result.status == "ok", result.reason
    assert set(result.outputs) == set(spec.simulator.outputs)
