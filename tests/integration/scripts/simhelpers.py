"""Test helper module: functions referenced as 'simhelpers:NAME' strings.

The tests put this directory on sys.path (or PYTHONPATH for a fresh
interpreter), as a scientist's own package would be importable on workers.
"""

from pathlib import Path


def quadratic(x1: float, x2: float, scale: float = 1.0) -> dict[str, float]:
    """y = scale * (x1**2 + x2), z = x1 - x2."""
    return {"y": scale * (x1**2 + x2), "z": x1 - x2}


def parse_log(workdir: Path, stdout: str) -> dict[str, float]:
    """A user parse function: the last 'final:' line of stdout plus a file written by the script."""
    finals = [line.split(":", 1)[1] for line in stdout.splitlines() if line.startswith("final:")]
    extra = (workdir / "z.txt").read_text().strip()
    return {"y": float(finals[-1]), "z": float(extra)}
