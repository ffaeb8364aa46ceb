"""Pointwise acquisition scores on the unit cube: uncertainty U, diversity D, hybrid J.

All scores take ``b x d`` points in ``[0, 1]^d`` (torch, any batch size ``b``)
and return ``b`` values in ``[0, 1]``, differentiable in the points, so that
:mod:`surrogate_al.acquisition.synthesis` can maximise them by gradient.

Uncertainty ``U(x)``
    Only the *epistemic* variance counts: observation noise (aleatoric
    variance) cannot be reduced by querying, so it must not attract queries.
    Per output ``j`` the surrogate's epistemic variance is divided by the
    variance of the training outputs ``s_j^2`` (standardised units, so a
    pressure in Pa and a temperature in K weigh equally), weighted by optional
    ``w_j`` (default 1) and summed::

        u(x) = sum_j w_j * (epistemic_var_j(x) / s_j^2) * (σ̄_j² / σ_j²(x))

    The last factor matters only for a *heteroscedastic* surrogate (a deep
    ensemble with a noise head): ``σ_j²(x)`` is its noise level at ``x`` and
    ``σ̄_j²`` the typical (median) level at the labelled points
    (:class:`NoiseLevels`). Where runs are noisier than usual, the epistemic
    variance is discounted by that ratio, because (law of total variance)
    noisy data pin the mean down less, so an ensemble's members disagree more
    there even where data are dense; without the factor the noise would leak
    into ``U`` through that disagreement and draw queries to the noisy region,
    where each run teaches least. For a homoscedastic surrogate (every GP) the
    factor is exactly 1 and ``u`` is the plain standardised epistemic variance.

    To make λ mean the same thing on every problem, ``u`` is divided by
    ``u_ref = max_{r in R} u(r)``, its maximum over a *reference set* ``R``
    (scrambled Sobol points, 1024 by default, drawn once per proposal round),
    and softly capped at 1::

        U(x) = softmin_β(u(x) / u_ref, 1) = -log(exp(-β u/u_ref) + exp(-β)) / β,  β = 10

    clamped below at 0. So ``U ≈ u / u_ref`` up to ~0.8, ``U(argmax_R u) =
    1 − log(2)/β ≈ 0.93``, and ``U → 1`` beyond; a synthesised point more
    uncertain than every reference point still has a (small, non-zero)
    gradient, and ``U`` never leaves ``[0, 1]``.

Diversity ``D(x)``
    The distance ``δ(x)`` from ``x`` to the nearest *context* point (labelled,
    failed and pending points, plus those already chosen in this batch) in
    units of the expected nearest-neighbour spacing of ``N`` points spread
    over the unit cube (Poisson process of intensity ``N``)::

        r_N = Γ(1 + 1/d) · (N · V_d)^(-1/d),   V_d = π^(d/2) / Γ(d/2 + 1)

    with ``N`` the number of points the box will hold after this batch
    (labelled + pending + batch size). ``D(x) = tanh(δ(x) / r_N)``: linear near
    a context point (so it pushes away from it with a finite gradient) and
    saturating at about ``2 r_N`` (beyond twice the typical spacing, farther is
    not better). The smooth version replaces the min by a log-sum-exp soft-min
    with temperature ``τ = temperature · r_N`` (default 0.05), which
    underestimates the true nearest distance by at most ``τ log k`` for ``k``
    context points; distances are ``sqrt(|x − c|^2 + ε^2)`` so the gradient
    stays finite at a context point. With no context at all, ``D ≡ 1``.

Hybrid ``J_λ(x) = λ U(x) + (1 − λ) D(x)``
    optionally multiplied by a feasibility probability ``p(success | x)``
    (:mod:`surrogate_al.acquisition.feasibility`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from surrogate_al.acquisition.schedules import check_lambda
from surrogate_al.errors import ConfigError, ShapeError
from surrogate_al.surrogates.base import Surrogate

__all__ = [
    "DiversityScore",
    "HybridScore",
    "NoiseLevels",
    "UncertaintyScore",
    "expected_nn_spacing",
    "hybrid",
    "min_distances",
    "standardised_variances",
    "unit_ball_volume",
]

#: Sharpness of the soft cap at 1 in ``U``.
U_SHARPNESS = 10.0
#: Smallest noise floor ε (standardised units): keeps a model certain everywhere well defined.
_TINY_VAR = 1e-10


def unit_ball_volume(d: int) -> float:
    """Volume ``V_d = π^(d/2) / Γ(d/2 + 1)`` of the unit ball in ``d`` dimensions."""
    return math.exp(0.5 * d * math.log(math.pi) - math.lgamma(0.5 * d + 1.0))


def expected_nn_spacing(N: int, d: int) -> float:
    """Expected nearest-neighbour distance of a Poisson process of intensity ``N`` on ``[0, 1]^d``.

    ``r_N = Γ(1 + 1/d) · (N · V_d)^(-1/d)``; boundary effects (points near a
    face have fewer neighbours) make the true spacing of ``N`` points slightly
    larger, which is on the safe side for a "too close" threshold.

    Args:
        N: number of points (>= 1).
        d: dimension (>= 1).
    """
    if N < 1 or d < 1:
        raise ConfigError(f"expected_nn_spacing needs N >= 1 and d >= 1, got N = {N!r}, d = {d!r}")
    return math.gamma(1.0 + 1.0 / d) * (N * unit_ball_volume(d)) ** (-1.0 / d)


def _check_points(X: Tensor, d: int | None, what: str = "X") -> Tensor:
    if X.ndim != 2 or (d is not None and X.shape[1] != d):
        want = "b x d" if d is None else f"b x {d}"
        raise ShapeError(f"{what} has shape {tuple(X.shape)}; expected a 2-D tensor {want} of unit-cube points")
    return X


def standardised_variances(
    surrogate: Surrogate, X: Tensor, output_scale: Tensor
) -> tuple[Tensor, Tensor]:
    """Epistemic and aleatoric variances at ``b x d`` points in standardised units.

    Args:
        surrogate: a fitted surrogate.
        X: ``b x d`` points.
        output_scale: ``m`` standard deviations of the training outputs.

    Returns:
        ``(epistemic, aleatoric)``, each ``b x m``, on ``X``'s device and dtype,
        differentiable in ``X``.
    """
    pred = surrogate.predict(X)
    scale2 = output_scale.to(X) ** 2
    return pred.epistemic_var.to(X) / scale2, pred.aleatoric_var.to(X) / scale2


class NoiseLevels:
    """Observation-noise variances ``σ²(x)`` per output, as acquisition uses them.

    ``σ_j²(x)`` is the surrogate's aleatoric variance at ``x`` in standardised
    units, clipped to ``[ε_j, cap_j]``:

    * ``ε_j = floor · max_{r∈R} v_j(r)``, a fraction of the largest epistemic
      variance on the reference set: the resolution below which remaining
      uncertainty is not worth a run (it scales with what is left to learn);
    * ``cap_j``: the largest aleatoric variance at the labelled points; a
      noise head extrapolates freely away from the data and must not claim
      more noise there than it has seen.

    ``typical_`` is the median at the labelled points (clipped the same way).
    A surrogate reporting the same noise everywhere (the GP) is
    *homoscedastic*: then ``σ²(x) = typical_`` without further predictions.

    Args:
        reference_epistemic: ``r x m`` standardised epistemic variances on the reference set.
        reference_aleatoric: ``r x m`` standardised aleatoric variances there.
        labelled_aleatoric: ``n x m`` standardised aleatoric variances at the
            labelled points, or None to trust the reference set.
        floor: the relative floor (default 1e-3).
    """

    def __init__(
        self,
        reference_epistemic: Tensor,
        reference_aleatoric: Tensor,
        labelled_aleatoric: Tensor | None = None,
        floor: float = 1e-3,
    ) -> None:
        if not (isinstance(floor, (int, float)) and 0 < floor < 1):
            raise ConfigError(f"noise floor = {floor!r}; expected a fraction in (0, 1) of the largest epistemic variance")
        trusted = reference_aleatoric if labelled_aleatoric is None or labelled_aleatoric.shape[0] == 0 else (
            labelled_aleatoric.to(reference_aleatoric)
        )
        both = torch.cat([reference_aleatoric, trusted])
        spread = both.max(dim=0).values - both.min(dim=0).values
        self.homoscedastic_ = bool((spread <= 1e-6 * both.abs().max(dim=0).values.clamp_min(1e-300)).all())
        self.floor = float(floor)
        self.eps_ = (self.floor * reference_epistemic.max(dim=0).values).clamp_min(_TINY_VAR)
        self.cap_ = torch.maximum(trusted.max(dim=0).values, self.eps_)
        self.typical_ = torch.minimum(torch.maximum(trusted.median(dim=0).values, self.eps_), self.cap_)

    def clip(self, aleatoric: Tensor) -> Tensor:
        """``b x m`` noise variances ``σ²(x)`` from ``b x m`` standardised aleatoric variances."""
        if self.homoscedastic_:
            return self.typical_.to(aleatoric).expand_as(aleatoric)
        return torch.clamp(aleatoric, min=self.eps_.to(aleatoric), max=self.cap_.to(aleatoric))

    def relative_precision(self, aleatoric: Tensor) -> Tensor:
        """``b x m`` factors ``typical / σ²(x)``: 1 everywhere for a homoscedastic surrogate."""
        if self.homoscedastic_:
            return torch.ones_like(aleatoric)
        return self.typical_.to(aleatoric) / self.clip(aleatoric)


class UncertaintyScore:
    """Normalised epistemic uncertainty ``U(x)`` in ``[0, 1]`` (see module docstring).

    Args:
        surrogate: a fitted surrogate.
        reference: ``r x d`` reference points (Sobol) that fix ``u_ref``.
        output_scale: ``m`` output standard deviations (of the training ``Y``).
        output_weights: optional ``m`` non-negative weights (default all 1).
        X_labelled: ``n x d`` labelled points, where the surrogate's noise
            estimate is trusted (see :class:`NoiseLevels`); None to use the
            reference set.
        noise_floor: relative floor ``ε`` of :class:`NoiseLevels`.

    Attributes:
        scale_: ``u_ref``, the maximum raw uncertainty over the reference set.
        noise_: the :class:`NoiseLevels` (shared with the batch objective).
        reference_epistemic_: ``r x m`` standardised epistemic variances on the
            reference set (reused by the batch objective).
        reference_aleatoric_: ``r x m`` standardised aleatoric variances there.
    """

    def __init__(
        self,
        surrogate: Surrogate,
        reference: Tensor,
        output_scale: Tensor,
        output_weights: Tensor | None = None,
        *,
        X_labelled: Tensor | None = None,
        noise_floor: float = 1e-3,
    ) -> None:
        _check_points(reference, None, "reference")
        self.surrogate = surrogate
        self.output_scale = output_scale.to(reference)
        m = self.output_scale.shape[0]
        if output_weights is None:
            output_weights = torch.ones(m)
        weights = torch.as_tensor(output_weights).to(reference).reshape(-1)
        if weights.shape[0] != m or (weights < 0).any() or not torch.isfinite(weights).all() or weights.sum() <= 0:
            raise ConfigError(
                f"output_weights = {weights.tolist()}; expected {m} finite non-negative weights, not all zero "
                "(one per output)"
            )
        self.output_weights = weights
        with torch.no_grad():
            epi, alea = standardised_variances(surrogate, reference, self.output_scale)
            labelled = None
            if X_labelled is not None and X_labelled.shape[0] > 0:
                labelled = standardised_variances(surrogate, X_labelled.to(reference), self.output_scale)[1]
            self.noise_ = NoiseLevels(epi, alea, labelled, noise_floor)
            self.reference_epistemic_ = epi
            self.reference_aleatoric_ = alea
            # A model certain everywhere (u_ref ~ 0) still ranks points; keep the division finite.
            self.scale_ = float(torch.clamp(self._combine(epi, alea).max(), min=1e-300))

    def _combine(self, epistemic: Tensor, aleatoric: Tensor) -> Tensor:
        return (epistemic * self.noise_.relative_precision(aleatoric) * self.output_weights.to(epistemic)).sum(-1)

    def raw(self, X: Tensor) -> Tensor:
        """``b`` weighted sums of standardised epistemic variances (unnormalised)."""
        epi, alea = standardised_variances(self.surrogate, X, self.output_scale)
        return self._combine(epi, alea)

    def normalise(self, raw: Tensor) -> Tensor:
        """Map raw uncertainties to ``[0, 1]`` (divide by ``u_ref``, soft cap at 1)."""
        ratio = raw / self.scale_
        beta = U_SHARPNESS
        capped = -torch.logaddexp(-beta * ratio, torch.full_like(ratio, -beta)) / beta
        return capped.clamp(0.0, 1.0)

    def __call__(self, X: Tensor) -> Tensor:
        """``U`` at ``b x d`` points -> ``b`` values in ``[0, 1]``."""
        return self.normalise(self.raw(X))


def min_distances(X: Tensor, C: Tensor, *, temperature: float | None = None) -> Tensor:
    """Distance from each of ``b x d`` points to the nearest of ``k x d`` points.

    Args:
        X: ``b x d`` query points.
        C: ``k x d`` context points (``k >= 1``).
        temperature: None for the exact minimum; else the log-sum-exp soft-min
            temperature in distance units (smooth, ``<=`` the exact minimum).

    Returns:
        ``b`` distances, differentiable in ``X``.
    """
    if temperature is None and not (X.requires_grad and torch.is_grad_enabled()):
        # Bulk exact distances (pool screening, reporting): cdist in blocks, without its
        # matrix-product shortcut, so that coincident points are exactly 0 apart.
        rows = max(1, 2**22 // max(1, C.shape[0]))
        blocks = [
            torch.cdist(X[s : s + rows], C, compute_mode="donot_use_mm_for_euclid_dist").min(dim=-1).values
            for s in range(0, X.shape[0], rows)
        ]
        return torch.cat(blocks) if blocks else X.new_zeros(0)
    eps2 = 1e-18  # keeps d sqrt / d x finite at a context point
    # Blocks of rows keep the b x k x d difference tensor near 4M entries (32 MB).
    rows = max(1, 2**22 // max(1, C.shape[0] * X.shape[1]))
    out = []
    for start in range(0, X.shape[0], rows):
        diff = X[start : start + rows].unsqueeze(1) - C.unsqueeze(0)
        dist = torch.sqrt((diff**2).sum(-1) + eps2)
        if temperature is None:
            out.append(dist.min(dim=-1).values)
        else:
            out.append(-temperature * torch.logsumexp(-dist / temperature, dim=-1))
    return torch.cat(out).clamp_min(0.0) if out else X.new_zeros(0)


class DiversityScore:
    """Scaled distance to the nearest context point, ``D(x)`` in ``[0, 1]``.

    Args:
        context: ``k x d`` points already in (or on their way into) the data:
            labelled, failed, pending (``k`` may be 0).
        spacing: ``r_N``, the expected nearest-neighbour spacing (see
            :func:`expected_nn_spacing`).
        temperature: soft-min temperature as a fraction of ``spacing``.
        smooth: use the soft-min (for gradients); False for the exact min.
    """

    def __init__(self, context: Tensor, spacing: float, *, temperature: float = 0.05, smooth: bool = True) -> None:
        _check_points(context, None, "context")
        if not spacing > 0:
            raise ConfigError(f"diversity spacing = {spacing!r}; expected a positive distance")
        if not temperature > 0:
            raise ConfigError(f"diversity temperature = {temperature!r}; expected a positive fraction of the spacing")
        self.context = context
        self.spacing = float(spacing)
        self.temperature = float(temperature)
        self.smooth = bool(smooth)

    def with_points(self, X: Tensor) -> DiversityScore:
        """A diversity score whose context also holds the ``s x d`` points ``X``."""
        context = torch.cat([self.context, X.detach().to(self.context)], dim=0)
        return DiversityScore(context, self.spacing, temperature=self.temperature, smooth=self.smooth)

    def distance(self, X: Tensor) -> Tensor:
        """``b`` (soft-)min distances to the context (``inf`` with no context)."""
        if self.context.shape[0] == 0:
            return torch.full((X.shape[0],), math.inf, dtype=X.dtype, device=X.device)
        tau = self.temperature * self.spacing if self.smooth else None
        return min_distances(X, self.context.to(X), temperature=tau)

    def __call__(self, X: Tensor) -> Tensor:
        """``D`` at ``b x d`` points -> ``b`` values in ``[0, 1]``."""
        _check_points(X, self.context.shape[1], "X")
        if self.context.shape[0] == 0:
            return torch.ones(X.shape[0], dtype=X.dtype, device=X.device)
        return torch.tanh(self.distance(X) / self.spacing)


def hybrid(U: Tensor, D: Tensor, lam: float) -> Tensor:
    """``J_λ = λ U + (1 − λ) D`` (elementwise)."""
    lam = check_lambda(lam)
    return lam * U + (1.0 - lam) * D


class HybridScore:
    """``J_λ(x) = (λ U(x) + (1 − λ) D(x)) · p(x)``, differentiable in ``x``.

    Args:
        uncertainty: the ``U`` score.
        diversity: the ``D`` score.
        lam: λ in ``[0, 1]``.
        feasibility: optional map from ``b x d`` points to ``b`` success
            probabilities; multiplies the score.
    """

    def __init__(
        self,
        uncertainty: Callable[[Tensor], Tensor],
        diversity: Callable[[Tensor], Tensor],
        lam: float,
        feasibility: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        self.uncertainty = uncertainty
        self.diversity = diversity
        self.lam = check_lambda(lam)
        self.feasibility = feasibility

    def __call__(self, X: Tensor) -> Tensor:
        """``J`` at ``b x d`` points -> ``b`` values in ``[0, 1]``."""
        # λ = 1 or 0 skips the other term: cheaper, and U alone needs no context.
        U = self.uncertainty(X) if self.lam > 0 else X.new_zeros(X.shape[0])
        D = self.diversity(X) if self.lam < 1 else X.new_zeros(X.shape[0])
        J = self.lam * U + (1.0 - self.lam) * D
        if self.feasibility is not None:
            J = J * self.feasibility(X)
        return J
