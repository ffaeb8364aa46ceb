"""Greedy submodular batches: the (1 - 1/e) bound, diminishing returns, lazy = plain greedy."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from surrogate_al.acquisition import (
    BatchObjective,
    expected_nn_spacing,
    greedy_pool,
    greedy_synthesis,
    information_gain,
    sobol_points,
)
from surrogate_al.errors import ConfigError


def objective(
    surrogate, lam: float, data_2d, pending=None, reference_n: int = 256, information: str = "variance"
) -> BatchObjective:
    X, Y = data_2d
    return BatchObjective(
        surrogate, lam, sobol_points(reference_n, 2, seed=21), Y.std(dim=0),
        X_known=X, X_pending=pending, X_labelled=X, lengthscale=expected_nn_spacing(X.shape[0] + 8, 2),
        information=information,
    )


def test_greedy_information_gain_is_within_one_minus_one_over_e_of_the_best_batch(gp_2d, data_2d) -> None:
    """λ = 1 on a GP, pool of 30, q = 3: greedy log-det vs exhaustive search over all 4060 triples."""
    obj = objective(gp_2d, 1.0, data_2d, information="logdet")
    pool = sobol_points(30, 2, seed=8)
    greedy = greedy_pool(obj, pool, 3)
    with torch.no_grad():
        K = gp_2d.joint_epistemic_covariance(pool)  # 1 x 30 x 30, standardised units
        noise = obj.noise(pool).transpose(0, 1)  # 1 x 30
    # A near-deterministic GP: the noise sits at the floor, where the gains are exactly those of IG.
    assert torch.allclose(noise, obj.eps_.view(-1, 1).expand_as(noise))
    triples = torch.tensor(list(itertools.combinations(range(30), 3)))
    sub = K[0][triples.unsqueeze(-1), triples.unsqueeze(-2)]  # 4060 x 3 x 3
    root = noise[0][triples].rsqrt()
    scaled = sub * root.unsqueeze(-1) * root.unsqueeze(-2) + torch.eye(3, dtype=sub.dtype)
    all_ig = 0.5 * torch.linalg.slogdet(scaled).logabsdet
    best = float(all_ig.max())
    greedy_ig = float(information_gain(K[0][greedy.indices][:, greedy.indices].unsqueeze(0), noise[:, greedy.indices]))
    assert greedy_ig >= (1 - 1 / math.e) * best
    assert greedy_ig <= best + 1e-9
    # value() reports the same quantity in normalised units.
    assert obj.value(pool[greedy.indices]) == pytest.approx(greedy_ig / obj.scale_ig_, rel=1e-9)


def nested_set_gains(obj: BatchObjective, rounds: int = 25) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Gains ``(gain(x | A), gain(x | B))`` of 4 points ``x`` for random nested sets ``A ⊂ B`` of a Sobol pool."""
    pool = sobol_points(64, 2, seed=13)
    gen = np.random.default_rng(5)
    for _ in range(rounds):
        order = gen.permutation(64)
        b_size = int(gen.integers(2, 9))
        a_size = int(gen.integers(0, b_size))
        B, A, x = order[:b_size], order[:a_size], order[b_size : b_size + 4]
        with torch.no_grad():
            yield obj.gain(pool[x], pool[A]), obj.gain(pool[x], pool[B])


@pytest.mark.parametrize("lam", [1.0, 0.5, 0.0])
@pytest.mark.parametrize("model", ["gp_2d", "ensemble_2d"])
def test_marginal_gains_diminish_on_random_nested_sets(model: str, lam: float, data_2d, request) -> None:
    """gain(x | A) >= gain(x | B) whenever A is a subset of B (submodularity), also given pending points.

    Exact for the log-det term; the variance-reduction term is only nearly
    submodular (see the module docstring), so it has its own test below.
    """
    surrogate = request.getfixturevalue(model)
    pending = torch.tensor([[0.9, 0.1]], dtype=torch.float64)
    obj = objective(surrogate, lam, data_2d, pending=pending, information="logdet")
    checked = 0
    for g_a, g_b in nested_set_gains(obj):
        assert bool((g_a >= g_b - 1e-9).all()), (g_a, g_b)
        assert bool((g_b >= -1e-12).all())  # monotone: no negative gains
        checked += int((g_a > g_b + 1e-6).sum())
    assert checked > 0  # the sets interact: the inequality is not trivially tight


def _mean_reference_variance(gp, given: torch.Tensor, reference: torch.Tensor, noise: torch.Tensor) -> float:
    """Mean over ``reference`` of the GP's epistemic variance once ``given`` is observed with ``noise``."""
    with torch.no_grad():
        K = gp.joint_epistemic_covariance(torch.cat([given, reference]))[0]
    t = given.shape[0]
    K_gg = K[:t, :t] + torch.diag(noise)
    K_gr = K[:t, t:]
    return float((K[t:, t:].diagonal() - (K_gr * torch.linalg.solve(K_gg, K_gr)).sum(0)).mean())


def test_variance_gains_are_the_drop_of_the_mean_reference_variance(gp_2d, data_2d) -> None:
    """Variance term, λ = 1: gain(x | G) = mean_r var(r | G) - mean_r var(r | G ∪ {x}), by brute force."""
    pending = torch.tensor([[0.2, 0.9], [0.7, 0.3]], dtype=torch.float64)
    obj = objective(gp_2d, 1.0, data_2d, pending=pending)
    S = sobol_points(16, 2, seed=2)[:3]
    X = sobol_points(16, 2, seed=5)[:4]
    given = torch.cat([pending, S])
    eps = float(obj.eps_[0])
    with torch.no_grad():
        gains = obj.gain(X, S)
        sigma2 = obj.noise(X)[:, 0]
    before = _mean_reference_variance(gp_2d, given, obj.variance_reference_, torch.full((5,), eps, dtype=torch.float64))
    for i in range(4):
        noise = torch.cat([torch.full((5,), eps, dtype=torch.float64), sigma2[i : i + 1]])
        after = _mean_reference_variance(gp_2d, torch.cat([given, X[i : i + 1]]), obj.variance_reference_, noise)
        assert float(gains[i]) == pytest.approx((before - after) / obj.scale_ig_, rel=1e-6)
    assert bool((gains > 0).all())


@pytest.mark.parametrize("model", ["gp_2d", "ensemble_2d"])
def test_one_objective_reused_over_changing_sets_gives_what_fresh_objectives_give(model: str, data_2d, request) -> None:
    """The per-set conditioning is cached by value: switching sets (and back) never reuses a stale factor."""
    surrogate = request.getfixturevalue(model)
    pending = torch.tensor([[0.9, 0.1]], dtype=torch.float64)
    reused = objective(surrogate, 0.7, data_2d, pending=pending)
    pool = sobol_points(32, 2, seed=6)
    X = pool[20:26]
    sets = [pool[:3], pool[3:7], pool[:3], pool[:2], pool[:0]]
    with torch.no_grad():
        for S in sets:
            fresh = objective(surrogate, 0.7, data_2d, pending=pending)
            torch.testing.assert_close(reused.gain(X, S), fresh.gain(X, S), rtol=1e-10, atol=1e-14)
            for a, b in zip(reused.conditional_variance(X, torch.cat([pending, S])),
                            fresh.conditional_variance(X, torch.cat([pending, S])), strict=True):
                torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-14)
    # and the sets matter: the gains given the first and second set differ
    assert not torch.allclose(reused.gain(X, sets[0]), reused.gain(X, sets[1]))


@pytest.mark.parametrize("model", ["gp_2d", "ensemble_2d"])
def test_variance_gains_are_non_negative_and_mostly_diminish(model: str, data_2d, request) -> None:
    """Variance reduction is monotone; its gains shrink as the set grows except by a few per cent at most.

    (Conditioning can raise a point's correlation with the reference set,
    "explaining away", so exact submodularity does not hold; the greedy
    guarantee is then a guide, as the module docstring says.)
    """
    obj = objective(request.getfixturevalue(model), 1.0, data_2d, pending=torch.tensor([[0.9, 0.1]], dtype=torch.float64))
    shrunk = 0
    for g_a, g_b in nested_set_gains(obj):
        assert bool((g_b >= -1e-12).all())
        assert bool((g_b <= 1.05 * g_a + 1e-6).all()), (g_a, g_b)
        shrunk += int((g_a > 1.05 * g_b + 1e-6).sum())
    assert shrunk > 25  # most pairs interact strongly


@pytest.mark.parametrize("lam", [1.0, 0.5, 0.0])
def test_gains_add_up_to_one_set_function(gp_2d, data_2d, lam: float) -> None:
    """With the noise at the floor, summed gains do not depend on the order (a set function) ..."""
    pending = torch.tensor([[0.2, 0.9]], dtype=torch.float64)
    obj = objective(gp_2d, lam, data_2d, pending=pending, information="logdet")
    S = sobol_points(16, 2, seed=2)[:5]
    values = [obj.value(S[list(order)]) for order in ([0, 1, 2, 3, 4], [4, 2, 0, 3, 1], [3, 4, 1, 0, 2])]
    assert values == pytest.approx([values[0]] * 3, rel=1e-7)
    if lam == 1.0:
        # ... namely IG(P ∪ S) - IG(P) = ½ log det(I + K/ε) differences, normalised.
        both = torch.cat([pending, S])
        with torch.no_grad():
            K = gp_2d.joint_epistemic_covariance(both)
        eps = obj.eps_
        ig = information_gain(K, eps) - information_gain(K[:, :1, :1], eps)
        assert values[0] == pytest.approx(float(ig) / obj.scale_ig_, rel=1e-7)


def test_lazy_greedy_selects_exactly_what_plain_greedy_selects(gp_2d, data_2d) -> None:
    pending = torch.tensor([[0.1, 0.9], [0.6, 0.4]], dtype=torch.float64)
    obj = objective(gp_2d, 0.6, data_2d, pending=pending)
    pool = torch.as_tensor(np.random.default_rng(3).random((300, 2)))
    available = torch.ones(300, dtype=torch.bool)
    available[:5] = False  # e.g. candidates already evaluated
    lazy = greedy_pool(obj, pool, 6, available=available)
    plain = greedy_pool(obj, pool, 6, available=available, lazy=False)
    assert lazy.indices.tolist() == plain.indices.tolist()
    assert torch.allclose(lazy.gains, plain.gains, rtol=1e-9, atol=1e-12)
    assert not set(lazy.indices.tolist()) & set(range(5))
    assert bool((lazy.gains.diff() <= 1e-12).all())  # greedy gains never increase
    assert lazy.evaluations < plain.evaluations


def test_pool_batch_avoids_pending_points(gp_2d, data_2d) -> None:
    pool = sobol_points(400, 2, seed=4)
    free = greedy_pool(objective(gp_2d, 0.9, data_2d), pool, 1)
    first = pool[free.indices[0]]
    busy = greedy_pool(objective(gp_2d, 0.9, data_2d, pending=first[None]), pool, 1)
    assert float(torch.dist(pool[busy.indices[0]], first)) > expected_nn_spacing(16 + 2, 2)


@pytest.mark.parametrize("lam", [0.3, 0.9])
def test_synthesised_batch_of_eight_is_inside_the_box_and_spread_out(gp_2d, data_2d, lam: float) -> None:
    """q = 8 in 2-D: every pair farther apart than half the expected spacing of the n + q points.

    Half the Poisson nearest-neighbour spacing of the n + q points the box
    will hold is a pair distance that a space-filling design of that size
    exceeds for nearly every pair, while a batch that piles onto one hill of
    uncertainty (what top-q does) violates it.
    """
    X, _ = data_2d
    obj = objective(gp_2d, lam, data_2d)
    batch = greedy_synthesis(obj, 8, raw_samples=256, restarts=4, seed=0, maxiter=100)
    assert batch.X.shape == (8, 2)
    assert bool(((batch.X >= 0) & (batch.X <= 1)).all())
    threshold = 0.5 * expected_nn_spacing(X.shape[0] + 8, 2)
    pair = torch.cdist(batch.X, batch.X) + 10 * torch.eye(8, dtype=torch.float64)
    assert float(pair.min()) > threshold
    assert float(torch.cdist(batch.X, X).min()) > threshold  # nor on top of labelled points


def test_large_pool_is_handled_in_blocks(ensemble_2d, data_2d) -> None:
    """100 000 candidates: bulk upper bounds, then only a few exact gain evaluations."""
    obj = objective(ensemble_2d, 0.7, data_2d, reference_n=1024)
    pool = torch.as_tensor(np.random.default_rng(0).random((100_000, 2)))
    batch = greedy_pool(obj, pool, 8)
    assert len(set(batch.indices.tolist())) == 8
    assert batch.evaluations < 200_000  # plain greedy needs 8 x 100 000
    assert bool((batch.gains.diff() <= 1e-12).all())


@pytest.mark.parametrize("kind", ["gp", "ensemble", "mc_dropout"])
def test_joint_covariance_diagonal_matches_predict(kind: str, data_2d, gp_2d, ensemble_2d) -> None:
    """Lazy greedy's bulk bounds use predict's diagonal; exact gains use the joint covariance."""
    from surrogate_al.surrogates import MCDropoutMLP

    X, Y = data_2d
    if kind == "gp":
        model = gp_2d
    elif kind == "ensemble":
        model = ensemble_2d
    else:
        bounds = torch.stack([torch.zeros(2), torch.ones(2)]).double()
        model = MCDropoutMLP(hidden_layers=(32, 32), max_epochs=100, seed=0, bounds=bounds, device="cpu").fit(X, Y)
    Z = sobol_points(32, 2, seed=17)
    with torch.no_grad():
        diag = model.joint_epistemic_covariance(Z).diagonal(dim1=-2, dim2=-1).transpose(0, 1)
        var = model.predict(Z).epistemic_var / Y.std(dim=0) ** 2
    assert torch.allclose(diag, var, rtol=1e-6, atol=1e-12)


def test_greedy_rejects_impossible_requests(gp_2d, data_2d) -> None:
    obj = objective(gp_2d, 0.5, data_2d)
    with pytest.raises(ConfigError, match="2 usable points .* q = 3"):
        greedy_pool(obj, sobol_points(2, 2, 0), 3)
    with pytest.raises(ConfigError, match="batch size q"):
        greedy_pool(obj, sobol_points(4, 2, 0), 0)
    with pytest.raises(ConfigError, match="batch size q"):
        greedy_synthesis(obj, 0)
