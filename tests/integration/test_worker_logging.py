"""The workers' heartbeat failure at shutdown stays out of the log; real failures do not.

Real LocalClusters made by the dispatcher: worker processes (the default) to
see the filter installed where the workers log, and in-process workers to
drive the filter through real worker shutdowns.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from surrogate_al.config import parse_workflow
from surrogate_al.dispatch import Dispatcher
from surrogate_al.dispatch.worker_logging import HEARTBEAT_FAILURE, WORKER_LOGGER, HeartbeatAtCloseFilter


def _cluster_spec(tmp_path: Path, **cluster: Any) -> Any:
    data = {
        "campaign": {"name": "quiet", "budget": 4, "store": str(tmp_path / "quiet.h5")},
        "simulator": {"kind": "python", "function": "simulators.branin:run", "outputs": ["y"],
                      "inputs": {"x1": {"low": 0.0, "high": 1.0}}},
        "cluster": {"kind": "local", "workers": 2, **cluster},
    }
    return parse_workflow(data, tmp_path, "test").cluster


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def worker_log() -> Any:
    """Records what passes the ``distributed.worker`` logger here; removes the filter the test installed."""
    log = logging.getLogger(WORKER_LOGGER)
    before_filters, level = list(log.filters), log.level
    records = _Records()
    log.addHandler(records)
    log.setLevel(logging.DEBUG)
    yield records
    log.removeHandler(records)
    log.setLevel(level)
    for f in [f for f in log.filters if f not in before_filters]:
        log.removeFilter(f)


def _heartbeat_failure_passes_in_worker() -> tuple[bool, bool]:
    """Run on a worker: (whether its logger has the filter, whether a heartbeat failure is logged now)."""
    log = logging.getLogger(WORKER_LOGGER)
    record = log.makeRecord(WORKER_LOGGER, logging.ERROR, __file__, 0, HEARTBEAT_FAILURE, (), None)
    has_filter = any(isinstance(f, HeartbeatAtCloseFilter) for f in log.filters)
    return has_filter, bool(log.filter(record))


def test_the_dispatchers_worker_processes_get_the_filter_and_still_log_while_running(tmp_path: Path) -> None:
    with Dispatcher(_cluster_spec(tmp_path), "quiet") as dispatcher:
        answers = dispatcher.client_.run(_heartbeat_failure_passes_in_worker)
    assert len(answers) == 2
    # Installed in each worker process, and a running worker's failed heartbeat is still logged.
    assert all(answers[w] == (True, True) for w in answers), answers


def test_the_heartbeat_failure_is_dropped_only_once_every_worker_closes(tmp_path: Path, worker_log: Any) -> None:
    log = logging.getLogger(WORKER_LOGGER)
    dispatcher = Dispatcher(_cluster_spec(tmp_path, processes=False), "quiet").start()
    try:
        # processes = false used to fail to start (Dask chose "inproc://", which takes no host).
        assert dispatcher.client_.scheduler.address.startswith("tcp://127.0.0.1:")
        workers = list(dispatcher.cluster_.workers.values())
        assert len(workers) == 2
        log.error(HEARTBEAT_FAILURE)
        assert worker_log.messages.count(HEARTBEAT_FAILURE) == 1, "a running worker's heartbeat failure is logged"

        dispatcher.client_.retire_workers([workers[0].address], close_workers=True)
        dispatcher.client_.wait_for_workers(1)
        log.error(HEARTBEAT_FAILURE)
        # The record does not say which worker logged it: with one still running it is kept.
        assert worker_log.messages.count(HEARTBEAT_FAILURE) == 2
    finally:
        dispatcher.close()

    assert all(w.status.name == "closed" for w in workers)
    log.error(HEARTBEAT_FAILURE)
    log.error("Unexpected exception during heartbeat. Closing worker.")
    assert worker_log.messages.count(HEARTBEAT_FAILURE) == 2, "dropped once every worker closed"
    assert "Unexpected exception during heartbeat. Closing worker." in worker_log.messages
