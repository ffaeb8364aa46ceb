"""MC-dropout MLP with a heteroscedastic head and fixed prediction masks.

One MLP is trained with dropout after every hidden layer (fresh per-example
masks each step). At prediction dropout stays on and ``T`` stochastic passes
give ``T`` predictions per point (Gal & Ghahramani, 2016, "Dropout as a
Bayesian approximation"): the variance of the passes' means is the epistemic
variance, the mean of their predicted variances the aleatoric variance.

Fixed masks: the ``T`` masks are drawn once per fit from the seeded generator
and stored (``masks_``, and in :meth:`state_dict`). Each pass is thus one fixed
thinned sub-network applied to every point, so ``predict`` is a deterministic,
smooth function of ``X`` (acquisition optimises it by gradient and calls it
repeatedly), and the covariance across passes between two points is that of
the same ``T`` sub-networks, as the joint epistemic covariance needs. The
``T`` passes run as one batch: the first layer once, then ``T x n x width``
batched matmuls.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from surrogate_al.errors import ConfigError, ShapeError
from surrogate_al.surrogates.mlp_base import MLPSurrogateBase, check_positive_int
from surrogate_al.surrogates.mlp_training import dropout_masks

__all__ = ["MCDropoutMLP"]


class MCDropoutMLP(MLPSurrogateBase):
    """Heteroscedastic MLP with MC dropout over ``T`` fixed masks.

    Inputs are scaled to the unit cube (``bounds``, or the training data's
    box), outputs standardised per output; predictions are in output units.
    Training schedule as for :class:`~surrogate_al.surrogates.ensemble.DeepEnsemble`
    (chosen by data size when ``max_epochs`` / ``batch_size`` are None).

    Args:
        hidden_layers: widths of the hidden layers (dropout follows each).
        dropout: probability of dropping a hidden unit, in ``(0, 1)``.
        num_passes: ``T`` (>= 2) stochastic passes at prediction.
        activation: ``"silu"``, ``"tanh"``, ``"gelu"``, ``"softplus"`` or ``"relu"``.
        weight_decay: decoupled (AdamW) weight decay.
        max_epochs: epochs per fit; None chooses by data size.
        batch_size: points per step; None chooses by data size.
        learning_rate: initial AdamW learning rate.
        warm_start: refit from the previous weights, with 30 % of the
            automatic step budget, when the shapes still match. Off by
            default, as for :class:`~surrogate_al.surrogates.DeepEnsemble`
            (warm refits are less accurate than fresh ones there).
        seed: seed of every random draw (initialisation, shuffling, dropout,
            the fixed prediction masks).
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ...
        dtype: ``torch.float64`` (default) or ``torch.float32``.
        bounds: ``2 x d`` input box; None to take the training data's box.

    Raises:
        ConfigError: an argument is out of range (the message names it).
    """

    def __init__(
        self,
        hidden_layers: Sequence[int] = (128, 128),
        dropout: float = 0.1,
        num_passes: int = 50,
        activation: str = "silu",
        weight_decay: float = 1e-4,
        max_epochs: int | None = None,
        batch_size: int | None = None,
        learning_rate: float = 1e-2,
        warm_start: bool = False,
        seed: int = 0, device: str | torch.device = "auto", dtype: torch.dtype = torch.float64, bounds: Any | None = None,
    ) -> None:
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 < float(dropout) < 1.0:
            raise ConfigError(f"MCDropoutMLP: dropout = {dropout!r}; expected a probability strictly between 0 and 1, e.g. 0.1")
        self.dropout = float(dropout)
        passes = check_positive_int("MCDropoutMLP: num_passes", num_passes)
        if passes < 2:
            raise ConfigError(f"MCDropoutMLP: num_passes = {num_passes!r}; need at least 2 passes for a variance (e.g. 50)")
        self.num_passes = passes
        super().__init__(
            hidden_layers=hidden_layers, activation=activation, weight_decay=weight_decay, learning_rate=learning_rate,
            max_epochs=max_epochs, batch_size=batch_size, warm_start=warm_start, seed=seed, device=device, dtype=dtype,
            bounds=bounds,
        )
        self.masks_: list[Tensor] | None = None

    def _train_options(self) -> dict[str, Any]:
        return {"dropout": self.dropout}

    def _after_fit(self, generator: torch.Generator) -> None:
        like = torch.empty((), dtype=self.dtype, device=self._device)
        # T x 1 x width: one mask per pass, shared by all points of that pass.
        self.masks_ = dropout_masks(self.hidden_layers, (self.num_passes, 1), self.dropout, generator, like)

    def _prediction_masks(self) -> list[Tensor] | None:
        return self.masks_

    def _architecture(self) -> dict[str, Any]:
        return {**super()._architecture(), "num_passes": self.num_passes, "dropout": self.dropout}

    def _extra_state(self) -> dict[str, Any]:
        assert self.masks_ is not None
        return {"masks": [m.detach().to("cpu").clone() for m in self.masks_]}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        masks = state["masks"]
        expected = [(self.num_passes, 1, w) for w in self.hidden_layers]
        if [tuple(m.shape) for m in masks] != expected:
            raise ShapeError(f"state masks have shapes {[tuple(m.shape) for m in masks]}; expected {expected}")
        self.masks_ = [m.to(device=self._device, dtype=self.dtype) for m in masks]
