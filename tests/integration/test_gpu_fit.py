"""Surrogate fits on workers that advertise a GPU resource (bookkeeping only on this CPU machine)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from distributed import Client, LocalCluster

from surrogate_al.dispatch import RemoteFitSurrogate
from surrogate_al.surrogates import make_surrogate


@pytest.fixture(scope="module")
def gpu_client():
    # No GPU here: Dask's GPU resource is an abstract count, so this exercises the scheduling
    # (a task asking for GPU=1 only runs on workers that advertise it) but not CUDA itself.
    with LocalCluster(
        n_workers=1, threads_per_worker=1, dashboard_address=None, host="127.0.0.1", resources={"GPU": 1}
    ) as cluster:
        with Client(cluster) as client:
            yield client, next(iter(client.scheduler_info()["workers"]))


def test_remote_fit_runs_on_the_gpu_worker_and_matches_a_local_fit(gpu_client) -> None:
    client, gpu_worker = gpu_client
    rng = np.random.default_rng(0)
    X = torch.as_tensor(rng.random((30, 2)))
    Y = torch.sin(3 * X[:, :1]) + X[:, 1:] ** 2
    options = {"bounds": torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=torch.float64), "seed": 0, "device": "cpu"}
    remote = RemoteFitSurrogate(make_surrogate("gp", **options), client, "gp", options)
    remote.fit(X, Y)
    local = make_surrogate("gp", **options).fit(X, Y)
    X_new = torch.as_tensor(rng.random((7, 2)))
    assert remote.last_worker_ == gpu_worker
    torch.testing.assert_close(remote.predict(X_new).mean, local.predict(X_new).mean)
    torch.testing.assert_close(remote.predict(X_new).epistemic_var, local.predict(X_new).epistemic_var)
    remote.fit(X[:25], Y[:25])  # a refit (warm-started on the worker) also lands there
    assert remote.fits_ == 2 and remote.last_worker_ == gpu_worker
