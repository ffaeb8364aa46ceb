"""Where a campaign stands, read from its store and its lock file without writing either.

The store's state says what the driver last recorded; after a crash it still
says ``running``. The lock file says which process wrote it: when that process
is gone the campaign is ``interrupted``, and the status names the resume
command. A driver on another host cannot be checked from here; the status says
so and names the command that breaks its lock once the user knows it is gone.

:func:`read_status` gathers the facts, :func:`status_lines` writes them for a
person and :func:`status_json` as plain data (``surrogate-al status --json``).
"""

from __future__ import annotations

import math
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from surrogate_al.store import CampaignStore
from surrogate_al.store.fileio import sidecar
from surrogate_al.store.lock import read_lock

__all__ = ["CampaignStatus", "Driver", "read_status", "status_json", "status_lines"]

#: Stored states of a campaign not yet ended; with the lock of a process that is gone, it was cut off.
_UNFINISHED = ("running", "created")


@dataclass(frozen=True)
class Driver:
    """The process named in the store's lock file.

    Attributes:
        pid: its process id.
        host: its host name.
        alive: True or False on this host; None for another host (cannot be checked from here).
        since: epoch seconds when it took the lock.
    """

    pid: int
    host: str
    alive: bool | None
    since: float


@dataclass(frozen=True)
class CampaignStatus:
    """The facts ``surrogate-al status`` reports.

    Attributes:
        path: the store.
        state: ``created``, ``running``, ``interrupted`` (stored ``running`` but
            its driver is gone), ``completed``, ``stopped`` or ``failed``.
        reason: why, in words (the stored reason, or what the lock file says).
        stored_state: the state as the store records it.
        driver: the lock file's owner, or None without a readable lock file.
        budget_used: settled runs.
        budget_total: the budget (None when the stored spec does not say).
        counts: status -> number among settled runs.
        attempts: attempts recorded, retries included.
        in_flight: runs proposed or submitted and not settled, at the last write.
        metrics: name -> last value (NaN as None).
        checkpoint: ``{"version", "n_results", "time"}`` of the last checkpoint, or None.
        resume_command: the command that continues the campaign, or None when
            there is nothing to resume or a live driver is on it.
        resume_note: when to use ``resume_command`` ("" when it applies as is).
    """

    path: str
    state: str
    reason: str
    stored_state: str
    driver: Driver | None
    budget_used: int
    budget_total: int | None
    counts: dict[str, int]
    attempts: int
    in_flight: int
    metrics: dict[str, float | None]
    checkpoint: dict[str, Any] | None
    resume_command: list[str] | None
    resume_note: str


def read_status(store: str | Path) -> CampaignStatus:
    """The status of the campaign in ``store`` (opened read-only; the lock file is only read).

    Raises:
        NotACampaignStoreError: ``store`` is missing or not a campaign store.
    """
    with CampaignStore.open(store, mode="r") as st:
        s = st.summary()
    path = str(s["path"])
    held = read_lock(sidecar(Path(path), ".lock"))
    driver = None
    if held is not None:
        info, verdict = held
        alive = None if verdict == "foreign" else verdict == "live"
        driver = Driver(pid=info.pid, host=info.host, alive=alive, since=info.started)
    stored, reason = str(s["state"]), str(s.get("state_reason") or "")
    state, note = stored, ""
    resume: list[str] | None = ["surrogate-al", "resume", path]
    if stored == "completed":
        resume = None
    elif driver is not None and driver.alive:
        reason = f"driver pid {driver.pid} on {driver.host}"
        resume = None
    elif driver is not None and driver.alive is None:
        reason = f"driver pid {driver.pid} on {driver.host}, another host: it cannot be checked from here"
        resume = ["surrogate-al", "resume", "--force-unlock", path]
        note = f"only once the driver on {driver.host} is gone"
    elif driver is not None and stored in _UNFINISHED:
        state, reason = "interrupted", f"driver pid {driver.pid} on {driver.host} is gone"
    elif stored == "running":  # a driver that ends records its end; this one did not and holds no lock
        state, reason = "interrupted", "its driver is gone (no lock file)"
    ckpt = None
    if s.get("checkpoint_version") is not None:
        ckpt = {"version": s["checkpoint_version"], "n_results": s["checkpoint_n_results"], "time": s["checkpoint_time"]}
    return CampaignStatus(
        path=path,
        state=state,
        reason=reason,
        stored_state=stored,
        driver=driver,
        budget_used=int(s["n_final"]),
        budget_total=int(s["budget"]) if s.get("budget") is not None else None,
        counts=dict(sorted(s["status_counts"].items())),
        attempts=int(s["n_attempts"]),
        in_flight=int(s["in_flight"]),
        metrics={k: (float(v) if math.isfinite(v) else None) for k, v in sorted(s["metrics"].items())},
        checkpoint=ckpt,
        resume_command=resume,
        resume_note=note,
    )


def status_lines(status: CampaignStatus) -> list[str]:
    """The status for a person, one fact a line."""
    s = status
    counts = ", ".join(f"{k} {v}" for k, v in s.counts.items()) or "none"
    reason = f" ({s.reason})" if s.reason else ""
    rerun = "; re-run on resume" if s.state == "interrupted" else ""
    lines = [
        f"store:           {s.path}",
        f"state:           {s.state}{reason}",
        f"budget used:     {s.budget_used} / {s.budget_total if s.budget_total is not None else '?'}",
        f"settled runs:    {counts}",
        f"attempts:        {s.attempts} (retries included)",
        f"in flight:       {s.in_flight} (at last write{rerun})",
    ]
    for name, value in s.metrics.items():
        lines.append(f"{name + ':':<17}{'n/a' if value is None else f'{value:.4g}'}")
    if s.checkpoint is not None:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(s.checkpoint["time"]))
        lines.append(
            f"last checkpoint: version {s.checkpoint['version']}, fitted on {s.checkpoint['n_results']} results, {when}"
        )
    else:
        lines.append("last checkpoint: none")
    if s.resume_command is not None:
        note = f" ({s.resume_note})" if s.resume_note else ""
        lines.append(f"resume:          {shlex.join(s.resume_command)}{note}")
    return lines


def status_json(status: CampaignStatus) -> dict[str, Any]:
    """The status as JSON-ready data: the facts of :func:`status_lines`, NaN metrics as null."""
    s = status
    driver = None if s.driver is None else {"pid": s.driver.pid, "host": s.driver.host, "alive": s.driver.alive}
    return {
        "path": s.path,
        "state": s.state,
        "reason": s.reason,
        "stored_state": s.stored_state,
        "driver": driver,
        "budget": {"used": s.budget_used, "total": s.budget_total},
        "counts": s.counts,
        "attempts": s.attempts,
        "in_flight": s.in_flight,
        "metrics": s.metrics,
        "checkpoint": s.checkpoint,
        "resume_command": s.resume_command,
        "resume_note": s.resume_note,
    }
