"""λ schedules: how the uncertainty / diversity trade-off moves over a campaign.

The hybrid acquisition ``J_λ(x) = λ U(x) + (1 − λ) D(x)`` (see
:mod:`surrogate_al.acquisition.scores`) and the batch objective ``F_λ`` (see
:mod:`surrogate_al.acquisition.batch_objective`) weigh epistemic uncertainty by ``λ`` and
diversity by ``1 − λ``. A schedule maps the fraction of the budget spent,
``progress`` in ``[0, 1]``, to ``λ``:

* ``constant``: ``λ(p) = start`` (``end`` is ignored; use it to pin λ).
* ``linear``: ``λ(p) = (1 − p)·start + p·end``.
* ``cosine``: ``λ(p) = (1 − w)·start + w·end`` with ``w = (1 − cos πp) / 2``;
  flat at both ends, so the exploratory opening and the exploiting finish each
  last a while and the switch happens mid-campaign.
* ``exponential``: geometric interpolation ``λ(p) = start^(1 − p) · end^p``
  (``start, end > 0``): equal *ratios* per unit progress, so a schedule that
  grows from 0.1 to 0.9 spends most of the campaign at small λ.

Every formula is written so that ``λ(0) == start`` and ``λ(1) == end`` hold
exactly in floating point (the weights are exactly 0 and 1 there).

Default: ``constant`` at λ = 0.9. The model's posterior variance already
spreads points in the metric its fitted length scales learn, so a large
coverage weight early on sends batches to filling the box rather than to
where the model asks for them; it is the weight that costs, not the geometry
(coverage measured in the GP's learnt metric does no better). λ = 1 (no
coverage at all) is as good early but falls behind at large budgets: the
small coverage weight keeps a batch from piling up on one overconfident spot
and keeps filling regions the model wrongly believes known. Schedules that
change λ over the campaign stay available for simulators where early
uncertainty is known to be unreliable. The benchmark evidence for 0.9 is in
docs/decisions.md.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from surrogate_al.errors import ConfigError

__all__ = [
    "DEFAULT_SCHEDULE",
    "SCHEDULES",
    "ConstantSchedule",
    "CosineSchedule",
    "ExponentialSchedule",
    "LinearSchedule",
    "Schedule",
    "check_lambda",
    "check_progress",
    "make_schedule",
]


def check_lambda(value: float, what: str = "lambda") -> float:
    """Return ``value`` as a float in ``[0, 1]`` or raise :class:`ConfigError`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        raise ConfigError(f"{what} = {value!r}; expected a finite number in [0, 1]")
    if not 0.0 <= float(value) <= 1.0:
        raise ConfigError(
            f"{what} = {value!r} is outside [0, 1]; λ weighs uncertainty (λ) against diversity (1 - λ)"
        )
    return float(value)


def check_progress(progress: float) -> float:
    """Return ``progress`` as a float in ``[0, 1]`` or raise :class:`ConfigError`."""
    if isinstance(progress, bool) or not isinstance(progress, (int, float)) or not math.isfinite(float(progress)):
        raise ConfigError(f"progress = {progress!r}; expected a finite number in [0, 1] (fraction of budget spent)")
    if not 0.0 <= float(progress) <= 1.0:
        raise ConfigError(
            f"progress = {progress!r} is outside [0, 1]; pass the fraction of the budget spent, "
            "e.g. runs_done / budget clipped to 1"
        )
    return float(progress)


@runtime_checkable
class Schedule(Protocol):
    """Maps budget progress in ``[0, 1]`` to λ in ``[0, 1]``."""

    start: float
    end: float

    def __call__(self, progress: float) -> float:
        """λ at ``progress`` (fraction of the budget spent)."""
        ...


@dataclass(frozen=True)
class _Interpolating(ABC):
    """Shared validation: ``start`` and ``end`` in ``[0, 1]``."""

    start: float
    end: float

    def __post_init__(self) -> None:
        name = type(self).__name__
        object.__setattr__(self, "start", check_lambda(self.start, f"{name}.start"))
        object.__setattr__(self, "end", check_lambda(self.end, f"{name}.end"))

    @abstractmethod
    def _weight(self, progress: float) -> float:
        """Weight of ``end`` at ``progress``: exactly 0 at 0 and exactly 1 at 1."""

    def __call__(self, progress: float) -> float:
        """λ at ``progress`` in ``[0, 1]``."""
        w = self._weight(check_progress(progress))
        lam = (1.0 - w) * self.start + w * self.end
        # Round-off can leave λ a hair outside [min, max]; keep it within the schedule's range.
        return min(max(lam, min(self.start, self.end)), max(self.start, self.end))


@dataclass(frozen=True)
class ConstantSchedule:
    """``λ(p) = value`` for every ``p``.

    Args:
        value: λ in ``[0, 1]``.
    """

    value: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", check_lambda(self.value, "ConstantSchedule.value"))

    @property
    def start(self) -> float:
        """λ at progress 0 (= ``value``)."""
        return self.value

    @property
    def end(self) -> float:
        """λ at progress 1 (= ``value``)."""
        return self.value

    def __call__(self, progress: float) -> float:
        """λ at ``progress`` (always ``value``)."""
        check_progress(progress)
        return self.value


@dataclass(frozen=True)
class LinearSchedule(_Interpolating):
    """``λ(p) = (1 − p)·start + p·end``."""

    def _weight(self, progress: float) -> float:
        return progress


@dataclass(frozen=True)
class CosineSchedule(_Interpolating):
    """``λ(p) = (1 − w)·start + w·end``, ``w = (1 − cos πp) / 2`` (flat at both ends)."""

    def _weight(self, progress: float) -> float:
        if progress >= 1.0:
            return 1.0  # cos(pi) is exactly -1, but say it plainly
        return 0.5 * (1.0 - math.cos(math.pi * progress))


@dataclass(frozen=True)
class ExponentialSchedule(_Interpolating):
    """Geometric interpolation ``λ(p) = start^(1 − p) · end^p``; needs ``start, end > 0``."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.start <= 0.0 or self.end <= 0.0:
            raise ConfigError(
                f"ExponentialSchedule: start = {self.start!r}, end = {self.end!r}; a geometric schedule "
                "needs both > 0 (e.g. start = 0.1); use kind 'linear' or 'cosine' to start at 0"
            )

    def _weight(self, progress: float) -> float:
        if self.end == self.start:
            return progress
        # The weight of ``end`` that reproduces the geometric value; exactly 0 and 1 at the ends.
        value = self.start ** (1.0 - progress) * self.end**progress
        return (value - self.start) / (self.end - self.start)


SCHEDULES: tuple[str, ...] = ("constant", "linear", "cosine", "exponential")
#: λ of the default schedule (and of a ``"constant"`` schedule given no start, and the
#: end of an annealed one given no end).
DEFAULT_LAMBDA = 0.9
#: λ at the start of an annealed schedule given no start: a coverage-led opening.
EXPLORATORY_START = 0.3
DEFAULT_SCHEDULE: Schedule = ConstantSchedule(DEFAULT_LAMBDA)


def make_schedule(kind: str, start: float | None = None, end: float | None = None) -> Schedule:
    """Build a λ schedule by name.

    Args:
        kind: one of ``"constant"``, ``"linear"``, ``"cosine"``, ``"exponential"``.
        start: λ at progress 0, in ``[0, 1]`` (None: 0.9 for ``"constant"``,
            the default λ, and 0.3 for the others, an exploratory opening).
        end: λ at progress 1, in ``[0, 1]`` (None: 0.9); ignored by
            ``"constant"``, which holds ``start`` throughout.

    Returns:
        The schedule; ``schedule(0) == start`` and ``schedule(1) == end``
        exactly (``end == start`` for a constant schedule).

    Raises:
        ConfigError: unknown kind, λ outside ``[0, 1]``, or an exponential
            schedule with a zero end.
    """
    if kind not in SCHEDULES:
        raise ConfigError(f"lambda schedule kind {kind!r} is unknown; expected one of {list(SCHEDULES)}")
    if kind == "constant":
        # λ = start throughout; ``end`` is ignored (workflow files fill a default end for every kind).
        return ConstantSchedule(DEFAULT_LAMBDA if start is None else start)
    start = EXPLORATORY_START if start is None else start
    end = DEFAULT_LAMBDA if end is None else end
    if kind == "linear":
        return LinearSchedule(start, end)
    if kind == "cosine":
        return CosineSchedule(start, end)
    return ExponentialSchedule(start, end)
