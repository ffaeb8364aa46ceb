"""``surrogate-al tls DIR``: a private CA and a certificate that a batch-queue workflow can name."""

from __future__ import annotations

import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from surrogate_al.config import load_workflow

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl program")

GOOD = Path(__file__).parent / "data" / "workflows_good" / "slurm.toml"


def tls(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "surrogate_al.cli", "tls", *args], capture_output=True, text=True,
                          timeout=300)


def test_tls_makes_owner_only_files_a_workflow_can_name(tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    res = tls(str(certs), "--days", "2")
    assert res.returncode == 0, res.stderr
    for name in ("ca.pem", "ca.key", "dask.pem", "dask.key"):
        mode = stat.S_IMODE((certs / name).stat().st_mode)
        assert mode == 0o600, f"{name}: mode {oct(mode)}"
    assert not (certs / "dask.csr").exists()
    verified = subprocess.run(["openssl", "verify", "-CAfile", str(certs / "ca.pem"), str(certs / "dask.pem")],
                              capture_output=True, text=True, timeout=60)
    assert verified.returncode == 0 and verified.stdout.strip().endswith("OK"), verified.stdout + verified.stderr
    line = next(s.strip() for s in res.stdout.splitlines() if s.strip().startswith("tls = "))
    text = GOOD.read_text().replace("insecure = true   # a test file: no certificates to point tls at", line)
    workflow = tmp_path / "slurm.toml"
    workflow.write_text(text)
    spec = load_workflow(workflow)
    assert spec.cluster.tls is not None


def test_tls_refuses_to_replace_certificates_without_force(tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    assert tls(str(certs), "--days", "2").returncode == 0
    before = (certs / "dask.pem").read_bytes()
    res = tls(str(certs))
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "already exist" in lines[0] and "--force" in lines[0], res.stderr
    assert (certs / "dask.pem").read_bytes() == before
    assert tls(str(certs), "--days", "2", "--force").returncode == 0
    assert (certs / "dask.pem").read_bytes() != before
