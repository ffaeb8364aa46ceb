"""Tests of the record types and of the argument checks that build journal rows."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from store_helpers import add_points, assert_one_line, run_ok

from surrogate_al.errors import StoreError
from surrogate_al.store import CampaignStore, RunRecord


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        (dict(status="done"), "status 'done' is unknown"),
        (dict(final=False), "pass final=True"),
        (dict(outputs=None), "needs outputs"),
        (dict(outputs={"y0": 1.0}), "missing ['y1']"),
        (dict(outputs={"y0": 1.0, "y1": 2.0, "z": 3.0}), "unknown ['z']"),
        (dict(outputs={"y0": 1.0, "y1": float("inf")}), "record it with status 'invalid'"),
        (dict(attempt=0), "attempt must be >= 1"),
        (dict(wall_time="fast"), "wall_time must be a number"),
        (dict(worker=3), "worker must be a string"),
    ],
)
def test_add_run_rejects_bad_arguments(store: CampaignStore, kwargs: dict[str, Any], expected: str) -> None:
    add_points(store, 1)
    with pytest.raises(StoreError) as info:
        run_ok(store, 0, **kwargs)
    assert_one_line(info.value, expected)
    assert store.runs() == []  # nothing half-written

def test_add_proposals_rejects_bad_shapes(store: CampaignStore) -> None:
    with pytest.raises(StoreError, match=r"expected q x 2"):
        store.add_proposals(np.zeros((2, 3)), np.zeros((2, 3)), batch_id=0, source="s")
    with pytest.raises(StoreError, match="unit has shape"):
        store.add_proposals(np.zeros((2, 2)), np.zeros((3, 2)), batch_id=0, source="s")
    with pytest.raises(StoreError, match=r"U has shape \(3,\), expected \(2,\)"):
        store.add_proposals(np.zeros((2, 2)), np.zeros((2, 2)), batch_id=0, source="s", U=[1, 2, 3])
    with pytest.raises(StoreError, match="finite"):
        store.add_proposals(np.full((1, 2), np.nan), np.zeros((1, 2)), batch_id=0, source="s")
    with pytest.raises(StoreError, match="source must be a non-empty string"):
        store.add_proposals(np.zeros((1, 2)), np.zeros((1, 2)), batch_id=0, source="")
    assert store.add_proposals(np.zeros((0, 2)), np.zeros((0, 2)), batch_id=0, source="s") == []
    assert store.proposals() == []
    with pytest.raises(StoreError, match="set_state: status 'done' is unknown"):
        store.set_state("done")

def test_create_validates_names_and_spec(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="duplicate names"):
        CampaignStore.create(tmp_path / "a.h5", spec={}, input_names=["x", "x"], output_names=["y"])
    with pytest.raises(StoreError, match="JSON-serialisable"):
        CampaignStore.create(tmp_path / "b.h5", spec={"f": object()}, input_names=["x"], output_names=["y"])
    with pytest.raises(StoreError, match="output_names is empty"):
        CampaignStore.create(tmp_path / "c.h5", spec={}, input_names=["x"], output_names=[])
    assert list(tmp_path.iterdir()) == []  # no lock or file left behind
    with pytest.raises(StoreError) as info:
        CampaignStore.create(tmp_path / "no" / "such" / "d.h5", spec={}, input_names=["x"], output_names=["y"])
    assert_one_line(info.value, "cannot create the lock file", "No such file or directory", "must exist")

def test_run_record_equality_treats_nan_as_equal() -> None:
    kw: dict[str, Any] = dict(run_id=0, proposal_id=0, attempt=1, final=True, status="failed", inputs=np.zeros(2),
                              outputs=np.full(2, np.nan), reason="", stderr_tail="", submit_time=0.0, start_time=0.0,
                              finish_time=0.0, wall_time=math.nan, worker="", host="")
    assert RunRecord(**kw) == RunRecord(**kw)
    assert RunRecord(**kw) != RunRecord(**{**kw, "inputs": np.ones(2)})
    with pytest.raises(Exception):
        RunRecord(**kw).status = "ok"  # type: ignore[misc]
