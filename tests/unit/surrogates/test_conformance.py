"""Every registered surrogate honours the Surrogate protocol the same way.

Parametrised over :data:`surrogate_al.surrogates.SURROGATES`; a new kind must
add its fast test settings to ``FAST`` (the first test fails until it does).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from surrogate_al.errors import ConfigError, DataError, ShapeError
from surrogate_al.surrogates import SURROGATES, Prediction, Surrogate, SurrogateModel, make_surrogate
from surrogate_al.surrogates.base import epistemic_cross_covariance

DT = torch.float64
D = 2

# Small, fast settings per kind (real fits, a few seconds at most).
FAST: dict[str, dict[str, Any]] = {
    "gp": {},
    "ensemble": {"num_members": 3, "max_epochs": 40, "hidden_layers": (16, 16)},
    "mc_dropout": {"num_passes": 8, "max_epochs": 40, "hidden_layers": (16, 16)},
    "auto": {"folds": 2, "candidate_options": {"ensemble": {"num_members": 3, "max_epochs": 40, "hidden_layers": (16, 16)}}},
}
KINDS = sorted(SURROGATES)



def _data(n: int = 24, m: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    X = torch.rand(n, D, generator=gen, dtype=DT)
    Y = torch.cat([torch.sin(4 * X[:, :1]) + X[:, 1:], X[:, :1] * X[:, 1:]], dim=-1)[:, :m]
    return X, Y


def _make(kind: str) -> Surrogate:
    return make_surrogate(kind, seed=0, dtype=DT, device="cpu", **FAST[kind])


@pytest.fixture(scope="module", params=KINDS)
def fitted(request: pytest.FixtureRequest) -> tuple[str, Surrogate]:
    """Each kind fitted once on two outputs, shared by the read-only checks."""
    return request.param, _make(request.param).fit(*_data(m=2))


def test_every_registered_kind_has_fast_settings() -> None:
    assert set(FAST) == set(SURROGATES)


def test_is_a_surrogate_with_right_shapes(fitted: tuple[str, Surrogate]) -> None:
    kind, model = fitted
    assert isinstance(model, Surrogate)
    assert model.num_outputs == 2
    pred = model.predict(torch.rand(7, D, dtype=DT))
    assert isinstance(pred, Prediction)
    for part in (pred.mean, pred.epistemic_var, pred.aleatoric_var):
        assert part.shape == (7, 2)
        assert torch.isfinite(part).all()
    assert (pred.epistemic_var >= 0).all() and (pred.aleatoric_var >= 0).all()
    cov = model.joint_epistemic_covariance(torch.rand(5, D, dtype=DT))
    assert cov.shape == (2, 5, 5)
    torch.testing.assert_close(cov, cov.transpose(-1, -2))


@pytest.mark.parametrize("kind", KINDS)
def test_single_output_from_a_vector_y(kind: str) -> None:
    X, Y = _data(m=1)
    model = _make(kind).fit(X, Y[:, 0])
    assert model.num_outputs == 1
    assert model.predict(X[:3]).mean.shape == (3, 1)


def test_joint_covariance_diagonal_is_standardised_epistemic_variance(fitted: tuple[str, Surrogate]) -> None:
    _, model = fitted
    X = torch.rand(6, D, dtype=DT)
    diag = torch.diagonal(model.joint_epistemic_covariance(X), dim1=-2, dim2=-1).T  # n x m
    ratio = model.predict(X).epistemic_var / diag
    # One factor per output (its variance), the same at every point.
    torch.testing.assert_close(ratio, ratio[:1].expand_as(ratio), rtol=1e-6, atol=0.0)


def test_state_round_trip_on_a_fresh_instance(fitted: tuple[str, Surrogate]) -> None:
    kind, model = fitted
    fresh = _make(kind).load_state_dict(model.state_dict())
    X = torch.rand(9, D, dtype=DT)
    a, b = model.predict(X), fresh.predict(X)
    torch.testing.assert_close(b.mean, a.mean, rtol=0.0, atol=0.0)
    torch.testing.assert_close(b.epistemic_var, a.epistemic_var, rtol=0.0, atol=0.0)
    torch.testing.assert_close(b.aleatoric_var, a.aleatoric_var, rtol=0.0, atol=0.0)


@pytest.mark.parametrize("kind", KINDS)
def test_nan_in_y_is_rejected(kind: str) -> None:
    X, Y = _data()
    Y[3, 1] = float("nan")
    with pytest.raises(DataError, match=r"Y\[3, 1\]"):
        _make(kind).fit(X, Y)


def test_wrong_input_width_is_rejected(fitted: tuple[str, Surrogate]) -> None:
    _, model = fitted
    with pytest.raises(ShapeError, match=rf"expected n x {D}"):
        model.predict(torch.rand(4, D + 1, dtype=DT))


def test_predict_is_differentiable(fitted: tuple[str, Surrogate]) -> None:
    _, model = fitted
    X = torch.rand(5, D, dtype=DT, requires_grad=True)
    pred = model.predict(X)
    (pred.mean.sum() + pred.epistemic_var.sum()).backward()
    assert X.grad is not None and torch.isfinite(X.grad).all()
    assert X.grad.abs().sum() > 0


def test_botorch_adapter_posterior(fitted: tuple[str, Surrogate]) -> None:
    _, model = fitted
    X = torch.rand(3, 4, D, dtype=DT)  # b x q x d
    post = SurrogateModel(model).posterior(X)
    assert post.mean.shape == (3, 4, 2)
    pred = model.predict(X.reshape(-1, D))
    torch.testing.assert_close(post.mean, pred.mean.reshape(3, 4, 2).to(post.mean))


def test_registry_rejects_unknown_kind_and_option() -> None:
    with pytest.raises(ConfigError, match=r"surrogate kind = 'kriging' is not known.*'auto', 'ensemble', 'gp', 'mc_dropout'"):
        make_surrogate("kriging")
    with pytest.raises(ConfigError, match=r"'gp' \(GaussianProcess\) has no option\(s\) \['num_members'\].*'kernel'"):
        make_surrogate("gp", num_members=5)


def test_cross_covariance_is_the_joint_covariance_blocks(fitted: tuple[str, Surrogate]) -> None:
    """epistemic_cross_covariance(Z, X) = the (Z, X) block and X diagonal of joint(Z ∪ X), gradients included."""
    _, model = fitted
    gen = torch.Generator().manual_seed(4)
    Z = torch.rand(5, D, generator=gen, dtype=DT)
    X0 = torch.rand(3, D, generator=gen, dtype=DT)
    X_a = X0.clone().requires_grad_(True)
    cross, var = epistemic_cross_covariance(model, Z, X_a)
    assert cross.shape == (2, 5, 3) and var.shape == (2, 3)
    X_b = X0.clone().requires_grad_(True)
    joint = model.joint_epistemic_covariance(torch.cat([Z, X_b]))
    torch.testing.assert_close(cross, joint[:, :5, 5:], rtol=1e-7, atol=1e-10)
    torch.testing.assert_close(var, joint[:, 5:, 5:].diagonal(dim1=-2, dim2=-1), rtol=1e-7, atol=1e-10)
    # The gradient batch acquisition follows: the same scalar through both routes.
    (cross.square().sum() + var.sum()).backward()
    (joint[:, :5, 5:].square().sum() + joint[:, 5:, 5:].diagonal(dim1=-2, dim2=-1).sum()).backward()
    assert X_a.grad is not None and float(X_a.grad.abs().max()) > 0
    torch.testing.assert_close(X_a.grad, X_b.grad, rtol=1e-6, atol=1e-9)


class _JointOnly:
    """A surrogate that offers only the protocol's joint covariance (a third-party model)."""

    def __init__(self, inner: Surrogate) -> None:
        self.inner = inner

    def joint_epistemic_covariance(self, X: torch.Tensor) -> torch.Tensor:
        return self.inner.joint_epistemic_covariance(X)


def test_cross_covariance_falls_back_to_the_joint_covariance() -> None:
    model = _make("gp").fit(*_data(m=2))
    Z, X = torch.rand(4, D, dtype=DT), torch.rand(6, D, dtype=DT)
    own_cross, own_var = epistemic_cross_covariance(model, Z, X)
    cross, var = epistemic_cross_covariance(_JointOnly(model), Z, X)  # type: ignore[arg-type]
    torch.testing.assert_close(cross, own_cross, rtol=1e-7, atol=1e-10)
    torch.testing.assert_close(var, own_var, rtol=1e-7, atol=1e-10)
