"""Simulator functions that take their Dask worker down, imported by name on the workers.

Workflows name them ``"worker_fault_sims:<function>"``; the tests put this
directory on ``sys.path`` before the LocalCluster starts, and its spawned
worker processes inherit it. Every call leaves a marker file, because the
tests count tries across worker processes that no longer exist.
"""

from __future__ import annotations

import json
import math
import os
import resource
import signal
import time
import uuid
from pathlib import Path

__all__ = ["read_markers", "segfault_above", "slow_marked", "smooth"]


def smooth(x1: float, x2: float) -> float:
    """The function every simulator here returns: smooth on the unit square."""
    return math.sin(3.0 * x1) + math.cos(2.0 * x2) + x1 * x2


def _mark(marker_dir: str, x1: float, x2: float) -> None:
    """One file per call: the worker's pid, the point and the time (read by :func:`read_markers`)."""
    record = {"pid": os.getpid(), "x1": x1, "x2": x2, "t": time.time()}
    path = Path(marker_dir) / f"start-{uuid.uuid4().hex}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, path)  # a reader never sees half a marker


def read_markers(marker_dir: Path) -> list[dict[str, float]]:
    """Every call recorded in ``marker_dir``, oldest first."""
    records = [json.loads(p.read_text()) for p in Path(marker_dir).glob("start-*.json")]
    return sorted(records, key=lambda r: r["t"])


def slow_marked(x1: float, x2: float, marker_dir: str, seconds: float) -> dict[str, float]:
    """Record the call, sleep ``seconds`` (the window in which a test kills the worker), return."""
    _mark(marker_dir, x1, x2)
    time.sleep(seconds)
    return {"y": smooth(x1, x2)}


def segfault_above(x1: float, x2: float, marker_dir: str, threshold: float, seconds: float) -> dict[str, float]:
    """Crash the whole worker process with SIGSEGV whenever ``x1 > threshold``; else sleep and return.

    The signal is real (the process dies as a segfaulting extension would); the
    core dump is switched off first so no core file lands in the working
    directory. Only the dying worker's own limit is changed.
    """
    _mark(marker_dir, x1, x2)
    if x1 > threshold:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        os.kill(os.getpid(), signal.SIGSEGV)
        time.sleep(60)  # not reached: the signal ends the process
    time.sleep(seconds)
    return {"y": smooth(x1, x2)}
