"""File-system helpers of the store: sidecar paths, durable writes, one-line error texts."""

from __future__ import annotations

import errno
import os
import re
from datetime import datetime, timezone
from pathlib import Path

__all__ = ["errno_in_message", "fsync_path", "iso", "no_space_hint", "one_line", "sidecar", "write_all"]

# Errnos that mean "no room for more bytes": a full disk, a quota, a file size limit.
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def sidecar(path: Path, suffix: str) -> Path:
    """The file beside ``path`` named ``path.name + suffix`` (``STORE.h5.journal``, ``.lock``, ``.tmp``)."""
    return path.with_name(path.name + suffix)


def fsync_path(path: Path) -> None:
    """fsync a file or a directory by path (directories: makes a rename durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """Write every byte of ``data`` to ``fd`` (``os.write`` may write fewer)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def one_line(text: object) -> str:
    """``text`` with every run of whitespace (newlines included) replaced by one space."""
    return " ".join(str(text).split())


def iso(t: float) -> str:
    """Epoch seconds as an ISO 8601 UTC time to the second."""
    return datetime.fromtimestamp(t, tz=timezone.utc).isoformat(timespec="seconds")


def errno_in_message(exc: BaseException) -> int | None:
    """The errno HDF5 writes into its own message ("errno = 28"), or None."""
    found = re.search(r"errno = (\d+)", str(exc))
    return int(found.group(1)) if found else None


def no_space_hint(exc: BaseException) -> str:
    """Words to add to the message of an out-of-space error; an empty string for any other error.

    HDF5 wraps the errno in its own message ("errno = 28"), so the text is searched too.
    """
    code = getattr(exc, "errno", None)
    in_message = errno_in_message(exc)
    if code not in _NO_SPACE and in_message not in _NO_SPACE:
        return ""
    if errno.EFBIG in (code, in_message):
        return " (the file size limit is reached: check `ulimit -f`)"
    return " (the disk is full or the quota is used up)"
