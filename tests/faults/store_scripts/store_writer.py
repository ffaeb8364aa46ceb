"""A campaign-like writer for the store's kill tests: it is SIGKILLed at random moments.

It opens an existing store for writing (resuming whatever a killed
predecessor left), settles pending proposals first, then proposes and runs new
ones, with a failed first attempt now and then, checkpoints, metrics, events
and state changes in between. After each ``add_run`` returns it writes one
line ``ack RUN_ID PROPOSAL_ID ATTEMPT FINAL`` to stdout and flushes it: those
lines are the ground truth of what was acknowledged.

Other lines: ``ready N_RUNS`` once the store is open, ``done`` after a clean
close. Outputs of an ok run are ``y0 = sum(x)`` and ``y1 = x0 - x1``, so a
reader can check that every stored row is intact.

Usage: ``python store_writer.py STORE --target N [--snapshot-interval S]
[--checkpoint-bytes B] [--hold]`` (``--hold``: after the target, wait for a
line on stdin before closing).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

import numpy as np

from surrogate_al.store import CampaignStore


def outputs_of(x: np.ndarray) -> dict[str, float]:
    """The 'simulator' of the test: cheap and checkable."""
    return {"y0": float(x.sum()), "y1": float(x[0] - x[1])}


def emit(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("path")
    parser.add_argument("--target", type=int, required=True, help="stop after this many final runs")
    parser.add_argument("--snapshot-interval", type=float, default=30.0)
    parser.add_argument("--checkpoint-bytes", type=int, default=100_000)
    parser.add_argument("--hold", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    store = CampaignStore.open(args.path, "a", snapshot_interval=args.snapshot_interval)
    cols = store.arrays()
    last_attempt: dict[int, int] = {}
    for pid, attempt in zip(cols["proposal_id"].tolist(), cols["attempt"].tolist()):
        last_attempt[pid] = max(attempt, last_attempt.get(pid, 0))
    n_final = int(cols["final"].sum())
    batch = len({p.batch_id for p in store.proposals()})
    emit(f"ready {len(cols['run_id'])}")
    rng = np.random.default_rng(os.getpid())
    store.add_event("resumed", f"pid {os.getpid()}")
    store.set_state("running")
    step = 0
    while n_final < args.target:
        pending = store.pending_proposal_ids()
        if not pending:
            X = rng.random((3, 2))
            pending = store.add_proposals(X * 10.0, X, batch_id=batch, source="test", U=rng.random(3))
            batch += 1
        for pid in pending:
            x = store.proposals()[pid].inputs
            attempt = last_attempt.get(pid, 0) + 1
            now = time.time()
            store.mark_submitted(pid, attempt, now)
            if attempt == 1 and rng.random() < 0.25:
                rid = store.add_run(
                    proposal_id=pid, attempt=attempt, final=False, status="failed", outputs=None,
                    reason="transient", stderr_tail="boom\n", submit_time=now, start_time=now,
                    finish_time=now, wall_time=0.0, worker="w0", host="h0",
                )
                last_attempt[pid] = attempt
                emit(f"ack {rid} {pid} {attempt} 0")
                attempt += 1
            rid = store.add_run(
                proposal_id=pid, attempt=attempt, final=True, status="ok", outputs=outputs_of(x),
                submit_time=now, start_time=now, finish_time=time.time(), wall_time=0.001, worker="w0", host="h0",
            )
            last_attempt[pid] = attempt
            n_final += 1
            emit(f"ack {rid} {pid} {attempt} 1")
        step += 1
        if step % 4 == 0:
            store.save_checkpoint(
                version=step, n_results=n_final,
                surrogate_state=rng.bytes(args.checkpoint_bytes), policy_state=rng.bytes(64),
            )
            store.add_metric(n_results=n_final, name="estimated_nrmse", value=1.0 / n_final)
    store.set_state("completed", f"{n_final} results")
    if args.hold:
        emit("holding")
        sys.stdin.readline()
    store.close()
    emit("done")


if __name__ == "__main__":
    main()
