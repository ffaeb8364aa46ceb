"""Acquisition policies: a surrogate plus an acquisition rule that proposes the next inputs.

A policy sees the unit cube only: :class:`~surrogate_al.data.Dataset` in,
:class:`Proposal` out. It is pure (no Dask, no files); the campaign owns the
loop, decides when to refit, stores every proposal and checkpoints the
policy's state next to the surrogate's.

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

Randomness: every random draw of a proposal (reference set, raw samples,
pool subsample) is seeded from ``(seed, counter, stream)`` through
:class:`numpy.random.SeedSequence`, where ``counter`` is the number of
proposals made so far. A policy with the same seed, the same state and the
same (fitted) surrogate and data therefore proposes the same points, and a
campaign resumed from a checkpoint continues exactly as an uninterrupted one
would (in sync mode, where the data at each proposal are deterministic).

Policies by name (:func:`make_policy`):

* ``"default"`` (:class:`Policy`): hybrid uncertainty/diversity with a λ
  schedule, greedy submodular batches (or top-q), synthesis or pool mode,
  feasibility-weighted.
* ``"random"``: uniform points.
* ``"sobol"``: one scrambled Sobol sequence continued across calls.
* ``"uncertainty"``: pure epistemic top-q (synthesised U maxima; no diversity,
  no batch conditioning, pending ignored).
* ``"qnipv"``: BoTorch's ``qNegIntegratedPosteriorVariance`` through
  :class:`~surrogate_al.surrogates.botorch_adapter.SurrogateModel`, optimised
  jointly for ``q`` points by ``optimize_acqf`` with the pending points as
  ``X_pending``.
"""

from __future__ import annotations

import inspect
import logging
import math
import warnings
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from botorch.acquisition.active_learning import qNegIntegratedPosteriorVariance
from botorch.models.model import Model
from botorch.optim import optimize_acqf
from botorch.utils.transforms import average_over_ensemble_models, concatenate_pending_points, t_batch_mode_transform
from numpy.typing import ArrayLike, NDArray
from scipy.stats import qmc
from torch import Tensor

from surrogate_al.acquisition.batch import (
    BatchObjective,
    check_information,
    greedy_pool,
    greedy_synthesis,
    has_sampled_covariance,
)
from surrogate_al.acquisition.feasibility import FeasibilityModel
from surrogate_al.acquisition.schedules import (
    DEFAULT_SCHEDULE,
    Schedule,
    check_progress,
    make_schedule,
)
from surrogate_al.acquisition.scores import (
    DiversityScore,
    HybridScore,
    UncertaintyScore,
    expected_nn_spacing,
    min_distances,
)
from surrogate_al.acquisition.surprise import check_surprise_cap, surprise_weights
from surrogate_al.acquisition.synthesis import sobol_points, synthesise, top_distinct
from surrogate_al.data import Dataset
from surrogate_al.policies.base import PolicyLike, Proposal
from surrogate_al.errors import ConfigError, NotFittedError, ShapeError
from surrogate_al.surrogates import make_surrogate
from surrogate_al.surrogates.base import Surrogate
from surrogate_al.surrogates.botorch_adapter import SurrogateModel

__all__ = [
    "DETERMINISTIC_LOCALISATION",
    "POLICIES",
    "IndependentOutputsQNIPV",
    "Policy",
    "PolicyLike",
    "Proposal",
    "QNIPVPolicy",
    "RandomPolicy",
    "SobolPolicy",
    "UncertaintyPolicy",
    "make_policy",
]

logger = logging.getLogger(__name__)

_DTYPE = torch.float64
#: Taper lengthscale (multiple of sqrt(d / 6)) of a policy for a deterministic simulator:
#: 0.5 measured 0.93 of the untapered error at the benchmark's largest budgets.
DETERMINISTIC_LOCALISATION = 0.5
#: Candidates closer than this to an evaluated or pending point count as that point (pool mode).
_SAME_POINT = 1e-9


# ----------------------------------------------------------------------------------------
# shared helpers
def _check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ConfigError(f"{name} = {value!r}; expected an integer >= {low}")
    return int(value)


def _check_request(
    data: Dataset, n: int, pending: ArrayLike | None, progress: float
) -> tuple[int, NDArray[np.float64], float]:
    """Validate the arguments of ``propose``; returns ``(n, pending k x d, progress)``."""
    if not isinstance(data, Dataset):
        raise ConfigError(f"data must be a surrogate_al.data.Dataset, got {type(data).__name__}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ConfigError(f"n = {n!r}; expected a positive integer number of points to propose")
    d = data.d
    P = np.zeros((0, d)) if pending is None else np.asarray(pending, dtype=float)
    if P.size == 0:
        P = np.zeros((0, d))
    if P.ndim != 2 or P.shape[1] != d:
        raise ShapeError(f"pending has shape {P.shape}; expected k x {d} unit-cube points (or None)")
    if not np.isfinite(P).all() or (P < 0).any() or (P > 1).any():
        raise ShapeError("pending points must be finite and inside the unit cube [0, 1]^d (unit coordinates)")
    return int(n), P, check_progress(progress)


def _round_seed(seed: int, counter: int, stream: int) -> int:
    """A 32-bit seed for one random stream of one proposal round."""
    return int(np.random.SeedSequence([seed, counter, stream]).generate_state(1)[0])


def _unit_bounds(d: int) -> Tensor:
    return torch.stack([torch.zeros(d, dtype=_DTYPE), torch.ones(d, dtype=_DTYPE)])


def _diversity_sequence(
    X: Tensor, context: Tensor, spacing: float
) -> NDArray[np.float64]:
    """``D`` of each row of ``X`` given the context and the rows before it (exact min distance)."""
    out = []
    score = DiversityScore(context, spacing, smooth=False)
    for i in range(X.shape[0]):
        with torch.no_grad():
            out.append(float(score(X[i : i + 1])[0]))
        score = score.with_points(X[i : i + 1])
    return np.asarray(out)


def _check_seed(seed: Any) -> int:
    return _check_int("seed", seed, 0)


class _CountingPolicy:
    """Seed, proposal counter and the state dict around them."""

    kind = "base"
    needs_model = False

    def __init__(self, seed: int = 0) -> None:
        self.seed = _check_seed(seed)
        self.counter_ = 0

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        return None

    def state_dict(self) -> dict[str, Any]:
        """``{"kind", "seed", "counter", ...}``: the policy's own state as plain data and tensors."""
        return {"kind": self.kind, "seed": self.seed, "counter": self.counter_, **self._extra_state()}

    def load_state_dict(self, state: dict[str, Any]) -> _CountingPolicy:
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
        self.counter_ = _check_int("state['counter']", int(state["counter"]), 0)
        self._load_extra_state(state)
        return self


# ----------------------------------------------------------------------------------------
# model-free baselines
class RandomPolicy(_CountingPolicy):
    """Uniform random points; a draw depends only on ``(seed, counter)``.

    Args:
        seed: non-negative integer seed.
    """

    kind = "random"
    needs_model = False

    def fit(self, data: Dataset) -> RandomPolicy:
        """Nothing to learn; returns ``self``."""
        return self

    def propose(
        self, data: Dataset, n: int, pending: NDArray[np.float64] | None = None, progress: float = 0.0
    ) -> Proposal:
        """``n x d`` uniform points (``pending`` and ``progress`` are validated, not used)."""
        n, P, _ = _check_request(data, n, pending, progress)
        X = np.random.default_rng(_round_seed(self.seed, self.counter_, 0)).random((n, data.d))
        self.counter_ += 1
        return _baseline_proposal(X, data, P, "random")


class SobolPolicy(_CountingPolicy):
    """One scrambled Sobol sequence, continued across calls (never repeats a point).

    Each call rebuilds the sequence from ``seed`` and fast-forwards it past
    the points already drawn, so the state is one integer.

    Args:
        seed: seed of the scrambling.
        skip: points at the start of the sequence that are already used; the
            policy starts after them. A campaign whose initial design is a
            scrambled Sobol design with the same seed drew exactly its first
            ``design size`` points: without the skip the policy's first
            proposals would repeat the design point for point.
    """

    kind = "sobol"
    needs_model = False

    def __init__(self, seed: int = 0, skip: int = 0) -> None:
        super().__init__(seed)
        self.skip = _check_int("skip", skip, 0)
        self.drawn_ = 0

    def fit(self, data: Dataset) -> SobolPolicy:
        """Nothing to learn; returns ``self``."""
        return self

    def _extra_state(self) -> dict[str, Any]:
        return {"drawn": self.drawn_}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self.drawn_ = _check_int("state['drawn']", int(state.get("drawn", 0)), 0)

    def propose(
        self, data: Dataset, n: int, pending: NDArray[np.float64] | None = None, progress: float = 0.0
    ) -> Proposal:
        """The next ``n`` points of the sequence."""
        n, P, _ = _check_request(data, n, pending, progress)
        sampler = qmc.Sobol(data.d, scramble=True, rng=np.random.default_rng(self.seed))
        if self.skip + self.drawn_:  # scipy's fast_forward(0) underflows an unsigned counter
            sampler.fast_forward(self.skip + self.drawn_)
        with warnings.catch_warnings():
            # Balance needs n = 2^k per call; the continued sequence stays low-discrepancy overall.
            warnings.simplefilter("ignore", UserWarning)
            X = sampler.random(n)
        self.drawn_ += n
        self.counter_ += 1
        return _baseline_proposal(X, data, P, "sobol")


def _context(data: Dataset, P: NDArray[np.float64]) -> Tensor:
    """Every point already in the box: labelled, failed and pending (``k x d``)."""
    return torch.as_tensor(np.vstack([data.X, data.X_failed, P]), dtype=_DTYPE)


def _baseline_proposal(
    X: NDArray[np.float64], data: Dataset, P: NDArray[np.float64], method: str, U: NDArray[np.float64] | None = None,
    J: NDArray[np.float64] | None = None, lam: float = math.nan,
) -> Proposal:
    """A proposal with the diversity of ``X`` reported (and U / J where the baseline has them)."""
    Xt = torch.as_tensor(X, dtype=_DTYPE)
    context = _context(data, P)
    spacing = expected_nn_spacing(context.shape[0] + X.shape[0], data.d)
    nan = np.full(X.shape[0], math.nan)
    D = _diversity_sequence(Xt, context, spacing)
    return Proposal(X=X, U=nan if U is None else U, D=D, J=nan if J is None else J, lam=lam, method=method)


# ----------------------------------------------------------------------------------------
# model-based policies
_SURROGATE_METHODS = ("fit", "predict", "joint_epistemic_covariance", "state_dict", "load_state_dict")


def _implements_surrogate(obj: Any) -> bool:
    """Whether ``obj`` has the :class:`Surrogate` methods.

    Looked up on the type: ``isinstance(obj, Surrogate)`` would evaluate the
    ``num_outputs`` property, which an unfitted surrogate may refuse.
    """
    return all(callable(getattr(type(obj), name, None)) for name in _SURROGATE_METHODS)


class _ModelPolicy(_CountingPolicy):
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
        if surrogate is not None and not _implements_surrogate(surrogate):
            raise ConfigError(
                f"surrogate = {surrogate!r} does not implement the Surrogate protocol (fit, predict, "
                "joint_epistemic_covariance, state_dict, load_state_dict, num_outputs); build one with "
                "surrogate_al.surrogates.make_surrogate(kind, ...)"
            )
        self.surrogate = surrogate
        self.X_fit_: Tensor | None = None
        self.output_scale_: Tensor | None = None

    # -- fitting ----------------------------------------------------------------------
    def _prepare_surrogate(self, d: int) -> Surrogate:
        if self.surrogate is None:
            self.surrogate = make_surrogate("gp", bounds=_unit_bounds(d), seed=self.seed)
            logger.info("no surrogate given: using an exact GP on [0, 1]^%d", d)
        elif hasattr(self.surrogate, "bounds") and self.surrogate.bounds is None:
            # The policy works on the unit cube; a data-derived box would rescale with every refit.
            self.surrogate.bounds = _unit_bounds(d)  # type: ignore[attr-defined]
        return self.surrogate

    def _fit_extra(self, data: Dataset) -> None:
        return None

    def fit(self, data: Dataset) -> _ModelPolicy:
        """Fit the surrogate on ``data.X``, ``data.Y``, ``data.Yvar`` (unit cube); returns ``self``."""
        if not isinstance(data, Dataset):
            raise ConfigError(f"data must be a surrogate_al.data.Dataset, got {type(data).__name__}")
        surrogate = self._prepare_surrogate(data.d)
        X = torch.as_tensor(data.X, dtype=_DTYPE)
        Y = torch.as_tensor(data.Y, dtype=_DTYPE)
        Yvar = None if data.Yvar is None else torch.as_tensor(data.Yvar, dtype=_DTYPE)
        surrogate.fit(X, Y, Yvar)
        self.X_fit_ = X.clone()
        self.output_scale_ = torch.as_tensor(_output_scale(data.Y), dtype=_DTYPE)
        self._fit_extra(data)
        return self

    def _surrogate_is_fitted(self, d: int) -> bool:
        if self.surrogate is None:
            return False
        try:
            with torch.no_grad():
                self.surrogate.predict(torch.full((1, d), 0.5, dtype=_DTYPE))
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
        return torch.as_tensor(_output_scale(data.Y), dtype=_DTYPE)

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
        self.X_fit_ = None if X_fit is None else torch.as_tensor(X_fit, dtype=_DTYPE)
        self.output_scale_ = None if scale is None else torch.as_tensor(scale, dtype=_DTYPE)


def _output_scale(Y: NDArray[np.float64]) -> NDArray[np.float64]:
    """Per-output standard deviation (``ddof = 1``, as the surrogates standardise), 1 where constant."""
    if Y.shape[0] < 2:
        return np.ones(Y.shape[1])
    std = Y.std(axis=0, ddof=1)
    return np.where(std > 1e-12, std, 1.0)


class Policy(_ModelPolicy):
    """The default policy: λ-scheduled uncertainty + diversity, greedy submodular batches.

    Each :meth:`propose` round:

    1. λ = ``schedule(progress)``.
    2. A reference set (``reference_size`` Sobol points, or a subsample of
       the candidates in pool mode) fixes the scales of U, of the information
       gain and of the coverage (see :mod:`surrogate_al.acquisition.scores`
       and :mod:`surrogate_al.acquisition.batch`).
    3. ``batch="greedy"``: ``n`` points by greedy maximisation of ``F_λ`` given
       the pending points (synthesised per step, or lazy greedy over the
       pool). Besides the pending runs, the information term also conditions
       on labelled points the surrogate has not been fitted on yet and on
       failed points (a failed region yields no data, so its uncertainty is
       not reducible by more queries); coverage counts labelled, failed and
       pending points as covering. ``batch="topq"``: the ``n`` best distinct
       maxima of ``J_λ`` (no conditioning between them; pending points enter
       only through ``D``).
    4. With failures in the data and ``feasibility=True``, gains and scores
       are multiplied by ``p(success | x)`` from a
       :class:`~surrogate_al.acquisition.feasibility.FeasibilityModel` fitted
       on successes vs failures.

    Args:
        surrogate: the surrogate (see :class:`_ModelPolicy`); None for a GP.
        mode: ``"synthesis"`` (optimise over the box) or ``"pool"``.
        candidates: ``N x d`` unit-cube candidates (pool mode only).
        schedule: λ schedule (a :class:`Schedule` or a kind name for
            :func:`make_schedule` with its default range); default
            constant λ = 0.9 (see :mod:`surrogate_al.acquisition.schedules`).
        batch: ``"greedy"`` or ``"topq"``.
        raw_samples: Sobol points screened per synthesis.
        restarts: L-BFGS-B starts per synthesis.
        feasibility: learn ``p(success | x)`` from failed runs and weight by it.
        seed: non-negative integer seed of every random draw.
        reference_size: size of the reference set.
        maxiter: L-BFGS-B iteration cap per synthesis.
        output_weights: optional ``m`` non-negative weights of the outputs.
        information: the batch objective's information term: ``"variance"``
            (integrated variance reduction over the reference set, default)
            or ``"logdet"`` (mutual information of the batch); see
            :mod:`surrogate_al.acquisition.batch`.
        surprise_cap: largest factor by which a candidate's information
            gain is raised when the run nearest it is one the model cannot
            predict from the others (leave-one-out; see
            :mod:`surrogate_al.acquisition.surprise`); 1 (default) turns it
            off. Greedy batches only.
        deterministic: whether the simulator gives the same outputs for the
            same inputs (a PDE solver, most codes). It sets the default of
            ``localisation``: with a deterministic simulator the ensemble's
            noise head measures misfit, not noise, and nothing in the box is
            a noisy region a run could be drawn into.
        localisation: when the surrogate serving the round has a sampled
            covariance (deep ensemble, MC dropout), taper its epistemic
            cross-covariances in the batch objective with the lengthscale
            ``localisation · sqrt(d / 6)`` (a multiple of the root-mean-square
            distance between two uniform points of the unit cube; see
            "Localisation" in :mod:`surrogate_al.acquisition.batch`); 0 turns
            it off. None (default): :data:`DETERMINISTIC_LOCALISATION` (0.5)
            for a deterministic simulator, else 0. GP-served rounds are never
            tapered, and top-q batches have no batch objective to taper. With
            0.5 the error at the largest budget of the label-efficiency
            benchmark was 0.93 of the untapered policy's (median of 20 paired
            cells on seven problems, range 0.69-1.25; docs/benchmarks.md,
            "Ninth session"). It is off unless the simulator is declared
            deterministic because with a heteroscedastic simulator the
            ensemble's noise head underestimates the noise near a face of
            the box (its mean fits the few runs there), which lets the
            tapered objective send a run into the noisy region
            (``tests/unit/test_policy.py::test_uncertainty_is_not_drawn_to_noise_when_data_cover_the_box``).

    Attributes:
        feasibility_: the fitted :class:`FeasibilityModel`, or None.
        counter_: proposals made so far.
        last_objective_: the :class:`BatchObjective` of the last greedy round.
    """

    kind = "default"

    def __init__(
        self,
        surrogate: Surrogate | None = None,
        *,
        mode: str = "synthesis",
        candidates: ArrayLike | None = None,
        schedule: Schedule | str = DEFAULT_SCHEDULE,
        batch: str = "greedy",
        raw_samples: int = 1024,
        restarts: int = 8,
        feasibility: bool = True,
        seed: int = 0,
        reference_size: int = 1024,
        maxiter: int = 200,
        output_weights: ArrayLike | None = None,
        information: str = "variance",
        surprise_cap: float = 1.0,
        deterministic: bool = False,
        localisation: float | None = None,
    ) -> None:
        super().__init__(surrogate, seed=seed)
        self.information = check_information(information)
        self.surprise_cap = check_surprise_cap(surprise_cap)
        if mode not in ("synthesis", "pool"):
            raise ConfigError(f"mode = {mode!r}; expected 'synthesis' (optimise over the box) or 'pool'")
        if batch not in ("greedy", "topq"):
            raise ConfigError(f"batch = {batch!r}; expected 'greedy' (submodular batch) or 'topq'")
        if batch == "topq" and self.surprise_cap > 1:
            raise ConfigError(
                f"surprise_cap = {surprise_cap!r} weights the greedy batch objective, but batch = 'topq'; "
                "use batch = 'greedy' or surprise_cap = 1"
            )
        if not isinstance(deterministic, bool):
            raise ConfigError(
                f"deterministic = {deterministic!r}; expected True (same inputs, same outputs) or False"
            )
        self.deterministic = deterministic
        if localisation is None:
            localisation = DETERMINISTIC_LOCALISATION if deterministic else 0.0
        if (isinstance(localisation, bool) or not isinstance(localisation, (int, float))
                or not math.isfinite(localisation) or localisation < 0):
            raise ConfigError(
                f"localisation = {localisation!r}; expected a non-negative multiple of sqrt(d / 6) "
                "(0.5 is typical; 0 turns the taper off; None: 0.5 for a deterministic simulator, else 0)"
            )
        self.localisation = float(localisation)
        if mode == "pool":
            if candidates is None:
                raise ConfigError("mode = 'pool' needs candidates: an N x d array of unit-cube points")
            cand = np.asarray(candidates, dtype=float)
            if cand.ndim != 2 or cand.shape[0] == 0:
                raise ShapeError(f"candidates have shape {cand.shape}; expected a non-empty N x d array")
            if not np.isfinite(cand).all() or (cand < 0).any() or (cand > 1).any():
                raise ConfigError(
                    "candidates must be finite unit-cube points in [0, 1]^d; map them with InputSpace.to_unit first"
                )
            self.candidates: NDArray[np.float64] | None = cand
        else:
            if candidates is not None:
                raise ConfigError("candidates were given but mode = 'synthesis'; pass mode='pool' to use them")
            self.candidates = None
        if isinstance(schedule, str):
            schedule = make_schedule(schedule)
        if not isinstance(schedule, Schedule):
            raise ConfigError(
                f"schedule = {schedule!r}; expected a Schedule (see surrogate_al.acquisition.make_schedule)"
            )
        self.mode = mode
        self.schedule = schedule
        self.batch = batch
        self.raw_samples = _check_int("raw_samples", raw_samples, 1)
        self.restarts = _check_int("restarts", restarts, 1)
        if self.restarts > self.raw_samples:
            raise ConfigError(
                f"restarts = {restarts} exceeds raw_samples = {raw_samples}; the starts are the best raw samples"
            )
        if not isinstance(feasibility, bool):
            raise ConfigError(f"feasibility = {feasibility!r}; expected True or False")
        self.feasibility = feasibility
        self.reference_size = _check_int("reference_size", reference_size, 2)
        self.maxiter = _check_int("maxiter", maxiter, 1)
        self.output_weights = None if output_weights is None else torch.as_tensor(output_weights, dtype=_DTYPE)
        self.feasibility_: FeasibilityModel | None = None
        self.last_objective_: BatchObjective | None = None

    # -- fit ----------------------------------------------------------------------------
    def _fit_extra(self, data: Dataset) -> None:
        self.feasibility_ = None
        if self.feasibility and data.X_failed.shape[0] > 0:
            self.feasibility_ = FeasibilityModel().fit(data.X, data.X_failed)

    def _extra_state(self) -> dict[str, Any]:
        state = super()._extra_state()
        state["feasibility"] = None if self.feasibility_ is None else self.feasibility_.state_dict()
        return state

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        super()._load_extra_state(state)
        feas = state.get("feasibility")
        self.feasibility_ = None if feas is None else FeasibilityModel().load_state_dict(feas)

    # -- propose ------------------------------------------------------------------------
    def _check_candidates(self, d: int) -> Tensor:
        assert self.candidates is not None
        if self.candidates.shape[1] != d:
            raise ShapeError(f"candidates have {self.candidates.shape[1]} columns but the data have d = {d}")
        return torch.as_tensor(self.candidates, dtype=_DTYPE)

    def _reference(self, d: int, seed: int) -> Tensor:
        if self.mode == "synthesis":
            return sobol_points(self.reference_size, d, seed, dtype=_DTYPE)
        cand = self._check_candidates(d)
        if cand.shape[0] <= self.reference_size:
            return cand
        idx = np.random.default_rng(seed).choice(cand.shape[0], self.reference_size, replace=False)
        return cand[np.sort(idx)]

    def _available(self, context: Tensor) -> Tensor:
        """Pool rows not coinciding with an evaluated or pending point."""
        cand = torch.as_tensor(self.candidates, dtype=_DTYPE)
        if context.shape[0] == 0:
            return torch.ones(cand.shape[0], dtype=torch.bool)
        return min_distances(cand, context) > _SAME_POINT

    def propose(
        self, data: Dataset, n: int, pending: NDArray[np.float64] | None = None, progress: float = 0.0
    ) -> Proposal:
        """``n`` new unit-cube points (see the class docstring).

        Args:
            data: labelled and failed points (unit cube).
            n: number of points.
            pending: ``k x d`` points whose runs are in flight, or None.
            progress: fraction of the budget spent, in ``[0, 1]`` (sets λ).

        Returns:
            :class:`Proposal` with ``n`` points.

        Raises:
            ConfigError / ShapeError: invalid arguments; a pool with fewer
                usable candidates than ``n``.
        """
        n, P, progress = _check_request(data, n, pending, progress)
        surrogate = self._ensure_fitted(data)
        if self.feasibility and data.X_failed.shape[0] > 0 and self.feasibility_ is None:
            self.feasibility_ = FeasibilityModel().fit(data.X, data.X_failed)
        feas = self.feasibility_ if (self.feasibility and data.X_failed.shape[0] > 0) else None
        lam = self.schedule(progress)
        d = data.d
        seeds = [_round_seed(self.seed, self.counter_, s) for s in range(3)]
        reference = self._reference(d, seeds[0])
        scale = self._scale(data)
        context = _context(data, P)
        spacing = expected_nn_spacing(context.shape[0] + n, d)
        labelled = torch.as_tensor(data.X, dtype=_DTYPE)
        uncertainty = UncertaintyScore(surrogate, reference, scale, self.output_weights, X_labelled=labelled)
        diversity = DiversityScore(context, spacing)

        if self.batch == "greedy":
            known = torch.as_tensor(np.vstack([data.X, data.X_failed]), dtype=_DTYPE)
            conditioning = torch.as_tensor(np.vstack([P, self._unseen(data), data.X_failed]), dtype=_DTYPE)
            objective = BatchObjective(
                surrogate, lam, reference, scale, X_known=known, X_pending=conditioning,
                X_labelled=labelled, output_weights=self.output_weights, lengthscale=spacing,
                feasibility=None if feas is None else feas.predict_proba,
                reference_variances=(uncertainty.reference_epistemic_, uncertainty.reference_aleatoric_),
                noise=uncertainty.noise_, information=self.information,
                information_weight=surprise_weights(
                    surrogate, labelled, torch.as_tensor(data.Y, dtype=_DTYPE), self.surprise_cap, seed=self.seed
                ),
                localisation=self._taper_lengthscale(surrogate, d),
            )
            self.last_objective_ = objective
            if self.mode == "synthesis":
                X = greedy_synthesis(objective, n, raw_samples=self.raw_samples, restarts=self.restarts,
                                     seed=seeds[2], maxiter=self.maxiter).X
            else:
                cand = self._check_candidates(d)
                X = greedy_pool(objective, cand, n, available=self._available(context)).X
        else:
            score = HybridScore(uncertainty, diversity, lam, None if feas is None else feas.predict_proba)
            if self.mode == "synthesis":
                result = synthesise(score, d, raw_samples=self.raw_samples, restarts=max(self.restarts, n),
                                    seed=seeds[1], maxiter=self.maxiter)
                X, _ = top_distinct(result, n)
            else:
                X = self._topq_pool(score, context, n, d)
        self.counter_ += 1
        with torch.no_grad():
            U = uncertainty(X).numpy()
        D = _diversity_sequence(X, context, spacing)
        J = lam * U + (1.0 - lam) * D
        if feas is not None:
            with torch.no_grad():
                J = J * feas.predict_proba(X).numpy()
        method = f"{self.batch}-{self.mode}"
        logger.debug("%s: %d points at λ = %.3f (progress %.3f)", method, n, lam, progress)
        return Proposal(X=X.detach().numpy().clip(0.0, 1.0), U=U, D=D, J=J, lam=lam, method=method)

    def _taper_lengthscale(self, surrogate: Surrogate, d: int) -> float | None:
        """The batch objective's taper lengthscale this round (None: no taper; see ``localisation``)."""
        if self.localisation == 0 or not has_sampled_covariance(surrogate):
            return None
        return self.localisation * math.sqrt(d / 6.0)

    def _topq_pool(self, score: HybridScore, context: Tensor, n: int, d: int) -> Tensor:
        cand = self._check_candidates(d)
        available = self._available(context)
        if int(available.sum()) < n:
            raise ConfigError(
                f"the candidate pool has {int(available.sum())} usable points but n = {n} were requested; "
                "supply more candidates or ask for fewer points"
            )
        with torch.no_grad():
            # Blocks of 512: a GP's prediction cost grows with the square of the block.
            values = torch.cat([score(cand[i : i + 512]) for i in range(0, cand.shape[0], 512)])
        values = torch.where(available, values, torch.full_like(values, -math.inf))
        return cand[torch.topk(values, n).indices]


class UncertaintyPolicy(_ModelPolicy):
    """Baseline: pure epistemic top-q (no diversity, no batch conditioning, pending ignored).

    Synthesises maxima of ``U`` from ``max(restarts, q)`` starts and returns
    the ``q`` best distinct optima (topped up with the best raw samples if
    fewer hills exist). This is what a batch looks like without the essay's
    diversity term: typically several points on the same hill.

    Args:
        surrogate: the surrogate (None for a GP).
        raw_samples: Sobol points screened.
        restarts: L-BFGS-B starts (at least ``q`` are used).
        seed: non-negative integer seed.
        reference_size: Sobol points that normalise ``U``.
        maxiter: L-BFGS-B iteration cap.
    """

    kind = "uncertainty"

    def __init__(
        self,
        surrogate: Surrogate | None = None,
        *,
        raw_samples: int = 1024,
        restarts: int = 8,
        seed: int = 0,
        reference_size: int = 1024,
        maxiter: int = 200,
    ) -> None:
        super().__init__(surrogate, seed=seed)
        self.raw_samples = _check_int("raw_samples", raw_samples, 1)
        self.restarts = _check_int("restarts", restarts, 1)
        self.reference_size = _check_int("reference_size", reference_size, 2)
        self.maxiter = _check_int("maxiter", maxiter, 1)

    def propose(
        self, data: Dataset, n: int, pending: NDArray[np.float64] | None = None, progress: float = 0.0
    ) -> Proposal:
        """The ``n`` best distinct maxima of ``U`` (``pending`` validated but ignored by design)."""
        n, P, _ = _check_request(data, n, pending, progress)
        surrogate = self._ensure_fitted(data)
        seed0, seed1 = (_round_seed(self.seed, self.counter_, s) for s in (0, 1))
        reference = sobol_points(self.reference_size, data.d, seed0, dtype=_DTYPE)
        labelled = torch.as_tensor(data.X, dtype=_DTYPE)
        uncertainty = UncertaintyScore(surrogate, reference, self._scale(data), X_labelled=labelled)
        restarts = max(self.restarts, n)

        def ratio(X: Tensor) -> Tensor:
            # Optimise the uncapped ratio u / u_ref: the soft cap would flatten the tops of the hills.
            return uncertainty.raw(X) / uncertainty.scale_

        result = synthesise(ratio, data.d, raw_samples=max(self.raw_samples, restarts), restarts=restarts,
                            seed=seed1, maxiter=self.maxiter)
        X, _ = top_distinct(result, n)
        self.counter_ += 1
        with torch.no_grad():
            U_np = uncertainty(X).numpy()
        return _baseline_proposal(X.detach().numpy(), data, P, "uncertainty", U=U_np, J=U_np, lam=1.0)


class IndependentOutputsQNIPV(qNegIntegratedPosteriorVariance):
    """``qNegIntegratedPosteriorVariance`` of a weighted sum of independent outputs.

    BoTorch's class, for a model with several outputs and a
    ``ScalarizedPosteriorTransform``, evaluates the fantasy posterior at each
    integration point separately (``N`` t-batches of one point each, a
    documented stop-gap in BoTorch): measured here for 3 outputs, 312 points
    in d = 6 and 256 integration points, one q = 8 proposal took 426 s and
    11.6 GB. When the outputs are independent given the data (every
    surrogate of this package: batched GPs, ensembles and MC dropout all
    model the outputs separately), the variance of ``sum_j w_j f_j`` is
    ``sum_j w_j^2 var_j``, so one joint evaluation at all ``N`` points gives
    the same value at the single-output cost.

    Args:
        model: a BoTorch model with ``m`` independent outputs.
        mc_points: ``N x d`` integration points.
        weights: ``m`` output weights ``w``.
        X_pending: ``k x d`` points whose runs are in flight, or None.
    """

    def __init__(self, model: Model, mc_points: Tensor, weights: Tensor, X_pending: Tensor | None = None) -> None:
        super().__init__(model, mc_points=mc_points, X_pending=X_pending)
        self.register_buffer("weights", weights.to(mc_points))

    @concatenate_pending_points
    @t_batch_mode_transform()
    @average_over_ensemble_models
    def forward(self, X: Tensor) -> Tensor:
        """Negative mean over the integration points of ``sum_j w_j^2 var_j`` after fantasising ``X``.

        Args:
            X: ``batch x q x d`` candidate batches.

        Returns:
            ``batch`` values.
        """
        fantasy_model = self.model.fantasize(X=X, sampler=self.sampler)
        bdims = tuple(1 for _ in X.shape[:-2])
        posterior = fantasy_model.posterior(self.mc_points.view(*bdims, -1, X.size(-1)))
        variance = (posterior.variance * self.weights.pow(2)).sum(dim=-1)  # 1 x batch x N
        return variance.mean(dim=-1).mul(-1.0).squeeze(0)


class QNIPVPolicy(_ModelPolicy):
    """Baseline: BoTorch's ``qNegIntegratedPosteriorVariance``, ``q`` points jointly.

    The surrogate is wrapped as a BoTorch ``Model``
    (:class:`~surrogate_al.surrogates.botorch_adapter.SurrogateModel`); the
    integrated variance uses ``mc_points`` Sobol points and, for several
    outputs, the sum of the standardised outputs (weights ``1 / s_j``); the
    pending points enter as ``X_pending``; ``optimize_acqf`` optimises the
    ``q x d`` batch from ``restarts`` starts chosen among ``raw_samples``.

    Args:
        surrogate: the surrogate (None for a GP).
        raw_samples: raw ``q``-batches screened by ``optimize_acqf``.
        restarts: L-BFGS-B starts.
        mc_points: Sobol points of the variance integral.
        seed: non-negative integer seed.
        maxiter: L-BFGS-B iteration cap.
    """

    kind = "qnipv"

    def __init__(
        self,
        surrogate: Surrogate | None = None,
        *,
        raw_samples: int = 512,
        restarts: int = 8,
        mc_points: int = 512,
        seed: int = 0,
        maxiter: int = 200,
    ) -> None:
        super().__init__(surrogate, seed=seed)
        self.raw_samples = _check_int("raw_samples", raw_samples, 1)
        self.restarts = _check_int("restarts", restarts, 1)
        self.mc_points = _check_int("mc_points", mc_points, 1)
        self.maxiter = _check_int("maxiter", maxiter, 1)

    def propose(
        self, data: Dataset, n: int, pending: NDArray[np.float64] | None = None, progress: float = 0.0
    ) -> Proposal:
        """``n`` points maximising the joint reduction of integrated posterior variance."""
        n, P, _ = _check_request(data, n, pending, progress)
        surrogate = self._ensure_fitted(data)
        d = data.d
        seed0, seed1, seed2 = (_round_seed(self.seed, self.counter_, s) for s in (0, 1, 2))
        model = SurrogateModel(surrogate)
        mc = sobol_points(self.mc_points, d, seed0, dtype=_DTYPE)
        scale = self._scale(data)
        X_pending = torch.tensor(P, dtype=_DTYPE) if P.shape[0] else None  # a copy: P may be read-only
        acq: qNegIntegratedPosteriorVariance
        if data.m > 1:
            acq = IndependentOutputsQNIPV(model, mc_points=mc, weights=1.0 / scale, X_pending=X_pending)
        else:
            acq = qNegIntegratedPosteriorVariance(model, mc_points=mc, X_pending=X_pending)
        with warnings.catch_warnings(), torch.random.fork_rng():
            # optimize_acqf warns when L-BFGS-B stops at maxiter; the best point found is still used.
            warnings.simplefilter("ignore", RuntimeWarning)
            # Its seed fixes only the raw samples; the choice of starts among them and the fantasy
            # sampler draw from torch's global generator: seeded here, so a round is reproducible.
            torch.manual_seed(seed2)
            X, _ = optimize_acqf(
                acq, bounds=_unit_bounds(d), q=n, num_restarts=self.restarts, raw_samples=self.raw_samples,
                # Raw batches screened 32 at a time: all at once held 256 fantasy models in memory (6 GB
                # for 3 outputs at n = 312); the values are the same.
                options={"maxiter": self.maxiter, "seed": seed1, "init_batch_limit": 32},
            )
        self.counter_ += 1
        X = X.detach().reshape(n, d).clamp(0.0, 1.0)
        reference = sobol_points(1024, d, seed0, dtype=_DTYPE)
        with torch.no_grad():
            U = UncertaintyScore(surrogate, reference, scale, X_labelled=torch.as_tensor(data.X, dtype=_DTYPE))(X).numpy()
        return _baseline_proposal(X.numpy(), data, P, "qnipv", U=U)


# ----------------------------------------------------------------------------------------
# by name
POLICIES: tuple[str, ...] = ("default", "random", "sobol", "uncertainty", "qnipv")

_CLASSES: dict[str, type[_CountingPolicy]] = {
    "default": Policy,
    "random": RandomPolicy,
    "sobol": SobolPolicy,
    "uncertainty": UncertaintyPolicy,
    "qnipv": QNIPVPolicy,
}


def make_policy(name: str, surrogate: Surrogate | None = None, **options: Any) -> PolicyLike:
    """Build a policy by name.

    Args:
        name: one of :data:`POLICIES`.
        surrogate: the surrogate for model-based policies (None: an exact GP
            on the unit cube, built at the first fit); ignored by
            ``"random"`` and ``"sobol"``.
        **options: keyword arguments of the policy's constructor (e.g.
            ``seed``, ``mode``, ``schedule``, ``batch``, ``raw_samples``).

    Returns:
        The policy (a :class:`PolicyLike`).

    Raises:
        ConfigError: unknown name (the message lists the known ones) or an
            option the policy does not take (the message lists those it takes).
    """
    if name not in _CLASSES:
        raise ConfigError(f"acquisition policy {name!r} is unknown; expected one of {list(POLICIES)}")
    cls = _CLASSES[name]
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "surrogate")]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(f"policy {name!r} does not take options {unknown}; it accepts {accepted}")
    if not issubclass(cls, _ModelPolicy):
        if surrogate is not None:
            logger.info("policy %r uses no model; the surrogate passed is ignored", name)
        return cls(**options)  # type: ignore[return-value]
    return cls(surrogate, **options)  # type: ignore[return-value,call-arg]
