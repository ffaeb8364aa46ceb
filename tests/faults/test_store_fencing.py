"""Issue 39, item 2: two writers on one store; the lock fences every write.

Driver A holds the store and writes runs; driver B, "on another node",
breaks A's lock with ``force_unlock=True`` (what a duplicate chain job or a
requeued job does with ``resume --force-unlock``) and writes runs; then A
tries to go on. Real processes (forked children, each with its own
``CampaignStore``, real lock file, journal and ``.h5``). A second host cannot
run here: B's process reports another host name (``socket.gethostname``
patched in that child only), which is exactly what makes A's lock "foreign"
and breakable to it.

Measured: B's acknowledged runs lost (0), proposal ids handed out by both
drivers (none), A's way of stopping (one line naming B).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from store_helpers import FORK, add_points, assert_one_line, run_ok

from surrogate_al.errors import StoreError
from surrogate_al.store import CampaignStore

from .helpers import REPO, driver_env

_OTHER_HOST = "node-b.example"


def _driver_a(path: str, n_first: int, n_more: int, go: Any, done_first: Any, out: Any) -> None:
    """Child A: write ``n_first`` runs, wait for B, then try ``n_more`` more; report what was acknowledged."""
    acked: list[int] = []
    stopped = ""
    store = CampaignStore.open(path, "a", snapshot_interval=0.0)
    for _ in range(n_first):
        pid = add_points(store, 1, batch_id=1, seed=len(acked))[0]
        run_ok(store, pid, worker="A")
        acked.append(pid)
    done_first.set()
    go.wait(60)
    for i in range(n_more):
        try:
            pid = add_points(store, 1, batch_id=3, seed=100 + i)[0]
            run_ok(store, pid, worker="A")
        except StoreError as exc:
            stopped = str(exc)
            break
        acked.append(pid)
    try:
        store.close()
    except StoreError as exc:
        stopped = stopped or f"close: {exc}"
    out.put({"acked": acked, "stopped": stopped})


def _driver_b(path: str, n: int, out: Any, finish: Any) -> None:
    """Child B on "another node": break A's lock with force_unlock, write ``n`` runs, keep the store until told."""
    socket.gethostname = lambda: _OTHER_HOST  # type: ignore[assignment]  # the one thing a single host cannot give
    acked: list[int] = []
    with CampaignStore.open(path, "a", force_unlock=True, snapshot_interval=0.0) as store:
        for i in range(n):
            pid = add_points(store, 1, batch_id=2, seed=50 + i)[0]
            run_ok(store, pid, worker="B")
            acked.append(pid)
        out.put({"acked": acked, "pid": os.getpid()})
        finish.wait(60)


def _join(*procs: Any) -> None:
    for p in procs:
        p.join(60)
        if p.is_alive():
            p.kill()
            p.join(10)


def test_a_driver_whose_lock_was_broken_stops_and_no_acknowledged_run_is_lost(path: Path, store: CampaignStore) -> None:
    store.close()
    go, done_first, finish_b = FORK.Event(), FORK.Event(), FORK.Event()
    out_a, out_b = FORK.Queue(), FORK.Queue()
    a = FORK.Process(target=_driver_a, args=(str(path), 5, 5, go, done_first, out_a))
    a.start()
    b = None
    try:
        assert done_first.wait(60), "driver A did not write its first runs"
        b = FORK.Process(target=_driver_b, args=(str(path), 5, out_b, finish_b))
        b.start()
        res_b = out_b.get(timeout=60)  # B holds the store now, with its 5 runs acknowledged
        go.set()
        res_a = out_a.get(timeout=60)  # A has tried its next 5 runs and closed
        finish_b.set()
    finally:
        go.set()
        finish_b.set()
        _join(a, *([b] if b else []))
    assert a.exitcode == 0 and b is not None and b.exitcode == 0

    final = CampaignStore.open(path, "r")
    by_proposal = {r.proposal_id: r for r in final.runs()}
    lost_b = [pid for pid in res_b["acked"] if pid not in by_proposal or by_proposal[pid].worker != "B"]
    lost_a = [pid for pid in res_a["acked"] if pid not in by_proposal or by_proposal[pid].worker != "A"]
    shared_ids = sorted(set(res_a["acked"]) & set(res_b["acked"]))
    print(f"runs stored {len(final.runs())}; B acknowledged {len(res_b['acked'])}, lost {len(lost_b)}; "
          f"A acknowledged {len(res_a['acked'])}, lost {len(lost_a)}; ids handed out by both {shared_ids}; "
          f"A stopped with: {res_a['stopped']!r}")
    assert len(lost_b) == 0, f"B's acknowledged runs lost: {lost_b} (proposal ids handed out by both: {shared_ids})"
    assert len(lost_a) == 0, f"A's acknowledged runs lost: {lost_a}"
    assert shared_ids == [], f"proposal ids handed out by both drivers: {shared_ids}"
    assert res_a["acked"] == list(range(5)), "A wrote on after its lock was taken over"
    assert len(final.runs()) == 10 and len(final.proposals()) == 10
    assert res_a["stopped"], "A never noticed that its lock was taken over"
    msg = res_a["stopped"]
    assert "\n" not in msg
    for part in ("taken over", f"pid {res_b['pid']}", f"host {_OTHER_HOST}", "writes nothing more"):
        assert part in msg, f"{part!r} not in {msg!r}"
    assert not Path(f"{path}.lock").exists(), "B's close released the lock; A must not have left one"
    assert not Path(f"{path}.journal").exists()


def _hold(path: str, ready: Any, release: Any) -> None:
    """Child: hold the store open for writing until told to stop, then write once more and close."""
    with CampaignStore.open(path, "a") as store:
        ready.set()
        release.wait(60)
        run_ok(store, add_points(store, 1, batch_id=7, seed=7)[0])


def test_cli_resume_force_unlock_refuses_while_the_holder_is_alive_on_this_host(path: Path, store: CampaignStore) -> None:
    store.close()
    ready, release = FORK.Event(), FORK.Event()
    holder = FORK.Process(target=_hold, args=(str(path), ready, release))
    holder.start()
    try:
        assert ready.wait(30)
        lock_before = Path(f"{path}.lock").read_bytes()
        res = subprocess.run(
            [sys.executable, "-m", "surrogate_al.cli", "resume", str(path), "--force-unlock", "--no-progress"],
            capture_output=True, text=True, timeout=120, cwd=REPO, env=driver_env(), check=False,
        )
        assert res.returncode == 2, (res.returncode, res.stderr[-2000:])
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
        for part in (f"pid {holder.pid}", f"host {socket.gethostname()}", "alive", "stop that process first"):
            assert part in lines[0], f"{part!r} not in {lines[0]!r}"
        assert Path(f"{path}.lock").read_bytes() == lock_before, "the refusal must leave the live lock alone"
    finally:
        release.set()
        _join(holder)
    assert holder.exitcode == 0, "the holder could not write after the refused --force-unlock"
    assert len(CampaignStore.open(path, "r").runs()) == 1


def test_a_foreign_lock_says_how_to_check_its_host(path: Path, store: CampaignStore) -> None:
    store.close()
    lock = {"pid": 4242, "host": "other-node.example", "started": time.time() - 60, "command": "surrogate-al resume",
            "create_time": 0.0, "token": "x", "job": "81234"}
    Path(f"{path}.lock").write_text(json.dumps(lock))
    from surrogate_al.errors import StoreLockedError

    with pytest.raises(StoreLockedError) as info:
        CampaignStore.open(path, "a")
    assert_one_line(info.value, "pid 4242", "other-node.example", "ssh other-node.example ps -o pid,lstart,args -p 4242",
                    "squeue -j 81234", "--force-unlock")
