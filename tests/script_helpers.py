"""ScriptSimulator helpers shared by the script-simulator tests (integration and faults).

Importable as ``script_helpers``: pytest puts ``tests/`` on ``sys.path`` for
``tests/conftest.py``, which also holds the ``root`` fixture (the run
directories' root) that :func:`behave` is given.
"""

from __future__ import annotations

import sys
from pathlib import Path

from surrogate_al.simulation import ScriptSimulator

__all__ = ["BEHAVE", "INTEGRATION_SCRIPTS", "behave"]

INTEGRATION_SCRIPTS = Path(__file__).resolve().parent / "integration" / "scripts"
BEHAVE = str(INTEGRATION_SCRIPTS / "behave.py")


def behave(root: Path, mode: str, **kwargs: object) -> ScriptSimulator:
    """A simulator around behave.py in the given mode (JSON in, JSON out by default)."""
    args: dict[str, object] = {"output_names": ["y", "z"], "workdir_root": root}
    args.update(kwargs)
    return ScriptSimulator([sys.executable, BEHAVE, mode, "{input}", "{output}"], ["x1", "x2"], **args)  # type: ignore[arg-type]
