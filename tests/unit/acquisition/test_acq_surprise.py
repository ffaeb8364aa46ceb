"""Leave-one-out surprise weights: the closed form, the weights, and a policy that follows them (real GPs)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from surrogate_al.acquisition import sobol_points
from surrogate_al.acquisition.surprise import SurpriseWeights, check_surprise_cap, surprise_weights
from surrogate_al.data import Dataset
from surrogate_al.errors import ConfigError
from surrogate_al.policies import Policy
from surrogate_al.surrogates import DeepEnsemble, GaussianProcess

PEAK = torch.tensor([0.71, 0.33], dtype=torch.float64)


def unit_bounds(d: int) -> torch.Tensor:
    return torch.stack([torch.zeros(d), torch.ones(d)]).double()


def smooth_2d(X: torch.Tensor) -> torch.Tensor:
    return torch.sin(3.0 * X[:, :1]) + torch.cos(4.0 * X[:, 1:2]) + X[:, :1] * X[:, 1:2]


def peaked(X: torch.Tensor) -> torch.Tensor:
    """``smooth_2d`` plus a peak of height 5 and width 0.03 at ``PEAK`` (n x 1)."""
    return smooth_2d(X) + 5.0 * torch.exp(-((X - PEAK) ** 2).sum(-1, keepdim=True) / (2 * 0.03**2))


@pytest.fixture(scope="module")
def peak_data() -> tuple[torch.Tensor, torch.Tensor]:
    """24 Sobol points and one run on the peak (the last row)."""
    X = torch.cat([sobol_points(24, 2, seed=5), PEAK.view(1, 2)])
    return X, peaked(X)


def test_loo_surprise_equals_conditioning_on_the_other_runs(data_2d) -> None:
    X, Y = data_2d
    gp = GaussianProcess(bounds=unit_bounds(2), seed=0).fit(X, Y)
    model = gp.model_
    with torch.no_grad():
        K = model.prediction_strategy.lik_train_train_covar.to_dense()  # kernel + noise, standardised
        r = model.train_targets - model.mean_module(model.train_inputs[0])
    expected = []
    for i in range(X.shape[0]):
        rest = torch.arange(X.shape[0]) != i
        solve = torch.linalg.solve(K[rest][:, rest], torch.stack([K[rest, i], r[rest]], -1))
        mean = K[i, rest] @ solve[:, 1]
        var = K[i, i] - K[i, rest] @ solve[:, 0]
        expected.append((r[i] - mean) ** 2 / var)
    torch.testing.assert_close(gp.loo_surprise(), torch.stack(expected), rtol=1e-6, atol=1e-9)


def test_the_run_on_the_peak_is_the_surprising_one(peak_data) -> None:
    X, Y = peak_data
    gp = GaussianProcess(bounds=unit_bounds(2), seed=0).fit(X, Y)
    surprise = gp.loo_surprise()
    assert int(surprise.argmax()) == X.shape[0] - 1
    weights = surprise_weights(gp, X, Y, cap=100.0)
    assert weights is not None
    assert float(weights.weights[-1]) == pytest.approx(100.0)  # clipped at the cap
    assert float(weights.weights.median()) == pytest.approx(1.0)  # the smooth runs keep weight 1
    # Candidates take their nearest run's weight.
    near_peak = PEAK.view(1, 2) + 0.01
    far = torch.tensor([[0.05, 0.95]], dtype=torch.float64)
    assert weights(torch.cat([near_peak, far])).tolist() == [100.0, float(weights(far))]
    assert float(weights(far)) < 100.0


def test_weights_need_a_cap_above_one_and_three_runs(peak_data) -> None:
    X, Y = peak_data
    gp = GaussianProcess(bounds=unit_bounds(2), seed=0).fit(X, Y)
    assert surprise_weights(gp, X, Y, cap=1.0) is None
    small = GaussianProcess(bounds=unit_bounds(2), seed=0).fit(X[:2], Y[:2])
    assert surprise_weights(small, X[:2], Y[:2], cap=100.0) is None
    for bad in (0.5, float("inf"), True, "100"):
        with pytest.raises(ConfigError, match="surprise_cap"):
            check_surprise_cap(bad)


def test_a_surrogate_without_closed_form_gets_a_side_gp(peak_data) -> None:
    X, Y = peak_data
    ensemble = DeepEnsemble(num_members=2, hidden_layers=(16,), max_epochs=20, seed=0, bounds=unit_bounds(2),
                            device="cpu").fit(X, Y)
    weights = surprise_weights(ensemble, X, Y, cap=50.0)
    assert isinstance(weights, SurpriseWeights)
    assert int(weights.weights.argmax()) == X.shape[0] - 1 and float(weights.weights.max()) == pytest.approx(50.0)


def test_the_policy_returns_to_a_surprising_run(peak_data) -> None:
    X, Y = peak_data
    data = Dataset(X=X.numpy(), Y=Y.numpy())
    pool = np.random.default_rng(0).random((2000, 2))

    def distances_to_peak(cap: float) -> np.ndarray:
        surrogate = GaussianProcess(bounds=unit_bounds(2), seed=0)
        policy = Policy(surrogate, mode="pool", candidates=pool, reference_size=256, surprise_cap=cap, seed=0)
        return np.linalg.norm(policy.propose(data, 4, progress=0.5).X - PEAK.numpy(), axis=1)

    plain, weighted = distances_to_peak(1.0), distances_to_peak(100.0)
    assert (weighted < 0.1).sum() >= 1, weighted
    assert weighted.min() < plain.min(), (weighted, plain)
    with pytest.raises(ConfigError, match="batch = 'topq'"):
        Policy(GaussianProcess(bounds=unit_bounds(2)), batch="topq", surprise_cap=10)


def test_the_side_gp_takes_the_most_recent_runs(peak_data, monkeypatch) -> None:
    """Past SIDE_GP_MAX_RUNS the side GP sees the last runs; older runs keep weight 1."""
    import surrogate_al.acquisition.surprise as surprise

    X, Y = peak_data  # the peak run is the last one
    ensemble = DeepEnsemble(num_members=2, hidden_layers=(16,), max_epochs=20, seed=0, bounds=unit_bounds(2),
                            device="cpu").fit(X, Y)
    monkeypatch.setattr(surprise, "SIDE_GP_MAX_RUNS", 12)
    weights = surprise_weights(ensemble, X, Y, cap=50.0)
    assert weights is not None
    torch.testing.assert_close(weights.runs, X)  # every run stays a neighbour candidates can map to
    assert torch.all(weights.weights[:-12] == 1.0)
    assert int(weights.weights.argmax()) == X.shape[0] - 1 and float(weights.weights[-1]) > 10.0
    # The old runs' own weights were not computed: far from the peak they stay 1 whatever their residual.
    assert float(weights(X[:1])) == 1.0
