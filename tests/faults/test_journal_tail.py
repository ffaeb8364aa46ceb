"""A damaged journal at the campaign level: a torn tail is dropped and re-run, a damaged middle stops resume.

One real campaign (synchronous, ``surrogate-al run`` on a LocalCluster) is
killed with its journal holding everything since the store was created; each
test works on a copy. A kill can only damage the line being written, and a
journal cut at any byte is exactly what a kill at that moment leaves, so:

* cutting the journal inside the line of the last run (no newline) or
  flipping a digit of that line's CRC is a kill while the run was being
  journaled: ``surrogate-al resume`` must warn that it drops the record, run
  that proposal again and finish with exactly the budget;
* a flipped byte in a line with records after it is not kill damage: resume
  must exit 2 with one line naming the journal and the line, and leave every
  file byte for byte as it was.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from surrogate_al.store import CampaignStore

from .helpers import assert_exactly_budget, cli, kill_when_gate_holds, write_workflow

BUDGET = 14
DESIGN = 8  # the design is one batch; the gate then holds the first batch of the policy


@pytest.fixture(scope="module")
def killed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with a campaign killed after its 8 design runs, journal and lock left behind."""
    root = tmp_path_factory.mktemp("killed")
    wf = write_workflow(
        root, name="tail", budget=BUDGET, mode="sync", design_size=DESIGN, policy="sobol",
        function="fault_sims:gated_branin",
    )
    store = wf.with_suffix(".h5")
    gate = tmp_path_factory.mktemp("gate")
    kill_when_gate_holds(wf, gate, after=DESIGN, batch=2)
    assert Path(f"{store}.journal").exists(), "the kill left no journal to damage"
    return root


def copy_of(killed: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A private copy of the killed campaign: (store, journal)."""
    target = tmp_path / "c"
    shutil.copytree(killed, target)
    return target / "tail.h5", target / "tail.h5.journal"


def digest(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def journal_lines(journal: Path) -> list[bytes]:
    """The journal's lines, each with its newline."""
    return journal.read_bytes().splitlines(keepends=True)


def last_run_line(lines: list[bytes]) -> tuple[int, int]:
    """(0-based index, proposal id) of the journal's last final-run record."""
    for i in range(len(lines) - 1, -1, -1):
        rec = json.loads(lines[i])
        if rec["kind"] == "run" and rec["rows"][0]["final"]:
            return i, int(rec["rows"][0]["proposal_id"])
    raise AssertionError("no run record in the journal")


def assert_rerun_to_budget(store: Path, proposal_id: int, stderr: str, why: str) -> None:
    """Resume warned, ran the dropped proposal once more, and settled exactly the budget."""
    assert "dropping the torn last journal record" in stderr and why in stderr, stderr[-2000:]
    assert_exactly_budget(store, BUDGET)
    with CampaignStore.open(store) as st:
        runs = [r for r in st.runs() if r.proposal_id == proposal_id]
        # The torn record was never acknowledged: one run, recorded by the resumed driver
        # after the runs that survived (the design's others and nothing of the hung batch).
        assert len(runs) == 1 and runs[0].final and runs[0].status == "ok"
        assert runs[0].run_id == DESIGN - 1, [(r.run_id, r.proposal_id) for r in st.runs()]
        # Re-run, not re-proposed: the proposals are those of an uninterrupted campaign.
        assert len(st.proposals()) == BUDGET
        assert any(kind == "resumed" for _, kind, _ in st.events())


def test_torn_last_run_record_is_dropped_with_a_warning_and_rerun(killed: Path, tmp_path: Path) -> None:
    store, journal = copy_of(killed, tmp_path)
    lines = journal_lines(journal)
    i, pid = last_run_line(lines)
    # Killed while writing that run: everything before it, and half of its line.
    journal.write_bytes(b"".join(lines[:i]) + lines[i][: len(lines[i]) // 2])
    res = cli("resume", str(store), "--no-progress")
    assert res.returncode == 0, res.stderr[-3000:]
    assert_rerun_to_budget(store, pid, res.stderr, f"line {i + 1} has no newline")


def test_crc_mismatch_on_the_last_run_record_is_dropped_and_rerun(killed: Path, tmp_path: Path) -> None:
    store, journal = copy_of(killed, tmp_path)
    lines = journal_lines(journal)
    i, pid = last_run_line(lines)
    line = bytearray(lines[i])
    digit = line.rindex(b"}") - 1  # last digit of the CRC
    line[digit] = ord("0") + (line[digit] - ord("0") + 1) % 10
    journal.write_bytes(b"".join(lines[:i]) + bytes(line))
    res = cli("resume", str(store), "--no-progress")
    assert res.returncode == 0, res.stderr[-3000:]
    assert_rerun_to_budget(store, pid, res.stderr, f"line {i + 1} is damaged (CRC mismatch")


def test_corrupt_middle_line_stops_resume_and_changes_nothing(killed: Path, tmp_path: Path) -> None:
    store, journal = copy_of(killed, tmp_path)
    lines = journal_lines(journal)
    i, _ = last_run_line(lines)
    assert i < len(lines) - 1, "the damaged line must have records after it"
    # One flipped bit in an output value of a run in the middle: valid JSON, wrong CRC.
    target = i - 1
    line = bytearray(lines[target])
    at = line.index(b'"Y":[') + 5
    line[at] ^= 0x01
    journal.write_bytes(b"".join(lines[:target]) + bytes(line) + b"".join(lines[target + 1:]))
    names = sorted(p.name for p in store.parent.iterdir())
    assert names == ["tail.h5", "tail.h5.journal", "tail.h5.lock", "tail.toml"]  # as the kill left them
    before = {name: digest(store.parent / name) for name in ("tail.h5", "tail.h5.journal")}

    res = cli("resume", str(store), "--no-progress", timeout=120)

    assert res.returncode == 2, (res.returncode, res.stderr[-3000:])
    errors = [line for line in res.stderr.splitlines() if line.startswith("surrogate-al: error: ")]
    assert len(errors) == 1 and res.stderr.rstrip().endswith(errors[0]), res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    assert str(journal) in errors[0] and f"journal line {target + 1} of {len(lines)} is corrupt" in errors[0], errors[0]
    assert {name: digest(store.parent / name) for name in before} == before, "resume changed the store or journal"
    # Nothing added (no snapshot, no temporary file); the dead driver's stale lock may be gone.
    assert {p.name for p in store.parent.iterdir()} <= set(names)
