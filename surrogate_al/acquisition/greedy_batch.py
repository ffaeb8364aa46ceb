"""Greedy maximisation of the batch objective: lazy greedy over a pool, or one synthesis per step.

:func:`greedy_pool` and :func:`greedy_synthesis` add, ``q`` times, the point
of largest marginal gain of a
:class:`~surrogate_al.acquisition.batch_objective.BatchObjective` ``F_λ``
(defined there) given the pending points and the points chosen so far.

Why greedy works
----------------
``IG`` (log-det) is monotone submodular (a Gaussian mutual information, Krause &
Guestrin 2005), so is the facility-location ``Cov`` (its ``c_r`` floor is a
fixed facility), and so is their non-negative combination; both are 0 at the
empty set. For a monotone, submodular, non-negative set function with
``F(∅) = 0`` under a cardinality constraint ``|S| ≤ q``, the greedy algorithm
(add the point of largest marginal gain, q times) returns a set with
``F(S_greedy) ≥ (1 − 1/e) · max_{|S| ≤ q} F(S)`` (Nemhauser, Wolsey & Fisher
1978). Conditioning on the pending set keeps every property
(``S ↦ F(P ∪ S) − F(P)`` is again monotone submodular with value 0 at ∅).
Variance reduction is monotone but submodular only approximately (Das &
Kempe 2008: exactly when no point "explains away" another's correlation with
the reference set); its gains can grow by a few per cent when the set grows
(the unit tests bound it by 5 % on random nested sets), so for the default
term the ``1 − 1/e`` bound, and the exactness of lazy greedy below, hold up
to that slack: a guide, as it is for BoTorch's jointly optimised qNIPV.

The objective's marginal gains are exactly those of ``F_λ`` when
``σ²(x) = ε`` everywhere (a deterministic simulator whose noise is below the
resolution ``ε``: the usual case). With larger or heteroscedastic noise the candidate's own
``σ²(x)`` enters only its own gain: the gains still never grow as the set
grows (diminishing returns hold exactly, which is all lazy greedy needs to
stay exact), but they no longer add up to a single set function, so the
``1 − 1/e`` bound is then a guide rather than a theorem.

* **Pool mode** (:func:`greedy_pool`): the candidates are a finite ground set
  and each argmax is exact, so the guarantee holds exactly (relative to the
  best batch *from the pool*). Lazy greedy (Minoux 1978) gives the same
  selection as plain greedy at a fraction of the cost: by submodularity a
  gain computed earlier is an upper bound on the gain now, so candidates sit
  in a max-priority queue keyed by their last computed gain (initially the
  gain given nothing pending, which is cheap to compute in bulk), and a
  candidate is selected only when its freshly recomputed gain is still at the
  top. Stale candidates are refreshed in blocks (one joint-covariance call
  each) that start small and double while the refreshed gains keep falling
  below the stale bounds. Nothing of size ``N x N`` is formed: the bounds are
  computed in blocks of ``chunk_size`` candidates against the ``|R|``
  reference points (1024 by default).
* **Synthesis mode** (:func:`greedy_synthesis`): each greedy step
  synthesises the point of best marginal gain by multi-start L-BFGS-B
  (:mod:`surrogate_al.acquisition.synthesis`); later steps reuse the first
  step's raw samples with their old gains as upper bounds (the same
  submodularity argument) and restart from the previous step's optima. The
  argmax is then only approximate: if every step reaches a fraction ``α`` of
  the best gain, the bound degrades to ``1 − e^(−α)`` (and to less when steps
  miss by an additive error), so the guarantee is only as good as the inner
  optimiser.

Feasibility: when a success probability ``p(x)`` is given, every marginal
gain is multiplied by it (the expected gain of a query that may fail). The
weighted gains still decrease as ``S`` grows, so lazy greedy stays exact, but
the weighted objective is no longer a set function and the ``1 − 1/e``
statement applies to the unweighted ``F_λ`` only.
"""

from __future__ import annotations

import heapq
import logging
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from surrogate_al.acquisition.batch_objective import BatchObjective
from surrogate_al.acquisition.synthesis import synthesise
from surrogate_al.errors import ConfigError, DataError, ShapeError

__all__ = ["BatchResult", "greedy_pool", "greedy_synthesis"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchResult:
    """A greedily chosen batch.

    Attributes:
        X: ``q x d`` points, in the order they were chosen.
        gains: ``q`` marginal gains of ``F_λ`` (times ``p(success)`` when a
            feasibility model is used) at the moment each point was chosen.
        indices: ``q`` row indices into the candidate pool (pool mode), else None.
        evaluations: number of exact marginal-gain evaluations (pool mode:
            shows how much lazy greedy saved; synthesis: 0).
    """

    X: Tensor
    gains: Tensor
    indices: Tensor | None = None
    evaluations: int = 0


def _check_q(q: int) -> int:
    if isinstance(q, bool) or not isinstance(q, int) or q < 1:
        raise ConfigError(f"batch size q = {q!r}; expected a positive integer")
    return q


def greedy_pool(
    objective: BatchObjective,
    candidates: Tensor,
    q: int,
    *,
    lazy: bool = True,
    available: Tensor | None = None,
    chunk_size: int = 512,
    refresh_block: int = 16,
) -> BatchResult:
    """Greedy batch of ``q`` candidates from a pool, by lazy (Minoux) or plain greedy.

    Args:
        objective: the batch objective (holds pending points and λ).
        candidates: ``N x d`` unit-cube candidates.
        q: batch size.
        lazy: lazy greedy with a priority queue (default); False re-scores
            every candidate at every step (plain greedy, for reference).
        available: optional ``N`` boolean mask; False rows are never chosen
            (e.g. candidates already evaluated).
        chunk_size: candidates per surrogate call when scoring in bulk; a
            joint-covariance call forms a ``(k + s + chunk_size)^2`` matrix, so
            keep it in the hundreds.
        refresh_block: stale candidates re-scored by the first joint-covariance
            call of a step (doubling on each further call, up to ``chunk_size``).

    Returns:
        :class:`BatchResult` with pool indices.

    Raises:
        ConfigError: fewer available candidates than ``q``.
    """
    q = _check_q(q)
    X = torch.as_tensor(candidates).to(objective.reference)
    if X.ndim != 2 or X.shape[1] != objective.d:
        raise ShapeError(f"candidates have shape {tuple(X.shape)}; expected N x {objective.d} unit-cube points")
    mask = torch.ones(X.shape[0], dtype=torch.bool) if available is None else torch.as_tensor(available).bool()
    n_avail = int(mask.sum())
    if n_avail < q:
        raise ConfigError(
            f"the candidate pool has {n_avail} usable points (of {X.shape[0]}; the rest are already evaluated "
            f"or pending) but q = {q} were requested; supply more candidates or ask for fewer points"
        )
    selected: list[int] = []
    gains: list[float] = []
    evaluations = 0

    def exact(idx: list[int]) -> Tensor:
        S = X[selected] if selected else None
        with torch.no_grad():
            return torch.cat([objective.gain(X[idx[i : i + chunk_size]], S) for i in range(0, len(idx), chunk_size)])

    if not lazy:
        for _ in range(q):
            idx = [i for i in torch.nonzero(mask).flatten().tolist() if i not in selected]
            g = exact(idx)
            evaluations += len(idx)
            best = int(torch.argmax(g))
            selected.append(idx[best])
            gains.append(float(g[best]))
        return BatchResult(X=X[selected], gains=torch.tensor(gains), indices=torch.tensor(selected), evaluations=evaluations)

    with torch.no_grad():
        bounds = torch.cat([objective.upper_bound(X[i : i + chunk_size]) for i in range(0, X.shape[0], chunk_size)])
    # Max-heap via negated keys; ties go to the lower index, as argmax does. Stamp -1: an upper bound.
    heap = [(-float(bounds[i]), i, -1) for i in torch.nonzero(mask).flatten().tolist()]
    heapq.heapify(heap)
    for step in range(q):
        block_size = refresh_block
        while True:
            key, i, stamp = heap[0]
            if stamp == step:
                heapq.heappop(heap)
                selected.append(i)
                gains.append(-key)
                break
            # Refresh a block of stale entries from the top in one joint-covariance call. The
            # block doubles while fresh gains keep falling below stale bounds (a surrogate with
            # long-range correlations, like an ensemble, lowers every gain at once), so a step
            # costs O(log N) calls at worst; which entry wins is unaffected.
            block: list[int] = []
            while heap and len(block) < block_size and heap[0][2] != step:
                block.append(heapq.heappop(heap)[1])
            fresh = exact(block)
            evaluations += len(block)
            for j, g in zip(block, fresh.tolist()):
                if not math.isfinite(g):
                    raise DataError(f"the marginal gain of candidate {j} is {g}; the surrogate returned non-finite variances")
                heapq.heappush(heap, (-g, j, step))
            block_size = min(2 * block_size, chunk_size)
    logger.debug("lazy greedy: q=%d from N=%d with %d exact gain evaluations", q, X.shape[0], evaluations)
    return BatchResult(X=X[selected], gains=torch.tensor(gains), indices=torch.tensor(selected), evaluations=evaluations)


def greedy_synthesis(
    objective: BatchObjective,
    q: int,
    *,
    raw_samples: int = 1024,
    restarts: int = 8,
    seed: int = 0,
    maxiter: int = 200,
) -> BatchResult:
    """Greedy batch of ``q`` synthesised points: each step maximises the marginal gain by L-BFGS-B.

    The first step screens ``raw_samples`` Sobol points; later steps reuse
    them with the previous step's values as upper bounds (gains only shrink
    as the batch grows) and start from the previous step's optima as well
    (see :func:`~surrogate_al.acquisition.synthesis.synthesise`).

    Args:
        objective: the batch objective (holds pending points and λ).
        q: batch size.
        raw_samples: Sobol points screened for the starts.
        restarts: L-BFGS-B starts per step.
        seed: seed of the Sobol raw samples.
        maxiter: L-BFGS-B iteration cap per step.

    Returns:
        :class:`BatchResult` (no pool indices).
    """
    q = _check_q(q)
    chosen = objective.reference.new_zeros((0, objective.d))
    gains: list[float] = []
    previous = None
    for _ in range(q):
        S = chosen

        def score(Xb: Tensor, S: Tensor = S) -> Tensor:
            return objective.gain(Xb, S)

        previous = synthesise(score, objective.d, raw_samples=raw_samples, restarts=restarts, seed=seed,
                              maxiter=maxiter, dtype=objective.reference.dtype, previous=previous)
        chosen = torch.cat([chosen, previous.X[:1]])
        gains.append(float(previous.values[0]))
    return BatchResult(X=chosen, gains=torch.tensor(gains))
