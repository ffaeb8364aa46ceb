"""Stop rules: each says whether the campaign stops now and why, as a :class:`StopReason`.

The reason carries what the loop does with it, so no caller reads the text:
whether the campaign counts as ``completed`` (its goal was met) or
``stopped``, and whether the final fit on every run follows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from surrogate_al.campaign.state import Progress

if TYPE_CHECKING:
    from surrogate_al.config import CampaignSpec

__all__ = [
    "BudgetReached",
    "FailureBreaker",
    "StopReason",
    "StopRule",
    "TargetError",
    "WallTime",
    "stop_rules",
]


@dataclass(frozen=True)
class StopReason:
    """Why a campaign stops.

    Attributes:
        text: the reason in words (stored as the campaign's end and shown by ``status``).
        completes: the campaign reached its goal (status ``completed``, else ``stopped``).
        fits_final_model: the final fit on every run follows. Not after a
            wall-time stop: the limit is the scientist's, and a resume fits at
            its end.
    """

    text: str
    completes: bool
    fits_final_model: bool


class StopRule(Protocol):
    """A rule the loops consult before dispatching more runs."""

    def check(self, progress: Progress) -> StopReason | None:
        """The reason to stop now, or None to go on."""
        ...


@dataclass(frozen=True)
class WallTime:
    """Stop once ``seconds`` have passed since :meth:`~surrogate_al.campaign.Campaign.run` started."""

    seconds: float

    def check(self, progress: Progress) -> StopReason | None:
        if progress.elapsed < self.seconds:
            return None
        return StopReason(f"wall time {self.seconds:.0f} s reached", completes=False, fits_final_model=False)


@dataclass(frozen=True)
class TargetError:
    """Stop once the estimated (or validation) error is at most ``target``."""

    target: float

    def check(self, progress: Progress) -> StopReason | None:
        # NaN (no estimate yet) compares False: the rule waits for a model.
        if not progress.estimated_error <= self.target:
            return None
        return StopReason(
            f"estimated error {progress.estimated_error:.4g} <= target {self.target}",
            completes=True,
            fits_final_model=True,
        )


@dataclass(frozen=True)
class BudgetReached:
    """The campaign settled its budget and nothing is left to run: the ordinary end."""

    budget: int

    def reason(self) -> StopReason:
        return StopReason(f"budget of {self.budget} runs reached", completes=True, fits_final_model=True)


def stop_rules(spec: CampaignSpec) -> tuple[StopRule, ...]:
    """The workflow's stop rules, in the order they are consulted (wall time first)."""
    rules: list[StopRule] = []
    if spec.stop.max_wall_time is not None:
        rules.append(WallTime(float(spec.stop.max_wall_time)))
    if spec.stop.target_error is not None:
        rules.append(TargetError(spec.stop.target_error))
    return tuple(rules)


@dataclass(frozen=True)
class FailureBreaker:
    """Trips when too many runs of this session failed, after a minimum count.

    Counting only this session's runs lets a resume after a fix go on.

    Attributes:
        min_runs: settled runs of this session before the breaker can trip.
        max_failure_fraction: the failed fraction above which it trips.
    """

    min_runs: int
    max_failure_fraction: float

    def tripped(self, settled: int, failed: int, store_path: str) -> str | None:
        """The message to stop with, or None while the failure rate is acceptable."""
        if settled < self.min_runs or failed / settled <= self.max_failure_fraction:
            return None
        return (
            f"{failed} of {settled} runs failed (more than max_failure_fraction = "
            f"{self.max_failure_fraction}); fix the simulator, then `surrogate-al resume {store_path}`"
        )
