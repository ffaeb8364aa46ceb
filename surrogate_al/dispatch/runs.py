"""What runs on a worker for one simulator run, and the Dask key it runs under.

Each attempt of each proposal is one task, keyed by campaign name, store id,
proposal id and attempt. The store id (random, fixed when the store is
created) keeps the keys of two campaigns apart on one scheduler even when they
share a name (two workflow files both called ``workflow.toml``): Dask treats
equal keys as one computation and would hand one campaign the other's result.
``pure=False`` semantics hold: two runs at the same point are two runs. Dask
re-runs the task of a worker that dies under the same key, so the store sees
one run.

The worker's :class:`RunOutcome` names the key, proposal and attempt it ran
for, so the driver accepts a result only for the run it submitted.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from surrogate_al.simulation import SimulationResult, Simulator

__all__ = ["RunOutcome", "execute_run", "run_key", "run_name", "safe_name"]

#: Characters of the campaign name kept in a task key (the store id makes the key unique).
KEY_NAME_LENGTH = 40

#: Characters of the store id kept in a task key (a uuid4 hex id has 32).
KEY_STORE_ID_LENGTH = 32

#: Environment variables holding the batch job id (SLURM, PBS, SGE, LSF).
JOB_ID_VARIABLES = ("SLURM_JOB_ID", "PBS_JOBID", "JOB_ID", "LSB_JOBID")


@dataclass(frozen=True)
class RunOutcome:
    """What a worker sends back for one simulator run.

    Attributes:
        result: the simulator's result (never an exception: failures are data).
        worker: address of the Dask worker that ran it.
        job_id: the batch-system job id of that worker, when it runs in a job.
        key: the task key of the run it ran (:func:`run_key`).
        proposal_id: the proposal it ran.
        attempt: the attempt of that proposal it ran.
    """

    result: SimulationResult
    worker: str
    job_id: str
    key: str
    proposal_id: int
    attempt: int


def current_job_id() -> str:
    """The batch-system id of the job this process runs in; ``""`` outside a batch job."""
    for var in JOB_ID_VARIABLES:
        value = os.environ.get(var)
        if value:
            return value
    return ""


def execute_run(
    simulator: Simulator,
    inputs: Mapping[str, Any],
    run_id: str,
    *,
    proposal_id: int,
    attempt: int,
    run_name: str | None = None,
) -> RunOutcome:
    """Run one simulation on a worker (the Dask task body).

    Args:
        simulator: the wrapped simulator (pickled to the worker).
        inputs: named inputs in the scientist's units.
        run_id: the task key of this attempt (:func:`run_key`).
        proposal_id: the proposal this attempt runs.
        attempt: which attempt of that proposal it is.
        run_name: the attempt's name inside its campaign (:func:`run_name`),
            which names its working directory; None: ``run_id``.

    Returns:
        The result with the worker's address and batch job id, and the key,
        proposal and attempt it ran for.
    """
    try:
        from distributed import get_worker

        worker = get_worker().address
    except ValueError:  # called outside a worker (tests, in-process runs)
        worker = f"local:{socket.gethostname()}:{os.getpid()}"
    result = simulator(dict(inputs), run_id=run_name or run_id)
    return RunOutcome(
        result=result,
        worker=worker,
        job_id=current_job_id(),
        key=run_id,
        proposal_id=int(proposal_id),
        attempt=int(attempt),
    )


def safe_name(name: str, max_length: int | None = None) -> str:
    """``name`` with every character outside ``[A-Za-z0-9_.-]`` replaced by ``_``, cut to ``max_length``.

    Dask keys and batch job names both take it; an empty result becomes
    ``"campaign"``.
    """
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:max_length] or "campaign"


def run_name(campaign: str, proposal_id: int, attempt: int) -> str:
    """The name of one attempt inside its campaign: ``sim-<name>-p<proposal>-a<attempt>``.

    It names the attempt's run directory, under the campaign's own work
    directory, so it needs no store id; the Dask key (:func:`run_key`) does.
    """
    return f"sim-{safe_name(campaign, KEY_NAME_LENGTH)}-p{int(proposal_id)}-a{int(attempt)}"


def run_key(campaign: str, proposal_id: int, attempt: int, *, store_id: str) -> str:
    """The Dask key of one attempt: unique per store, proposal and attempt.

    ``sim-<name>-<store id>-p<proposal>-a<attempt>``: a string of
    ``[A-Za-z0-9_.-]`` only, at most ``4 + 40 + 1 + 32`` characters before the
    two numbers. The name (cut to :data:`KEY_NAME_LENGTH`) is for people
    reading the dashboard; the store id is what keeps two campaigns' keys apart.

    Args:
        campaign: the campaign name.
        proposal_id: the proposal.
        attempt: the attempt of that proposal (1 for the first).
        store_id: the campaign store's id (``CampaignStore.store_id``).

    Raises:
        ValueError: ``store_id`` is empty or has characters outside ``[A-Za-z0-9_.-]``.
    """
    if not store_id or safe_name(store_id) != store_id:
        raise ValueError(f"store_id = {store_id!r} must be a non-empty id of letters, digits, '_', '.' or '-'")
    return (
        f"sim-{safe_name(campaign, KEY_NAME_LENGTH)}-{store_id[:KEY_STORE_ID_LENGTH]}"
        f"-p{int(proposal_id)}-a{int(attempt)}"
    )
