"""Real CLI drivers held busy by a file: workflows, start-up, stderr capture.

Used by the lock, network and disk-full tests: a driver runs
``hold_sims:held_branin``, whose runs wait while a hold file exists, so the
test decides when the campaign may finish (see ``hold_sims``).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from .helpers import REPO, start_cli

__all__ = ["StderrLines", "console_script", "start_driver", "write_held_workflow"]


def console_script() -> list[str]:
    """The installed ``surrogate-al`` console script of this interpreter's environment."""
    script = Path(sys.executable).parent / "surrogate-al"
    return [str(script)] if script.exists() else [sys.executable, "-m", "surrogate_al.cli"]


def write_held_workflow(
    directory: Path,
    *,
    name: str,
    budget: int,
    hold: Path,
    store: Path | None = None,
    design: int = 4,
    cluster_extra: str = "",
) -> Path:
    """Write ``<directory>/<name>.toml``: a Branin campaign whose runs wait while ``hold`` exists.

    Args:
        directory: where the workflow goes.
        name: campaign name and file stem.
        budget: settled runs to reach.
        hold: the hold file (create it before starting the driver to hold the runs).
        store: the store path; default ``<name>.h5`` beside the workflow.
        design: initial design size.
        cluster_extra: extra ``[cluster]`` lines (``dashboard``, ``tls``, ...).

    Returns:
        The workflow file.
    """
    text = textwrap.dedent(
        """\
        [campaign]
        name = "{name}"
        budget = {budget}
        concurrency = 2
        initial_design = {{ size = {design}, kind = "sobol" }}
        store = "{store}"

        [simulator]
        kind = "python"
        function = "hold_sims:held_branin"
        outputs = ["y"]
        fixed_inputs = {{ hold = "{hold}" }}

        [simulator.inputs]
        x1 = {{ low = -5.0, high = 10.0 }}
        x2 = {{ low = 0.0, high = 15.0 }}

        [surrogate]
        kind = "gp"

        [acquisition]
        raw_samples = 128
        restarts = 2

        [cluster]
        kind = "local"
        workers = 2
        """
    ).format(name=name, budget=budget, design=design, store=store or f"{name}.h5", hold=hold)
    path = directory / f"{name}.toml"
    path.write_text(text + textwrap.dedent(cluster_extra))
    return path


def start_driver(args: Sequence[str], *, cwd: Path = REPO, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
    """Start ``surrogate-al ARGS`` (the console script) in its own session.

    Its own session: ``helpers.reap`` kills the driver's whole process group
    (its Dask nannies and workers) after the test.
    """
    return start_cli(*args, env=env, cwd=cwd, command=console_script())


class StderrLines:
    """Collect a running driver's stderr lines in a thread (to read log lines while it runs)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._pump, args=(proc,), daemon=True)
        self._thread.start()

    def _pump(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    def snapshot(self) -> list[str]:
        """The lines read so far."""
        with self._lock:
            return list(self.lines)

    def text(self, wait: float = 0.0) -> str:
        """All lines so far as one text; ``wait`` seconds for the pipe to close first."""
        if wait:
            self._thread.join(wait)
        return "\n".join(self.snapshot())
