"""Checkpoint contents <-> the store's two payloads, and resuming from checkpoints in the stored layout."""

from __future__ import annotations

import logging
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from surrogate_al.campaign import Campaign
from surrogate_al.campaign.checkpoint import ROUND_KEY, CheckpointContents, ProposalRound
from surrogate_al.config import load_workflow
from surrogate_al.errors import CampaignError
from surrogate_al.state_bytes import state_from_bytes, state_to_bytes
from surrogate_al.store import CampaignStore, Checkpoint

LEGACY = Path(__file__).parents[2] / "data" / "legacy_store" / "legacy.h5"

#: A proposal round as the store's ``policy_state`` payload carries it (plain data only).
PLAIN_ROUND = {
    "first_id": 6,
    "unit": [[0.25, 0.75], [0.5, 0.125]],
    "source": "default",
    "U": [0.5, 0.25],
    "D": [0.125, 0.0625],
    "J": [0.3, 0.2],
    "lam": 0.75,
}


def _record(surrogate_state: bytes, policy_state: bytes) -> Checkpoint:
    return Checkpoint(version=3, n_results=5, created=0.0, surrogate_state=surrogate_state, policy_state=policy_state)


def test_a_round_travels_under_the_reserved_key_of_the_policy_payload() -> None:
    round_ = ProposalRound.from_plain(PLAIN_ROUND)
    contents = CheckpointContents(version=3, n_results=5, surrogate_state={"w": torch.ones(2)},
                                  policy_state={"count": 4}, round=round_)
    surrogate_bytes, policy_bytes = contents.payloads()
    assert state_from_bytes(policy_bytes) == {"count": 4, ROUND_KEY: PLAIN_ROUND}
    back = CheckpointContents.from_record(_record(surrogate_bytes, policy_bytes))
    assert back.policy_state == {"count": 4} and back.round is not None
    assert back.round.to_plain() == PLAIN_ROUND
    torch.testing.assert_close(back.surrogate_state["w"], torch.ones(2))


def test_a_checkpoint_without_a_round_or_a_surrogate() -> None:
    surrogate_bytes, policy_bytes = CheckpointContents(0, 0, None, {"count": 1}).payloads()
    assert surrogate_bytes == b"" and state_from_bytes(policy_bytes) == {"count": 1}
    back = CheckpointContents.from_record(_record(surrogate_bytes, policy_bytes))
    assert back.round is None and back.surrogate_state is None and back.policy_state == {"count": 1}


def test_a_policy_state_may_not_use_the_reserved_key() -> None:
    with pytest.raises(CampaignError, match=ROUND_KEY):
        CheckpointContents(0, 0, None, {ROUND_KEY: 1}).payloads()


def _workflow(tmp_path: Path) -> Path:
    path = tmp_path / "t.toml"
    path.write_text(textwrap.dedent("""
        [campaign]
        name = "t"
        budget = 8
        concurrency = 2
        initial_design = { size = 4 }
        store = "t.h5"

        [simulator]
        kind = "python"
        function = "campaign_helpers:branin"
        outputs = ["y"]

        [simulator.inputs]
        x1 = { low = -5.0, high = 10.0 }
        x2 = { low = 0.0, high = 15.0 }

        [acquisition]
        policy = "sobol"
        """))
    return path


def test_resume_records_the_round_of_a_checkpoint_in_the_stored_layout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A checkpoint whose policy payload holds an interrupted round (written by hand, byte for byte as stored)."""
    monkeypatch.chdir(tmp_path)
    c = Campaign.create(load_workflow(_workflow(tmp_path)))
    for trial in c.ask(4):
        c.tell(trial, c.simulator(trial.inputs))
    policy_state = dict(c.policy.state_dict())
    c.close()
    plain = dict(PLAIN_ROUND, first_id=4, source="sobol")
    with CampaignStore.open(tmp_path / "t.h5", mode="a") as store:
        store.save_checkpoint(version=1, n_results=0, surrogate_state=b"",
                              policy_state=state_to_bytes({**policy_state, ROUND_KEY: plain}))
    with caplog.at_level(logging.WARNING, logger="surrogate_al.campaign"):
        resumed = Campaign.resume(tmp_path / "t.h5")
    try:
        assert "recording the 2 proposals of the round a kill interrupted" in caplog.text
        assert list(resumed.queue_) == [4, 5]
    finally:
        resumed.close()
    with CampaignStore.open(tmp_path / "t.h5", mode="r") as store:
        proposals = store.proposals()
    assert [p.source for p in proposals] == ["initial"] * 4 + ["sobol"] * 2
    np.testing.assert_allclose(np.array([p.unit for p in proposals[4:]]), plain["unit"])
    assert [p.lam for p in proposals[4:]] == [0.75, 0.75]


def test_the_legacy_store_resumes_as_a_finished_campaign(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    shutil.copyfile(LEGACY, tmp_path / "legacy.h5")
    c = Campaign.resume(tmp_path / "legacy.h5")
    try:
        assert len(c.ledger_.settled) == 14 and c.done() and not c.queue_
        assert c.fitted_on_ == 14 and c.policy.surrogate.selected_at_n_ == 14
        assert c.fit_final_model() is False  # the stored model is already fitted and chosen on all 14 runs
    finally:
        c.close()
