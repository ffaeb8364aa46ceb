"""The campaign's Dask client: starting or reaching its cluster, submitting runs, keeping jobs up.

Three ways to get workers, chosen by the workflow's ``[cluster]`` section:

* ``local`` (default): worker processes on this machine, listening on
  loopback only (:func:`~surrogate_al.dispatch.clusters.make_local_cluster`).
* ``address``: an existing scheduler (``tcp://`` or ``tls://``).
* ``slurm`` / ``pbs`` / ``sge`` / ``lsf`` / ``htcondor``: batch jobs through
  dask-jobqueue (:func:`~surrogate_al.dispatch.clusters.make_jobqueue_cluster`),
  scaled to ``jobs`` (or adaptive between ``adapt.minimum`` and
  ``adapt.maximum``). Jobs that are lost (cancelled, past their walltime) are
  replaced: see :meth:`Dispatcher.keep_jobs_up`.

A run that needs a GPU asks for the Dask resource ``GPU=1``; workers advertise
it through ``gpus_per_worker`` / ``worker_gpus``.

Dask reschedules the tasks of a worker that dies (under the same key: the
store sees one run); a task whose worker died more than
``distributed.scheduler.allowed-failures`` times ends in ``KilledWorker``, which
the campaign records as a settled run with status ``lost`` and the cause
"worker died". On the clusters it creates (``local`` and the jobqueue kinds)
the dispatcher sets that limit from the workflow (``allowed_failures``, see
:class:`Dispatcher`), so the number of workers one run may take down follows
``simulator.retries`` rather than Dask's default of 3; an existing scheduler
(``address``) keeps its own setting, which ``KilledWorker`` reports.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from surrogate_al.dispatch.clusters import cluster_security, make_jobqueue_cluster, make_local_cluster
from surrogate_al.dispatch.job_keeper import JOB_CHECK_INTERVAL, JobKeeper
from surrogate_al.dispatch.runs import execute_run, run_key, run_name
from surrogate_al.errors import DispatchError

if TYPE_CHECKING:
    from dask_jobqueue import JobQueueCluster
    from distributed import Client, Future, SpecCluster

    from surrogate_al.config import ClusterSpec
    from surrogate_al.simulation import Simulator

__all__ = ["Dispatcher"]

logger = logging.getLogger(__name__)


class Dispatcher:
    """Owns the Dask client (and the cluster, when it made one) for a campaign.

    Args:
        cluster_spec: the workflow's ``cluster`` section (``surrogate_al.config``).
        campaign_name: used in task keys.
        store_id: the campaign store's id (``CampaignStore.store_id``), in every
            task key so that two campaigns on one scheduler never share a key
            (:func:`~surrogate_al.dispatch.runs.run_key`). ``None``: a random id
            of this dispatcher.
        gpu_runs: whether every simulator run asks for one ``GPU`` resource.
        allowed_failures: how many times Dask re-runs a task after the worker
            running it died (``distributed.scheduler.allowed-failures``) before
            it gives up with ``KilledWorker``; applied to the scheduler of a
            cluster this dispatcher creates. ``None`` keeps Dask's setting
            (default 3). An ``address`` scheduler always keeps its own.

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        cluster_spec: ClusterSpec,
        campaign_name: str,
        *,
        store_id: str | None = None,
        gpu_runs: bool = False,
        allowed_failures: int | None = None,
    ) -> None:
        if allowed_failures is not None and allowed_failures < 0:
            raise ValueError(f"allowed_failures = {allowed_failures} must be >= 0 or None")
        self.cluster_spec = cluster_spec
        self.campaign_name = campaign_name
        self.store_id = store_id if store_id is not None else uuid.uuid4().hex
        run_key(campaign_name, 0, 1, store_id=self.store_id)  # a bad id fails here, not at the first submit
        self.gpu_runs = gpu_runs
        self.allowed_failures = allowed_failures
        self.client_: Client | None = None
        self.cluster_: SpecCluster | None = None
        self.target_jobs_: int = 0
        self.keeper_: JobKeeper | None = None

    # -- life cycle ------------------------------------------------------------------
    def start(self) -> Dispatcher:
        """Create or connect to the cluster and open a client.

        Raises:
            DispatchError: the cluster cannot be created or reached.
        """
        import dask
        from distributed import Client

        spec = self.cluster_spec
        security = cluster_security(spec)
        # Read by the scheduler when it is created (in this process for local and jobqueue
        # clusters); the context keeps the setting from leaking into other clusters.
        limits = (
            {"distributed.scheduler.allowed-failures": self.allowed_failures}
            if self.allowed_failures is not None
            else {}
        )
        try:
            if spec.kind == "local":
                with dask.config.set(limits):
                    self.cluster_ = make_local_cluster(spec, security)
                self.client_ = Client(self.cluster_, security=security)
            elif spec.kind == "address":
                self.client_ = Client(spec.address, security=security, timeout="30s")
            else:
                with dask.config.set(limits):
                    jobqueue = make_jobqueue_cluster(spec, self.campaign_name, security)
                    self._scale_and_keep(jobqueue)
                    self.cluster_ = jobqueue
                self.client_ = Client(self.cluster_, security=security)
        except DispatchError:
            raise
        except Exception as exc:  # dask raises OSError, TimeoutError, ValueError, ...
            self.close()
            where = spec.address or spec.kind
            raise DispatchError(
                f"cluster.kind = {spec.kind!r}: could not start or reach the Dask cluster ({where}): "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if self.cluster_ is not None:
            self._quiet_heartbeats_at_close()
        logger.info("Dask scheduler at %s (%s cluster)", self.client_.scheduler.address, spec.kind)
        return self

    def _quiet_heartbeats_at_close(self) -> None:
        """Keep the workers' expected heartbeat race at shutdown out of the log (see :mod:`~surrogate_al.dispatch.worker_logging`).

        Only on clusters this dispatcher creates: an existing scheduler's
        workers outlive the campaign, and their logging is their owner's.
        """
        from surrogate_al.dispatch.worker_logging import QuietHeartbeatAtClose

        try:
            self.client_.register_plugin(QuietHeartbeatAtClose())
        except Exception as exc:  # a log filter is never worth failing a campaign for
            logger.debug("could not register the heartbeat log filter on the workers: %s", exc)

    @property
    def scheduler_address(self) -> str:
        """Address of the scheduler (the configured one for ``address``; ``""`` before :meth:`start`)."""
        if self.cluster_spec.address:
            return self.cluster_spec.address
        try:
            return str(self.client_.scheduler.address) if self.client_ is not None else ""
        except AttributeError:  # a client that never connected
            return ""

    def _scale_and_keep(self, cluster: JobQueueCluster) -> None:
        """Scale a job-queue cluster to ``cluster.jobs`` (or adapt) and start replacing its lost jobs."""
        spec = self.cluster_spec
        try:
            if spec.adapt is not None:
                cluster.adapt(minimum_jobs=spec.adapt.minimum, maximum_jobs=spec.adapt.maximum)
                self.target_jobs_ = 0
                most = spec.adapt.maximum
            else:
                cluster.scale(jobs=spec.jobs)
                self.target_jobs_ = spec.jobs
                most = spec.jobs
            self.keeper_ = JobKeeper(cluster, max_per_window=max(2, most))
            self.keeper_.install(JOB_CHECK_INTERVAL)
        except BaseException:
            cluster.close()
            raise

    def close(self) -> None:
        """Close the client and any cluster this dispatcher created.

        After the scheduler was lost the client is still trying to reconnect;
        closing it cancels that attempt, which distributed logs as an ERROR
        with two tracebacks. The campaign has already reported the loss in one
        line, so that log record is dropped (kept at debug level here).
        """
        lost = self.client_ is not None and self.client_.status == "connecting"
        if lost:
            logger.debug("closing a client that lost its scheduler; its reconnect attempt is cancelled")
        for name in ("client_", "cluster_"):
            obj = getattr(self, name)
            if obj is not None:
                try:
                    with _quiet_logger("distributed.client") if lost else contextlib.nullcontext():
                        obj.close()
                except Exception as exc:  # closing a broken cluster must not mask the real error
                    logger.debug("closing %s failed: %s", name, exc)
                setattr(self, name, None)

    def __enter__(self) -> Dispatcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- work --------------------------------------------------------------------------
    @property
    def client(self) -> Client:
        """The Dask client (after :meth:`start`)."""
        if self.client_ is None:
            raise DispatchError("the dispatcher is not started; call start() first")
        return self.client_

    def submit(self, simulator: Simulator, inputs: Mapping[str, Any], proposal_id: int, attempt: int) -> Future:
        """Submit one attempt of one proposal; returns its Dask future.

        The future's ``key`` is the run's :func:`~surrogate_al.dispatch.runs.run_key`;
        the :class:`~surrogate_al.dispatch.runs.RunOutcome` it returns names that
        key, the proposal and the attempt, for the campaign to check.
        """
        key = run_key(self.campaign_name, proposal_id, attempt, store_id=self.store_id)
        return self.client.submit(
            execute_run,
            simulator,
            dict(inputs),
            key,
            proposal_id=proposal_id,
            attempt=attempt,
            run_name=self.run_name(proposal_id, attempt),
            key=key,
            pure=False,
            resources={"GPU": 1} if self.gpu_runs else None,
        )

    def run_name(self, proposal_id: int, attempt: int) -> str:
        """The name of one attempt inside this campaign; it names the attempt's run directory."""
        return run_name(self.campaign_name, proposal_id, attempt)

    def worker_count(self) -> int:
        """Number of workers currently connected to the scheduler."""
        return len(self.client.scheduler_info(n_workers=-1).get("workers", {}))

    def wait_for_workers(self, n: int, timeout: float) -> None:
        """Block until ``n`` workers are up.

        Raises:
            DispatchError: fewer than ``n`` workers after ``timeout`` seconds.
        """
        try:
            self.client.wait_for_workers(n, timeout=timeout)
        except (TimeoutError, OSError) as exc:
            raise DispatchError(
                f"only {self.worker_count()} of {n} Dask workers came up within {timeout:.0f} s; "
                "check the cluster section (queue, walltime, python) and the job logs"
            ) from exc

    def keep_jobs_up(self) -> int:
        """Replace worker jobs that were lost (cancelled, past their walltime, node failure).

        dask-jobqueue does not replace a lost job by itself: the job keeps its
        place in the cluster's plan (``cluster.worker_spec``), so asking for
        the same scale again looks like a no-op. A job is *lost* once
        distributed has given up on its worker (gone for
        ``distributed.deploy.lost-worker-timeout``, 15 s by default; a worker
        restarted by its nanny comes back sooner, and a job still waiting in
        the queue is never judged). Then the cluster is scaled to its plan
        again, which submits a replacement under the same name: back to
        ``cluster.jobs`` jobs, or to what ``adapt`` planned. See
        :class:`~surrogate_al.dispatch.job_keeper.JobKeeper` for the details.

        The same check runs every :data:`~surrogate_al.dispatch.job_keeper.JOB_CHECK_INTERVAL` seconds on the
        cluster's event loop, so lost jobs are replaced also while no result
        can arrive (every worker gone); the campaign calls this after each
        result as well. Cheap: it reads the scheduler's worker list that the
        cluster object keeps up to date, nothing is sent over the network.

        Returns:
            The number of jobs replaced by this call (0 for local clusters).
        """
        keeper, cluster = self.keeper_, self.cluster_
        if keeper is None or cluster is None:
            return 0
        from distributed.utils import sync

        try:
            return len(sync(cluster.loop, keeper.acheck, callback_timeout=30))
        except Exception as exc:  # a closing cluster: nothing left to keep up
            logger.debug("checking for lost worker jobs failed: %s", exc)
            return 0

    def job_ids(self) -> list[str]:
        """Batch-system ids of the worker jobs the cluster holds now (submitted, queued or running)."""
        cluster = self.cluster_
        if cluster is None or self.keeper_ is None:  # only job-queue clusters hold batch jobs
            return []
        return [str(job.job_id) for job in list(cluster.workers.values()) if getattr(job, "job_id", None)]


@contextlib.contextmanager
def _quiet_logger(name: str) -> Iterator[None]:
    """Drop the records of logger ``name`` below CRITICAL while the block runs."""
    log = logging.getLogger(name)
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(level)
