"""What a policy is to the campaign: the :class:`Proposal` it returns and the protocols it declares.

Contract (:class:`PolicyLike`):

* ``fit(data)`` fits the surrogate (and the feasibility model when runs have
  failed) and returns the policy.
* ``propose(data, n, pending, progress)`` returns ``n`` points. It does
  **not** refit: it uses the surrogate as last fitted (the campaign decides
  when refitting pays), or fits first if the surrogate was never fitted.
  Labelled points the surrogate has not been fitted on yet are treated like
  pending runs: their outputs are unknown to the model, but their locations
  count (the information gain conditions on them, diversity avoids them).
* ``state_dict()`` / ``load_state_dict()`` hold the policy's own state (the
  proposal counter, the Sobol position, the feasibility model, which training
  inputs the model has seen) as tensors and plain values.
* ``needs_model``: False for the model-free baselines (random, Sobol), so the
  campaign does not wait for data or fit anything for them.

A policy that learns a surrogate also satisfies :class:`ModelPolicyLike`: the
campaign checkpoints, refits and serves that surrogate. Capabilities are
checked with ``isinstance`` against these protocols (Trieste's
``trieste/models/interfaces.py`` style), never by probing attributes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from surrogate_al.data import Dataset
from surrogate_al.errors import ShapeError
from surrogate_al.surrogates.base import Surrogate

__all__ = ["ModelPolicyLike", "PolicyLike", "Proposal"]


@dataclass(frozen=True)
class Proposal:
    """Points proposed by a policy, with the scores that chose them.

    Attributes:
        X: ``q x d`` points in the unit cube.
        U: ``q`` normalised epistemic uncertainty at each point (NaN without a model).
        D: ``q`` diversity at each point, relative to labelled, failed and
            pending points and to the points before it in this batch.
        J: ``q`` hybrid ``λU + (1 − λ)D`` (times ``p(success)`` when the
            feasibility model is active); NaN for baselines without it.
        lam: λ used (NaN for baselines without a trade-off).
        method: how the points were chosen, e.g. ``"greedy-synthesis"``,
            ``"topq-pool"``, ``"sobol"``.
    """

    X: NDArray[np.float64]
    U: NDArray[np.float64]
    D: NDArray[np.float64]
    J: NDArray[np.float64]
    lam: float
    method: str

    def __post_init__(self) -> None:
        X = np.array(self.X, dtype=float)
        if X.ndim != 2:
            raise ShapeError(f"Proposal.X has shape {X.shape}; expected q x d")
        q = X.shape[0]
        X.setflags(write=False)
        object.__setattr__(self, "X", X)
        for name in ("U", "D", "J"):
            arr = np.array(getattr(self, name), dtype=float).reshape(-1)
            if arr.shape != (q,):
                raise ShapeError(f"Proposal.{name} has shape {arr.shape}; expected ({q},) to match X")
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "lam", float(self.lam))

    @property
    def q(self) -> int:
        """Number of points."""
        return int(self.X.shape[0])


@runtime_checkable
class PolicyLike(Protocol):
    """What the campaign relies on (see module docstring)."""

    needs_model: bool

    def fit(self, data: Dataset) -> PolicyLike:
        """Fit whatever the policy learns from ``data``; returns ``self``."""
        ...

    def propose(
        self, data: Dataset, n: int, pending: NDArray[np.float64] | None = None, progress: float = 0.0
    ) -> Proposal:
        """``n`` new unit-cube points given the data and the ``k x d`` pending points."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """The policy's own state (tensors and plain values)."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> PolicyLike:
        """Restore :meth:`state_dict`; returns ``self``."""
        ...


@runtime_checkable
class ModelPolicyLike(PolicyLike, Protocol):
    """A policy that learns a surrogate (``needs_model`` is True).

    Attributes:
        surrogate: the model the policy fits and proposes from; the campaign
            checkpoints it, serves it to ``predict`` and may replace it by a
            wrapper that fits elsewhere (a GPU worker).
    """

    surrogate: Surrogate
