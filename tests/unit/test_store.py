"""Tests of the campaign store on real files and real processes."""

from __future__ import annotations

import json
import logging
import math
import os
import re
import resource
import shutil
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from store_helpers import FORK, INPUTS, OUTPUTS, add_points, assert_one_line, run_ok

from surrogate_al.errors import NotACampaignStoreError, StoreError
from surrogate_al.store import (
    FORMAT,
    SCHEMA_VERSION,
    CampaignStore,
    Checkpoint,
    ProposalRecord,
    RunRecord,
    _decode_record,
    _encode_record,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "store.md"


# --------------------------------------------------------------------------- helpers


def run_failed(store: CampaignStore, pid: int, attempt: int = 1, final: bool = False, status: str = "failed") -> int:
    return store.add_run(proposal_id=pid, attempt=attempt, final=final, status=status, outputs=None,
                         reason="exit code 3", stderr_tail="Traceback\nboom\n", submit_time=1.0,
                         start_time=2.0, finish_time=3.0, wall_time=1.0)


def sidecars(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir())


def killed_copy(path: Path, dest_dir: Path) -> Path:
    """What a SIGKILLed driver leaves: the .h5 and its journal, without the driver (and its lock)."""
    dest_dir.mkdir()
    dest = dest_dir / path.name
    shutil.copy2(path, dest)
    shutil.copy2(str(path) + ".journal", str(dest) + ".journal")
    return dest


def journal_lines(path: Path) -> list[bytes]:
    return Path(str(path) + ".journal").read_bytes().split(b"\n")[:-1]


# --------------------------------------------------------------------------- round trip


def test_round_trip_of_every_record_type_and_reopen_is_identical(store: CampaignStore, path: Path) -> None:
    X = np.array([[1.0, 2.0], [3.5, -4.25], [0.0, 1e-300]])
    ids = store.add_proposals(X, X / 10, batch_id=3, U=[0.1, 0.2, 0.3], D=None, J=np.array([1.0, 2.0, 3.0]),
                              lam=0.25, surrogate_version=4, source="hybrid")
    assert ids == [0, 1, 2]
    assert add_points(store, 2, batch_id=4) == [3, 4]
    store.mark_submitted(0, 1, 11.0)
    store.mark_submitted(1, 1, 12.0)
    r0 = run_ok(store, 0, stderr_tail="warn: ünïcödé ✓ and a NUL\x00here")
    r1 = run_failed(store, 1)
    r2 = run_failed(store, 1, attempt=2, final=True, status="timeout")
    assert (r0, r1, r2) == (0, 1, 2)
    surrogate = os.urandom(1_000_000)
    store.save_checkpoint(version=4, n_results=1, surrogate_state=surrogate, policy_state=b"")
    store.add_metric(n_results=1, name="estimated_nrmse", value=0.125)
    store.add_metric(n_results=2, name="lambda", value=float("nan"))
    store.add_event("started", "first run")
    store.set_state("running")
    store.set_state("stopped", "budget reached")

    p0 = store.proposals()[0]
    assert p0 == ProposalRecord(proposal_id=0, batch_id=3, inputs=X[0], unit=X[0] / 10, U=0.1, D=math.nan, J=1.0,
                                lam=0.25, surrogate_version=4, source="hybrid", created=p0.created)
    runs = store.runs()
    assert [r.status for r in runs] == ["ok", "failed", "timeout"]
    assert runs[0].stderr_tail == "warn: ünïcödé ✓ and a NUL\ufffdhere"  # HDF5 strings cannot hold NULs
    assert np.array_equal(runs[0].outputs, [3.0, -1.0]) and np.isnan(runs[1].outputs).all()
    assert runs[2].inputs.tolist() == X[1].tolist()  # copied from its proposal
    assert store.latest_checkpoint() == Checkpoint(version=4, n_results=1, created=store.latest_checkpoint().created,
                                                   surrogate_state=surrogate, policy_state=b"")
    before = dict(proposals=store.proposals(), runs=runs, finals=store.final_runs(), pending=store.pending_proposal_ids(),
                  ckpt=store.latest_checkpoint(), metrics=store.metrics(), events=store.events(), state=store.state(),
                  arrays=store.arrays())
    assert before["state"] == ("stopped", "budget reached")
    assert before["pending"] == [2, 3, 4]
    store.close()

    assert sidecars(path) == ["campaign.h5"]  # journal folded, lock released
    again = CampaignStore.open(path)
    assert again.spec == {"campaign": {"budget": 7}, "name": "t"}
    assert (again.input_names, again.output_names) == (INPUTS, OUTPUTS)
    after = dict(proposals=again.proposals(), runs=again.runs(), finals=again.final_runs(),
                 pending=again.pending_proposal_ids(), ckpt=again.latest_checkpoint(), metrics=again.metrics(),
                 events=again.events(), state=again.state(), arrays=again.arrays())
    for key in before:
        if key == "arrays":
            assert before[key].keys() == after[key].keys()
            for col in before[key]:
                assert np.array_equal(before[key][col], after[key][col], equal_nan=before[key][col].dtype.kind == "f")
        elif key == "metrics":
            assert before[key][0] == after[key][0] and after[key][1][:2] == (2, "lambda") and math.isnan(after[key][1][2])
        else:
            assert before[key] == after[key], key


def test_summary_reports_progress(store: CampaignStore) -> None:
    add_points(store, 4)
    run_ok(store, 0)
    run_failed(store, 1)
    run_failed(store, 1, attempt=2, final=True, status="lost")
    store.mark_submitted(2, 1, 5.0)
    store.save_checkpoint(version=2, n_results=2, surrogate_state=b"s", policy_state=b"p")
    store.add_metric(n_results=1, name="estimated_nrmse", value=0.5)
    store.add_metric(n_results=2, name="estimated_nrmse", value=0.25)
    store.set_state("running")
    s = store.summary()
    assert s["budget"] == 7 and s["n_final"] == 2 and s["n_attempts"] == 3 and s["n_proposals"] == 4
    assert s["status_counts"] == {"ok": 1, "lost": 1}
    assert s["in_flight"] == 2 and s["n_submitted"] == 1
    assert s["metrics"] == {"estimated_nrmse": 0.25}
    assert s["checkpoint_version"] == 2 and s["checkpoint_n_results"] == 2 and s["checkpoint_time"] > 0
    assert s["state"] == "running" and s["path"] == str(store.path)
    json.dumps(s)  # the CLI may print it as JSON


def test_empty_store_reads(store: CampaignStore) -> None:
    assert store.runs() == [] and store.proposals() == [] and store.latest_checkpoint() is None
    assert store.state() == ("created", "")
    cols = store.arrays()
    assert cols["X"].shape == (0, 2) and cols["Y"].shape == (0, 2) and cols["status"].shape == (0,)
    assert store.summary()["n_final"] == 0


def test_only_the_latest_checkpoints_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "c.h5"
    with CampaignStore.create(path, spec={}, input_names=INPUTS, output_names=OUTPUTS, keep_checkpoints=2) as store:
        for v in range(5):
            store.save_checkpoint(version=v, n_results=v, surrogate_state=bytes([v]) * 100, policy_state=b"p")
    with h5py.File(path, "r") as f:
        assert f["checkpoints/version"][()].tolist() == [3, 4]
    latest = CampaignStore.open(path).latest_checkpoint()
    assert latest is not None and latest.version == 4 and latest.surrogate_state == bytes([4]) * 100


def test_arrays_are_read_only_snapshots(store: CampaignStore) -> None:
    add_points(store, 2)
    run_ok(store, 0)
    cols = store.arrays()
    with pytest.raises(ValueError):
        cols["X"][0, 0] = 1.0
    run_ok(store, 1)
    assert len(cols["run_id"]) == 1 and len(store.arrays()["run_id"]) == 2


# --------------------------------------------------------------------------- exactly once, validation


def test_a_proposal_gets_exactly_one_final_run_even_after_reopen(store: CampaignStore, path: Path) -> None:
    add_points(store, 2)
    run_failed(store, 0)  # non-final attempt
    run_ok(store, 0, attempt=2)
    with pytest.raises(StoreError) as info:
        run_ok(store, 0, attempt=3)
    assert_one_line(info.value, "proposal_id 0", "already settled by run 1")
    run_failed(store, 1)
    with pytest.raises(StoreError, match="already has attempt 1"):
        run_failed(store, 1)
    with pytest.raises(StoreError, match="unknown proposal_id 7"):
        run_failed(store, 7)
    with pytest.raises(StoreError, match="already settled"):
        store.mark_submitted(0, 4, 1.0)
    store.close()
    with CampaignStore.open(path, "a") as again:
        with pytest.raises(StoreError, match="already settled"):
            run_ok(again, 0, attempt=9)
        assert len(again.runs()) == 3 and again.pending_proposal_ids() == [1]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        (dict(status="done"), "status 'done' is unknown"),
        (dict(final=False), "pass final=True"),
        (dict(outputs=None), "needs outputs"),
        (dict(outputs={"y0": 1.0}), "missing ['y1']"),
        (dict(outputs={"y0": 1.0, "y1": 2.0, "z": 3.0}), "unknown ['z']"),
        (dict(outputs={"y0": 1.0, "y1": float("inf")}), "record it with status 'invalid'"),
        (dict(attempt=0), "attempt must be >= 1"),
        (dict(wall_time="fast"), "wall_time must be a number"),
        (dict(worker=3), "worker must be a string"),
    ],
)
def test_add_run_rejects_bad_arguments(store: CampaignStore, kwargs: dict[str, Any], expected: str) -> None:
    add_points(store, 1)
    with pytest.raises(StoreError) as info:
        run_ok(store, 0, **kwargs)
    assert_one_line(info.value, expected)
    assert store.runs() == []  # nothing half-written


def test_add_proposals_rejects_bad_shapes(store: CampaignStore) -> None:
    with pytest.raises(StoreError, match=r"expected q x 2"):
        store.add_proposals(np.zeros((2, 3)), np.zeros((2, 3)), batch_id=0, source="s")
    with pytest.raises(StoreError, match="unit has shape"):
        store.add_proposals(np.zeros((2, 2)), np.zeros((3, 2)), batch_id=0, source="s")
    with pytest.raises(StoreError, match=r"U has shape \(3,\), expected \(2,\)"):
        store.add_proposals(np.zeros((2, 2)), np.zeros((2, 2)), batch_id=0, source="s", U=[1, 2, 3])
    with pytest.raises(StoreError, match="finite"):
        store.add_proposals(np.full((1, 2), np.nan), np.zeros((1, 2)), batch_id=0, source="s")
    with pytest.raises(StoreError, match="source must be a non-empty string"):
        store.add_proposals(np.zeros((1, 2)), np.zeros((1, 2)), batch_id=0, source="")
    assert store.add_proposals(np.zeros((0, 2)), np.zeros((0, 2)), batch_id=0, source="s") == []
    assert store.proposals() == []
    with pytest.raises(StoreError, match="set_state: status 'done' is unknown"):
        store.set_state("done")


def test_pending_ids_follow_proposal_order_and_survive_reopen(store: CampaignStore, path: Path) -> None:
    add_points(store, 5)
    run_ok(store, 3)
    run_failed(store, 1)  # not final: still pending
    run_failed(store, 0, final=True)
    assert store.pending_proposal_ids() == [1, 2, 4]
    store.close()
    assert CampaignStore.open(path).pending_proposal_ids() == [1, 2, 4]


def test_read_only_and_closed_stores_refuse_writes(store: CampaignStore, path: Path) -> None:
    add_points(store, 1)
    reader = CampaignStore.open(path, "r")
    with pytest.raises(StoreError) as info:
        reader.add_event("started", "x")
    assert_one_line(info.value, "read-only", "open(path, 'a')")
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.add_event("started", "x")
    store.close()  # idempotent


def test_create_refuses_an_existing_store_unless_forced(store: CampaignStore, path: Path) -> None:
    add_points(store, 1)
    store.close()
    with pytest.raises(StoreError) as info:
        CampaignStore.create(path, spec={}, input_names=INPUTS, output_names=OUTPUTS)
    assert_one_line(info.value, str(path), "surrogate-al resume", "force")
    with CampaignStore.create(path, spec={"v": 2}, input_names=["a"], output_names=["b"], force=True) as fresh:
        assert fresh.proposals() == [] and fresh.input_names == ("a",)
    assert CampaignStore.open(path).spec == {"v": 2}


def test_create_validates_names_and_spec(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="duplicate names"):
        CampaignStore.create(tmp_path / "a.h5", spec={}, input_names=["x", "x"], output_names=["y"])
    with pytest.raises(StoreError, match="JSON-serialisable"):
        CampaignStore.create(tmp_path / "b.h5", spec={"f": object()}, input_names=["x"], output_names=["y"])
    with pytest.raises(StoreError, match="output_names is empty"):
        CampaignStore.create(tmp_path / "c.h5", spec={}, input_names=["x"], output_names=[])
    assert list(tmp_path.iterdir()) == []  # no lock or file left behind
    with pytest.raises(StoreError) as info:
        CampaignStore.create(tmp_path / "no" / "such" / "d.h5", spec={}, input_names=["x"], output_names=["y"])
    assert_one_line(info.value, "cannot create the lock file", "No such file or directory", "must exist")


# --------------------------------------------------------------------------- not a store


@pytest.fixture(scope="module")
def good_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    good = tmp_path_factory.mktemp("good") / "good.h5"
    with CampaignStore.create(good, spec={}, input_names=INPUTS, output_names=OUTPUTS) as s:
        for pid in add_points(s, 50):
            run_ok(s, pid, stderr_tail="x" * 200)
    return good


def _plain_h5(p: Path, **attrs: Any) -> None:
    with h5py.File(p, "w") as f:
        f["data"] = np.arange(3)
        f.attrs.update(attrs)


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p, good: None, "file not found"),
        (lambda p, good: p.write_bytes(b""), "empty file"),
        (lambda p, good: p.write_bytes(os.urandom(4096)), "not an HDF5 file"),
        (lambda p, good: p.write_bytes(good.read_bytes()[: good.stat().st_size // 2]), "truncated or damaged"),
        (lambda p, good: _plain_h5(p), "not a surrogate_al campaign store"),
        (lambda p, good: _set_schema(good, p, 999), "schema_version 999, newer than"),
        (lambda p, good: _set_schema(good, p, 0), "unknown store schema_version 0"),
        (lambda p, good: _drop_dataset(good, p, "runs/Y"), "dataset /runs/Y is missing"),
    ],
    ids=["missing", "empty", "random", "truncated", "plain-hdf5", "schema-999", "schema-0", "damaged"],
)
@pytest.mark.parametrize("mode", ["r", "a"])
def test_not_a_campaign_store(
    tmp_path: Path, good_store: Path, make: Callable[[Path, Path], None], expected: str, mode: str
) -> None:
    good = tmp_path / "good.h5"
    shutil.copy(good_store, good)
    target = tmp_path / "target.h5"
    make(target, good)
    with pytest.raises(NotACampaignStoreError) as info:
        CampaignStore.open(target, mode)  # type: ignore[arg-type]
    assert_one_line(info.value, str(target), expected)
    assert not Path(str(target) + ".lock").exists()


def _set_schema(good: Path, p: Path, version: int) -> None:
    shutil.copy(good, p)
    with h5py.File(p, "a") as f:
        f.attrs["schema_version"] = version


def _drop_dataset(good: Path, p: Path, name: str) -> None:
    shutil.copy(good, p)
    with h5py.File(p, "a") as f:
        del f[name]


def test_another_program_writing_the_h5_is_reported(path: Path, store: CampaignStore) -> None:
    store.close()
    ready, release = FORK.Event(), FORK.Event()

    def hold() -> None:
        with h5py.File(path, "a"):  # a plain HDF5 writer holds HDF5's own file lock
            ready.set()
            release.wait(30)

    child = FORK.Process(target=hold)
    child.start()
    try:
        assert ready.wait(20)
        with pytest.raises(StoreError) as info:
            CampaignStore.open(path)
        assert_one_line(info.value, "another program has the file open for writing")
    finally:
        release.set()
        child.join(20)


# --------------------------------------------------------------------------- journal damage


def test_torn_last_line_is_dropped_and_appending_goes_on(
    store: CampaignStore, path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for pid in add_points(store, 3):
        run_ok(store, pid)
    killed = killed_copy(path, tmp_path / "killed")
    lines = journal_lines(killed)
    assert len(lines) == 5  # header, proposals, 3 runs: all still in the journal only
    with open(str(killed) + ".journal", "r+b") as fh:
        fh.truncate(sum(len(line) + 1 for line in lines[:-1]) + len(lines[-1]) // 2)  # cut mid-line
    reader = CampaignStore.open(killed, "r")
    assert len(reader.runs()) == 2
    with caplog.at_level(logging.WARNING, logger="surrogate_al.store"):
        s = CampaignStore.open(killed, "a")
    assert "torn last journal record: line 5 has no newline" in caplog.text
    assert [r.proposal_id for r in s.runs()] == [0, 1] and s.pending_proposal_ids() == [2]
    assert b"\n" == Path(str(killed) + ".journal").read_bytes()[-1:]  # the torn bytes are gone
    run_ok(s, 2)
    s.add_event("resumed", "after torn tail")
    s.close()
    again = CampaignStore.open(killed)
    assert [r.proposal_id for r in again.runs()] == [0, 1, 2] and again.events()[-1][1:] == ("resumed", "after torn tail")


def test_crc_mismatch_on_last_line_is_dropped(
    store: CampaignStore, path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for pid in add_points(store, 2):
        run_ok(store, pid)
    killed = killed_copy(path, tmp_path / "killed")
    journal = Path(str(killed) + ".journal")
    data = bytearray(journal.read_bytes())
    i = data.rindex(b'"status":"ok"') + 11  # flip a byte inside the last record
    data[i] ^= 0x01
    journal.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="surrogate_al.store"):
        s = CampaignStore.open(killed, "a")
    assert re.search(r"line 4 is damaged \(CRC mismatch", caplog.text)
    assert len(s.runs()) == 1
    run_ok(s, 1)
    s.close()
    assert len(CampaignStore.open(killed).runs()) == 2


@pytest.mark.parametrize("mode", ["r", "a"])
def test_corruption_in_the_middle_names_the_line(store: CampaignStore, path: Path, tmp_path: Path, mode: str) -> None:
    for pid in add_points(store, 3):
        run_ok(store, pid)
    killed = killed_copy(path, tmp_path / "killed")
    journal = Path(str(killed) + ".journal")
    lines = journal_lines(killed)
    lines[2] = lines[2].replace(b'"attempt":1', b'"attempt":2')  # valid JSON, wrong CRC
    journal.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(StoreError) as info:
        CampaignStore.open(killed, mode)  # type: ignore[arg-type]
    assert_one_line(info.value, "journal line 3 of 5 is corrupt", "CRC mismatch", str(journal))
    assert journal.read_bytes() == b"\n".join(lines) + b"\n"  # never "repaired" by dropping records
    assert not Path(str(killed) + ".lock").exists()


def test_a_journal_spliced_out_of_order_or_from_another_store_is_refused(
    store: CampaignStore, path: Path, tmp_path: Path
) -> None:
    for pid in add_points(store, 2):
        run_ok(store, pid)
    killed = killed_copy(path, tmp_path / "killed")
    journal = Path(str(killed) + ".journal")
    lines = journal_lines(killed)
    journal.write_bytes(b"\n".join([lines[0], lines[1], lines[3], lines[2]]) + b"\n")
    with pytest.raises(StoreError, match="journal line 3 has seq 3, expected 2"):
        CampaignStore.open(killed, "a")
    other = tmp_path / "other.h5"
    CampaignStore.create(other, spec={}, input_names=INPUTS, output_names=OUTPUTS).close()
    shutil.copy(str(path) + ".journal", str(other) + ".journal")
    with pytest.raises(StoreError, match="journal belongs to another store"):
        CampaignStore.open(other, "a")


def test_an_older_h5_with_a_newer_journal_is_refused(store: CampaignStore, path: Path, tmp_path: Path) -> None:
    for pid in add_points(store, 2):
        run_ok(store, pid)
    old = tmp_path / "old.h5"
    shutil.copy(path, old)
    store.snapshot()  # journal restarts after these records
    run_ok(store, add_points(store, 1, batch_id=1)[0])
    restored = killed_copy(path, tmp_path / "restored")
    shutil.copy(old, restored)
    with pytest.raises(StoreError, match="records in between are missing"):
        CampaignStore.open(restored, "a")


def test_a_failed_journal_write_is_cut_off_and_not_acknowledged(path: Path, store: CampaignStore) -> None:
    """A real I/O error (file size limit, like a full disk) mid-record leaves no partial line behind."""
    add_points(store, 1)
    store.close()
    receive, result = FORK.Pipe(duplex=False)  # send() is synchronous: nothing lost to the SIGKILL

    def child() -> None:
        s = CampaignStore.open(path, "a", snapshot_interval=1e9)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
        limit = Path(str(path) + ".journal").stat().st_size + 50_000
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        try:
            s.save_checkpoint(version=1, n_results=0, surrogate_state=b"x" * 200_000, policy_state=b"")
            result.send("no error")
        except StoreError as exc:
            result.send(str(exc))
        s.add_metric(n_results=0, name="after", value=1.0)  # the journal still works
        result.send("metric ok")
        os.kill(os.getpid(), signal.SIGKILL)

    proc = FORK.Process(target=child)
    proc.start()
    assert receive.poll(30)
    first = receive.recv()
    assert receive.poll(30)
    second = receive.recv()
    proc.join(30)
    assert "the record was NOT saved" in first and "File too large" in first and "\n" not in first
    assert second == "metric ok"
    with CampaignStore.open(path, "a") as s:
        assert s.latest_checkpoint() is None and s.metrics() == [(0, "after", 1.0)]


# --------------------------------------------------------------------------- snapshots and readers


def test_snapshot_interval_zero_keeps_the_h5_current(tmp_path: Path) -> None:
    path = tmp_path / "c.h5"
    store = CampaignStore.create(path, spec={}, input_names=INPUTS, output_names=OUTPUTS, snapshot_interval=0)
    for pid in add_points(store, 3):
        run_ok(store, pid)
        with h5py.File(path, "r") as f:  # a plain reader sees every record at once
            assert f["runs/run_id"].shape == (pid + 1,)
            assert int(f.attrs["journal_seq"]) == pid + 2
    assert len(journal_lines(path)) == 1  # only the header: everything is in the snapshot
    store.close()


def test_records_live_in_the_journal_until_a_snapshot(store: CampaignStore, path: Path) -> None:
    for pid in add_points(store, 2):
        run_ok(store, pid)
    with h5py.File(path, "r") as f:
        assert f["runs/run_id"].shape == (0,)  # last snapshot is from create()
    reader = CampaignStore.open(path)
    assert len(reader.runs()) == 2 and reader.summary()["journal_records"] == 3
    store.snapshot()
    with h5py.File(path, "r") as f:
        assert f["runs/run_id"][()].tolist() == [0, 1]


def test_leftover_temporary_files_are_removed_on_resume(store: CampaignStore, path: Path) -> None:
    store.close()
    for suffix in (".tmp", ".journal.tmp"):
        Path(str(path) + suffix).write_bytes(b"half a snapshot")
    CampaignStore.open(path, "a").close()
    assert sidecars(path) == ["campaign.h5"]


def test_file_is_self_describing_for_plain_h5py(store: CampaignStore, path: Path) -> None:
    add_points(store, 1)
    store.close()
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == FORMAT and f.attrs["schema_version"] == SCHEMA_VERSION
        assert json.loads(f["spec"].asstr()[()]) == {"campaign": {"budget": 7}, "name": "t"}
        assert f["proposals/X"].maxshape == (None, 2)
        assert f["runs/final"].dtype == np.bool_


def test_docs_example_runs_verbatim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = DOCS.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 1, "docs/store.md must have exactly one python example"
    monkeypatch.chdir(tmp_path)
    with CampaignStore.create("campaign.h5", spec={}, input_names=INPUTS, output_names=OUTPUTS) as store:
        add_points(store, 4)
        run_ok(store, 0)
        run_failed(store, 1)  # not final
        run_ok(store, 1, attempt=2)
        run_failed(store, 2, final=True, status="timeout")
        expected = store.arrays()
    namespace: dict[str, Any] = {}
    exec(compile(blocks[0], str(DOCS), "exec"), namespace)
    keep = expected["final"] & (expected["status"] == "ok")
    assert namespace["input_names"] == list(INPUTS) and namespace["output_names"] == list(OUTPUTS)
    assert np.array_equal(namespace["X"], expected["X"][keep]) and namespace["X"].shape == (2, 2)
    assert np.array_equal(namespace["Y"], expected["Y"][keep])
    assert namespace["failed"] == 1


# --------------------------------------------------------------------------- journal codec


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(
        st.text(min_size=1, max_size=8).filter(lambda k: k != "crc"),
        st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(), st.text(), st.booleans(),
                  st.lists(st.floats(allow_nan=False), max_size=4)),
        max_size=6,
    ),
    st.integers(0, 2**40),
)
def test_journal_records_round_trip_and_any_flipped_bit_is_caught(payload: dict[str, Any], seq: int) -> None:
    rec = {**payload, "seq": seq, "kind": "event"}
    line = _encode_record(rec)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    back = _decode_record(line[:-1])
    assert json.dumps(back, sort_keys=True) == json.dumps(rec, sort_keys=True)  # NaN-safe comparison
    for i in range(0, len(line) - 1, max(1, len(line) // 25)):
        damaged = bytearray(line[:-1])
        damaged[i] ^= 0x04
        with pytest.raises(ValueError):
            _decode_record(bytes(damaged))


def test_run_record_equality_treats_nan_as_equal() -> None:
    kw: dict[str, Any] = dict(run_id=0, proposal_id=0, attempt=1, final=True, status="failed", inputs=np.zeros(2),
                              outputs=np.full(2, np.nan), reason="", stderr_tail="", submit_time=0.0, start_time=0.0,
                              finish_time=0.0, wall_time=math.nan, worker="", host="")
    assert RunRecord(**kw) == RunRecord(**kw)
    assert RunRecord(**kw) != RunRecord(**{**kw, "inputs": np.ones(2)})
    with pytest.raises(Exception):
        RunRecord(**kw).status = "ok"  # type: ignore[misc]
