"""A timeout kills the run's whole process tree, and the worker goes on with the next run.

Real processes only: shell and Python scripts that ignore SIGTERM and leave a
background grandchild, the ScriptSimulator's own session and process group,
and (for the campaign test) a LocalCluster of one Nanny worker process.
"Nothing left" is checked with psutil over every process on the machine:
no live (non-zombie) process of the run's session or process group survives.
"""

from __future__ import annotations

import os
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from surrogate_al.campaign import Campaign
from surrogate_al.simulation import ScriptSimulator
from surrogate_al.store import CampaignStore

from .helpers import unit_square_tail

INTEGRATION_SCRIPTS = Path(__file__).resolve().parents[1] / "integration" / "scripts"
SCRIPTS = Path(__file__).resolve().parent / "scripts"
PY = sys.executable


def _alive(pid: int) -> bool:
    """Whether a process runs (zombies count as gone: they hold no resources but a table slot)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _live_members(pgid: int) -> list[int]:
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc.pid)
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return members


def _live_session_members(sid: int) -> list[int]:
    """Live processes whose session is ``sid`` (the wrapper starts each run in a new session)."""
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getsid(proc.pid) == sid and proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc.pid)
        except (ProcessLookupError, PermissionError, psutil.NoSuchProcess):
            continue
    return members


@pytest.mark.parametrize(
    "command",
    [
        ["/bin/sh", str(INTEGRATION_SCRIPTS / "hang.sh")],
        ["/bin/sh", str(INTEGRATION_SCRIPTS / "hang_trap.sh")],
        [PY, str(INTEGRATION_SCRIPTS / "hang_trap.py")],
    ],
    ids=["sleep-forever", "sh-traps-sigterm", "python-ignores-sigterm"],
)
def test_timeout_kills_the_whole_process_group(root: Path, command: list[str]) -> None:
    sim = ScriptSimulator(command, ["x1"], ["y"], timeout=1.0, kill_grace=0.5, workdir_root=root)
    start = time.monotonic()
    res = sim({"x1": 1.0}, run_id="hang")
    elapsed = time.monotonic() - start
    assert res.status == "timeout"
    assert res.reason == "timed out after 1.0 s"
    assert elapsed < 3.0, f"took {elapsed:.1f} s"  # required bound: 1 s timeout + 0.5 s grace + slack
    assert res.workdir == str(root / "hang")
    pids = [int(p) for p in (root / "hang" / "pids.txt").read_text().split()]
    assert len(pids) == 2  # the script and its backgrounded grandchild
    leader = pids[0]
    assert [p for p in pids if _alive(p)] == []
    assert _live_members(leader) == []  # nothing of that process group survives


def test_timeout_in_a_campaign_kills_the_tree_and_the_worker_takes_the_next_run(tmp_path: Path) -> None:
    """Through a real campaign: the hung run (traps SIGTERM, background sleep) times out after 2 s,
    nothing of its session is left, and the single worker then completes the following runs."""
    claim = tmp_path / "claimed"
    wf = tmp_path / "tt.toml"
    wf.write_text(
        textwrap.dedent(
            f"""\
            [campaign]
            name = "tt"
            budget = 3
            concurrency = 1
            initial_design = {{ size = 3, kind = "sobol" }}
            store = "tt.h5"

            [simulator]
            kind = "script"
            command = ["/bin/sh", "{SCRIPTS / 'hang_first.sh'}", "{claim}", "{{x1}}", "{{x2}}"]
            input_format = "none"
            output_format = "keyvalue"
            timeout = 2
            kill_grace = 1
            retries = 0
            outputs = ["y"]

            """
        )
        + unit_square_tail('kind = "local"\nworkers = 1')
    )
    campaign = Campaign.from_workflow(wf)
    try:
        outcome = campaign.run()
    finally:
        campaign.close()
    assert outcome.status == "completed" and outcome.settled == 3 and outcome.ok == 2

    with CampaignStore.open(tmp_path / "tt.h5", mode="r") as st:
        runs = sorted(st.runs(), key=lambda r: r.start_time)
    assert [r.status for r in runs] == ["timeout", "ok", "ok"]
    hung, after = runs[0], runs[1:]
    assert hung.final and hung.reason == "timed out after 2.0 s"
    # 2 s timeout, SIGTERM ignored, SIGKILL after the 1 s grace: about 3 s (generous upper bound, shared CPU).
    assert 2.0 <= hung.wall_time < 10.0, hung.wall_time
    # The one worker (same address) took the next runs once the hung one was over, and they completed.
    assert hung.worker.startswith("tcp://127.0.0.1:")
    for r in after:
        assert r.worker == hung.worker
        assert r.start_time >= hung.finish_time
        assert r.outputs[0] == pytest.approx(r.inputs[0])

    pid_files = list((tmp_path / "tt_runs").glob("*/pids.txt"))
    assert len(pid_files) == 1, pid_files  # the failed run's directory is kept
    pids = [int(p) for p in pid_files[0].read_text().split()]
    assert len(pids) == 2  # the script and its backgrounded sleep
    leader = pids[0]
    assert [p for p in pids if _alive(p)] == []
    assert _live_session_members(leader) == []  # nothing of its session survives
    assert _live_members(leader) == []
