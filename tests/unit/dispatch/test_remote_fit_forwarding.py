"""RemoteFitSurrogate answers for its local copy: the declared names, the protocols, the probes (no Dask)."""

from __future__ import annotations

import pytest
import torch

from surrogate_al.dispatch import RemoteFitAutoSurrogate, RemoteFitSurrogate
from surrogate_al.surrogates import make_surrogate
from surrogate_al.surrogates.base import Surrogate

DT = torch.float64
BOUNDS = torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=DT)
OPTIONAL = ("bounds", "sampled_covariance", "epistemic_cross_covariance", "model_", "loo_surprise", "train_X_")
KIND_CHOOSING = ("choose_again", "selected_at_n_", "selected_model")


def _fitted_gp() -> Surrogate:
    gen = torch.Generator().manual_seed(0)
    X = torch.rand(12, 2, generator=gen, dtype=DT)
    return make_surrogate("gp", bounds=BOUNDS, seed=0, device="cpu").fit(X, torch.sin(3 * X[:, :1]))


def test_a_wrapped_gp_is_a_surrogate_and_answers_every_probe_as_the_gp() -> None:
    local = _fitted_gp()
    remote = RemoteFitSurrogate(local, None, "gp", {})
    assert type(remote) is RemoteFitSurrogate
    assert isinstance(remote, Surrogate)
    for name in OPTIONAL + KIND_CHOOSING:
        assert hasattr(remote, name) == hasattr(local, name), name
    X = torch.rand(5, 2, dtype=DT)
    torch.testing.assert_close(remote.predict(X).mean, local.predict(X).mean)
    torch.testing.assert_close(remote.loo_surprise(), local.loo_surprise())  # type: ignore[attr-defined]
    assert remote.num_outputs == local.num_outputs == 1
    assert remote.load_state_dict(remote.state_dict()) is remote


def test_setting_bounds_sets_the_local_copys() -> None:
    local = make_surrogate("gp", seed=0, device="cpu")
    remote = RemoteFitSurrogate(local, None, "gp", {})
    remote.bounds = BOUNDS
    assert local.bounds is BOUNDS  # type: ignore[attr-defined]


def test_a_wrapped_auto_surrogate_gets_the_kind_choosing_names() -> None:
    local = make_surrogate("auto", bounds=BOUNDS, seed=0, device="cpu")
    remote = RemoteFitSurrogate(local, None, "auto", {})
    assert isinstance(remote, RemoteFitAutoSurrogate)
    assert remote.selected_at_n_ == 0
    assert remote.choose_again() is remote and local.choice_due_  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        remote.loo_surprise  # noqa: B018 - the probe surprise weighting makes
