"""Unit tests for surrogate_al.simulation.script: ScriptSimulator construction (no runs).

Runs of external scripts are in tests/integration/test_script_simulator.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from surrogate_al.errors import SimulatorError
from surrogate_al.simulation import ScriptSimulator


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
