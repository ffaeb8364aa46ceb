"""Surrogates, data and a fast default policy shared by the policy tests."""

from __future__ import annotations

import numpy as np
import torch

from surrogate_al.policies import Policy
from surrogate_al.surrogates import DeepEnsemble, GaussianProcess


def unit(d: int) -> torch.Tensor:
    return torch.stack([torch.zeros(d), torch.ones(d)]).double()


def gp(d: int, **options) -> GaussianProcess:
    return GaussianProcess(bounds=unit(d), noise=1e-4, seed=0, **options)


def ensemble(d: int) -> DeepEnsemble:
    return DeepEnsemble(num_members=8, hidden_layers=(32, 32), max_epochs=300, seed=0, bounds=unit(d), device="cpu")


def f2(X: np.ndarray) -> np.ndarray:
    return np.sin(3 * X[:, :1]) + np.cos(4 * X[:, 1:2])



def fast_policy(surrogate, **options) -> Policy:
    options = {"raw_samples": 256, "restarts": 4, "maxiter": 100, "reference_size": 256, **options}
    return Policy(surrogate, **options)
