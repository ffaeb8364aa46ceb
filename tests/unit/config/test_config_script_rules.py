"""A workflow's script settings validate exactly when ScriptSimulator accepts them (one set of rules)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from surrogate_al.config import parse_workflow
from surrogate_al.errors import ConfigError, SimulatorError
from surrogate_al.simulation import ScriptSimulator

SCRIPT: dict[str, Any] = {
    "kind": "script",
    "command": ["python", "/opt/sim.py", "{input}", "{output}"],
    "inputs": {"x1": {"low": 0.0, "high": 1.0}},
    "outputs": ["y"],
}

# Settings (replacing those of SCRIPT) that both must reject, and some that both must accept.
CASES: list[dict[str, Any]] = [
    {"command": ["sim", "{x1!r}", "{input}"]},
    {"command": ["sim", "{x1:{x1}}", "{input}"]},
    {"command": ["sim", "{x1:q}", "{input}"]},
    {"command": ["sim", "{x1[0]}", "{input}"]},
    {"command": ["sim", "{x1", "{input}"]},
    {"command": ["sim", "{outfile}", "{input}"]},
    {"output_filename": "stdout.txt"},
    {"input_filename": "stderr.txt"},
    {"output_filename": "~/x.json"},
    {"output_filename": "."},
    {"output_filename": "out/"},
    {"output_filename": " "},
    {"output_filename": "../x.json"},
    {"input_filename": "io.json", "output_filename": "io.json"},
    {"output_format": "regex", "output_regex": {"y": "(a)(b)"}, "command": ["sim", "{input}"]},
    {"output_format": "regex", "output_regex": {"y": "("}, "command": ["sim", "{input}"]},
    {"output_format": "keyvalue"},
    {"input_format": "none", "command": ["sim", "{x1}", "{input}"]},
    {"input_format": "none", "command": ["sim", "{output}"]},
    {"env": {"A=B": "1"}},
    {"env": {"A": "a\x00b"}},
    {"inputs": {"workdir": {"low": 0.0, "high": 1.0}}, "command": ["sim", "{workdir}", "{input}"]},
    # Accepted by both:
    {"command": ["sim", "--x={x1:.6e}", "{workdir}/{run_id}", "{input}", "{output}", "{{literal}}"]},
    {"output_format": "keyvalue", "command": ["sim", "{input}"]},
    {"output_format": "csv"},
    {"output_filename": "results/out.json"},
    {"output_format": "regex", "output_regex": {"y": r"y = (\S+)"}, "command": ["sim", "{input}"]},
    {"output_format": "parse", "parse": "mypkg.io:Reader.read", "command": ["sim", "{input}"]},
    {"input_format": "none", "command": ["sim", "{x1}", "{output}"]},
    {"env": {"OMP_NUM_THREADS": "1"}},
]


def simulator_kwargs(settings: dict[str, Any], root: Path) -> dict[str, Any]:
    """ScriptSimulator's arguments for the raw ``[simulator]`` settings."""
    names = (
        "command", "input_format", "input_filename", "output_format", "output_filename", "output_regex", "parse", "env"
    )
    kwargs = {name: settings[name] for name in names if name in settings}
    kwargs.update(input_names=list(settings["inputs"]), output_names=settings["outputs"], workdir_root=root)
    return kwargs


@pytest.mark.parametrize("changes", CASES, ids=[repr(c) for c in CASES])
def test_workflow_accepts_exactly_what_the_script_simulator_accepts(tmp_path: Path, changes: dict[str, Any]) -> None:
    settings = {**copy.deepcopy(SCRIPT), **changes}
    try:
        parse_workflow({"campaign": {"budget": 4}, "simulator": settings}, tmp_path, "wf.toml")
    except ConfigError:
        config_accepts = False
    else:
        config_accepts = True
    try:
        ScriptSimulator(**simulator_kwargs(settings, tmp_path / "runs"))
    except SimulatorError:
        simulator_accepts = False
    else:
        simulator_accepts = True
    assert config_accepts == simulator_accepts
