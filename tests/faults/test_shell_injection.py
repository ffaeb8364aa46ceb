"""Shell injection: hostile input values and template fields reach the script byte for byte; nothing runs.

There is no shell anywhere between the campaign and the program: the command
is an argument list (``subprocess.Popen(argv, shell=False)``), a value fills
one argument verbatim, and templates are rendered with ``string.Template``.
The values here would each run something if a shell ever saw them
(``; touch PWNED``, ``$(id)``, backticks, a newline, ``-rf``); the tests check
that the script received them unchanged and that no ``PWNED*`` file appears
under the test's temporary directory, the working directory, or the run
directories, and that a file named ``x`` survives ``; rm -rf x``.

Real processes: ``echo_received.py`` records exactly what it was given.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import pytest

from surrogate_al.campaign import Campaign
from surrogate_al.simulation import ScriptSimulator
from surrogate_al.store import CampaignStore

INTEGRATION_SCRIPTS = Path(__file__).resolve().parents[1] / "integration" / "scripts"
ECHO = str(INTEGRATION_SCRIPTS / "echo_received.py")
PY = sys.executable
START_CWD = Path.cwd()

HOSTILE = {
    "semi": "; rm -rf x",
    "semi_touch": "; touch PWNED",
    "subst": "$(touch PWNED)",
    "subst_id": "$(id)",
    "ticks": "`touch PWNED_TICKS`",
    "newline": "line one\nline two; touch PWNED_NL",
    "spaces": "  a  b   c ",
    "uni": "ünïcødé ✓ 日本語 \u00a0",
    "dash": "-rf",
    "braces": "{x1} ${semi} %s \\n",
    "quotes": "'\"; touch PWNED_QUOTE; echo \"'",
}


def _assert_nothing_ran(*dirs: Path) -> None:
    """No PWNED* file under any of ``dirs`` (recursively) nor in the starting cwd; ``x`` still there."""
    for d in dirs:
        assert sorted(p.name for p in d.rglob("PWNED*")) == []
        assert (d / "x").exists(), "the file x was removed"
    assert sorted(p.name for p in Path.cwd().glob("PWNED*")) == []
    assert sorted(p.name for p in START_CWD.glob("PWNED*")) == []


def test_hostile_values_reach_the_script_verbatim_as_arguments_and_json(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x").write_text("must survive")
    names = list(HOSTILE)
    command = [PY, ECHO, "{input}", "{output}"]
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
        [PY, ECHO, "{input}", "{output}", "{dash}"],
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


def test_hostile_fixed_inputs_in_a_workflow_reach_the_script_verbatim(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same values written in a workflow file (TOML strings in ``fixed_inputs``), run by a campaign:
    through the loader, the stored spec and the factory, they arrive unchanged as arguments, in the
    JSON inputs and in a template; nothing runs."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x").write_text("must survive")
    names = list(HOSTILE)
    # JSON string syntax is TOML basic-string syntax for these characters (\n, \", \\, non-ASCII).
    fixed = ", ".join(f"{n} = {json.dumps(v, ensure_ascii=False)}" for n, v in HOSTILE.items())
    args = ", ".join(json.dumps(f"{{{n}}}") for n in names)
    wf = tmp_path / "inj.toml"
    wf.write_text(
        textwrap.dedent(
            f"""\
            [campaign]
            name = "inj"
            budget = 2
            concurrency = 1
            initial_design = {{ size = 2 }}
            store = "inj.h5"

            [simulator]
            kind = "script"
            command = [{json.dumps(PY)}, {json.dumps(ECHO)}, "{{input}}", "{{output}}", {args}]
            keep_workdirs = true
            outputs = ["n_args"]
            fixed_inputs = {{ {fixed} }}

            [simulator.inputs]
            x1 = {{ low = 0.0, high = 1.0 }}

            [acquisition]
            policy = "random"
            """
        ),
        encoding="utf-8",
    )
    campaign = Campaign.from_workflow(wf)
    try:
        while not campaign.done():
            for trial in campaign.ask(1):
                run_id = f"p{trial.proposal_id}a{trial.attempt}"
                campaign.tell(trial, campaign.simulator(trial.inputs, run_id=run_id))
    finally:
        campaign.close()
    with CampaignStore.open(tmp_path / "inj.h5", mode="r") as st:
        final = st.final_runs()
    assert [r.status for r in final] == ["ok", "ok"], [r.reason for r in final]
    assert all(r.outputs[0] == len(names) for r in final)
    run_dirs = sorted((tmp_path / "inj_runs").iterdir())
    assert len(run_dirs) == 2
    for run_dir in run_dirs:
        received = json.loads((run_dir / "received.json").read_text(encoding="utf-8"))
        assert received["args"] == [HOSTILE[n] for n in names]
        given = json.loads(received["input_text"])
        assert {n: given[n] for n in names} == HOSTILE
        assert os.path.samefile(received["cwd"], run_dir)
    _assert_nothing_ran(tmp_path)
