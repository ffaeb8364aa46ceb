"""Loading a workflow imports no torch (checked in a fresh interpreter: other tests import it)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

WORKFLOW = """\
[campaign]
budget = 4

[simulator]
kind = "python"
function = "simulators.branin:run"
outputs = ["y"]

[simulator.inputs]
x1 = { low = -5.0, high = 10.0 }
x2 = { low = 0.0, high = 15.0 }

[surrogate]
kind = "ensemble"
options = { num_members = 3, hidden_layers = [16, 16] }
"""


def run_fresh(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a new interpreter that imports this checkout's surrogate_al."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, timeout=120
    )


def test_loading_a_workflow_with_surrogate_options_imports_no_torch(tmp_path: Path) -> None:
    path = tmp_path / "wf.toml"
    path.write_text(WORKFLOW)
    proc = run_fresh(
        f"""
        import sys
        from surrogate_al.config import load_workflow
        spec = load_workflow({str(path)!r})
        assert spec.surrogate.options["num_members"] == 3
        assert "torch" not in sys.modules, "loading a workflow imported torch"
        """
    )
    assert proc.returncode == 0, proc.stderr
