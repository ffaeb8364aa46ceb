"""The campaign store survives SIGKILL of its writer: nothing acknowledged is lost, nothing doubled.

A real writer process (``store_scripts/store_writer.py``) appends proposals and
runs and prints each run_id after ``add_run`` returns; it is SIGKILLed at
random moments (while starting, replaying, appending, writing a snapshot or a
large checkpoint). The printed acknowledgments are the ground truth: after
every kill the ``.h5`` must open with plain h5py (no h5clear), the store must
open read-only and for writing, every acknowledged run must be there with its
data intact, and no proposal may have two final runs.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from surrogate_al.store import FORMAT, CampaignStore

WRITER = Path(__file__).parent / "store_scripts" / "store_writer.py"
REPO = Path(__file__).resolve().parents[2]


class Writer:
    """A writer subprocess whose stdout lines are collected by a thread as they arrive."""

    def __init__(self, path: Path, *args: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen(
            [sys.executable, str(WRITER), str(path), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        self.lines: list[str] = []
        self._ready = threading.Event()
        self._out = threading.Thread(target=self._read, daemon=True)
        self._out.start()
        self.stderr = b""
        self._err = threading.Thread(target=self._read_err, daemon=True)
        self._err.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            if not raw.endswith(b"\n"):
                break  # a line cut by the kill was never fully acknowledged
            line = raw.decode().strip()
            self.lines.append(line)
            if line.startswith(("ready", "holding")):
                self._ready.set()

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        self.stderr = self.proc.stderr.read()

    def wait_ready(self, timeout: float = 30.0) -> bool:
        return self._ready.wait(timeout)

    def wait_first_ack(self, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            if any(line.startswith("ack ") for line in list(self.lines)):
                return True
            time.sleep(0.005)
        return False

    def acks(self) -> dict[int, tuple[int, int, bool]]:
        out = {}
        for line in list(self.lines):
            if line.startswith("ack "):
                rid, pid, attempt, final = map(int, line.split()[1:])
                out[rid] = (pid, attempt, bool(final))
        return out

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.finish()

    def finish(self, timeout: float = 60.0) -> int:
        rc = self.proc.wait(timeout)
        self._out.join(10)
        self._err.join(10)
        return rc


def new_store(path: Path) -> None:
    CampaignStore.create(path, spec={"campaign": {"budget": 10_000}}, input_names=["x0", "x1"],
                         output_names=["y0", "y1"]).close()


def check_consistent(cols: dict[str, np.ndarray], acked: dict[int, tuple[int, int, bool]], where: str) -> None:
    """Every acknowledged run present and intact; run ids dense; at most one final run per proposal."""
    n = len(cols["run_id"])
    assert np.array_equal(cols["run_id"], np.arange(n)), f"{where}: run ids are not 0..{n - 1}"
    missing = sorted(set(acked) - set(range(n)))
    assert not missing, f"{where}: acknowledged runs lost: {missing[:10]} (store has {n} runs)"
    for rid, (pid, attempt, final) in acked.items():
        got = (int(cols["proposal_id"][rid]), int(cols["attempt"][rid]), bool(cols["final"][rid]))
        assert got == (pid, attempt, final), f"{where}: run {rid} is {got}, acknowledged as {(pid, attempt, final)}"
    finals = cols["proposal_id"][cols["final"]]
    assert len(np.unique(finals)) == len(finals), f"{where}: a proposal has two final runs"
    pairs = list(zip(cols["proposal_id"].tolist(), cols["attempt"].tolist()))
    assert len(set(pairs)) == len(pairs), f"{where}: an attempt was recorded twice"
    ok = cols["status"] == "ok"
    X, Y = cols["X"][ok], cols["Y"][ok]
    assert np.allclose(Y[:, 0], X.sum(axis=1)) and np.allclose(Y[:, 1], X[:, 0] - X[:, 1]), f"{where}: damaged rows"


def check_after_kill(path: Path, acked: dict[int, tuple[int, int, bool]], *, read_only_first: bool) -> int:
    """All the checks the bar asks for after one kill; returns the number of runs."""
    # Plain h5py, no h5clear, no surrogate_al: the file is always a complete snapshot.
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == FORMAT
        plain = {k: f["runs"][k][()] for k in ("run_id", "proposal_id", "attempt", "final", "X", "Y")}
        plain["status"] = f["runs/status"].asstr()[()].astype(str)
    check_consistent(plain, {r: a for r, a in acked.items() if r < len(plain["run_id"])}, "plain h5py snapshot")
    if read_only_first:
        reader = CampaignStore.open(path, "r")
        check_consistent(reader.arrays(), acked, "open(mode='r') after kill")
    with CampaignStore.open(path, "a") as store:  # replays the journal the killed writer left
        cols = store.arrays()
        check_consistent(cols, acked, "open(mode='a') after kill")
        n = len(cols["run_id"])
        # The snapshot is a prefix of the truth, row for row.
        for k in ("proposal_id", "attempt", "final", "X"):
            assert np.array_equal(plain[k], cols[k][: len(plain[k])]), f"snapshot column {k} disagrees with truth"
    assert not Path(str(path) + ".journal").exists() and not Path(str(path) + ".lock").exists()
    return n


def kill_campaign(tmp_path: Path, n_kills: int, seed: int) -> None:
    rng = random.Random(seed)
    path = tmp_path / "campaign.h5"
    new_store(path)
    acked: dict[int, tuple[int, int, bool]] = {}
    n_acks_per_kill = []
    for i in range(n_kills):
        interval = rng.choice(["0", "0.05", "30"])
        writer = Writer(path, "--target", "1000000", "--snapshot-interval", interval,
                        "--checkpoint-bytes", str(rng.choice([1_000, 300_000])))
        moment = rng.choices(["startup", "after-open", "appending"], weights=[2, 2, 6])[0]
        if moment == "startup":
            time.sleep(rng.uniform(0.2, 1.5))  # importing, taking the lock, replaying, snapshotting at open
        elif moment == "after-open":
            assert writer.wait_ready(), f"writer never got ready: {writer.stderr.decode()[-2000:]}"
            time.sleep(rng.uniform(0.0, 0.1))
        else:
            assert writer.wait_first_ack(), f"writer never acknowledged: {writer.stderr.decode()[-2000:]}"
            time.sleep(rng.uniform(0.0, 0.5))  # mid-append, mid-checkpoint, mid-snapshot
        writer.kill()
        assert writer.proc.returncode == -signal.SIGKILL, (
            f"writer exited by itself (rc {writer.proc.returncode}): {writer.stderr.decode()[-2000:]}"
        )
        new = writer.acks()
        assert not (set(new) & set(acked)), "a run id was acknowledged twice"
        acked.update(new)
        n_acks_per_kill.append(len(new))
        check_after_kill(path, acked, read_only_first=i % 2 == 1)
    assert sum(n_acks_per_kill) >= n_kills, f"too few acknowledged runs to prove anything: {n_acks_per_kill}"
    # A last writer runs to completion: the campaign ends as one .h5 with everything.
    with CampaignStore.open(path) as store:
        target = int(store.arrays()["final"].sum()) + 5
    writer = Writer(path, "--target", str(target))
    assert writer.finish() == 0, writer.stderr.decode()[-2000:]
    assert writer.lines[-1] == "done"
    acked.update(writer.acks())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["campaign.h5"]
    store = CampaignStore.open(path)
    check_consistent(store.arrays(), acked, "final store")
    n_final = len(store.final_runs())
    assert n_final >= target  # it settles whole batches
    assert store.state() == ("completed", f"{n_final} results")
    assert store.pending_proposal_ids() == []


def test_sigkill_writer_ten_times_loses_nothing(tmp_path: Path) -> None:
    kill_campaign(tmp_path, n_kills=10, seed=1)


@pytest.mark.slow
def test_sigkill_writer_thirty_times_loses_nothing(tmp_path: Path) -> None:
    kill_campaign(tmp_path, n_kills=30, seed=2)


def test_reader_sees_every_acknowledged_run_while_writer_runs(tmp_path: Path) -> None:
    """open(mode='r') during live writes (snapshots replacing the .h5 under it) sees every ack so far."""
    path = tmp_path / "campaign.h5"
    new_store(path)
    writer = Writer(path, "--target", "1000000", "--snapshot-interval", "0.02", "--checkpoint-bytes", "20000")
    try:
        assert writer.wait_ready(), writer.stderr.decode()[-2000:]
        deadline = time.monotonic() + 4.0
        reads = 0
        seen_in_journal_only = 0
        while time.monotonic() < deadline:
            acked = writer.acks()  # acknowledged before the reader opens
            reader = CampaignStore.open(path, "r")
            check_consistent(reader.arrays(), acked, "live reader")
            seen_in_journal_only += reader.summary()["journal_records"] > 0
            reads += 1
        assert reads >= 5 and len(writer.acks()) > 20
        assert seen_in_journal_only > 0, "never read records from the journal tail; the test did not exercise it"
    finally:
        writer.kill()
