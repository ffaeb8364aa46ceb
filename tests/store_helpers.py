"""Store helpers shared by the tests in ``unit/store/`` and ``faults/test_two_drivers.py``.

Importable as ``store_helpers``: pytest puts ``tests/`` on ``sys.path`` for
``tests/conftest.py``, which also holds the ``path`` and ``store`` fixtures
(a store with the inputs :data:`INPUTS` and outputs :data:`OUTPUTS`).
"""

from __future__ import annotations

import multiprocessing
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from surrogate_al.store import CampaignStore

__all__ = [
    "FORK",
    "INPUTS",
    "OUTPUTS",
    "add_points",
    "assert_one_line",
    "journal_lines",
    "killed_copy",
    "run_failed",
    "run_ok",
    "sidecars",
]

INPUTS = ("x0", "x1")
OUTPUTS = ("y0", "y1")
FORK = multiprocessing.get_context("fork")  # real processes without paying a fresh interpreter's imports


def add_points(store: CampaignStore, q: int, batch_id: int = 0, seed: int = 0) -> list[int]:
    unit = np.random.default_rng(seed).random((q, len(INPUTS)))
    return store.add_proposals(unit * 10.0, unit, batch_id=batch_id, source="initial")


def run_ok(store: CampaignStore, pid: int, attempt: int = 1, **kw: Any) -> int:
    x = store.proposals()[pid].inputs
    args: dict[str, Any] = dict(proposal_id=pid, attempt=attempt, final=True, status="ok",
                                outputs={"y0": float(x.sum()), "y1": float(x[0] - x[1])},
                                submit_time=1.0, start_time=2.0, finish_time=3.5, wall_time=1.5,
                                worker="tcp://127.0.0.1:1", host="node1")
    args.update(kw)
    return store.add_run(**args)


def run_failed(store: CampaignStore, pid: int, attempt: int = 1, final: bool = False, status: str = "failed") -> int:
    return store.add_run(proposal_id=pid, attempt=attempt, final=final, status=status, outputs=None,
                         reason="exit code 3", stderr_tail="Traceback\nboom\n", submit_time=1.0,
                         start_time=2.0, finish_time=3.0, wall_time=1.0)


def sidecars(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir())


def killed_copy(path: Path, dest_dir: Path) -> Path:
    """What a SIGKILLed driver leaves: the .h5 and its journal, without the driver (and its lock)."""
    dest_dir.mkdir()
    dest = dest_dir / path.name
    shutil.copy2(path, dest)
    shutil.copy2(str(path) + ".journal", str(dest) + ".journal")
    return dest


def journal_lines(path: Path) -> list[bytes]:
    return Path(str(path) + ".journal").read_bytes().split(b"\n")[:-1]


def assert_one_line(exc: BaseException, *must_contain: str) -> None:
    msg = str(exc)
    assert "\n" not in msg, f"multi-line message: {msg!r}"
    for part in must_contain:
        assert part in msg, f"{part!r} not in {msg!r}"
