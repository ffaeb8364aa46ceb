"""Small 2-D data and a quick ``auto`` surrogate, shared by the model-choice tests."""

from __future__ import annotations

import torch

from surrogate_al.surrogates import AutoSurrogate, make_surrogate

DT = torch.float64
BOUNDS = torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=DT)
SMALL_ENSEMBLE = {"num_members": 3, "max_epochs": 300, "hidden_layers": (16, 16)}


def smooth_data(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n x 2`` uniform inputs and ``n x 1`` outputs of a smooth function."""
    gen = torch.Generator().manual_seed(seed)
    X = torch.rand(n, 2, generator=gen, dtype=DT)
    return X, torch.sin(3 * X[:, :1]) + X[:, 1:] ** 2


def quick_auto(**kwargs: object) -> AutoSurrogate:
    """An unfitted ``auto`` surrogate with 3 folds and a small, short-trained ensemble."""
    options = {"folds": 3, "candidate_options": {"ensemble": SMALL_ENSEMBLE}} | kwargs
    return make_surrogate("auto", bounds=BOUNDS, seed=0, device="cpu", **options)  # type: ignore[return-value]
