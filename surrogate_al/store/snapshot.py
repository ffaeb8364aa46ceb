"""Snapshots: the ``.h5`` file read whole, and rewritten whole by an atomic replace.

The ``.h5`` is never modified in place: a snapshot is written to ``STORE.h5.tmp``,
fsync'd, ``os.replace``'d over the old file and the directory fsync'd, so a
SIGKILL at any instant leaves the old or the new complete file, readable with
plain ``h5py.File(path, "r")``. Appending in place under SWMR would not do:
after a SIGKILL such a file opens only with ``swmr=True``; plain readers get
"file is already open for write (may use <h5clear file> ...)".
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import h5py

from surrogate_al.errors import NotACampaignStoreError, StoreError
from surrogate_al.store.fileio import errno_in_message, fsync_path, no_space_hint, one_line, write_all
from surrogate_al.store.tables import CHUNK_BYTES, SnapshotContents, not_a_store, read_layout, write_layout

__all__ = ["check_exists", "h5file", "read_snapshot", "write_snapshot"]

logger = logging.getLogger(__package__)  # one logger for the store: log lines name "surrogate_al.store"

# Errnos HDF5 reports when the file system does not support locks (Lustre/NFS
# give 524, ENOTSUPP); only then is opening without HDF5 locks the right fallback.
_NO_LOCK_SUPPORT = {524, errno.ENOSYS, errno.EOPNOTSUPP}

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _locks_unsupported(exc: OSError) -> bool:
    """Whether an HDF5 open failed because the file system has no file locks."""
    return exc.errno in _NO_LOCK_SUPPORT or errno_in_message(exc) in _NO_LOCK_SUPPORT


@contextmanager
def h5file(path: Path, mode: Literal["r", "w"]) -> Iterator[h5py.File]:
    """Open an HDF5 file with HDF5 file locking, falling back when the file system has none."""
    try:
        f = h5py.File(path, mode, locking=True)
    except OSError as exc:
        if not _locks_unsupported(exc):
            raise
        logger.warning(
            "%s: the file system does not support HDF5 file locks (%s); opening without them "
            "(safe here: the store never modifies an .h5 in place, and its lock file keeps writers apart)",
            path,
            one_line(exc),
        )
        f = h5py.File(path, mode, locking=False)
    try:
        yield f
    finally:
        f.close()


def _has_hdf5_signature(path: Path, size: int) -> bool:
    """HDF5's superblock signature at offset 0, 512, 1024, 2048, ... (no HDF5 call, so no lock)."""
    with path.open("rb") as fh:
        offset = 0
        while offset + len(_HDF5_SIGNATURE) <= size:
            fh.seek(offset)
            if fh.read(len(_HDF5_SIGNATURE)) == _HDF5_SIGNATURE:
                return True
            offset = 512 if offset == 0 else 2 * offset
    return False


def check_exists(path: Path) -> None:
    """Raise unless ``path`` is an existing file.

    Raises:
        NotACampaignStoreError: No such file, or a directory.
    """
    if not path.exists():
        raise NotACampaignStoreError(
            f"{path}: no such campaign store (file not found); check the path, or start a campaign "
            "with `surrogate-al run`"
        )
    if path.is_dir():
        raise NotACampaignStoreError(f"{path}: is a directory, not a campaign store file")


def read_snapshot(path: Path) -> SnapshotContents:
    """Read the whole snapshot at ``path``.

    Raises:
        NotACampaignStoreError: Missing, empty, not HDF5, not a campaign store,
            truncated or damaged, or of another schema version.
        StoreError: Another program holds the file's HDF5 write lock.
    """
    check_exists(path)
    size = path.stat().st_size
    if size == 0:
        raise not_a_store(path, "empty file (0 bytes), not a campaign store")
    if not _has_hdf5_signature(path, size):
        with path.open("rb") as fh:
            head = fh.read(8)
        raise not_a_store(path, f"not an HDF5 file (starts with {head!r}), so not a campaign store")
    try:
        with h5file(path, "r") as f:
            return read_layout(f, path)
    except NotACampaignStoreError:
        raise
    except RecursionError:  # json.loads of a deeply nested spec
        raise not_a_store(path, "damaged campaign store (the spec is nested too deeply)") from None
    except OSError as exc:
        if exc.errno == errno.EAGAIN:
            raise StoreError(
                f"{path}: another program has the file open for writing with HDF5 (file lock held, "
                "errno 11); close it and retry"
            ) from None
        raise not_a_store(path, f"truncated or damaged HDF5 file (h5py: {exc})") from None
    except (KeyError, ValueError, TypeError) as exc:
        raise not_a_store(path, f"damaged campaign store ({exc})") from None


def _write_image(target: Path, contents: SnapshotContents) -> None:
    """Write the snapshot to ``target`` and fsync it.

    The HDF5 file is built in memory (HDF5's core driver) and written with
    plain ``os.write``: a full disk or a file size limit then raises one clean
    OSError. Written by HDF5 itself, such a failure leaves the file half-closed
    inside the library, which retries the flush on every later call and crashes
    the process at exit.
    """
    # The name is only a label: backing_store=False never touches the disk.
    with h5py.File(f"{target}.in-memory", "w", driver="core", backing_store=False, block_size=CHUNK_BYTES) as f:
        write_layout(f, contents)
        f.flush()
        image = f.id.get_file_image()
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        write_all(fd, image)
        os.fsync(fd)
    finally:
        os.close(fd)


def write_snapshot(
    path: Path, tmp: Path, contents: SnapshotContents, before_replace: Callable[[], None] = lambda: None
) -> None:
    """Atomically replace the ``.h5`` at ``path`` by ``contents``, through the temporary file ``tmp``.

    ``before_replace`` runs right before the rename (the writer's fence); what
    it raises leaves the ``.h5`` unchanged.

    Raises:
        StoreError: The snapshot could not be written (a full disk, ...); the
            ``.h5`` on disk is unchanged and ``tmp`` is removed. What
            ``before_replace`` raises passes through as it is.
    """
    try:
        _write_image(tmp, contents)  # fsync'd
        before_replace()
        os.replace(tmp, path)
    except StoreError:
        raise  # the fence: the file at ``tmp`` may be the new holder's by now
    except BaseException as exc:
        tmp.unlink(missing_ok=True)  # a half-written snapshot is useless
        # h5py reports a full disk as OSError, RuntimeError or ValueError, with HDF5's
        # multi-line text; callers and the CLI need one StoreError line instead.
        if isinstance(exc, (OSError, RuntimeError, ValueError)) and not isinstance(exc, StoreError):
            raise StoreError(
                f"{path}: cannot write a snapshot to {tmp.name} ({one_line(exc)})"
                f"{no_space_hint(exc)}; the .h5 on disk is unchanged and later records stay in the journal "
                f"— free disk space or check the file system, then `surrogate-al resume {path}`"
            ) from exc
        raise
    try:
        fsync_path(path.parent)
    except OSError as exc:  # the rename is done; only its durability across a power cut is weaker
        logger.warning("%s: could not fsync the directory after a snapshot: %s", path, exc)
