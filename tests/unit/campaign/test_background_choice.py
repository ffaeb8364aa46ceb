"""The model-choice process of the asynchronous loop (``campaign.background.BackgroundChoiceExecutor``)."""

from __future__ import annotations

import time
from concurrent.futures import CancelledError
from concurrent.futures.process import BrokenProcessPool

import pytest
import torch
from auto_helpers import quick_auto as _auto
from auto_helpers import smooth_data as _data

from surrogate_al.campaign.background import BackgroundChoiceExecutor
from surrogate_al.surrogates.selection import score_candidates


def test_the_background_process_scores_as_the_selector_would_and_terminates_at_once() -> None:
    X, Y = _data(30)
    model = _auto()
    executor = BackgroundChoiceExecutor()
    try:
        scores, losses, reasons = executor.submit(score_candidates, model.settings(), X, Y, None).result(timeout=120)
        assert executor.submit(torch.get_num_threads).result(timeout=60) == 1  # one core's worth of work
        # Stopped while the campaign proposes: nothing it was given moves on until the round is over.
        with executor.paused():
            quick = executor.submit(abs, -3)
            time.sleep(2.0)
            assert not quick.done()
        assert quick.result(timeout=60) == 3
        process = next(iter(executor._processes.values()))
        running = executor.submit(time.sleep, 120)
        time.sleep(0.5)
        started = time.monotonic()
        executor.terminate()
        # Gone at once, not after the running task: the campaign's end does not wait for a choice.
        assert time.monotonic() - started < 30 and not process.is_alive()
        with pytest.raises((BrokenProcessPool, CancelledError)):
            running.result(timeout=30)
    finally:
        executor.terminate()
    here = model._score(X, Y, None)
    assert scores == pytest.approx(here[0], rel=1e-9) and reasons == here[2]
    for kind in ("gp", "ensemble"):
        torch.testing.assert_close(losses[kind], here[1][kind])
