"""A script run's own directory: making it, and reading and writing only inside it.

Every file the wrapper writes or reads (inputs, outputs, ``stdout.txt``,
``stderr.txt``) lies inside the run's directory: the run id is sanitized into
the directory name, the directory is new for every run, the inputs file is
created exclusively (never through a symbolic link), and an output path that
resolves outside the directory is not read.

The run's first directory (``workdir_root/<sanitized run id>``) also holds
``executions``: one JSON line per start of that run id (Dask re-runs a task
whose worker died under the same run id, in a ``-retryN`` directory), naming
the host, the process group and the start time of its leader. It counts how
often the run was executed, and it is how a later start, or the driver on a
stop signal, finds a process group that is still alive.
"""

from __future__ import annotations

import json
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path

from surrogate_al.simulation.result import clip, exception_reason
from surrogate_al.simulation.rules import WRAPPER_FILES

__all__ = [
    "EXECUTIONS_FILE",
    "Execution",
    "first_run_dir",
    "make_run_dir",
    "read_executions",
    "read_output_file",
    "read_stdout",
    "read_tail",
    "record_execution",
    "sanitize_run_id",
    "write_new_file",
]

#: In a run's first directory: one JSON line per start of the run (see the module docstring).
EXECUTIONS_FILE = "executions"

_UNSAFE_DIRNAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def sanitize_run_id(run_id: str) -> str:
    """A safe directory name for ``run_id``: ``[A-Za-z0-9._-]``, not starting with ``.``/``_``/``-``, <= 100 chars."""
    # No separators survive, and no leading dot: never "..", never hidden, never read as an option.
    name = _UNSAFE_DIRNAME_CHARS.sub("_", run_id).lstrip("._-")[:100]
    return name or "run"


def make_run_dir(root: Path, run_id: str) -> Path:
    """Create a new directory for ``run_id`` under ``root`` (``-retryN`` when the name is taken).

    Raises:
        OSError: the directory cannot be created.
    """
    root.mkdir(parents=True, exist_ok=True)
    base = sanitize_run_id(run_id)
    for attempt in range(10_000):
        name = base if attempt == 0 else f"{base}-retry{attempt}"
        path = root / name
        try:
            # exist_ok=False: two runs (or a retry of a killed run) never share a directory.
            path.mkdir(exist_ok=False)
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"no free run directory name for run id {run_id!r} under {root}")


def first_run_dir(root: Path, run_id: str) -> Path:
    """The directory the first start of ``run_id`` got under ``root`` (it holds the run's ``executions``)."""
    return root / sanitize_run_id(run_id)


@dataclass(frozen=True)
class Execution:
    """One start of a run, as recorded in its ``executions`` file.

    Attributes:
        run_id: the run id exactly as given (two ids may sanitize to one directory name).
        host: ``socket.gethostname()`` of the process that started it.
        pgid: the process group of the started program (its leader's pid).
        started: the leader's start time (epoch seconds, ``psutil``), 0 when it had exited already.
        workdir: the directory this start ran in.
    """

    run_id: str
    host: str
    pgid: int
    started: float
    workdir: str


def record_execution(root: Path, run_id: str, workdir: Path, pgid: int, started: float) -> int:
    """Append this start of ``run_id`` to its ``executions`` file; returns how many starts it records.

    Raises:
        OSError: the file cannot be written (a symbolic link is never followed).
    """
    line = json.dumps(
        {"run_id": run_id, "host": socket.gethostname(), "pgid": pgid, "started": started, "workdir": str(workdir)}
    )
    directory = _open_dir(first_run_dir(root, run_id))
    try:
        fd = os.open(EXECUTIONS_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644, dir_fd=directory)
        try:
            os.write(fd, (line + "\n").encode("utf-8"))
        finally:
            os.close(fd)
    finally:
        os.close(directory)
    return len(read_executions(root, run_id))


def _open_dir(path: Path) -> int:
    """A descriptor of the directory ``path`` itself: never through a symbolic link (OSError then)."""
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)


def read_executions(root: Path, run_id: str) -> list[Execution]:
    """The recorded starts of ``run_id`` (lines of other ids, or unreadable ones, are skipped)."""
    try:
        directory = _open_dir(first_run_dir(root, run_id))
    except OSError:
        return []
    try:
        fd = os.open(EXECUTIONS_FILE, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=directory)
        with open(fd, "rb") as fh:
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    finally:
        os.close(directory)
    out = []
    for line in text.splitlines():
        try:
            d = json.loads(line)
            execution = Execution(
                str(d["run_id"]), str(d["host"]), int(d["pgid"]), float(d["started"]), str(d["workdir"])
            )
        except (ValueError, KeyError, TypeError):
            continue  # the program may have written into its own directory; only our lines count
        if execution.run_id == run_id:
            out.append(execution)
    return out


def write_new_file(run_dir: Path, filename: str, text: str) -> str:
    """Create ``run_dir/filename`` (it must not exist) holding ``text``; ``""`` or the reason it failed."""
    try:
        target = run_dir / filename
        if not target.resolve().is_relative_to(run_dir.resolve()):
            raise OSError(f"{filename!r} resolves outside the run directory {run_dir}")
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "x", encoding="utf-8") as fh:
            fh.write(text)
    except (OSError, UnicodeEncodeError) as exc:
        return exception_reason(f"cannot write {filename}: ", exc)
    return ""


def read_tail(path: Path, n_bytes: int) -> tuple[str, bool]:
    """The last ``n_bytes`` of a file, decoded leniently, and whether it was cut."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - n_bytes))
            data = fh.read(n_bytes)
    except OSError:
        return "", False
    cut = size > n_bytes
    if cut:  # drop a character split by the cut rather than decode half of it
        data = data.lstrip(bytes(range(0x80, 0xC0)))
    return data.decode("utf-8", errors="replace"), cut


def read_stdout(stdout_path: Path, max_bytes: int) -> str:
    """The stdout tail that parsers see (at most ``max_bytes``)."""
    text, cut = read_tail(stdout_path, max_bytes)
    return text.split("\n", 1)[-1] if cut else text  # a cut first line is partial: drop it


def read_output_file(run_dir: Path, name: str, max_bytes: int) -> tuple[str, str]:
    """``(text, "")`` of the output file ``run_dir/name``, or ``("", reason)``.

    A file larger than ``max_bytes``, not UTF-8, missing, or resolving outside
    ``run_dir`` gives a reason.
    """
    path = run_dir / name
    # The program may have made the output (or a directory on its way) a symbolic link;
    # following one out of the run directory would read a file that belongs to no run.
    # No race: the program and its process group are gone by now.
    try:
        target = path.resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python < 3.13)
        return "", exception_reason(f"output file {name} cannot be resolved: ", exc)
    if not target.is_relative_to(run_dir.resolve()):
        return "", (
            f"output file {name} is a symbolic link to {clip(str(target), 200)}, outside the run directory "
            f"{run_dir}; the wrapper reads outputs only from inside it: write the file itself there"
        )
    if not path.is_file():
        present = sorted(p.name for p in run_dir.iterdir() if p.name not in (*WRAPPER_FILES, EXECUTIONS_FILE))
        return "", f"output file {name} was not written (the run directory holds {clip(repr(present), 300)})"
    try:
        size = path.stat().st_size
        if size > max_bytes:
            return "", f"output file {name} is {size} bytes, more than max_parse_bytes = {max_bytes}"
        data = path.read_bytes()
    except OSError as exc:
        return "", exception_reason(f"output file {name} cannot be read: ", exc)
    try:
        return data.decode("utf-8"), ""
    except UnicodeDecodeError as exc:
        return "", f"output file {name} is not UTF-8 text: {exc}"
