"""The default policy: λ-scheduled uncertainty and diversity, greedy submodular batches."""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from torch import Tensor

from surrogate_al.acquisition.batch_objective import BatchObjective, check_information, has_sampled_covariance
from surrogate_al.acquisition.feasibility import FeasibilityModel
from surrogate_al.acquisition.greedy_batch import greedy_pool, greedy_synthesis
from surrogate_al.acquisition.schedules import DEFAULT_SCHEDULE, Schedule, make_schedule
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
from surrogate_al.errors import ConfigError, ShapeError
from surrogate_al.policies.base import Proposal
from surrogate_al.policies.proposals import DTYPE, check_int, check_request, context_points, diversity_sequence
from surrogate_al.policies.state import ModelPolicy
from surrogate_al.surrogates.base import Surrogate

__all__ = ["DETERMINISTIC_LOCALISATION", "Policy"]

logger = logging.getLogger(__name__)

#: Taper lengthscale (multiple of sqrt(d / 6)) of a policy for a deterministic simulator
#: (the evidence for 0.5 is in docs/decisions.md).
DETERMINISTIC_LOCALISATION = 0.5
#: Candidates closer than this to an evaluated or pending point count as that point (pool mode).
_SAME_POINT = 1e-9


class Policy(ModelPolicy):
    """The default policy: λ-scheduled uncertainty + diversity, greedy submodular batches.

    Each :meth:`propose` round:

    1. λ = ``schedule(progress)``.
    2. A reference set (``reference_size`` Sobol points, or a subsample of
       the candidates in pool mode) fixes the scales of U, of the information
       gain and of the coverage (see :mod:`surrogate_al.acquisition.scores`
       and :mod:`surrogate_al.acquisition.batch_objective`).
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
        surrogate: the surrogate (see :class:`ModelPolicy`); None for a GP.
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
            :mod:`surrogate_al.acquisition.batch_objective`.
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
            "Localisation" in :mod:`surrogate_al.acquisition.batch_objective`);
            0 turns it off. None (default): :data:`DETERMINISTIC_LOCALISATION`
            (0.5) for a deterministic simulator, else 0. GP-served rounds are
            never tapered, and top-q batches have no batch objective to taper.
            It is off unless the simulator is declared deterministic because
            with a heteroscedastic simulator the
            ensemble's noise head underestimates the noise near a face of
            the box (its mean fits the few runs there), which lets the
            tapered objective send a run into the noisy region
            (``tests/unit/policies/test_policies_hybrid.py::test_uncertainty_is_not_drawn_to_noise_when_data_cover_the_box``).

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
        self.raw_samples = check_int("raw_samples", raw_samples, 1)
        self.restarts = check_int("restarts", restarts, 1)
        if self.restarts > self.raw_samples:
            raise ConfigError(
                f"restarts = {restarts} exceeds raw_samples = {raw_samples}; the starts are the best raw samples"
            )
        if not isinstance(feasibility, bool):
            raise ConfigError(f"feasibility = {feasibility!r}; expected True or False")
        self.feasibility = feasibility
        self.reference_size = check_int("reference_size", reference_size, 2)
        self.maxiter = check_int("maxiter", maxiter, 1)
        self.output_weights = None if output_weights is None else torch.as_tensor(output_weights, dtype=DTYPE)
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
        return torch.as_tensor(self.candidates, dtype=DTYPE)

    def _reference(self, d: int, seed: int) -> Tensor:
        if self.mode == "synthesis":
            return sobol_points(self.reference_size, d, seed, dtype=DTYPE)
        cand = self._check_candidates(d)
        if cand.shape[0] <= self.reference_size:
            return cand
        idx = np.random.default_rng(seed).choice(cand.shape[0], self.reference_size, replace=False)
        return cand[np.sort(idx)]

    def _available(self, context: Tensor) -> Tensor:
        """Pool rows not coinciding with an evaluated or pending point."""
        cand = torch.as_tensor(self.candidates, dtype=DTYPE)
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
        n, P, progress = check_request(data, n, pending, progress)
        surrogate = self._ensure_fitted(data)
        if self.feasibility and data.X_failed.shape[0] > 0 and self.feasibility_ is None:
            self.feasibility_ = FeasibilityModel().fit(data.X, data.X_failed)
        feas = self.feasibility_ if (self.feasibility and data.X_failed.shape[0] > 0) else None
        lam = self.schedule(progress)
        d = data.d
        seeds = self._round_seeds(3)
        reference = self._reference(d, seeds[0])
        scale = self._scale(data)
        context = context_points(data, P)
        spacing = expected_nn_spacing(context.shape[0] + n, d)
        labelled = torch.as_tensor(data.X, dtype=DTYPE)
        uncertainty = UncertaintyScore(surrogate, reference, scale, self.output_weights, X_labelled=labelled)
        diversity = DiversityScore(context, spacing)

        if self.batch == "greedy":
            known = torch.as_tensor(np.vstack([data.X, data.X_failed]), dtype=DTYPE)
            conditioning = torch.as_tensor(np.vstack([P, self._unseen(data), data.X_failed]), dtype=DTYPE)
            objective = BatchObjective(
                surrogate, lam, reference, scale, X_known=known, X_pending=conditioning,
                X_labelled=labelled, output_weights=self.output_weights, lengthscale=spacing,
                feasibility=None if feas is None else feas.predict_proba,
                reference_variances=(uncertainty.reference_epistemic_, uncertainty.reference_aleatoric_),
                noise=uncertainty.noise_, information=self.information,
                information_weight=surprise_weights(
                    surrogate, labelled, torch.as_tensor(data.Y, dtype=DTYPE), self.surprise_cap, seed=self.seed
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
        D = diversity_sequence(X, context, spacing)
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

