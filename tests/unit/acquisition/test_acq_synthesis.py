"""Membership-query synthesis: multi-start L-BFGS-B over the unit box."""

from __future__ import annotations

import pytest
import torch

from surrogate_al.acquisition import (
    UncertaintyScore,
    sobol_points,
    synthesise,
    top_distinct,
)
from surrogate_al.errors import ConfigError, DataError


def bowl(centre: list[float]):
    c = torch.tensor(centre, dtype=torch.float64)

    def score(X: torch.Tensor) -> torch.Tensor:
        return -((X - c) ** 2).sum(-1)

    return score


def test_synthesis_finds_an_interior_maximum() -> None:
    result = synthesise(bowl([0.3, 0.7, 0.55]), 3, raw_samples=64, restarts=4, seed=0)
    assert torch.allclose(result.X[0], torch.tensor([0.3, 0.7, 0.55], dtype=torch.float64), atol=1e-4)
    assert float(result.values[0]) == pytest.approx(0.0, abs=1e-8)
    # Sorted best first, and better than the best raw sample.
    assert bool((result.values.diff() <= 0).all())
    assert float(result.values[0]) >= float(result.raw_values.max())


def test_synthesis_respects_the_box() -> None:
    """The maximiser of the score lies outside the box: the optimum is the nearest corner."""
    result = synthesise(bowl([1.4, -0.3]), 2, raw_samples=32, restarts=3, seed=1)
    assert bool(((result.X >= 0) & (result.X <= 1)).all())
    assert torch.allclose(result.X[0], torch.tensor([1.0, 0.0], dtype=torch.float64), atol=1e-6)


def test_synthesis_is_reproducible_and_seeded() -> None:
    def wavy(X: torch.Tensor) -> torch.Tensor:
        return torch.sin(7 * X[:, 0]) * torch.cos(5 * X[:, 1])

    a = synthesise(wavy, 2, raw_samples=64, restarts=4, seed=11)
    b = synthesise(wavy, 2, raw_samples=64, restarts=4, seed=11)
    c = synthesise(wavy, 2, raw_samples=64, restarts=4, seed=12)
    assert torch.equal(a.X, b.X) and torch.equal(a.X_raw, b.X_raw)
    assert not torch.equal(a.X_raw, c.X_raw)


def test_synthesis_maximises_gp_uncertainty(gp_2d, output_scale_2d) -> None:
    score = UncertaintyScore(gp_2d, sobol_points(256, 2, seed=4), output_scale_2d)
    result = synthesise(score.raw, 2, raw_samples=256, restarts=4, seed=0)
    dense = sobol_points(4096, 2, seed=5)
    with torch.no_grad():
        best_dense = float(score.raw(dense).max())
    # Gradient polishing beats a 16x denser blind search.
    assert float(result.values[0]) >= best_dense - 1e-9


def test_top_distinct_skips_duplicate_optima() -> None:
    result = synthesise(bowl([0.5, 0.5]), 2, raw_samples=64, restarts=6, seed=0)
    # Every start climbs the same single hill: one optimum, then the best raw samples.
    X, values = top_distinct(result, 4)
    assert X.shape == (4, 2)
    assert torch.allclose(X[0], torch.tensor([0.5, 0.5], dtype=torch.float64), atol=1e-4)
    distances = torch.cdist(X, X) + torch.eye(4, dtype=torch.float64)
    assert float(distances.min()) > 1e-3
    assert bool((values.diff() <= 1e-12).all())


def test_synthesis_rejects_bad_options() -> None:
    with pytest.raises(ConfigError, match="restarts = 9 exceeds raw_samples = 8"):
        synthesise(bowl([0.5]), 1, raw_samples=8, restarts=9)
    with pytest.raises(ConfigError, match="raw_samples"):
        synthesise(bowl([0.5]), 1, raw_samples=0)
    with pytest.raises(ConfigError, match="d = 0"):
        synthesise(bowl([0.5]), 0)
    with pytest.raises(DataError, match="one per point"):
        synthesise(lambda X: X.sum(), 2, raw_samples=8, restarts=2)


def test_warm_synthesis_rescores_only_what_can_still_make_a_start() -> None:
    """A second synthesis of a smaller score reuses the raw samples, with the old values as bounds."""
    first_score = bowl([0.3, 0.3])
    first = synthesise(first_score, 2, raw_samples=256, restarts=4, seed=0)

    calls = []

    def second_score(X: torch.Tensor) -> torch.Tensor:
        # Never above the first score: a dent around the first optimum (as a greedy step makes).
        calls.append(X.shape[0])
        dent = 0.5 * torch.exp(-((X - first.X[0]) ** 2).sum(-1) / 0.02)
        return first_score(X) - dent

    second = synthesise(second_score, 2, raw_samples=256, restarts=4, seed=0, previous=first, chunk_size=64)
    screened = sum(c for c in calls if c > 4)  # L-BFGS-B calls score the 4 starts only
    assert screened < 256  # not every raw point had to be re-scored
    assert torch.equal(second.X_raw, first.X_raw)
    with torch.no_grad():
        exact = second_score(first.X_raw)
    # Stored raw values stay upper bounds, and are exact for every raw point good enough to start from.
    assert bool((second.raw_values >= exact - 1e-12).all())
    fourth_best = float(torch.topk(exact, 4).values[-1])
    good = exact >= fourth_best
    assert torch.allclose(second.raw_values[good], exact[good])
    # The dent moved the optimum away from the first one.
    assert float(torch.dist(second.X[0], first.X[0])) > 0.05
