"""Pointwise scores: uncertainty U, diversity D, hybrid J, nearest-neighbour spacing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree

from surrogate_al.acquisition import (
    DiversityScore,
    HybridScore,
    NoiseLevels,
    UncertaintyScore,
    expected_nn_spacing,
    hybrid,
    sobol_points,
)
from surrogate_al.acquisition.scores import min_distances
from surrogate_al.errors import ConfigError, ShapeError


@pytest.mark.parametrize("d", [1, 2, 3])
def test_expected_nn_spacing_matches_uniform_points(d: int, rng: np.random.Generator) -> None:
    N = 4000
    X = rng.random((N, d))
    dist, _ = cKDTree(X).query(X, k=2)
    # Interior points only: the Poisson formula ignores the box's faces.
    inner = np.all((X > 0.1) & (X < 0.9), axis=1)
    assert dist[inner, 1].mean() == pytest.approx(expected_nn_spacing(N, d), rel=0.05)


def test_expected_nn_spacing_rejects_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="N >= 1"):
        expected_nn_spacing(0, 2)


def test_uncertainty_is_normalised_epistemic_variance(gp_2d, output_scale_2d) -> None:
    reference = sobol_points(512, 2, seed=7)
    U = UncertaintyScore(gp_2d, reference, output_scale_2d)
    with torch.no_grad():
        pred = gp_2d.predict(reference)
        raw = (pred.epistemic_var / output_scale_2d**2).sum(-1)
        values = U(reference)
    # Only the epistemic part counts, in standardised units, normalised by the reference maximum.
    assert torch.allclose(U.raw(reference), raw, rtol=1e-9)
    assert U.scale_ == pytest.approx(float(raw.max()))
    assert float(values.min()) >= 0.0 and float(values.max()) <= 1.0
    assert float(values.max()) == pytest.approx(1 - math.log(2) / 10, abs=1e-6)
    # Monotone in the raw uncertainty (the soft cap preserves the ranking).
    order = torch.argsort(raw)
    assert bool((values[order].diff() >= -1e-12).all())


def test_uncertainty_is_differentiable_and_bounded_beyond_reference(gp_2d, output_scale_2d) -> None:
    U = UncertaintyScore(gp_2d, sobol_points(64, 2, seed=1), output_scale_2d)
    X = torch.tensor([[0.99, 0.01], [0.5, 0.5]], dtype=torch.float64, requires_grad=True)
    values = U(X)
    values.sum().backward()
    assert X.grad is not None and torch.isfinite(X.grad).all() and X.grad.abs().sum() > 0
    assert bool(((values >= 0) & (values <= 1)).all())


def test_uncertainty_ignores_aleatoric_variance(data_2d) -> None:
    """A GP with a large noise level: U is the epistemic part only, not the total variance."""
    from surrogate_al.surrogates import GaussianProcess

    X, Y = data_2d
    bounds = torch.stack([torch.zeros(2), torch.ones(2)]).double()
    noisy = GaussianProcess(bounds=bounds, noise=0.3).fit(X, Y)
    grid = sobol_points(256, 2, seed=2)
    scale = Y.std(dim=0)
    with torch.no_grad():
        pred = noisy.predict(grid)
        raw = UncertaintyScore(noisy, grid, scale).raw(grid)
    assert float(pred.aleatoric_var.min()) > 0.2 * float(scale[0]) ** 2  # the noise is substantial
    assert torch.allclose(raw, (pred.epistemic_var / scale**2).sum(-1))
    assert bool((raw < (pred.total_var / scale**2).sum(-1) - 0.2).all())


def test_noise_levels_clip_and_detect_homoscedastic_models() -> None:
    epi = torch.tensor([[1.0], [0.5], [0.2]], dtype=torch.float64)
    flat = torch.full((3, 1), 0.01, dtype=torch.float64)
    homo = NoiseLevels(epi, flat, flat[:2])
    assert homo.homoscedastic_
    assert torch.equal(homo.relative_precision(torch.rand(4, 1, dtype=torch.float64)), torch.ones(4, 1, dtype=torch.float64))
    # Heteroscedastic: labelled noise between 0.01 and 0.2; a wild extrapolation is capped.
    labelled = torch.tensor([[0.01], [0.05], [0.2]], dtype=torch.float64)
    hetero = NoiseLevels(epi, torch.tensor([[0.02], [5.0], [1e-9]], dtype=torch.float64), labelled, floor=1e-3)
    assert not hetero.homoscedastic_
    assert float(hetero.eps_) == pytest.approx(1e-3)  # a thousandth of the largest epistemic variance
    sigma2 = hetero.clip(torch.tensor([[5.0], [1e-9], [0.05]], dtype=torch.float64))
    assert sigma2[:, 0].tolist() == pytest.approx([0.2, 1e-3, 0.05])
    assert float(hetero.relative_precision(torch.tensor([[0.2]], dtype=torch.float64))) == pytest.approx(0.25)


def test_uncertainty_rejects_bad_weights(gp_2d, output_scale_2d) -> None:
    with pytest.raises(ConfigError, match="output_weights"):
        UncertaintyScore(gp_2d, sobol_points(8, 2, 0), output_scale_2d, output_weights=torch.tensor([-1.0]))


def test_diversity_is_zero_on_context_and_saturates_far_away() -> None:
    context = torch.tensor([[0.2, 0.2], [0.8, 0.8]], dtype=torch.float64)
    spacing = 0.1
    exact = DiversityScore(context, spacing, smooth=False)
    smooth = DiversityScore(context, spacing)
    X = torch.tensor([[0.2, 0.2], [0.25, 0.2], [0.2, 0.8]], dtype=torch.float64)
    d_exact = exact(X)
    assert float(d_exact[0]) == pytest.approx(0.0, abs=1e-8)
    assert float(d_exact[1]) == pytest.approx(math.tanh(0.05 / spacing))
    assert float(d_exact[2]) > 0.99  # 0.6 = six spacings from either point
    # The soft-min never overstates the distance and stays close to the exact one.
    d_smooth = smooth(X)
    assert bool((d_smooth <= d_exact + 1e-7).all())  # up to the epsilon that keeps gradients finite
    assert torch.allclose(d_smooth, d_exact, atol=0.05)


def test_diversity_without_context_is_one_and_gradient_is_finite_at_a_context_point() -> None:
    empty = DiversityScore(torch.zeros(0, 3, dtype=torch.float64), 0.1)
    assert torch.equal(empty(torch.rand(4, 3, dtype=torch.float64)), torch.ones(4, dtype=torch.float64))
    context = torch.tensor([[0.5, 0.5]], dtype=torch.float64)
    X = context.clone().requires_grad_(True)
    DiversityScore(context, 0.1)(X).sum().backward()
    assert torch.isfinite(X.grad).all()


def test_diversity_with_points_extends_the_context() -> None:
    score = DiversityScore(torch.tensor([[0.1, 0.1]], dtype=torch.float64), 0.1, smooth=False)
    x = torch.tensor([[0.9, 0.9]], dtype=torch.float64)
    assert float(score(x)[0]) > 0.99
    assert float(score.with_points(x)(x)[0]) == pytest.approx(0.0, abs=1e-8)


def test_diversity_rejects_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="spacing"):
        DiversityScore(torch.zeros(1, 2), 0.0)
    with pytest.raises(ShapeError, match="expected a 2-D tensor b x 2"):
        DiversityScore(torch.zeros(1, 2, dtype=torch.float64), 0.1)(torch.zeros(3, dtype=torch.float64))


def test_min_distances_agrees_with_kdtree(rng: np.random.Generator) -> None:
    X, C = rng.random((500, 4)), rng.random((300, 4))
    expected, _ = cKDTree(C).query(X)
    got = min_distances(torch.as_tensor(X), torch.as_tensor(C))
    assert np.allclose(got.numpy(), expected, atol=1e-9)


def test_hybrid_mixes_with_lambda(gp_2d, output_scale_2d) -> None:
    reference = sobol_points(128, 2, seed=5)
    U = UncertaintyScore(gp_2d, reference, output_scale_2d)
    D = DiversityScore(torch.tensor([[0.5, 0.5]], dtype=torch.float64), 0.2)
    X = sobol_points(32, 2, seed=9)
    with torch.no_grad():
        u, dv = U(X), D(X)
        assert torch.allclose(HybridScore(U, D, 1.0)(X), u)
        assert torch.allclose(HybridScore(U, D, 0.0)(X), dv)
        assert torch.allclose(HybridScore(U, D, 0.25)(X), 0.25 * u + 0.75 * dv)
        assert torch.allclose(hybrid(u, dv, 0.25), 0.25 * u + 0.75 * dv)
        half = HybridScore(U, D, 0.25, feasibility=lambda Z: torch.full((Z.shape[0],), 0.5, dtype=Z.dtype))(X)
        assert torch.allclose(half, 0.5 * (0.25 * u + 0.75 * dv))
    with pytest.raises(ConfigError, match="lambda"):
        hybrid(u, dv, 1.2)
