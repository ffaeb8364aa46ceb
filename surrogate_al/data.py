"""Values that cross from the campaign to the policy.

The campaign keeps its records in the scientist's units; the policy sees the
unit cube only. :class:`Dataset` is that hand-over: frozen, validated once when
built, trusted afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from surrogate_al.errors import DataError, ShapeError

__all__ = ["Dataset"]


def _empty(d: int) -> NDArray[np.float64]:
    return np.zeros((0, d))


@dataclass(frozen=True)
class Dataset:
    """Labelled runs (and failed points) in unit-cube coordinates.

    Attributes:
        X: ``n x d`` inputs of successful runs, in ``[0, 1]^d``.
        Y: ``n x m`` outputs of those runs (finite).
        Yvar: optional ``n x m`` known noise variances.
        X_failed: ``k x d`` inputs whose runs failed or timed out (for a
            feasibility model); no outputs.
    """

    X: NDArray[np.float64]
    Y: NDArray[np.float64]
    Yvar: NDArray[np.float64] | None = None
    X_failed: NDArray[np.float64] = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        X = np.asarray(self.X, dtype=float)
        Y = np.asarray(self.Y, dtype=float)
        if X.ndim != 2:
            raise ShapeError(f"Dataset.X has shape {X.shape}; expected n x d")
        if Y.ndim == 1:
            Y = Y[:, None]
        if Y.ndim != 2 or Y.shape[0] != X.shape[0]:
            raise ShapeError(f"Dataset.Y has shape {Y.shape}; expected ({X.shape[0]}, m) to match X")
        if not (np.all(np.isfinite(X)) and np.all(np.isfinite(Y))):
            raise DataError("Dataset.X and Dataset.Y must be finite; keep failed runs in X_failed")
        Yvar = None if self.Yvar is None else np.asarray(self.Yvar, dtype=float).reshape(Y.shape)
        X_failed = _empty(X.shape[1]) if self.X_failed is None else np.asarray(self.X_failed, dtype=float)
        if X_failed.ndim != 2 or X_failed.shape[1] != X.shape[1]:
            raise ShapeError(f"Dataset.X_failed has shape {X_failed.shape}; expected k x {X.shape[1]}")
        object.__setattr__(self, "X", X)
        object.__setattr__(self, "Y", Y)
        object.__setattr__(self, "Yvar", Yvar)
        object.__setattr__(self, "X_failed", X_failed)

    @property
    def n(self) -> int:
        """Number of labelled points."""
        return int(self.X.shape[0])

    @property
    def d(self) -> int:
        """Input dimension."""
        return int(self.X.shape[1])

    @property
    def m(self) -> int:
        """Number of outputs."""
        return int(self.Y.shape[1])
