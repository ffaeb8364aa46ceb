"""Checking and fixing the scale of predictive variances.

A surrogate's variances drive acquisition and stopping rules, so they must be
neither too small (over-confident: the campaign stops exploring) nor too large.
:class:`VarianceCalibrator` fits, per output, one factor ``s`` on held-out data
and multiplies both variance parts by it; :func:`calibration_report` measures
interval coverage, negative log-likelihood and (normalised) RMSE on test data.

All metrics use the total predictive variance ``epistemic + aleatoric``: a
held-out observation is a noisy draw, so that is the variance it is judged
against.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import torch
from torch import Tensor

from surrogate_al.errors import ConfigError, DataError, ShapeError
from surrogate_al.surrogates.base import Prediction, Surrogate, as_tensor, require_fitted

__all__ = [
    "CalibrationReport",
    "DEFAULT_LEVELS",
    "VarianceCalibrator",
    "calibration_report",
    "prediction_report",
]

logger = logging.getLogger(__name__)

DEFAULT_LEVELS: tuple[float, ...] = (0.5, 0.9, 0.95)

# Floor on variances and scale factors: keeps log / division finite when a
# residual or a predicted variance is exactly zero.
_VAR_FLOOR = 1e-300


def _check_pair(prediction: Prediction, Y: Any, what: str) -> Tensor:
    """``n x m`` targets matching ``prediction``, finite, in its dtype/device."""
    mean = prediction.mean
    Y = as_tensor(Y, mean.dtype, mean.device, "Y").detach()
    if Y.ndim == 1:
        Y = Y.unsqueeze(-1)
    if Y.shape != mean.shape:
        raise ShapeError(f"{what}: Y has shape {tuple(Y.shape)}; expected the prediction's shape {tuple(mean.shape)} (n x m)")
    if Y.shape[0] < 1:
        raise DataError(f"{what}: need at least one held-out point, got Y with 0 rows")
    if not torch.isfinite(Y).all():
        raise DataError(f"{what}: Y contains NaN or inf; drop failed runs before calibrating")
    total = prediction.total_var.detach()
    if not torch.isfinite(total).all() or (total < 0).any():
        raise DataError(f"{what}: the prediction's variances must be finite and >= 0")
    return Y


class VarianceCalibrator:
    """Per-output variance scale fitted on held-out data.

    For Gaussian predictions with total variance ``v_i`` and residuals
    ``r_i``, multiplying every variance by ``s`` changes the mean negative
    log-likelihood by ``0.5 * mean(log(s) + r_i**2 / (s v_i))``; it is
    minimised in closed form by ``s = mean(r_i**2 / v_i)``. Both the epistemic
    and the aleatoric part are scaled by ``s``, so their ratio (what the
    acquisition cares about) is kept.

    Attributes:
        scale_: ``m`` fitted factors (``> 1``: the model was over-confident).

    Example:
        >>> cal = VarianceCalibrator().fit(model.predict(X_val), Y_val)
        >>> pred = cal.apply(model.predict(X_new))
    """

    def __init__(self) -> None:
        self.scale_: Tensor | None = None

    def fit(self, prediction: Prediction, Y: Tensor) -> VarianceCalibrator:
        """Fit the factors on held-out targets.

        Args:
            prediction: predictions at the ``n`` held-out points (``n x m``).
            Y: ``n x m`` held-out observations (``n`` for one output).

        Returns:
            ``self``, fitted.

        Raises:
            ShapeError: ``Y`` does not match the prediction's shape.
            DataError: non-finite targets or variances.
        """
        Y = _check_pair(prediction, Y, "VarianceCalibrator.fit")
        total = prediction.total_var.detach().clamp_min(_VAR_FLOOR)
        resid2 = (Y - prediction.mean.detach()) ** 2
        self.scale_ = (resid2 / total).mean(dim=0).clamp_min(_VAR_FLOOR)
        logger.debug("variance calibration factors: %s", self.scale_.tolist())
        return self

    def apply(self, prediction: Prediction) -> Prediction:
        """Scale a prediction's variances (differentiable; the mean is unchanged).

        Args:
            prediction: ``n x m`` prediction of the same model.

        Returns:
            The calibrated :class:`Prediction`.

        Raises:
            ShapeError: the prediction has a different number of outputs.
        """
        require_fitted(self, "scale_")
        m = prediction.mean.shape[-1]
        if m != self.scale_.shape[0]:
            raise ShapeError(f"VarianceCalibrator.apply: prediction has {m} outputs; the calibrator was fitted on {self.scale_.shape[0]}")
        s = self.scale_.to(prediction.epistemic_var)
        return Prediction(prediction.mean, prediction.epistemic_var * s, prediction.aleatoric_var * s)

    def state_dict(self) -> dict[str, Any]:
        """The factors as plain data."""
        require_fitted(self, "scale_")
        return {"scale": self.scale_.detach().clone()}

    def load_state_dict(self, state: dict[str, Any]) -> VarianceCalibrator:
        """Restore factors saved by :meth:`state_dict`."""
        if "scale" not in state:
            raise ConfigError("VarianceCalibrator.load_state_dict: state has no 'scale'; pass the dict from state_dict()")
        scale = torch.as_tensor(state["scale"])
        if scale.ndim != 1 or not torch.isfinite(scale).all() or (scale <= 0).any():
            raise DataError(f"VarianceCalibrator.load_state_dict: scale = {scale.tolist()}; expected a 1-D tensor of positive factors")
        self.scale_ = scale
        return self


@dataclass(frozen=True)
class CalibrationReport:
    """How well predictive distributions match held-out data; per output.

    Attributes:
        coverage: interval level -> per-output fraction of observations inside
            the central Gaussian interval of that level (ideal: the level).
        nll: per-output mean Gaussian negative log-likelihood (nats).
        rmse: per-output root-mean-square error of the mean.
        nrmse: per-output RMSE divided by the standard deviation of ``Y``
            (1.0 is no better than predicting the test mean).
        n: number of test points.
    """

    coverage: dict[float, tuple[float, ...]]
    nll: tuple[float, ...]
    rmse: tuple[float, ...]
    nrmse: tuple[float, ...]
    n: int


def prediction_report(prediction: Prediction, Y: Tensor, levels: Sequence[float] = DEFAULT_LEVELS) -> CalibrationReport:
    """Calibration metrics of given predictions against observations.

    Args:
        prediction: ``n x m`` prediction at the test points.
        Y: ``n x m`` observations (``n`` for one output).
        levels: central interval levels in ``(0, 1)``.

    Returns:
        :class:`CalibrationReport`.

    Raises:
        ConfigError: a level outside ``(0, 1)``.
        ShapeError, DataError: as :meth:`VarianceCalibrator.fit`.
    """
    for level in levels:
        if not 0.0 < float(level) < 1.0:
            raise ConfigError(f"calibration level = {level!r}; levels must lie strictly between 0 and 1 (e.g. 0.9)")
    Y = _check_pair(prediction, Y, "calibration report")
    mean, total = prediction.mean.detach(), prediction.total_var.detach().clamp_min(_VAR_FLOOR)
    resid = Y - mean
    z = resid.abs() / total.sqrt()
    coverage = {}
    for level in levels:
        half_width = NormalDist().inv_cdf(0.5 + float(level) / 2.0)
        coverage[float(level)] = tuple((z <= half_width).to(mean.dtype).mean(dim=0).tolist())
    nll = 0.5 * (torch.log(2.0 * math.pi * total) + resid**2 / total)
    rmse = resid.pow(2).mean(dim=0).sqrt()
    y_std = Y.std(dim=0, unbiased=False) if Y.shape[0] > 1 else torch.zeros_like(rmse)
    nrmse = torch.where(y_std > 0, rmse / y_std.clamp_min(_VAR_FLOOR), torch.full_like(rmse, math.inf))
    return CalibrationReport(
        coverage=coverage,
        nll=tuple(nll.mean(dim=0).tolist()),
        rmse=tuple(rmse.tolist()),
        nrmse=tuple(nrmse.tolist()),
        n=int(Y.shape[0]),
    )


def calibration_report(
    surrogate: Surrogate, X_test: Tensor, Y_test: Tensor, levels: Sequence[float] = DEFAULT_LEVELS
) -> CalibrationReport:
    """Coverage, NLL, RMSE and NRMSE of a fitted surrogate on test data.

    Args:
        surrogate: a fitted surrogate.
        X_test: ``n x d`` test inputs.
        Y_test: ``n x m`` test observations.
        levels: central interval levels (default 0.5, 0.9, 0.95).

    Returns:
        :class:`CalibrationReport`; intervals use the total predictive variance.
    """
    with torch.no_grad():
        prediction = surrogate.predict(X_test)
    return prediction_report(prediction, Y_test, levels)
