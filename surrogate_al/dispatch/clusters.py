"""Building the clusters a campaign runs on: local worker processes, or batch jobs of dask-jobqueue.

* ``local``: a :class:`distributed.LocalCluster` of worker *processes* with
  one thread each (a simulator that holds the GIL or crashes takes only its
  own worker down). The scheduler and, if asked for, the dashboard listen on
  ``127.0.0.1``: nothing is reachable from outside the machine unless the
  workflow sets ``allow_remote`` (checked by the workflow loader).
* ``slurm`` / ``pbs`` / ``sge`` / ``lsf`` / ``htcondor``: the dask-jobqueue
  cluster class of that name (:data:`JOBQUEUE_CLASSES`), its keyword
  arguments passed through from ``cluster.options``.

TLS, when the workflow asks for it, comes from :func:`cluster_security`. The
``address`` kind builds no cluster: :class:`~surrogate_al.dispatch.Dispatcher`
connects to the scheduler given.
"""

from __future__ import annotations

import logging
import shutil
from typing import TYPE_CHECKING, Any

from surrogate_al.dispatch.runs import safe_name
from surrogate_al.errors import DispatchError

if TYPE_CHECKING:
    from dask_jobqueue import JobQueueCluster
    from distributed import LocalCluster
    from distributed.security import Security

    from surrogate_al.config import ClusterSpec

__all__ = [
    "JOBQUEUE_CLASSES",
    "cluster_security",
    "keep_http_on_interface",
    "make_jobqueue_cluster",
    "make_local_cluster",
    "with_gpu_resource",
]

logger = logging.getLogger(__name__)

#: dask-jobqueue class of each batch-queue ``cluster.kind``.
JOBQUEUE_CLASSES: dict[str, str] = {
    "slurm": "SLURMCluster",
    "pbs": "PBSCluster",
    "sge": "SGECluster",
    "lsf": "LSFCluster",
    "htcondor": "HTCondorCluster",
}

#: Longest campaign-name part of a batch job name (``sal-<campaign>``).
JOB_NAME_LENGTH = 40


def cluster_security(spec: ClusterSpec) -> Security | None:
    """The TLS settings of ``cluster.tls``: temporary certificates, the given files, or None (plain TCP)."""
    tls = spec.tls
    if tls is None:
        return None
    from distributed.security import Security

    if isinstance(tls, str):  # "temporary", the one string the workflow loader admits
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


def make_local_cluster(spec: ClusterSpec, security: Security | None) -> LocalCluster:
    """The ``local`` cluster of ``spec``, bound to ``spec.host`` (loopback unless the workflow allows remote)."""
    from distributed import LocalCluster

    # The workflow loader refuses a non-loopback host without allow_remote.
    host = spec.host
    # With no dashboard distributed still opens the scheduler's HTTP server (health,
    # metrics), on the fixed port 8787: a random loopback port avoids clashes and warnings.
    dashboard = spec.dashboard if spec.dashboard else f"{host}:0"
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
    if spec.worker_gpus:
        kwargs["resources"] = {"GPU": spec.worker_gpus}
    return LocalCluster(**kwargs)


def make_jobqueue_cluster(spec: ClusterSpec, campaign_name: str, security: Security | None) -> JobQueueCluster:
    """The dask-jobqueue cluster named by ``cluster.kind``, not yet scaled.

    ``cluster.options`` go to the class unchanged (``cores``, ``memory``,
    ``queue``, ``walltime``, ``python``, ``job_script_prologue``,
    ``interface``, ``scheduler_options``, ``local_directory``,
    ``log_directory``, ``job_extra_directives``, ...), with defaults:
    ``job_name`` is ``sal-<campaign>`` (so ``squeue --name`` finds the
    campaign's jobs), with ``gpus_per_worker`` each worker advertises that
    many ``GPU`` resources, and the dashboards stay on the Dask interface
    (:func:`keep_http_on_interface`).

    Raises:
        DispatchError: the batch system's submission command is not on PATH,
            or the class rejects the options.
    """
    import dask_jobqueue

    class_name = JOBQUEUE_CLASSES[spec.kind]
    cls = getattr(dask_jobqueue, class_name)
    options = spec.options.thaw() if spec.options else {}
    options.setdefault("job_name", "sal-" + safe_name(campaign_name, JOB_NAME_LENGTH))
    if spec.gpus_per_worker:
        options["worker_extra_args"] = with_gpu_resource(
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
    else:
        # The workflow loader admits a batch-queue cluster without TLS only with cluster.insecure = true.
        logger.warning(
            "cluster.insecure = true: the scheduler and its %s worker jobs talk plain TCP; anyone on the cluster "
            "network can run code as you through it (set cluster.tls, see docs/hpc.md)",
            spec.kind,
        )
    submit = str(getattr(cls.job_cls, "submit_command", "") or "").split()
    if submit and shutil.which(submit[0]) is None:
        # Without this check the submission fails in the background and the campaign waits forever.
        raise DispatchError(
            f"cluster.kind = {spec.kind!r}: the job submission command {submit[0]!r} is not on PATH here; "
            "run the driver where the batch system's commands work (a login node, or inside a batch job)"
        )
    try:
        keep_http_on_interface(options, cls)
        cluster: JobQueueCluster = cls(**options)
    except (TypeError, ValueError) as exc:
        # dask-jobqueue turns an unknown keyword into a ValueError ("Got unexpected keyword argument").
        raise DispatchError(
            f"cluster.options: {class_name} rejected the options {sorted(options)}: {_one_line(exc)}; "
            "see the dask-jobqueue documentation of its keyword arguments"
        ) from exc
    logger.info(
        "%s: %s; worker jobs named %r",
        class_name,
        f"{spec.jobs} job(s)" if spec.adapt is None else f"adaptive {spec.adapt.minimum}..{spec.adapt.maximum} jobs",
        options["job_name"],
    )
    return cluster


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def keep_http_on_interface(options: dict[str, Any], cls: type[JobQueueCluster]) -> None:
    """Bind the HTTP servers (dashboards) where the Dask traffic goes, not on every interface.

    dask-jobqueue opens the scheduler's dashboard on ``:8787``, i.e. on all
    interfaces (a login node's public one too), and the workers' on ``:0``,
    whatever ``interface`` says. Unless ``scheduler_options.dashboard_address``
    is given, the scheduler's goes to the address of its interface (or
    ``scheduler_options.host``); with a loopback ``interface`` (one machine)
    the workers' go to 127.0.0.1 unless ``worker_extra_args`` names one.

    Args:
        options: the keyword arguments for ``cls``, changed in place.
        cls: the dask-jobqueue cluster class they are for.

    Raises:
        ValueError: the scheduler's interface does not exist here.
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


def with_gpu_resource(args: list[str], gpus: int) -> list[str]:
    """Worker arguments that advertise ``GPU=gpus``, merged into a ``--resources`` already given.

    Args:
        args: the workers' command-line arguments (``worker_extra_args``);
            changed in place when they hold a ``--resources`` already.
        gpus: how many ``GPU`` resources each worker advertises.

    Returns:
        The arguments; a ``GPU`` count given already is kept.
    """
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
