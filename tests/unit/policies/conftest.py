"""Data sets and a fitted GP shared by the policy tests (fitted once per module)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from policy_helpers import f2, gp

from surrogate_al.acquisition import sobol_points
from surrogate_al.data import Dataset


@pytest.fixture(scope="module")
def data_1d_left() -> Dataset:
    """Six points in [0, 0.3] only."""
    X = np.linspace(0.0, 0.3, 6)[:, None]
    return Dataset(X=X, Y=np.sin(6 * X))


@pytest.fixture(scope="module")
def data_2d() -> Dataset:
    X = sobol_points(12, 2, seed=1).numpy()
    return Dataset(X=X, Y=f2(X))


@pytest.fixture(scope="module")
def fitted_gp_2d(data_2d) -> GaussianProcess:
    return gp(2).fit(torch.as_tensor(data_2d.X), torch.as_tensor(data_2d.Y))
