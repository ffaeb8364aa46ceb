"""Deep ensemble of heteroscedastic MLPs, trained as one vectorised model.

``M`` MLPs with independent initialisations (and optionally bootstrap
resamples) are stored as batched weight tensors (``M x fan_in x fan_out`` per
layer) and trained and evaluated together with batched matmuls
(:class:`~surrogate_al.surrogates.mlp_training.BatchedMLP`), so an ensemble costs a
few large kernels per step instead of ``M`` times as many small ones.

Each member predicts a mean and a variance per output (beta-NLL training, see
:mod:`surrogate_al.surrogates.mlp_training`). With member means ``mu_i`` and variances
``s_i^2`` (law of total variance over the uniform mixture of members):

* ``mean = (1/M) sum_i mu_i``
* ``epistemic_var = (1/M) sum_i (mu_i - mean)^2`` (member disagreement)
* ``aleatoric_var = (1/M) sum_i s_i^2`` (learned noise)

Reference: Lakshminarayanan, Pritzel & Blundell (2017), "Simple and scalable
predictive uncertainty estimation using deep ensembles".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from surrogate_al.errors import ConfigError
from surrogate_al.surrogates.mlp_base import MLPSurrogateBase, check_positive_int
from surrogate_al.surrogates.base import require_fitted

__all__ = ["DeepEnsemble"]


class DeepEnsemble(MLPSurrogateBase):
    """Vectorised deep ensemble with a heteroscedastic head.

    Inputs are scaled to the unit cube (``bounds``, or the training data's
    box), outputs standardised per output; predictions are in output units.

    Training defaults work from about 10 to 100 000 points without tuning (see
    :func:`~surrogate_al.surrogates.mlp_training.plan_training`): about 2000 AdamW steps
    (at least 10 epochs) with a cosine learning-rate decay from 1e-2, full
    batch up to 128 points and equal minibatches of at most 128 above; from
    1000 points on, each member holds out its own random 10 % for early
    stopping and keeps its best weights. On Branin this reaches a test NRMSE
    of about 0.01 at both n = 200 and n = 5000.

    Args:
        num_members: ``M`` (>= 2); more members estimate the epistemic variance
            less noisily at proportionally more cost.
        hidden_layers: widths of the hidden layers.
        activation: ``"silu"`` (smooth, so gradients in ``X`` are smooth),
            ``"tanh"``, ``"gelu"``, ``"softplus"`` or ``"relu"``.
        weight_decay: decoupled (AdamW) weight decay.
        bootstrap: resample each member's training points with replacement
            (more diversity, at the price of fitting each member to ~63 % of
            the distinct points).
        max_epochs: epochs per fit; None chooses by data size.
        batch_size: points per step and member; None chooses by data size.
        learning_rate: initial AdamW learning rate.
        warm_start: refit from the previous weights (re-expressed in the new
            input box and output scaling, so training starts from the
            previous mean function) with 30 % of the automatic step budget
            when ``d`` and ``m`` still match: a refit then costs about a
            third of a cold one. Off by default: refitted along growing data,
            a warm-started ensemble is less accurate than a fresh fit on the
            same points, even with the full step budget, so starting from the
            previous weights, not only the shorter training, costs accuracy
            (``python -m benchmarks.warm_start``; the figures are in
            docs/decisions.md). Worth it only where a fit costs as much as a
            simulator run.
        seed: seed of every random draw (initialisation, shuffling, hold-out,
            bootstrap); a fixed seed reproduces training on CPU.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ...
        dtype: ``torch.float64`` (default: outputs of scientific simulators
            often need more than float32's 7 digits once standardised, and
            acquisition compares small variances) or ``torch.float32``
            (faster, notably on GPUs).
        bounds: ``2 x d`` input box (lower row, upper row); None to take the
            training data's box.

    Raises:
        ConfigError: an argument is out of range (the message names it).
    """

    def __init__(
        self,
        num_members: int = 8,
        hidden_layers: Sequence[int] = (64, 64),
        activation: str = "silu",
        weight_decay: float = 1e-4,
        bootstrap: bool = False,
        max_epochs: int | None = None,
        batch_size: int | None = None,
        learning_rate: float = 1e-2,
        warm_start: bool = False,
        seed: int = 0,
        device: str | torch.device = "auto",
        dtype: torch.dtype = torch.float64,
        bounds: Any | None = None,
    ) -> None:
        members = check_positive_int("DeepEnsemble: num_members", num_members)
        if members < 2:
            raise ConfigError(
                f"DeepEnsemble: num_members = {num_members!r}; an ensemble needs at least 2 members to estimate "
                "epistemic variance (5 to 10 is typical)"
            )
        self.num_members = members
        self._num_networks = members
        self.bootstrap = bool(bootstrap)
        super().__init__(
            hidden_layers=hidden_layers, activation=activation, weight_decay=weight_decay, learning_rate=learning_rate,
            max_epochs=max_epochs, batch_size=batch_size, warm_start=warm_start, seed=seed, device=device, dtype=dtype,
            bounds=bounds,
        )

    def _train_options(self) -> dict[str, Any]:
        return {"bootstrap": self.bootstrap}

    def member(self, index: int) -> torch.nn.Sequential:
        """Member ``index`` as a plain ``nn.Sequential`` mapping unit-cube inputs to ``2m`` outputs.

        The first ``m`` outputs are standardised means, the last ``m`` raw
        variances (variance = ``softplus(raw) + 1e-6``). A copy, for checks and
        export; changing it does not change the ensemble.
        """
        require_fitted(self, "net_")
        assert self.net_ is not None
        if not 0 <= index < self.num_members:
            raise ConfigError(f"DeepEnsemble: member index {index!r} is out of range; expected 0 <= index < {self.num_members}")
        return self.net_.network(index)
