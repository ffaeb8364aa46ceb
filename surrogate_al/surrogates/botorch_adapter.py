"""Any :class:`~surrogate_al.surrogates.base.Surrogate` as a BoTorch ``Model``.

:class:`SurrogateModel` lets BoTorch's acquisition functions and optimisers
(``qUpperConfidenceBound``, ``qNegIntegratedPosteriorVariance``,
``optimize_acqf``, ...) run on every surrogate of this package.

Two paths:

* **Delegation (exact).** When the surrogate exposes a fitted BoTorch model as
  ``model_`` that works in the surrogate's own input and output units (the
  :class:`~surrogate_al.surrogates.gp.GaussianProcess` does: its ``SingleTaskGP``
  carries ``Normalize`` / ``Standardize`` transforms), ``posterior``,
  ``fantasize`` and ``condition_on_observations`` are that model's, so
  fantasies are exact GP updates. Results are wrapped again so that later
  posteriors keep the Cholesky-only settings of
  :func:`~surrogate_al.surrogates.gp.exact_gp_settings`.
* **Gaussian moments (any surrogate).** The posterior over ``q`` points is a
  Gaussian with the surrogate's predictive mean and, per output, a covariance
  whose correlation structure is that of
  :meth:`~surrogate_al.surrogates.base.Surrogate.joint_epistemic_covariance`
  and whose marginal variances are ``predict(X).epistemic_var``; that is the
  joint epistemic covariance scaled back to output units, with the diagonal
  taken from ``predict`` so both views agree exactly. Conditioning on
  (fantasy) observations treats the surrogate's mean and joint covariance as
  a Gaussian prior over ``f`` at the union of the observed and the queried
  points, with Gaussian observation noise equal to the surrogate's aleatoric
  variance, and applies the Gaussian conditioning formulas. For an ensemble
  or MC dropout this is a **linearised (Gaussian) approximation**: the
  surrogate itself is not retrained; only its second-order description of
  ``f`` is updated. For a GP the same formulas are exact (up to the jitter);
  the tests check them against BoTorch's GP update.

Gradients: BoTorch's GP fantasies run with GPyTorch's default of detached
test caches, which leaves the fantasy model's variance right but its gradient
with respect to the fantasy inputs wrong (off by orders of magnitude in
BoTorch 0.18 / GPyTorch 1.15), so gradient-based optimisation of
``qNegIntegratedPosteriorVariance`` on a raw ``SingleTaskGP`` stalls. The
delegating path conditions with ``detach_test_caches(False)``, which fixes it.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import gpytorch
import torch
from botorch import settings as botorch_settings
from botorch.acquisition.objective import PosteriorTransform
from botorch.models.model import FantasizeMixin, Model
from botorch.posteriors.gpytorch import GPyTorchPosterior
from botorch.sampling.base import MCSampler
from gpytorch.distributions import MultitaskMultivariateNormal, MultivariateNormal
from linear_operator import to_linear_operator
from linear_operator.operators import DiagLinearOperator, LinearOperator, RootLinearOperator
from linear_operator.utils.cholesky import psd_safe_cholesky
from torch import Tensor

from surrogate_al.errors import ConfigError, NotFittedError, ShapeError
from surrogate_al.surrogates.base import Surrogate
from surrogate_al.surrogates.gp import exact_gp_settings

__all__ = ["SurrogateModel"]

logger = logging.getLogger(__name__)

# Smallest variance we take a square root of or divide by; far below any
# meaningful epistemic variance, far above underflow in float32.
_TINY = 1e-30


def _drop_prediction_caches(model: Model) -> None:
    """Empty the memoised prediction caches of a conditioned (fantasy) GPyTorch model.

    With ``detach_test_caches(False)`` (see the module docstring) GPyTorch
    keeps caches that carry autograd history and registers, on the node that
    made each cache, a hook holding the prediction strategy, which holds the
    cache: a reference cycle through the C++ autograd graph that Python's
    garbage collector cannot see. The hook clears the cache (breaking the
    cycle) only when a backward pass runs through that node; the mean cache
    never gets one when only variances are differentiated (qNIPV), nor does
    any cache of an evaluation without a backward pass, so every qNIPV round
    would leave its fantasy models alive and memory would grow round after
    round. The posterior already holds what it computed from the caches, so
    dropping them loses nothing but a recomputation on the next posterior.
    """
    strategy = getattr(model, "prediction_strategy", None)
    if strategy is not None:
        strategy._memoize_cache = {}


class SurrogateModel(Model, FantasizeMixin):
    """A BoTorch ``Model`` view of a fitted surrogate.

    Args:
        surrogate: a fitted surrogate (any implementation of the protocol).
        jitter: relative jitter: ``jitter * var`` is added to each point's
            variance on the covariance diagonal, so that Cholesky
            factorisations succeed for the low-rank covariances of ensembles.
        max_block_points: the covariance of a ``b x q x d`` batch is computed
            by calling ``joint_epistemic_covariance`` on up to this many
            points at once (several batch entries per call) and keeping the
            ``q x q`` diagonal blocks; bounds memory at ``m x max_block_points**2``.
        use_botorch_model: delegate to the surrogate's own BoTorch model
            (``surrogate.model_``) when it has one; False forces the Gaussian
            moment path for every surrogate.

    Raises:
        NotFittedError: ``surrogate`` has not been fitted.
        ConfigError: ``jitter`` is negative or ``max_block_points`` < 1.

    Example:
        >>> model = SurrogateModel(DeepEnsemble(num_members=5).fit(X, Y))
        >>> acqf = qNegIntegratedPosteriorVariance(model, mc_points=mc)
        >>> X_next, _ = optimize_acqf(acqf, bounds=bounds, q=2, num_restarts=4, raw_samples=64)
    """

    def __init__(
        self,
        surrogate: Surrogate,
        jitter: float = 1e-6,
        max_block_points: int = 256,
        use_botorch_model: bool = True,
    ) -> None:
        super().__init__()
        if not (isinstance(jitter, (int, float)) and math.isfinite(jitter) and jitter >= 0):
            raise ConfigError(f"SurrogateModel: jitter = {jitter!r}; expected a finite float >= 0 (default 1e-6)")
        if isinstance(max_block_points, bool) or not isinstance(max_block_points, int) or max_block_points < 1:
            raise ConfigError(f"SurrogateModel: max_block_points = {max_block_points!r}; expected an integer >= 1")
        num_outputs = surrogate.num_outputs
        if not isinstance(num_outputs, int) or num_outputs < 1:
            raise NotFittedError(
                f"SurrogateModel: {type(surrogate).__name__} reports num_outputs = {num_outputs!r}; "
                "fit the surrogate before wrapping it"
            )
        self.jitter = float(jitter)
        self.max_block_points = max_block_points
        delegate = getattr(surrogate, "model_", None) if use_botorch_model else None
        # Stored outside nn.Module registration on purpose: the surrogate owns
        # its modules' train/eval state (MC dropout must keep dropout active),
        # and BoTorch calls .eval()/.train() on the models it is given.
        self.__dict__["surrogate"] = surrogate
        self.__dict__["_delegate"] = delegate if isinstance(delegate, Model) else None
        self._num_outputs = num_outputs
        logger.debug(
            "SurrogateModel over %s: %s path, m=%d", type(surrogate).__name__,
            "delegating" if self._delegate is not None else "Gaussian-moment", num_outputs,
        )
        # Conditioning data (Gaussian path), all in output units:
        # X_obs ``batch x n' x d``, Y_obs ``batch x n' x m``, noise_obs ``batch x n' x m``.
        self._X_obs: Tensor | None = None
        self._Y_obs: Tensor | None = None
        self._noise_obs: Tensor | None = None

    # ------------------------------------------------------------ properties

    @property
    def num_outputs(self) -> int:
        """Number of outputs ``m``."""
        return self._num_outputs

    @property
    def batch_shape(self) -> torch.Size:
        """Model batch shape: empty unless conditioned on batched (fantasy) data."""
        if self._delegate is not None:
            return self._delegate.batch_shape
        if self._X_obs is None:
            return torch.Size()
        return torch.broadcast_shapes(self._X_obs.shape[:-2], self._Y_obs.shape[:-2], self._noise_obs.shape[:-2])

    @property
    def is_delegating(self) -> bool:
        """True when calls go to the surrogate's own BoTorch model (exact fantasies)."""
        return self._delegate is not None

    def _copy_with(self, **fields: Any) -> SurrogateModel:
        """A sibling sharing the surrogate, with some private fields replaced."""
        new = SurrogateModel.__new__(SurrogateModel)
        Model.__init__(new)
        new.jitter, new.max_block_points, new._num_outputs = self.jitter, self.max_block_points, self._num_outputs
        new.__dict__["surrogate"] = self.surrogate
        new.__dict__["_delegate"] = fields.pop("delegate", self._delegate)
        new._X_obs = fields.pop("X_obs", self._X_obs)
        new._Y_obs = fields.pop("Y_obs", self._Y_obs)
        new._noise_obs = fields.pop("noise_obs", self._noise_obs)
        return new

    # ---------------------------------------------------- surrogate moments

    def _check_X(self, X: Tensor) -> None:
        if X.ndim < 2:
            raise ShapeError(f"SurrogateModel: X has shape {tuple(X.shape)}; expected batch_shape x q x d")

    def _prior(self, X: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The surrogate's marginal moments at ``B x N x d`` points.

        Returns:
            ``(mean, epistemic_var, aleatoric_var)``, each ``B x N x m``, in
            ``X.dtype``, output units, differentiable in ``X``.
        """
        B, N, d = X.shape
        m = self._num_outputs
        pred = self.surrogate.predict(X.reshape(B * N, d))
        return (
            pred.mean.reshape(B, N, m).to(X),
            pred.epistemic_var.reshape(B, N, m).to(X).clamp_min(0.0),
            pred.aleatoric_var.reshape(B, N, m).to(X),
        )

    def _covariance_rows(self, X: Tensor, var: Tensor, rows: int) -> Tensor:
        """Leading rows of each group's joint epistemic covariance, in output units.

        The correlations are those of ``joint_epistemic_covariance``, the
        marginal variances those of ``predict`` (``var``); ``jitter * var`` is
        added on the diagonal, which makes the matrix positive definite even
        when the ensemble's covariance is rank-deficient (``N`` >= members).

        Args:
            X: ``B x N x d``: ``B`` independent groups of ``N`` points.
            var: ``B x N x m`` epistemic variances at ``X`` from ``predict``.
            rows: number of leading rows to keep (``N`` for the full matrix).

        Returns:
            ``B x m x rows x N`` covariance, differentiable in ``X``.
        """
        B, N, d = X.shape
        m = self._num_outputs
        # Several groups per call (few calls, small matrices); of each call's
        # covariance only the groups' N x N diagonal blocks are kept.
        per_call = max(1, self.max_block_points // max(N, 1))
        row_blocks, diag_blocks = [], []
        for start in range(0, B, per_call):
            Xc = X[start : start + per_call]
            c = Xc.shape[0]
            C = self.surrogate.joint_epistemic_covariance(Xc.reshape(c * N, d)).to(X)  # m x cN x cN
            C = C.reshape(m, c, N, c, N).diagonal(dim1=1, dim2=3).permute(3, 0, 1, 2)  # c x m x N x N
            # Copies, not views: a view would keep each call's whole matrix alive.
            diag_blocks.append(C.diagonal(dim1=-2, dim2=-1).clone())
            row_blocks.append(C[..., :rows, :].clone())
        K = torch.cat(row_blocks, dim=0)  # B x m x rows x N, standardised units
        k_diag = torch.cat(diag_blocks, dim=0).clamp_min(_TINY)  # B x m x N
        R = K / (k_diag[..., :rows, None] * k_diag[..., None, :]).sqrt()
        eye = torch.eye(rows, N, dtype=X.dtype, device=X.device)
        R = R.clamp(-1.0, 1.0) * (1 - eye) + eye
        v = var.transpose(-1, -2)  # B x m x N
        sd = v.clamp_min(_TINY).sqrt()
        return R * sd[..., :rows, None] * sd[..., None, :] + eye * (self.jitter * v[..., :rows, None])

    def _unconditioned_moments(self, X: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Prior moments at ``batch x q x d`` points.

        Returns:
            ``(mean, var, noise, cov)``: ``batch x q x m`` mean, epistemic and
            aleatoric variances and the ``batch x m x q x q`` joint covariance.
        """
        batch, (q, d), m = X.shape[:-2], X.shape[-2:], self._num_outputs
        flat = X.reshape(-1, q, d)
        mean, var, noise = self._prior(flat)
        cov = self._covariance_rows(flat, var, rows=q)
        return (
            mean.reshape(*batch, q, m),
            var.reshape(*batch, q, m),
            noise.reshape(*batch, q, m),
            cov.reshape(*batch, m, q, q),
        )

    def _moments(self, X: Tensor) -> tuple[Tensor, list[LinearOperator], Tensor]:
        """Moments at ``batch x q x d`` points, conditioned on stored observations.

        With observations ``(X_o, y_o)`` (noise variances ``s``), per output:
        ``mean = mu_q + K_qo (K_oo + S)^-1 (y_o - mu_o)`` and
        ``cov = K_qq - K_qo (K_oo + S)^-1 K_oq``. ``K_qq`` depends only on the
        queried points, so it is computed on ``X``'s own batch and broadcast
        (a stride-0 view); the downdate is kept as a low-rank
        ``LinearOperator``. For ``qNegIntegratedPosteriorVariance`` (hundreds
        of fantasy batches sharing hundreds of integration points) that avoids
        one dense ``N x N`` matrix per fantasy batch.

        Returns:
            ``(mean, covs, noise)``: ``batch' x q x m`` mean, ``m`` covariances
            ``batch' x q x q`` (``LinearOperator``), ``batch' x q x m``
            aleatoric variance; ``batch'`` is the broadcast of ``X``'s batch
            shape and the model's.
        """
        mean_q, var_q, noise_q, cov_q = self._unconditioned_moments(X)
        m = self._num_outputs
        if self._X_obs is None:
            return mean_q, [to_linear_operator(cov_q[..., j, :, :]) for j in range(m)], noise_q
        q, d = X.shape[-2:]
        batch = torch.broadcast_shapes(X.shape[:-2], self.batch_shape)
        B, n_obs = batch.numel(), self._X_obs.shape[-2]
        X_obs = self._X_obs.expand(*batch, n_obs, d).reshape(B, n_obs, d)
        Y_obs = self._Y_obs.expand(*batch, n_obs, m).reshape(B, n_obs, m)
        noise_obs = self._noise_obs.expand(*batch, n_obs, m).reshape(B, n_obs, m)
        mean_o, var_o, _ = self._prior(X_obs)
        # Rows of the joint covariance of [observed; queried] that involve the observed points.
        Z = torch.cat([X_obs, X.expand(*batch, q, d).reshape(B, q, d)], dim=-2)
        var_Z = torch.cat([var_o, var_q.expand(*batch, q, m).reshape(B, q, m)], dim=-2)
        rows = self._covariance_rows(Z, var_Z, rows=n_obs)  # B x m x n' x (n' + q)
        K_oo = rows[..., :n_obs] + torch.diag_embed(noise_obs.transpose(-1, -2))
        L = psd_safe_cholesky(K_oo)
        W = torch.linalg.solve_triangular(L, rows[..., n_obs:], upper=False)  # B x m x n' x q
        resid = (Y_obs - mean_o).transpose(-1, -2).unsqueeze(-1)  # B x m x n' x 1
        v = torch.linalg.solve_triangular(L, resid, upper=False)
        shift = (W.transpose(-1, -2) @ v).squeeze(-1).transpose(-1, -2)  # B x q x m
        mean = mean_q.expand(*batch, q, m) + shift.reshape(*batch, q, m)
        roots = W.transpose(-1, -2).reshape(*batch, m, q, n_obs)
        covs = [
            to_linear_operator(cov_q[..., j, :, :].expand(*batch, q, q)) - RootLinearOperator(roots[..., j, :, :])
            for j in range(m)
        ]
        return mean, covs, noise_q.expand(*batch, q, m)

    # ------------------------------------------------------------ posterior

    def posterior(
        self,
        X: Tensor,
        output_indices: list[int] | None = None,
        observation_noise: bool | Tensor = False,
        posterior_transform: PosteriorTransform | None = None,
    ) -> GPyTorchPosterior:
        """Joint Gaussian posterior over ``q`` points.

        Args:
            X: ``batch_shape x q x d`` inputs in the surrogate's units.
            output_indices: outputs to keep (default all ``m``).
            observation_noise: False for the latent ``f`` (epistemic only);
                True to add the surrogate's aleatoric variance on the diagonal;
                a ``batch_shape x q x m`` tensor to add those variances instead.
            posterior_transform: optional transform applied to the result
                (e.g. ``ScalarizedPosteriorTransform`` for ``m > 1``).

        Returns:
            ``GPyTorchPosterior`` of a ``MultivariateNormal`` (one output) or a
            ``MultitaskMultivariateNormal`` (several), batch shape the
            broadcast of ``batch_shape`` and the model's.
        """
        if self._delegate is not None:
            with exact_gp_settings():
                posterior = self._delegate.posterior(
                    X, output_indices=output_indices, observation_noise=observation_noise,
                    posterior_transform=posterior_transform,
                )
            if self._delegate is not self.surrogate.model_:
                _drop_prediction_caches(self._delegate)
            return posterior
        self._check_X(X)
        mean, covs, noise = self._moments(X)  # ... x q x m, m x (... x q x q), ... x q x m
        if isinstance(observation_noise, Tensor):
            noise = observation_noise.to(mean).expand_as(mean)
        if observation_noise is not False:
            covs = [cov + DiagLinearOperator(noise[..., j]) for j, cov in enumerate(covs)]
        outputs = list(range(self._num_outputs)) if output_indices is None else list(output_indices)
        mvns = [MultivariateNormal(mean[..., j], covs[j]) for j in outputs]
        # Several outputs: non-interleaved block-diagonal layout, as BoTorch's batched GPs.
        dist = mvns[0] if len(mvns) == 1 else MultitaskMultivariateNormal.from_independent_mvns(mvns)
        posterior = GPyTorchPosterior(distribution=dist)
        if posterior_transform is not None:
            return posterior_transform(posterior)
        return posterior

    # ---------------------------------------------------------- conditioning

    def condition_on_observations(self, X: Tensor, Y: Tensor, **kwargs: Any) -> Model:
        """A model conditioned on observations ``(X, Y)``.

        Args:
            X: ``batch_shape x n' x d`` inputs (surrogate units).
            Y: ``batch_shape' x n' x m`` observations (output units),
                ``batch_shape'`` broadcastable to ``batch_shape``.
            **kwargs: ``noise``: optional ``batch_shape x n' x m`` observation
                variances; default the surrogate's aleatoric variance at ``X``.
                (When delegating, kwargs go to BoTorch, whose ``noise`` is in
                the model's standardised outcome units.)

        Returns:
            The conditioned model (same class). The surrogate is not changed.

        Raises:
            ShapeError: ``X`` / ``Y`` / ``noise`` shapes do not fit together.
        """
        if self._delegate is not None:
            with exact_gp_settings(), gpytorch.settings.detach_test_caches(False):
                if getattr(self._delegate, "prediction_strategy", None) is None:
                    # GPyTorch conditions through its prediction caches, which
                    # exist only after a first prediction; fantasize() makes
                    # one itself, a direct call may not have.
                    self._delegate.posterior(X.reshape(-1, X.shape[-1])[:1])
                conditioned = self._delegate.condition_on_observations(X, Y, **kwargs)
            return self._copy_with(delegate=conditioned)
        noise = kwargs.get("noise")
        self._check_X(X)
        m = self._num_outputs
        if Y.ndim < 2 or Y.shape[-1] != m or Y.shape[-2] != X.shape[-2]:
            raise ShapeError(
                f"condition_on_observations: Y has shape {tuple(Y.shape)}; expected batch x {X.shape[-2]} x {m} "
                f"to match X of shape {tuple(X.shape)} and the model's {m} outputs"
            )
        if noise is None and X.shape[-2] == 0:
            noise = Y.new_zeros(X.shape[:-1] + (m,))
        elif noise is None:
            q, d = X.shape[-2], X.shape[-1]
            pred = self.surrogate.predict(X.reshape(-1, d))
            noise = pred.aleatoric_var.to(Y).reshape(*X.shape[:-2], q, m)
        elif noise.shape[-2:] != Y.shape[-2:]:
            raise ShapeError(f"condition_on_observations: noise has shape {tuple(noise.shape)}; expected the shape of Y, {tuple(Y.shape)}")
        X_new, Y_new, noise_new = X.to(Y), Y, noise.to(Y)
        if self._X_obs is not None:
            # Earlier and new observations under one common batch shape.
            batch = torch.broadcast_shapes(self.batch_shape, X.shape[:-2], Y.shape[:-2], noise_new.shape[:-2])
            n0, n1, d = self._X_obs.shape[-2], X.shape[-2], X.shape[-1]
            X_new = torch.cat([self._X_obs.expand(*batch, n0, d), X_new.expand(*batch, n1, d)], dim=-2)
            Y_new = torch.cat([self._Y_obs.expand(*batch, n0, m), Y_new.expand(*batch, n1, m)], dim=-2)
            noise_new = torch.cat([self._noise_obs.expand(*batch, n0, m), noise_new.expand(*batch, n1, m)], dim=-2)
        return self._copy_with(X_obs=X_new, Y_obs=Y_new, noise_obs=noise_new)

    def fantasize(
        self,
        X: Tensor,
        sampler: MCSampler,
        observation_noise: Tensor | None = None,
        **kwargs: Any,
    ) -> Model:
        """Fantasy model: sample observations at ``X`` and condition on them.

        Args:
            X: ``batch_shape x n' x d`` fantasy inputs.
            sampler: draws ``sample_shape`` fantasy observations.
            observation_noise: optional ``batch_shape x n' x m`` (or
                ``... x 1 x m``) noise variances; default the surrogate's
                aleatoric variance.
            **kwargs: passed to :meth:`condition_on_observations`.

        Returns:
            A model with batch shape ``sample_shape x batch_shape``.
        """
        if self._delegate is not None:
            # Keep GPyTorch's updated caches attached to X: with its default
            # (detached test caches) the fantasy model's variance is right but
            # its gradient in X is not, which wrecks gradient-based
            # optimisation of qNegIntegratedPosteriorVariance.
            with exact_gp_settings(), gpytorch.settings.detach_test_caches(False):
                fantasy = self._delegate.fantasize(X, sampler, observation_noise=observation_noise, **kwargs)
            return self._copy_with(delegate=fantasy)
        self._check_X(X)
        if X.shape[-2] == 0:
            # Nothing to observe: condition on an empty set with the batch
            # shape a fantasy model must have.
            empty = X.new_empty(sampler.sample_shape + X.shape[:-2] + self.batch_shape + (0, self._num_outputs))
            if observation_noise is not None:
                kwargs["noise"] = observation_noise.to(empty).expand(empty.shape[1:])
            return self.condition_on_observations(X, empty, **kwargs)
        propagate_grads = kwargs.pop("propagate_grads", False)
        with botorch_settings.propagate_grads(propagate_grads):
            post = self.posterior(X, observation_noise=True if observation_noise is None else observation_noise)
        Y = sampler(post)  # sample_shape x batch_shape x n' x m
        if observation_noise is not None:
            kwargs["noise"] = observation_noise.to(Y).expand(Y.shape[1:])
        return self.condition_on_observations(X, Y, **kwargs)
