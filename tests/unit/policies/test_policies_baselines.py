"""The baselines, the registry, state round trips and the validation of requests and proposals."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from policy_helpers import ensemble, f2, gp

from surrogate_al.acquisition import expected_nn_spacing
from surrogate_al.acquisition.qnipv import IndependentOutputsQNIPV
from surrogate_al.state_bytes import state_from_bytes, state_to_bytes
from surrogate_al.data import Dataset
from surrogate_al.errors import ConfigError, ShapeError
from surrogate_al.policies import (
    POLICIES,
    ModelPolicyLike,
    PolicyLike,
    Proposal,
    QNIPVPolicy,
    RandomPolicy,
    SobolPolicy,
    UncertaintyPolicy,
    make_policy,
)


# ----------------------------------------------------------------------------------------
# baselines and the registry
@pytest.mark.parametrize("name", POLICIES)
def test_every_policy_returns_n_points_in_the_box(name: str, data_2d, fitted_gp_2d) -> None:
    options = {"raw_samples": 128, "restarts": 4} if name in ("default", "uncertainty", "qnipv") else {}
    surrogate = fitted_gp_2d if name not in ("random", "sobol") else None
    policy = make_policy(name, surrogate, seed=3, **options)
    assert isinstance(policy, PolicyLike)
    assert policy.needs_model is (name not in ("random", "sobol"))
    pending = np.array([[0.5, 0.5]])
    proposal = policy.propose(data_2d, 3, pending=pending, progress=0.5)
    assert isinstance(proposal, Proposal)
    assert proposal.X.shape == (3, 2)
    assert bool(((proposal.X >= 0) & (proposal.X <= 1)).all())
    assert proposal.U.shape == proposal.D.shape == proposal.J.shape == (3,)
    assert bool(np.isfinite(proposal.D).all())
    if name in ("random", "sobol", "qnipv"):
        assert np.isnan(proposal.J).all() and math.isnan(proposal.lam)
    else:
        assert np.isfinite(proposal.J).all() and 0 <= proposal.lam <= 1


def test_sobol_baseline_continues_one_sequence_reproducibly(data_2d) -> None:
    a, b = SobolPolicy(seed=5), SobolPolicy(seed=5)
    first = np.vstack([a.propose(data_2d, 3).X, a.propose(data_2d, 5).X])
    second = b.propose(data_2d, 8).X
    assert np.array_equal(first, second)  # 3 + 5 continue exactly like 8 at once
    assert len({tuple(x) for x in first}) == 8
    restored = SobolPolicy(seed=5).load_state_dict(a.state_dict())
    assert np.array_equal(restored.propose(data_2d, 4).X, a.propose(data_2d, 4).X)
    assert not np.array_equal(SobolPolicy(seed=6).propose(data_2d, 8).X, second)


def test_random_baseline_is_seeded_and_moves_on(data_2d) -> None:
    a, b = RandomPolicy(seed=1), RandomPolicy(seed=1)
    x1, y1 = a.propose(data_2d, 4).X, b.propose(data_2d, 4).X
    assert np.array_equal(x1, y1)
    assert not np.array_equal(a.propose(data_2d, 4).X, x1)


@pytest.mark.parametrize("kind", ["default", "uncertainty"])
def test_state_dict_round_trip_continues_identically(kind: str, data_2d, fitted_gp_2d) -> None:
    options = {"raw_samples": 128, "restarts": 4, "seed": 2}
    X_failed = np.array([[0.95, 0.95]])
    data = Dataset(X=data_2d.X, Y=data_2d.Y, X_failed=X_failed)
    original = make_policy(kind, fitted_gp_2d, **options)
    original.fit(data)
    original.propose(data, 2)
    # The campaign stores the state with torch.save and reads it back with weights_only=True.
    state = state_from_bytes(state_to_bytes(original.state_dict()))
    # A resumed campaign: a fresh policy and a surrogate restored from its own state.
    model = gp(2).load_state_dict(fitted_gp_2d.state_dict())
    resumed = make_policy(kind, model, **options).load_state_dict(state)
    assert resumed.state_dict()["counter"] == 1
    assert np.allclose(resumed.propose(data, 3, progress=0.5).X, original.propose(data, 3, progress=0.5).X)


def test_qnipv_uses_pending_points(data_2d, fitted_gp_2d) -> None:
    policy = QNIPVPolicy(fitted_gp_2d, raw_samples=64, restarts=2, mc_points=128, seed=0)
    free = policy.propose(data_2d, 1).X
    busy = QNIPVPolicy(fitted_gp_2d, raw_samples=64, restarts=2, mc_points=128, seed=0).propose(
        data_2d, 1, pending=free
    ).X
    assert float(np.linalg.norm(busy - free)) > 0.1


@pytest.mark.parametrize("which", ["gp", "ensemble"])
def test_independent_outputs_qnipv_equals_botorch_scalarised_qnipv(which: str) -> None:
    """The fast multi-output qNIPV gives BoTorch's value (its per-point t-batch path) on every surrogate kind."""
    from botorch.acquisition.active_learning import qNegIntegratedPosteriorVariance
    from botorch.acquisition.objective import ScalarizedPosteriorTransform

    from surrogate_al.surrogates.botorch_adapter import SurrogateModel

    rng = np.random.default_rng(3)
    X = rng.random((16, 2))
    Y = np.hstack([f2(X), 5.0 * np.sin(2 * X[:, 1:2]) * X[:, :1]])
    surrogate = (gp(2) if which == "gp" else ensemble(2)).fit(torch.as_tensor(X), torch.as_tensor(Y))
    model = SurrogateModel(surrogate)
    mc = torch.as_tensor(rng.random((64, 2)))
    weights = torch.tensor([1.0, 0.2], dtype=torch.float64)
    pending = torch.as_tensor(rng.random((2, 2)))
    candidates = torch.as_tensor(rng.random((5, 3, 2)))
    fast = IndependentOutputsQNIPV(model, mc_points=mc, weights=weights, X_pending=pending)(candidates)
    reference = qNegIntegratedPosteriorVariance(
        model, mc_points=mc, posterior_transform=ScalarizedPosteriorTransform(weights=weights), X_pending=pending
    )(candidates)
    assert fast.shape == (5,)
    assert torch.allclose(fast, reference, rtol=1e-6, atol=1e-12)
    assert fast.std() > 1e-3 * fast.abs().mean()  # the batches differ: the comparison is not of constants


def test_uncertainty_baseline_ignores_diversity(data_1d_left) -> None:
    """Pure epistemic top-q: the points crowd the single uncertainty peak."""
    policy = UncertaintyPolicy(gp(1), raw_samples=128, restarts=4).fit(data_1d_left)
    proposal = policy.propose(data_1d_left, 3)
    assert float(np.ptp(proposal.X)) < expected_nn_spacing(9, 1)
    assert proposal.lam == 1.0 and np.allclose(proposal.J, proposal.U)


# ----------------------------------------------------------------------------------------
# validation
def test_make_policy_rejects_unknown_names_and_options() -> None:
    with pytest.raises(ConfigError, match=r"'bald' is unknown.*default.*random.*sobol.*uncertainty.*qnipv"):
        make_policy("bald")
    with pytest.raises(ConfigError, match=r"does not take options \['temperature'\]"):
        make_policy("sobol", temperature=2.0)


def test_propose_rejects_bad_requests(data_2d) -> None:
    policy = RandomPolicy()
    with pytest.raises(ConfigError, match="n = 0"):
        policy.propose(data_2d, 0)
    with pytest.raises(ShapeError, match="pending has shape"):
        policy.propose(data_2d, 1, pending=np.zeros((2, 3)))
    with pytest.raises(ShapeError, match="inside the unit cube"):
        policy.propose(data_2d, 1, pending=np.array([[0.5, 1.5]]))
    with pytest.raises(ConfigError, match="progress"):
        policy.propose(data_2d, 1, progress=2.0)
    with pytest.raises(ConfigError, match="'sobol' policy"):
        policy.load_state_dict(SobolPolicy().state_dict())


def test_proposal_validates_shapes() -> None:
    with pytest.raises(ShapeError, match=r"Proposal.U has shape \(2,\); expected \(3,\)"):
        Proposal(X=np.zeros((3, 2)), U=np.zeros(2), D=np.zeros(3), J=np.zeros(3), lam=0.5, method="x")
    proposal = Proposal(X=np.zeros((1, 2)), U=[0.1], D=[0.2], J=[0.3], lam=0.5, method="x")
    with pytest.raises(ValueError):
        proposal.X[0, 0] = 1.0  # read-only: a proposal is a record


def test_qnipv_round_does_not_depend_on_the_global_torch_generator(data_2d, fitted_gp_2d) -> None:
    """optimize_acqf draws its starts from torch's global generator, seeded per process at random."""
    proposals = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        policy = QNIPVPolicy(fitted_gp_2d, raw_samples=64, restarts=4, mc_points=64, maxiter=20, seed=0)
        proposals.append(policy.propose(data_2d, 3).X)
    assert np.array_equal(proposals[0], proposals[1])


@pytest.mark.parametrize("name", POLICIES)
def test_model_policies_declare_their_surrogate_by_protocol(name: str) -> None:
    policy = make_policy(name)
    assert isinstance(policy, PolicyLike)
    assert isinstance(policy, ModelPolicyLike) is policy.needs_model
