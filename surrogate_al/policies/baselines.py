"""Baseline policies: uniform random points, a continued Sobol sequence, pure uncertainty top-q.

* :class:`RandomPolicy` (``"random"``): uniform points.
* :class:`SobolPolicy` (``"sobol"``): one scrambled Sobol sequence continued
  across calls.
* :class:`UncertaintyPolicy` (``"uncertainty"``): pure epistemic top-q
  (synthesised ``U`` maxima; no diversity, no batch conditioning, pending
  points ignored).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from scipy.stats import qmc
from torch import Tensor

from surrogate_al.acquisition.scores import UncertaintyScore
from surrogate_al.acquisition.synthesis import sobol_points, synthesise, top_distinct
from surrogate_al.data import Dataset
from surrogate_al.policies.base import Proposal
from surrogate_al.policies.proposals import DTYPE, baseline_proposal, check_int, check_request
from surrogate_al.policies.state import CountingPolicy, ModelPolicy
from surrogate_al.surrogates.base import Surrogate

__all__ = ["RandomPolicy", "SobolPolicy", "UncertaintyPolicy"]


class RandomPolicy(CountingPolicy):
    """Uniform random points; a draw depends only on ``(seed, counter)``.

    Args:
        seed: non-negative integer seed.
    """

    kind = "random"
    needs_model = False

    def fit(self, data: Dataset) -> RandomPolicy:
        """Nothing to learn; returns ``self``."""
        return self

    def propose(
        self, data: Dataset, n: int, pending: NDArray[np.float64] | None = None, progress: float = 0.0
    ) -> Proposal:
        """``n x d`` uniform points (``pending`` and ``progress`` are validated, not used)."""
        n, P, _ = check_request(data, n, pending, progress)
        X = np.random.default_rng(self._round_seeds(1)[0]).random((n, data.d))
        self.counter_ += 1
        return baseline_proposal(X, data, P, "random")


class SobolPolicy(CountingPolicy):
    """One scrambled Sobol sequence, continued across calls (never repeats a point).

    Each call rebuilds the sequence from ``seed`` and fast-forwards it past
    the points already drawn, so the state is one integer.

    Args:
        seed: seed of the scrambling.
        skip: points at the start of the sequence that are already used; the
            policy starts after them. A campaign whose initial design is a
            scrambled Sobol design with the same seed drew exactly its first
            ``design size`` points: without the skip the policy's first
            proposals would repeat the design point for point.
    """

    kind = "sobol"
    needs_model = False

    def __init__(self, seed: int = 0, skip: int = 0) -> None:
        super().__init__(seed)
        self.skip = check_int("skip", skip, 0)
        self.drawn_ = 0

    def fit(self, data: Dataset) -> SobolPolicy:
        """Nothing to learn; returns ``self``."""
        return self

    def _extra_state(self) -> dict[str, Any]:
        return {"drawn": self.drawn_}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self.drawn_ = check_int("state['drawn']", int(state.get("drawn", 0)), 0)

    def propose(
        self, data: Dataset, n: int, pending: NDArray[np.float64] | None = None, progress: float = 0.0
    ) -> Proposal:
        """The next ``n`` points of the sequence."""
        n, P, _ = check_request(data, n, pending, progress)
        sampler = qmc.Sobol(data.d, scramble=True, rng=np.random.default_rng(self.seed))
        if self.skip + self.drawn_:  # scipy's fast_forward(0) underflows an unsigned counter
            sampler.fast_forward(self.skip + self.drawn_)
        with warnings.catch_warnings():
            # Balance needs n = 2^k per call; the continued sequence stays low-discrepancy overall.
            warnings.simplefilter("ignore", UserWarning)
            X = sampler.random(n)
        self.drawn_ += n
        self.counter_ += 1
        return baseline_proposal(X, data, P, "sobol")



class UncertaintyPolicy(ModelPolicy):
    """Baseline: pure epistemic top-q (no diversity, no batch conditioning, pending ignored).

    Synthesises maxima of ``U`` from ``max(restarts, q)`` starts and returns
    the ``q`` best distinct optima (topped up with the best raw samples if
    fewer hills exist). This is what a batch looks like without the essay's
    diversity term: typically several points on the same hill.

    Args:
        surrogate: the surrogate (None for a GP).
        raw_samples: Sobol points screened.
        restarts: L-BFGS-B starts (at least ``q`` are used).
        seed: non-negative integer seed.
        reference_size: Sobol points that normalise ``U``.
        maxiter: L-BFGS-B iteration cap.
    """

    kind = "uncertainty"

    def __init__(
        self,
        surrogate: Surrogate | None = None,
        *,
        raw_samples: int = 1024,
        restarts: int = 8,
        seed: int = 0,
        reference_size: int = 1024,
        maxiter: int = 200,
    ) -> None:
        super().__init__(surrogate, seed=seed)
        self._set_optimiser(raw_samples, restarts, maxiter)
        self.reference_size = check_int("reference_size", reference_size, 2)

    def propose(
        self, data: Dataset, n: int, pending: NDArray[np.float64] | None = None, progress: float = 0.0
    ) -> Proposal:
        """The ``n`` best distinct maxima of ``U`` (``pending`` validated but ignored by design)."""
        n, P, _ = check_request(data, n, pending, progress)
        surrogate = self._ensure_fitted(data)
        seed0, seed1 = self._round_seeds(2)
        reference = sobol_points(self.reference_size, data.d, seed0, dtype=DTYPE)
        labelled = torch.as_tensor(data.X, dtype=DTYPE)
        uncertainty = UncertaintyScore(surrogate, reference, self._scale(data), X_labelled=labelled)
        restarts = max(self.restarts, n)

        def ratio(X: Tensor) -> Tensor:
            # Optimise the uncapped ratio u / u_ref: the soft cap would flatten the tops of the hills.
            return uncertainty.raw(X) / uncertainty.scale_

        result = synthesise(ratio, data.d, raw_samples=max(self.raw_samples, restarts), restarts=restarts,
                            seed=seed1, maxiter=self.maxiter)
        X, _ = top_distinct(result, n)
        self.counter_ += 1
        with torch.no_grad():
            U_np = uncertainty(X).numpy()
        return baseline_proposal(X.detach().numpy(), data, P, "uncertainty", U=U_np, J=U_np, lam=1.0)

