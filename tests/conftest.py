"""Test-wide settings and the fixtures that several test folders share."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from store_helpers import INPUTS, OUTPUTS

from surrogate_al.store import CampaignStore


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread() -> None:
    """Small fits run ~10x faster on one thread than on two contended ones (2-core CI)."""
    torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def _ctrl_c_reaches_drivers() -> None:
    """Let the CLI drivers the tests start receive Ctrl-C (SIGINT) as from a terminal.

    A test run started in the background of a non-interactive shell
    (``pytest &``, ``nohup``, some CI runners) inherits SIGINT as *ignored*,
    and an ignored signal stays ignored across fork and exec: every driver
    would then shrug off the SIGINT that the interruption tests send and run
    to completion. A Python-level handler is reset to the default on exec, so
    installing Python's own handler here gives the children the default.
    """
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """Where a ScriptSimulator makes its run directories (not created yet)."""
    return tmp_path / "runs"


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """Where the :func:`store` fixture's store lives."""
    return tmp_path / "campaign.h5"


@pytest.fixture
def store(path: Path) -> Iterator[CampaignStore]:
    """A new store at ``path`` with ``store_helpers``' inputs and outputs; closed after the test."""
    s = CampaignStore.create(path, spec={"campaign": {"budget": 7}, "name": "t"}, input_names=INPUTS,
                             output_names=OUTPUTS, snapshot_interval=1e9)
    yield s
    s.close()
