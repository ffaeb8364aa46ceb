"""The networks of the MLP surrogates (deep ensemble and MC dropout) and how they are trained.

Both models are heteroscedastic MLPs: every network maps ``d`` unit-cube inputs
to ``2m`` numbers per point, a mean and a raw variance per output, in
standardised output units. They differ only in where the spread of the mean
(the epistemic part) comes from: ``M`` independently initialised networks for
the ensemble, ``T`` fixed dropout masks over one network for MC dropout. So
this module holds, once:

* :class:`BatchedMLP`: ``B`` MLPs of one architecture as batched weight tensors
  (``B x fan_in x fan_out``), evaluated with batched matmuls, never a Python
  loop over networks;
* :func:`plan_training` and :func:`train_networks`: the training schedule
  chosen from the data size, and the training loop (AdamW, cosine learning
  rate, beta-NLL, per-network hold-out and early stopping).

The surrogate interface on top of them (``fit`` / ``predict`` /
``joint_epistemic_covariance`` / ``state_dict``) is
:class:`~surrogate_al.surrogates.mlp_base.MLPSurrogateBase`.

Loss (why beta-NLL): the plain Gaussian NLL lets a network explain residuals
by inflating its variance instead of fitting the mean, and its mean gradient is
weighted by ``1 / var`` so badly fitted regions learn slowest (Seitzer et al.,
2022, "On the pitfalls of heteroscedastic uncertainty estimation"). Weighting
each point's NLL by ``stopgrad(var) ** 0.5`` (beta-NLL, beta = 0.5) keeps the
NLL's variance estimate while the mean learns almost like MSE; it fits
noise-free functions (Branin) and noisy ones alike without a separate MSE
warm-up phase. Variances are ``softplus(raw) + 1e-6`` (standardised units): the
floor keeps the NLL finite on noise-free data, softplus keeps gradients sane.

Known noise: when ``Yvar`` is given, the noise is not learned from residuals.
The mean is fitted by weighted least squares with weights ``1 / Yvar``
(normalised to mean 1, which is the Gaussian NLL with that fixed variance up to
a constant), and the variance head regresses ``log Yvar`` so that the
aleatoric variance at new points interpolates the known noise.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "ACTIVATIONS",
    "BETA",
    "MIN_VAR",
    "PREDICT_BLOCK_ELEMENTS",
    "BatchedMLP",
    "TrainingPlan",
    "TrainingReport",
    "cosine_learning_rate",
    "dropout_masks",
    "network_losses",
    "plan_training",
    "split_head",
    "train_networks",
]

logger = logging.getLogger(__name__)

#: Hidden-layer activations by name (smooth ones give smooth gradients in X).
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "softplus": nn.Softplus,
}

#: Variance floor in standardised units (std >= 1e-3 of the output's spread).
MIN_VAR = 1e-6
#: beta of the beta-NLL (0 = plain NLL, 1 = MSE-like mean gradient).
BETA = 0.5
#: Gradient steps of an automatic schedule (cold start); see :func:`plan_training`.
TARGET_STEPS = 2000
#: Fraction of :data:`TARGET_STEPS` run by an automatic warm-started refit.
WARM_START_FRACTION = 0.3
#: Automatic schedules never run fewer / more epochs than this.
MIN_AUTO_EPOCHS = 10
MAX_AUTO_EPOCHS = 3000
#: Largest automatic minibatch; smaller data sets train full batch. 128 fits as well as
#: larger batches at a lower cost per step, and keeps an M = 8 ensemble's activations
#: (M x 128 x 64) inside a core's L2 cache.
MAX_AUTO_BATCH = 128
#: Early stopping only from this many points on; below, every point is needed for fitting.
EARLY_STOPPING_MIN_POINTS = 1000
#: Share of points each network holds out for early stopping.
VALIDATION_FRACTION = 0.1
#: Final learning rate of the cosine schedule, relative to the initial one.
FINAL_LR_FACTOR = 0.02
#: Prediction evaluates at most about this many hidden activations (K x rows x width)
#: at once: larger blocks fall out of cache and cost more per point.
PREDICT_BLOCK_ELEMENTS = 2**18


# ---------------------------------------------------------------------------------------
# batched network
# ---------------------------------------------------------------------------------------
class BatchedMLP(nn.Module):
    """``B`` MLPs of one architecture stored as batched weight tensors.

    Layer ``l`` holds ``weights[l]`` (``B x fan_in x fan_out``) and
    ``biases[l]`` (``B x 1 x fan_out``); network ``b`` is exactly
    ``nn.Sequential(Linear, act, ..., Linear)`` with weights
    ``weights[l][b].T`` and biases ``biases[l][b, 0]``.

    Args:
        num_networks: ``B``.
        in_dim: ``d``.
        hidden_layers: widths of the hidden layers.
        out_dim: outputs per point (``2m`` for a heteroscedastic head).
        activation: a key of :data:`ACTIVATIONS`.
        generator: random source for the initialisation (reproducibility).
        dtype: parameter dtype.
        device: parameter device.
    """

    def __init__(
        self,
        num_networks: int,
        in_dim: int,
        hidden_layers: Sequence[int],
        out_dim: int,
        activation: str,
        generator: torch.Generator,
        dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        super().__init__()
        self.num_networks = num_networks
        self.activation = activation
        self._act = ACTIVATIONS[activation]()
        sizes = [in_dim, *hidden_layers, out_dim]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in itertools.pairwise(sizes):
            # nn.Linear's default init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), drawn
            # independently per network: the ensemble's diversity starts here.
            bound = 1.0 / math.sqrt(fan_in)
            w = torch.rand(num_networks, fan_in, fan_out, generator=generator, device=generator.device)
            b = torch.rand(num_networks, 1, fan_out, generator=generator, device=generator.device)
            self.weights.append(nn.Parameter(((2 * w - 1) * bound).to(device=device, dtype=dtype)))
            self.biases.append(nn.Parameter(((2 * b - 1) * bound).to(device=device, dtype=dtype)))

    @property
    def hidden_sizes(self) -> list[int]:
        """Widths of the hidden layers."""
        return [w.shape[-1] for w in self.weights[:-1]]

    def forward(self, X: Tensor, masks: Sequence[Tensor] | None = None) -> Tensor:
        """Evaluate all networks.

        Args:
            X: ``n x d`` inputs shared by all networks, or ``K x n x d`` with
                ``K = B`` (one slice per network) or ``B = 1`` (one network,
                ``K`` slices, e.g. dropout passes).
            masks: optional multipliers applied after each hidden activation,
                one per hidden layer, broadcastable to ``K x n x width``
                (dropout masks, already scaled by ``1 / keep``).

        Returns:
            ``K x n x out_dim`` outputs (``K = B`` for ``n x d`` inputs).
        """
        h = X
        last = len(self.weights) - 1
        if h.ndim == 2:
            # Shared inputs: a stride-0 expand feeds one batched GEMM without copying X
            # (matmul's broadcasting would materialise B copies of the activations).
            h = h.expand(self.num_networks, -1, -1)
        for layer, (w, b) in enumerate(zip(self.weights, self.biases)):
            if h.shape[0] == w.shape[0]:
                # One fused batched GEMM + bias per layer for all networks.
                h = torch.baddbmm(b, h, w)
            else:
                # One network (B = 1) applied to K slices (dropout passes): a single GEMM.
                h = torch.matmul(h, w) + b
            if layer < last:
                h = self._act(h)
                if masks is not None:
                    h = h * masks[layer]
        return h

    def network(self, index: int) -> nn.Sequential:
        """Network ``index`` as a plain ``nn.Sequential`` (a copy, for checks and export)."""
        layers: list[nn.Module] = []
        for layer, (w, b) in enumerate(zip(self.weights, self.biases)):
            lin = nn.Linear(w.shape[1], w.shape[2], dtype=w.dtype, device=w.device)
            with torch.no_grad():
                lin.weight.copy_(w[index].T)
                lin.bias.copy_(b[index, 0])
            layers.append(lin)
            if layer < len(self.weights) - 1:
                layers.append(ACTIVATIONS[self.activation]())
        return nn.Sequential(*layers)


def split_head(out: Tensor) -> tuple[Tensor, Tensor]:
    """``... x 2m`` network outputs -> (``... x m`` means, ``... x m`` variances)."""
    m = out.shape[-1] // 2
    return out[..., :m], F.softplus(out[..., m:]) + MIN_VAR


# ---------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainingPlan:
    """How one fit trains.

    Attributes:
        epochs: passes over each network's training points.
        batch_size: points per gradient step and network.
        num_validation: points each network holds out for early stopping (0: none).
        patience: epochs without improvement of any network before stopping.
    """

    epochs: int
    batch_size: int
    num_validation: int
    patience: int


@dataclass(frozen=True)
class TrainingReport:
    """What one fit did.

    Attributes:
        epochs: epochs run (fewer than planned when stopped early).
        steps: gradient steps run.
        train_loss: last step's training loss, averaged over networks.
        val_loss: best validation loss per network (empty without hold-out).
    """

    epochs: int
    steps: int
    train_loss: float
    val_loss: tuple[float, ...]


def plan_training(n: int, max_epochs: int | None, batch_size: int | None, warm: bool) -> TrainingPlan:
    """Choose epochs, batch size and hold-out from the data size.

    Automatic choices (so one default works from 10 to 100 000 points): hold
    out :data:`VALIDATION_FRACTION` for early stopping once ``n >=``
    :data:`EARLY_STOPPING_MIN_POINTS`; train full batch up to
    :data:`MAX_AUTO_BATCH` points, else in equal minibatches of at most that
    size; run about :data:`TARGET_STEPS` gradient steps (a fraction
    :data:`WARM_START_FRACTION` of them on a warm start), never fewer than
    :data:`MIN_AUTO_EPOCHS` epochs, so large data sets see every point
    several times.

    Args:
        n: number of training points.
        max_epochs: explicit epoch count, or None for automatic.
        batch_size: explicit batch size, or None for automatic.
        warm: whether training starts from a previous fit's weights.

    Returns:
        The plan.
    """
    num_validation = round(VALIDATION_FRACTION * n) if n >= EARLY_STOPPING_MIN_POINTS else 0
    n_train = n - num_validation
    if batch_size is None:
        # Equal-sized batches: 300 points train as 2 x 150, not 256 + 44.
        batch_size = math.ceil(n_train / math.ceil(n_train / MAX_AUTO_BATCH))
    batch_size = min(batch_size, n_train)
    batches_per_epoch = math.ceil(n_train / batch_size)
    if max_epochs is None:
        steps = TARGET_STEPS * (WARM_START_FRACTION if warm else 1.0)
        epochs = min(max(math.ceil(steps / batches_per_epoch), MIN_AUTO_EPOCHS), MAX_AUTO_EPOCHS)
    else:
        epochs = max_epochs
    patience = max(5, epochs // 10)
    return TrainingPlan(epochs=epochs, batch_size=batch_size, num_validation=num_validation, patience=patience)


def cosine_learning_rate(step: int, total_steps: int, learning_rate: float) -> float:
    """Learning rate at ``step`` of ``total_steps``: cosine decay to :data:`FINAL_LR_FACTOR` of the start.

    Large steps early escape the plateaus of a fresh network; small steps late
    let the weights settle, which matters for noise-free simulator data.
    """
    cosine = 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / max(total_steps, 1)))
    return learning_rate * (FINAL_LR_FACTOR + (1 - FINAL_LR_FACTOR) * cosine)


def dropout_masks(
    hidden: Sequence[int], shape: tuple[int, int], p: float, generator: torch.Generator, like: Tensor
) -> list[Tensor]:
    """Inverted-dropout masks ``shape x width`` per hidden layer (kept units scaled by ``1/(1-p)``)."""
    keep = 1.0 - p
    return [
        (torch.rand(*shape, width, generator=generator, device=generator.device) < keep).to(like) / keep
        for width in hidden
    ]


def network_losses(out: Tensor, Z: Tensor, W: Tensor | None, logV: Tensor | None, beta: float) -> Tensor:
    """Per-network training loss, shape ``B``.

    Args:
        out: ``B x b x 2m`` network outputs.
        Z: ``B x b x m`` standardised targets.
        W: ``B x b x m`` least-squares weights (known noise) or None (learned noise).
        logV: ``B x b x m`` log known variances, or None.
        beta: beta-NLL exponent (0 gives the plain NLL; used for validation).
    """
    mean, var = split_head(out)
    sq = (Z - mean) ** 2
    if W is not None and logV is not None:
        # Known noise: weighted least squares for the mean, regression of log-noise for the head.
        loss = W * sq + (torch.log(var) - logV) ** 2
    else:
        loss = 0.5 * (torch.log(var) + sq / var)
        if beta > 0:
            loss = loss * var.detach() ** beta
    return loss.mean(dim=(1, 2))


def train_networks(
    net: BatchedMLP,
    U: Tensor,
    Z: Tensor,
    V: Tensor | None,
    plan: TrainingPlan,
    *,
    learning_rate: float,
    weight_decay: float,
    generator: torch.Generator,
    bootstrap: bool = False,
    dropout: float = 0.0,
) -> TrainingReport:
    """Train all ``B`` networks of ``net`` together, in place.

    Every network gets its own shuffled order of minibatches, its own
    hold-out slice (when ``plan.num_validation > 0``; so the ensemble as a
    whole still learns from every point) and, with ``bootstrap``, its own
    resample. The summed loss gives each network exactly its own gradient,
    and AdamW is elementwise, so this is ``B`` independent trainings run as one.
    With early stopping each network keeps its own best weights.

    Args:
        net: the networks (trained in place).
        U: ``n x d`` unit-cube inputs.
        Z: ``n x m`` standardised outputs.
        V: ``n x m`` known noise variances in standardised units, or None.
        plan: from :func:`plan_training`.
        learning_rate: initial AdamW learning rate (cosine-decayed).
        weight_decay: decoupled (AdamW) weight decay.
        generator: random source (shuffles, hold-out, bootstrap, dropout).
        bootstrap: resample each network's training points with replacement.
        dropout: per-example dropout probability after each hidden layer.

    Returns:
        What happened.
    """
    B, n = net.num_networks, U.shape[0]
    gdev = generator.device
    order = torch.argsort(torch.rand(B, n, generator=generator, device=gdev), dim=1).to(U.device)
    val_idx, train_idx = order[:, : plan.num_validation], order[:, plan.num_validation :]
    n_train = train_idx.shape[1]
    if bootstrap:
        draw = torch.randint(0, n_train, (B, n_train), generator=generator, device=gdev).to(U.device)
        train_idx = train_idx.gather(1, draw)

    W = logV = None
    if V is not None:
        inv = 1.0 / (V + MIN_VAR)
        W, logV = inv / inv.mean(dim=0, keepdim=True), torch.log(V + MIN_VAR)

    def batch(idx: Tensor) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        return U[idx], Z[idx], None if W is None else W[idx], None if logV is None else logV[idx]

    params = list(net.parameters())
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=weight_decay)
    batches_per_epoch = math.ceil(n_train / plan.batch_size)
    total_steps = plan.epochs * batches_per_epoch
    full = batch(train_idx) if batches_per_epoch == 1 else None
    hidden = net.hidden_sizes

    best_val = torch.full((B,), math.inf, dtype=U.dtype, device=U.device)
    best_params = [p.detach().clone() for p in params] if plan.num_validation else []
    val_data = batch(val_idx) if plan.num_validation else None
    since_best, step, epoch = 0, 0, 0
    loss = torch.full((), math.nan)

    for epoch in range(1, plan.epochs + 1):
        if full is not None:
            batches: list[tuple[Tensor, Tensor, Tensor | None, Tensor | None]] = [full]
        else:
            shuffle = torch.argsort(torch.rand(B, n_train, generator=generator, device=gdev), dim=1)
            epoch_idx = train_idx.gather(1, shuffle.to(U.device))
            batches = [batch(idx) for idx in epoch_idx.split(plan.batch_size, dim=1)]
        for Ub, Zb, Wb, Vb in batches:
            for group in optimizer.param_groups:
                group["lr"] = cosine_learning_rate(step, total_steps, learning_rate)
            masks = dropout_masks(hidden, (Ub.shape[0], Ub.shape[1]), dropout, generator, Ub) if dropout > 0 else None
            loss = network_losses(net(Ub, masks), Zb, Wb, Vb, BETA).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
        if val_data is not None:
            with torch.no_grad():
                Uv, Zv, Wv, Vv = val_data
                val = network_losses(net(Uv), Zv, Wv, Vv, 0.0)
                improved = val < best_val - 1e-4 * best_val.abs().clamp(max=1e6)
                if improved.any():
                    best_val = torch.where(improved, val, best_val)
                    for p, kept in zip(params, best_params):
                        kept[improved] = p.detach()[improved]
                    since_best = 0
                else:
                    since_best += 1
            if since_best >= plan.patience:
                logger.debug("early stop after %d epochs (patience %d)", epoch, plan.patience)
                break

    optimizer.zero_grad(set_to_none=True)
    if best_params:
        with torch.no_grad():
            for p, kept in zip(params, best_params):
                p.copy_(kept)
    for p in params:
        # Predictions then build graphs in X only, not in the weights.
        p.requires_grad_(False)
    return TrainingReport(
        epochs=epoch,
        steps=step,
        train_loss=loss.item() / B,
        val_loss=tuple(float(v) for v in best_val.tolist()) if plan.num_validation else (),
    )
