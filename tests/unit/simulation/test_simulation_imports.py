"""The simulation package imports no torch (checked in a fresh interpreter: other tests import it)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def run_fresh(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a new interpreter that imports this checkout's surrogate_al."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, timeout=120
    )


def test_the_simulation_package_imports_no_torch(tmp_path: Path) -> None:
    proc = run_fresh(
        f"""
        import sys
        from surrogate_al.simulation import PythonSimulator, ScriptSimulator
        ScriptSimulator([sys.executable, "-c", "pass", "{{input}}"], ["x1"], ["y"], workdir_root={str(tmp_path)!r})
        PythonSimulator("math:sqrt", ["x"], ["y"])
        assert "torch" not in sys.modules, "the simulation package imported torch"
        """
    )
    assert proc.returncode == 0, proc.stderr
