"""Keep a worker's expected shutdown race out of the user's terminal.

A Dask worker sends a heartbeat to the scheduler every half second. When the
worker closes (the campaign is over and the cluster is shut down), it closes
its connection pool without waiting for a heartbeat still in flight; that
heartbeat then fails with ``CommClosedError`` and the worker logs it as an
ERROR with two tracebacks ("Failed to communicate with scheduler during
heartbeat."). On a loaded machine the scheduler, which runs in the driver
process, answers slowly, so a heartbeat is often in flight at that moment. A
local cluster's worker processes write to the driver's stderr, so without the
filter a campaign that ends well can print a traceback.

:class:`QuietHeartbeatAtClose` is a worker plugin that drops exactly that
record, and only once the workers of its process are closing; a heartbeat
that fails while a worker runs (the scheduler is really lost) is still
logged.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

from distributed.core import Status
from distributed.diagnostics.plugin import WorkerPlugin

__all__ = ["HEARTBEAT_FAILURE", "HeartbeatAtCloseFilter", "QuietHeartbeatAtClose"]

#: The message distributed's ``Worker.heartbeat`` logs when the heartbeat RPC fails.
HEARTBEAT_FAILURE = "Failed to communicate with scheduler during heartbeat."
#: The logger that message goes to.
WORKER_LOGGER = "distributed.worker"

_CLOSING = frozenset({Status.closing, Status.closing_gracefully, Status.closed})


class HeartbeatAtCloseFilter(logging.Filter):
    """Drops the heartbeat-failure record once every worker of this process closes.

    The record does not say which worker logged it, and workers of a
    ``processes = false`` cluster share the process (and the logger), so the
    record is dropped only when all the workers added here are closing or
    gone: one worker closing beside one that runs keeps the record.
    """

    def __init__(self) -> None:
        super().__init__()
        self._workers: weakref.WeakSet[Any] = weakref.WeakSet()

    def add(self, worker: Any) -> None:
        """Watch ``worker`` (held weakly: a worker that is gone counts as closed)."""
        self._workers.add(worker)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg != HEARTBEAT_FAILURE:
            return True
        return not all(getattr(w, "status", None) in _CLOSING for w in list(self._workers))


class QuietHeartbeatAtClose(WorkerPlugin):
    """Adds its worker to the process's :class:`HeartbeatAtCloseFilter` on ``distributed.worker``.

    Registered by the dispatcher on the clusters it creates. The filter stays
    after the plugin's ``teardown``: Dask removes plugins early in
    ``Worker.close``, before the connection pool whose closing causes the
    record.
    """

    name = "surrogate-al-quiet-heartbeat-at-close"
    idempotent = True

    def setup(self, worker: Any) -> None:
        log = logging.getLogger(WORKER_LOGGER)
        # One filter per process: a second registration (a restarted scheduler
        # sends its plugins again) or a second in-process worker reuses it.
        heartbeat_filter = next((f for f in log.filters if isinstance(f, HeartbeatAtCloseFilter)), None)
        if heartbeat_filter is None:
            heartbeat_filter = HeartbeatAtCloseFilter()
            log.addFilter(heartbeat_filter)
        heartbeat_filter.add(worker)
