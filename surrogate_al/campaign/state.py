"""What a campaign hands out and keeps track of: trials, the ledger of settled runs, progress.

The :class:`Ledger` mirrors in memory what the store says about runs; a
resumed campaign rebuilds it from the store's final run records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from surrogate_al.data import Dataset

__all__ = ["CampaignOutcome", "Ledger", "MIN_POINTS_FOR_MODEL", "Progress", "ProposalPlan", "Trial"]

#: Successful runs a model needs before it can propose anything.
MIN_POINTS_FOR_MODEL = 2


@dataclass(frozen=True)
class Trial:
    """One attempt at one proposal, handed out by :meth:`~surrogate_al.campaign.Campaign.ask`.

    Attributes:
        proposal_id: the proposal's id in the store.
        attempt: 1-based attempt number.
        inputs: named inputs in the scientist's units.
        unit: ``d`` point in the unit cube.
    """

    proposal_id: int
    attempt: int
    inputs: dict[str, float]
    unit: NDArray[np.float64]


@dataclass(frozen=True)
class Progress:
    """A snapshot for progress bars, logs and the stop rules.

    Attributes:
        settled: proposals settled (ok or failed for good).
        budget: settled runs the campaign aims for.
        in_flight: attempts handed out and not told yet.
        failed: proposals settled with a failed status.
        estimated_error: the last estimated (or validation) NRMSE; NaN before a model.
        lam: λ of the last proposal round (NaN before one).
        elapsed: seconds since the campaign (or its latest run) started.
    """

    settled: int
    budget: int
    in_flight: int
    failed: int
    estimated_error: float
    lam: float
    elapsed: float


@dataclass(frozen=True)
class CampaignOutcome:
    """How :meth:`~surrogate_al.campaign.Campaign.run` ended.

    Attributes:
        status: ``completed`` (budget or target reached) or ``stopped``.
        reason: why, in words.
        settled: proposals settled (ok or failed for good).
        ok: successful runs.
        store: path of the campaign file.
    """

    status: str
    reason: str
    settled: int
    ok: int
    store: Path


@dataclass(frozen=True)
class ProposalPlan:
    """A snapshot for one proposal round: taken under the campaign's lock, used outside it.

    Attributes:
        want: points to propose.
        data: the successful (and failed) runs so far.
        pending: ``k x d`` unit-cube points in flight or queued.
        progress: fraction of the budget counted so far, in ``[0, 1]``.
        refit: whether the round refits the surrogate first.
    """

    want: int
    data: Dataset
    pending: NDArray[np.float64]
    progress: float
    refit: bool


@dataclass
class Ledger:
    """In-memory mirror of what the store says about runs (rebuilt on resume).

    Attributes:
        X_ok: unit-cube inputs (``d`` each) of the successful runs, in settling order.
        Y_ok: their outputs (``m`` each).
        X_failed: unit-cube inputs of the runs settled with a failed status.
        settled: ids of the settled proposals.
        attempts: per proposal id, the highest attempt handed out or recorded.
        n_failed_settled: proposals settled with a failed status.
    """

    X_ok: list[NDArray[np.float64]] = field(default_factory=list)
    Y_ok: list[NDArray[np.float64]] = field(default_factory=list)
    X_failed: list[NDArray[np.float64]] = field(default_factory=list)
    settled: set[int] = field(default_factory=set)
    attempts: dict[int, int] = field(default_factory=dict)
    n_failed_settled: int = 0

    def settle(self, proposal_id: int, status: str, unit: NDArray[np.float64], outputs: NDArray[np.float64] | None) -> None:
        """Record a proposal's final run: a success joins the training data, a failure the failed points."""
        self.settled.add(proposal_id)
        if status == "ok":
            self.X_ok.append(np.asarray(unit, dtype=float))
            self.Y_ok.append(np.asarray(outputs, dtype=float))
        else:
            self.X_failed.append(np.asarray(unit, dtype=float))
            self.n_failed_settled += 1

    def counted(self, count_failed: bool) -> int:
        """Settled runs that count toward the budget (failures too when ``count_failed``)."""
        return len(self.settled) if count_failed else len(self.X_ok)

    def dataset(self, d: int, m: int) -> Dataset:
        """The ``n x d`` successful inputs, their ``n x m`` outputs and the ``k x d`` failed inputs."""
        X = np.array(self.X_ok).reshape(-1, d)
        Y = np.array(self.Y_ok).reshape(-1, m)
        X_failed = np.array(self.X_failed).reshape(-1, d)
        return Dataset(X=X, Y=Y, X_failed=X_failed)
