"""Tests of the CampaignStore facade: round trips, reads, modes and creation, on real files."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from store_helpers import INPUTS, OUTPUTS, add_points, assert_one_line, run_failed, run_ok, sidecars

from surrogate_al.errors import StoreError
from surrogate_al.store import CampaignStore, Checkpoint, ProposalRecord

DOCS = Path(__file__).resolve().parents[3] / "docs" / "store.md"


def test_round_trip_of_every_record_type_and_reopen_is_identical(store: CampaignStore, path: Path) -> None:
    X = np.array([[1.0, 2.0], [3.5, -4.25], [0.0, 1e-300]])
    ids = store.add_proposals(X, X / 10, batch_id=3, U=[0.1, 0.2, 0.3], D=None, J=np.array([1.0, 2.0, 3.0]),
                              lam=0.25, surrogate_version=4, source="hybrid")
    assert ids == [0, 1, 2]
    assert add_points(store, 2, batch_id=4) == [3, 4]
    store.mark_submitted(0, 1, 11.0)
    store.mark_submitted(1, 1, 12.0)
    r0 = run_ok(store, 0, stderr_tail="warn: ünïcödé ✓ and a NUL\x00here")
    r1 = run_failed(store, 1)
    r2 = run_failed(store, 1, attempt=2, final=True, status="timeout")
    assert (r0, r1, r2) == (0, 1, 2)
    surrogate = os.urandom(1_000_000)
    store.save_checkpoint(version=4, n_results=1, surrogate_state=surrogate, policy_state=b"")
    store.add_metric(n_results=1, name="estimated_nrmse", value=0.125)
    store.add_metric(n_results=2, name="lambda", value=float("nan"))
    store.add_event("started", "first run")
    store.set_state("running")
    store.set_state("stopped", "budget reached")

    p0 = store.proposals()[0]
    assert p0 == ProposalRecord(proposal_id=0, batch_id=3, inputs=X[0], unit=X[0] / 10, U=0.1, D=math.nan, J=1.0,
                                lam=0.25, surrogate_version=4, source="hybrid", created=p0.created)
    runs = store.runs()
    assert [r.status for r in runs] == ["ok", "failed", "timeout"]
    assert runs[0].stderr_tail == "warn: ünïcödé ✓ and a NUL\ufffdhere"  # HDF5 strings cannot hold NULs
    assert np.array_equal(runs[0].outputs, [3.0, -1.0]) and np.isnan(runs[1].outputs).all()
    assert runs[2].inputs.tolist() == X[1].tolist()  # copied from its proposal
    assert store.latest_checkpoint() == Checkpoint(version=4, n_results=1, created=store.latest_checkpoint().created,
                                                   surrogate_state=surrogate, policy_state=b"")
    before = dict(proposals=store.proposals(), runs=runs, finals=store.final_runs(), pending=store.pending_proposal_ids(),
                  ckpt=store.latest_checkpoint(), metrics=store.metrics(), events=store.events(), state=store.state(),
                  arrays=store.arrays())
    assert before["state"] == ("stopped", "budget reached")
    assert before["pending"] == [2, 3, 4]
    store.close()

    assert sidecars(path) == ["campaign.h5"]  # journal folded, lock released
    again = CampaignStore.open(path)
    assert again.spec == {"campaign": {"budget": 7}, "name": "t"}
    assert (again.input_names, again.output_names) == (INPUTS, OUTPUTS)
    after = dict(proposals=again.proposals(), runs=again.runs(), finals=again.final_runs(),
                 pending=again.pending_proposal_ids(), ckpt=again.latest_checkpoint(), metrics=again.metrics(),
                 events=again.events(), state=again.state(), arrays=again.arrays())
    for key in before:
        if key == "arrays":
            assert before[key].keys() == after[key].keys()
            for col in before[key]:
                assert np.array_equal(before[key][col], after[key][col], equal_nan=before[key][col].dtype.kind == "f")
        elif key == "metrics":
            assert before[key][0] == after[key][0] and after[key][1][:2] == (2, "lambda") and math.isnan(after[key][1][2])
        else:
            assert before[key] == after[key], key

def test_summary_reports_progress(store: CampaignStore) -> None:
    add_points(store, 4)
    run_ok(store, 0)
    run_failed(store, 1)
    run_failed(store, 1, attempt=2, final=True, status="lost")
    store.mark_submitted(2, 1, 5.0)
    store.save_checkpoint(version=2, n_results=2, surrogate_state=b"s", policy_state=b"p")
    store.add_metric(n_results=1, name="estimated_nrmse", value=0.5)
    store.add_metric(n_results=2, name="estimated_nrmse", value=0.25)
    store.set_state("running")
    s = store.summary()
    assert s["budget"] == 7 and s["n_final"] == 2 and s["n_attempts"] == 3 and s["n_proposals"] == 4
    assert s["status_counts"] == {"ok": 1, "lost": 1}
    assert s["in_flight"] == 2 and s["n_submitted"] == 1
    assert s["metrics"] == {"estimated_nrmse": 0.25}
    assert s["checkpoint_version"] == 2 and s["checkpoint_n_results"] == 2 and s["checkpoint_time"] > 0
    assert s["state"] == "running" and s["path"] == str(store.path)
    json.dumps(s)  # the CLI may print it as JSON

def test_empty_store_reads(store: CampaignStore) -> None:
    assert store.runs() == [] and store.proposals() == [] and store.latest_checkpoint() is None
    assert store.state() == ("created", "")
    cols = store.arrays()
    assert cols["X"].shape == (0, 2) and cols["Y"].shape == (0, 2) and cols["status"].shape == (0,)
    assert store.summary()["n_final"] == 0

def test_arrays_are_read_only_snapshots(store: CampaignStore) -> None:
    add_points(store, 2)
    run_ok(store, 0)
    cols = store.arrays()
    with pytest.raises(ValueError):
        cols["X"][0, 0] = 1.0
    run_ok(store, 1)
    assert len(cols["run_id"]) == 1 and len(store.arrays()["run_id"]) == 2

def test_read_only_and_closed_stores_refuse_writes(store: CampaignStore, path: Path) -> None:
    add_points(store, 1)
    reader = CampaignStore.open(path, "r")
    with pytest.raises(StoreError) as info:
        reader.add_event("started", "x")
    assert_one_line(info.value, "read-only", "open(path, 'a')")
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.add_event("started", "x")
    store.close()  # idempotent

def test_create_refuses_an_existing_store_unless_forced(store: CampaignStore, path: Path) -> None:
    add_points(store, 1)
    store.close()
    with pytest.raises(StoreError) as info:
        CampaignStore.create(path, spec={}, input_names=INPUTS, output_names=OUTPUTS)
    assert_one_line(info.value, str(path), "surrogate-al resume", "force")
    with CampaignStore.create(path, spec={"v": 2}, input_names=["a"], output_names=["b"], force=True) as fresh:
        assert fresh.proposals() == [] and fresh.input_names == ("a",)
    assert CampaignStore.open(path).spec == {"v": 2}

def test_docs_example_runs_verbatim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = DOCS.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 1, "docs/store.md must have exactly one python example"
    monkeypatch.chdir(tmp_path)
    with CampaignStore.create("campaign.h5", spec={}, input_names=INPUTS, output_names=OUTPUTS) as store:
        add_points(store, 4)
        run_ok(store, 0)
        run_failed(store, 1)  # not final
        run_ok(store, 1, attempt=2)
        run_failed(store, 2, final=True, status="timeout")
        expected = store.arrays()
    namespace: dict[str, Any] = {}
    exec(compile(blocks[0], str(DOCS), "exec"), namespace)
    keep = expected["final"] & (expected["status"] == "ok")
    assert namespace["input_names"] == list(INPUTS) and namespace["output_names"] == list(OUTPUTS)
    assert np.array_equal(namespace["X"], expected["X"][keep]) and namespace["X"].shape == (2, 2)
    assert np.array_equal(namespace["Y"], expected["Y"][keep])
    assert namespace["failed"] == 1
