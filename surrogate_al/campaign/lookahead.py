"""How many prepared points the asynchronous loop keeps queued."""

from __future__ import annotations

__all__ = ["Lookahead"]


class Lookahead:
    """How many prepared points the asynchronous loop keeps queued.

    A worker that frees up must find a point waiting. While the proposer
    spends ``τ`` seconds on a round, the workers take about ``r τ`` points
    (``r``: runs finished per second, ``concurrency`` over the mean turnaround
    of a run); the round then tops the queue back up to ``L``. So the queue
    starts a round holding about ``L − r τ`` points and is lowest at its end,
    ``L − 2 r τ``: keeping ``L = 2 r τ + 2 concurrency`` leaves two points per
    worker of margin for runs that end together. With runs much longer than a
    proposal round (the usual case) that is two points per worker; runs as
    short as a round raise it, up to sixteen per worker. A larger queue only
    proposes further ahead of the results (every queued point is pending to
    the policy); it never changes which runs count. The cap is high enough
    for the rounds of an ``auto`` surrogate with an ensemble (seconds) beside
    sub-second runs (docs/decisions.md).

    Args:
        concurrency: runs kept in flight.
    """

    #: Weight of the newest observation in the running means.
    SMOOTHING = 0.25

    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self.round_seconds: float | None = None
        self.run_seconds: float | None = None

    @classmethod
    def _mean(cls, current: float | None, seconds: float) -> float:
        return seconds if current is None else (1.0 - cls.SMOOTHING) * current + cls.SMOOTHING * seconds

    def observe_round(self, seconds: float) -> None:
        """A proposal round took ``seconds`` (fit, acquisition and recording)."""
        self.round_seconds = self._mean(self.round_seconds, max(0.0, seconds))

    def observe_run(self, seconds: float) -> None:
        """A run came back ``seconds`` after its submission."""
        self.run_seconds = self._mean(self.run_seconds, max(0.0, seconds))

    @property
    def size(self) -> int:
        """Points to keep queued: between ``2 x`` and ``16 x concurrency``."""
        floor, cap = 2 * self.concurrency, 16 * self.concurrency
        if self.round_seconds is None or not self.run_seconds:
            return floor
        rate = self.concurrency / self.run_seconds
        return min(cap, floor + round(2.0 * rate * self.round_seconds))
