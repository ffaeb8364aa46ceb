"""End-to-end campaigns on a real (one-node, localhost) SLURM through dask-jobqueue's SLURMCluster.

Needs a running SLURM: ``sudo ci/slurm-up.sh`` (CI does it in ``.ci/run``), then
``.venv/bin/python -m pytest -m slurm tests/slurm``. Every test skips with the
reason when no idle SLURM node answers.

The workflows are ``workflows/slurm.toml`` with their own name, store, budget
and log directory (see ``slurm_helpers.write_workflow``). The driver runs as the
CLI in a subprocess, the simulator in SLURM jobs.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from slurm_helpers import (
    assert_complete,
    cancel_all,
    cli,
    example,
    finished_jobs,
    job_name,
    make_certificates,
    markers,
    n_final,
    run_job_id,
    slurm_unavailable,
    squeue,
    start_cli,
    stop,
    wait_for_final,
    wait_until,
    write_workflow,
)

from surrogate_al.config import parse_workflow
from surrogate_al.dispatch import Dispatcher
from surrogate_al.campaign.build import build_simulator
from surrogate_al.store import CampaignStore

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(420)]


@pytest.fixture
def campaign_name(request: pytest.FixtureRequest) -> Iterator[str]:
    """A unique campaign name; its worker jobs are cancelled after the test, pass or fail."""
    reason = slurm_unavailable()
    if reason is not None:
        pytest.skip(reason)
    name = f"{request.node.name.removeprefix('test_')[:20]}_{os.getpid()}"
    yield name
    cancel_all(job_name(name))


def test_campaign_runs_in_slurm_jobs(tmp_path: Path, campaign_name: str) -> None:
    """30 Branin runs on 2 SLURM worker jobs; every run is recorded with its job id and host."""
    budget = 30
    workflow, store = write_workflow(tmp_path, campaign_name, budget=budget)
    res = cli("run", str(workflow), "--no-progress")
    assert res.returncode == 0, res.stdout + res.stderr
    final = assert_complete(store, budget)

    jobs = {run_job_id(r) for r in final}
    assert len(jobs) == 2, f"expected the runs spread over the 2 worker jobs, got jobs {sorted(jobs)}"
    assert all(r.status == "ok" for r in final)
    assert {r.host for r in final} == {socket.gethostname()}
    # Each job's own log names the worker that the store recorded for its runs.
    logs = tmp_path / "logs"
    for run in final:
        log = logs / f"{job_name(campaign_name)}-{run_job_id(run)}.err"
        assert log.is_file(), f"no SLURM job log {log.name} in {sorted(p.name for p in logs.iterdir())}"
        assert run.worker.split()[0] in log.read_text()
    # SLURM itself knows these jobs: the driver closed the cluster, so they were cancelled and logged.
    name = job_name(campaign_name)
    wait_until(lambda: not squeue(name), 30, "the worker jobs to end after the driver finished")
    done = wait_until(lambda: jobs <= set(finished_jobs(name)) and finished_jobs(name), 30,
                      f"jobs {sorted(jobs)} in the job completion log (sacct -c)")
    assert set(done) == jobs, f"SLURM ran jobs {sorted(done)} named {name}, the store names {sorted(jobs)}"


def test_cancelled_worker_job_is_replaced_and_its_run_redone(tmp_path: Path, campaign_name: str) -> None:
    """scancel of a worker job mid-run: the run is re-executed elsewhere, recorded once; 2 jobs again."""
    budget = 16
    workflow, store = write_workflow(tmp_path, campaign_name, budget=budget, delay=3.0)
    name = job_name(campaign_name)
    log = tmp_path / "driver.log"
    proc = start_cli("run", str(workflow), "--no-progress", log=log)
    try:
        wait_for_final(store, 3, proc, log)
        first_jobs = wait_until(lambda: (j := squeue(name)) and len(j) == 2 and set(j.values()) == {"R"} and j,
                                60, "2 running worker jobs")

        def running_now() -> tuple[str, dict] | None:
            started, done = markers(tmp_path)
            fresh = [(t, i) for t, i in started.items()
                     if t not in done and i["job"] in first_jobs and time.time() - i["t"] < 1.0]
            return fresh[0] if fresh else None

        token, victim = wait_until(running_now, 60, "a run that has just started", interval=0.1)
        subprocess.run(["scancel", victim["job"]], check=True, timeout=20)

        # The cluster goes back to 2 running jobs, one of them new.
        def replaced() -> dict[str, str] | None:
            jobs = squeue(name)
            return jobs if len(jobs) == 2 and victim["job"] not in jobs and set(jobs.values()) == {"R"} else None

        now = wait_until(replaced, 90, f"a replacement for cancelled job {victim['job']}")
        assert set(now) - set(first_jobs), "no new job was submitted"
        proc.wait(timeout=300)
    finally:
        stop(proc)
    output = log.read_text()
    assert proc.returncode == 0, output[-3000:]
    assert f"worker job(s) {victim['job']} lost" in output, output[-3000:]

    final = assert_complete(store, budget)
    _, done = markers(tmp_path)
    assert token not in done, "the cancelled job finished the run after all; the test caught no run in flight"
    # The interrupted run was re-executed on another worker and recorded once, as a success.
    again = [i for i in done.values() if (i["x1"], i["x2"]) == (victim["x1"], victim["x2"])]
    assert again and all(i["job"] != victim["job"] for i in again), again
    with CampaignStore.open(store, mode="r") as st:
        runs = [r for r in st.runs() if np.allclose(r.inputs, [victim["x1"], victim["x2"]])]
    assert len(runs) == 1, [(r.proposal_id, r.attempt, r.status, r.worker) for r in runs]
    assert runs[0].status == "ok" and runs[0].final
    assert run_job_id(runs[0]) != victim["job"]
    assert len({run_job_id(r) for r in final}) >= 2


def test_killed_driver_resumes_against_the_same_slurm(tmp_path: Path, campaign_name: str) -> None:
    """SIGKILL of the driver mid-campaign; `resume` finishes with exactly the budget, nothing run twice."""
    budget = 20
    # Orphaned workers (their driver is gone) end their jobs after death_timeout seconds.
    workflow, store = write_workflow(tmp_path, campaign_name, budget=budget, delay=1.0, death_timeout=15)
    name = job_name(campaign_name)
    log = tmp_path / "driver.log"
    proc = start_cli("run", str(workflow), "--no-progress", log=log)
    try:
        wait_for_final(store, budget // 2, proc, log)
        proc.send_signal(signal.SIGKILL)  # the driver alone, as in a crash; its worker jobs stay in SLURM
        proc.wait(timeout=30)
    finally:
        stop(proc)
    with CampaignStore.open(store, mode="r") as st:
        before = {r.proposal_id: (r.inputs.copy(), r.outputs.copy(), r.status) for r in st.final_runs()}
        jobs_before = {run_job_id(r) for r in st.final_runs()}
    assert budget // 2 <= len(before) < budget
    assert n_final(store) == len(before)

    res = cli("resume", str(store), "--no-progress")
    assert res.returncode == 0, res.stdout + res.stderr
    final = assert_complete(store, budget)
    for run in final:
        if run.proposal_id in before:
            x, y, status = before[run.proposal_id]
            assert np.array_equal(run.inputs, x) and np.array_equal(run.outputs, y, equal_nan=True)
            assert run.status == status
    # The resumed driver ran the rest in new SLURM jobs.
    jobs_after = {run_job_id(r) for r in final if r.proposal_id not in before}
    assert jobs_after and not jobs_after & jobs_before, (jobs_before, jobs_after)
    # Nothing ran twice: one done marker per settled proposal, except runs the killed driver left in flight.
    _, done = markers(tmp_path)
    points = [(i["x1"], i["x2"]) for i in done.values()]
    assert len(set(points)) == budget
    assert len(points) - budget <= 2, "more re-runs than the runs in flight at the kill"
    wait_until(lambda: not squeue(name), 60, "every worker job (orphaned and resumed) to end")


def test_tls_and_gpu_resources_reach_the_slurm_workers(tmp_path: Path, campaign_name: str) -> None:
    """[cluster] tls and gpus_per_worker on SLURMCluster: encrypted scheduler, a GPU run on a GPU worker."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make the test certificates")
    data = example()
    data["campaign"].update(name=campaign_name, store=str(tmp_path / "tls.h5"))
    data["simulator"]["gpu"] = True
    data["cluster"].pop("insecure", None)  # certificates instead: the example says insecure for its one-node SLURM
    data["cluster"].update(jobs=1, gpus_per_worker=1, tls=make_certificates(tmp_path / "tls"))
    data["cluster"]["options"]["log_directory"] = str(tmp_path / "logs")
    spec = parse_workflow(data, tmp_path, "tls-test")
    with Dispatcher(spec.cluster, campaign_name, gpu_runs=True) as dispatcher:
        assert dispatcher.client.scheduler.address.startswith("tls://127.0.0.1:")
        script = dispatcher.cluster_.job_script()
        assert "--tls-ca-file" in script and "--resources GPU=1" in script and f"-J {job_name(campaign_name)}" in script
        simulator = build_simulator(spec, spec.space())
        outcome = dispatcher.submit(simulator, {"x1": 1.0, "x2": 2.0}, proposal_id=0, attempt=1).result(timeout=120)
        assert outcome.result.status == "ok", outcome.result.reason
        assert outcome.worker.startswith("tls://127.0.0.1:")
        assert outcome.job_id in dispatcher.job_ids()
        workers = dispatcher.client.scheduler_info(n_workers=-1)["workers"]
        assert [w["resources"] for w in workers.values()] == [{"GPU": 1}]
        assert dispatcher.keep_jobs_up() == 0
    wait_until(lambda: not squeue(job_name(campaign_name)), 30, "the worker job to end with the dispatcher")
