"""Covariance localisation of the batch objective for sampled covariances (real GP and deep ensemble)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from surrogate_al.acquisition import sobol_points
from surrogate_al.acquisition.batch_objective import BatchObjective, gaussian_similarity, has_sampled_covariance
from surrogate_al.data import Dataset
from surrogate_al.errors import ConfigError
from surrogate_al.policies import DETERMINISTIC_LOCALISATION, Policy
from surrogate_al.surrogates import AutoSurrogate, DeepEnsemble, GaussianProcess
from surrogate_al.surrogates.base import epistemic_cross_covariance



def unit_bounds(d: int) -> torch.Tensor:
    return torch.stack([torch.zeros(d), torch.ones(d)]).double()


def objective(surrogate, output_scale, localisation):
    reference = sobol_points(64, 2, seed=11)
    return BatchObjective(surrogate, 1.0, reference, output_scale, localisation=localisation)


def test_only_the_networks_covariance_counts_as_sampled(gp_2d, ensemble_2d, data_2d) -> None:
    assert not has_sampled_covariance(gp_2d)
    assert has_sampled_covariance(ensemble_2d)
    X, Y = data_2d
    auto = AutoSurrogate(candidates=("ensemble",), candidate_options={"ensemble": {"num_members": 2, "max_epochs": 20}},
                         bounds=unit_bounds(2), device="cpu")
    assert not auto.sampled_covariance  # not fitted: nothing chosen yet
    assert has_sampled_covariance(auto.fit(X, Y))


def test_the_taper_multiplies_each_cross_covariance_by_the_similarity(ensemble_2d, output_scale_2d) -> None:
    Z, X = sobol_points(5, 2, seed=1), sobol_points(7, 2, seed=2)
    plain, var = epistemic_cross_covariance(ensemble_2d, Z, X)
    tapered, var_t = objective(ensemble_2d, output_scale_2d, 0.2)._cross_covariance(Z, X)
    torch.testing.assert_close(var_t, var)  # the diagonal is untouched
    distance = torch.cdist(Z, X)
    torch.testing.assert_close(tapered, plain * torch.exp(-(distance**2) / (2 * 0.2**2)).unsqueeze(0))
    torch.testing.assert_close(gaussian_similarity(Z, X, 0.2), torch.exp(-(distance**2) / 0.08))


def test_a_taper_only_lowers_gains_and_a_long_one_changes_nothing(ensemble_2d, output_scale_2d) -> None:
    X = sobol_points(48, 2, seed=6)
    none = X[:0]
    with torch.no_grad():
        plain = objective(ensemble_2d, output_scale_2d, None)._variance_reduction(X, none)
        local = objective(ensemble_2d, output_scale_2d, 0.25)._variance_reduction(X, none)
        long = objective(ensemble_2d, output_scale_2d, 1e4)._variance_reduction(X, none)
    assert (local <= plain * (1 + 1e-12)).all() and (local < 0.9 * plain).any()
    torch.testing.assert_close(long, plain, rtol=1e-6, atol=0.0)


def test_conditioning_on_a_batch_stays_positive_definite_with_a_taper(ensemble_2d, output_scale_2d) -> None:
    local = objective(ensemble_2d, output_scale_2d, 0.1)
    given = sobol_points(12, 2, seed=4)  # more points than the ensemble's rank (6 members)
    with torch.no_grad():
        gains = local.gain(sobol_points(32, 2, seed=5), given)
    assert torch.isfinite(gains).all() and (gains >= 0).all()


def fitted_policy(surrogate, localisation):
    X = sobol_points(20, 2, seed=3).numpy()
    Y = np.sin(3 * X[:, :1]) + np.cos(4 * X[:, 1:2])
    data = Dataset(X=X, Y=Y)
    policy = Policy(surrogate, seed=0, localisation=localisation, raw_samples=64, restarts=2, maxiter=30).fit(data)
    return policy, policy.propose(data, 3, progress=0.5)


def test_the_policy_tapers_only_an_ensemble_served_round() -> None:
    gp_policy, gp_plain = fitted_policy(GaussianProcess(bounds=unit_bounds(2), seed=0), 0.5)
    _, gp_local = fitted_policy(GaussianProcess(bounds=unit_bounds(2), seed=0), 0.0)
    assert gp_policy.last_objective_.localisation_ is None
    np.testing.assert_allclose(gp_local.X, gp_plain.X)

    def ensemble() -> DeepEnsemble:
        return DeepEnsemble(num_members=4, hidden_layers=(16,), max_epochs=60, seed=0, bounds=unit_bounds(2),
                            device="cpu")

    policy, local = fitted_policy(ensemble(), 0.5)
    assert policy.last_objective_.localisation_ == pytest.approx(0.5 * math.sqrt(2 / 6))
    _, plain = fitted_policy(ensemble(), 0.0)
    assert not np.allclose(local.X, plain.X)


@pytest.mark.parametrize("value", [-1.0, math.inf, True, "0.5"])
def test_a_bad_localisation_names_the_value(value) -> None:
    with pytest.raises(ConfigError, match="localisation"):
        Policy(localisation=value)


def test_a_bad_deterministic_flag_names_the_value() -> None:
    with pytest.raises(ConfigError, match="deterministic = 'yes'"):
        Policy(deterministic="yes")


def test_the_taper_is_on_by_default_only_for_a_deterministic_simulator() -> None:
    ensemble = DeepEnsemble(num_members=2, hidden_layers=(8,), max_epochs=5, seed=0, bounds=unit_bounds(3), device="cpu")
    assert Policy()._taper_lengthscale(ensemble, 3) is None
    assert Policy(deterministic=True).localisation == DETERMINISTIC_LOCALISATION == 0.5
    assert Policy(deterministic=True)._taper_lengthscale(ensemble, 6) == pytest.approx(0.5)
    assert Policy(deterministic=True, localisation=0.0)._taper_lengthscale(ensemble, 6) is None
    assert Policy(localisation=0.5)._taper_lengthscale(ensemble, 24) == pytest.approx(1.0)
