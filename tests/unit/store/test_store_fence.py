"""The lock fences every write: a writer whose lock file no longer holds its token writes nothing more."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from store_helpers import add_points, assert_one_line, journal_lines, run_ok

from surrogate_al.store import CampaignStore, LockLostError
from surrogate_al.store.journal import JournalWriter, decode_record


def _lock(path: Path) -> Path:
    return Path(f"{path}.lock")


def _take_over(path: Path, pid: int = 4242, host: str = "node-b.example") -> None:
    """What another driver's force_unlock leaves: its own lock file in place of ours."""
    lock = _lock(path)
    lock.unlink()
    lock.write_text(json.dumps({"pid": pid, "host": host, "started": time.time(), "command": "surrogate-al resume",
                                "create_time": 0.0, "token": "theirs", "job": "77"}))


def test_the_journal_header_names_the_lock_token(store: CampaignStore, path: Path) -> None:
    head = decode_record(journal_lines(path)[0])
    assert head["kind"] == "header"
    assert head["lock_token"] == json.loads(_lock(path).read_text())["token"]


def test_a_taken_over_lock_stops_every_write_and_close_folds_nothing(store: CampaignStore, path: Path) -> None:
    run_ok(store, add_points(store, 2)[0])
    h5_before = path.read_bytes()
    journal_before = Path(f"{path}.journal").read_bytes()
    _take_over(path)
    with pytest.raises(LockLostError) as info:
        store.add_event("note", "after the takeover")
    assert_one_line(info.value, "taken over by pid 4242 on host node-b.example (SLURM job 77)", "writes nothing more")
    for write in (lambda: run_ok(store, 1), store.snapshot, lambda: store.set_state("stopped")):
        with pytest.raises(LockLostError):
            write()
    store.close()
    assert path.read_bytes() == h5_before and Path(f"{path}.journal").read_bytes() == journal_before
    assert json.loads(_lock(path).read_text())["token"] == "theirs", "the new holder's lock must stay"
    assert [e[1] for e in CampaignStore.open(path, "r").events()] == []


def test_a_removed_lock_stops_the_writer(store: CampaignStore, path: Path) -> None:
    _lock(path).unlink()
    with pytest.raises(LockLostError) as info:
        add_points(store, 1)
    assert_one_line(info.value, "was removed", "writes nothing more", f"surrogate-al resume {path}")
    store.close()
    assert not _lock(path).exists()


def test_a_touched_lock_with_our_content_is_still_ours(store: CampaignStore, path: Path) -> None:
    os.utime(_lock(path), (time.time() + 5, time.time() + 5))  # stat changes: the content is read and matches
    run_ok(store, add_points(store, 1)[0])
    store.snapshot()
    assert len(store.runs()) == 1


def test_a_takeover_during_the_append_is_not_acknowledged(
    store: CampaignStore, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    append = JournalWriter.append

    def append_then_lose_the_lock(self: JournalWriter, rec: dict) -> None:
        append(self, rec)
        _take_over(path)

    monkeypatch.setattr(JournalWriter, "append", append_then_lose_the_lock)
    with pytest.raises(LockLostError):
        add_points(store, 1)
    assert store.proposals() == [], "a record written after the lock was lost must not be acknowledged"


def test_what_the_fence_costs_per_append(store: CampaignStore, path: Path) -> None:
    """One open + fstat + close of the lock file per check while it is unchanged (printed; no timing assert)."""
    lock = store._lock
    assert lock is not None
    n = 20000
    t0 = time.perf_counter()
    for _ in range(n):
        lock.check()
    per_check = (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    for _ in range(200):
        lock.check(full=True)
    per_full = (time.perf_counter() - t0) / 200
    t0 = time.perf_counter()
    for _ in range(20):
        store.add_event("x", "y")
    per_append = (time.perf_counter() - t0) / 20
    print(f"fence: {per_check * 1e6:.1f} us per check (open + fstat + close), {per_full * 1e6:.1f} us with a read; "
          f"one append with its fsync and two checks {per_append * 1e3:.2f} ms")
    assert len(store.events()) == 20
