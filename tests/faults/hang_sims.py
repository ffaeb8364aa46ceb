"""Python simulators for the timeout tests: one that hangs, one that answers at once.

Each call writes a file ``<pid>`` (its process id) into the directory named by
``FAULTS_HANG_DIR`` before it does anything else, so a test can find the
process that ran it and check that it is gone.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

HANG_DIR_ENV = "FAULTS_HANG_DIR"


def _mark() -> None:
    directory = os.environ.get(HANG_DIR_ENV)
    if directory:
        Path(directory, str(os.getpid())).write_text("started")


def hang(x1: float, x2: float) -> dict[str, float]:
    """Never answers in a test's lifetime (a hung solver)."""
    _mark()
    time.sleep(600)
    return {"y": x1 + x2}


def quick(x1: float, x2: float) -> dict[str, float]:
    """Answers at once."""
    _mark()
    return {"y": x1 + x2}
