"""Path confinement: every file a run's wrapper writes or reads stays inside that run's own directory.

What is checked where:

* File names that could leave the run directory (``../../x``, ``/abs/x``,
  ``~/x``) are rejected when the workflow is loaded (``ConfigError`` naming
  ``simulator.output_filename`` / ``input_filename``) and when a
  ScriptSimulator is built (``SimulatorError`` naming the argument).
* Run ids are sanitized into one directory name; each run gets a new
  directory (``exist_ok=False``), so no two runs -- retries, Dask re-runs,
  threads of one worker -- share one, and a symbolic link already sitting
  where a run directory would go is never written through.
* An output that the program made a symbolic link to a file outside the run
  directory (or through a linked directory) is not read: the run is
  ``invalid`` with a reason saying so; a link that stays inside is fine.
* A template is only read (once, at construction): one outside the workflow
  directory or reached through a symbolic link is fine, and the rendered
  deck lands inside the run directory.

The program itself is not sandboxed (it can write wherever its user can);
these tests are about what the wrapper does. Real processes and files only.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from script_helpers import BEHAVE, INTEGRATION_SCRIPTS, behave

from surrogate_al.campaign import Campaign
from surrogate_al.config import load_workflow
from surrogate_al.errors import ConfigError, SimulatorError
from surrogate_al.campaign.build import build_simulator
from surrogate_al.simulation import ScriptSimulator
from surrogate_al.store import CampaignStore

CONFINE = str(Path(__file__).resolve().parent / "scripts" / "confine.py")
PY = sys.executable
INPUTS = {"x1": 1.5, "x2": 0.25}


def _files(directory: Path) -> set[Path]:
    """Every file and symbolic link under ``directory`` (links not followed)."""
    return {p for p in directory.rglob("*") if p.is_file() or p.is_symlink()}


# ---------------------------------------------------------------------------------------
# Moved from tests/integration/test_script_simulator.py
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
    # Every directory holds exactly its own run's files; the first one also counts the run id's starts.
    for d in dirs:
        own = ["input.json", "output.json", "stderr.txt", "stdout.txt"]
        assert sorted(p.name for p in Path(d or "").iterdir()) == sorted(own + ["executions"] * (d == first.workdir))
    assert len((root / "same" / "executions").read_text().splitlines()) == 6
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
# File names: rejected up front, naming the field
# ---------------------------------------------------------------------------------------
ESCAPING_NAMES = ["../../x", "results/../../x", "/tmp/x", "/etc/passwd"]


@pytest.mark.parametrize("field", ["input_filename", "output_filename"])
@pytest.mark.parametrize("value", ESCAPING_NAMES)
def test_escaping_file_names_are_rejected_by_the_workflow_loader(tmp_path: Path, field: str, value: str) -> None:
    wf = tmp_path / "esc.toml"
    wf.write_text(
        textwrap.dedent(
            f"""\
            [campaign]
            budget = 2

            [simulator]
            kind = "script"
            command = ["{PY}", "{BEHAVE}", "ok", "{{input}}", "{{output}}"]
            {field} = "{value}"
            outputs = ["y"]

            [simulator.inputs]
            x1 = {{ low = 0.0, high = 1.0 }}
            """
        )
    )
    with pytest.raises(ConfigError) as info:
        load_workflow(wf)
    message = str(info.value)
    assert f"simulator.{field}: '{value}' must be a relative file name inside the run directory" in message
    assert "\n" not in message


@pytest.mark.parametrize("field", ["input_filename", "output_filename"])
@pytest.mark.parametrize("value", [*ESCAPING_NAMES, "~/x"])
def test_escaping_file_names_are_rejected_by_the_script_simulator(root: Path, field: str, value: str) -> None:
    with pytest.raises(SimulatorError) as info:
        ScriptSimulator([PY, BEHAVE, "ok", "{input}", "{output}"], ["x1"], ["y"], workdir_root=root, **{field: value})
    message = str(info.value)
    assert message.startswith(f"{field} = {value!r} ")
    assert "relative to the run directory" in message or "relative to it" in message
    assert not root.exists() or list(root.iterdir()) == []


# ---------------------------------------------------------------------------------------
# Symbolic links
# ---------------------------------------------------------------------------------------
@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory outside every run directory, holding a valid-looking output file."""
    directory = tmp_path / "outside"
    directory.mkdir()
    (directory / "secret.json").write_text(json.dumps({"y": 42.0}))
    (directory / "output.json").write_text(json.dumps({"y": 43.0}))
    return directory


def _confine(root: Path, outside: Path, mode: str, **kwargs: object) -> ScriptSimulator:
    return ScriptSimulator(
        [PY, CONFINE, mode, str(outside), "{input}"], ["x1"], ["y"], workdir_root=root, **kwargs  # type: ignore[arg-type]
    )


def test_an_output_file_linked_outside_the_run_directory_is_not_read(root: Path, outside: Path) -> None:
    before = {p: p.read_bytes() for p in _files(outside)}
    res = _confine(root, outside, "link-out")({"x1": 1.0}, run_id="r")
    assert res.status == "invalid"
    assert res.reason.startswith(
        f"output file output.json is a symbolic link to {outside / 'secret.json'}, outside the run directory "
    ), res.reason
    assert res.outputs == {}
    assert {p: p.read_bytes() for p in _files(outside)} == before  # nothing read into the result, nothing written


def test_an_output_reached_through_a_directory_linked_outside_is_not_read(root: Path, outside: Path) -> None:
    before = {p: p.read_bytes() for p in _files(outside)}
    res = _confine(root, outside, "dirlink-out", output_filename="res/output.json")({"x1": 1.0}, run_id="r")
    assert res.status == "invalid"
    assert res.reason.startswith(f"output file res/output.json is a symbolic link to {outside / 'output.json'}")
    assert {p: p.read_bytes() for p in _files(outside)} == before


def test_a_link_that_stays_inside_the_run_directory_is_fine(root: Path, outside: Path) -> None:
    res = _confine(root, outside, "link-in")({"x1": 1.5})
    assert res.status == "ok", res.reason
    assert res.outputs == {"y": 3.0}


def test_a_link_where_the_run_directory_would_go_is_never_written_through(root: Path, outside: Path) -> None:
    root.mkdir()
    (root / "same").symlink_to(outside, target_is_directory=True)
    before = _files(outside)
    res = behave(root, "ok", keep_workdirs=True)(INPUTS, run_id="same")
    assert res.ok and res.workdir == str(root / "same-retry1")
    assert _files(outside) == before  # no input.json, stdout.txt, ... written into the linked directory


def test_templates_outside_the_workflow_directory_or_behind_a_link_only_feed_the_run_directory(
    tmp_path: Path,
) -> None:
    """``template = "../shared/deck.tmpl"`` and a template that is a symbolic link: read, rendered into
    the run directory, and nothing is created anywhere else."""
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "deck.tmpl").write_text("x1 = ${x1}\nx2 = ${x2}\nmesh = 2\n")
    work = tmp_path / "wf"
    work.mkdir()
    (work / "linked.tmpl").symlink_to(shared / "deck.tmpl")
    deck_sim = INTEGRATION_SCRIPTS / "deck_sim.py"
    for name, template in (("rel", "../shared/deck.tmpl"), ("link", "linked.tmpl")):
        wf = work / f"{name}.toml"
        wf.write_text(
            textwrap.dedent(
                f"""\
                [campaign]
                budget = 2

                [simulator]
                kind = "script"
                command = ["{PY}", "{deck_sim}", "{{input}}"]
                input_format = "template"
                template = "{template}"
                input_filename = "case.nml"
                output_format = "regex"
                output_regex = {{ y = '^RESULT y = (\\S+)$' }}
                keep_workdirs = true
                workdir = "runs-{name}"
                outputs = ["y"]

                [simulator.inputs]
                x1 = {{ low = 0.0, high = 1.0 }}
                x2 = {{ low = 0.0, high = 1.0 }}
                """
            )
        )
        spec = load_workflow(wf)
        assert Path(spec.simulator.template) == (shared if name == "rel" else work) / (
            "deck.tmpl" if name == "rel" else "linked.tmpl"
        )
        sim = build_simulator(spec, spec.space())
        before = _files(tmp_path)
        res = sim({"x1": 0.5, "x2": 2.0}, run_id="../t")
        assert res.status == "ok", (res.reason, res.stderr_tail)
        run_dir = work / f"runs-{name}" / "t"
        assert res.workdir == str(run_dir)
        assert (run_dir / "case.nml").read_text() == "x1 = 0.5\nx2 = 2.0\nmesh = 2\n"
        new = _files(tmp_path) - before
        assert new and all(p.is_relative_to(run_dir) for p in new), sorted(map(str, new))
        assert (shared / "deck.tmpl").read_text() == "x1 = ${x1}\nx2 = ${x2}\nmesh = 2\n"


# ---------------------------------------------------------------------------------------
# Through a campaign on a Dask worker
# ---------------------------------------------------------------------------------------
def test_in_a_campaign_each_attempt_has_its_own_directory_and_nothing_lands_elsewhere(
    tmp_path: Path, outside: Path
) -> None:
    """3 points, each failing its first attempt and retried: 6 run directories, one per attempt, named
    by campaign, proposal and attempt; each holds only its own run's files; no new file outside them
    (but the store's own files)."""
    wf = tmp_path / "conf.toml"
    wf.write_text(
        textwrap.dedent(
            f"""\
            [campaign]
            name = "conf"
            budget = 3
            concurrency = 1
            initial_design = {{ size = 3 }}
            store = "conf.h5"

            [simulator]
            kind = "script"
            command = ["{PY}", "{CONFINE}", "fail-first", "{outside}", "{{input}}", "{{run_id}}"]
            keep_workdirs = true
            retries = 1
            outputs = ["y"]

            [simulator.inputs]
            x1 = {{ low = 0.0, high = 1.0 }}

            [acquisition]
            policy = "random"

            [cluster]
            kind = "local"
            workers = 1
            """
        )
    )
    before = _files(tmp_path)
    campaign = Campaign.from_workflow(wf)
    try:
        outcome = campaign.run()
    finally:
        campaign.close()
    assert outcome.status == "completed" and outcome.ok == 3

    runs_root = tmp_path / "conf_runs"
    dirs = sorted(p.name for p in runs_root.iterdir())
    assert dirs == [f"sim-conf-p{p}-a{a}" for p in range(3) for a in (1, 2)]
    with CampaignStore.open(tmp_path / "conf.h5", mode="r") as st:
        x1_of = {p.proposal_id: float(p.inputs[0]) for p in st.proposals()}
        assert [(r.proposal_id, r.attempt, r.status) for r in sorted(st.runs(), key=lambda r: (r.proposal_id, r.attempt))] == [
            (p, a, "failed" if a == 1 else "ok") for p in range(3) for a in (1, 2)
        ]
    for p in range(3):
        for a in (1, 2):
            run_dir = runs_root / f"sim-conf-p{p}-a{a}"
            expected = {"input.json", "mine.txt", "stderr.txt", "stdout.txt", "executions"} | (
                {"output.json"} if a == 2 else set()
            )
            assert {f.name for f in run_dir.iterdir()} == expected
            assert json.loads((run_dir / "input.json").read_text()) == {"x1": x1_of[p]}
            assert (run_dir / "mine.txt").read_text() == f"{x1_of[p]!r} {run_dir.name}"
    new = _files(tmp_path) - before
    stray = sorted(str(f) for f in new if not f.is_relative_to(runs_root) and not f.name.startswith("conf.h5"))
    assert stray == []
    assert _files(outside) == {outside / "secret.json", outside / "output.json"}
    assert os.listdir(runs_root)  # sanity: the runs did write
