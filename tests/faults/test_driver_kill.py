"""SIGKILL of a synchronous driver right after its N-th durable result, then resume.

The bar: the resumed campaign is indistinguishable from one that was never
interrupted. Same number of runs (exactly the budget, no proposal settled
twice), bit-identical inputs and outputs in the same proposal order, and the
same final surrogate (predictions within 1e-6).

How the kill is made precise: the initial design has an odd size and batches
hold two points, so result N ends a batch. ``fault_sims:gated_branin`` blocks
every simulator call after the N-th (the gate is armed by environment
variables given to the first driver only). The driver records result N,
fits, proposes and submits the next batch, whose runs then hang. The test
waits until both hung runs have started and the store holds N results, and
SIGKILLs the driver. The store is read after the kill to confirm it held
exactly N.

A kill can also fall between two writes of a proposal round (fit metrics,
checkpoint, proposals, submissions). The journal left by the kill above,
cut after any of its records, is exactly what a kill at that moment leaves;
resuming from every such cut must give the same campaign too.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from surrogate_al.campaign.build import restore_surrogate
from surrogate_al.store import CampaignStore

from .helpers import assert_exactly_budget, cli, kill_when_gate_holds, write_workflow

BATCH = 2


def _workflow(directory: Path, budget: int, design_size: int) -> Path:
    directory.mkdir()
    return write_workflow(
        directory, name="drv", budget=budget, mode="sync", batch_size=BATCH, design_size=design_size,
        function="fault_sims:gated_branin", seed=0,
    )


def reference_run(directory: Path, *, budget: int, design_size: int) -> Path:
    """An uninterrupted campaign; returns its store."""
    wf = _workflow(directory, budget, design_size)
    res = cli("run", str(wf), "--no-progress")
    assert res.returncode == 0, res.stderr
    assert_exactly_budget(wf.with_suffix(".h5"), budget)
    return wf.with_suffix(".h5")


def killed_run(directory: Path, gate: Path, *, budget: int, kill_after: int, design_size: int) -> Path:
    """The same campaign SIGKILLed right after its ``kill_after``-th result; returns its store."""
    # Result `kill_after` must end a batch: the design is one batch, then batches of BATCH.
    assert kill_after >= design_size and (kill_after - design_size) % BATCH == 0
    wf = _workflow(directory, budget, design_size)
    store = wf.with_suffix(".h5")
    gate.mkdir()
    rc = kill_when_gate_holds(wf, gate, after=kill_after, batch=BATCH)
    assert rc == -9, "the driver was not ended by the kill"
    with CampaignStore.open(store, mode="r") as st:
        assert len(st.final_runs()) == kill_after, f"the store held {len(st.final_runs())} results at the kill"
        # The hung batch is durable as proposals without runs: resume must run those, not propose anew.
        assert st.pending_proposal_ids() == [kill_after, kill_after + 1]
        assert len(st.proposals()) == kill_after + BATCH
        assert st.state()[0] == "running"  # nobody recorded an end: a crash
    return store


def resume_and_compare(ref_store: Path, store: Path, *, budget: int, kill_after: int) -> tuple[float, str]:
    """Resume ``store`` to the budget and compare it with the uninterrupted ``ref_store``.

    Returns:
        The largest difference between the two final surrogates' predictions, and the resume's stderr.
    """
    with CampaignStore.open(store, mode="r") as st:
        at_kill = {r.proposal_id: r.run_id for r in st.final_runs()}
    assert len(at_kill) == kill_after
    res = cli("resume", str(store), "--no-progress")
    assert res.returncode == 0, res.stderr
    assert "dropping the torn" not in res.stderr  # a kill between records tears nothing
    assert_exactly_budget(store, budget)

    with CampaignStore.open(ref_store, mode="r") as a, CampaignStore.open(store, mode="r") as b:
        pa, pb = a.proposals(), b.proposals()
        key = [(p.proposal_id, p.batch_id, p.source) for p in pa]
        assert key == [(p.proposal_id, p.batch_id, p.source) for p in pb]
        assert np.array_equal(np.array([p.unit for p in pa]), np.array([p.unit for p in pb]))
        for score in ("U", "D", "J", "lam"):
            assert np.array_equal([getattr(p, score) for p in pa], [getattr(p, score) for p in pb], equal_nan=True)
        ra = sorted(a.final_runs(), key=lambda r: r.proposal_id)
        rb = sorted(b.final_runs(), key=lambda r: r.proposal_id)
        assert [r.proposal_id for r in ra] == [r.proposal_id for r in rb] == list(range(budget))
        assert np.array_equal(np.array([r.inputs for r in ra]), np.array([r.inputs for r in rb]))
        assert np.array_equal(np.array([r.outputs for r in ra]), np.array([r.outputs for r in rb]))
        assert [r.status for r in rb] == ["ok"] * budget
        # Runs before the kill kept their records: nothing was run twice.
        assert {r.proposal_id: r.run_id for r in rb if r.proposal_id in at_kill} == at_kill
        assert len(b.runs()) == budget

    X = torch.as_tensor(np.random.default_rng(2024).random((200, 2)))
    mean_a, std_a, version_a = _predictions(ref_store, X)
    mean_b, std_b, version_b = _predictions(store, X)
    assert version_a == version_b, "the resumed campaign fitted a different number of times"
    gap = float(max(np.max(np.abs(mean_a - mean_b)), np.max(np.abs(std_a - std_b))))
    assert gap <= 1e-6, f"final surrogates differ by {gap:.3g} after resume"
    return gap, res.stderr


def _predictions(store: Path, X: torch.Tensor) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Mean and epistemic std of the store's latest surrogate at ``X``, and (version, n_results) of its checkpoint."""
    with CampaignStore.open(store, mode="r") as st:
        _, surrogate = restore_surrogate(st)
        checkpoint = st.latest_checkpoint()
    assert checkpoint is not None
    with torch.no_grad():
        pred = surrogate.predict(X)
    return (pred.mean.double().numpy(), pred.epistemic_var.double().sqrt().numpy(),
            (checkpoint.version, checkpoint.n_results))


def copy_campaign(store: Path, target: Path) -> Path:
    """A copy of a killed campaign's directory (store, journal, lock); returns the copied store."""
    shutil.copytree(store.parent, target)
    return target / store.name


def round_records(store: Path) -> tuple[list[bytes], int]:
    """The journal's lines and the index of the last final-run line (the proposal round follows it)."""
    lines = Path(f"{store}.journal").read_bytes().splitlines(keepends=True)
    kinds = [json.loads(line)["kind"] for line in lines]
    last_run = max(i for i, k in enumerate(kinds) if k == "run")
    return lines, last_run


def cut_journal_after(store: Path, line: int) -> str:
    """Keep the journal up to and including ``line`` (0-based): a kill right after that write. Returns its kind."""
    journal = Path(f"{store}.journal")
    lines = journal.read_bytes().splitlines(keepends=True)
    journal.write_bytes(b"".join(lines[: line + 1]))
    return str(json.loads(lines[line])["kind"])


SMALL = {"budget": 16, "kill_after": 9, "design_size": 9}


@pytest.fixture(scope="module")
def small_reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted small campaign."""
    return reference_run(tmp_path_factory.mktemp("small") / "reference", budget=SMALL["budget"],
                         design_size=SMALL["design_size"])


@pytest.fixture(scope="module")
def small_killed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small campaign killed right after its 9th result (the end of the design); not to be resumed in place."""
    root = tmp_path_factory.mktemp("small-killed")
    return killed_run(root / "killed", root / "gate", **SMALL)


def test_sync_driver_killed_after_9th_of_16_resumes_identically(
    small_reference: Path, small_killed: Path, tmp_path: Path
) -> None:
    store = copy_campaign(small_killed, tmp_path / "c")
    gap, _ = resume_and_compare(small_reference, store, budget=SMALL["budget"], kill_after=9)
    print(f"driver killed after 9 of {SMALL['budget']}: max prediction difference after resume {gap:.3g}")


def test_kill_between_checkpoint_and_proposals_resumes_identically(
    small_reference: Path, small_killed: Path, tmp_path: Path
) -> None:
    """The narrowest window of a round: its checkpoint is durable, its proposals are not."""
    store = copy_campaign(small_killed, tmp_path / "c")
    lines, _ = round_records(store)
    kinds = [json.loads(line)["kind"] for line in lines]
    at = max(i for i, k in enumerate(kinds) if k == "checkpoint")
    assert kinds[at + 1] == "proposals", kinds[at:]
    cut_journal_after(store, at)
    with CampaignStore.open(store, mode="r") as st:
        assert len(st.proposals()) == 9  # the round's points exist only inside its checkpoint
    _, stderr = resume_and_compare(small_reference, store, budget=SMALL["budget"], kill_after=9)
    assert "recording the 2 proposals of the round a kill interrupted" in stderr


@pytest.mark.slow
def test_kill_after_every_write_of_a_proposal_round_resumes_identically(
    small_reference: Path, small_killed: Path, tmp_path: Path
) -> None:
    lines, last_run = round_records(small_killed)
    cuts = range(last_run, len(lines) - 1)  # right after the 9th result, ..., before the last submission
    assert len(cuts) >= 4, [json.loads(line)["kind"] for line in lines[last_run:]]
    for cut in cuts:
        store = copy_campaign(small_killed, tmp_path / f"cut{cut}")
        kind = cut_journal_after(store, cut)
        try:
            resume_and_compare(small_reference, store, budget=SMALL["budget"], kill_after=9)
        except AssertionError as exc:
            raise AssertionError(f"kill right after the {kind!r} record (journal line {cut + 1}): {exc}") from exc


@pytest.mark.slow
def test_sync_driver_killed_after_37th_of_100_resumes_identically(tmp_path: Path) -> None:
    ref = reference_run(tmp_path / "reference", budget=100, design_size=9)
    store = killed_run(tmp_path / "killed", tmp_path / "gate", budget=100, kill_after=37, design_size=9)
    gap, _ = resume_and_compare(ref, store, budget=100, kill_after=37)
    print(f"driver killed after 37 of 100: max prediction difference after resume {gap:.3g}")
