"""Dask dispatch: a client for the campaign's cluster, simulator runs and surrogate fits as tasks.

* :mod:`~surrogate_al.dispatch.runs`: what runs on a worker for one simulator
  run (:func:`execute_run`, :class:`RunOutcome`) and its key (:func:`run_key`).
* :mod:`~surrogate_al.dispatch.clusters`: building the local and batch-queue
  clusters, TLS, and the interfaces their servers bind to.
* :mod:`~surrogate_al.dispatch.dispatcher`: :class:`Dispatcher`, the client
  the campaign submits runs through.
* :mod:`~surrogate_al.dispatch.job_keeper`: :class:`JobKeeper`, which
  replaces lost batch jobs.
* :mod:`~surrogate_al.dispatch.remote_fit`: :class:`RemoteFitSurrogate`,
  surrogate fits on GPU workers.
* :mod:`~surrogate_al.dispatch.worker_logging`: a worker plugin that keeps
  the shutdown heartbeat race out of the log.
"""

from __future__ import annotations

from surrogate_al.dispatch.clusters import JOBQUEUE_CLASSES
from surrogate_al.dispatch.dispatcher import Dispatcher
from surrogate_al.dispatch.job_keeper import JobKeeper
from surrogate_al.dispatch.remote_fit import RemoteFitAutoSurrogate, RemoteFitSurrogate, fit_surrogate_on_worker
from surrogate_al.dispatch.runs import RunOutcome, execute_run, run_key

__all__ = [
    "JOBQUEUE_CLASSES",
    "Dispatcher",
    "JobKeeper",
    "RemoteFitAutoSurrogate",
    "RemoteFitSurrogate",
    "RunOutcome",
    "execute_run",
    "fit_surrogate_on_worker",
    "run_key",
]
