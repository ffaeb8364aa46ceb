"""What runs on a worker for one simulator run, and the Dask key it runs under.

Each attempt of each proposal is one task, keyed by campaign name, proposal id
and attempt, so keys never collide and ``pure=False`` semantics hold: two runs
at the same point are two runs. Dask re-runs the task of a worker that dies
under the same key, so the store sees one run.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from surrogate_al.simulation import SimulationResult, Simulator

__all__ = ["RunOutcome", "execute_run", "run_key", "safe_name"]

#: Environment variables holding the batch job id (SLURM, PBS, SGE, LSF).
JOB_ID_VARIABLES = ("SLURM_JOB_ID", "PBS_JOBID", "JOB_ID", "LSB_JOBID")


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


def current_job_id() -> str:
    """The batch-system id of the job this process runs in; ``""`` outside a batch job."""
    for var in JOB_ID_VARIABLES:
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
    return RunOutcome(result=result, worker=worker, job_id=current_job_id())


def safe_name(name: str, max_length: int | None = None) -> str:
    """``name`` with every character outside ``[A-Za-z0-9_.-]`` replaced by ``_``, cut to ``max_length``.

    Dask keys and batch job names both take it; an empty result becomes
    ``"campaign"``.
    """
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:max_length] or "campaign"


def run_key(campaign: str, proposal_id: int, attempt: int) -> str:
    """The Dask key of one attempt: unique per campaign, proposal and attempt."""
    return f"sim-{safe_name(campaign)}-p{proposal_id}-a{attempt}"
