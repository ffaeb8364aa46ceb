"""Bad simulator output: NaN/inf, wrong shape, no output file, malformed files, 1 GiB on stdout.

A run that exits 0 but leaves unusable output has status ``invalid`` (not
``failed``: the program did not report an error, its results cannot be
read) with a reason naming the output and what was wrong. It settles like any
failure (retried per ``simulator.retries``), is never training data (the
surrogate's dataset holds only ``ok`` runs; the point goes to the failure
set), and what is kept of stdout/stderr is a bounded tail: the program's
output goes to files in its run directory, never through a pipe into the
worker, so the worker's and the driver's memory stay bounded.

Real processes throughout: ScriptSimulator scripts, an in-process Campaign on
a LocalCluster of Nanny worker processes, the HDF5 store.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from script_helpers import INTEGRATION_SCRIPTS, behave

from surrogate_al.campaign import FAILED_STATUSES, Campaign
from surrogate_al.simulation import TAIL_BYTES, ScriptSimulator
from surrogate_al.store import CampaignStore

from .helpers import unit_square_tail

SCRIPTS = Path(__file__).resolve().parent / "scripts"
BAD_OUTPUT = SCRIPTS / "bad_output.py"
PY = sys.executable
INPUTS = {"x1": 1.5, "x2": 0.25}
Y, Z = 1.5**2 + 0.25, 1.5 - 0.25
MIB = 1024 * 1024


# ---------------------------------------------------------------------------------------
# Simulator level (moved from tests/integration/test_script_simulator.py)
# ---------------------------------------------------------------------------------------
def test_regex_that_does_not_match_names_the_output(root: Path) -> None:
    sim = ScriptSimulator(
        [PY, str(INTEGRATION_SCRIPTS / "deck_sim.py"), "{input}"],
        ["x1", "x2"],
        ["y"],
        template="x1 = ${x1}\nx2 = ${x2}\nmesh = 2\n",
        output_format="regex",
        output_regex={"y": r"FINAL y: (\S+)"},
        workdir_root=root,
    )
    res = sim(INPUTS)
    assert res.status == "invalid"
    assert res.reason == "output 'y' missing from stdout: regex 'FINAL y: (\\\\S+)' does not match"


def test_csv_output(root: Path) -> None:
    res = behave(root, "csv", output_format="csv")(INPUTS)
    assert res.status == "ok", res.reason
    assert res.outputs == {"y": Y, "z": Z}
    res = behave(root, "csv_rows", output_format="csv")(INPUTS)  # wrong shape: 2 data rows
    assert res.status == "invalid"
    assert "output.csv" in res.reason and "exactly one data row, found 3" in res.reason


def test_user_parse_function(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(INTEGRATION_SCRIPTS))
    sim = behave(root, "parse", output_format="parse", output_filename="output.json", parse="simhelpers:parse_log")
    res = sim(INPUTS)
    assert res.status == "ok", res.reason
    assert res.outputs == {"y": Y, "z": Z}
    # A parse function that raises (here: a file the run did not write) is an invalid run that names it.
    broken = behave(root, "ok", output_format="parse", output_filename="output.json", parse="simhelpers:parse_log")
    res = broken(INPUTS)
    assert res.status == "invalid"
    assert res.reason.startswith("parse function simhelpers:parse_log raised FileNotFoundError")
    assert "z.txt" in res.reason


def test_malformed_json_is_invalid_naming_json(root: Path) -> None:
    res = behave(root, "malformed")(INPUTS)
    assert res.status == "invalid"
    assert res.reason.startswith("output file output.json is not valid JSON: ")
    assert res.workdir is not None and Path(res.workdir, "output.json").exists()


def test_missing_output_is_invalid_naming_it(root: Path) -> None:
    res = behave(root, "omit")(INPUTS)
    assert res.status == "invalid"
    assert res.reason == "output 'y' missing from output.json (found: ['w', 'z'])"


def test_nan_output_is_invalid_naming_nan(root: Path) -> None:
    res = behave(root, "nan")(INPUTS)
    assert res.status == "invalid"
    assert res.reason == "output 'y' is nan"


def test_non_numeric_output_and_missing_file(root: Path) -> None:
    res = behave(root, "text")(INPUTS)
    assert res.status == "invalid" and res.reason == "output 'y' is not a number: 'diverged'"
    res = behave(root, "nofile")(INPUTS)
    assert res.status == "invalid"
    assert res.reason == "output file output.json was not written (the run directory holds ['input.json'])"


def test_a_non_zero_exit_stays_failed_not_invalid(root: Path) -> None:
    """The line between the two: the program reported an error (exit 1) -> failed, even with an output file."""
    res = behave(root, "exit1")(INPUTS)
    assert res.status == "failed" and res.reason == "exit code 1"


def test_large_stdout_is_capped(root: Path) -> None:
    res = behave(root, "big", max_output_bytes=1000)(INPUTS)
    assert res.status == "ok", res.reason
    assert res.outputs == {"y": Y, "z": Z}
    assert len(res.stdout_tail.encode()) <= 1000
    assert res.stdout_tail.endswith("x\nEND\n")


# ---------------------------------------------------------------------------------------
# Through a campaign
# ---------------------------------------------------------------------------------------
def _workflow(directory: Path, *, modes: str, budget: int, output_format: str) -> Path:
    claim = directory / "claims"
    claim.mkdir()
    path = directory / "bad.toml"
    path.write_text(
        textwrap.dedent(
            f"""\
            [campaign]
            name = "bad"
            budget = {budget}
            concurrency = 2
            initial_design = {{ size = {budget}, kind = "sobol" }}
            store = "bad.h5"

            [simulator]
            kind = "script"
            command = ["{PY}", "{BAD_OUTPUT}", "{modes}", "{claim}", "{{input}}", "{{output}}"]
            output_format = "{output_format}"
            output_filename = "output.json"
            retries = 0
            outputs = ["y"]

            """
        )
        + unit_square_tail('kind = "local"\nworkers = 2')
    )
    if output_format == "keyvalue":  # read the outputs from stdout: no output file
        path.write_text(path.read_text().replace('output_filename = "output.json"\n', "").replace(', "{output}"', ""))
    return path


def _mode(stderr_tail: str) -> str:
    return next(line.split(" ", 1)[1] for line in stderr_tail.splitlines() if line.startswith("mode "))


def test_bad_outputs_in_a_campaign_are_invalid_with_the_reason_and_never_training_data(tmp_path: Path) -> None:
    """NaN, inf, a list, no output file (exit 0), malformed JSON: each settles ``invalid`` with its reason;
    the campaign goes on to its budget and the surrogate's dataset holds only the good runs."""
    modes = ["nan", "inf", "shape", "nofile", "malformed"]
    budget = len(modes) + 3
    wf = _workflow(tmp_path, modes=",".join(modes), budget=budget, output_format="json")
    campaign = Campaign.from_workflow(wf)
    try:
        outcome = campaign.run()
        data = campaign.dataset()
    finally:
        campaign.close()
    assert outcome.status == "completed" and outcome.settled == budget and outcome.ok == 3

    with CampaignStore.open(tmp_path / "bad.h5", mode="r") as st:
        final = st.final_runs()
    by_mode = {_mode(r.stderr_tail): r for r in final}
    assert sorted(by_mode) == sorted([*modes, "ok"])
    expected = {
        "nan": "output 'y' is nan",
        "inf": "output 'y' is inf",
        "shape": "output 'y' is a list ([1.0, 2.0, 3.0]), expected a number",
        "nofile": "output file output.json was not written (the run directory holds ['input.json'])",
    }
    for mode in modes:
        record = by_mode[mode]
        assert record.status == "invalid" and record.status in FAILED_STATUSES, (mode, record.status)
        assert record.final and np.all(np.isnan(record.outputs))
        if mode == "malformed":
            assert record.reason.startswith("output file output.json is not valid JSON: "), record.reason
        else:
            assert record.reason == expected[mode]
    ok = [r for r in final if r.status == "ok"]
    assert len(ok) == 3
    # Excluded from training: the dataset is exactly the ok runs; the invalid points are failures.
    assert data.n == 3 and np.isfinite(data.Y).all()
    np.testing.assert_allclose(np.sort(data.Y[:, 0]), np.sort([r.outputs[0] for r in ok]))
    assert data.X_failed.shape == (len(modes), 2)


class _RssWatch(threading.Thread):
    """Peak RSS of the driver (this process) and of the worker running the flood, from its start."""

    def __init__(self, pid_file: Path) -> None:
        super().__init__(name="rss-watch", daemon=True)
        self.pid_file = pid_file
        self.stop = threading.Event()
        self.me = psutil.Process()
        self.worker: psutil.Process | None = None
        self.base = {"driver": 0, "worker": 0}
        self.peak = {"driver": 0, "worker": 0}

    def run(self) -> None:
        while not self.stop.is_set():
            if self.worker is None and self.pid_file.exists():
                self.worker = psutil.Process(int(self.pid_file.read_text()))
                self.base = {"driver": self.me.memory_info().rss, "worker": self.worker.memory_info().rss}
                self.peak = dict(self.base)
            if self.worker is not None:
                try:
                    self.peak["worker"] = max(self.peak["worker"], self.worker.memory_info().rss)
                except psutil.NoSuchProcess:
                    pass
                self.peak["driver"] = max(self.peak["driver"], self.me.memory_info().rss)
            time.sleep(0.005)

    def growth_mib(self, who: str) -> float:
        return (self.peak[who] - self.base[who]) / MIB


def test_one_gib_on_stdout_is_invalid_capped_and_memory_stays_bounded(tmp_path: Path) -> None:
    """1 GiB of stdout (and 4 MiB of stderr), then no outputs, with outputs read from stdout (the worst
    case: the parser reads a 64 MiB tail): invalid with a short reason, a stored stderr tail of at
    most TAIL_BYTES, and a few tens of MiB of extra RSS in the worker and the driver, not a GiB."""
    wf = _workflow(tmp_path, modes="flood", budget=2, output_format="keyvalue")
    watch = _RssWatch(tmp_path / "claims" / "flood.pid")
    campaign = Campaign.from_workflow(wf)
    try:
        watch.start()
        t0 = time.monotonic()
        outcome = campaign.run()
        elapsed = time.monotonic() - t0
    finally:
        watch.stop.set()
        campaign.close()
        watch.join(5)
    try:
        assert outcome.status == "completed" and outcome.settled == 2 and outcome.ok == 1
        with CampaignStore.open(tmp_path / "bad.h5", mode="r") as st:
            final = st.final_runs()
        flood = next(r for r in final if r.status != "ok")
        assert flood.status == "invalid"
        assert flood.reason == "output 'y' missing from the 'name = value' lines of stdout (found: [])"
        assert len(flood.stderr_tail.encode()) <= TAIL_BYTES
        assert flood.stderr_tail.endswith("\nflood done\n")
        # The whole GiB did go through: it is on disk in the kept run directory, not in memory.
        (stdout_file,) = (tmp_path / "bad_runs").glob("*/stdout.txt")
        assert stdout_file.stat().st_size == 1024 * MIB
        assert watch.worker is not None, "the flood never started"
        worker_growth, driver_growth = watch.growth_mib("worker"), watch.growth_mib("driver")
        # Parsing reads at most max_parse_bytes (64 MiB) of the tail; a GiB in memory would be >= 1024.
        assert worker_growth < 400, f"worker RSS grew {worker_growth:.0f} MiB"
        assert driver_growth < 200, f"driver RSS grew {driver_growth:.0f} MiB"
        print(
            f"\n1 GiB stdout: worker RSS +{worker_growth:.0f} MiB, driver RSS +{driver_growth:.0f} MiB, "
            f"stored stderr tail {len(flood.stderr_tail.encode())} B, campaign {elapsed:.1f} s"
        )
    finally:
        shutil.rmtree(tmp_path / "bad_runs", ignore_errors=True)  # 1 GiB: do not leave it in /tmp
        assert not (tmp_path / "bad_runs").exists()
        assert os.path.exists(tmp_path / "bad.h5")
        json.dumps(watch.peak)  # plain ints: printable in a failure message
