"""Fitted surrogates shared by the acquisition tests (real models, fitted once per module)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from surrogate_al.acquisition import sobol_points
from surrogate_al.surrogates import DeepEnsemble, GaussianProcess


def unit_bounds(d: int) -> torch.Tensor:
    return torch.stack([torch.zeros(d), torch.ones(d)]).double()


def smooth_2d(X: torch.Tensor) -> torch.Tensor:
    """A smooth test function on [0, 1]^2 with a few bumps (n x 1)."""
    return (torch.sin(3.0 * X[:, :1]) + torch.cos(4.0 * X[:, 1:2]) + X[:, :1] * X[:, 1:2])


@pytest.fixture(scope="module")
def data_2d() -> tuple[torch.Tensor, torch.Tensor]:
    X = sobol_points(16, 2, seed=3)
    return X, smooth_2d(X)


@pytest.fixture(scope="module")
def gp_2d(data_2d) -> GaussianProcess:
    X, Y = data_2d
    return GaussianProcess(bounds=unit_bounds(2), noise=1e-4, seed=0).fit(X, Y)


@pytest.fixture(scope="module")
def ensemble_2d(data_2d) -> DeepEnsemble:
    X, Y = data_2d
    return DeepEnsemble(
        num_members=6, hidden_layers=(32, 32), max_epochs=300, seed=0, bounds=unit_bounds(2), device="cpu"
    ).fit(X, Y)


@pytest.fixture(scope="module")
def output_scale_2d(data_2d) -> torch.Tensor:
    return data_2d[1].std(dim=0)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
