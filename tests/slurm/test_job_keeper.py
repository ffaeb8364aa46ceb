"""The lost-job keeper of job-queue clusters, on a stand-in for a dask-jobqueue cluster (no SLURM needed).

These run in the default suite; the real thing (scancel of a SLURM job) is in
test_slurm_campaign.py. The stand-in mimics what dask-jobqueue 0.9 and
distributed's SpecCluster hold: ``worker_spec`` (the plan), ``workers`` (Job
objects under the same names), ``scheduler_info['workers']`` (connected
workers), and ``scale()`` that starts a Job for every plan entry without one.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any

import pytest
from distributed.core import Status

from surrogate_al.dispatch import job_keeper as dispatch
from surrogate_al.dispatch.clusters import with_gpu_resource as _with_gpu_resource
from surrogate_al.dispatch.job_keeper import JobKeeper as _JobKeeper


class FakeJob:
    ids = itertools.count(100)

    def __init__(self) -> None:
        self.job_id = str(next(self.ids))
        self.closed = False

    def close(self) -> None:
        self.closed = True


class FakeLoop:
    def __init__(self) -> None:
        self.callbacks: list[Any] = []

    def add_callback(self, fn: Any, *args: Any) -> None:
        self.callbacks.append(fn)


class FakeCluster:
    def __init__(self, jobs: int, *, processes: int = 1) -> None:
        spec: dict[str, Any] = {"cls": FakeJob, "options": {}}
        if processes > 1:
            spec["group"] = [f"-{i}" for i in range(processes)]
        self.worker_spec = {f"C-{i}": dict(spec) for i in range(jobs)}
        self.workers: dict[str, FakeJob] = {}
        self.scheduler_info: dict[str, Any] = {"workers": {}}
        self.status = Status.running
        self.loop = FakeLoop()
        self.periodic_callbacks: dict[str, Any] = {}
        self.scale_calls: list[int] = []
        self.scale(jobs=jobs)

    def scale(self, jobs: int) -> None:  # SpecCluster._correct_state, done at once
        self.scale_calls.append(jobs)
        for name in self.worker_spec:
            self.workers.setdefault(name, FakeJob())

    def connect(self, name: str) -> None:
        self.scheduler_info["workers"][f"tcp://127.0.0.1:{abs(hash(name)) % 60000}"] = {"name": name}

    def disconnect(self, name: str) -> None:
        for addr, info in list(self.scheduler_info["workers"].items()):
            if info["name"] == name:
                del self.scheduler_info["workers"][addr]


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_a_job_dropped_as_lost_is_resubmitted_under_its_name(clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    cluster = FakeCluster(2)
    keeper = _JobKeeper(cluster, max_per_window=2, clock=clock)
    for name in ("C-0", "C-1"):
        cluster.connect(name)
    assert keeper.check() == []
    lost_id = cluster.workers["C-1"].job_id
    # The job is cancelled: its worker leaves; SpecCluster drops the Job after lost-worker-timeout.
    cluster.disconnect("C-1")
    assert keeper.check() == []  # not yet: the worker may come back (nanny restart)
    del cluster.workers["C-1"]
    with caplog.at_level(logging.WARNING, logger="surrogate_al.dispatch"):
        assert keeper.check() == [lost_id]
    assert f"worker job(s) {lost_id} lost" in caplog.text
    assert set(cluster.workers) == {"C-0", "C-1"} and cluster.workers["C-1"].job_id != lost_id
    assert cluster.scale_calls[-1] == 2
    assert keeper.check() == []  # the replacement is queued, not lost


def test_jobs_still_queued_or_never_connected_are_not_replaced(clock: Clock) -> None:
    cluster = FakeCluster(2)
    keeper = _JobKeeper(cluster, max_per_window=2, clock=clock)
    clock.t += 3600
    assert keeper.check() == []
    assert cluster.scale_calls == [2]


def test_a_restarted_worker_is_not_a_lost_job(clock: Clock) -> None:
    cluster = FakeCluster(1, processes=2)
    keeper = _JobKeeper(cluster, max_per_window=2, clock=clock)
    cluster.connect("C-0-0")
    cluster.connect("C-0-1")
    keeper.check()
    cluster.disconnect("C-0-0")
    cluster.disconnect("C-0-1")
    keeper.check()
    clock.t += keeper.lost_after / 2
    cluster.connect("C-0-0")  # the nanny restarted it
    assert keeper.check() == []
    clock.t += keeper.lost_after * 2
    assert keeper.check() == []
    assert cluster.scale_calls == [1]


def test_a_job_of_several_workers_is_lost_when_all_are_gone_long_enough(clock: Clock) -> None:
    # SpecCluster does not drop such jobs (it looks workers up by job name): the keeper does.
    cluster = FakeCluster(1, processes=2)
    keeper = _JobKeeper(cluster, max_per_window=2, clock=clock)
    cluster.connect("C-0-0")
    cluster.connect("C-0-1")
    keeper.check()
    old = cluster.workers["C-0"]
    cluster.disconnect("C-0-0")
    assert keeper.check() == []  # one of two workers left: the job lives
    cluster.disconnect("C-0-1")
    assert keeper.check() == []
    clock.t += keeper.lost_after + 0.1
    assert keeper.check() == [old.job_id]
    assert cluster.workers["C-0"] is not old
    assert old.close in cluster.loop.callbacks  # what is left of it is cancelled


def test_replacements_are_rate_limited(clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    cluster = FakeCluster(1)
    keeper = _JobKeeper(cluster, max_per_window=2, clock=clock)
    replaced = []
    for _ in range(3):  # a job that dies right after it connects
        cluster.connect("C-0")
        keeper.check()
        cluster.disconnect("C-0")
        del cluster.workers["C-0"]
        with caplog.at_level(logging.ERROR, logger="surrogate_al.dispatch"):
            replaced += keeper.check()
        clock.t += 1
    assert len(replaced) == 2
    assert "not replacing them yet" in caplog.text
    clock.t += dispatch.JOB_REPLACE_WINDOW
    assert len(keeper.check()) == 1


def test_jobs_the_cluster_scaled_away_are_forgotten(clock: Clock) -> None:
    cluster = FakeCluster(2)
    keeper = _JobKeeper(cluster, max_per_window=2, clock=clock)
    cluster.connect("C-0")
    cluster.connect("C-1")
    keeper.check()
    # adapt scales down: plan entry and Job go, the worker leaves.
    del cluster.worker_spec["C-1"]
    del cluster.workers["C-1"]
    cluster.disconnect("C-1")
    clock.t += 3600
    assert keeper.check() == []
    assert cluster.scale_calls == [2]


def test_a_closed_cluster_is_left_alone(clock: Clock) -> None:
    cluster = FakeCluster(1)
    keeper = _JobKeeper(cluster, max_per_window=2, clock=clock)
    cluster.connect("C-0")
    keeper.check()
    cluster.status = Status.closing
    del cluster.workers["C-0"]
    assert keeper.check() == []


def test_gpu_resource_is_merged_into_worker_arguments() -> None:
    assert _with_gpu_resource([], 1) == ["--resources", "GPU=1"]
    assert _with_gpu_resource(["--lifetime", "55m"], 2) == ["--lifetime", "55m", "--resources", "GPU=2"]
    assert _with_gpu_resource(["--resources", "MEM=4"], 1) == ["--resources", "MEM=4,GPU=1"]
    assert _with_gpu_resource(["--resources=MEM=4"], 1) == ["--resources=MEM=4,GPU=1"]
    assert _with_gpu_resource(["--resources", "GPU=4"], 1) == ["--resources", "GPU=4"]


def test_a_batch_system_without_its_submit_command_fails_at_start(tmp_path: Any) -> None:
    from surrogate_al.config import parse_workflow
    from surrogate_al.dispatch import Dispatcher
    from surrogate_al.errors import DispatchError

    data = {
        "campaign": {"name": "k", "budget": 4, "store": str(tmp_path / "k.h5")},
        "simulator": {"kind": "python", "function": "simulators.branin:run", "outputs": ["y"],
                      "inputs": {"x1": {"low": 0.0, "high": 1.0}}},
        "cluster": {"kind": "lsf", "jobs": 1, "insecure": True, "options": {"cores": 1, "memory": "1GB"}},
    }
    spec = parse_workflow(data, tmp_path, "test")
    with pytest.raises(DispatchError, match="'bsub' is not on PATH"):
        Dispatcher(spec.cluster, "k").start()
