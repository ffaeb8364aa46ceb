"""The surrogate interface shared by the heteroscedastic MLP surrogates (deep ensemble and MC dropout).

:class:`MLPSurrogateBase` implements ``fit`` / ``predict`` /
``joint_epistemic_covariance`` / ``state_dict`` once, on top of the batched
networks and the training loop of :mod:`surrogate_al.surrogates.mlp_training`;
:class:`~surrogate_al.surrogates.ensemble.DeepEnsemble` and
:class:`~surrogate_al.surrogates.mc_dropout.MCDropoutMLP` say only where their
``K`` predictions per point come from. The argument checks they share are
here too.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from surrogate_al.errors import ConfigError, ShapeError
from surrogate_al.surrogates.base import (
    InputScaler,
    OutputStandardizer,
    Prediction,
    as_tensor,
    check_bounds,
    check_inputs,
    check_training_data,
    require_fitted,
    resolve_device,
)
from surrogate_al.surrogates.mlp_training import (
    ACTIVATIONS,
    PREDICT_BLOCK_ELEMENTS,
    BatchedMLP,
    TrainingReport,
    plan_training,
    split_head,
    train_networks,
)

__all__ = [
    "MLPSurrogateBase",
    "check_nonnegative_float",
    "check_optional_positive_int",
    "check_positive_int",
]

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------
# argument checks
# ---------------------------------------------------------------------------------------
def check_positive_int(name: str, value: Any) -> int:
    """Return ``value`` as an int >= 1 or raise :class:`ConfigError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} = {value!r}; expected a positive integer")
    return int(value)


def check_optional_positive_int(name: str, value: Any) -> int | None:
    """Return None, or ``value`` as an int >= 1; else raise :class:`ConfigError` naming ``name``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} = {value!r}; expected a positive integer, or None for automatic")
    return int(value)


def check_nonnegative_float(name: str, value: Any, positive: bool = False) -> float:
    """Return ``value`` as a finite float >= 0 (> 0 with ``positive``) or raise :class:`ConfigError`."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not ok or not math.isfinite(float(value)) or float(value) < 0 or (positive and float(value) == 0):
        kind = "a positive" if positive else "a non-negative"
        raise ConfigError(f"{name} = {value!r}; expected {kind} finite number")
    return float(value)


# ---------------------------------------------------------------------------------------
# surrogate base
# ---------------------------------------------------------------------------------------
class MLPSurrogateBase:
    """``fit`` / ``predict`` / state handling shared by the heteroscedastic MLP surrogates.

    A subclass sets :attr:`_num_networks` and may override the hooks
    :meth:`_train_options`, :meth:`_after_fit`, :meth:`_prediction_masks`,
    :meth:`_extra_state` and :meth:`_load_extra_state`. The networks produce
    ``K`` predictions per point (``K`` members or dropout passes); the mean of
    their means is the prediction, the variance of their means the epistemic
    variance and the mean of their variances the aleatoric variance (law of
    total variance over the ``K``-component mixture, so both use ``1 / K``).
    """

    _num_networks: int = 1
    #: The epistemic covariance is the empirical one of ``K`` networks (see
    #: :func:`surrogate_al.acquisition.batch_objective.has_sampled_covariance`).
    sampled_covariance: bool = True

    def __init__(
        self,
        *,
        hidden_layers: Sequence[int],
        activation: str,
        weight_decay: float,
        learning_rate: float,
        max_epochs: int | None,
        batch_size: int | None,
        warm_start: bool,
        seed: int,
        device: str | torch.device,
        dtype: torch.dtype,
        bounds: Any | None,
    ) -> None:
        who = type(self).__name__
        if isinstance(hidden_layers, (int, np.integer)) or not hidden_layers:
            raise ConfigError(
                f"{who}: hidden_layers = {hidden_layers!r}; expected a non-empty sequence of layer widths, e.g. (64, 64)"
            )
        self.hidden_layers = tuple(check_positive_int(f"{who}: hidden_layers entry", h) for h in hidden_layers)
        if activation not in ACTIVATIONS:
            raise ConfigError(f"{who}: activation = {activation!r}; expected one of {sorted(ACTIVATIONS)}")
        self.activation = activation
        self.weight_decay = check_nonnegative_float(f"{who}: weight_decay", weight_decay)
        self.learning_rate = check_nonnegative_float(f"{who}: learning_rate", learning_rate, positive=True)
        self.max_epochs = check_optional_positive_int(f"{who}: max_epochs", max_epochs)
        self.batch_size = check_optional_positive_int(f"{who}: batch_size", batch_size)
        self.warm_start = bool(warm_start)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigError(f"{who}: seed = {seed!r}; expected a non-negative integer")
        self.seed = int(seed)
        if dtype not in (torch.float32, torch.float64):
            raise ConfigError(f"{who}: dtype = {dtype!r}; expected torch.float64 (default) or torch.float32")
        self.dtype = dtype
        try:
            self._device = resolve_device(device)
        except (RuntimeError, TypeError) as exc:
            raise ConfigError(
                f"{who}: device = {device!r} is not a torch device ({exc}); use 'auto', 'cpu' or 'cuda'"
            ) from exc
        self.device = device
        self.bounds = None if bounds is None else check_bounds(bounds, type(self).__name__)

        # Learned state (set by fit / load_state_dict).
        self.net_: BatchedMLP | None = None
        self.scaler_: InputScaler | None = None
        self.standardizer_: OutputStandardizer | None = None
        self.input_dim_: int | None = None
        self.num_outputs_: int | None = None
        self.known_noise_: bool = False
        self.num_fits_: int = 0
        self.training_report_: TrainingReport | None = None

    # -- hooks ----------------------------------------------------------------------------
    def _train_options(self) -> dict[str, Any]:
        """Extra keyword arguments for :func:`train_networks` (bootstrap, dropout)."""
        return {}

    def _after_fit(self, generator: torch.Generator) -> None:
        """Draw anything prediction needs after training (MC dropout's fixed masks)."""

    def _prediction_masks(self) -> list[Tensor] | None:
        """Masks applied at prediction (``K x 1 x width`` per hidden layer), or None."""
        return None

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`_extra_state` saved."""

    def _architecture(self) -> dict[str, Any]:
        """Constructor settings that the saved weights depend on."""
        return {
            "hidden_layers": list(self.hidden_layers),
            "activation": self.activation,
            "num_networks": self._num_networks,
        }

    # -- fitting --------------------------------------------------------------------------
    def _new_network(self, in_dim: int, out_dim: int, generator: torch.Generator) -> BatchedMLP:
        return BatchedMLP(
            self._num_networks, in_dim, self.hidden_layers, out_dim, self.activation, generator, self.dtype, self._device
        )

    def fit(self, X: Any, Y: Any, Yvar: Any | None = None) -> MLPSurrogateBase:
        """Train on ``n x d`` inputs and ``n x m`` outputs.

        Args:
            X: ``n x d`` inputs (tensor or array).
            Y: ``n x m`` outputs, or ``n`` for one output.
            Yvar: optional ``n x m`` known noise variances (output units); then
                the noise is taken as known rather than learned.

        Returns:
            ``self``, fitted.

        Raises:
            ShapeError: wrong shapes (e.g. X's width differs from ``bounds``).
            DataError: NaN / inf in the data, negative variances, fewer than 2 points.
        """
        dev, dt = self._device, self.dtype
        X = as_tensor(X, dt, dev, "X").detach()
        Y = as_tensor(Y, dt, dev, "Y").detach()
        Yv = None if Yvar is None else as_tensor(Yvar, dt, dev, "Yvar").detach()
        input_dim = None if self.bounds is None else self.bounds.shape[1]
        X, Y, Yv = check_training_data(X, Y, Yv, input_dim=input_dim)
        d, m = X.shape[1], Y.shape[1]

        scaler = InputScaler(self.bounds).fit(X)
        standardizer = OutputStandardizer().fit(Y)
        generator = torch.Generator(device=dev)
        # A new stream per refit, reproducible from (seed, number of previous fits).
        generator.manual_seed(self.seed + 1_000_003 * self.num_fits_)

        warm = self.warm_start and self.net_ is not None and (self.input_dim_, self.num_outputs_) == (d, m)
        if warm:
            net = self.net_
            self._carry_over(net, scaler, standardizer)
        else:
            if self.warm_start and self.net_ is not None:
                logger.info("shapes changed from (d=%s, m=%s) to (d=%d, m=%d); fitting from scratch",
                            self.input_dim_, self.num_outputs_, d, m)
            net = self._new_network(d, 2 * m, generator)

        plan = plan_training(X.shape[0], self.max_epochs, self.batch_size, warm)
        V = None if Yv is None else standardizer.transform_var(Yv)
        report = train_networks(
            net,
            scaler.transform(X),
            standardizer.transform(Y),
            V,
            plan,
            learning_rate=self.learning_rate,
            weight_decay=self.weight_decay,
            generator=generator,
            **self._train_options(),
        )
        self.net_, self.scaler_, self.standardizer_ = net, scaler, standardizer
        self.input_dim_, self.num_outputs_, self.known_noise_ = d, m, Yv is not None
        self.num_fits_ += 1
        self.training_report_ = report
        self._after_fit(generator)
        logger.info(
            "%s fitted on n=%d, d=%d, m=%d (%s start): %d epochs, %d steps, batch %d, hold-out %d",
            type(self).__name__, X.shape[0], d, m, "warm" if warm else "cold",
            report.epochs, report.steps, plan.batch_size, plan.num_validation,
        )
        return self

    def _carry_over(self, net: BatchedMLP, scaler: InputScaler, standardizer: OutputStandardizer) -> None:
        """Re-express the previous fit's networks in the new input box and output scaling.

        Inputs: ``u_old = u_new * r + c`` with ``r = span_new / span_old`` and
        ``c = (lower_new - lower_old) / span_old``, folded into the first layer.
        Means: ``z_new = (z_old * std_old + mean_old - mean_new) / std_new``,
        folded into the mean columns of the last layer. So the warm start
        begins from exactly the previous mean function.
        """
        old_scaler, old_std = self.scaler_, self.standardizer_
        assert old_scaler is not None and old_std is not None  # set together with net_
        with torch.no_grad():
            r = (scaler.span_ / old_scaler.span_).to(net.weights[0])
            c = ((scaler.lower_ - old_scaler.lower_) / old_scaler.span_).to(net.weights[0])
            w0, b0 = net.weights[0], net.biases[0]
            b0.add_(torch.einsum("d,bdo->bo", c, w0).unsqueeze(1))
            w0.mul_(r.view(1, -1, 1))
            m = standardizer.mean_.shape[0]
            ratio = (old_std.std_ / standardizer.std_).to(w0)
            shift = ((old_std.mean_ - standardizer.mean_) / standardizer.std_).to(w0)
            net.weights[-1][..., :m].mul_(ratio)
            net.biases[-1][..., :m].mul_(ratio).add_(shift)

    # -- prediction -----------------------------------------------------------------------
    def _component_moments(self, X: Any) -> tuple[Tensor, Tensor]:
        """``K x n x m`` means and variances (standardised units) of the ``K`` networks / passes."""
        require_fitted(self, "net_")
        assert self.net_ is not None and self.scaler_ is not None and self.input_dim_ is not None
        X = check_inputs(as_tensor(X, self.dtype, self._device, "X"), self.input_dim_)
        U = self.scaler_.transform(X)
        masks = self._prediction_masks()
        components = self._num_networks if masks is None else masks[0].shape[0]
        rows = max(64, PREDICT_BLOCK_ELEMENTS // (components * max(self.hidden_layers)))
        if U.shape[0] <= rows:
            return split_head(self.net_(U, masks))
        # Blocks of points keep the working set in cache; cat keeps the graph to X.
        return split_head(torch.cat([self.net_(block, masks) for block in U.split(rows)], dim=1))

    def predict(self, X: Any) -> Prediction:
        """Predictive moments at ``n x d`` inputs, in output units; differentiable in ``X``.

        Args:
            X: ``n x d`` inputs (a single ``d`` point is read as ``1 x d``).

        Returns:
            :class:`Prediction` with ``n x m`` mean, epistemic and aleatoric variances.
        """
        means, variances = self._component_moments(X)
        assert self.standardizer_ is not None
        std = self.standardizer_
        return Prediction(
            mean=std.untransform(means.mean(dim=0)),
            epistemic_var=std.untransform_var(means.var(dim=0, unbiased=False)),
            aleatoric_var=std.untransform_var(variances.mean(dim=0)),
        )

    def joint_epistemic_covariance(self, X: Any) -> Tensor:
        """``m x n x n`` empirical covariance of the ``K`` component means, standardised units.

        Its diagonal equals ``predict(X).epistemic_var`` divided by the output
        variance (same ``1 / K`` normalisation). Differentiable in ``X``.
        """
        means, _ = self._component_moments(X)
        centred = means - means.mean(dim=0, keepdim=True)
        return torch.einsum("kim,kjm->mij", centred, centred) / means.shape[0]

    def epistemic_cross_covariance(self, Z: Any, X: Any) -> tuple[Tensor, Tensor]:
        """``m x z x b`` empirical covariances between ``Z`` and ``X`` and ``m x b`` variances at ``X``.

        The blocks of :meth:`joint_epistemic_covariance` on ``Z ∪ X`` (one
        forward pass over both, so MC dropout uses the same masks), without
        the ``z x z`` block. Standardised units, differentiable in ``X``.
        """
        Z, X = (as_tensor(P, self.dtype, self._device, what) for P, what in ((Z, "Z"), (X, "X")))
        z = Z.shape[0]
        means, _ = self._component_moments(torch.cat([Z, X]))
        centred = means - means.mean(dim=0, keepdim=True)
        c_z, c_x = centred[:, :z], centred[:, z:]
        cross = torch.einsum("kim,kjm->mij", c_z, c_x) / means.shape[0]
        return cross, (c_x**2).mean(dim=0).transpose(0, 1)

    @property
    def num_outputs(self) -> int:
        """Number of outputs ``m`` (after fit)."""
        require_fitted(self, "num_outputs_")
        assert self.num_outputs_ is not None
        return self.num_outputs_

    # -- state ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything learned as plain data (CPU tensors, numbers, strings, lists, dicts)."""
        require_fitted(self, "net_")
        assert self.net_ is not None and self.scaler_ is not None and self.standardizer_ is not None

        def cpu(t: Tensor) -> Tensor:
            return t.detach().to("cpu").clone()

        return {
            "kind": type(self).__name__,
            "architecture": self._architecture(),
            "dtype": str(self.dtype).removeprefix("torch."),
            "input_dim": self.input_dim_,
            "num_outputs": self.num_outputs_,
            "known_noise": self.known_noise_,
            "num_fits": self.num_fits_,
            "scaler": {k: cpu(v) for k, v in self.scaler_.state_dict().items()},
            "standardizer": {k: cpu(v) for k, v in self.standardizer_.state_dict().items()},
            "weights": [cpu(w) for w in self.net_.weights],
            "biases": [cpu(b) for b in self.net_.biases],
            **self._extra_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> MLPSurrogateBase:
        """Restore a :meth:`state_dict` of an equally configured model.

        Raises:
            ConfigError: the state comes from another kind of model or another
                architecture (the message names the differing settings).
        """
        if state.get("kind") != type(self).__name__:
            raise ConfigError(f"state is from a {state.get('kind')!r}; cannot load it into a {type(self).__name__}")
        saved, mine = state["architecture"], self._architecture()
        differing = {k: (saved.get(k), v) for k, v in mine.items() if saved.get(k) != v}
        if differing:
            detail = ", ".join(f"{k}: saved {s!r} vs this model {v!r}" for k, (s, v) in differing.items())
            raise ConfigError(f"state does not match this model's configuration ({detail}); construct it with the saved settings")
        dev, dt = self._device, self.dtype
        d, m = int(state["input_dim"]), int(state["num_outputs"])
        weights, biases = state["weights"], state["biases"]
        expected = [(self._num_networks, a, b) for a, b in zip([d, *self.hidden_layers], [*self.hidden_layers, 2 * m])]
        if [tuple(w.shape) for w in weights] != expected:
            raise ShapeError(f"state weights have shapes {[tuple(w.shape) for w in weights]}; expected {expected}")
        net = self._new_network(d, 2 * m, torch.Generator(device=dev))
        with torch.no_grad():
            for p, w in zip(net.weights, weights):
                p.copy_(w)
            for p, b in zip(net.biases, biases):
                p.copy_(b)
        for p in net.parameters():
            p.requires_grad_(False)
        self.net_ = net
        self.scaler_ = InputScaler(self.bounds).load_state_dict(
            {k: v.to(device=dev, dtype=dt) for k, v in state["scaler"].items()}
        )
        self.standardizer_ = OutputStandardizer().load_state_dict(
            {k: v.to(device=dev, dtype=dt) for k, v in state["standardizer"].items()}
        )
        self.input_dim_, self.num_outputs_ = d, m
        self.known_noise_, self.num_fits_ = bool(state["known_noise"]), int(state["num_fits"])
        self._load_extra_state(state)
        return self
