"""A script run's own directory: making it, and reading and writing only inside it.

Every file the wrapper writes or reads (inputs, outputs, ``stdout.txt``,
``stderr.txt``) lies inside the run's directory: the run id is sanitized into
the directory name, the directory is new for every run, the inputs file is
created exclusively (never through a symbolic link), and an output path that
resolves outside the directory is not read.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from surrogate_al.simulation.result import clip, exception_reason
from surrogate_al.simulation.rules import WRAPPER_FILES

__all__ = ["make_run_dir", "read_output_file", "read_stdout", "read_tail", "sanitize_run_id", "write_new_file"]

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
        present = sorted(p.name for p in run_dir.iterdir() if p.name not in WRAPPER_FILES)
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
