"""A store written by the code before the package restructure opens, reports and predicts the same.

``tests/data/legacy_store/legacy.h5`` is a finished 14-run Branin campaign (``auto``
surrogate) written by commit a2b7b23 with ``surrogate-al run legacy.toml``; its
``predict.csv`` and ``runs.csv`` are what that code printed for ``points.csv``.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from surrogate_al.store import CampaignStore

DATA = Path(__file__).parent.parent / "data" / "legacy_store"


@pytest.fixture
def legacy(tmp_path: Path) -> Path:
    """A copy of the legacy store (the CLI may write a lock beside it)."""
    target = tmp_path / "legacy.h5"
    shutil.copyfile(DATA / "legacy.h5", target)
    return target


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "surrogate_al.cli", *args], capture_output=True, text=True,
                          timeout=180, cwd=cwd)


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_legacy_store_opens_with_every_run(legacy: Path) -> None:
    with CampaignStore.open(legacy) as store:
        runs = store.runs()
    assert len(runs) == 14
    assert {r.status for r in runs} == {"ok"}


def test_legacy_store_status_reads_the_finished_campaign(legacy: Path) -> None:
    res = cli("status", str(legacy), cwd=legacy.parent)
    assert res.returncode == 0, res.stderr
    assert "completed (budget of 14 runs reached)" in res.stdout
    assert "budget used:     14 / 14" in res.stdout
    assert "fitted on 14 results" in res.stdout


def test_legacy_store_predicts_what_the_old_code_predicted(legacy: Path, tmp_path: Path) -> None:
    res = cli("predict", str(legacy), str(DATA / "points.csv"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    got = list(csv.DictReader(res.stdout.splitlines()))
    want = read_rows(DATA / "predict.csv")
    assert [list(r) for r in got] == [list(r) for r in want]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose([float(v) for v in g.values()], [float(v) for v in w.values()], rtol=1e-6)


def test_legacy_store_exports_the_same_runs(legacy: Path, tmp_path: Path) -> None:
    out = tmp_path / "runs.csv"
    res = cli("export", str(legacy), "--format", "csv", "-o", str(out), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert read_rows(out) == read_rows(DATA / "runs.csv")
