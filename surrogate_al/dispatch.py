"""Dask dispatch: a client for the campaign's cluster, simulator runs as tasks.

Three ways to get workers, chosen by the workflow's ``[cluster]`` section:

* ``local`` (default): a :class:`distributed.LocalCluster` of worker
  *processes* with one thread each (a simulator that holds the GIL or crashes
  takes only its own worker down). The scheduler and, if asked for, the
  dashboard listen on ``127.0.0.1``: nothing is reachable from outside the
  machine unless the workflow sets ``allow_remote``.
* ``address``: an existing scheduler (``tcp://`` or ``tls://``).
* ``slurm`` / ``pbs`` / ``sge`` / ``lsf`` / ``htcondor``: the dask-jobqueue
  cluster class of that name, its keyword arguments passed through from
  ``cluster.options``, scaled to ``jobs`` (or adaptive between
  ``adapt.minimum`` and ``adapt.maximum``).

Each simulator run is one task, keyed by campaign name, proposal id and attempt
so keys never collide and ``pure=False`` semantics hold: two runs at the same
point are two runs. A run that needs a GPU asks for the Dask resource
``GPU=1``; workers advertise it through ``gpus_per_worker`` / ``worker_gpus``.

Dask reschedules the tasks of a worker that dies; a task that kills
``distributed.scheduler.allowed-failures`` workers ends in ``KilledWorker``,
which the campaign records as a failed attempt with the cause "worker died".
"""

from __future__ import annotations

import logging
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from surrogate_al.errors import DispatchError
from surrogate_al.simulation import SimulationResult, Simulator

__all__ = ["Dispatcher", "RunOutcome", "execute_run", "run_key", "JOBQUEUE_CLASSES"]

logger = logging.getLogger(__name__)

JOBQUEUE_CLASSES: dict[str, str] = {
    "slurm": "SLURMCluster",
    "pbs": "PBSCluster",
    "sge": "SGECluster",
    "lsf": "LSFCluster",
    "htcondor": "HTCondorCluster",
}


@dataclass(frozen=True)
class RunOutcome:
    """What a worker sends back for one simulator run.

    Attributes:
        result: the simulator's result (never an exception: failures are data).
        worker: address of the Dask worker that ran it.
        job_id: the batch-system job id of that worker, when it runs in a job.
    """

    result: SimulationResult
    worker: str
    job_id: str


def _current_job_id() -> str:
    for var in ("SLURM_JOB_ID", "PBS_JOBID", "JOB_ID", "LSB_JOBID"):
        value = os.environ.get(var)
        if value:
            return value
    return ""


def execute_run(simulator: Simulator, inputs: Mapping[str, Any], run_id: str) -> RunOutcome:
    """Run one simulation on a worker (the Dask task body).

    Args:
        simulator: the wrapped simulator (pickled to the worker).
        inputs: named inputs in the scientist's units.
        run_id: unique name of this attempt (used for its working directory).

    Returns:
        The result with the worker's address and batch job id.
    """
    try:
        from distributed import get_worker

        worker = get_worker().address
    except ValueError:  # called outside a worker (tests, in-process runs)
        worker = f"local:{socket.gethostname()}:{os.getpid()}"
    result = simulator(dict(inputs), run_id=run_id)
    return RunOutcome(result=result, worker=worker, job_id=_current_job_id())


def run_key(campaign: str, proposal_id: int, attempt: int) -> str:
    """The Dask key of one attempt: unique per campaign, proposal and attempt."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", campaign) or "campaign"
    return f"sim-{safe}-p{proposal_id}-a{attempt}"


def _is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


class Dispatcher:
    """Owns the Dask client (and the cluster, when it made one) for a campaign.

    Args:
        cluster_spec: the workflow's ``cluster`` section (``surrogate_al.config``).
        campaign_name: used in task keys.
        gpu_runs: whether every simulator run asks for one ``GPU`` resource.

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, cluster_spec: Any, campaign_name: str, *, gpu_runs: bool = False) -> None:
        self.cluster_spec = cluster_spec
        self.campaign_name = campaign_name
        self.gpu_runs = gpu_runs
        self.client_: Any = None
        self.cluster_: Any = None
        self.target_jobs_: int = 0

    # -- life cycle ------------------------------------------------------------------
    def start(self) -> Dispatcher:
        """Create or connect to the cluster and open a client.

        Raises:
            DispatchError: the cluster cannot be created or reached.
        """
        from distributed import Client

        spec = self.cluster_spec
        security = self._security()
        try:
            if spec.kind == "local":
                self.cluster_ = self._local_cluster(security)
                self.client_ = Client(self.cluster_, security=security)
            elif spec.kind == "address":
                self.client_ = Client(spec.address, security=security, timeout="30s")
            else:
                self.cluster_ = self._jobqueue_cluster(security)
                self.client_ = Client(self.cluster_, security=security)
        except DispatchError:
            raise
        except Exception as exc:  # dask raises OSError, TimeoutError, ValueError, ...
            self.close()
            where = getattr(spec, "address", None) or spec.kind
            raise DispatchError(
                f"cluster.kind = {spec.kind!r}: could not start or reach the Dask cluster ({where}): "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        logger.info("Dask scheduler at %s (%s cluster)", self.client_.scheduler.address, spec.kind)
        return self

    def _security(self) -> Any:
        tls = getattr(self.cluster_spec, "tls", None)
        if tls is None:
            return None
        from distributed.security import Security

        if tls == "temporary":
            return Security.temporary()
        return Security(
            tls_ca_file=str(tls.ca_file),
            tls_client_cert=str(tls.cert),
            tls_client_key=str(tls.key),
            tls_scheduler_cert=str(tls.cert),
            tls_scheduler_key=str(tls.key),
            tls_worker_cert=str(tls.cert),
            tls_worker_key=str(tls.key),
            require_encryption=True,
        )

    def _local_cluster(self, security: Any) -> Any:
        from distributed import LocalCluster

        spec = self.cluster_spec
        host = spec.host
        if not _is_loopback(host) and not spec.allow_remote:
            raise DispatchError(
                f"cluster.host = {host!r} is not a loopback address; set cluster.allow_remote = true "
                "to expose the scheduler beyond this machine"
            )
        dashboard = spec.dashboard if spec.dashboard else None
        resources = {"GPU": spec.worker_gpus} if getattr(spec, "worker_gpus", 0) else None
        kwargs: dict[str, Any] = {
            "n_workers": spec.workers,
            "threads_per_worker": spec.threads_per_worker,
            "processes": spec.processes,
            "host": host,
            "scheduler_port": 0,
            "dashboard_address": dashboard,
            # Worker nannies and their HTTP servers bind to the same loopback host.
            "worker_dashboard_address": None,
            "security": security,
            "protocol": "tls://" if security is not None else None,
        }
        if spec.memory_limit is not None:
            kwargs["memory_limit"] = spec.memory_limit
        if resources:
            kwargs["resources"] = resources
        return LocalCluster(**kwargs)

    def _jobqueue_cluster(self, security: Any) -> Any:
        import dask_jobqueue

        spec = self.cluster_spec
        class_name = JOBQUEUE_CLASSES[spec.kind]
        cls = getattr(dask_jobqueue, class_name)
        options = spec.options.thaw() if spec.options else {}
        if spec.gpus_per_worker:
            extra = list(options.get("worker_extra_args", []))
            extra += ["--resources", f"GPU={spec.gpus_per_worker}"]
            options["worker_extra_args"] = extra
        if security is not None:
            options.setdefault("security", security)
            options.setdefault("protocol", "tls://")
        try:
            cluster = cls(**options)
        except TypeError as exc:
            raise DispatchError(
                f"cluster.options: {class_name} rejected the options {sorted(options)}: {exc}; "
                "see the dask-jobqueue documentation for its keyword arguments"
            ) from exc
        if spec.adapt is not None:
            cluster.adapt(minimum_jobs=spec.adapt.minimum, maximum_jobs=spec.adapt.maximum)
        else:
            cluster.scale(jobs=spec.jobs)
            self.target_jobs_ = spec.jobs
        return cluster

    def close(self) -> None:
        """Close the client and any cluster this dispatcher created."""
        for name in ("client_", "cluster_"):
            obj = getattr(self, name)
            if obj is not None:
                try:
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
    def client(self) -> Any:
        """The Dask client (after :meth:`start`)."""
        if self.client_ is None:
            raise DispatchError("the dispatcher is not started; call start() first")
        return self.client_

    def submit(self, simulator: Simulator, inputs: Mapping[str, Any], proposal_id: int, attempt: int) -> Any:
        """Submit one attempt of one proposal; returns its Dask future."""
        key = run_key(self.campaign_name, proposal_id, attempt)
        return self.client.submit(
            execute_run,
            simulator,
            dict(inputs),
            key,
            key=key,
            pure=False,
            resources={"GPU": 1} if self.gpu_runs else None,
        )

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

    def keep_jobs_up(self) -> None:
        """Re-scale a job-queue cluster to its target when jobs were lost.

        dask-jobqueue does not replace a cancelled or expired job by itself;
        asking for the same scale again submits replacements. Adaptive
        clusters replace jobs on their own.
        """
        if self.cluster_ is None or not self.target_jobs_:
            return
        running = len(getattr(self.cluster_, "workers", {}))
        if running < self.target_jobs_:
            logger.warning("%d of %d worker jobs left; submitting replacements", running, self.target_jobs_)
            self.cluster_.scale(jobs=self.target_jobs_)
