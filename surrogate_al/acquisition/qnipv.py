"""Integrated posterior variance of several independent outputs, at the cost of one."""

from __future__ import annotations

from botorch.acquisition.active_learning import qNegIntegratedPosteriorVariance
from botorch.models.model import Model
from botorch.utils.transforms import average_over_ensemble_models, concatenate_pending_points, t_batch_mode_transform
from torch import Tensor

__all__ = ["IndependentOutputsQNIPV"]


class IndependentOutputsQNIPV(qNegIntegratedPosteriorVariance):
    """``qNegIntegratedPosteriorVariance`` of a weighted sum of independent outputs.

    BoTorch's class, for a model with several outputs and a
    ``ScalarizedPosteriorTransform``, evaluates the fantasy posterior at each
    integration point separately (``N`` t-batches of one point each, a
    documented stop-gap in BoTorch), so time and memory grow with ``N``
    fantasy posteriors: minutes and gigabytes per proposal for a few outputs
    and a few hundred points. When the outputs are independent given the data (every
    surrogate of this package: batched GPs, ensembles and MC dropout all
    model the outputs separately), the variance of ``sum_j w_j f_j`` is
    ``sum_j w_j^2 var_j``, so one joint evaluation at all ``N`` points gives
    the same value at the single-output cost.

    Args:
        model: a BoTorch model with ``m`` independent outputs.
        mc_points: ``N x d`` integration points.
        weights: ``m`` output weights ``w``.
        X_pending: ``k x d`` points whose runs are in flight, or None.
    """

    def __init__(self, model: Model, mc_points: Tensor, weights: Tensor, X_pending: Tensor | None = None) -> None:
        super().__init__(model, mc_points=mc_points, X_pending=X_pending)
        self.register_buffer("weights", weights.to(mc_points))

    @concatenate_pending_points
    @t_batch_mode_transform()
    @average_over_ensemble_models
    def forward(self, X: Tensor) -> Tensor:
        """Negative mean over the integration points of ``sum_j w_j^2 var_j`` after fantasising ``X``.

        Args:
            X: ``batch x q x d`` candidate batches.

        Returns:
            ``batch`` values.
        """
        fantasy_model = self.model.fantasize(X=X, sampler=self.sampler)
        bdims = tuple(1 for _ in X.shape[:-2])
        posterior = fantasy_model.posterior(self.mc_points.view(*bdims, -1, X.size(-1)))
        variance = (posterior.variance * self.weights.pow(2)).sum(dim=-1)  # 1 x batch x N
        return variance.mean(dim=-1).mul(-1.0).squeeze(0)

