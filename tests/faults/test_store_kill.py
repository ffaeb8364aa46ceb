"""The campaign store survives SIGKILL of its writer: nothing acknowledged is lost, nothing doubled.

Two levels:

* The store alone. A writer process (``store_scripts/store_writer.py``)
  appends proposals and runs and prints each run_id after ``add_run``
  returns; it is SIGKILLed at random moments (while starting, replaying,
  appending, writing a snapshot or a large checkpoint). The printed
  acknowledgments are the ground truth: after every kill the ``.h5`` must
  open with plain h5py (no h5clear), the store must open read-only and for
  writing, every acknowledged run must be there with its data intact, and no
  proposal may have two final runs.
* A whole campaign. A real ``surrogate-al`` driver (LocalCluster, a cheap
  simulator, a model-free policy so it writes fast) is SIGKILLed at random
  moments many times in a row on one store and resumed each time. What a
  reader saw while the driver ran was acknowledged: after each kill the
  ``.h5`` opens with plain h5py, every run seen before is still there, row
  for row, and the counts never go down. A last resume reaches exactly the
  budget with no proposal settled twice.
"""

from __future__ import annotations

import functools
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

from surrogate_al.errors import StoreError
from surrogate_al.store import FORMAT, CampaignStore

from .fault_sims import branin
from .helpers import (
    assert_exactly_budget,
    kill_driver,
    start_cli,
    wait_until,
    write_workflow,
)

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


# --------------------------------------------------------------------------- a whole campaign

#: Columns that identify a run row and must never change once a reader has seen it.
RUN_COLUMNS = ("run_id", "proposal_id", "attempt", "final", "X", "Y")


def read_runs(path: Path) -> dict[str, np.ndarray]:
    """The store's runs as a reader sees them now (snapshot + journal), with status."""
    with CampaignStore.open(path, "r") as st:
        cols = st.arrays()
    return {k: cols[k] for k in (*RUN_COLUMNS, "status")}


def more_settled_than(path: Path, n: int) -> bool:
    """Whether a reader sees more than ``n`` settled runs now (False while the store does not exist yet)."""
    try:
        return int(read_runs(path)["final"].sum()) > n
    except (OSError, StoreError):  # not created yet
        return False


def check_campaign_store(path: Path, seen: dict[str, np.ndarray], where: str) -> dict[str, np.ndarray]:
    """After a kill: plain h5py opens the .h5, every run seen before is unchanged, counts do not go down.

    Returns:
        The runs now (the next round's ``seen``).
    """
    with h5py.File(path, "r") as f:  # no h5clear, no surrogate_al
        assert f.attrs["format"] == FORMAT
        plain = {k: f["runs"][k][()] for k in RUN_COLUMNS}
    now = read_runs(path)
    n, n_seen = len(now["run_id"]), len(seen["run_id"])
    assert np.array_equal(now["run_id"], np.arange(n)), f"{where}: run ids are not 0..{n - 1}"
    assert n >= n_seen, f"{where}: {n_seen - n} acknowledged runs lost ({n} left of {n_seen})"
    for k in RUN_COLUMNS:
        # Every run a reader saw before the kill is still there, row for row.
        assert np.array_equal(now[k][:n_seen], seen[k], equal_nan=k == "Y"), f"{where}: column {k} changed"
        # The plain-h5py snapshot is a prefix of the truth.
        assert np.array_equal(plain[k], now[k][: len(plain[k])], equal_nan=k == "Y"), f"{where}: snapshot {k} differs"
    finals = now["proposal_id"][now["final"]]
    assert len(np.unique(finals)) == len(finals), f"{where}: a proposal has two final runs"
    assert int(now["final"].sum()) >= int(seen["final"].sum()), f"{where}: the number of settled runs went down"
    pairs = list(zip(now["proposal_id"].tolist(), now["attempt"].tolist()))
    assert len(set(pairs)) == len(pairs), f"{where}: an attempt was recorded twice"
    ok = now["status"] == "ok"
    expected = np.array([branin(a, b)["y"] for a, b in now["X"][ok]]).reshape(-1)
    assert np.array_equal(now["Y"][ok, 0], expected), f"{where}: a stored output does not match its input"
    return now


def kill_campaign_driver(tmp_path: Path, n_kills: int, seed: int, budget: int) -> list[int]:
    """Kill a real driver ``n_kills`` times at random moments on one store, resume to the budget.

    Returns:
        Settled runs at each kill.
    """
    rng = random.Random(seed)
    wf = write_workflow(
        tmp_path, name="killed", budget=budget, policy="sobol", function="fault_sims:slow_branin",
        simulator_extra="fixed_inputs = { delay = 0.03 }",
    )
    store = wf.with_suffix(".h5")
    empty = {k: np.zeros((0, 2) if k == "X" else (0, 1) if k == "Y" else 0) for k in (*RUN_COLUMNS, "status")}
    seen = empty
    settled_at_kill: list[int] = []
    moments: list[str] = []
    for i in range(n_kills):
        proc = start_cli(*(("run", str(wf)) if i == 0 else ("resume", str(store))), "--no-progress")
        live = seen
        try:
            # The first driver must get as far as a store with results; later ones die anywhere,
            # also while importing, replaying the journal or writing the snapshot at open.
            moment = "running" if i == 0 else rng.choices(["startup", "running"], weights=[1, 3])[0]
            if moment == "startup":
                time.sleep(rng.uniform(0.3, 4.0))
            else:
                before = int(seen["final"].sum())
                wait_until("new results", functools.partial(more_settled_than, store, before), proc, timeout=120)
                time.sleep(rng.uniform(0.0, 0.6))  # somewhere in the stream of journal writes
                # Whatever a reader sees now was written: it must survive the kill.
                live = read_runs(store)
        finally:
            rc = kill_driver(proc)
        assert rc == -signal.SIGKILL, f"driver {i} exited by itself (rc {rc}) before the kill"
        # What the live reader saw, then everything seen before, must be there.
        check_campaign_store(store, seen, f"kill {i + 1} (earlier runs)")
        seen = check_campaign_store(store, live, f"kill {i + 1} ({moment})")
        settled_at_kill.append(int(seen["final"].sum()))
        moments.append(moment)
    assert settled_at_kill[-1] < budget, "the campaign finished between kills; raise the budget"
    proc = start_cli("resume", str(store), "--no-progress")
    try:
        _, err = proc.communicate(timeout=600)
    finally:
        kill_driver(proc)
    assert proc.returncode == 0, err[-3000:]
    check_campaign_store(store, seen, "final resume")
    assert_exactly_budget(store, budget)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["killed.h5", "killed.toml"]
    print(f"campaign driver killed {n_kills} times ({moments.count('startup')} during start-up); "
          f"settled at each kill: {settled_at_kill}")
    return settled_at_kill


@pytest.mark.slow
def test_sigkill_campaign_driver_thirty_times_then_resume_to_budget(tmp_path: Path) -> None:
    # 10 to 20 results per kill on the 2-core test machine (500 to 600 after 30 kills, depending on its load):
    # 2 000 leaves room for a faster machine, and the last resume (1 500 runs, about 20 s here) still settles most of the runs.
    settled = kill_campaign_driver(tmp_path, n_kills=30, seed=3, budget=2000)
    assert settled == sorted(settled) and settled[-1] > settled[0]
