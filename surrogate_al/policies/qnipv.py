"""Baseline policy: BoTorch's ``qNegIntegratedPosteriorVariance``, ``q`` points optimised jointly."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from botorch.acquisition.active_learning import qNegIntegratedPosteriorVariance
from botorch.optim import optimize_acqf
from numpy.typing import NDArray

from surrogate_al.acquisition.qnipv import IndependentOutputsQNIPV
from surrogate_al.acquisition.scores import UncertaintyScore
from surrogate_al.acquisition.synthesis import sobol_points
from surrogate_al.data import Dataset
from surrogate_al.policies.base import Proposal
from surrogate_al.policies.proposals import DTYPE, baseline_proposal, check_int, check_request, unit_bounds
from surrogate_al.policies.state import ModelPolicy
from surrogate_al.surrogates.base import Surrogate
from surrogate_al.surrogates.botorch_adapter import SurrogateModel

__all__ = ["QNIPVPolicy"]


class QNIPVPolicy(ModelPolicy):
    """Baseline: BoTorch's ``qNegIntegratedPosteriorVariance``, ``q`` points jointly.

    The surrogate is wrapped as a BoTorch ``Model``
    (:class:`~surrogate_al.surrogates.botorch_adapter.SurrogateModel`); the
    integrated variance uses ``mc_points`` Sobol points and, for several
    outputs, the sum of the standardised outputs (weights ``1 / s_j``); the
    pending points enter as ``X_pending``; ``optimize_acqf`` optimises the
    ``q x d`` batch from ``restarts`` starts chosen among ``raw_samples``.

    Args:
        surrogate: the surrogate (None for a GP).
        raw_samples: raw ``q``-batches screened by ``optimize_acqf``.
        restarts: L-BFGS-B starts.
        mc_points: Sobol points of the variance integral.
        seed: non-negative integer seed.
        maxiter: L-BFGS-B iteration cap.
    """

    kind = "qnipv"

    def __init__(
        self,
        surrogate: Surrogate | None = None,
        *,
        raw_samples: int = 512,
        restarts: int = 8,
        mc_points: int = 512,
        seed: int = 0,
        maxiter: int = 200,
    ) -> None:
        super().__init__(surrogate, seed=seed)
        self._set_optimiser(raw_samples, restarts, maxiter)
        self.mc_points = check_int("mc_points", mc_points, 1)

    def propose(
        self, data: Dataset, n: int, pending: NDArray[np.float64] | None = None, progress: float = 0.0
    ) -> Proposal:
        """``n`` points maximising the joint reduction of integrated posterior variance."""
        n, P, _ = check_request(data, n, pending, progress)
        surrogate = self._ensure_fitted(data)
        d = data.d
        seed0, seed1, seed2 = self._round_seeds(3)
        model = SurrogateModel(surrogate)
        mc = sobol_points(self.mc_points, d, seed0, dtype=DTYPE)
        scale = self._scale(data)
        X_pending = torch.tensor(P, dtype=DTYPE) if P.shape[0] else None  # a copy: P may be read-only
        acq: qNegIntegratedPosteriorVariance
        if data.m > 1:
            acq = IndependentOutputsQNIPV(model, mc_points=mc, weights=1.0 / scale, X_pending=X_pending)
        else:
            acq = qNegIntegratedPosteriorVariance(model, mc_points=mc, X_pending=X_pending)
        with warnings.catch_warnings(), torch.random.fork_rng():
            # optimize_acqf warns when L-BFGS-B stops at maxiter; the best point found is still used.
            warnings.simplefilter("ignore", RuntimeWarning)
            # Its seed fixes only the raw samples; the choice of starts among them and the fantasy
            # sampler draw from torch's global generator: seeded here, so a round is reproducible.
            torch.manual_seed(seed2)
            X, _ = optimize_acqf(
                acq, bounds=unit_bounds(d), q=n, num_restarts=self.restarts, raw_samples=self.raw_samples,
                # Raw batches screened 32 at a time: all at once would hold a fantasy model per raw
                # batch in memory (gigabytes for a few outputs and hundreds of points); the values
                # are the same.
                options={"maxiter": self.maxiter, "seed": seed1, "init_batch_limit": 32},
            )
        self.counter_ += 1
        X = X.detach().reshape(n, d).clamp(0.0, 1.0)
        reference = sobol_points(1024, d, seed0, dtype=DTYPE)
        with torch.no_grad():
            U = UncertaintyScore(surrogate, reference, scale, X_labelled=torch.as_tensor(data.X, dtype=DTYPE))(X).numpy()
        return baseline_proposal(X.numpy(), data, P, "qnipv", U=U)

