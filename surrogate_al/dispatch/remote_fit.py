"""Surrogate fits as Dask tasks on workers with a ``GPU`` resource.

:class:`RemoteFitSurrogate` wraps the driver's surrogate: ``fit`` runs
:func:`fit_surrogate_on_worker` on a worker, and the fitted state comes back
as bytes that the local copy loads; everything else is served by the local
copy. The policy sees an ordinary :class:`~surrogate_al.surrogates.base.Surrogate`;
the layer rule holds because this wrapper, not the surrogates, knows about Dask.

The wrapper declares each name it forwards (no ``__getattr__``), so
``isinstance`` against the capability protocols answers for the wrapper as it
does for the local copy. The optional capabilities (those only some kinds
have) are properties that raise ``AttributeError`` when the local copy lacks
them, so ``getattr(surrogate, name, default)`` answers as for the local copy.
A surrogate that chooses its kind gets :class:`RemoteFitAutoSurrogate`,
which adds the kind-choosing names.

Torch is imported only when a fit or a state conversion runs: the dispatch
package stays importable without it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from botorch.models.model import Model
    from distributed import Client
    from torch import Tensor

    from surrogate_al.surrogates.base import Prediction, Surrogate

__all__ = ["RemoteFitAutoSurrogate", "RemoteFitSurrogate", "fit_surrogate_on_worker"]

logger = logging.getLogger(__name__)


def fit_surrogate_on_worker(
    kind: str, options: dict[str, Any], X: Tensor, Y: Tensor, Yvar: Tensor | None, warm_state: bytes | None
) -> bytes:
    """Build, (warm-start,) fit a surrogate on a worker and return its state as bytes.

    The task body of :class:`RemoteFitSurrogate`. ``device="auto"`` in
    ``options`` picks the worker's GPU; ``state_dict`` holds CPU tensors, so
    the driver loads the result on its own device.

    Args:
        kind: surrogate kind in the registry (``"gp"``, ``"ensemble"``, ``"auto"``, ...).
        options: constructor options of that kind.
        X: ``n x d`` training inputs (unit cube).
        Y: ``n x m`` training outputs.
        Yvar: optional ``n x m`` known noise variances.
        warm_state: the driver's state to start from, or None for a fresh fit.

    Returns:
        The fitted surrogate's ``state_dict``, serialised.
    """
    from surrogate_al.state_bytes import state_from_bytes, state_to_bytes
    from surrogate_al.surrogates import make_surrogate

    surrogate = make_surrogate(kind, **options)
    if warm_state:
        surrogate.load_state_dict(state_from_bytes(warm_state))
    surrogate.fit(X, Y, Yvar)
    return state_to_bytes(surrogate.state_dict())


def _chooses_kind(local: Surrogate) -> bool:
    from surrogate_al.surrogates.selection import KindChoosing

    return isinstance(local, KindChoosing)


class RemoteFitSurrogate:
    """A surrogate whose ``fit`` runs as a Dask task on a worker with a ``GPU`` resource.

    Constructing one around a surrogate that chooses its kind
    (:class:`~surrogate_al.surrogates.selection.KindChoosing`) gives a
    :class:`RemoteFitAutoSurrogate`.

    Args:
        local: the driver's surrogate (same kind and options as the remote one).
        client: the campaign's Dask client.
        kind: surrogate kind in the registry (``"gp"``, ``"ensemble"``, ...).
        options: constructor options for the worker's copy (``device="auto"``).

    Attributes:
        fits_: remote fits made so far.
        last_worker_: address of the worker that ran the last fit.
    """

    def __new__(cls, local: Surrogate, *args: Any, **kwargs: Any) -> RemoteFitSurrogate:
        if cls is RemoteFitSurrogate and _chooses_kind(local):
            cls = RemoteFitAutoSurrogate
        return super().__new__(cls)

    def __init__(self, local: Surrogate, client: Client, kind: str, options: dict[str, Any]) -> None:
        self.local = local
        self.client = client
        self.kind = kind
        self.options = dict(options)
        self.fits_: int = 0
        self.last_worker_: str = ""

    # -- the Surrogate protocol ---------------------------------------------------------
    def fit(self, X: Tensor, Y: Tensor, Yvar: Tensor | None = None) -> RemoteFitSurrogate:
        """Fit on a GPU worker (warm-started from the current state) and load the result.

        Args:
            X: ``n x d`` inputs.
            Y: ``n x m`` outputs.
            Yvar: optional ``n x m`` known noise variances.

        Returns:
            ``self``, its local copy holding the fitted state.
        """
        from surrogate_al.state_bytes import state_from_bytes, state_to_bytes

        try:
            warm = state_to_bytes(self.local.state_dict())
        except AttributeError:  # NotFittedError: nothing to start from yet
            warm = None
        future = self.client.submit(
            fit_surrogate_on_worker, self.kind, self.options, X, Y, Yvar, warm, resources={"GPU": 1}, pure=False
        )
        self.local.load_state_dict(state_from_bytes(future.result()))
        who = self.client.who_has(future).get(future.key, ())
        self.last_worker_ = next(iter(who), "")
        self.fits_ += 1
        logger.info("surrogate fit %d ran on %s", self.fits_, self.last_worker_ or "a GPU worker")
        return self

    def predict(self, X: Tensor) -> Prediction:
        """The local copy's predictive moments at ``n x d`` inputs (``n x m`` each)."""
        return self.local.predict(X)

    def joint_epistemic_covariance(self, X: Tensor) -> Tensor:
        """The local copy's ``m x n x n`` epistemic covariance at ``n x d`` inputs."""
        return self.local.joint_epistemic_covariance(X)

    def state_dict(self) -> dict[str, Any]:
        """The local copy's learned state (the last remote fit's)."""
        return self.local.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> RemoteFitSurrogate:
        """Restore the local copy's state; the next remote fit starts from it. Returns ``self``."""
        self.local.load_state_dict(state)
        return self

    @property
    def num_outputs(self) -> int:
        """Number of outputs ``m`` of the local copy (after a fit)."""
        return self.local.num_outputs

    # -- optional capabilities of the local copy (AttributeError where it lacks them) ----
    @property
    def bounds(self) -> Tensor | None:
        """The local copy's ``2 x d`` input bounds (None: inferred from the data)."""
        local: Any = self.local
        return local.bounds

    @bounds.setter
    def bounds(self, value: Tensor | None) -> None:
        local: Any = self.local
        local.bounds = value

    @property
    def sampled_covariance(self) -> bool:
        """Whether the local copy's epistemic covariance is an empirical one over a few networks."""
        local: Any = self.local
        return bool(local.sampled_covariance)

    @property
    def epistemic_cross_covariance(self) -> Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]:
        """The local copy's own ``(Z, X) -> (m x z x b cross, m x b var)`` epistemic covariances."""
        local: Any = self.local
        return local.epistemic_cross_covariance

    @property
    def model_(self) -> Model | None:
        """The local copy's BoTorch model (GP), for the adapter to delegate to."""
        local: Any = self.local
        return local.model_

    @property
    def loo_surprise(self) -> Callable[[], Tensor]:
        """The local copy's ``() -> n`` leave-one-out surprise of its training runs (a GP's)."""
        local: Any = self.local
        return local.loo_surprise

    @property
    def train_X_(self) -> Tensor:
        """The local copy's ``n x d`` training inputs, in the order of :attr:`loo_surprise`."""
        local: Any = self.local
        return local.train_X_


class RemoteFitAutoSurrogate(RemoteFitSurrogate):
    """A :class:`RemoteFitSurrogate` around a surrogate that chooses its kind by cross-validation.

    The choice itself runs on the worker with the fit: :meth:`choose_again`
    marks the local copy's state, which the next remote fit starts from.
    """

    def choose_again(self) -> RemoteFitAutoSurrogate:
        """Make the next remote fit choose the kind afresh; returns ``self``."""
        local: Any = self.local
        local.choose_again()
        return self

    @property
    def selected_at_n_(self) -> int:
        """Training points at the local copy's last choice of kind."""
        local: Any = self.local
        return int(local.selected_at_n_)

    @property
    def selected_model(self) -> Surrogate:
        """The local copy's fitted model of the chosen kind."""
        local: Any = self.local
        return local.selected_model
