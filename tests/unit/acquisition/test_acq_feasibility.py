"""Feasibility: p(success | x) from failed runs, and a policy that stops sending points where runs fail."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from surrogate_al.acquisition import FeasibilityModel, sobol_points
from surrogate_al.data import Dataset
from surrogate_al.errors import DataError, NotFittedError, ShapeError
from surrogate_al.policies import Policy
from surrogate_al.surrogates import GaussianProcess


def in_corner(X: np.ndarray) -> np.ndarray:
    """The simulator crashes for x1 > 0.7 and x2 > 0.7 (9 % of the box)."""
    return (X[:, 0] > 0.7) & (X[:, 1] > 0.7)


def simulator(X: np.ndarray) -> np.ndarray:
    return np.sin(3 * X[:, :1]) + np.cos(4 * X[:, 1:2]) + 2 * X[:, :1] * X[:, 1:2]


def split(X: np.ndarray) -> Dataset:
    bad = in_corner(X)
    return Dataset(X=X[~bad], Y=simulator(X[~bad]), X_failed=X[bad])


def test_feasibility_model_separates_failing_corner() -> None:
    X = sobol_points(64, 2, seed=0).numpy()
    bad = in_corner(X)
    model = FeasibilityModel().fit(X[~bad], X[bad])
    grid = torch.as_tensor(np.random.default_rng(0).random((2000, 2)))
    with torch.no_grad():
        p = model.predict_proba(grid)
    assert bool(((p > 0) & (p < 1)).all())
    corner = torch.as_tensor(in_corner(grid.numpy()))
    deep = corner & (grid.min(dim=1).values > 0.8)
    safe = grid.max(dim=1).values < 0.55
    assert float(p[deep].max()) < 0.25
    assert float(p[safe].min()) > 0.75
    assert float(p[corner].mean()) < 0.5 < float(p[~corner].mean())


def test_feasibility_is_differentiable_and_round_trips() -> None:
    X = sobol_points(32, 2, seed=1).numpy()
    bad = in_corner(X)
    model = FeasibilityModel().fit(X[~bad], X[bad])
    x = torch.tensor([[0.75, 0.72], [0.3, 0.4]], dtype=torch.float64, requires_grad=True)
    model.predict_proba(x).sum().backward()
    assert torch.isfinite(x.grad).all() and float(x.grad.abs().sum()) > 0
    # Moving towards the failing corner lowers p.
    assert float(x.grad[0].sum()) < 0
    restored = FeasibilityModel().load_state_dict(model.state_dict())
    with torch.no_grad():
        assert torch.equal(restored(x), model(x))


def test_far_from_data_probability_is_the_success_rate() -> None:
    """A symmetric cluster (no trend): far away on either side p is the observed success rate 8/9."""
    grid = np.linspace(0.45, 0.55, 9)[:, None]
    ok, bad = np.delete(grid, 4, axis=0), grid[4:5]
    model = FeasibilityModel(lengthscale=0.02).fit(ok, bad)
    with torch.no_grad():
        far = model.predict_proba(torch.tensor([[0.02], [0.98]], dtype=torch.float64))
        centre = float(model.predict_proba(torch.tensor([[0.5]], dtype=torch.float64))[0])
    assert far.numpy() == pytest.approx([8 / 9, 8 / 9], abs=0.01)
    assert centre < 0.5


def test_feasibility_rejects_bad_input() -> None:
    with pytest.raises(DataError, match="X_failed is empty"):
        FeasibilityModel().fit(np.zeros((3, 2)), np.zeros((0, 2)))
    with pytest.raises(ShapeError, match="same d"):
        FeasibilityModel().fit(np.zeros((3, 2)), np.zeros((1, 3)))
    with pytest.raises(NotFittedError, match="call fit"):
        FeasibilityModel().predict_proba(torch.zeros(1, 2))


def run_failing_corner_campaign(policy: Policy, rounds: int, q: int) -> np.ndarray:
    """Initial Sobol design of 20 points, then ``rounds`` batches of ``q``, refitting in between."""
    X = sobol_points(20, 2, seed=7).numpy()
    proposed = []
    for round_ in range(rounds):
        data = split(X)
        policy.fit(data)
        proposal = policy.propose(data, q, progress=round_ / rounds)
        proposed.append(proposal.X)
        X = np.vstack([X, proposal.X])
    assert policy.feasibility_ is not None
    return np.vstack(proposed)


def corner_gp() -> GaussianProcess:
    return GaussianProcess(bounds=torch.stack([torch.zeros(2), torch.ones(2)]).double(), noise=1e-4, seed=0)


def test_policy_stops_proposing_in_a_failing_region() -> None:
    """A GP campaign on a simulator that crashes in the corner x1, x2 > 0.7 (pool mode).

    Initial Sobol design of 20 points (with its failures), then 5 rounds of 8
    proposals from a pool of 2048 candidates, refitting after each round with
    the new results and failures: fewer than 10 % of the 40 proposals land in
    the corner, although the corner, where no run has succeeded, is where the
    surrogate is most uncertain (a space-filling design would put 9 % there).
    """
    pool = np.random.default_rng(11).random((2048, 2))
    policy = Policy(corner_gp(), mode="pool", candidates=pool, seed=0)
    proposed = run_failing_corner_campaign(policy, rounds=5, q=8)
    assert proposed.shape == (40, 2)
    assert int(in_corner(proposed).sum()) < 4


def test_policy_stops_synthesising_in_a_failing_region() -> None:
    """The same campaign with synthesised queries (the default mode)."""
    policy = Policy(corner_gp(), raw_samples=256, restarts=4, maxiter=60, seed=0)
    proposed = run_failing_corner_campaign(policy, rounds=5, q=8)
    assert proposed.shape == (40, 2)
    assert int(in_corner(proposed).sum()) < 4
