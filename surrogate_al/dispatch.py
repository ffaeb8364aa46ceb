"""Dask dispatch: a client for the campaign's cluster, simulator runs as tasks.

Three ways to get workers, chosen by the workflow's ``[cluster]`` section:

* ``local`` (default): a :class:`distributed.LocalCluster` of worker
  *processes* with one thread each (a simulator that holds the GIL or crashes
  takes only its own worker down). The scheduler and, if asked for, the
  dashboard listen on ``127.0.0.1``: nothing is reachable from outside the
  machine unless the workflow sets ``allow_remote`` (checked by the workflow loader).
* ``address``: an existing scheduler (``tcp://`` or ``tls://``).
* ``slurm`` / ``pbs`` / ``sge`` / ``lsf`` / ``htcondor``: the dask-jobqueue
  cluster class of that name, its keyword arguments passed through from
  ``cluster.options``, scaled to ``jobs`` (or adaptive between
  ``adapt.minimum`` and ``adapt.maximum``). Jobs that are lost (cancelled,
  past their walltime) are replaced: see :meth:`Dispatcher.keep_jobs_up`.

Each simulator run is one task, keyed by campaign name, proposal id and attempt
so keys never collide and ``pure=False`` semantics hold: two runs at the same
point are two runs. A run that needs a GPU asks for the Dask resource
``GPU=1``; workers advertise it through ``gpus_per_worker`` / ``worker_gpus``.

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
import os
import re
import shutil
import socket
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from surrogate_al.errors import DispatchError
from surrogate_al.simulation import SimulationResult, Simulator

__all__ = [
    "Dispatcher",
    "RemoteFitSurrogate",
    "RunOutcome",
    "execute_run",
    "fit_surrogate_on_worker",
    "run_key",
    "JOBQUEUE_CLASSES",
]

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


class Dispatcher:
    """Owns the Dask client (and the cluster, when it made one) for a campaign.

    Args:
        cluster_spec: the workflow's ``cluster`` section (``surrogate_al.config``).
        campaign_name: used in task keys.
        gpu_runs: whether every simulator run asks for one ``GPU`` resource.
        allowed_failures: how many times Dask re-runs a task after the worker
            running it died (``distributed.scheduler.allowed-failures``) before
            it gives up with ``KilledWorker``; applied to the scheduler of a
            cluster this dispatcher creates. ``None`` keeps Dask's setting
            (default 3). An ``address`` scheduler always keeps its own.

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(
        self, cluster_spec: Any, campaign_name: str, *, gpu_runs: bool = False, allowed_failures: int | None = None
    ) -> None:
        if allowed_failures is not None and allowed_failures < 0:
            raise ValueError(f"allowed_failures = {allowed_failures} must be >= 0 or None")
        self.cluster_spec = cluster_spec
        self.campaign_name = campaign_name
        self.gpu_runs = gpu_runs
        self.allowed_failures = allowed_failures
        self.client_: Any = None
        self.cluster_: Any = None
        self.target_jobs_: int = 0
        self.keeper_: _JobKeeper | None = None

    # -- life cycle ------------------------------------------------------------------
    def start(self) -> Dispatcher:
        """Create or connect to the cluster and open a client.

        Raises:
            DispatchError: the cluster cannot be created or reached.
        """
        import dask
        from distributed import Client

        spec = self.cluster_spec
        security = self._security()
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
                    self.cluster_ = self._local_cluster(security)
                self.client_ = Client(self.cluster_, security=security)
            elif spec.kind == "address":
                self.client_ = Client(spec.address, security=security, timeout="30s")
            else:
                with dask.config.set(limits):
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
        if self.cluster_ is not None:
            self._quiet_heartbeats_at_close()
        logger.info("Dask scheduler at %s (%s cluster)", self.client_.scheduler.address, spec.kind)
        return self

    def _quiet_heartbeats_at_close(self) -> None:
        """Keep the workers' expected heartbeat race at shutdown out of the log (see :mod:`.worker_logging`).

        Only on clusters this dispatcher creates: an existing scheduler's
        workers outlive the campaign, and their logging is their owner's.
        """
        from .worker_logging import QuietHeartbeatAtClose

        try:
            self.client_.register_plugin(QuietHeartbeatAtClose())
        except Exception as exc:  # a log filter is never worth failing a campaign for
            logger.debug("could not register the heartbeat log filter on the workers: %s", exc)

    @property
    def scheduler_address(self) -> str:
        """Address of the scheduler (the configured one for ``address``; ``""`` before :meth:`start`)."""
        address = getattr(self.cluster_spec, "address", None)
        if address:
            return str(address)
        try:
            return str(self.client_.scheduler.address) if self.client_ is not None else ""
        except AttributeError:  # a client that never connected
            return ""

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
        # The workflow loader already refused a non-loopback host without allow_remote.
        host = spec.host
        # With no dashboard distributed still opens the scheduler's HTTP server (health,
        # metrics), on the fixed port 8787: a random loopback port avoids clashes and warnings.
        dashboard = spec.dashboard if spec.dashboard else f"{host}:0"
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
            # Explicit: with processes = false Dask would pick "inproc://", which takes
            # no host and fails to start with the loopback host given above.
            "protocol": "tls://" if security is not None else "tcp://",
        }
        if spec.memory_limit is not None:
            kwargs["memory_limit"] = spec.memory_limit
        if resources:
            kwargs["resources"] = resources
        return LocalCluster(**kwargs)

    def _jobqueue_cluster(self, security: Any) -> Any:
        """The dask-jobqueue cluster named by ``cluster.kind``, scaled and watched for lost jobs.

        ``cluster.options`` go to the class unchanged (``cores``, ``memory``,
        ``queue``, ``walltime``, ``python``, ``job_script_prologue``,
        ``interface``, ``scheduler_options``, ``local_directory``,
        ``log_directory``, ``job_extra_directives``, ...), with defaults:
        ``job_name`` is ``sal-<campaign>`` (so ``squeue --name`` finds the
        campaign's jobs), with ``gpus_per_worker`` each worker advertises that
        many ``GPU`` resources, and the dashboards stay on the Dask interface
        (:func:`_keep_http_on_interface`).
        """
        import dask_jobqueue

        spec = self.cluster_spec
        class_name = JOBQUEUE_CLASSES[spec.kind]
        cls = getattr(dask_jobqueue, class_name)
        options = spec.options.thaw() if spec.options else {}
        options.setdefault("job_name", "sal-" + _safe_name(self.campaign_name))
        if spec.gpus_per_worker:
            options["worker_extra_args"] = _with_gpu_resource(
                list(options.get("worker_extra_args") or []), spec.gpus_per_worker
            )
            directives = " ".join(str(d) for d in options.get("job_extra_directives") or [])
            if spec.kind == "slurm" and "gres" not in directives and "gpu" not in directives:
                logger.warning(
                    "cluster.gpus_per_worker = %d but cluster.options.job_extra_directives asks SLURM for no GPU "
                    "(e.g. '--gres=gpu:%d'); the workers advertise GPUs their jobs may not have",
                    spec.gpus_per_worker,
                    spec.gpus_per_worker,
                )
        if security is not None:
            options.setdefault("security", security)
            options.setdefault("protocol", "tls://")
        submit = str(getattr(cls.job_cls, "submit_command", "") or "").split()
        if submit and shutil.which(submit[0]) is None:
            # Without this check the submission fails in the background and the campaign waits forever.
            raise DispatchError(
                f"cluster.kind = {spec.kind!r}: the job submission command {submit[0]!r} is not on PATH here; "
                "run the driver where the batch system's commands work (a login node, or inside a batch job)"
            )
        try:
            _keep_http_on_interface(options, cls)
            cluster = cls(**options)
        except (TypeError, ValueError) as exc:
            # dask-jobqueue turns an unknown keyword into a ValueError ("Got unexpected keyword argument").
            raise DispatchError(
                f"cluster.options: {class_name} rejected the options {sorted(options)}: {_one_line(exc)}; "
                "see the dask-jobqueue documentation of its keyword arguments"
            ) from exc
        try:
            if spec.adapt is not None:
                cluster.adapt(minimum_jobs=spec.adapt.minimum, maximum_jobs=spec.adapt.maximum)
                self.target_jobs_ = 0
                most = spec.adapt.maximum
            else:
                cluster.scale(jobs=spec.jobs)
                self.target_jobs_ = spec.jobs
                most = spec.jobs
            self.keeper_ = _JobKeeper(cluster, max_per_window=max(2, most))
            self.keeper_.install(JOB_CHECK_INTERVAL)
        except BaseException:
            cluster.close()
            raise
        logger.info(
            "%s: %s; worker jobs named %r",
            class_name,
            f"{spec.jobs} job(s)" if spec.adapt is None else f"adaptive {spec.adapt.minimum}..{spec.adapt.maximum} jobs",
            options["job_name"],
        )
        return cluster

    def close(self) -> None:
        """Close the client and any cluster this dispatcher created.

        After the scheduler was lost the client is still trying to reconnect;
        closing it cancels that attempt, which distributed logs as an ERROR
        with two tracebacks. The campaign has already reported the loss in one
        line, so that log record is dropped (kept at debug level here).
        """
        lost = self.client_ is not None and getattr(self.client_, "status", "") == "connecting"
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
        :class:`_JobKeeper` for the details.

        The same check runs every :data:`JOB_CHECK_INTERVAL` seconds on the
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
        if cluster is None or not hasattr(cluster, "worker_spec"):
            return []
        return [str(job.job_id) for job in list(cluster.workers.values()) if getattr(job, "job_id", None)]


#: Seconds between two checks for lost worker jobs (on the cluster's event loop).
JOB_CHECK_INTERVAL = 2.0
#: Replacements are limited to ``max_per_window`` jobs per this many seconds.
JOB_REPLACE_WINDOW = 120.0
#: Log a hint when no worker job has connected this long after the cluster started.
JOB_START_HINT_AFTER = 300.0


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


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:40] or "campaign"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _keep_http_on_interface(options: dict[str, Any], cls: Any) -> None:
    """Bind the HTTP servers (dashboards) where the Dask traffic goes, not on every interface.

    dask-jobqueue opens the scheduler's dashboard on ``:8787``, i.e. on all
    interfaces (a login node's public one too), and the workers' on ``:0``,
    whatever ``interface`` says. Unless ``scheduler_options.dashboard_address``
    is given, the scheduler's goes to the address of its interface (or
    ``scheduler_options.host``); with a loopback ``interface`` (one machine)
    the workers' go to 127.0.0.1 unless ``worker_extra_args`` names one.
    Raises ValueError when the scheduler's interface does not exist here.
    """
    import dask
    from distributed.utils import get_ip_interface

    config_name = options.get("config_name") or cls.job_cls.default_config_name()
    interface = options.get("interface") or dask.config.get(f"jobqueue.{config_name}.interface", None)
    given = options.get("scheduler_options")
    scheduler = dict(given if given is not None else dask.config.get(f"jobqueue.{config_name}.scheduler-options", {}) or {})
    if "dashboard_address" not in scheduler:
        host = scheduler.get("host")
        iface = scheduler.get("interface") or interface
        if not host and iface:
            host = get_ip_interface(iface)
        if host:
            host = f"[{host}]" if ":" in host and not host.startswith("[") else host
            scheduler["dashboard_address"] = f"{host}:8787"
            options["scheduler_options"] = scheduler
    if interface in ("lo", "lo0"):  # names on the workers' nodes: not resolvable here in general
        args = list(options.get("worker_extra_args") or [])
        if not any(str(a).startswith("--dashboard-address") for a in args):
            options["worker_extra_args"] = [*args, "--dashboard-address", "127.0.0.1:0"]


def _with_gpu_resource(args: list[str], gpus: int) -> list[str]:
    """Worker arguments that advertise ``GPU=gpus``, merged into a ``--resources`` already given."""
    for i, arg in enumerate(args):
        if arg == "--resources" and i + 1 < len(args):
            if "GPU=" not in args[i + 1]:
                args[i + 1] = f"{args[i + 1]},GPU={gpus}" if args[i + 1] else f"GPU={gpus}"
            return args
        if arg.startswith("--resources="):
            if "GPU=" not in arg:
                args[i] = f"{arg},GPU={gpus}"
            return args
    return [*args, "--resources", f"GPU={gpus}"]


class _JobKeeper:
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

    def __init__(self, cluster: Any, *, max_per_window: int, clock: Callable[[], float] = time.monotonic) -> None:
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
        lost: list[Any] = []
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

    def _replace(self, lost: list[Any], now: float) -> list[str]:
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


def fit_surrogate_on_worker(
    kind: str, options: dict[str, Any], X: Any, Y: Any, Yvar: Any, warm_state: bytes | None
) -> bytes:
    """Build, (warm-start,) fit a surrogate on a worker and return its state as bytes.

    The task body of :class:`RemoteFitSurrogate`. ``device="auto"`` in
    ``options`` picks the worker's GPU; ``state_dict`` holds CPU tensors, so
    the driver loads the result on its own device.
    """
    from surrogate_al.state_bytes import state_from_bytes, state_to_bytes
    from surrogate_al.surrogates import make_surrogate

    surrogate = make_surrogate(kind, **options)
    if warm_state:
        surrogate.load_state_dict(state_from_bytes(warm_state))
    surrogate.fit(X, Y, Yvar)
    return state_to_bytes(surrogate.state_dict())


class RemoteFitSurrogate:
    """A surrogate whose ``fit`` runs as a Dask task on a worker with a ``GPU`` resource.

    Everything else (predict, joint covariance, state) is served by the local
    copy, which loads the fitted state after each remote fit. The policy sees
    an ordinary :class:`~surrogate_al.surrogates.base.Surrogate`; the layer
    rule holds because this wrapper, not the surrogates, knows about Dask.

    Args:
        local: the driver's surrogate (same kind and options as the remote one).
        client: the campaign's Dask client.
        kind: surrogate kind in the registry (``"gp"``, ``"ensemble"``, ...).
        options: constructor options for the worker's copy (``device="auto"``).
    """

    def __init__(self, local: Any, client: Any, kind: str, options: dict[str, Any]) -> None:
        self.local = local
        self.client = client
        self.kind = kind
        self.options = dict(options)
        self.fits_: int = 0
        self.last_worker_: str = ""

    def fit(self, X: Any, Y: Any, Yvar: Any = None) -> RemoteFitSurrogate:
        """Fit on a GPU worker (warm-started from the current state) and load the result."""
        from surrogate_al.state_bytes import state_from_bytes, state_to_bytes

        try:
            warm = state_to_bytes(self.local.state_dict())
        except AttributeError:  # NotFittedError: nothing to start from yet
            warm = None
        future = self.client.submit(
            fit_surrogate_on_worker, self.kind, self.options, X, Y, Yvar, warm, resources={"GPU": 1}, pure=False
        )
        self.local.load_state_dict(state_from_bytes(future.result()))
        who = self.client.who_has(future).get(future.key, ())
        self.last_worker_ = next(iter(who), "")
        self.fits_ += 1
        logger.info("surrogate fit %d ran on %s", self.fits_, self.last_worker_ or "a GPU worker")
        return self

    def __getattr__(self, name: str) -> Any:
        # predict, joint_epistemic_covariance, state_dict, load_state_dict, num_outputs, bounds, ...
        return getattr(self.local, name)
