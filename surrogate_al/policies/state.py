"""The state every policy keeps: seed and proposal counter, and for model-based policies the surrogate.

:class:`CountingPolicy` holds the seed and the number of proposals made (the
``counter`` of :func:`~surrogate_al.policies.proposals.round_seed`) and
round-trips them through ``state_dict``; :class:`ModelPolicy` adds the
surrogate, its fitting on the unit cube and which inputs it has seen, and
satisfies :class:`~surrogate_al.policies.base.ModelPolicyLike`.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from surrogate_al.data import Dataset
from surrogate_al.errors import ConfigError, NotFittedError
from surrogate_al.policies.proposals import DTYPE, check_int, round_seed, unit_bounds
from surrogate_al.surrogates import make_surrogate
from surrogate_al.surrogates.base import Surrogate

__all__ = ["CountingPolicy", "ModelPolicy", "implements_surrogate", "output_scale"]

logger = logging.getLogger(__name__)


class CountingPolicy:
    """Seed, proposal counter and the state dict around them.

    A subclass sets :attr:`kind` (the name :func:`~surrogate_al.policies.make_policy`
    knows it by, checked when a state is loaded) and may extend the state
    through :meth:`_extra_state` / :meth:`_load_extra_state`.

    Args:
        seed: non-negative integer seed.

    Attributes:
        counter_: proposals made so far.
    """

    kind = "base"
    needs_model = False

    def __init__(self, seed: int = 0) -> None:
        self.seed = check_int("seed", seed, 0)
        self.counter_ = 0

    def _round_seeds(self, streams: int) -> list[int]:
        """One seed per random stream of this proposal round (:func:`round_seed`)."""
        return [round_seed(self.seed, self.counter_, stream) for stream in range(streams)]

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        return None

    def state_dict(self) -> dict[str, Any]:
        """``{"kind", "seed", "counter", ...}``: the policy's own state as plain data and tensors."""
        return {"kind": self.kind, "seed": self.seed, "counter": self.counter_, **self._extra_state()}

    def load_state_dict(self, state: dict[str, Any]) -> CountingPolicy:
        """Restore :meth:`state_dict` from an equally configured policy.

        Raises:
            ConfigError: the state belongs to another kind of policy or seed.
        """
        if not isinstance(state, dict) or "counter" not in state:
            raise ConfigError(
                f"{type(self).__name__}.load_state_dict: expected the dict from state_dict() with a 'counter', "
                f"got {type(state).__name__}"
            )
        if state.get("kind", self.kind) != self.kind:
            raise ConfigError(
                f"{type(self).__name__}.load_state_dict: the state is from a {state.get('kind')!r} policy, "
                f"this one is {self.kind!r}; resume with the policy the campaign was started with"
            )
        if int(state.get("seed", self.seed)) != self.seed:
            raise ConfigError(
                f"{type(self).__name__}.load_state_dict: saved seed = {state['seed']!r} but this policy has "
                f"seed = {self.seed!r}; construct it with seed={state['seed']!r}"
            )
        self.counter_ = check_int("state['counter']", int(state["counter"]), 0)
        self._load_extra_state(state)
        return self


#: The methods a surrogate needs for a policy to fit and propose from it.
SURROGATE_METHODS = ("fit", "predict", "joint_epistemic_covariance", "state_dict", "load_state_dict")


def implements_surrogate(obj: Any) -> bool:
    """Whether ``obj`` has the :class:`Surrogate` methods.

    Looked up on the type: ``isinstance(obj, Surrogate)`` would evaluate the
    ``num_outputs`` property, which an unfitted surrogate may refuse.
    """
    return all(callable(getattr(type(obj), name, None)) for name in SURROGATE_METHODS)


class ModelPolicy(CountingPolicy):
    """Surrogate handling shared by the model-based policies.

    Args:
        surrogate: a :class:`Surrogate` (constructed with unit-cube bounds
            ``[0, 1]^d``; one built with ``bounds=None`` gets them set before
            its first fit), or None for an exact GP built at the first fit.
        seed: non-negative integer seed.
    """

    needs_model = True

    def __init__(self, surrogate: Surrogate | None = None, *, seed: int = 0) -> None:
        super().__init__(seed)
        if surrogate is not None and not implements_surrogate(surrogate):
            raise ConfigError(
                f"surrogate = {surrogate!r} does not implement the Surrogate protocol (fit, predict, "
                "joint_epistemic_covariance, state_dict, load_state_dict, num_outputs); build one with "
                "surrogate_al.surrogates.make_surrogate(kind, ...)"
            )
        self.surrogate = surrogate
        self.X_fit_: Tensor | None = None
        self.output_scale_: Tensor | None = None

    def _set_optimiser(self, raw_samples: int, restarts: int, maxiter: int) -> None:
        """Check and keep the acquisition optimiser's budget: raw samples, L-BFGS-B starts, iterations."""
        self.raw_samples = check_int("raw_samples", raw_samples, 1)
        self.restarts = check_int("restarts", restarts, 1)
        self.maxiter = check_int("maxiter", maxiter, 1)

    # -- fitting ----------------------------------------------------------------------
    def _prepare_surrogate(self, d: int) -> Surrogate:
        if self.surrogate is None:
            self.surrogate = make_surrogate("gp", bounds=unit_bounds(d), seed=self.seed)
            logger.info("no surrogate given: using an exact GP on [0, 1]^%d", d)
        elif hasattr(self.surrogate, "bounds") and self.surrogate.bounds is None:
            # The policy works on the unit cube; a data-derived box would rescale with every refit.
            self.surrogate.bounds = unit_bounds(d)  # type: ignore[attr-defined]
        return self.surrogate

    def _fit_extra(self, data: Dataset) -> None:
        return None

    def fit(self, data: Dataset) -> ModelPolicy:
        """Fit the surrogate on ``data.X``, ``data.Y``, ``data.Yvar`` (unit cube); returns ``self``."""
        if not isinstance(data, Dataset):
            raise ConfigError(f"data must be a surrogate_al.data.Dataset, got {type(data).__name__}")
        surrogate = self._prepare_surrogate(data.d)
        X = torch.as_tensor(data.X, dtype=DTYPE)
        Y = torch.as_tensor(data.Y, dtype=DTYPE)
        Yvar = None if data.Yvar is None else torch.as_tensor(data.Yvar, dtype=DTYPE)
        surrogate.fit(X, Y, Yvar)
        self.X_fit_ = X.clone()
        self.output_scale_ = torch.as_tensor(output_scale(data.Y), dtype=DTYPE)
        self._fit_extra(data)
        return self

    def _surrogate_is_fitted(self, d: int) -> bool:
        if self.surrogate is None:
            return False
        try:
            with torch.no_grad():
                self.surrogate.predict(torch.full((1, d), 0.5, dtype=DTYPE))
        except NotFittedError:
            return False
        return True

    def _ensure_fitted(self, data: Dataset) -> Surrogate:
        if not self._surrogate_is_fitted(data.d):
            logger.info("%s: the surrogate was never fitted; fitting it on the %d labelled points", self.kind, data.n)
            self.fit(data)
        assert self.surrogate is not None
        return self.surrogate

    def _scale(self, data: Dataset) -> Tensor:
        """``m`` output standard deviations the surrogate standardised with."""
        if self.output_scale_ is not None and self.output_scale_.shape[0] == data.m:
            return self.output_scale_
        return torch.as_tensor(output_scale(data.Y), dtype=DTYPE)

    def _unseen(self, data: Dataset) -> NDArray[np.float64]:
        """Labelled points the surrogate was not fitted on (``u x d``)."""
        if self.X_fit_ is None or data.n == 0:
            return np.zeros((0, data.d))
        seen = {row.tobytes() for row in self.X_fit_.numpy().astype(float)}
        return data.X[[row.tobytes() not in seen for row in data.X]].reshape(-1, data.d)

    # -- state ------------------------------------------------------------------------
    def _extra_state(self) -> dict[str, Any]:
        return {
            "X_fit": None if self.X_fit_ is None else self.X_fit_.clone(),
            "output_scale": None if self.output_scale_ is None else self.output_scale_.clone(),
        }

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        X_fit, scale = state.get("X_fit"), state.get("output_scale")
        self.X_fit_ = None if X_fit is None else torch.as_tensor(X_fit, dtype=DTYPE)
        self.output_scale_ = None if scale is None else torch.as_tensor(scale, dtype=DTYPE)


def output_scale(Y: NDArray[np.float64]) -> NDArray[np.float64]:
    """Per-output standard deviation (``ddof = 1``, as the surrogates standardise), 1 where constant."""
    if Y.shape[0] < 2:
        return np.ones(Y.shape[1])
    std = Y.std(axis=0, ddof=1)
    return np.where(std > 1e-12, std, 1.0)

