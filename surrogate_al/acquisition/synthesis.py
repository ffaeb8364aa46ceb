"""Membership-query synthesis: maximise a score over the unit box by gradient.

The acquisition does not need a pool of candidates: it *synthesises* the input
it wants to ask about. :func:`synthesise` maximises any differentiable score
``f: b x d -> b`` over ``[0, 1]^d`` in the way BoTorch's ``optimize_acqf``
does, in three steps:

1. **Raw samples.** ``raw_samples`` scrambled Sobol points (1024 by default;
   a power of 2 keeps Sobol's balance) are scored without gradients, in
   blocks of ``chunk_size``.
2. **Starts.** The ``restarts`` best raw points (8 by default) become the
   starting points, skipping any raw point closer than the raw set's expected
   nearest-neighbour spacing to a start already taken, so the starts sit on
   different hills rather than on one.
3. **L-BFGS-B.** All starts are optimised together:
   ``scipy.optimize.minimize(-sum_i f(x_i), method="L-BFGS-B", jac=True)``
   with box bounds on every coordinate and the gradient from torch autograd.
   The score of one point does not depend on the others, so the stacked
   problem is separable and one call optimises every start at the cost of
   ``b = restarts`` evaluations per iteration. Each start keeps the better of
   its initial and final point (a joint line search may trade one point's
   value for another's).

The Sobol scrambling is seeded, so a call is reproducible.

A sequence of syntheses of ever smaller scores (the steps of a greedy batch)
can pass the previous result on: its raw samples and values become upper
bounds, so only the few raw points that could still make a start are
re-scored, and its optima become candidate starts. Most later steps then cost
one or two score evaluations for screening and a few L-BFGS-B iterations.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import minimize
from scipy.stats import qmc
from torch import Tensor

from surrogate_al.acquisition.scores import expected_nn_spacing, min_distances
from surrogate_al.errors import ConfigError, DataError

__all__ = ["SynthesisResult", "sobol_points", "synthesise", "top_distinct"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SynthesisResult:
    """Optimised points and the raw samples they came from.

    Attributes:
        X: ``restarts x d`` optimised points, best first.
        values: ``restarts`` scores of ``X``.
        X_raw: ``raw_samples x d`` raw Sobol points.
        raw_values: ``raw_samples`` scores of ``X_raw``.
    """

    X: Tensor
    values: Tensor
    X_raw: Tensor
    raw_values: Tensor


def sobol_points(n: int, d: int, seed: int, *, dtype: torch.dtype = torch.float64) -> Tensor:
    """``n x d`` scrambled Sobol points in ``[0, 1]^d`` from an integer seed."""
    sampler = qmc.Sobol(d, scramble=True, rng=np.random.default_rng(seed))
    with warnings.catch_warnings():
        # Balance properties need n = 2^k; any n is still a valid low-discrepancy prefix.
        warnings.simplefilter("ignore", UserWarning)
        return torch.as_tensor(sampler.random(n), dtype=dtype)


def _check_options(raw_samples: int, restarts: int, maxiter: int, chunk_size: int) -> None:
    for name, value, low in (("raw_samples", raw_samples, 1), ("restarts", restarts, 1),
                             ("maxiter", maxiter, 1), ("chunk_size", chunk_size, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ConfigError(f"synthesis: {name} = {value!r}; expected an integer >= {low}")
    if restarts > raw_samples:
        raise ConfigError(
            f"synthesis: restarts = {restarts} exceeds raw_samples = {raw_samples}; the starts are the best raw "
            "samples, so raise raw_samples or lower restarts"
        )


def _evaluate(score: Callable[[Tensor], Tensor], X: Tensor, chunk_size: int) -> Tensor:
    with torch.no_grad():
        values = torch.cat([score(X[i : i + chunk_size]).reshape(-1) for i in range(0, X.shape[0], chunk_size)])
    if values.shape[0] != X.shape[0]:
        raise DataError(f"the score returned {values.shape[0]} values for {X.shape[0]} points; expected one per point")
    return values


def _pick_starts(X_raw: Tensor, values: Tensor, restarts: int) -> Tensor:
    """Indices of up to ``restarts`` best points, mutually farther apart than the points' spacing."""
    order = torch.argsort(torch.nan_to_num(values, nan=-math.inf), descending=True)
    sep = expected_nn_spacing(X_raw.shape[0], X_raw.shape[1])
    chosen: list[int] = []
    for idx in order.tolist():
        if len(chosen) == restarts:
            break
        if chosen and float(min_distances(X_raw[idx : idx + 1], X_raw[chosen])[0]) < sep:
            continue
        chosen.append(idx)
    # Few separated hills (a narrow box, a tiny raw set): fill with the next best.
    for idx in order.tolist():
        if len(chosen) == restarts:
            break
        if idx not in chosen:
            chosen.append(idx)
    return torch.tensor(chosen, dtype=torch.long)


def _lazy_screen(
    score: Callable[[Tensor], Tensor], previous: SynthesisResult, restarts: int, chunk_size: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Re-score the previous raw samples lazily; returns ``(candidates, values, raw_values)``.

    ``previous.raw_values`` bound the current scores from above, so raw points
    are re-scored in order of their bound, a block at a time, only until the
    ``restarts``-th best exact value (among them and the previous optima)
    beats every bound not yet refreshed.
    """
    X_raw, bounds = previous.X_raw, previous.raw_values.clone()
    warm = previous.X
    order = torch.argsort(torch.nan_to_num(bounds, nan=-math.inf), descending=True)
    evaluated = torch.zeros(X_raw.shape[0], dtype=torch.bool)
    # The previous optima and the first block of raw points share one call of the score.
    first = order[: max(chunk_size - warm.shape[0], 0)]
    values = _evaluate(score, torch.cat([warm, X_raw[first]]), chunk_size)
    warm_values = values[: warm.shape[0]]
    bounds[first], evaluated[first] = values[warm.shape[0] :], True
    pos = first.shape[0]
    while pos < order.shape[0]:
        known = torch.cat([warm_values, bounds[evaluated]])
        if known.shape[0] >= restarts and float(torch.topk(known, restarts).values[-1]) >= float(bounds[order[pos]]):
            break
        block = order[pos : pos + chunk_size]
        bounds[block] = _evaluate(score, X_raw[block], chunk_size)
        evaluated[block] = True
        pos += chunk_size
    candidates = torch.cat([warm, X_raw[evaluated]])
    return candidates, torch.cat([warm_values, bounds[evaluated]]), bounds


def synthesise(
    score: Callable[[Tensor], Tensor],
    d: int,
    *,
    raw_samples: int = 1024,
    restarts: int = 8,
    seed: int = 0,
    maxiter: int = 200,
    ftol: float = 1e-5,
    chunk_size: int = 512,
    dtype: torch.dtype = torch.float64,
    previous: SynthesisResult | None = None,
) -> SynthesisResult:
    """Maximise ``score`` over ``[0, 1]^d`` from multiple starts.

    Args:
        score: maps ``b x d`` points to ``b`` values, differentiable in the
            points (torch autograd).
        d: input dimension.
        raw_samples: Sobol points scored to choose the starts.
        restarts: starts optimised by L-BFGS-B.
        seed: seed of the Sobol scrambling.
        maxiter: L-BFGS-B iteration cap.
        ftol: L-BFGS-B's relative tolerance on the (summed) score; scores
            are O(1) by construction, so 1e-5 is far below any difference
            that changes a decision and saves the optimiser's long tail.
        chunk_size: raw points scored per call of ``score`` (each call of a
            GP re-solves its training system, so fewer, larger calls are cheaper).
        dtype: floating type of the points.
        previous: the result of an earlier synthesis of a score that was
            everywhere at least this one (a greedy step before this one: gains
            only shrink as the batch grows). Its raw samples are reused, its
            values serve as upper bounds so only the raw points that could
            still make a start are re-scored, and its optima are candidate
            starts (already near a maximum, they converge in a few iterations).

    Returns:
        :class:`SynthesisResult` with the optimised points best first (with
        ``previous``, ``raw_values`` are exact where re-scored and the old
        bounds elsewhere).

    Raises:
        ConfigError: invalid option values.
        DataError: the score returns the wrong number of values.
    """
    _check_options(raw_samples, restarts, maxiter, chunk_size)
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1:
        raise ConfigError(f"synthesis: d = {d!r}; expected a positive integer input dimension")
    if previous is None:
        X_raw = sobol_points(raw_samples, d, seed, dtype=dtype)
        raw_values = _evaluate(score, X_raw, chunk_size)
        candidates, candidate_values = X_raw, raw_values
    else:
        if previous.X_raw.shape[1] != d:
            raise ConfigError(f"synthesis: previous result is in d = {previous.X_raw.shape[1]}, not d = {d}")
        X_raw = previous.X_raw
        candidates, candidate_values, raw_values = _lazy_screen(score, previous, restarts, chunk_size)
    starts = _pick_starts(candidates, candidate_values, min(restarts, candidates.shape[0]))
    X0 = candidates[starts].clone()
    v0 = candidate_values[starts].clone()
    shape = X0.shape
    last: dict[str, np.ndarray | Tensor] = {}

    def objective(flat: np.ndarray) -> tuple[float, np.ndarray]:
        X = torch.as_tensor(flat, dtype=dtype).reshape(shape).requires_grad_(True)
        values = score(X)
        # Kept so the final point's values need no extra evaluation.
        last["x"], last["values"] = flat.copy(), values.detach()
        total = -values.sum()
        (grad,) = torch.autograd.grad(total, X)
        value = float(total.detach())
        if not math.isfinite(value):
            # Let the line search back off instead of crashing on a NaN/inf evaluation.
            return 1e30, np.zeros(flat.shape)
        return value, torch.nan_to_num(grad, nan=0.0, posinf=0.0, neginf=0.0).reshape(-1).double().numpy()

    res = minimize(
        objective,
        X0.reshape(-1).double().numpy(),
        method="L-BFGS-B",
        jac=True,
        bounds=[(0.0, 1.0)] * X0.numel(),
        options={"maxiter": maxiter, "ftol": ftol},
    )
    X1 = torch.as_tensor(res.x, dtype=dtype).reshape(shape).clamp(0.0, 1.0)
    if "x" in last and np.array_equal(last["x"], np.clip(res.x, 0.0, 1.0)):
        v1 = last["values"]  # type: ignore[assignment]
    else:
        v1 = _evaluate(score, X1, chunk_size)
    better = torch.nan_to_num(v1, nan=-math.inf) >= torch.nan_to_num(v0, nan=-math.inf)
    X_best = torch.where(better.unsqueeze(-1), X1, X0)
    v_best = torch.where(better, v1, v0)
    order = torch.argsort(torch.nan_to_num(v_best, nan=-math.inf), descending=True)
    logger.debug(
        "synthesis: d=%d, %d raw, %d starts, %d L-BFGS-B iterations (%s); best %.4g",
        d, raw_samples, shape[0], res.nit, res.message, float(v_best[order[0]]),
    )
    return SynthesisResult(X=X_best[order], values=v_best[order], X_raw=X_raw, raw_values=raw_values)


def top_distinct(result: SynthesisResult, q: int, *, tol: float = 1e-3) -> tuple[Tensor, Tensor]:
    """The ``q`` best mutually distinct points of a synthesis: optima first, then raw samples.

    Two starts that climbed the same hill end at (nearly) the same optimum;
    only the first counts. When fewer than ``q`` distinct optima exist, the
    best raw samples not within ``tol`` of a point already taken fill up.

    Args:
        result: the output of :func:`synthesise`.
        q: number of points wanted (``<=`` restarts + raw samples).
        tol: Euclidean distance below which two points are the same.

    Returns:
        ``(X, values)``: ``q x d`` points and their ``q`` scores.
    """
    order_raw = torch.argsort(torch.nan_to_num(result.raw_values, nan=-math.inf), descending=True)
    pool = torch.cat([result.X, result.X_raw[order_raw]])
    vals = torch.cat([result.values, result.raw_values[order_raw]])
    if q > pool.shape[0]:
        raise ConfigError(f"asked for q = {q} distinct points but the synthesis produced only {pool.shape[0]}")
    chosen: list[int] = []
    for i in range(pool.shape[0]):
        if len(chosen) == q:
            break
        if chosen and float(min_distances(pool[i : i + 1], pool[chosen])[0]) < tol:
            continue
        chosen.append(i)
    idx = torch.tensor(chosen, dtype=torch.long)
    return pool[idx], vals[idx]
