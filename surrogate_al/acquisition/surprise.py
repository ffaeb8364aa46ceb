"""Weights that send the batch back to runs the model cannot explain.

A variance criterion with a stationary model looks at where the model is
unsure, not at what the outputs did: a run that lands on a narrow peak
(``simulators.sharp_peak``) barely changes the posterior variance around it,
so the next batches do not return to it and the peak stays one point wide.
The run's *leave-one-out surprise* does see it: predicted from the other runs,
its output is many standard deviations off (``z² = α_i² / (K⁻¹)_ii`` for an
exact GP), while on a smooth function every run scores about the same.

:func:`surprise_weights` turns those values into a weight per candidate, the
surprise of its nearest run relative to the median run, clipped to
``[1, cap]``: 1 almost everywhere on a smooth function (the criterion is
unchanged), up to ``cap`` around a surprising run. The batch objective
multiplies each candidate's information gain by it (``BatchObjective``'s
``information_weight``). The weight is piecewise constant in ``x`` (it
changes only where the nearest run changes), so gradient synthesis sees a
constant.

A surrogate without closed-form leave-one-out terms (a deep ensemble) gets
a GP fitted on the runs for the purpose. Either way the surprise is measured
against one noise level for the whole box, so the weighting suits
simulators whose noise does not vary much over it: where the noise is much
larger, every run there looks surprising and the batches go there. The side
GP still learns one noise level rather than taking the ensemble's aleatoric
variance at each run: that would remove the bias but also the feature's
point, because the ensemble's noise head absorbs a run it cannot fit, and a
surprising run would no longer look surprising.

It is off by default (``cap = 1``); the evidence for turning it on is in
docs/decisions.md.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from surrogate_al.errors import ConfigError, SurrogateALError

__all__ = ["SIDE_GP_MAX_RUNS", "SurpriseWeights", "check_surprise_cap", "surprise_weights"]

logger = logging.getLogger(__name__)

#: Most runs a side GP is fitted on for a surrogate without closed-form leave-one-out
#: terms: an exact GP fit costs O(n^3) (seconds at a few hundred runs, tens of seconds at
#: a thousand), and a campaign that uses a deep ensemble for thousands of runs must not
#: pay that every round. Beyond it the side GP sees the most recent runs and the older
#: runs keep weight 1.
SIDE_GP_MAX_RUNS = 500


def check_surprise_cap(cap: Any) -> float:
    """``cap`` as a float >= 1 (1: no weighting), or a ConfigError naming it."""
    if isinstance(cap, bool) or not isinstance(cap, (int, float)) or not cap >= 1 or cap == float("inf"):
        raise ConfigError(
            f"surprise_cap = {cap!r}; expected a finite number >= 1 (the largest weight a candidate near a "
            "surprising run gets; 1 turns the weighting off)"
        )
    return float(cap)


@dataclass(frozen=True)
class SurpriseWeights:
    """Per-candidate weights: the clipped relative surprise of the nearest run.

    Attributes:
        runs: ``n x d`` training inputs (unit cube).
        weights: ``n`` weights in ``[1, cap]``, one per run.
    """

    runs: Tensor
    weights: Tensor

    def __call__(self, X: Tensor) -> Tensor:
        """``b`` weights for ``b x d`` candidates ``X`` (no gradient)."""
        nearest = torch.cdist(X.detach().to(self.runs), self.runs).argmin(-1)
        return self.weights[nearest].to(X)


def _gaussian_process_of(surrogate: Any) -> Any | None:
    """The surrogate itself, or the model an ``AutoSurrogate`` serves, if it gives LOO surprises."""
    model = getattr(surrogate, "selected_model", surrogate)
    return model if callable(getattr(model, "loo_surprise", None)) else None


def surprise_weights(surrogate: Any, X: Tensor, Y: Tensor, cap: float, seed: int = 0) -> SurpriseWeights | None:
    """Weights from the leave-one-out surprise of the runs ``(X, Y)``.

    Uses the surrogate's own closed form when it is a GP (or an
    ``AutoSurrogate`` serving one); otherwise fits an exact GP on the runs for
    it (a deep ensemble has no cheap leave-one-out residuals), on the last
    :data:`SIDE_GP_MAX_RUNS` runs when there are more (the older runs then
    keep weight 1).

    Args:
        surrogate: the fitted surrogate the policy uses.
        X: ``n x d`` successful runs' inputs (unit cube), in run order.
        Y: ``n x m`` their outputs.
        cap: largest weight (>= 1).
        seed: seed of the side GP.

    Returns:
        The weights, or None when ``cap`` is 1, there are fewer than 3 runs,
        or the side GP could not be fitted (then the criterion is unweighted;
        a warning says why).
    """
    if cap <= 1.0 or X.shape[0] < 3:
        return None
    model = _gaussian_process_of(surrogate)
    recent = slice(None)
    if model is None:
        from surrogate_al.surrogates import make_surrogate

        recent = slice(max(X.shape[0] - SIDE_GP_MAX_RUNS, 0), None)
        bounds = torch.stack([torch.zeros(X.shape[1]), torch.ones(X.shape[1])]).to(X)
        try:
            # One learned noise level, not the ensemble's aleatoric variance at each run: the
            # ensemble's noise head absorbs a run it cannot fit (its aleatoric variance is
            # largest exactly at such runs), which would hide the runs this weighting looks for.
            model = make_surrogate("gp", bounds=bounds, seed=seed).fit(X[recent], Y[recent])
        except (SurrogateALError, torch.linalg.LinAlgError) as exc:
            logger.warning("surprise weights: the GP for leave-one-out residuals could not be fitted (%s); "
                           "proposing without them this round", exc)
            return None
        runs = X
    else:
        # The GP's own training inputs, in the order of its surprises.
        runs = model.train_X_.detach().to(X)
    surprise = model.loo_surprise().to(X)
    relative = surprise / surprise.median().clamp_min(torch.finfo(X.dtype).tiny)
    weights = torch.ones(runs.shape[0], dtype=X.dtype, device=X.device)
    weights[recent] = relative.clamp(1.0, cap)
    return SurpriseWeights(runs=runs, weights=weights)
