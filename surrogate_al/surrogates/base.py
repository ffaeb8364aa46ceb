"""The surrogate contract shared by every model.

A surrogate learns ``n x d`` inputs -> ``n x m`` outputs and predicts, for new
points, a mean and two variances kept apart:

* ``epistemic_var``: what the model does not know (member disagreement, GP
  posterior variance of the latent function); shrinks with more data. The
  acquisition queries where it is large.
* ``aleatoric_var``: noise in the simulator's outputs (learned noise head, GP
  likelihood noise); more data does not shrink it, so it must not attract
  queries.

Every prediction is differentiable with respect to ``X`` so acquisition can
optimise inputs by gradient. Learned state lives in attributes ending in ``_``
and round-trips through :meth:`Surrogate.state_dict` as plain data (tensors,
numbers, strings), never pickles.

This module also holds the input/output scaling shared by the models
(:class:`InputScaler`, :class:`OutputStandardizer`) and the argument checks
(:func:`check_training_data`, :func:`check_inputs`) so that every surrogate
rejects bad data with the same clear messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

from surrogate_al.errors import ConfigError, DataError, NotFittedError, ShapeError

__all__ = [
    "Prediction",
    "Surrogate",
    "InputScaler",
    "OutputStandardizer",
    "as_tensor",
    "check_inputs",
    "check_bounds",
    "check_training_data",
    "epistemic_cross_covariance",
    "resolve_device",
    "require_fitted",
]


@dataclass(frozen=True)
class Prediction:
    """Predictive moments at ``n`` points for ``m`` outputs, in output units.

    Attributes:
        mean: ``n x m`` predictive mean.
        epistemic_var: ``n x m`` variance of the mean function (model uncertainty).
        aleatoric_var: ``n x m`` observation-noise variance.
    """

    mean: Tensor
    epistemic_var: Tensor
    aleatoric_var: Tensor

    @property
    def total_var(self) -> Tensor:
        """``n x m`` predictive variance of a new observation (law of total variance)."""
        return self.epistemic_var + self.aleatoric_var

    def detach(self) -> Prediction:
        """The same prediction cut from the autograd graph."""
        return Prediction(self.mean.detach(), self.epistemic_var.detach(), self.aleatoric_var.detach())


@runtime_checkable
class Surrogate(Protocol):
    """What every surrogate offers; acquisition and campaign rely on nothing else.

    Implementations take ``bounds`` (``2 x d``, lower and upper) in their
    constructor or infer them from the training data, scale inputs to the unit
    cube and standardise outputs internally, and report in original units.
    """

    def fit(self, X: Tensor, Y: Tensor, Yvar: Tensor | None = None) -> Surrogate:
        """Learn from ``n x d`` inputs ``X`` and ``n x m`` outputs ``Y``.

        Args:
            X: ``n x d`` inputs.
            Y: ``n x m`` outputs (a 1-D ``n`` tensor is read as ``n x 1``).
            Yvar: optional ``n x m`` known observation-noise variances.

        Returns:
            ``self``, fitted.
        """
        ...

    def predict(self, X: Tensor) -> Prediction:
        """Predictive moments at ``n x d`` inputs; differentiable in ``X``."""
        ...

    def joint_epistemic_covariance(self, X: Tensor) -> Tensor:
        """``m x n x n`` epistemic covariance between the ``n`` points, per output.

        Exact posterior covariance for the GP; the empirical covariance across
        members (or dropout passes) for the ensemble and MC dropout. Units are
        those of the standardised outputs, so outputs weigh equally.
        """
        ...

    def state_dict(self) -> dict[str, Any]:
        """Everything learned, as plain data (tensors, numbers, strings, lists, dicts)."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> Surrogate:
        """Restore learned state produced by :meth:`state_dict` on an equally configured model."""
        ...

    @property
    def num_outputs(self) -> int:
        """Number of outputs ``m`` (after fit)."""
        ...


def epistemic_cross_covariance(surrogate: Surrogate, Z: Tensor, X: Tensor) -> tuple[Tensor, Tensor]:
    """Epistemic covariance between fixed points and candidates, and the candidates' variances.

    The blocks of ``joint_epistemic_covariance(Z ∪ X)`` that batch acquisition
    needs. A surrogate with its own ``epistemic_cross_covariance(Z, X)`` (the
    GP, the MLP surrogates, the auto choice) computes them without the
    ``z x z`` block; any other one through its joint covariance.

    Args:
        surrogate: a fitted surrogate.
        Z: ``z x d`` fixed points.
        X: ``b x d`` candidates.

    Returns:
        ``(cross, var)``: ``m x z x b`` covariances and ``m x b`` variances at
        ``X`` (standardised units, not clamped), differentiable in ``X``.
    """
    own = getattr(surrogate, "epistemic_cross_covariance", None)
    if own is not None:
        return own(Z, X)
    z = Z.shape[0]
    joint = surrogate.joint_epistemic_covariance(torch.cat([Z.to(X), X]))
    return joint[:, :z, z:], joint[:, z:, z:].diagonal(dim1=-2, dim2=-1)


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else as given."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def as_tensor(value: Any, dtype: torch.dtype, device: torch.device, what: str) -> Tensor:
    """Convert arrays / lists / tensors to a float tensor, keeping autograd if present."""
    if isinstance(value, Tensor):
        return value.to(dtype=dtype, device=device)
    try:
        return torch.as_tensor(np.asarray(value, dtype=float), dtype=dtype, device=device)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what} could not be read as a float array: {exc}") from exc


def check_bounds(bounds: Any, who: str) -> Tensor:
    """``2 x d`` finite bounds with lower < upper, as a float64 CPU tensor.

    Args:
        bounds: array-like, row 0 lower and row 1 upper bounds.
        who: the model's name for error messages.

    Raises:
        ConfigError: wrong shape, non-finite values, or a lower bound not below its upper.
    """
    try:
        b = as_tensor(bounds, torch.float64, torch.device("cpu"), f"{who}: bounds").detach().clone()
    except DataError as exc:
        raise ConfigError(str(exc)) from exc
    if b.ndim != 2 or b.shape[0] != 2 or b.shape[1] < 1:
        raise ConfigError(f"{who}: bounds have shape {tuple(b.shape)}; expected 2 x d (row 0 lower, row 1 upper)")
    if not torch.isfinite(b).all() or not (b[0] < b[1]).all():
        raise ConfigError(f"{who}: bounds = {b.tolist()}; every bound must be finite and each lower below its upper")
    return b


def check_training_data(
    X: Tensor, Y: Tensor, Yvar: Tensor | None, input_dim: int | None = None
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Validate and reshape training data.

    Args:
        X: ``n x d`` inputs.
        Y: ``n x m`` outputs, or ``n``.
        Yvar: ``n x m`` noise variances, or ``n``, or None.
        input_dim: the expected ``d`` when known (e.g. from constructor bounds).

    Returns:
        ``(X, Y, Yvar)`` with ``Y`` and ``Yvar`` 2-D.

    Raises:
        ShapeError: wrong number of dimensions, columns or rows.
        DataError: NaN/inf anywhere, negative variances, fewer than 2 points.
    """
    if X.ndim != 2:
        raise ShapeError(f"X has shape {tuple(X.shape)}; expected a 2-D tensor n x d")
    if input_dim is not None and X.shape[1] != input_dim:
        raise ShapeError(f"X has {X.shape[1]} columns; this model expects d = {input_dim}")
    if Y.ndim == 1:
        Y = Y.unsqueeze(-1)
    if Y.ndim != 2:
        raise ShapeError(f"Y has shape {tuple(Y.shape)}; expected n x m (or n for one output)")
    if Y.shape[0] != X.shape[0]:
        raise ShapeError(f"X has {X.shape[0]} rows but Y has {Y.shape[0]}; they must match")
    if X.shape[0] < 2:
        raise DataError(f"need at least 2 training points, got {X.shape[0]}")
    for name, t in (("X", X), ("Y", Y)):
        if not torch.isfinite(t).all():
            row, col = (~torch.isfinite(t)).nonzero()[0].tolist()
            raise DataError(
                f"{name}[{row}, {col}] is {t[row, col].item()}; training data must be finite. "
                "Drop failed runs (NaN outputs) before fitting"
            )
    if Yvar is not None:
        if Yvar.ndim == 1:
            Yvar = Yvar.unsqueeze(-1)
        if Yvar.shape != Y.shape:
            raise ShapeError(f"Yvar has shape {tuple(Yvar.shape)}; expected the shape of Y, {tuple(Y.shape)}")
        if not torch.isfinite(Yvar).all() or (Yvar < 0).any():
            raise DataError("Yvar must hold finite, non-negative variances")
    return X, Y, Yvar


def check_inputs(X: Tensor, input_dim: int) -> Tensor:
    """Validate ``n x d`` prediction inputs (``d`` alone is read as ``1 x d``)."""
    if X.ndim == 1 and X.shape[0] == input_dim:
        X = X.unsqueeze(0)
    if X.ndim != 2 or X.shape[1] != input_dim:
        raise ShapeError(f"X has shape {tuple(X.shape)}; this model was fitted on d = {input_dim} inputs, expected n x {input_dim}")
    return X


def require_fitted(model: object, attribute: str) -> None:
    """Raise :class:`NotFittedError` unless ``model.<attribute>`` is set."""
    if getattr(model, attribute, None) is None:
        raise NotFittedError(f"{type(model).__name__} is not fitted yet; call fit(X, Y) first")


class InputScaler:
    """Affine map of inputs from their box to the unit cube.

    Args:
        bounds: ``2 x d`` lower and upper bounds; None to take them from the
            training data (min/max, widened where a column is constant).
    """

    def __init__(self, bounds: Tensor | None = None) -> None:
        self.bounds = bounds
        self.lower_: Tensor | None = None
        self.span_: Tensor | None = None

    def fit(self, X: Tensor) -> InputScaler:
        """Set the box from ``bounds`` or from ``n x d`` data ``X``."""
        if self.bounds is not None:
            b = torch.as_tensor(self.bounds, dtype=X.dtype, device=X.device)
            if b.shape != (2, X.shape[1]):
                raise ShapeError(f"bounds have shape {tuple(b.shape)}; expected (2, {X.shape[1]})")
            lower, upper = b[0], b[1]
        else:
            lower, upper = X.min(dim=0).values, X.max(dim=0).values
        span = upper - lower
        # A constant column would divide by zero; give it unit span instead.
        span = torch.where(span > 0, span, torch.ones_like(span))
        self.lower_, self.span_ = lower.detach().clone(), span.detach().clone()
        return self

    def transform(self, X: Tensor) -> Tensor:
        """``n x d`` inputs -> ``n x d`` unit-cube coordinates (differentiable)."""
        require_fitted(self, "lower_")
        return (X - self.lower_.to(X)) / self.span_.to(X)

    def state_dict(self) -> dict[str, Any]:
        """Learned box as tensors."""
        return {"lower": self.lower_, "span": self.span_}

    def load_state_dict(self, state: dict[str, Any]) -> InputScaler:
        """Restore the box."""
        self.lower_, self.span_ = state["lower"], state["span"]
        return self


class OutputStandardizer:
    """Per-output standardisation ``(Y - mean) / std``; variances scale by ``std**2``."""

    def __init__(self) -> None:
        self.mean_: Tensor | None = None
        self.std_: Tensor | None = None

    def fit(self, Y: Tensor) -> OutputStandardizer:
        """Learn mean and std of ``n x m`` outputs."""
        mean = Y.mean(dim=0)
        std = Y.std(dim=0) if Y.shape[0] > 1 else torch.ones_like(mean)
        # Constant outputs: keep scale 1 so predictions stay finite.
        std = torch.where(std > 1e-12, std, torch.ones_like(std))
        self.mean_, self.std_ = mean.detach().clone(), std.detach().clone()
        return self

    def transform(self, Y: Tensor) -> Tensor:
        """``n x m`` outputs -> standardised."""
        require_fitted(self, "mean_")
        return (Y - self.mean_.to(Y)) / self.std_.to(Y)

    def transform_var(self, Yvar: Tensor) -> Tensor:
        """``n x m`` variances in output units -> standardised units."""
        return Yvar / self.std_.to(Yvar) ** 2

    def untransform(self, Z: Tensor) -> Tensor:
        """Standardised ``n x m`` means -> output units."""
        return Z * self.std_.to(Z) + self.mean_.to(Z)

    def untransform_var(self, V: Tensor) -> Tensor:
        """Standardised ``n x m`` variances -> output units."""
        return V * self.std_.to(V) ** 2

    def state_dict(self) -> dict[str, Any]:
        """Learned mean and std as tensors."""
        return {"mean": self.mean_, "std": self.std_}

    def load_state_dict(self, state: dict[str, Any]) -> OutputStandardizer:
        """Restore mean and std."""
        self.mean_, self.std_ = state["mean"], state["std"]
        return self
