"""A batch-queue cluster without TLS is refused unless the workflow says ``cluster.insecure = true``.

Plain TCP between the driver's scheduler and its worker jobs lets anyone on
the cluster network submit work that runs as the user. The refusal goes
through the real CLI (exit 2, one line naming the field, no store); the
accepted insecure workflow builds the real ``SLURMCluster`` (a stand-in
``sbatch`` on PATH, never called) and logs one warning line when it starts.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from surrogate_al.config import load_workflow
from surrogate_al.dispatch.clusters import make_jobqueue_cluster

from .helpers import batch_workflow


def _workflow(directory: Path, kind: str, cluster_extra: str) -> Path:
    return batch_workflow(directory, kind, kind, cluster_lines=cluster_extra)


@pytest.mark.parametrize("kind", ["slurm", "pbs", "sge", "lsf", "htcondor"])
def test_a_batch_queue_cluster_without_tls_is_refused_in_one_line(kind: str, tmp_path: Path) -> None:
    workflow = _workflow(tmp_path, kind, "")
    proc = subprocess.run(
        [sys.executable, "-m", "surrogate_al.cli", "run", str(workflow), "--no-progress"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "cluster.tls:" in lines[0] and "insecure = true" in lines[0], lines[0]
    assert not list(tmp_path.glob("*.h5"))


def test_insecure_true_loads_and_warns_at_each_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "sbatch").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    spec = load_workflow(_workflow(tmp_path, "slurm", "insecure = true"))
    assert spec.cluster.insecure is True and spec.cluster.tls is None
    for start in range(2):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="surrogate_al"):
            cluster = make_jobqueue_cluster(spec.cluster, "insecure", None)
            cluster.close()
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and "insecure" in r.getMessage()]
        assert len(warnings) == 1, (start, [r.getMessage() for r in caplog.records])
        assert "\n" not in warnings[0] and "plain TCP" in warnings[0], warnings[0]


def test_insecure_with_tls_or_on_a_local_cluster_is_refused(tmp_path: Path) -> None:
    from surrogate_al.errors import ConfigError

    local = _workflow(tmp_path, "local", "insecure = true")
    local.write_text(local.read_text().replace('[cluster.options]\ncores = 1\nmemory = "1GB"\n', ""))
    with pytest.raises(ConfigError, match=r"cluster\.insecure: .*only used when kind is a batch-queue kind"):
        load_workflow(local)
    (tmp_path / "ca.pem").write_text("x")
    both = _workflow(tmp_path, "slurm", 'insecure = true\ntls = { ca_file = "ca.pem", cert = "ca.pem", key = "ca.pem" }')
    with pytest.raises(ConfigError, match=r"cluster\.insecure: insecure = true contradicts the certificates"):
        load_workflow(both)
