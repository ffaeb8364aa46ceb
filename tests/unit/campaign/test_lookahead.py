"""How many prepared points the asynchronous loop keeps queued (``campaign.lookahead.Lookahead``)."""

from __future__ import annotations

import pytest

from surrogate_al.campaign.lookahead import Lookahead as _Lookahead


def test_two_points_per_worker_before_anything_was_measured() -> None:
    lookahead = _Lookahead(3)
    assert lookahead.size == 6
    lookahead.observe_run(2.0)  # a run, but no proposal round yet
    assert lookahead.size == 6


def test_runs_much_longer_than_a_round_keep_two_points_per_worker() -> None:
    lookahead = _Lookahead(4)
    lookahead.observe_round(1.5)
    lookahead.observe_run(600.0)
    assert lookahead.size == 8


def test_runs_as_short_as_a_round_cover_two_rounds_of_finishes() -> None:
    # 2 workers, runs of 0.64 s: 3.125 finishes per second, 2.5 during a 0.8 s round;
    # the queue must outlast two rounds of them on top of its two points per worker.
    lookahead = _Lookahead(2)
    lookahead.observe_round(0.8)
    lookahead.observe_run(0.64)
    assert lookahead.size == 4 + 5


def test_near_instant_runs_are_capped_at_sixteen_points_per_worker() -> None:
    lookahead = _Lookahead(2)
    lookahead.observe_round(1.0)
    lookahead.observe_run(0.001)
    assert lookahead.size == 32


def test_an_ensemble_round_on_half_second_runs_is_covered_below_the_cap() -> None:
    # The throughput benchmark with `auto`: 2 workers, runs of 0.8 s on average, 3.4 s rounds:
    # 2.5 finishes per second, 8.5 during a round; the old cap of 16 points fell short of the 21 needed.
    lookahead = _Lookahead(2)
    lookahead.observe_round(3.4)
    lookahead.observe_run(0.8)
    assert lookahead.size == 4 + 17


def test_one_slow_round_moves_the_size_by_a_quarter_of_the_change() -> None:
    lookahead = _Lookahead(2)
    lookahead.observe_run(1.0)
    for _ in range(20):
        lookahead.observe_round(0.5)
    assert lookahead.size == 4 + 2
    lookahead.observe_round(4.5)  # round time 0.5 -> 1.5 s after smoothing, not 4.5 s
    assert lookahead.round_seconds == pytest.approx(1.5)
    assert lookahead.size == 4 + 6
