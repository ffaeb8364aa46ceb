"""Where does the simulator run at all? A small success classifier over the box.

Simulators crash, diverge or time out in parts of their input box (a solver
that does not converge above some Reynolds number, a mesh that inverts). A
failed run has no outputs, so the surrogate never sees it, and its epistemic
variance stays high exactly there: left alone, the acquisition would keep
sending points into the failing region. :class:`FeasibilityModel` learns
``p(success | x)`` from successful and failed inputs, and the default policy
multiplies its acquisition (``J`` and the greedy marginal gains) by it, i.e. it
maximises the *expected* value of a query.

Model: L2-regularised kernel logistic regression (the MAP estimate of a GP
classifier in weight space) with a linear trend::

    p(success | x) = sigmoid(b + sum_i w_i φ_i(x) + v · (x − ½)),   φ_i(x) = exp(-|x - c_i|^2 / (2 ℓ^2))

* one RBF feature centred at every evaluated point ``c_i`` (successes and
  failures; at most ``max_centres``, failures always kept);
* lengthscale ``ℓ`` = three times the expected nearest-neighbour spacing of
  the evaluated points: failures come in regions, not at single points, so
  one failure should lower ``p`` over its neighbours' distance too;
* the linear trend ``v`` lets the model extrapolate "failures lie towards
  that corner" to the box's faces, where no point has been evaluated yet;
* the bias ``b`` is fixed at the logit of the observed success rate, so far
  from every evaluated point (and without a trend) ``p`` is that rate:
  unexplored regions are neither favoured nor avoided;
* penalty ``regularisation · (|w|^2 + |v|^2) / 2`` (0.01: the features follow
  a handful of failures closely, which is the point; the fit is convex).

Fitted by L-BFGS (deterministic), ``p`` lies in ``(0, 1)`` and is
differentiable in ``x``.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import Tensor

from surrogate_al.acquisition.scores import expected_nn_spacing
from surrogate_al.errors import ConfigError, DataError, NotFittedError, ShapeError

__all__ = ["FeasibilityModel"]

logger = logging.getLogger(__name__)


class FeasibilityModel:
    """Kernel logistic regression for ``p(success | x)`` on the unit cube.

    Args:
        lengthscale: RBF lengthscale in unit-cube units; None for three times
            the expected nearest-neighbour spacing of the evaluated points.
        regularisation: L2 penalty on the feature weights (> 0); smaller
            follows the data more closely.
        max_centres: most RBF centres (evaluated points beyond are thinned
            evenly; failures are always kept).

    Attributes:
        centres_: ``c x d`` RBF centres.
        weights_: ``c + d`` weights (RBF features, then the linear trend).
        bias_: the intercept (logit of the observed success rate).
        lengthscale_: the lengthscale used.
    """

    def __init__(self, lengthscale: float | None = None, regularisation: float = 0.01, max_centres: int = 512) -> None:
        if lengthscale is not None and not (isinstance(lengthscale, (int, float)) and 0 < lengthscale < math.inf):
            raise ConfigError(f"FeasibilityModel: lengthscale = {lengthscale!r}; expected a positive number or None")
        if not (isinstance(regularisation, (int, float)) and 0 < regularisation < math.inf):
            raise ConfigError(f"FeasibilityModel: regularisation = {regularisation!r}; expected a positive number")
        if isinstance(max_centres, bool) or not isinstance(max_centres, int) or max_centres < 1:
            raise ConfigError(f"FeasibilityModel: max_centres = {max_centres!r}; expected a positive integer")
        self.lengthscale = lengthscale
        self.regularisation = float(regularisation)
        self.max_centres = max_centres
        self.centres_: Tensor | None = None
        self.weights_: Tensor | None = None
        self.bias_: Tensor | None = None
        self.lengthscale_: float | None = None

    def fit(self, X_ok: ArrayLike, X_failed: ArrayLike) -> FeasibilityModel:
        """Learn ``p(success | x)`` from successful and failed unit-cube inputs.

        Args:
            X_ok: ``n x d`` inputs of successful runs.
            X_failed: ``k x d`` inputs of failed runs (``k >= 1``).

        Returns:
            ``self``, fitted.

        Raises:
            ShapeError: arrays that are not ``n x d`` with a common ``d``.
            DataError: no failed points, or non-finite values.
        """
        ok = np.asarray(X_ok, dtype=float)
        bad = np.asarray(X_failed, dtype=float)
        if ok.ndim != 2 or bad.ndim != 2 or ok.shape[1] != bad.shape[1]:
            raise ShapeError(
                f"FeasibilityModel.fit: X_ok has shape {ok.shape} and X_failed {bad.shape}; "
                "expected n x d and k x d with the same d"
            )
        if bad.shape[0] == 0:
            raise DataError("FeasibilityModel.fit: X_failed is empty; with no failures every point is feasible")
        if not (np.isfinite(ok).all() and np.isfinite(bad).all()):
            raise DataError("FeasibilityModel.fit: inputs must be finite")
        X = torch.as_tensor(np.vstack([ok, bad]), dtype=torch.float64)
        y = torch.cat([torch.ones(ok.shape[0]), torch.zeros(bad.shape[0])]).double()
        d = X.shape[1]
        ell = self.lengthscale if self.lengthscale is not None else 3.0 * expected_nn_spacing(X.shape[0], d)
        centres = X
        if X.shape[0] > self.max_centres:
            centres = self._thin(torch.as_tensor(ok), torch.as_tensor(bad))
        Phi = self._features(X, centres, ell)
        rate = float(y.mean().clamp(1e-3, 1 - 1e-3))
        w = torch.zeros(Phi.shape[1], dtype=torch.float64, requires_grad=True)
        # The bias stays at the logit of the success rate: far from every evaluated point p is that
        # rate (a free bias could drift, making unexplored regions look safer or riskier than seen).
        b = torch.tensor(math.log(rate / (1 - rate)), dtype=torch.float64)
        opt = torch.optim.LBFGS([w], lr=1.0, max_iter=500, tolerance_grad=1e-9, tolerance_change=1e-12,
                                line_search_fn="strong_wolfe")
        reg = self.regularisation

        def closure() -> Tensor:
            opt.zero_grad()
            logits = Phi @ w + b
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="sum")
            loss = loss + 0.5 * reg * (w**2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        self.centres_ = centres.detach().clone()
        self.weights_ = w.detach().clone()
        self.bias_ = b.detach().clone()
        self.lengthscale_ = float(ell)
        logger.debug(
            "FeasibilityModel fitted on %d successes, %d failures (lengthscale %.3g)", ok.shape[0], bad.shape[0], ell
        )
        return self

    def _thin(self, ok: Tensor, bad: Tensor) -> Tensor:
        """At most ``max_centres`` centres: every failure (they carry the information), successes evenly."""

        def even(A: Tensor, k: int) -> Tensor:
            return A[np.unique(np.linspace(0, A.shape[0] - 1, k).round().astype(int))] if k > 0 else A[:0]

        if bad.shape[0] >= self.max_centres:
            return even(bad, self.max_centres).double()
        return torch.cat([even(ok, self.max_centres - bad.shape[0]), bad]).double()

    @staticmethod
    def _features(X: Tensor, centres: Tensor, lengthscale: float) -> Tensor:
        """``b x (c + d)``: one RBF per centre, then the centred coordinates (a linear trend)."""
        sq = ((X.unsqueeze(1) - centres.unsqueeze(0)) ** 2).sum(-1)
        return torch.cat([torch.exp(-0.5 * sq / lengthscale**2), X - 0.5], dim=-1)

    @property
    def is_fitted(self) -> bool:
        """Whether :meth:`fit` (or :meth:`load_state_dict`) has run."""
        return self.weights_ is not None

    def predict_proba(self, X: Tensor) -> Tensor:
        """``p(success | x)`` at ``b x d`` unit-cube points -> ``b`` values in ``(0, 1)``.

        Differentiable in ``X``; returned on ``X``'s device and dtype.
        """
        if not self.is_fitted:
            raise NotFittedError("FeasibilityModel is not fitted yet; call fit(X_ok, X_failed) first")
        assert self.centres_ is not None and self.weights_ is not None and self.bias_ is not None
        if X.ndim != 2 or X.shape[1] != self.centres_.shape[1]:
            raise ShapeError(f"X has shape {tuple(X.shape)}; expected b x {self.centres_.shape[1]}")
        out = []
        # Blocks keep the b x c x d difference tensor small for large pools.
        rows = max(1, 2**22 // max(1, self.centres_.shape[0] * X.shape[1]))
        for start in range(0, X.shape[0], rows):
            Xc = X[start : start + rows]
            Phi = self._features(Xc, self.centres_.to(Xc), self.lengthscale_)  # type: ignore[arg-type]
            out.append(torch.sigmoid(Phi @ self.weights_.to(Xc) + self.bias_.to(Xc)))
        return torch.cat(out) if out else X.new_zeros(0)

    __call__ = predict_proba

    def state_dict(self) -> dict[str, Any]:
        """Learned state as tensors and floats."""
        if not self.is_fitted:
            raise NotFittedError("FeasibilityModel is not fitted yet; nothing to save")
        return {
            "centres": self.centres_.clone(),  # type: ignore[union-attr]
            "weights": self.weights_.clone(),  # type: ignore[union-attr]
            "bias": self.bias_.clone(),  # type: ignore[union-attr]
            "lengthscale": self.lengthscale_,
        }

    def load_state_dict(self, state: dict[str, Any]) -> FeasibilityModel:
        """Restore the state produced by :meth:`state_dict`."""
        missing = {"centres", "weights", "bias", "lengthscale"} - set(state)
        if missing:
            raise ConfigError(f"FeasibilityModel.load_state_dict: state lacks keys {sorted(missing)}")
        self.centres_ = torch.as_tensor(state["centres"], dtype=torch.float64)
        self.weights_ = torch.as_tensor(state["weights"], dtype=torch.float64)
        self.bias_ = torch.as_tensor(state["bias"], dtype=torch.float64)
        self.lengthscale_ = float(state["lengthscale"])
        return self
