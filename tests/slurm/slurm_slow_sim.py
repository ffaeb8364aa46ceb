"""A Branin run that takes a while and leaves markers, for the SLURM tests.

The workers import it by name (``slurm_slow_sim:run``): the test workflow puts
this directory on ``PYTHONPATH`` through ``cluster.options.job_script_prologue``,
as a scientist would ``module load`` or ``source`` their environment.

Each call writes ``<marker_dir>/<token>.start`` when it starts and
``<token>.done`` when it finishes, both holding the inputs and the SLURM job
id, so a test can tell which runs a cancelled job was running.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

from simulators.branin import run as branin


def run(*, x1: float, x2: float, delay: float = 0.0, marker_dir: str = "") -> dict[str, float]:
    """Branin at (x1, x2) after ``delay`` seconds."""
    info = {"x1": x1, "x2": x2, "job": os.environ.get("SLURM_JOB_ID", ""), "pid": os.getpid(), "t": time.time()}
    token = uuid.uuid4().hex
    if marker_dir:
        Path(marker_dir, f"{token}.start").write_text(json.dumps(info))
    time.sleep(delay)
    out = branin(x1=x1, x2=x2)
    if marker_dir:
        Path(marker_dir, f"{token}.done").write_text(json.dumps({**info, "t": time.time()}))
    return out
