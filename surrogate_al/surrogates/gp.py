"""Exact Gaussian-process surrogate on BoTorch / GPyTorch.

:class:`GaussianProcess` wraps BoTorch's :class:`~botorch.models.SingleTaskGP`
behind the :class:`~surrogate_al.surrogates.base.Surrogate` protocol:

* **Kernel.** BoTorch 0.18's ``SingleTaskGP`` defaults to an ARD RBF kernel
  without an output scale, with the dimension-scaled LogNormal lengthscale
  prior of Hvarfner et al. (2024). We keep that prior and that convention
  (outputs are standardised, so the prior signal variance is 1) but default to
  an ARD **Matérn-5/2** kernel: simulator responses are often only finitely
  smooth (kinks from regime changes, limiters, meshes), and an RBF fitted to
  them shrinks its lengthscales and becomes over-confident between points.
  ``kernel="rbf"`` restores BoTorch's default; ``"matern32"`` is rougher still.
* **Scaling.** Inputs are mapped to the unit cube and outputs standardised by
  BoTorch's own ``Normalize`` input transform and ``Standardize`` outcome
  transform, built into the model. ``model_`` therefore takes inputs and gives
  posteriors in the caller's units, so BoTorch's ``fantasize`` /
  ``condition_on_observations`` on it are exact (the BoTorch adapter delegates
  to it). The input box comes from ``bounds``, or from the training data via
  :class:`~surrogate_al.surrogates.base.InputScaler`.
* **Noise.** ``noise="learned"``: a homoscedastic Gaussian likelihood whose
  variance is fitted (LogNormal prior, floor ``1e-4`` of the output variance).
  ``noise=<float>``: a fixed noise variance, as a fraction of the output
  variance (``1e-6`` for a deterministic simulator). Passing ``Yvar`` to
  :meth:`GaussianProcess.fit` always fixes the noise to those variances.
  GPyTorch raises fixed noise below ``1e-6`` of the output variance (``1e-4``
  in float32) to that floor, with a ``NumericalWarning``; the reported
  aleatoric variance is the value actually used.
* **Multi-output.** ``m`` outputs are ``m`` independent GPs sharing the inputs,
  run as one batched ``SingleTaskGP`` (each output has its own hyperparameters).
* **Size.** Exact inference costs ``O(n^3)`` time and ``O(n^2)`` memory; at
  ``n = 5000`` one Cholesky factor of the kernel matrix is 200 MB in float64
  and every refit repeats ~4e10 flops per optimiser step, which is where a
  campaign's refit-per-batch loop stops being interactive. Above
  ``max_exact_points`` :meth:`GaussianProcess.fit` raises :class:`DataError`
  and points at the deep ensemble (surrogate kind ``"ensemble"``). Below it,
  all linear algebra is done by Cholesky (never by GPyTorch's iterative CG /
  Lanczos approximations), so predictions are exact and reproducible.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import gpytorch
import torch
from botorch.exceptions.errors import ModelFittingError
from botorch.fit import fit_gpytorch_mll
from botorch.models import SingleTaskGP
from botorch.models.transforms.input import Normalize
from botorch.models.transforms.outcome import Standardize
from botorch.optim.closures import get_loss_closure
from botorch.optim.fit import fit_gpytorch_mll_torch
from botorch.optim.utils import sample_all_priors
from gpytorch.constraints import GreaterThan
from gpytorch.distributions import MultivariateNormal
from gpytorch.kernels import Kernel, MaternKernel, RBFKernel
from gpytorch.likelihoods import FixedNoiseGaussianLikelihood
from gpytorch.mlls import ExactMarginalLogLikelihood
from gpytorch.priors import LogNormalPrior
from linear_operator.utils.cholesky import psd_safe_cholesky
from linear_operator.utils.errors import NotPSDError
from torch import Tensor

from surrogate_al.errors import ConfigError, DataError
from surrogate_al.surrogates.base import (
    InputScaler, OutputStandardizer, Prediction, as_tensor, check_bounds, check_inputs, check_training_data,
    require_fitted, resolve_device,
)

__all__ = ["GaussianProcess", "KERNELS", "exact_gp_settings"]

logger = logging.getLogger(__name__)

KERNELS: tuple[str, ...] = ("matern52", "matern32", "rbf")

# Fit outcomes recorded in ``fit_status_``.
_FIT_LBFGS = "lbfgs"
_FIT_ADAM = "adam"
_FIT_PRIOR = "prior_defaults"
# What a hyperparameter fit may fail with on valid data: BoTorch giving up
# after its restarts, or a kernel matrix that is not numerically PD.
#: Initial noise variance (standardised outputs) of the "low noise" fit start.
_LOW_NOISE_START = 1e-3
_FIT_FAILURES = (ModelFittingError, NotPSDError, torch.linalg.LinAlgError)


@contextmanager
def exact_gp_settings() -> Iterator[None]:
    """GPyTorch settings for exact inference: Cholesky everywhere, no debug checks.

    GPyTorch switches to conjugate gradients and Lanczos above 800 points by
    default; that makes variances approximate and run-to-run different. The
    size cap of :class:`GaussianProcess` keeps Cholesky affordable, so we force
    it. ``debug(False)`` silences the warning GPyTorch gives when predicting at
    the training inputs, which acquisition does on purpose.
    """
    with (
        gpytorch.settings.fast_computations(covar_root_decomposition=False, log_prob=False, solves=False),
        gpytorch.settings.debug(False),
    ):
        yield


def _make_kernel(kind: str, d: int, batch_shape: torch.Size) -> Kernel:
    """ARD kernel with BoTorch's dimension-scaled LogNormal lengthscale prior.

    The prior (``LogNormal(sqrt(2) + log(d) / 2, sqrt(3))``, lengthscales
    ``>= 0.025`` of the unit cube) is the one BoTorch's own default kernel uses
    (``get_covar_module_with_dim_scaled_prior``); only the kernel family is ours.
    """
    prior = LogNormalPrior(loc=math.sqrt(2.0) + 0.5 * math.log(d), scale=math.sqrt(3.0))
    common: dict[str, Any] = {
        "ard_num_dims": d,
        "batch_shape": batch_shape,
        "lengthscale_prior": prior,
        "lengthscale_constraint": GreaterThan(2.5e-2, transform=None, initial_value=prior.mode),
    }
    if kind == "rbf":
        return RBFKernel(**common)
    return MaternKernel(nu=2.5 if kind == "matern52" else 1.5, **common)


class GaussianProcess:
    """Exact GP surrogate (batched ``SingleTaskGP``, one independent GP per output).

    Args:
        bounds: ``2 x d`` lower and upper input bounds; None to take the box
            from the training data.
        kernel: ``"matern52"`` (default), ``"matern32"`` or ``"rbf"``; all ARD.
        noise: ``"learned"`` for a fitted homoscedastic noise variance, or a
            positive float: a fixed noise variance as a fraction of each
            output's variance (e.g. ``1e-6`` for a deterministic simulator).
            Ignored when ``fit`` receives ``Yvar``.
        max_exact_points: largest training set accepted (exact GP is
            ``O(n^3)`` time, ``O(n^2)`` memory).
        dtype: floating type of the model; float64 keeps Cholesky stable.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda:0"``, ...
        seed: seeds the hyperparameter restarts of the fit, so refits on the
            same data give the same model.
        fit_options: extra keyword arguments for
            :func:`botorch.fit.fit_gpytorch_mll` (e.g. ``max_attempts``,
            ``optimizer_kwargs``).
        warm_start: start each refit from the previous fit's hyperparameters
            (a campaign refits on slowly growing data: several times faster).
        restarts: extra L-BFGS-B fits from hyperparameters drawn from the
            priors. Every fit also starts from the prior mode, from the prior
            mode with little noise (learned noise only) and, with
            ``warm_start``, from the previous fit; the best marginal likelihood
            (with priors) wins. The likelihood is often bimodal (signal vs
            noise): the prior-mode start alone can land in either basin from
            one refit to the next, and samples from the priors (mostly long
            lengthscales) rarely find the signal basin; the low-noise start
            does.

    Attributes:
        model_: the fitted ``SingleTaskGP``; takes inputs and returns
            posteriors in the caller's units (it carries ``Normalize`` and
            ``Standardize`` transforms).
        train_X_, train_Y_, train_Yvar_: the training data (``n x d``,
            ``n x m``, ``n x m`` or None), kept for :meth:`state_dict`.
        fit_status_: how the hyperparameters were obtained: ``"lbfgs"``
            (normal), ``"adam"`` (fallback optimiser) or ``"prior_defaults"``
            (both fits failed; prior-mode hyperparameters).

    Example:
        >>> gp = GaussianProcess(bounds=torch.tensor([[0.0], [1.0]])).fit(X, Y)
        >>> pred = gp.predict(X_new)  # pred.mean: n x m
    """

    #: The epistemic covariance is the kernel's, exact (never tapered by the acquisition).
    sampled_covariance: bool = False

    def __init__(
        self,
        bounds: Tensor | None = None,
        kernel: str = "matern52",
        noise: str | float = "learned",
        max_exact_points: int = 5000,
        dtype: torch.dtype = torch.float64,
        device: str | torch.device = "auto",
        seed: int = 0,
        fit_options: Mapping[str, Any] | None = None,
        warm_start: bool = True,
        restarts: int = 0,
    ) -> None:
        if kernel not in KERNELS:
            raise ConfigError(f"GaussianProcess: kernel = {kernel!r} is not known; choose one of {list(KERNELS)}")
        if isinstance(noise, str):
            if noise != "learned":
                raise ConfigError(
                    f"GaussianProcess: noise = {noise!r}; expected 'learned' or a positive float "
                    "(fixed noise variance as a fraction of the output variance, e.g. 1e-6)"
                )
        elif isinstance(noise, bool) or not isinstance(noise, (int, float)) or not (0.0 < float(noise) < math.inf):
            raise ConfigError(
                f"GaussianProcess: noise = {noise!r}; a fixed noise must be a finite float > 0 "
                "(use 1e-6 for a deterministic simulator) or 'learned'"
            )
        if isinstance(max_exact_points, bool) or not isinstance(max_exact_points, int) or max_exact_points < 2:
            raise ConfigError(f"GaussianProcess: max_exact_points = {max_exact_points!r}; expected an integer >= 2")
        if dtype not in (torch.float32, torch.float64):
            raise ConfigError(f"GaussianProcess: dtype = {dtype!r}; expected torch.float64 (recommended) or torch.float32")
        if fit_options is not None and not isinstance(fit_options, Mapping):
            raise ConfigError(f"GaussianProcess: fit_options = {fit_options!r}; expected a dict of fit_gpytorch_mll keyword arguments")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"GaussianProcess: seed = {seed!r}; expected an integer")
        try:
            resolve_device(device)
        except (RuntimeError, TypeError) as exc:
            raise ConfigError(f"GaussianProcess: device = {device!r} is not a torch device ({exc}); use 'auto', 'cpu' or 'cuda'") from exc
        self.bounds = None if bounds is None else check_bounds(bounds, "GaussianProcess")
        self.kernel = kernel
        self.noise = noise if isinstance(noise, str) else float(noise)
        self.max_exact_points = max_exact_points
        self.dtype = dtype
        self.device = device
        self.seed = seed
        self.fit_options = dict(fit_options or {})
        self.warm_start = bool(warm_start)
        if isinstance(restarts, bool) or not isinstance(restarts, int) or restarts < 0:
            raise ConfigError(
                f"GaussianProcess: restarts = {restarts!r}; expected an integer >= 0 (extra hyperparameter "
                "fits from starts drawn from the priors; 0 fits only from the prior mode or the previous fit)"
            )
        self.restarts = restarts

        self.model_: SingleTaskGP | None = None
        self.train_X_: Tensor | None = None
        self.train_Y_: Tensor | None = None
        self.train_Yvar_: Tensor | None = None
        self.fit_status_: str | None = None

    # ------------------------------------------------------------------ fit

    def fit(self, X: Tensor, Y: Tensor, Yvar: Tensor | None = None) -> GaussianProcess:
        """Fit hyperparameters by maximising the exact marginal likelihood.

        Args:
            X: ``n x d`` inputs.
            Y: ``n x m`` outputs (or ``n``).
            Yvar: optional ``n x m`` known noise variances in output units;
                when given, the noise is fixed to them instead of learned.

        Returns:
            ``self``, fitted.

        Raises:
            ShapeError, DataError: bad training data (see ``check_training_data``).
            DataError: more than ``max_exact_points`` points.
        """
        dev = resolve_device(self.device)
        X = as_tensor(X, self.dtype, dev, "X").detach()
        Y = as_tensor(Y, self.dtype, dev, "Y").detach()
        Yvar = None if Yvar is None else as_tensor(Yvar, self.dtype, dev, "Yvar").detach()
        d = None if self.bounds is None else self.bounds.shape[-1]
        X, Y, Yvar = check_training_data(X, Y, Yvar, input_dim=d)
        n = X.shape[0]
        if n > self.max_exact_points:
            raise DataError(
                f"GaussianProcess: {n} training points exceed max_exact_points = {self.max_exact_points}. "
                "An exact GP costs O(n^3) time and O(n^2) memory per fit; use the deep ensemble "
                "(surrogate kind 'ensemble', DeepEnsemble), which scales linearly in n, or raise "
                "max_exact_points if you have the time and memory"
            )

        # Own RNG stream: fit restarts sample hyperparameters from the priors,
        # and a campaign must not see its global RNG state move because of that.
        devices = [dev] if dev.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), exact_gp_settings():
            torch.manual_seed(self.seed)
            model, status = self._fit_robustly(X, Y, Yvar)
        self.model_, self.fit_status_ = model, status
        self.train_X_, self.train_Y_, self.train_Yvar_ = X, Y, Yvar
        self._warm_caches()
        logger.debug("GaussianProcess fitted on n=%d, d=%d, m=%d (%s)", n, X.shape[1], Y.shape[1], status)
        return self

    def _fit_robustly(self, X: Tensor, Y: Tensor, Yvar: Tensor | None) -> tuple[SingleTaskGP, str]:
        """L-BFGS-B from several starts (best marginal likelihood wins), then Adam, then the prior's defaults."""
        starts = (["previous"] if self.warm_start and self.model_ is not None else []) + ["mode"]
        if Yvar is None and isinstance(self.noise, str):
            # The likelihood's two usual basins are "signal" (short lengthscales, little
            # noise) and "noise" (long lengthscales, much noise). The prior-mode start
            # sometimes, and samples from the priors (mostly long lengthscales) nearly
            # always, end in the second; the same start with noise 1e-3 finds the first.
            # The better marginal likelihood wins.
            starts.append("low noise")
        starts += ["prior sample"] * self.restarts
        best: tuple[float, SingleTaskGP] | None = None
        failure: Exception | None = None
        for start in starts:
            model = self._build_model(X, Y, Yvar)
            if start == "previous":
                self._start_from_previous(model)
            elif start == "prior sample":
                sample_all_priors(model)
            elif start == "low noise":
                model.likelihood.noise = _LOW_NOISE_START
            mll = ExactMarginalLogLikelihood(model.likelihood, model)
            try:
                fit_gpytorch_mll(mll, **self.fit_options)
                with torch.no_grad():
                    # Several outputs are a batch of independent GPs: one start for all, summed.
                    loss = float(get_loss_closure(mll.train())().sum())
            except _FIT_FAILURES as exc:
                failure = exc
                continue
            if math.isfinite(loss) and (best is None or loss < best[0]):
                best = (loss, model)
        if best is not None:
            return best[1].eval(), _FIT_LBFGS
        logger.warning(
            "GaussianProcess: L-BFGS-B hyperparameter fit failed (%s); retrying with Adam "
            "(fit_gpytorch_mll_torch)", failure
        )
        # A failed attempt may leave hyperparameters anywhere: restart clean.
        model = self._build_model(X, Y, Yvar)
        try:
            fit_gpytorch_mll(
                ExactMarginalLogLikelihood(model.likelihood, model),
                **{**self.fit_options, "optimizer": fit_gpytorch_mll_torch},
            )
            return model.eval(), _FIT_ADAM
        except _FIT_FAILURES as exc:
            logger.warning(
                "GaussianProcess: Adam hyperparameter fit failed too (%s); using the prior-mode "
                "hyperparameters (predictions are usable but not tuned to the data)", exc
            )
        return self._build_model(X, Y, Yvar).eval(), _FIT_PRIOR

    def _start_from_previous(self, model: SingleTaskGP) -> None:
        """Start the optimiser at the last fit's hyperparameters.

        A campaign refits after every few new points; the optimum moves little,
        so L-BFGS-B converges in a fraction of the iterations a cold start needs.
        The kernel and likelihood shapes depend only on ``d`` and ``m``, which
        do not change between refits; a mismatch (new outputs) falls back to a
        cold start.
        """
        previous = self.model_
        try:
            model.covar_module.load_state_dict(previous.covar_module.state_dict())
            model.mean_module.load_state_dict(previous.mean_module.state_dict())
            if isinstance(self.noise, str) and type(model.likelihood) is type(previous.likelihood):
                model.likelihood.load_state_dict(previous.likelihood.state_dict())
        except (RuntimeError, KeyError, AttributeError) as exc:
            logger.debug("GaussianProcess: cold start (previous hyperparameters do not fit: %s)", exc)

    def _build_model(self, X: Tensor, Y: Tensor, Yvar: Tensor | None) -> SingleTaskGP:
        """Unfitted ``SingleTaskGP`` with our kernel, noise model and transforms, in train mode."""
        d, m = X.shape[1], Y.shape[1]
        scaler = InputScaler(self.bounds).fit(X)
        box = torch.stack([scaler.lower_, scaler.lower_ + scaler.span_])
        if Yvar is None and not isinstance(self.noise, str):
            # The fixed level is relative to each output's variance, so that
            # after Standardize it is exactly ``self.noise``.
            std = OutputStandardizer().fit(Y).std_
            Yvar = (self.noise * std**2).expand_as(Y).clone()
        batch_shape = torch.Size([m]) if m > 1 else torch.Size()
        return SingleTaskGP(
            train_X=X,
            train_Y=Y,
            train_Yvar=Yvar,
            covar_module=_make_kernel(self.kernel, d, batch_shape),
            input_transform=Normalize(d=d, bounds=box),
            outcome_transform=Standardize(m=m),
        )

    # -------------------------------------------------------------- predict

    @property
    def num_outputs(self) -> int:
        """Number of outputs ``m``."""
        require_fitted(self, "model_")
        return int(self.train_Y_.shape[1])

    @property
    def input_dim(self) -> int:
        """Number of inputs ``d``."""
        require_fitted(self, "model_")
        return int(self.train_X_.shape[1])

    def _latent(self, X: Tensor) -> tuple[Tensor, MultivariateNormal]:
        """Posterior of the latent ``f`` in standardised units.

        Args:
            X: ``n x d`` inputs (any float dtype; cast to the model's).

        Returns:
            The validated ``n x d`` inputs and the posterior MVN with batch
            shape ``m`` (``m > 1``) or none (``m = 1``) over the ``n`` points.
        """
        require_fitted(self, "model_")
        X = check_inputs(as_tensor(X, self.dtype, self.train_X_.device, "X"), self.input_dim)
        model = self.model_
        model.eval()
        Xt = model.transform_inputs(X)
        if self.num_outputs > 1:
            Xt = Xt.unsqueeze(-3)  # 1 x n x d, broadcast over the m output batch
        with exact_gp_settings():
            mvn = model(Xt)
        return X, mvn

    def _warm_caches(self) -> None:
        """Build GPyTorch's prediction caches now, always the same way.

        GPyTorch computes them lazily at the first prediction, by a slightly
        different route with and without autograd; building them here makes
        a fitted model and its reloaded copy agree to the last bit whatever
        the first caller does. Caches are detached either way.
        """
        with torch.no_grad():
            self._latent(self.train_X_[:1])
            # The Cholesky factor of K(X, X) + noise that epistemic_cross_covariance
            # conditions on: GPyTorch refactors that matrix in every posterior call.
            train_covar = self.model_.prediction_strategy.lik_train_train_covar.to_dense()
            self.train_cholesky_ = psd_safe_cholesky(train_covar)
        self._fixed_points_cache: tuple[Tensor, Tensor, Tensor] | None = None

    def _fixed_points(self, Z: Tensor) -> tuple[Tensor, Tensor]:
        """Transformed ``Z`` and ``L⁻¹ k(T, Z)``, kept while the same ``Z`` comes back.

        Batch acquisition passes the same fixed points (pending points and the
        variance reference, ``z`` of them) in every iteration of a synthesis,
        with a few candidates each time; at ``z >> b`` the ``n x z`` kernel and
        its triangular solve are most of a call's cost. Recomputing gives the
        same bits, so the cache changes no result. ``Z`` that needs a gradient
        is never cached; otherwise the result carries no gradient.

        Args:
            Z: ``z x d`` points (checked, in the model's dtype and device).

        Returns:
            ``(Zt, V_z)``: ``z x d`` (``1 x z x d`` with several outputs)
            transformed points and the ``[m x] n x z`` whitened cross-kernel.
        """
        cached = self._fixed_points_cache
        if cached is not None and cached[0].shape == Z.shape and torch.equal(cached[0], Z):
            return cached[1], cached[2]
        model = self.model_
        # No graph to the hyperparameters either: acquisition differentiates in X only.
        with torch.set_grad_enabled(Z.requires_grad), exact_gp_settings():
            Zt = model.transform_inputs(Z)
            if self.num_outputs > 1:
                Zt = Zt.unsqueeze(-3)  # broadcast over the m output batch
            V_z = torch.linalg.solve_triangular(
                self.train_cholesky_, model.covar_module(model.train_inputs[0], Zt).to_dense(), upper=False
            )
        if not Z.requires_grad:
            self._fixed_points_cache = (Z.detach().clone(), Zt, V_z)
        return Zt, V_z

    def _noise_variance(self) -> Tensor:
        """``m`` noise variances in standardised units.

        Learned noise: the likelihood's variance. Fixed noise (``Yvar`` or a
        float ``noise``): the mean of the training noise per output, the level
        BoTorch itself assumes for new observations when fantasising.
        """
        m = self.num_outputs
        noise = self.model_.likelihood.noise.detach()
        if isinstance(self.model_.likelihood, FixedNoiseGaussianLikelihood):
            return noise.reshape(m, -1).mean(dim=-1)
        return noise.reshape(m)

    def _output_scale(self) -> tuple[Tensor, Tensor]:
        """``m`` means and ``m`` standard deviations of the outcome transform."""
        tf = self.model_.outcome_transform
        return tf.means.reshape(-1), tf.stdvs.reshape(-1)

    def predict(self, X: Tensor) -> Prediction:
        """Predictive moments at ``n x d`` inputs, in output units.

        ``epistemic_var`` is the posterior variance of the latent function
        (no observation noise); ``aleatoric_var`` is the noise variance (see
        :meth:`_noise_variance`). Differentiable with respect to ``X``.

        Args:
            X: ``n x d`` inputs (a ``d`` vector is read as ``1 x d``).

        Returns:
            :class:`Prediction` with ``n x m`` tensors.
        """
        X, mvn = self._latent(X)
        mean_z, var_z = mvn.mean, mvn.variance
        if self.num_outputs == 1:
            mean_z, var_z = mean_z.unsqueeze(0), var_z.unsqueeze(0)
        loc, std = self._output_scale()
        mean = mean_z.transpose(0, 1) * std + loc
        # Cancellation in K** - K*x K^-1 Kx* can leave tiny negatives.
        epistemic = var_z.transpose(0, 1).clamp_min(0.0) * std**2
        aleatoric = (self._noise_variance() * std**2).expand(X.shape[0], -1).clone()
        return Prediction(mean=mean, epistemic_var=epistemic, aleatoric_var=aleatoric)

    def joint_epistemic_covariance(self, X: Tensor) -> Tensor:
        """Posterior covariance of the latent ``f`` between points, standardised units.

        Args:
            X: ``n x d`` inputs.

        Returns:
            ``m x n x n`` covariance (differentiable in ``X``); its diagonal is
            ``predict(X).epistemic_var / std**2``.
        """
        _, mvn = self._latent(X)
        cov = mvn.covariance_matrix
        return cov.unsqueeze(0) if self.num_outputs == 1 else cov

    def epistemic_cross_covariance(self, Z: Tensor, X: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior covariance between fixed points and candidates, and the candidates' variances.

        The blocks of :meth:`joint_epistemic_covariance` on ``Z ∪ X`` that
        batch acquisition needs, without the ``z x z`` block and with the
        training covariance factored once per fit instead of once per call:
        ``k(Z, X) - k(Z, T) (K_TT + N)⁻¹ k(T, X)`` with ``T`` the training
        inputs. Same values as the joint covariance up to rounding.

        Args:
            Z: ``z x d`` fixed points (no gradient needed).
            X: ``b x d`` candidates.

        Returns:
            ``(cross, var)``: ``m x z x b`` covariances and ``m x b``
            variances at ``X`` (not clamped), standardised units,
            differentiable in ``X``.
        """
        require_fitted(self, "model_")
        model = self.model_
        Z, X = (
            check_inputs(as_tensor(P, self.dtype, self.train_X_.device, what), self.input_dim)
            for P, what in ((Z, "Z"), (X, "X"))
        )
        Zt, V_z = self._fixed_points(Z)
        Xt = model.transform_inputs(X)
        if self.num_outputs > 1:
            Xt = Xt.unsqueeze(-3)  # broadcast over the m output batch
        kernel = model.covar_module
        with exact_gp_settings():
            k_zx = kernel(Zt, Xt).to_dense()
            k_xx = kernel(Xt, Xt, diag=True)
            V_x = torch.linalg.solve_triangular(
                self.train_cholesky_, kernel(model.train_inputs[0], Xt).to_dense(), upper=False
            )
        cross = k_zx - V_z.transpose(-1, -2) @ V_x
        var = k_xx - (V_x**2).sum(-2)
        if self.num_outputs == 1:
            cross, var = cross.unsqueeze(0), var.unsqueeze(0)
        return cross, var

    def loo_surprise(self) -> Tensor:
        """How badly the model predicts each training run from the others.

        The closed-form leave-one-out residual of run ``i`` over its
        leave-one-out predictive standard deviation, squared:
        ``z_i² = α_i² / (K⁻¹)_ii`` with ``K = K_TT + N`` and ``α = K⁻¹ (y - μ)``
        (Rasmussen & Williams, *Gaussian Processes for Machine Learning*,
        eq. 5.12), at the fitted hyperparameters, from the training Cholesky
        factor kept per fit. About 1 where the model explains a run, far
        above where a run shows a feature the rest of the data hide.

        Returns:
            ``n`` values, the mean over outputs (standardised units cancel).
        """
        require_fitted(self, "model_")
        model = self.model_
        with torch.no_grad(), exact_gp_settings():
            residual = model.train_targets - model.mean_module(model.train_inputs[0])  # [m x] n
            alpha = torch.cholesky_solve(residual.unsqueeze(-1), self.train_cholesky_).squeeze(-1)
            inverse_diagonal = torch.cholesky_inverse(self.train_cholesky_).diagonal(dim1=-2, dim2=-1)
            z2 = alpha**2 / inverse_diagonal
        return z2 if z2.dim() == 1 else z2.mean(0)

    # ------------------------------------------------------------- state

    def state_dict(self) -> dict[str, Any]:
        """Training data, hyperparameters and transform state as plain CPU tensors.

        Returns:
            ``{"kind", "kernel", "noise", "train_X", "train_Y", "train_Yvar",
            "model", "fit_status"}``; ``model`` is the ``SingleTaskGP``'s
            parameter/buffer dict (hyperparameters, input box, output scale).
        """
        require_fitted(self, "model_")

        def cpu(t: Tensor) -> Tensor:
            return t.detach().to("cpu").clone()

        return {
            "kind": "gp",
            "kernel": self.kernel,
            "noise": self.noise,
            "train_X": cpu(self.train_X_),
            "train_Y": cpu(self.train_Y_),
            "train_Yvar": None if self.train_Yvar_ is None else cpu(self.train_Yvar_),
            "model": {k: cpu(v) for k, v in self.model_.state_dict().items()},
            "fit_status": self.fit_status_,
        }

    def load_state_dict(self, state: dict[str, Any]) -> GaussianProcess:
        """Rebuild the fitted model from :meth:`state_dict` without refitting.

        Args:
            state: output of :meth:`state_dict` from an equally configured model.

        Returns:
            ``self``, giving the same predictions as the model that was saved.

        Raises:
            ConfigError: the state was saved by a different kind of model or
                with a different kernel / noise configuration.
        """
        missing = {"train_X", "train_Y", "train_Yvar", "model"} - set(state)
        if state.get("kind", "gp") != "gp" or missing:
            raise ConfigError(
                f"GaussianProcess.load_state_dict: state is not a GP state (kind = {state.get('kind')!r}, "
                f"missing keys {sorted(missing)}); pass the dict produced by GaussianProcess.state_dict()"
            )
        for field in ("kernel", "noise"):
            if field in state and state[field] != getattr(self, field):
                raise ConfigError(
                    f"GaussianProcess.load_state_dict: saved {field} = {state[field]!r} but this model has "
                    f"{field} = {getattr(self, field)!r}; construct it with {field}={state[field]!r}"
                )
        dev = resolve_device(self.device)
        X = as_tensor(state["train_X"], self.dtype, dev, "train_X")
        Y = as_tensor(state["train_Y"], self.dtype, dev, "train_Y")
        Yvar = None if state["train_Yvar"] is None else as_tensor(state["train_Yvar"], self.dtype, dev, "train_Yvar")
        X, Y, Yvar = check_training_data(X, Y, Yvar)
        model = self._build_model(X, Y, Yvar)
        # Entries may come back from a store as numpy arrays; load_state_dict
        # copies them into the freshly built parameters (casting dtype).
        # keep_transforms=False: the model was just built from the very data
        # the transforms were fitted on, so its standardised targets are
        # already right; BoTorch's default would untransform and re-transform
        # them, which costs last-bit rounding and identical predictions.
        model.load_state_dict(
            {k: torch.as_tensor(v, device=dev) for k, v in state["model"].items()}, keep_transforms=False
        )
        self.model_ = model.eval()
        self.train_X_, self.train_Y_, self.train_Yvar_ = X, Y, Yvar
        self._warm_caches()
        self.fit_status_ = state.get("fit_status", _FIT_LBFGS)
        return self
