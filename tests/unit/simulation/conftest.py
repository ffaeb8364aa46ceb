"""Fixtures shared by the simulation unit tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def workdir_root(tmp_path: Path) -> Path:
    return tmp_path / "runs"
