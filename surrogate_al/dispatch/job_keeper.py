"""Replacing the lost batch jobs of a dask-jobqueue cluster.

dask-jobqueue does not replace a job that was cancelled or reached its
walltime: :class:`JobKeeper` finds such jobs and has the cluster submit new
ones under the same names, at most a few per :data:`JOB_REPLACE_WINDOW`.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Hashable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dask_jobqueue import JobQueueCluster

__all__ = ["JOB_CHECK_INTERVAL", "JOB_REPLACE_WINDOW", "JOB_START_HINT_AFTER", "JobKeeper"]

logger = logging.getLogger(__name__)

#: Seconds between two checks for lost worker jobs (on the cluster's event loop).
JOB_CHECK_INTERVAL = 2.0
#: Replacements are limited to ``max_per_window`` jobs per this many seconds.
JOB_REPLACE_WINDOW = 120.0
#: Log a hint when no worker job has connected this long after the cluster started.
JOB_START_HINT_AFTER = 300.0


class JobKeeper:
    """Finds lost worker jobs of a dask-jobqueue cluster and has them replaced.

    What dask-jobqueue 0.9 leaves behind when a job is cancelled or reaches its
    walltime: the job keeps its entry in ``cluster.worker_spec`` (the plan), and
    its ``Job`` object stays in ``cluster.workers`` until distributed's
    ``SpecCluster`` notices that the job's worker has been gone for
    ``distributed.deploy.lost-worker-timeout`` (15 s; a worker restarted by its
    nanny comes back sooner) and drops it. Nothing submits a new job: the plan
    did not change, so ``scale()`` is never called (and adapt sees "same").

    A job is lost here when its plan entry has no ``Job`` object any more
    although one ran under that name (SpecCluster dropped it), or, for jobs of
    several worker processes (which SpecCluster does not track by name), when
    all of its workers have been gone a little longer than that timeout; the
    keeper then closes what is left of it and calls ``scale()`` with the
    unchanged plan, which submits a new job under the same name.

    Everything here runs on the cluster's event loop (a periodic callback, or
    :meth:`acheck` through ``distributed.utils.sync``), where ``worker_spec``,
    ``workers`` and ``scheduler_info`` are read and changed.

    Args:
        cluster: the ``JobQueueCluster``.
        max_per_window: most jobs replaced per :data:`JOB_REPLACE_WINDOW`
            seconds, so a job that dies as soon as it starts cannot make the
            driver flood the queue.
        clock: monotonic seconds (tests pass a fake).
    """

    def __init__(
        self, cluster: JobQueueCluster, *, max_per_window: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        import dask
        from dask.utils import parse_timedelta

        self.cluster = cluster
        self.max_per_window = max_per_window
        self.clock = clock
        timeout = parse_timedelta(dask.config.get("distributed.deploy.lost-worker-timeout", "15s"))
        self.lost_after = float(timeout) + 2 * JOB_CHECK_INTERVAL
        self.started_at_ = clock()
        self.job_ids_: dict[str, str] = {}  # plan name -> id of the job last running under it
        self.seen_: set[str] = set()  # plan names whose workers have connected
        self.missing_since_: dict[str, float] = {}
        self.recent_: deque[float] = deque()
        self.replaced_: list[str] = []  # ids of the jobs replaced so far
        self.hinted_ = False
        self.throttled_ = False

    def install(self, interval: float) -> None:
        """Run :meth:`check` every ``interval`` seconds until the cluster closes."""
        from tornado.ioloop import PeriodicCallback

        cluster = self.cluster

        def start() -> None:
            pc = PeriodicCallback(self._check_logged, interval * 1000)
            cluster.periodic_callbacks["surrogate-al-keep-jobs"] = pc  # stopped by cluster.close()
            pc.start()

        cluster.loop.add_callback(start)

    def _check_logged(self) -> None:
        try:
            self.check()
        except Exception:  # never let a bookkeeping error stop the periodic check
            logger.exception("checking for lost worker jobs failed")

    async def acheck(self) -> list[str]:
        """:meth:`check` as a coroutine (for ``sync`` from the driver thread)."""
        return self.check()

    def check(self) -> list[str]:
        """Replace the jobs found lost now; returns their job ids."""
        from distributed.core import Status

        cluster = self.cluster
        if cluster.status in (Status.closing, Status.closed):
            return []
        now = self.clock()
        connected = {str(w.get("name")) for w in cluster.scheduler_info.get("workers", {}).values()}
        plan = dict(cluster.worker_spec)
        names = {str(key) for key in plan}
        for table in (self.job_ids_, self.missing_since_):
            for name in set(table) - names:  # the cluster dropped these itself (scale down, adapt)
                del table[name]
        self.seen_ &= names
        lost: list[Hashable] = []
        for key, spec in plan.items():
            name = str(key)
            job = cluster.workers.get(key)
            if job is None:
                if name in self.job_ids_:
                    lost.append(key)  # SpecCluster dropped the job as lost
                continue
            self.job_ids_[name] = str(getattr(job, "job_id", None) or name)
            group = spec.get("group") if isinstance(spec, Mapping) else None
            members = {f"{name}{suffix}" for suffix in group} if group else {name}
            if members & connected:
                self.seen_.add(name)
                self.missing_since_.pop(name, None)
            elif name in self.seen_:
                since = self.missing_since_.setdefault(name, now)
                if group and now - since >= self.lost_after:
                    lost.append(key)  # SpecCluster does not track group jobs by name
        self._hint_if_nothing_started(now, connected)
        if lost:
            return self._replace(lost, now)
        return []

    def _replace(self, lost: list[Hashable], now: float) -> list[str]:
        cluster = self.cluster
        while self.recent_ and now - self.recent_[0] > JOB_REPLACE_WINDOW:
            self.recent_.popleft()
        room = self.max_per_window - len(self.recent_)
        if room <= 0:
            if not self.throttled_:
                logger.error(
                    "worker job(s) lost again within %.0f s of the last replacements; not replacing them yet "
                    "(do the jobs die right after starting? read their logs in cluster.options.log_directory)",
                    JOB_REPLACE_WINDOW,
                )
                self.throttled_ = True
            return []
        self.throttled_ = False
        ids = []
        for key in lost[:room]:
            name = str(key)
            ids.append(self.job_ids_.pop(name, name))
            job = cluster.workers.pop(key, None)
            if job is not None:
                cluster.loop.add_callback(job.close)  # cancels what is left of the job
            self.seen_.discard(name)
            self.missing_since_.pop(name, None)
            self.recent_.append(now)
        self.replaced_.extend(ids)
        logger.warning(
            "worker job(s) %s lost (cancelled, past the walltime, or the node failed); their runs are "
            "re-dispatched and %d replacement job(s) submitted",
            ", ".join(ids),
            len(ids),
        )
        # The plan is unchanged and now has empty places: scale() submits jobs for them.
        cluster.scale(jobs=len(cluster.worker_spec))
        return ids

    def _hint_if_nothing_started(self, now: float, connected: set[str]) -> None:
        if self.hinted_:
            return
        if connected or self.seen_:
            self.hinted_ = True
            return
        if now - self.started_at_ >= JOB_START_HINT_AFTER and self.cluster.worker_spec:
            ids = [str(getattr(job, "job_id", "?")) for job in self.cluster.workers.values()]
            logger.warning(
                "no Dask worker has connected %.0f s after submitting jobs %s; if `squeue` shows them running, "
                "read their logs (cluster.options.log_directory): a wrong `python`, a missing package or a "
                "scheduler address the nodes cannot reach (cluster.options.interface) are the usual causes",
                now - self.started_at_,
                ", ".join(ids) or "(none yet)",
            )
            self.hinted_ = True
