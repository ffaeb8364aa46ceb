"""Checks of a proposal request and the scores every proposal reports.

Randomness: every random draw of a proposal (reference set, raw samples,
pool subsample) is seeded from ``(seed, counter, stream)`` through
:class:`numpy.random.SeedSequence` (:func:`round_seed`), where ``counter`` is
the number of proposals made so far. A policy with the same seed, the same
state and the same (fitted) surrogate and data therefore proposes the same
points, and a campaign resumed from a checkpoint continues exactly as an
uninterrupted one would (in sync mode, where the data at each proposal are
deterministic).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from torch import Tensor

from surrogate_al.acquisition.schedules import check_progress
from surrogate_al.acquisition.scores import DiversityScore, expected_nn_spacing
from surrogate_al.data import Dataset
from surrogate_al.errors import ConfigError, ShapeError
from surrogate_al.policies.base import Proposal

__all__ = [
    "DTYPE",
    "baseline_proposal",
    "check_int",
    "check_request",
    "context_points",
    "diversity_sequence",
    "round_seed",
    "unit_bounds",
]

#: Every policy computes in float64 on the unit cube.
DTYPE = torch.float64


def check_int(name: str, value: Any, low: int) -> int:
    """``value`` as an int ``>= low``, else a :class:`ConfigError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ConfigError(f"{name} = {value!r}; expected an integer >= {low}")
    return int(value)


def check_request(
    data: Dataset, n: int, pending: ArrayLike | None, progress: float
) -> tuple[int, NDArray[np.float64], float]:
    """Validate the arguments of ``propose``; returns ``(n, pending k x d, progress)``."""
    if not isinstance(data, Dataset):
        raise ConfigError(f"data must be a surrogate_al.data.Dataset, got {type(data).__name__}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ConfigError(f"n = {n!r}; expected a positive integer number of points to propose")
    d = data.d
    P = np.zeros((0, d)) if pending is None else np.asarray(pending, dtype=float)
    if P.size == 0:
        P = np.zeros((0, d))
    if P.ndim != 2 or P.shape[1] != d:
        raise ShapeError(f"pending has shape {P.shape}; expected k x {d} unit-cube points (or None)")
    if not np.isfinite(P).all() or (P < 0).any() or (P > 1).any():
        raise ShapeError("pending points must be finite and inside the unit cube [0, 1]^d (unit coordinates)")
    return int(n), P, check_progress(progress)


def round_seed(seed: int, counter: int, stream: int) -> int:
    """A 32-bit seed for one random stream of one proposal round."""
    return int(np.random.SeedSequence([seed, counter, stream]).generate_state(1)[0])


def unit_bounds(d: int) -> Tensor:
    """``2 x d`` bounds of the unit cube (lower row zeros, upper row ones)."""
    return torch.stack([torch.zeros(d, dtype=DTYPE), torch.ones(d, dtype=DTYPE)])


def diversity_sequence(X: Tensor, context: Tensor, spacing: float) -> NDArray[np.float64]:
    """``D`` of each row of ``X`` given the context and the rows before it (exact min distance).

    Args:
        X: ``q x d`` points, in the order they were chosen.
        context: ``k x d`` points already in the box.
        spacing: the diversity lengthscale (expected nearest-neighbour spacing).

    Returns:
        ``q`` diversities.
    """
    out = []
    score = DiversityScore(context, spacing, smooth=False)
    for i in range(X.shape[0]):
        with torch.no_grad():
            out.append(float(score(X[i : i + 1])[0]))
        score = score.with_points(X[i : i + 1])
    return np.asarray(out)


def context_points(data: Dataset, P: NDArray[np.float64]) -> Tensor:
    """Every point already in the box: labelled, failed and pending (``k x d``)."""
    return torch.as_tensor(np.vstack([data.X, data.X_failed, P]), dtype=DTYPE)


def baseline_proposal(
    X: NDArray[np.float64], data: Dataset, P: NDArray[np.float64], method: str, U: NDArray[np.float64] | None = None,
    J: NDArray[np.float64] | None = None, lam: float = math.nan,
) -> Proposal:
    """A proposal of the ``q x d`` points ``X`` with their diversity reported.

    Args:
        X: ``q x d`` proposed unit-cube points.
        data: the data the proposal was made from.
        P: ``k x d`` pending points.
        method: how the points were chosen (:attr:`Proposal.method`).
        U: ``q`` uncertainties where the baseline has them (else NaN).
        J: ``q`` scores where the baseline has them (else NaN).
        lam: λ where the baseline has one (else NaN).

    Returns:
        The :class:`Proposal`.
    """
    Xt = torch.as_tensor(X, dtype=DTYPE)
    context = context_points(data, P)
    spacing = expected_nn_spacing(context.shape[0] + X.shape[0], data.d)
    nan = np.full(X.shape[0], math.nan)
    D = diversity_sequence(Xt, context, spacing)
    return Proposal(X=X, U=nan if U is None else U, D=D, J=nan if J is None else J, lam=lam, method=method)

