"""Criterion 14: two drivers on one store.

The second writer fails within a second naming the holder (pid, host, since
when, its command); the lock of a SIGKILLed driver is stale and broken safely
(its acknowledged results kept); a lock from another host is broken only with
``force_unlock`` (CLI: ``resume --force-unlock``). Real processes throughout:
forked children holding a real lock file, and real ``surrogate-al`` console
script drivers with a LocalCluster.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import subprocess
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import pytest
from store_helpers import FORK, INPUTS, OUTPUTS, add_points, assert_one_line, run_ok

from surrogate_al.errors import StoreLockedError
from surrogate_al.store import CampaignStore

from .held import console_script, start_driver, write_held_workflow
from .helpers import (
    REPO,
    assert_exactly_budget,
    driver_env,
    kill_driver,
    reap,
    wait_until,
)

# --------------------------------------------------------------------------- helpers


def _hold_store(path: str, ready: Any, release: Any) -> None:
    """Child process: hold the store open for writing until told to stop."""
    store = CampaignStore.open(path, "a")
    run_ok(store, add_points(store, 1, batch_id=99, seed=99)[0])
    ready.set()
    release.wait(30)
    store.close()


def _write_and_die(path: str, n: int) -> None:
    """Child process: acknowledge ``n`` runs, then die by SIGKILL holding the lock."""
    store = CampaignStore.open(path, "a", snapshot_interval=1e9)
    for pid in add_points(store, n, batch_id=5, seed=5):
        run_ok(store, pid)
    os.kill(os.getpid(), signal.SIGKILL)


# --------------------------------------------------------------------------- lock


def test_a_second_writer_from_a_live_process_fails_fast_naming_the_holder(path: Path, store: CampaignStore) -> None:
    store.close()
    ready, release = FORK.Event(), FORK.Event()
    child = FORK.Process(target=_hold_store, args=(str(path), ready, release))
    child.start()
    try:
        assert ready.wait(20)
        attempts = {
            "open": lambda: CampaignStore.open(path, "a"),
            "force_unlock": lambda: CampaignStore.open(path, "a", force_unlock=True),
            "create": lambda: CampaignStore.create(path, spec={}, input_names=INPUTS, output_names=OUTPUTS, force=True),
        }
        messages = {}
        for name, attempt in attempts.items():
            t0 = time.monotonic()
            with pytest.raises(StoreLockedError) as info:
                attempt()
            assert time.monotonic() - t0 < 1.0, name
            assert_one_line(info.value, f"pid {child.pid}", f"host {socket.gethostname()}", "since")
            messages[name] = str(info.value)
        assert "wait for that driver to finish" in messages["open"]
        assert "stop that process first" in messages["force_unlock"]  # a live local holder is never broken
        # A reader needs no lock and sees what the live writer acknowledged.
        reader = CampaignStore.open(path, "r")
        assert [p.batch_id for p in reader.proposals()] == [99] and len(reader.final_runs()) == 1
    finally:
        release.set()
        child.join(20)
    assert child.exitcode == 0
    with CampaignStore.open(path, "a") as again:  # released by the child's close()
        assert len(again.runs()) == 1


def test_the_same_process_cannot_open_twice_for_writing(store: CampaignStore, path: Path) -> None:
    with pytest.raises(StoreLockedError, match="this process"):
        CampaignStore.open(path, "a")


def test_a_stale_lock_of_a_killed_driver_is_broken_and_its_acks_kept(
    store: CampaignStore, path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store.close()
    child = FORK.Process(target=_write_and_die, args=(str(path), 4))
    child.start()
    child.join(30)
    assert child.exitcode == -signal.SIGKILL
    assert Path(str(path) + ".lock").exists() and Path(str(path) + ".journal").exists()
    with caplog.at_level(logging.WARNING, logger="surrogate_al.store"):
        again = CampaignStore.open(path, "a")
    assert f"breaking the stale lock of pid {child.pid}" in caplog.text
    assert len(again.final_runs()) == 4
    again.close()


def test_a_lock_whose_pid_was_reused_is_stale(store: CampaignStore, path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store.close()
    other = subprocess.Popen(["sleep", "30"])
    try:
        lock = {"pid": other.pid, "host": socket.gethostname(), "started": time.time() - 3600, "command": "old driver",
                "create_time": psutil.Process(other.pid).create_time() - 3600, "token": "t"}
        Path(str(path) + ".lock").write_text(json.dumps(lock))
        with caplog.at_level(logging.WARNING, logger="surrogate_al.store"):
            CampaignStore.open(path, "a").close()
        assert "stale lock" in caplog.text and "old driver" in caplog.text
        # The same pid with its true start time is a live holder.
        lock["create_time"] = psutil.Process(other.pid).create_time()
        Path(str(path) + ".lock").write_text(json.dumps(lock))
        with pytest.raises(StoreLockedError, match=f"live pid {other.pid}"):
            CampaignStore.open(path, "a")
    finally:
        other.kill()
        other.wait()


def test_a_lock_from_another_host_needs_force_unlock(
    store: CampaignStore, path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store.close()
    lock = {"pid": 1, "host": "other-node.example", "started": 0.0, "command": "surrogate-al run w.toml",
            "create_time": 0.0, "token": "x"}
    Path(str(path) + ".lock").write_text(json.dumps(lock))
    with pytest.raises(StoreLockedError) as info:
        CampaignStore.open(path, "a")
    assert_one_line(info.value, "pid 1", "other-node.example", "force_unlock=True")
    with caplog.at_level(logging.WARNING, logger="surrogate_al.store"):
        with CampaignStore.open(path, "a", force_unlock=True) as s:
            add_points(s, 1)
    assert "force_unlock" in caplog.text and not Path(str(path) + ".lock").exists()


def test_an_unreadable_old_lock_is_broken(store: CampaignStore, path: Path) -> None:
    store.close()
    lock = Path(str(path) + ".lock")
    lock.write_bytes(b"")  # a driver killed between creating and writing its lock
    os.utime(lock, (time.time() - 60, time.time() - 60))
    CampaignStore.open(path, "a").close()
    lock.write_bytes(b'{"pid": ')  # fresh and unreadable: someone is writing it right now
    t0 = time.monotonic()
    with pytest.raises(StoreLockedError, match="being written"):
        CampaignStore.open(path, "a")
    assert time.monotonic() - t0 < 1.0


# --------------------------------------------------------------------------- journal damage




# --------------------------------------------------------------------------- real CLI drivers

_LOG_TIME = r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})"


def _lock_owner(store: Path) -> int | None:
    try:
        return int(json.loads(Path(f"{store}.lock").read_bytes())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _second_driver(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*console_script(), *args], capture_output=True, text=True, timeout=180, cwd=REPO, check=False,
                          env=driver_env())


def _assert_refused_naming(res: subprocess.CompletedProcess[str], holder: int) -> str:
    """Exit 2, one line on stderr, no traceback, naming the live holder's pid and host."""
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    line = lines[0]
    assert line.startswith("surrogate-al: error: ")
    for part in ("locked by live", f"pid {holder}", f"host {socket.gethostname()}", "wait for that driver"):
        assert part in line, f"{part!r} not in {line!r}"
    return line


def test_a_second_cli_driver_fails_within_a_second_naming_the_holder_and_the_first_finishes(tmp_path: Path) -> None:
    """Two ``surrogate-al`` drivers on one store: the second (run or resume) exits 2 at once; the first completes.

    The time from the second driver's lock attempt to its refusal is measured
    inside that real CLI process: ``-vv`` logs both moments (the store's debug
    log "taking the lock" and "lock refused after X s").
    """
    hold = tmp_path / "hold"
    hold.touch()
    workflow = write_held_workflow(tmp_path, name="twin", budget=4, hold=hold)
    store = tmp_path / "twin.h5"
    first = start_driver(["run", str(workflow), "--no-progress"])
    try:
        # Locked, cluster up, runs in progress (held): the first driver is mid-campaign.
        wait_until("the first driver's lock and held runs",
                   lambda: _lock_owner(store) == first.pid and any(tmp_path.glob("hold.started-*")), first, timeout=180)
        lock_before = Path(f"{store}.lock").read_bytes()

        line = _assert_refused_naming(_second_driver("run", str(workflow), "--no-progress"), first.pid)
        assert str(store) in line
        _assert_refused_naming(_second_driver("resume", str(store), "--no-progress"), first.pid)

        timed = _second_driver("-vv", "run", str(workflow), "--no-progress")
        assert timed.returncode == 2, timed.stderr[-2000:]
        assert "Traceback" not in timed.stderr and timed.stderr.strip().splitlines()[-1].startswith("surrogate-al: error:")
        start = re.search(_LOG_TIME + r" DEBUG surrogate_al\.store: .*: taking the lock", timed.stderr)
        refused = re.search(_LOG_TIME + r" DEBUG surrogate_al\.store: .*: lock refused after ([0-9.]+) s \(live holder\)",
                            timed.stderr)
        assert start and refused, timed.stderr[-3000:]
        stamp = "%Y-%m-%d %H:%M:%S,%f"
        between_logs = (datetime.strptime(refused[1], stamp) - datetime.strptime(start[1], stamp)).total_seconds()
        elapsed = float(refused[2])
        print(f"second driver refused {elapsed:.3f} s after its lock attempt (log stamps: {between_logs:.3f} s)")
        assert elapsed < 1.0 and between_logs < 1.0

        # The refusals changed nothing: same lock, the first driver still running.
        assert Path(f"{store}.lock").read_bytes() == lock_before
        assert first.poll() is None
        hold.unlink()
        out, err = first.communicate(timeout=300)
        assert first.returncode == 0, err[-3000:]
        assert "campaign completed" in out
    finally:
        hold.unlink(missing_ok=True)
        reap(first)
    assert not Path(f"{store}.lock").exists()
    assert_exactly_budget(store, 4)


@pytest.mark.slow
def test_a_sigkilled_cli_drivers_lock_is_broken_by_resume_and_a_foreign_one_needs_force_unlock(tmp_path: Path) -> None:
    """SIGKILL the driver mid-campaign: ``resume`` breaks its stale lock (warning naming the dead pid) and completes;
    a lock from another host makes ``resume`` exit 2 until ``--force-unlock`` is given.
    """
    hold = tmp_path / "hold"
    hold.touch()
    workflow = write_held_workflow(tmp_path, name="killed", budget=6, hold=hold)
    store = tmp_path / "killed.h5"
    first = start_driver(["run", str(workflow), "--no-progress"])
    try:
        wait_until("the first driver's lock and held runs",
                   lambda: _lock_owner(store) == first.pid and any(tmp_path.glob("hold.started-*")), first, timeout=180)
        assert kill_driver(first) == -signal.SIGKILL
    finally:
        hold.unlink(missing_ok=True)
        reap(first)
    assert _lock_owner(store) == first.pid and not psutil.pid_exists(first.pid)

    resumed = _second_driver("resume", str(store), "--no-progress")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"breaking the stale lock of pid {first.pid}" in resumed.stderr
    assert "Traceback" not in resumed.stderr
    assert not Path(f"{store}.lock").exists()
    assert_exactly_budget(store, 6)
    # A stopped campaign: resume of a completed one exits 0 at once without looking at the lock.
    with CampaignStore.open(store, "a") as stopped:
        stopped.set_state("stopped", "stopped by the test")

    foreign = {"pid": 4242, "host": "other-node.example", "started": time.time() - 60,
               "command": "surrogate-al run killed.toml", "create_time": 0.0, "token": "x"}
    Path(f"{store}.lock").write_text(json.dumps(foreign))
    refused = _second_driver("resume", str(store), "--no-progress")
    assert refused.returncode == 2
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in refused.stderr
    assert "pid 4242" in lines[0] and "other-node.example" in lines[0] and "--force-unlock" in lines[0]
    assert json.loads(Path(f"{store}.lock").read_text()) == foreign, "refusing must leave the foreign lock alone"

    forced = _second_driver("resume", str(store), "--force-unlock", "--no-progress")
    assert forced.returncode == 0, forced.stderr[-3000:]
    assert "force_unlock: breaking the lock of pid 4242 on host other-node.example" in forced.stderr
    assert not Path(f"{store}.lock").exists()
    assert_exactly_budget(store, 6)
