"""The campaign's error figure after each fit: test NRMSE on a validation set, else the model's own estimate."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from surrogate_al.data import Dataset
    from surrogate_al.space import InputSpace
    from surrogate_al.surrogates.base import Surrogate

__all__ = ["ErrorEstimate", "estimate_error"]

#: Size and seed of the fixed Sobol reference set of the model-based estimate.
REFERENCE_POINTS = 1024
REFERENCE_SEED = 12345


class ErrorEstimate(NamedTuple):
    """One error figure, stored as a metric named ``name``.

    Attributes:
        name: ``"test_nrmse"`` (validation set) or ``"estimated_nrmse"`` (the model's own).
        value: the NRMSE, averaged over outputs.
    """

    name: str
    value: float


def _scale(Y: NDArray[np.float64]) -> NDArray[np.float64]:
    """Per-output standard deviation of ``n x m`` outputs, 1 where it is 0."""
    scale = np.std(Y, axis=0)
    return np.where(scale > 0, scale, 1.0)


def estimate_error(
    surrogate: Surrogate,
    space: InputSpace,
    data: Dataset,
    validation: tuple[NDArray[np.float64], NDArray[np.float64]] | None,
) -> ErrorEstimate | None:
    """Test NRMSE on the validation set, else a model-based estimate (None on fewer than 2 runs).

    The model-based estimate is ``sqrt(mean epistemic variance) / std(Y)``
    over a fixed Sobol reference set, averaged over outputs: the error the
    model expects of itself, comparable across refits of one campaign.

    Args:
        surrogate: the fitted surrogate (unit-cube inputs).
        space: the campaign's input space.
        data: the runs it was fitted on (``n x m`` outputs give the scale).
        validation: ``n_test x d`` inputs in the scientist's units and their
            ``n_test x m`` outputs, or None.
    """
    if data.n < 2:
        return None
    import torch

    if validation is not None:
        X_test, Y_test = validation
        with torch.no_grad():
            pred = surrogate.predict(torch.as_tensor(space.to_unit(X_test)))
        mean = pred.mean.detach().cpu().double().numpy()
        rmse = np.sqrt(np.mean((mean - Y_test) ** 2, axis=0))
        return ErrorEstimate("test_nrmse", float(np.mean(rmse / _scale(Y_test))))
    reference = space.design_unit("sobol", REFERENCE_POINTS, seed=REFERENCE_SEED)
    with torch.no_grad():
        pred = surrogate.predict(torch.as_tensor(reference))
    var = pred.epistemic_var.detach().cpu().double().numpy()
    return ErrorEstimate("estimated_nrmse", float(np.mean(np.sqrt(var.mean(axis=0)) / _scale(data.Y))))
