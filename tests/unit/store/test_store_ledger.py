"""Tests of the in-memory ledger: exactly one final run per proposal, pending ids, checkpoints kept."""

from __future__ import annotations

from pathlib import Path

import h5py
import pytest
from store_helpers import INPUTS, OUTPUTS, add_points, assert_one_line, run_failed, run_ok

from surrogate_al.errors import StoreError
from surrogate_al.store import CampaignStore


def test_a_proposal_gets_exactly_one_final_run_even_after_reopen(store: CampaignStore, path: Path) -> None:
    add_points(store, 2)
    run_failed(store, 0)  # non-final attempt
    run_ok(store, 0, attempt=2)
    with pytest.raises(StoreError) as info:
        run_ok(store, 0, attempt=3)
    assert_one_line(info.value, "proposal_id 0", "already settled by run 1")
    run_failed(store, 1)
    with pytest.raises(StoreError, match="already has attempt 1"):
        run_failed(store, 1)
    with pytest.raises(StoreError, match="unknown proposal_id 7"):
        run_failed(store, 7)
    with pytest.raises(StoreError, match="already settled"):
        store.mark_submitted(0, 4, 1.0)
    store.close()
    with CampaignStore.open(path, "a") as again:
        with pytest.raises(StoreError, match="already settled"):
            run_ok(again, 0, attempt=9)
        assert len(again.runs()) == 3 and again.pending_proposal_ids() == [1]

def test_pending_ids_follow_proposal_order_and_survive_reopen(store: CampaignStore, path: Path) -> None:
    add_points(store, 5)
    run_ok(store, 3)
    run_failed(store, 1)  # not final: still pending
    run_failed(store, 0, final=True)
    assert store.pending_proposal_ids() == [1, 2, 4]
    store.close()
    assert CampaignStore.open(path).pending_proposal_ids() == [1, 2, 4]

def test_only_the_latest_checkpoints_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "c.h5"
    with CampaignStore.create(path, spec={}, input_names=INPUTS, output_names=OUTPUTS, keep_checkpoints=2) as store:
        for v in range(5):
            store.save_checkpoint(version=v, n_results=v, surrogate_state=bytes([v]) * 100, policy_state=b"p")
    with h5py.File(path, "r") as f:
        assert f["checkpoints/version"][()].tolist() == [3, 4]
    latest = CampaignStore.open(path).latest_checkpoint()
    assert latest is not None and latest.version == 4 and latest.surrogate_state == bytes([4]) * 100
