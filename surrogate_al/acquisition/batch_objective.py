"""The batch objective ``F_λ``: information and coverage of a set of points, and its marginal gains.

Taking the q best points of a pointwise score puts a batch on one hill. A
batch is instead chosen by greedily maximising a set function ``F_λ(S)`` of
the whole batch ``S`` that rewards information and coverage with diminishing
returns, so each new point is worth most where the others are not. This
module defines ``F_λ`` (:class:`BatchObjective`); the greedy loops that
maximise it, and why greedy maximisation is near-optimal, are in
:mod:`surrogate_al.acquisition.greedy_batch`.

The objective
-------------
``F_λ(S) = λ · I(S) / s_I + (1 − λ) · Cov(S) / s_cov``, given the pending
runs ``P`` (already in the set: every marginal gain is computed given
``P ∪ S``, so a batch avoids what is already running). The information term
``I`` is one of two (``information=``):

* **Integrated variance reduction** (``"variance"``, the default)
  ``I(S) = Σ_j w_j (V_j(∅) − V_j(S))`` with ``V_j(S)`` the mean over the
  variance reference points ``r`` (the first 256 reference points) of the
  epistemic variance of output ``j`` once ``S`` is observed. The marginal gain
  of ``x`` given the set ``G`` is
  ``Σ_j w_j mean_r cov_j(r, x | G)² / (var_j(x | G) + σ_j²(x))``, from the
  blocks of the joint epistemic covariance on ``G ∪ R ∪ {x}`` (exact for the
  GP, the empirical covariance across members for the ensemble and MC
  dropout; standardised units) that involve ``x``, differentiable in ``x``;
  the ``G``-only blocks are computed once per greedy step. It is what the
  test error averages: a point is worth the variance it removes *over the
  box*, so it is drawn to where it is correlated with much unexplained
  volume, not to the faces and corners where the variance itself peaks.
* **Information gain** (``"logdet"``) ``I(S) = ½ Σ_j w_j log det(I + ε⁻¹ K_j(S))``
  with ``K_j(S)`` the joint epistemic covariance of output ``j`` at the
  points of ``S``: the mutual information between the latent function and
  observations at ``S`` with noise variance ``ε`` (D-optimal design). The
  marginal gain of ``x`` is ``½ Σ_j w_j log(1 + var_j(x | S) / σ_j²(x))`` with
  ``var(x | S) = k(x, x) − k(x, S)(K(S) + ε I)⁻¹ k(S, x)`` (matrix
  determinant lemma). Its maxima are where the variance is largest, which
  with a stationary kernel means the boundary of the box, so its batches
  crowd the faces; that is why the variance term is the default (the
  evidence is in docs/decisions.md).

* **Localisation** (``localisation=L``, for a deep ensemble or MC dropout;
  off by default). Their epistemic covariance is the empirical covariance
  of ``K`` networks (8 members by default), of rank ``K − 1``: the
  variance-reduction gain of ``x`` is then the Rayleigh quotient of the
  reference set's ``K x K`` member covariance in the direction of ``x``'s
  member deviations, however far ``x`` is from the reference points, so
  a run on a face of the box, where the networks extrapolate, is credited
  with settling disagreement in the middle of the box that one more
  training point there would not settle. Such long-range correlations
  are sampling error of a small ensemble, and the ensemble Kalman filter's
  remedy applies: multiply every cross-covariance by a taper
  ``exp(-|z − x|² / (2 L²))`` (Houtekamer & Mitchell 2001; the Schur
  product of two covariances is a covariance, so conditioning stays
  positive definite, and the diagonal is unchanged). A GP's covariance is
  exact and never tapered. The objective applies no taper unless asked;
  the default policy asks for a deterministic simulator only
  (:data:`~surrogate_al.policies.hybrid.DETERMINISTIC_LOCALISATION`).
* **Coverage** ``Cov(S) = (1/|R|) Σ_{r∈R} max(c_r, max_{s∈S} sim(r, s)) − Σ c_r/|R|``,
  a facility-location function over a reference set ``R`` (Sobol points in
  synthesis mode, a subsample of the candidates in pool mode), with
  ``sim(r, s) = exp(−|r − s|² / (2ℓ²))``, ``ℓ`` the expected
  nearest-neighbour spacing of the points the box will hold after the batch
  (:func:`~surrogate_al.acquisition.scores.expected_nn_spacing`) and ``c_r``
  the coverage already provided by labelled and failed points. The marginal
  gain of ``x`` is ``mean_r max(0, sim(r, x) − cur_r)``.
* **Noise** (both terms). ``ε_j = noise_floor · max_{r∈R} v_j(r)``, a fraction (1e-3 by
  default) of the largest epistemic variance on the reference set: the
  resolution below which the remaining uncertainty is not worth a run. It
  scales with what is left to learn, so it means the same early in a campaign
  (``v ≈ 1``, the prior) and late (``v ≪ 1``). The points already in the set
  are conditioned on with ``ε``; the candidate's own observation has noise
  ``σ_j²(x) ≥ ε``: the surrogate's aleatoric variance at ``x`` in
  standardised units, clipped to ``[ε_j, cap_j]`` with ``cap_j`` its largest
  value at the labelled points (a noise head extrapolates freely away from
  the data and must not claim more noise than it has seen). So a query where
  the simulator is noisy informs less, by exactly the factor its noise
  dilutes the observation, and aleatoric noise never attracts a batch. A
  surrogate that reports one noise level everywhere (the GP) gets a constant
  ``σ_j²``, the median at the labelled points (at least ``ε_j``), and costs
  no extra predictions. Conditioning the chosen points on ``ε`` rather than
  on their own noise is deliberate: with their own noise, a repeated noisy run
  at the most uncertain input keeps a large gain, and the batch of an
  ensemble (whose members disagree most at the box's faces) degenerates into
  replicates of one point.
* **Scales** ``s_I``, ``s_cov``: the best single-point gains over the
  reference set (the variance reference set for the variance term) given
  the labelled data only, so both terms are about 1 for
  the best first point and λ means the same on every problem (as for ``J``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from surrogate_al.acquisition.schedules import check_lambda
from surrogate_al.acquisition.scores import (
    NoiseLevels,
    expected_nn_spacing,
    standardised_variances,
)
from surrogate_al.errors import ConfigError, ShapeError
from surrogate_al.surrogates.base import Surrogate, epistemic_cross_covariance

__all__ = [
    "INFORMATION_TERMS",
    "BatchObjective",
    "as_points",
    "check_information",
    "gaussian_similarity",
    "has_sampled_covariance",
    "information_gain",
]

#: Jitter added to ``K(S) + ε I`` before its Cholesky factorisation.
_JITTER = 1e-12
#: The information terms :class:`BatchObjective` knows (see the module docstring).
INFORMATION_TERMS = ("variance", "logdet")
#: Reference points over which the variance reduction is averaged (a Sobol prefix is balanced).
_VARIANCE_REFERENCE = 256


def check_information(value: str) -> str:
    """Return ``value`` if it names an information term, else raise :class:`ConfigError`."""
    if value not in INFORMATION_TERMS:
        raise ConfigError(
            f"information = {value!r}; expected one of {', '.join(INFORMATION_TERMS)} "
            "(integrated variance reduction, or the batch's log-det mutual information)"
        )
    return value


def as_points(X: Tensor | None, d: int, what: str, like: Tensor) -> Tensor:
    """``X`` as ``k x d`` points of ``like``'s dtype and device (``0 x d`` for None).

    Raises:
        ShapeError: ``X`` is not ``k x d``.
    """
    if X is None:
        return like.new_zeros((0, d))
    X = torch.as_tensor(X).to(like)
    if X.ndim != 2 or X.shape[1] != d:
        raise ShapeError(f"{what} has shape {tuple(X.shape)}; expected k x {d} unit-cube points")
    return X


def information_gain(cov: Tensor, noise_var: Tensor, weights: Tensor | None = None) -> Tensor:
    """``½ Σ_j w_j log det(I + N_j^(-1/2) K_j N_j^(-1/2))`` for one set of ``s`` points.

    Args:
        cov: ``m x s x s`` epistemic covariances ``K_j``.
        noise_var: ``m`` noise variances, or ``m x s`` per point (``N_j`` diagonal).
        weights: ``m`` output weights (default 1).

    Returns:
        The information gain (a scalar tensor; 0 for ``s = 0``).
    """
    m, s, _ = cov.shape
    if weights is None:
        weights = cov.new_ones(m)
    if s == 0:
        return cov.new_zeros(())
    noise = noise_var.to(cov)
    noise = noise.view(m, 1).expand(m, s) if noise.ndim == 1 else noise
    root = noise.rsqrt()
    scaled = cov * root.unsqueeze(-1) * root.unsqueeze(-2) + torch.eye(s, dtype=cov.dtype, device=cov.device)
    return 0.5 * (weights.to(cov) * torch.linalg.slogdet(scaled).logabsdet).sum()


def gaussian_similarity(A: Tensor, B: Tensor, lengthscale: float) -> Tensor:
    """``a x b`` similarities ``exp(-|a - b|² / (2 ℓ²))`` between ``a x d`` and ``b x d`` points."""
    # |a|^2 + |b|^2 - 2 a.b as one fused matrix product (far faster than a x b x d differences);
    # the clamp removes round-off negatives for coincident points.
    sq = torch.addmm((B**2).sum(-1).unsqueeze(0), A, B.T, alpha=-2.0).add_((A**2).sum(-1, keepdim=True))
    scale = -0.5 / lengthscale**2
    if sq.requires_grad:
        return torch.exp(sq.clamp_min(0.0) * scale)
    # No gradient wanted (bulk scoring): work in place, one a x b buffer instead of four.
    return sq.clamp_min_(0.0).mul_(scale).exp_()


def has_sampled_covariance(surrogate: Surrogate) -> bool:
    """Whether ``surrogate``'s epistemic covariance is an empirical one over a few networks.

    The deep ensemble and MC dropout say so (``sampled_covariance = True``);
    an :class:`~surrogate_al.surrogates.AutoSurrogate` answers for the kind
    it serves; the GP's covariance is its kernel's, exact.
    """
    return bool(getattr(surrogate, "sampled_covariance", False))


class BatchObjective:
    """``F_λ`` and its marginal gains (see module docstring).

    Args:
        surrogate: a fitted surrogate.
        lam: λ in ``[0, 1]``: weight of information gain (λ) vs coverage (1 − λ).
        reference: ``r x d`` reference points (coverage ground set and scales).
        output_scale: ``m`` output standard deviations of the training data.
        X_known: ``n x d`` points already evaluated (labelled and failed); they
            provide the coverage floor ``c_r``.
        X_pending: ``k x d`` points whose runs are in flight: members of the
            set from the start.
        X_labelled: ``n x d`` points whose outputs the surrogate was trained on:
            where its noise estimate is trusted (caps ``σ²``); None to use the
            reference set.
        output_weights: ``m`` non-negative weights of the outputs (default 1).
        lengthscale: coverage lengthscale ``ℓ``; None for the expected
            nearest-neighbour spacing of ``n + k + 1`` points.
        noise_floor: ``ε`` relative to the largest epistemic variance on the
            reference set (per output): the resolution below which remaining
            uncertainty is not worth a run (used when ``noise`` is None).
        feasibility: optional map ``b x d -> b`` of success probabilities
            that multiplies the gains.
        information: ``"variance"`` (integrated variance reduction, default) or
            ``"logdet"`` (mutual information); see the module docstring.
        variance_reference_size: leading reference points over which the
            variance reduction is averaged.
        information_weight: optional map ``b x d -> b`` of weights (>= 1,
            no gradient) that multiply each candidate's information gain,
            e.g. :class:`~surrogate_al.acquisition.surprise.SurpriseWeights`;
            fixed during a proposal, so the gains still only shrink as the
            batch grows (the lazy greedy's bounds hold).
        reference_variances: optional ``(epistemic, aleatoric)``, each
            ``r x m`` standardised variances at ``reference``, when already
            computed (e.g. by :class:`~surrogate_al.acquisition.scores.UncertaintyScore`).
        noise: the :class:`~surrogate_al.acquisition.scores.NoiseLevels` to use
            (e.g. ``UncertaintyScore.noise_``); None to build them here.
        localisation: lengthscale ``L`` (unit-cube units) of the taper
            ``exp(-|z - x|² / (2 L²))`` that multiplies every epistemic
            cross-covariance (see "Localisation" in the module docstring);
            None (default) for the surrogate's covariance as it is.

    Attributes:
        noise_: the :class:`~surrogate_al.acquisition.scores.NoiseLevels` in use.
        eps_: ``m`` noise floors ``ε`` (standardised units).
        scale_ig_, scale_cov_: ``s_I`` (of the information term) and ``s_cov``.
        lengthscale_: the coverage lengthscale.
        localisation_: the taper lengthscale ``L``, or None.
    """

    def __init__(
        self,
        surrogate: Surrogate,
        lam: float,
        reference: Tensor,
        output_scale: Tensor,
        *,
        X_known: Tensor | None = None,
        X_pending: Tensor | None = None,
        X_labelled: Tensor | None = None,
        output_weights: Tensor | None = None,
        lengthscale: float | None = None,
        noise_floor: float = 1e-3,
        feasibility: Callable[[Tensor], Tensor] | None = None,
        reference_variances: tuple[Tensor, Tensor] | None = None,
        noise: NoiseLevels | None = None,
        information: str = "variance",
        variance_reference_size: int = _VARIANCE_REFERENCE,
        information_weight: Callable[[Tensor], Tensor] | None = None,
        localisation: float | None = None,
    ) -> None:
        check_information(information)
        if localisation is not None and (isinstance(localisation, bool) or not isinstance(localisation, (int, float))
                                         or not math.isfinite(localisation) or localisation <= 0):
            raise ConfigError(
                f"localisation = {localisation!r}; expected a positive taper lengthscale in unit-cube units, "
                "or None for no taper"
            )
        self.localisation_ = None if localisation is None else float(localisation)
        self.information_weight = information_weight
        if isinstance(variance_reference_size, bool) or not isinstance(variance_reference_size, int) \
                or variance_reference_size < 1:
            raise ConfigError(f"variance_reference_size = {variance_reference_size!r}; expected a positive integer")
        if reference.ndim != 2 or reference.shape[0] == 0:
            raise ShapeError(f"reference has shape {tuple(reference.shape)}; expected r x d with r >= 1")
        d = reference.shape[1]
        self.surrogate = surrogate
        self.lam = check_lambda(lam)
        self.reference = reference
        self.information = information
        # The reference set's prefix (Sobol points in synthesis mode, a random subsample in pool
        # mode: both spread over the region of interest) is where variance reduction is averaged.
        self.variance_reference_ = reference[:variance_reference_size]
        self.d = d
        self.output_scale = torch.as_tensor(output_scale).to(reference).reshape(-1)
        m = self.output_scale.shape[0]
        self.output_weights = (
            reference.new_ones(m) if output_weights is None else torch.as_tensor(output_weights).to(reference)
        )
        # (given points, their Cholesky factor, whitened covariances with R): see _conditioning.
        self._conditioning_cache: tuple[Tensor, Tensor, Tensor] | None = None
        self.X_known = as_points(X_known, d, "X_known", reference)
        self.X_pending = as_points(X_pending, d, "X_pending", reference)
        labelled = as_points(X_labelled, d, "X_labelled", reference)
        self.feasibility = feasibility
        n_context = self.X_known.shape[0] + self.X_pending.shape[0]
        self.lengthscale_ = float(lengthscale) if lengthscale is not None else expected_nn_spacing(n_context + 1, d)

        with torch.no_grad():
            if reference_variances is None:
                epi, alea = standardised_variances(surrogate, reference, self.output_scale)
            else:
                epi, alea = (v.to(reference) for v in reference_variances)
            if noise is None:
                trusted = standardised_variances(surrogate, labelled, self.output_scale)[1] if labelled.shape[0] else None
                noise = NoiseLevels(epi, alea, trusted, noise_floor)
            self.noise_ = noise
            self.eps_ = noise.eps_
            if information == "logdet":
                best = self._ig(epi, noise.clip(alea)).max()
            else:
                best = self._variance_reduction(self.variance_reference_, reference[:0]).max()
            self.scale_ig_ = float(best.clamp_min(1e-12))
            # Coverage floor from evaluated points, then the best single-point coverage gain.
            self.floor_ = self._coverage_of(self.X_known)
            self.scale_cov_ = float(self._coverage_gain(reference, self.floor_).max().clamp_min(1e-12))
            self.pending_cover_ = torch.maximum(self.floor_, self._coverage_of(self.X_pending))

    # -- pieces -----------------------------------------------------------------------
    def noise(self, X: Tensor) -> Tensor:
        """``b x m`` noise variances ``σ²(x)`` (standardised units) used by the information gain."""
        if self.noise_.homoscedastic_:
            return self.noise_.typical_.to(X).expand(X.shape[0], -1)
        _, alea = standardised_variances(self.surrogate, X, self.output_scale)
        return self.noise_.clip(alea)

    def _ig(self, cond_var: Tensor, noise: Tensor) -> Tensor:
        """``b`` information gains ``½ Σ_j w_j log(1 + var_j / σ_j²)`` (unscaled)."""
        return 0.5 * (self.output_weights.to(cond_var) * torch.log1p(cond_var.clamp_min(0.0) / noise)).sum(-1)

    def _similarity(self, A: Tensor, B: Tensor) -> Tensor:
        """``a x b`` similarities ``exp(-|a - b|^2 / (2 ℓ^2))``."""
        return gaussian_similarity(A, B, self.lengthscale_)

    def _cross_covariance(self, Z: Tensor, X: Tensor) -> tuple[Tensor, Tensor]:
        """The surrogate's epistemic cross-covariances, tapered when :attr:`localisation_` is set.

        Returns:
            ``m x z x b`` covariances and ``m x b`` variances at ``X``
            (:func:`~surrogate_al.surrogates.base.epistemic_cross_covariance`),
            the covariances multiplied by ``exp(-|z - x|² / (2 L²))``.
        """
        cross, var = epistemic_cross_covariance(self.surrogate, Z, X)
        if self.localisation_ is None:
            return cross, var
        return cross * gaussian_similarity(Z.to(cross), X.to(cross), self.localisation_).unsqueeze(0), var

    def _rows(self) -> int:
        # Blocks keep the rows x r similarity matrix near 1M entries (8 MB, cache-friendly).
        return max(1, 2**20 // self.reference.shape[0])

    def _coverage_of(self, X: Tensor) -> Tensor:
        """``r`` coverage of each reference point by the points ``X`` (0 when ``X`` is empty)."""
        best = self.reference.new_zeros(self.reference.shape[0])
        for start in range(0, X.shape[0], self._rows()):
            block = X[start : start + self._rows()].to(self.reference)
            best = torch.maximum(best, self._similarity(self.reference, block).max(dim=1).values)
        return best

    def _coverage_gain(self, X: Tensor, current: Tensor) -> Tensor:
        """``b`` coverage gains of the points ``X`` given ``r`` current coverage (unscaled)."""
        ref, cur = self.reference.to(X), current.to(X)
        out = []
        for s in range(0, X.shape[0], self._rows()):
            sim = self._similarity(X[s : s + self._rows()], ref)
            out.append(torch.relu(sim - cur).mean(-1) if sim.requires_grad else sim.sub_(cur).clamp_min_(0.0).mean(-1))
        return torch.cat(out) if out else X.new_zeros(0)

    def _conditioning(self, X_given: Tensor) -> tuple[Tensor, Tensor]:
        """Cholesky factor of ``K_GG + ε I`` and ``L⁻¹ K_{G,R}``, for the ``t`` given points ``G``.

        Neither depends on the candidates, so one synthesis step (hundreds of
        objective calls with the same ``G``) computes them once: the last
        ``G`` is kept and compared by value.

        Args:
            X_given: ``t x d`` conditioning points (``t >= 1``), observed with
                the floor noise ``ε``.

        Returns:
            ``(L, A_r)``: ``m x t x t`` lower factor and ``m x t x r``
            whitened covariances with the variance reference points.
        """
        cached = self._conditioning_cache
        if cached is not None and cached[0].shape == X_given.shape and torch.equal(cached[0], X_given):
            return cached[1], cached[2]
        t = X_given.shape[0]
        with torch.no_grad():
            C, _ = self._cross_covariance(X_given, torch.cat([X_given, self.variance_reference_.to(X_given)]))
            eye = torch.eye(t, dtype=C.dtype, device=C.device)
            L = torch.linalg.cholesky(C[:, :, :t] + (self.eps_.to(C).view(-1, 1, 1) + _JITTER) * eye)
            A_r = torch.linalg.solve_triangular(L, C[:, :, t:], upper=False)
        self._conditioning_cache = (X_given.detach().clone(), L, A_r)
        return L, A_r

    def conditional_variance(self, X: Tensor, X_given: Tensor) -> tuple[Tensor, Tensor]:
        """Epistemic variances at ``X`` once ``X_given`` is observed, and the noise at ``X``.

        The points in ``X_given`` are conditioned on with the floor noise
        ``ε`` (their runs will pin the function down there; see the module
        docstring on replication).

        Args:
            X: ``b x d`` points.
            X_given: ``t x d`` conditioning points (``t`` may be 0).

        Returns:
            ``(var, noise)``: ``b x m`` conditional variances ``var(x | X_given)``
            and ``b x m`` noise variances ``σ²(x)``, standardised units,
            differentiable in ``X``.
        """
        t = X_given.shape[0]
        if t == 0:
            epi, alea = standardised_variances(self.surrogate, X, self.output_scale)
            return epi, self.noise_.clip(alea)
        noise = self.noise(X)  # no surrogate call when homoscedastic
        X_given = X_given.to(X)
        L, _ = self._conditioning(X_given)
        cross, var = self._cross_covariance(X_given, X)
        A = torch.linalg.solve_triangular(L.to(X), cross.to(X), upper=False)
        cond = var.to(X) - (A**2).sum(-2)
        return cond.clamp_min(0.0).transpose(0, 1), noise

    def _variance_reduction(self, X: Tensor, X_given: Tensor) -> Tensor:
        """``b`` integrated variance reductions of observing each point of ``X`` after ``X_given``.

        ``Σ_j w_j mean_r cov_j(r, x | G)² / (var_j(x | G) + σ_j²(x))`` over the
        variance reference points ``r`` (unscaled): how much one observation at
        ``x`` (noise ``σ²(x)``) lowers the average epistemic variance, given
        the surrogate's data and the points ``G = X_given`` observed with the
        floor noise ``ε``. Per call, one cross-covariance of ``G ∪ R`` with
        ``X`` (:func:`~surrogate_al.surrogates.base.epistemic_cross_covariance`);
        what depends on ``G`` alone is computed once per ``G``
        (:meth:`_conditioning`).

        Args:
            X: ``b x d`` candidate points.
            X_given: ``t x d`` conditioning points (``t`` may be 0).

        Returns:
            ``b`` reductions, differentiable in ``X``.
        """
        t = X_given.shape[0]
        noise = self.noise(X).transpose(0, 1)  # m x b
        X_given = X_given.to(X)
        C, var_x = self._cross_covariance(torch.cat([X_given, self.variance_reference_.to(X)]), X)
        C, var_x = C.to(X), var_x.to(X)
        cross = C[:, t:]  # m x r x b
        if t:
            L, A_r = self._conditioning(X_given)
            A_x = torch.linalg.solve_triangular(L.to(X), C[:, :t], upper=False)  # m x t x b
            cross = cross - A_r.to(X).transpose(-1, -2) @ A_x
            var_x = var_x - (A_x**2).sum(-2)
        reduction = (cross**2).mean(1) / (var_x.clamp_min(0.0) + noise)
        return (self.output_weights.to(X).view(-1, 1) * reduction).sum(0)

    def _information(self, X: Tensor, X_given: Tensor) -> Tensor:
        """``b`` unscaled information gains of ``X`` given ``X_given`` (the configured term)."""
        if self.information == "logdet":
            gain = self._ig(*self.conditional_variance(X, X_given))
        else:
            gain = self._variance_reduction(X, X_given)
        return gain if self.information_weight is None else gain * self.information_weight(X)

    # -- the objective ---------------------------------------------------------------
    def gain(self, X: Tensor, X_selected: Tensor | None = None, *, with_feasibility: bool = True) -> Tensor:
        """Marginal gains ``F_λ(P ∪ S ∪ {x}) − F_λ(P ∪ S)`` at ``b x d`` points.

        Args:
            X: ``b x d`` points.
            X_selected: ``s x d`` points already chosen for this batch.
            with_feasibility: multiply by ``p(success | x)`` when a feasibility
                model was given.

        Returns:
            ``b`` gains, differentiable in ``X``.
        """
        S = as_points(X_selected, self.d, "X_selected", X)
        given = torch.cat([self.X_pending.to(X), S])
        total = X.new_zeros(X.shape[0])
        if self.lam > 0:
            total = total + self.lam * self._information(X, given) / self.scale_ig_
        if self.lam < 1:
            current = torch.maximum(self.pending_cover_, self._coverage_of(S)) if S.shape[0] else self.pending_cover_
            total = total + (1.0 - self.lam) * self._coverage_gain(X, current) / self.scale_cov_
        if with_feasibility and self.feasibility is not None:
            total = total * self.feasibility(X)
        return total

    def upper_bound(self, X: Tensor) -> Tensor:
        """Gains given neither pending nor selected points: upper bounds on every later gain.

        Cheap in bulk (the log-det term needs only the diagonal ``predict``; the
        variance term one joint covariance of the block with the variance reference set).
        """
        total = X.new_zeros(X.shape[0])
        if self.lam > 0:
            total = total + self.lam * self._information(X, X[:0]) / self.scale_ig_
        if self.lam < 1:
            total = total + (1.0 - self.lam) * self._coverage_gain(X, self.floor_) / self.scale_cov_
        if self.feasibility is not None:
            total = total * self.feasibility(X)
        return total

    def value(self, X_set: Tensor) -> float:
        """Gain of adding the ``s x d`` points ``S`` one by one, in order, to the pending set.

        With ``σ² = ε`` everywhere (a deterministic simulator) this is
        ``F_λ(P ∪ S) − F_λ(P)`` and does not depend on the order; otherwise it
        is the greedy-style sum of marginal gains along the given order.
        Unweighted by feasibility.
        """
        S = as_points(X_set, self.d, "X_set", self.reference)
        total = 0.0
        with torch.no_grad():
            for i in range(S.shape[0]):
                total += float(self.gain(S[i : i + 1], S[:i], with_feasibility=False)[0])
        return total
