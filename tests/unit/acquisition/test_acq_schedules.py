"""λ schedules: exact end points, shape, validation."""

from __future__ import annotations

import itertools
import math

import pytest

from surrogate_al.acquisition import (
    DEFAULT_SCHEDULE,
    SCHEDULES,
    ConstantSchedule,
    CosineSchedule,
    ExponentialSchedule,
    LinearSchedule,
    make_schedule,
)
from surrogate_al.errors import ConfigError

PAIRS = [(0.3, 0.9), (0.1, 0.7), (0.9, 0.2), (0.05, 1.0), (0.33, 0.33)]


@pytest.mark.parametrize("kind", ["linear", "cosine", "exponential"])
@pytest.mark.parametrize(("start", "end"), PAIRS)
def test_schedule_hits_start_and_end_exactly(kind: str, start: float, end: float) -> None:
    schedule = make_schedule(kind, start, end)
    assert schedule(0.0) == start
    assert schedule(1.0) == end
    assert schedule(0) == start and schedule(1) == end  # integers are progress too


@pytest.mark.parametrize("kind", ["linear", "cosine", "exponential"])
def test_schedule_is_monotone_between_its_ends(kind: str) -> None:
    up, down = make_schedule(kind, 0.2, 0.8), make_schedule(kind, 0.8, 0.2)
    grid = [i / 50 for i in range(51)]
    values_up = [up(p) for p in grid]
    values_down = [down(p) for p in grid]
    assert all(a <= b for a, b in itertools.pairwise(values_up))
    assert all(a >= b for a, b in itertools.pairwise(values_down))
    assert all(0.2 <= v <= 0.8 for v in values_up + values_down)


def test_schedule_shapes_differ_as_documented() -> None:
    lin, cos, exp = (make_schedule(k, 0.3, 0.9) for k in ("linear", "cosine", "exponential"))
    assert lin(0.5) == pytest.approx(0.6)
    assert cos(0.5) == pytest.approx(0.6)  # cosine crosses the midpoint at half budget ...
    assert cos(0.1) < lin(0.1) and cos(0.9) > lin(0.9)  # ... but is flat at both ends
    assert exp(0.5) == pytest.approx(math.sqrt(0.3 * 0.9))  # geometric mean at half budget


def test_default_schedule_is_mostly_information_with_a_little_coverage() -> None:
    # Policy version 4 (docs/benchmarks.md): λ = 0.9 throughout.
    assert isinstance(DEFAULT_SCHEDULE, ConstantSchedule)
    assert {DEFAULT_SCHEDULE(p) for p in (0.0, 0.5, 1.0)} == {0.9}


def test_make_schedule_without_start_gives_the_default_or_an_exploratory_opening() -> None:
    # A constant schedule without a start is the default; an annealed kind without one must
    # not collapse to a flat line at the default λ.
    assert make_schedule("constant") == DEFAULT_SCHEDULE
    cosine = make_schedule("cosine")
    assert isinstance(cosine, CosineSchedule)
    assert (cosine(0.0), cosine(1.0)) == (0.3, 0.9)


def test_constant_schedule_holds_start() -> None:
    schedule = make_schedule("constant", 0.7, 0.9)
    assert isinstance(schedule, ConstantSchedule)
    assert {schedule(p) for p in (0.0, 0.3, 1.0)} == {0.7}
    assert schedule.start == schedule.end == 0.7


def test_make_schedule_builds_each_kind() -> None:
    assert isinstance(make_schedule("linear", 0.1, 0.5), LinearSchedule)
    assert isinstance(make_schedule("exponential", 0.1, 0.5), ExponentialSchedule)
    assert set(SCHEDULES) == {"constant", "linear", "cosine", "exponential"}


def test_unknown_kind_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"'sigmoid' is unknown.*constant.*linear.*cosine.*exponential"):
        make_schedule("sigmoid", 0.1, 0.9)


@pytest.mark.parametrize(("start", "end", "field"), [(-0.1, 0.9, "start"), (0.3, 1.5, "end"), (math.nan, 0.5, "start")])
def test_lambda_outside_unit_interval_is_rejected(start: float, end: float, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        make_schedule("linear", start, end)


def test_exponential_schedule_needs_positive_ends() -> None:
    with pytest.raises(ConfigError, match="needs both > 0"):
        make_schedule("exponential", 0.0, 0.9)


@pytest.mark.parametrize("progress", [-0.01, 1.01, math.inf, "half"])
def test_progress_outside_unit_interval_is_rejected(progress: object) -> None:
    with pytest.raises(ConfigError, match="progress"):
        DEFAULT_SCHEDULE(progress)  # type: ignore[arg-type]
