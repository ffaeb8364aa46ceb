"""Criterion 15: the disk fills up while a campaign writes its store.

A real ``surrogate-al run`` driver (LocalCluster, ``hold_sims`` simulator)
keeps its store on a small file system. Once some results are acknowledged the
test fills that file system, lets the held runs finish, and checks that the
driver stops with one clean error line naming the store, that the store still
opens (``CampaignStore.open`` and plain h5py) with every result acknowledged
before, and that ``surrogate-al resume`` completes the budget once space is
freed, with no proposal settled twice.

Two ways to run out of space, the first one possible is used so the test never
skips:

* a real full disk: a 16 MiB tmpfs mounted on the store's directory (needs
  root or CAP_SYS_ADMIN) and a filler file written until ENOSPC;
* otherwise the driver's file size limit, lowered while it runs
  (``prlimit(RLIMIT_FSIZE)`` through psutil) below the size of its journal:
  every later write of the store fails with EFBIG. CPython ignores SIGXFSZ, so
  the driver gets the error instead of being killed (checked in
  ``/proc/PID/status``). Freeing space is then simply resuming in a new
  process, which has no such limit.
"""

from __future__ import annotations

import errno
import os
import re
import resource
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import psutil
import pytest

import surrogate_al
from surrogate_al.store import FORMAT, CampaignStore

from .held import console_script, start_driver, write_held_workflow
from .helpers import REPO, assert_exactly_budget, driver_env, n_final, reap

BUDGET = 10


class _Tmpfs:
    """A real, small file system for the store: fill it with a filler file, free it by deleting that."""

    kind = "tmpfs"
    words = ("No space left on device", "the disk is full")

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.filler = directory / "filler"

    @staticmethod
    def mount(directory: Path) -> bool:
        """Mount a 16 MiB tmpfs on ``directory``; False where this process may not mount."""
        directory.mkdir()
        try:
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(directory)],
                           check=True, capture_output=True, timeout=60)
        except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired):
            return False
        return True

    def fill(self, driver_pid: int) -> None:
        """Write the filler until ENOSPC, with ever smaller writes so no page is left free."""
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            for size in (1 << 20, 1 << 16, 1 << 12, 1):
                chunk = b"\0" * size
                try:
                    while True:
                        os.write(fd, chunk)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
        finally:
            os.close(fd)
        assert shutil.disk_usage(self.directory).free < 4096

    def free(self) -> None:
        self.filler.unlink()

    def unmount(self) -> None:
        umount = subprocess.run(["umount", str(self.directory)], capture_output=True, timeout=60, check=False)
        if umount.returncode != 0:  # still busy: detach it now, the kernel frees it when the last user goes
            subprocess.run(["umount", "-l", str(self.directory)], capture_output=True, timeout=60, check=True)


class _FileSizeLimit:
    """No room for the driver: its RLIMIT_FSIZE lowered below its journal's size while it runs."""

    kind = "rlimit"
    words = ("File too large", "file size limit")

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir()

    def fill(self, driver_pid: int) -> None:
        status = Path(f"/proc/{driver_pid}/status").read_text()
        ignored = int(re.search(r"^SigIgn:\s*([0-9a-f]+)$", status, re.MULTILINE)[1], 16)  # type: ignore[index]
        assert ignored & (1 << (signal.SIGXFSZ - 1)), "the driver must ignore SIGXFSZ to get EFBIG"
        journal = next(self.directory.glob("*.journal"))
        limit = journal.stat().st_size  # any append starts at or past it
        psutil.Process(driver_pid).rlimit(resource.RLIMIT_FSIZE, (limit, limit))

    def free(self) -> None:
        """Nothing to delete: the resuming driver is a new process without the limit."""

    def unmount(self) -> None:
        """Nothing mounted."""


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[_Tmpfs | _FileSizeLimit]:
    """The tmpfs where this process can mount one, else the file size limit."""
    directory = tmp_path / "disk"
    disk: _Tmpfs | _FileSizeLimit
    if _Tmpfs.mount(directory):
        disk = _Tmpfs(directory)
    else:
        directory.rmdir()
        disk = _FileSizeLimit(directory)
    try:
        yield disk
    finally:
        disk.unmount()


def _results(store: Path) -> dict[int, tuple[str, list[float]]]:
    with CampaignStore.open(store, "r") as st:
        return {r.proposal_id: (r.status, r.outputs.tolist()) for r in st.final_runs()}


def _run_out_of_space(tmp_path: Path, disk: _Tmpfs | _FileSizeLimit) -> None:
    hold = tmp_path / "hold"  # outside the small disk: the simulator's markers must not fail
    hold.touch()
    store = disk.directory / "full.h5"
    workflow = write_held_workflow(tmp_path, name="full", budget=BUDGET, hold=hold, store=store)
    driver = start_driver(["run", str(workflow), "--no-progress"], cwd=tmp_path)
    try:
        # Let the initial design through, then hold the next runs: acknowledged results, runs in flight.
        deadline = time.monotonic() + 180
        while len(list(tmp_path.glob("hold.started-*"))) < 2:
            assert driver.poll() is None and time.monotonic() < deadline, "the driver did not start its runs"
            time.sleep(0.1)
        hold.unlink()
        while n_final(store) < 4:
            assert driver.poll() is None and time.monotonic() < deadline, "the initial design did not finish"
            time.sleep(0.05)
        # Markers first, then the hold: every run that marks from now on may be held, none is missed.
        for marker in tmp_path.glob("hold.started-*"):
            marker.unlink()
        hold.touch()
        while len(list(tmp_path.glob("hold.started-*"))) < 2:  # both workers wait on new, held runs
            assert driver.poll() is None and time.monotonic() < deadline, "no held runs after the design"
            time.sleep(0.05)
        before = _results(store)
        assert 4 <= len(before) < BUDGET

        disk.fill(driver.pid)
        hold.unlink()  # the held runs finish; recording them needs space
        out, err = driver.communicate(timeout=300)
    finally:
        hold.unlink(missing_ok=True)
        reap(driver)

    # A clean stop: non-zero, one error line naming the store and the cause, no traceback.
    print(f"[{disk.kind}] driver exit {driver.returncode}; stderr:\n{err}")
    assert driver.returncode == 1
    # Under load a Dask worker process (whose stderr is the driver's) can log its failed heartbeat
    # to the scheduler being shut down, with a traceback of distributed's own frames: that is
    # Dask's log, not the CLI's report. No frame of ours may appear.
    assert 'File "' + str(Path(surrogate_al.__file__).parent) not in err and "campaign completed" not in out
    lines = err.strip().splitlines()
    errors = [line for line in lines if line.startswith("surrogate-al: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], err
    # Other lines may be log records (the campaign logs that it could not record its end) and Dask's
    # warnings (e.g. "Port 8787 is already in use" when other clusters run): nothing of the store's.
    assert not [line for line in lines[:-1] if "surrogate_al.store" in line], err
    for part in (str(store), *disk.words, "surrogate-al resume"):
        assert part in errors[0], f"{part!r} not in {errors[0]!r}"
    assert not Path(f"{store}.lock").exists(), "the stopped driver must release its lock"
    assert not Path(f"{store}.tmp").exists(), "a failed snapshot must not leave its temporary file"

    # The store opens, with every result acknowledged before the disk filled.
    after = _results(store)
    assert {pid: after[pid] for pid in before} == before
    with h5py.File(store, "r") as f:  # the .h5 itself is a whole, readable snapshot
        assert f.attrs["format"] == FORMAT
        final_in_h5 = set(np.asarray(f["runs/proposal_id"])[np.asarray(f["runs/final"])].tolist())
    assert final_in_h5 <= set(after)

    # Space freed: resume completes the budget, nothing settled twice.
    disk.free()
    resumed = subprocess.run([*console_script(), "resume", str(store), "--no-progress"], capture_output=True, check=False,
                             text=True, timeout=600, cwd=REPO, env=driver_env())
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_exactly_budget(store, BUDGET)
    final = _results(store)
    assert {pid: final[pid] for pid in after} == after
    with h5py.File(store, "r") as f:
        assert int(np.asarray(f["runs/final"]).sum()) == BUDGET


def test_a_full_disk_stops_the_driver_cleanly_and_resume_completes_after_freeing_space(
    tmp_path: Path, small_disk: _Tmpfs | _FileSizeLimit
) -> None:
    """Real tmpfs where mounting is allowed (here: as root), the file size limit otherwise."""
    print(f"out-of-space path: {small_disk.kind}")
    _run_out_of_space(tmp_path, small_disk)


@pytest.mark.slow
def test_the_file_size_limit_path_also_stops_cleanly_and_resumes(tmp_path: Path) -> None:
    """The fallback for machines where tmpfs cannot be mounted, run here too so both paths are proved."""
    _run_out_of_space(tmp_path, _FileSizeLimit(tmp_path / "disk"))
