"""What ``status`` and ``resume`` say after a crash, a finished campaign, and a start where every run fails.

- A driver SIGKILLed mid-campaign leaves state ``running`` and its lock file;
  ``status`` must say the driver is gone and print the resume command.
- ``resume`` of a completed campaign must exit 0 at once, starting no cluster
  (no child process) and leaving the store untouched (not reopened for writing).
- A campaign whose every run fails before the breaker may trip must say so,
  with the first run's reason, instead of "stalled".
"""

from __future__ import annotations

import hashlib
import json
import socket
import sys
import textwrap
import time
from pathlib import Path

import psutil

from surrogate_al.campaign import Campaign
from surrogate_al.config import load_workflow
from surrogate_al.store import CampaignStore

from .helpers import cli, kill_driver, kill_when_gate_holds, reap, start_cli, unit_square_tail, write_workflow


def test_status_after_sigkill_says_the_driver_is_gone_and_how_to_resume(tmp_path: Path) -> None:
    wf = write_workflow(
        tmp_path, name="killed", budget=7, mode="sync", batch_size=2, design_size=3, policy="random",
        function="fault_sims:gated_branin",
    )
    store = wf.with_suffix(".h5")
    gate = tmp_path / "gate"
    gate.mkdir()
    assert kill_when_gate_holds(wf, gate, after=3, batch=2) == -9
    with CampaignStore.open(store, mode="r") as st:
        assert st.state()[0] == "running"  # the crash recorded no end
    lock = json.loads((tmp_path / "killed.h5.lock").read_text())

    res = cli("status", str(store))

    assert res.returncode == 0, res.stderr
    state_line = next(line for line in res.stdout.splitlines() if line.startswith("state:"))
    assert f"interrupted (driver pid {lock['pid']} on {socket.gethostname()} is gone)" in state_line, res.stdout
    assert f"surrogate-al resume {store}" in res.stdout, res.stdout

    js = cli("status", "--json", str(store))
    assert js.returncode == 0, js.stderr
    data = json.loads(js.stdout)
    assert data["state"] == "interrupted"
    assert data["driver"] == {"pid": lock["pid"], "host": socket.gethostname(), "alive": False}
    assert data["resume_command"] == ["surrogate-al", "resume", str(store)]


def _completed_store(tmp_path: Path) -> Path:
    """A campaign run to its budget through ask / tell in this process (its simulator is a plain function)."""
    wf = write_workflow(tmp_path, name="done", budget=3, design_size=3, policy="random")
    sys.path.insert(0, str(Path(__file__).parent))  # fault_sims, for the simulator called here
    try:
        campaign = Campaign.create(load_workflow(wf))
        with campaign:
            for trial in campaign.ask(3):
                campaign.tell(trial, campaign.simulator(trial.inputs))
            assert campaign.done()
            campaign.end("completed", "budget reached")
    finally:
        sys.path.remove(str(Path(__file__).parent))
    return wf.with_suffix(".h5")


def test_resume_of_a_completed_campaign_exits_0_and_starts_nothing(tmp_path: Path) -> None:
    store = _completed_store(tmp_path)
    before = hashlib.sha256(store.read_bytes()).hexdigest()

    proc = start_cli("resume", str(store), "--no-progress")
    children: set[int] = set()
    try:
        driver = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                children.update(c.pid for c in driver.children(recursive=True))
            except psutil.NoSuchProcess:
                break
            time.sleep(0.01)
        out, err = proc.communicate(timeout=120)
    finally:
        reap(proc)

    assert proc.returncode == 0, err
    assert "already completed" in out, out
    assert children == set(), f"resume started processes (a cluster?): {children}"
    assert hashlib.sha256(store.read_bytes()).hexdigest() == before, "the store was reopened for writing"
    assert not (tmp_path / "done.h5.lock").exists()
    with CampaignStore.open(store, mode="r") as st:
        assert [kind for _, kind, _ in st.events()].count("resumed") == 0


def test_a_start_where_every_run_fails_says_so_with_the_first_reason(tmp_path: Path) -> None:
    script = tmp_path / "always_fails.py"
    script.write_text("import sys\nsys.stderr.write('solver diverged\\n')\nsys.exit(1)\n")
    wf = tmp_path / "allfail.toml"
    wf.write_text(
        textwrap.dedent(
            f"""\
            [campaign]
            name = "allfail"
            budget = 10
            concurrency = 2
            initial_design = {{ size = 3, kind = "sobol" }}
            store = "allfail.h5"

            [simulator]
            kind = "script"
            command = ["{sys.executable}", "{script}", "{{input}}"]
            retries = 0
            outputs = ["y"]

            """
        )
        + unit_square_tail("kind = 'local'\nworkers = 2").replace('policy = "random"', 'policy = "default"')
    )

    proc = start_cli("run", str(wf), "--no-progress")
    try:
        out, err = proc.communicate(timeout=300)
    except BaseException:
        kill_driver(proc)
        raise
    finally:
        reap(proc)

    assert proc.returncode == 1, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("surrogate-al: error: all 3 runs failed; first reason: exit code 1"), err[-2000:]
    assert "stalled" not in err
    with CampaignStore.open(tmp_path / "allfail.h5", mode="r") as st:
        assert st.state()[0] == "stopped"
        assert "all 3 runs failed" in st.state()[1]
