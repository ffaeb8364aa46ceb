"""The lock file ``STORE.h5.lock``: one writing driver per store, stale locks broken safely.

The lock is created with ``O_CREAT | O_EXCL`` and holds the owner's pid, host,
process start time, batch job id and a random token as JSON. A lock whose
process is gone (or whose pid now belongs to another program) is stale and
broken; a live holder on this host is never broken; a lock of another host
cannot be checked and is only broken on request (``force_unlock``).
Read-only opens take no lock.

The lock also fences its holder: :meth:`Lock.check` runs before and after
every journal append and before every snapshot or journal replace, and raises
:class:`LockLostError` once the lock file no longer holds this writer's
bytes (broken by another driver's ``force_unlock``, or removed by hand). Per
check it costs an ``open`` + ``fstat`` + ``close`` of the lock file (open,
not a plain stat, because NFS revalidates cached attributes on open), the
inode, size, mtime and ctime compared with those last seen to hold our
bytes; the file is read only when they changed, and always before a snapshot.
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

__all__ = ["Lock", "LockInfo", "LockLostError", "LockVerdict", "read_lock"]

logger = logging.getLogger(__package__)  # one logger for the store: log lines name "surrogate_al.store"

#: What a lock's owner is: alive on this host, gone (the lock is stale), or on another host (cannot be checked).
LockVerdict = Literal["live", "stale", "foreign"]

_LOCK_WAIT_S = 0.9  # create/open(mode="a") must give up within 1 s
_LOCK_WRITE_GRACE_S = 2.0  # an unreadable lock younger than this is being written

_StatKey = tuple[int, int, int, int, int]


class LockLostError(StoreError):
    """This writer's lock was broken or taken over: it stops and writes nothing more.

    Raised by every write of a store whose lock file no longer holds this
    writer's token; the store's new holder (or a ``resume``) owns the store.
    """


def _stat_key(st: os.stat_result) -> _StatKey:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@dataclass(frozen=True)
class LockInfo:
    """What a lock file says about its owner.

    Attributes:
        pid: The owner's process id.
        host: The owner's host name.
        started: Epoch seconds when the lock was taken.
        command: The owner's command line (at most 300 characters).
        create_time: The owner's process start time (tells a reused pid apart; 0: unknown).
        token: A random hex string that makes every lock's content unique (the
            journal header names it too).
        job: The batch job id of the owner (``SLURM_JOB_ID``; "" outside a job).
    """

    pid: int
    host: str
    started: float
    command: str
    create_time: float
    token: str
    job: str = ""

    def describe(self) -> str:
        """The owner in words, for error messages."""
        job = f", SLURM job {self.job}" if self.job else ""
        return f"pid {self.pid} on host {self.host} since {iso(self.started)} ({self.command}{job})"

    def how_to_check(self) -> str:
        """The commands that tell whether the owner is still alive on its host."""
        how = f"`ssh {self.host} ps -o pid,lstart,args -p {self.pid}`"
        return how + (f" or `squeue -j {self.job}`" if self.job else "")


class Lock:
    """``STORE.h5.lock``: one writing driver per store, stale locks broken safely."""

    def __init__(self, path: Path, raw: bytes, info: LockInfo, seen: _StatKey) -> None:
        self.path = path
        self._raw = raw
        self.info = info
        self._seen = seen  # the lock file's stat when its content was last found to be ours
        self._lost = ""  # why the lock is no longer ours; "" while it is

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
            job=one_line(os.environ.get("SLURM_JOB_ID", ""))[:64],
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
                    seen_stat = _stat_key(os.fstat(fd))
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
                return cls(path, raw, info, seen_stat)
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
                    f"{store}: locked by {holder.describe()}, a host this one cannot check; check it with "
                    f"{holder.how_to_check()}; if that driver is gone, pass force_unlock=True (CLI: --force-unlock) "
                    "to break the lock (a driver that is still alive then stops at its next write)"
                )
            hint = (
                "that process is alive (same pid and start time), and force_unlock only breaks locks of drivers "
                "that are gone — stop that process first"
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
                job=str(d.get("job", "")),
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

    @property
    def lost(self) -> str:
        """Why this lock is no longer ours (the :class:`LockLostError` message); "" while it is."""
        return self._lost

    def check(self, *, full: bool = False) -> None:
        """Raise :class:`LockLostError` unless the lock file still holds this writer's bytes.

        An ``open`` + ``fstat`` + ``close`` when the file is unchanged since the
        last check; the file is read when its inode, size, mtime or ctime
        changed, or with ``full``. Once lost, the lock stays lost.

        Args:
            full: Read and compare the content even when the stat is unchanged
                (before snapshots, where a rare extra read costs nothing).

        Raises:
            LockLostError: The lock was broken or taken over.
            StoreError: The lock file cannot be read (the write is not done; retrying may succeed).
        """
        if self._lost:
            raise LockLostError(self._lost)
        # open + fstat rather than stat: NFS revalidates cached attributes on open
        # (close-to-open consistency), a plain stat may answer from its cache.
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            current: bytes | None = None
            key = None
        except OSError as exc:
            raise StoreError(
                f"{self.path}: cannot check the lock before writing ({one_line(exc)}); the write was NOT done — "
                "check the file system, then retry"
            ) from exc
        else:
            try:
                key = _stat_key(os.fstat(fd))
                if key == self._seen and not full:
                    return
                current = b"".join(iter(lambda: os.read(fd, 65536), b""))
            finally:
                os.close(fd)
        if current == self._raw and key is not None:
            self._seen = key
            return
        self._lost = self._lost_message(current)
        raise LockLostError(self._lost)

    def _lost_message(self, current: bytes | None) -> str:
        store = self.path.with_name(self.path.name.removesuffix(".lock"))
        me = f"this driver (pid {self.info.pid} on host {self.info.host}) stops and writes nothing more"
        if current is None:
            return (
                f"the lock {self.path} of {store} was removed (by hand, or broken by another driver's force_unlock); "
                f"{me}; `surrogate-al resume {store}` continues the campaign"
            )
        holder = self._parse(current)
        if holder is None:
            return f"the lock {self.path} of {store} was replaced by an unreadable file; {me}"
        job = f" (SLURM job {holder.job})" if holder.job else ""
        return (
            f"the lock of {store} was taken over by pid {holder.pid} on host {holder.host}{job} at "
            f"{iso(holder.started)} ({holder.command}); {me}"
        )

    def release(self) -> None:
        """Remove the lock file if it is still ours (a lost lock is left to its new holder)."""
        if self._lost:
            return
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
