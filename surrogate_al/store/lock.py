"""The lock file ``STORE.h5.lock``: one writing driver per store, stale locks broken safely.

The lock is created with ``O_CREAT | O_EXCL`` and holds the owner's pid, host,
process start time and a random token as JSON. A lock whose process is gone
(or whose pid now belongs to another program) is stale and broken; a lock of
another host cannot be checked and is only broken on request (``force_unlock``).
Read-only opens take no lock.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import psutil

from surrogate_al.errors import StoreError, StoreLockedError
from surrogate_al.store.fileio import iso, no_space_hint, one_line, sidecar, write_all

__all__ = ["Lock", "LockInfo", "LockVerdict", "read_lock"]

logger = logging.getLogger(__package__)  # one logger for the store: log lines name "surrogate_al.store"

#: What a lock's owner is: alive on this host, gone (the lock is stale), or on another host (cannot be checked).
LockVerdict = Literal["live", "stale", "foreign"]

_LOCK_WAIT_S = 0.9  # create/open(mode="a") must give up within 1 s
_LOCK_WRITE_GRACE_S = 2.0  # an unreadable lock younger than this is being written


@dataclass(frozen=True)
class LockInfo:
    """What a lock file says about its owner.

    Attributes:
        pid: The owner's process id.
        host: The owner's host name.
        started: Epoch seconds when the lock was taken.
        command: The owner's command line (at most 300 characters).
        create_time: The owner's process start time (tells a reused pid apart; 0: unknown).
        token: A random hex string that makes every lock's content unique.
    """

    pid: int
    host: str
    started: float
    command: str
    create_time: float
    token: str

    def describe(self) -> str:
        """The owner in words, for error messages."""
        return f"pid {self.pid} on host {self.host} since {iso(self.started)} ({self.command})"


class Lock:
    """``STORE.h5.lock``: one writing driver per store, stale locks broken safely."""

    def __init__(self, path: Path, raw: bytes, info: LockInfo) -> None:
        self.path = path
        self._raw = raw
        self.info = info

    @classmethod
    def acquire(cls, path: Path, store: Path, *, force_unlock: bool) -> Lock:
        """Take the lock or raise :class:`StoreLockedError` within about a second."""
        me = psutil.Process()
        info = LockInfo(
            pid=os.getpid(),
            host=socket.gethostname(),
            started=time.time(),
            command=one_line(" ".join(sys.argv))[:300],
            create_time=me.create_time(),
            token=uuid.uuid4().hex,
        )
        raw = json.dumps(info.__dict__).encode()
        t0 = time.monotonic()
        deadline = t0 + _LOCK_WAIT_S
        logger.debug("%s: taking the lock %s", store, path)
        while True:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                pass
            except OSError as exc:
                raise StoreError(
                    f"{store}: cannot create the lock file {path} ({exc.strerror}); the directory must exist and "
                    "be writable by the driver"
                ) from None
            else:
                try:
                    write_all(fd, raw)
                    os.fsync(fd)
                except BaseException as exc:
                    path.unlink(missing_ok=True)  # an empty lock would block others for a while
                    if isinstance(exc, OSError):
                        raise StoreError(
                            f"{store}: cannot write the lock file {path} ({one_line(exc)}){no_space_hint(exc)}; "
                            "free disk space or check the file system, then retry"
                        ) from exc
                    raise
                finally:
                    os.close(fd)
                return cls(path, raw, info)
            try:
                seen = path.read_bytes()
                age = time.time() - path.stat().st_mtime
            except FileNotFoundError:
                continue  # released between our two calls: try again
            holder = cls._parse(seen)
            if holder is None:
                if age < _LOCK_WRITE_GRACE_S and time.monotonic() < deadline:
                    time.sleep(0.02)  # its owner is still writing it
                    continue
                if age < _LOCK_WRITE_GRACE_S:
                    raise StoreLockedError(
                        f"{store}: the lock file {path} is being written by another process; retry in a few seconds"
                    )
                logger.warning("%s: breaking an unreadable lock file %s (%d s old)", store, path, int(age))
                cls._break(path, seen)
                continue
            verdict = cls._judge(holder)
            if verdict == "stale":
                logger.warning("%s: breaking the stale lock of %s (that process is gone)", store, holder.describe())
                cls._break(path, seen)
                continue
            if verdict == "foreign":
                if force_unlock:
                    logger.warning("%s: force_unlock: breaking the lock of %s", store, holder.describe())
                    cls._break(path, seen)
                    continue
                logger.debug("%s: lock refused after %.3f s (foreign holder)", store, time.monotonic() - t0)
                raise StoreLockedError(
                    f"{store}: locked by {holder.describe()}, a host this one cannot check; if that driver is "
                    "gone, pass force_unlock=True (CLI: --force-unlock) to break the lock"
                )
            hint = (
                "force_unlock only breaks locks of drivers that are gone — stop that process first"
                if force_unlock
                else "wait for that driver to finish or stop it"
            )
            who = "this process (close the other CampaignStore first)" if holder.pid == os.getpid() else "it"
            # The time from the first attempt to the refusal (tests and docs quote it).
            logger.debug("%s: lock refused after %.3f s (live holder)", store, time.monotonic() - t0)
            raise StoreLockedError(f"{store}: locked by live {holder.describe()}; {hint}; held by {who}")

    @staticmethod
    def _parse(raw: bytes) -> LockInfo | None:
        try:
            d = json.loads(raw)
            return LockInfo(
                pid=int(d["pid"]),
                host=str(d["host"]),
                started=float(d["started"]),
                command=str(d.get("command", "")),
                create_time=float(d.get("create_time", 0.0)),
                token=str(d.get("token", "")),
            )
        except (ValueError, KeyError, TypeError, RecursionError):  # RecursionError: deeply nested JSON
            return None

    @staticmethod
    def _judge(holder: LockInfo) -> LockVerdict:
        if holder.host != socket.gethostname():
            return "foreign"
        if not psutil.pid_exists(holder.pid):
            return "stale"
        try:
            proc = psutil.Process(holder.pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                return "stale"  # dead, only not yet reaped by its parent
            # A different start time means the pid was reused by another program.
            if holder.create_time and abs(proc.create_time() - holder.create_time) > 1.0:
                return "stale"
        except psutil.NoSuchProcess:
            return "stale"
        except psutil.AccessDenied:
            return "live"  # cannot tell: never break what may be a live driver
        return "live"

    @staticmethod
    def _break(path: Path, seen: bytes) -> None:
        """Remove the lock file only if it still holds ``seen``.

        Renaming first makes the check-and-remove safe against another process
        that breaks the same stale lock and takes a fresh one in between.
        """
        aside = sidecar(path, f".broken-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return
        try:
            moved = aside.read_bytes()
        except OSError:
            moved = seen
        if moved != seen:
            # We moved someone's fresh lock: put it back (unless a third one took the place).
            try:
                os.link(aside, path)
            except FileExistsError:
                logger.warning("%s: a lock changed hands while a stale lock was being broken", path)
        aside.unlink(missing_ok=True)

    def release(self) -> None:
        """Remove the lock file if it is still ours."""
        try:
            current = self.path.read_bytes()
        except FileNotFoundError:
            logger.warning("%s: lock file vanished before release (broken with force_unlock?)", self.path)
            return
        if current != self._raw:
            logger.warning("%s: lock file now belongs to someone else; leaving it", self.path)
            return
        self.path.unlink(missing_ok=True)


def read_lock(path: Path) -> tuple[LockInfo, LockVerdict] | None:
    """Who holds the lock file ``path`` and whether that process is alive, without touching the file.

    Returns:
        The owner and its verdict, or None when there is no lock file or it
        cannot be read as one (being written, or damaged).
    """
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    holder = Lock._parse(raw)
    return None if holder is None else (holder, Lock._judge(holder))
