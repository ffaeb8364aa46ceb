"""Tests of the journal: torn and damaged lines, spliced journals, failed writes, the record codec."""

from __future__ import annotations

import json
import logging
import os
import re
import resource
import shutil
import signal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from store_helpers import (
    FORK,
    INPUTS,
    OUTPUTS,
    add_points,
    assert_one_line,
    journal_lines,
    killed_copy,
    run_ok,
)

from surrogate_al.errors import StoreError
from surrogate_al.store import CampaignStore
from surrogate_al.store.journal import decode_record, encode_record


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
    line = encode_record(rec)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    back = decode_record(line[:-1])
    assert json.dumps(back, sort_keys=True) == json.dumps(rec, sort_keys=True)  # NaN-safe comparison
    for i in range(0, len(line) - 1, max(1, len(line) // 25)):
        damaged = bytearray(line[:-1])
        damaged[i] ^= 0x04
        with pytest.raises(ValueError):
            decode_record(bytes(damaged))
