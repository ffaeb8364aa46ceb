"""Criterion 16: bad input never crashes the CLI and is never modified.

* Files that are not campaign stores, given to every command that reads a
  store: exit 2, one line on stderr naming the file, no traceback, and the
  file (or directory, or lone journal) left byte-identical, no lock or journal
  created next to it.
* Malformed workflow files (the fixtures of ``tests/unit/data/workflows_bad``
  plus generated ones: empty, binary, not UTF-8, nested too deeply, ...) given
  to ``surrogate-al run``: exit 2, one line naming the file, the file
  byte-identical, no store created. In-process for all of them, through the
  real console script for a sample.
* Hypothesis properties: the workflow loader, on random and mutated TOML
  text, and the simulator output parsers, on random bytes, raise nothing but
  the project's own errors (the parsers return a failure reason instead).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from surrogate_al.cli import main
from surrogate_al.config import WorkflowSpec, load_workflow
from surrogate_al.errors import ConfigError
from surrogate_al.simulation import ScriptSimulator
from surrogate_al.store import CampaignStore

from .held import console_script
from .helpers import REPO

UNIT_DATA = REPO / "tests" / "unit" / "data"
BAD_WORKFLOWS = sorted((UNIT_DATA / "workflows_bad").glob("*.toml"))
GOOD_WORKFLOWS = [UNIT_DATA / "workflows_good" / "minimal.toml", UNIT_DATA / "workflows_good" / "slurm.toml"]


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the CLI in this process; return (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


def assert_one_clear_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("surrogate-al: error: ")
    assert "Traceback" not in err
    return lines[0]


def tree(directory: Path) -> dict[str, bytes | None]:
    """Every file (bytes) and directory (None) under ``directory``, by relative path."""
    return {
        str(p.relative_to(directory)): (p.read_bytes() if p.is_file() else None) for p in sorted(directory.rglob("*"))
    }


# --------------------------------------------------------------------------- not a store

INPUTS, OUTPUTS = ("x0", "x1"), ("y",)


@pytest.fixture(scope="module")
def real_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid store with results and a journal copy taken while it was being written."""
    path = tmp_path_factory.mktemp("real") / "real.h5"
    with CampaignStore.create(path, spec={"campaign": {"budget": 5}}, input_names=INPUTS, output_names=OUTPUTS,
                              snapshot_interval=1e9) as store:
        unit = np.random.default_rng(0).random((5, 2))
        for pid in store.add_proposals(unit, unit, batch_id=0, source="initial"):
            store.add_run(proposal_id=pid, attempt=1, final=True, status="ok", outputs={"y": float(pid)},
                          submit_time=1.0, start_time=1.0, finish_time=2.0, wall_time=1.0)
        shutil.copy(f"{path}.journal", path.with_name("journal-copy"))
    return path


def _copy_and_edit(real: Path, target: Path, edit: Callable[[h5py.File], None]) -> None:
    shutil.copy(real, target)
    with h5py.File(target, "a") as f:
        edit(f)


def _set_attr(name: str, value: Any) -> Callable[[h5py.File], None]:
    def edit(f: h5py.File) -> None:
        f.attrs[name] = value

    return edit


def _replace_dataset(name: str, value: Any) -> Callable[[h5py.File], None]:
    def edit(f: h5py.File) -> None:
        del f[name]
        f.create_dataset(name, data=value, dtype=h5py.string_dtype() if isinstance(value, str) else None)

    return edit


def _delete(name: str) -> Callable[[h5py.File], None]:
    def edit(f: h5py.File) -> None:
        del f[name]

    return edit


def _foreign_hdf5(target: Path) -> None:
    with h5py.File(target, "w") as f:  # what another program writes
        f["data"] = np.arange(5)
        f.attrs["creator"] = "some other program"


# kind -> (make(real store, target), words the message must contain)
NOT_A_STORE: dict[str, tuple[Callable[[Path, Path], None], str]] = {
    "missing": (lambda real, p: None, "no such campaign store"),
    "empty-zero-bytes": (lambda real, p: p.write_bytes(b""), "empty file (0 bytes)"),
    "text": (lambda real, p: p.write_text("not an hdf5 file at all\n"), "not an HDF5 file"),
    "json-text": (lambda real, p: p.write_text(json.dumps({"campaign": {"budget": 3}})), "not an HDF5 file"),
    "random-bytes": (lambda real, p: p.write_bytes(np.random.default_rng(1).bytes(4096)), "not an HDF5 file"),
    "hdf5-signature-only": (lambda real, p: p.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100), "truncated or damaged"),
    "truncated-store": (lambda real, p: p.write_bytes(real.read_bytes()[: real.stat().st_size // 2]),
                        "truncated or damaged"),
    "foreign-hdf5": (lambda real, p: _foreign_hdf5(p), "not a surrogate_al campaign store"),
    "schema-version-999": (lambda real, p: _copy_and_edit(real, p, _set_attr("schema_version", 999)),
                           "schema_version 999, newer than"),
    "schema-version-a-string": (lambda real, p: _copy_and_edit(real, p, _set_attr("schema_version", "1")),
                                "expected an integer"),
    "corrupt-journal-seq-attribute": (lambda real, p: _copy_and_edit(real, p, _set_attr("journal_seq", "seventeen")),
                                      "damaged campaign store"),
    "spec-not-json": (lambda real, p: _copy_and_edit(real, p, _replace_dataset("spec", "{not json")),
                      "damaged campaign store"),
    "spec-nested-too-deeply": (lambda real, p: _copy_and_edit(real, p, _replace_dataset("spec", "[" * 100_000)),
                               "nested too deeply"),
    "dataset-missing": (lambda real, p: _copy_and_edit(real, p, _delete("runs/Y")), "dataset /runs/Y is missing"),
    "directory": (lambda real, p: (p.mkdir(), (p / "inside.txt").write_text("x")), "is a directory"),
    "journal-without-h5": (lambda real, p: shutil.copy(real.with_name("journal-copy"), f"{p}.journal"),
                           "no such campaign store"),
    "the-journal-given-as-store": (lambda real, p: shutil.copy(real.with_name("journal-copy"), p),
                                   "not an HDF5 file"),
}
COMMANDS = ("status", "resume", "report", "export", "predict")


def test_at_least_ten_kinds_of_non_stores_are_exercised() -> None:
    assert len(NOT_A_STORE) >= 10


@pytest.mark.parametrize("kind", sorted(NOT_A_STORE))
def test_not_a_store_exits_2(
    kind: str, real_store: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Every store-reading command: exit 2, one line naming the file and what is wrong; nothing changed or added.

    (Subsumes the former ``test_foreign_hdf5_exits_2_and_is_untouched``: kind ``foreign-hdf5``.)
    """
    make, words = NOT_A_STORE[kind]
    where = tmp_path / "where"
    where.mkdir()
    path = where / "bogus.h5"
    make(real_store, path)
    before = tree(where)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    inputs = out_dir / "inputs.csv"
    inputs.write_text("x0,x1\n0.5,0.5\n")
    extra = {
        "resume": ["--no-progress"],
        "report": ["-o", str(out_dir / "report")],
        "export": ["-o", str(out_dir / "runs.csv")],
        "predict": [str(inputs), "-o", str(out_dir / "pred.csv")],
    }
    for command in COMMANDS:
        code, _, err = run_main(capsys, command, str(path), *extra.get(command, []))
        assert code == 2, (command, err)
        line = assert_one_clear_line(err)
        assert str(path) in line and words in line, (command, line)
        assert tree(where) == before, f"{command} changed or added files next to a {kind} input"
    # (report creates its output directory before it reads the store; an empty one is harmless)
    written = [p.name for p in out_dir.rglob("*") if p.is_file() and p != inputs]
    assert written == [], f"no output may be written for a non-store: {written}"


def test_a_non_store_through_the_real_console_script(real_store: Path, tmp_path: Path) -> None:
    """The same contract from a real process (no in-process exception handling to lean on)."""
    path = tmp_path / "other.h5"
    _foreign_hdf5(path)
    before = path.read_bytes()
    for command in ("status", "resume"):
        res = subprocess.run([*console_script(), command, str(path)], capture_output=True, text=True, timeout=180,
                             check=False,
                             cwd=tmp_path)
        assert res.returncode == 2, res.stderr
        assert "not a surrogate_al campaign store" in assert_one_clear_line(res.stderr)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.h5"]


def test_an_output_path_that_cannot_be_written_is_one_line_not_a_traceback(
    real_store: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """An OSError of the command's own output (here: ``-o`` names a directory) ends in one line, exit 1."""
    before = real_store.read_bytes()
    code, _, err = run_main(capsys, "export", str(real_store), "-o", str(tmp_path))
    assert code == 1
    line = assert_one_clear_line(err)
    assert str(tmp_path) in line and "Is a directory" in line
    assert real_store.read_bytes() == before


# --------------------------------------------------------------------------- malformed workflows

GENERATED_BAD_WORKFLOWS: dict[str, bytes] = {
    "empty.toml": b"",
    "only_comments.toml": b"# nothing here\n",
    "binary_garbage.toml": bytes(range(256)) * 4,
    "latin1_not_utf8.toml": "[campaign]\nname = \"caf\xe9\"\nbudget = 3\n".encode("latin-1"),
    "nul_byte.toml": b"[campaign]\nbudget = 3\x00\n",
    "nested_too_deeply.toml": b"x = " + b"[" * 5000 + b"]" * 5000 + b"\n",
    "integer_of_5000_digits.toml": b"[campaign]\nbudget = " + b"9" * 5000 + b"\n",
    "budget_overflows_a_float.toml": b"[campaign]\nbudget = 1e400\n",
    "duplicate_section.toml": b"[campaign]\nbudget = 3\n[campaign]\nbudget = 4\n",
    "sections_as_array.toml": b"[[campaign]]\nbudget = 3\n",
}


def _generated_workflows(directory: Path) -> list[Path]:
    directory.mkdir()
    paths = []
    for name, content in GENERATED_BAD_WORKFLOWS.items():
        (directory / name).write_bytes(content)
        paths.append(directory / name)
    (directory / "a_directory.toml").mkdir()
    return [*paths, directory / "a_directory.toml", directory / "does_not_exist.toml"]


def test_malformed_workflows_exit_2_with_one_line_and_stay_byte_identical(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """>= 30 malformed workflows through ``run`` in-process: exit 2, one line naming the file, no store, untouched."""
    workflows = [*BAD_WORKFLOWS, *_generated_workflows(tmp_path / "generated")]
    assert len(workflows) >= 30
    fixtures_before = tree(UNIT_DATA / "workflows_bad")
    generated_before = tree(tmp_path / "generated")
    monkeypatch.chdir(tmp_path)
    for workflow in workflows:
        code, out, err = run_main(capsys, "run", str(workflow), "--no-progress")
        assert code == 2, (workflow.name, err)
        line = assert_one_clear_line(err)
        assert workflow.name in line, line
        assert out == ""
    assert tree(UNIT_DATA / "workflows_bad") == fixtures_before
    assert tree(tmp_path / "generated") == generated_before
    assert not list(tmp_path.rglob("*.h5")) and not list((UNIT_DATA / "workflows_bad").glob("*.h5"))
    print(f"{len(workflows)} malformed workflows exercised in-process")


@pytest.mark.parametrize(
    "workflow",
    [
        UNIT_DATA / "workflows_bad" / "invalid_toml_syntax.toml",
        UNIT_DATA / "workflows_bad" / "typo_campaign.toml",
        Path("generated") / "latin1_not_utf8.toml",
    ],
    ids=lambda p: p.stem,
)
def test_malformed_workflows_through_the_real_console_script(workflow: Path, tmp_path: Path) -> None:
    """A sample through a real ``surrogate-al`` process: exit 2, one line, the file untouched, no store."""
    if not workflow.is_absolute():
        workflow = _generated_workflows(tmp_path / "generated")[list(GENERATED_BAD_WORKFLOWS).index(workflow.name)]
    before = workflow.read_bytes()
    res = subprocess.run([*console_script(), "run", str(workflow), "--no-progress"], capture_output=True, text=True,
                         check=False,
                         timeout=180, cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert workflow.name in assert_one_clear_line(res.stderr)
    assert workflow.read_bytes() == before
    assert not list(tmp_path.rglob("*.h5"))


# --------------------------------------------------------------------------- properties: workflow text

_GOOD_TEXTS = [p.read_text() for p in GOOD_WORKFLOWS]
_TOML_TOKENS = [
    "1e400", "-0", "nan", "inf", "-inf", "0x1F", "1_000", "1979-05-27T07:32:00Z", '"\\u0000"', "'''", '"""', "[", "]",
    "{", "}", "[[x]]", "[campaign]", "[simulator.inputs]", "=", ",", "#", "\\", "\n", "true", "\ufeff", "9" * 5000,
    "[" * 2000, "{a = " * 500, "x1 = { low = 1.0, high = 0.0 }", 'kind = "script"', "budget = -3", '"\udcff"',
]


@st.composite
def mutated_workflow_text(draw: st.DrawFn) -> str:
    """A valid workflow with 1-4 random edits: cut a slice, insert TOML-ish tokens or random text, swap lines."""
    text = draw(st.sampled_from(_GOOD_TEXTS))
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(text)))
        edit = draw(st.integers(0, 3))
        if edit == 0:
            text = text[:i] + text[i + draw(st.integers(1, 40)) :]
        elif edit == 1:
            text = text[:i] + draw(st.sampled_from(_TOML_TOKENS)) + text[i:]
        elif edit == 2:
            text = text[:i] + draw(st.text(max_size=20)) + text[i:]
        else:
            lines = text.splitlines()
            a, b = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            lines[a], lines[b] = lines[b], lines[a]
            text = "\n".join(lines)
    return text


def _load_workflow_outcome(directory: Path, content: bytes) -> None:
    """load_workflow returns a spec or raises a one-line ConfigError naming the file; nothing else."""
    path = directory / "prop.toml"
    path.write_bytes(content)
    try:
        spec = load_workflow(path)
    except ConfigError as exc:
        message = str(exc)
        assert message.startswith(f"{path}: ") and "\n" not in message and "\r" not in message, message
        event("invalid TOML" if "invalid TOML" in message else "rejected by validation")
        return
    assert isinstance(spec, WorkflowSpec)
    event("a valid workflow")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(mutated_workflow_text().map(lambda t: t.encode("utf-8", "surrogatepass")),
                 st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")),
                 st.binary(max_size=300)))
@example(b"x = " + b"[" * 5000)
@example(b"[campaign]\nbudget = " + b"1" * 5000)
@example(b"\xef\xbb\xbf" + _GOOD_TEXTS[0].encode())
def test_random_workflow_text_raises_only_config_error(tmp_path_factory: pytest.TempPathFactory, content: bytes) -> None:
    _load_workflow_outcome(tmp_path_factory.getbasetemp(), content)


def test_a_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    """Editors on Windows save UTF-8 with a BOM; it is no reason to reject a workflow."""
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + GOOD_WORKFLOWS[0].read_bytes())
    assert load_workflow(path).campaign.budget == 30


# --------------------------------------------------------------------------- properties: output parsers

_PARSER_FORMATS: dict[str, dict[str, Any]] = {
    "json": {"output_format": "json", "output_filename": "out.json"},
    "csv": {"output_format": "csv", "output_filename": "out.csv"},
    "keyvalue": {"output_format": "keyvalue"},  # parsed from stdout
    "regex": {"output_format": "regex", "output_regex": {"y": r"^y:\s*(\S+)", "z": r"z=(\S*)"}},
}

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["y", "z", "w"]) | st.text(max_size=3),
                                                                 inner, max_size=3),
    max_leaves=8,
)
_output_bytes = st.one_of(
    st.binary(max_size=400),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    _json_values.map(lambda v: json.dumps(v).encode()),
    st.lists(st.tuples(st.sampled_from(["y", "z", "w", "y.z", "1y"]), st.sampled_from(["=", ":", " = ", ","]),
                       st.text(max_size=12) | st.floats().map(repr)), max_size=4).map(
        lambda rows: "\n".join(f"{k}{sep}{v}" for k, sep, v in rows).encode("utf-8", "surrogatepass")),
    st.lists(st.lists(st.sampled_from(["y", "z", "1.5", "nan", "1d3", "", '"', "\r", "x" * 200]), max_size=4),
             max_size=3).map(lambda rows: "\n".join(",".join(r) for r in rows).encode()),
)


@pytest.fixture(scope="module")
def parsers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[ScriptSimulator, Path]]:
    """One script simulator per output format, with a run directory to put outputs in."""
    base = tmp_path_factory.mktemp("parsers")
    out = {}
    for fmt, options in _PARSER_FORMATS.items():
        sim = ScriptSimulator(["true"], ["x"], ["y", "z"], workdir_root=base / "runs", **options)
        run_dir = base / fmt
        run_dir.mkdir()
        out[fmt] = (sim, run_dir)
    return out


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fmt=st.sampled_from(sorted(_PARSER_FORMATS)), content=_output_bytes)
@example(fmt="json", content=b"[" * 100_000)
@example(fmt="json", content=b'{"y": ' + b"1" * 5000 + b', "z": 1}')
@example(fmt="json", content=b'{"y": 1e999, "z": 1}')
@example(fmt="csv", content=b"y,z\n" + b"1" * 200_000 + b",2\n")
@example(fmt="keyvalue", content=b"y = 1d3\nz = 0x10\n")
@example(fmt="regex", content=b"y: 1.5\nz=\n")
def test_output_parsers_never_raise(
    parsers: dict[str, tuple[ScriptSimulator, Path]], fmt: str, content: bytes
) -> None:
    """Whatever a simulator writes, parsing gives finite outputs or a reason, never an exception."""
    sim, run_dir = parsers[fmt]
    stdout = run_dir / "stdout.txt"
    target = run_dir / sim.output_filename if sim.output_filename else stdout
    stdout.write_bytes(b"")
    target.write_bytes(content)
    outputs, reason = sim._parse_outputs(run_dir, stdout)
    assert isinstance(outputs, dict) and isinstance(reason, str)
    if outputs:
        assert reason == "" and set(outputs) == {"y", "z"}
        assert all(isinstance(v, float) and np.isfinite(v) for v in outputs.values()), outputs
    else:
        assert reason, "a failed parse must say why"


def test_a_parse_example_that_succeeds_for_each_format(parsers: dict[str, tuple[ScriptSimulator, Path]]) -> None:
    """The property above is not vacuous: each parser does return outputs for well-formed text."""
    good = {"json": b'{"y": 1.5, "z": -2}', "csv": b"y,z\n1.5,-2\n", "keyvalue": b"y = 1.5\nz = -2\n",
            "regex": b"y: 1.5\nz=-2\n"}
    for fmt, content in good.items():
        sim, run_dir = parsers[fmt]
        stdout = run_dir / "stdout.txt"
        stdout.write_bytes(b"")
        (run_dir / sim.output_filename if sim.output_filename else stdout).write_bytes(content)
        assert sim._parse_outputs(run_dir, stdout) == ({"y": 1.5, "z": -2.0}, ""), fmt

