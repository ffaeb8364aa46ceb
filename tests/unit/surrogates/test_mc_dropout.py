"""MCDropoutMLP: uncertainty away from data, fixed masks, gradients, state, batching.

Every test trains a real network. Torch runs single-threaded here (small
kernels; two OpenMP threads per process slow them down on a shared machine).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from surrogate_al.errors import ConfigError, DataError, ShapeError
from surrogate_al.surrogates.mc_dropout import MCDropoutMLP



def sine_data(n: int, m: int = 1, seed: int = 0, lo: float = 0.0, hi: float = 1.0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(lo, hi, size=(n, 1))
    Y = np.concatenate([np.sin(6 * X + k) for k in range(m)], axis=1)
    return X, Y


def quick(**kwargs) -> MCDropoutMLP:
    """A cheap model for tests about plumbing rather than accuracy."""
    settings = {"hidden_layers": (32, 32), "num_passes": 16, "max_epochs": 150, "device": "cpu", "seed": 0}
    settings.update(kwargs)
    return MCDropoutMLP(**settings)


@pytest.fixture(scope="module")
def extrapolating_model() -> MCDropoutMLP:
    X, Y = sine_data(30, lo=0.0, hi=0.4)
    return MCDropoutMLP(bounds=[[0.0], [1.0]], device="cpu", seed=0).fit(X, Y)


def test_epistemic_variance_is_far_larger_away_from_the_data(extrapolating_model):
    epi = extrapolating_model.predict(torch.tensor([[0.2], [0.9]], dtype=torch.float64)).epistemic_var.detach()
    assert epi[1, 0] >= 10 * epi[0, 0]


def test_fits_the_data_it_saw(extrapolating_model):
    X_test, Y_test = sine_data(100, seed=5, lo=0.0, hi=0.4)
    mean = extrapolating_model.predict(X_test).mean.detach().numpy()
    assert np.sqrt(np.mean((mean - Y_test) ** 2)) / Y_test.std() < 0.1


def test_prediction_is_deterministic_with_fixed_masks(extrapolating_model):
    Xq = np.linspace(0, 1, 20)[:, None]
    a, b = extrapolating_model.predict(Xq), extrapolating_model.predict(Xq)
    assert torch.equal(a.mean, b.mean) and torch.equal(a.epistemic_var, b.epistemic_var)
    masks = extrapolating_model.masks_
    assert [tuple(m.shape) for m in masks] == [(50, 1, 128), (50, 1, 128)]
    # Each pass drops about 10 % of the units, and the passes differ.
    dropped = (masks[0] == 0).double().mean().item()
    assert 0.05 < dropped < 0.15
    assert not torch.equal(masks[0][0], masks[0][1])


def test_epistemic_variance_has_finite_nonzero_gradient_in_x(extrapolating_model):
    Xq = torch.tensor([[0.1], [0.5], [0.95]], dtype=torch.float64, requires_grad=True)
    extrapolating_model.predict(Xq).epistemic_var.sum().backward()
    assert torch.isfinite(Xq.grad).all()
    assert (Xq.grad.abs() > 0).all()
    assert all(p.grad is None for p in extrapolating_model.net_.parameters())


def test_batched_passes_equal_a_loop_over_masked_networks():
    X, Y = sine_data(40, m=2)
    model = quick(hidden_layers=(8, 12), num_passes=5).fit(X, Y)
    state = model.state_dict()
    Xq = torch.rand(9, 1, dtype=torch.float64)
    U = model.scaler_.transform(Xq)
    batched = model.net_(U, model.masks_)
    assert batched.shape == (5, 9, 4)
    pass_means = []
    for t in range(model.num_passes):
        h = U
        for layer, (w, b) in enumerate(zip(state["weights"], state["biases"])):
            h = F.linear(h, w[0].T, b[0, 0])
            if layer < len(state["weights"]) - 1:
                h = F.silu(h) * state["masks"][layer][t, 0]
        assert torch.allclose(batched[t], h, atol=1e-6, rtol=0)
        pass_means.append(h[:, :2])
    means = torch.stack(pass_means)
    std = model.standardizer_.std_
    pred = model.predict(Xq)
    assert torch.allclose(pred.epistemic_var, means.var(dim=0, unbiased=False) * std**2, atol=1e-8)
    cov = model.joint_epistemic_covariance(Xq)
    assert cov.shape == (2, 9, 9)
    assert torch.allclose(torch.diagonal(cov, dim1=-2, dim2=-1), means.var(dim=0, unbiased=False).T, atol=1e-10)


def test_state_round_trip_gives_identical_predictions_in_a_new_instance():
    X, Y = sine_data(40, m=2)
    args = {"hidden_layers": (16, 16), "num_passes": 8, "max_epochs": 50, "seed": 11, "device": "cpu"}
    model = MCDropoutMLP(**args).fit(X, Y)
    clone = MCDropoutMLP(**args).load_state_dict(model.state_dict())
    Xq = np.linspace(-0.1, 1.1, 15)[:, None]
    a, b = model.predict(Xq), clone.predict(Xq)
    for field in ("mean", "epistemic_var", "aleatoric_var"):
        assert torch.equal(getattr(a, field), getattr(b, field))
    assert torch.equal(model.joint_epistemic_covariance(Xq), clone.joint_epistemic_covariance(Xq))
    with pytest.raises(ConfigError, match="num_passes"):
        MCDropoutMLP(**{**args, "num_passes": 9}).load_state_dict(model.state_dict())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_multi_output_in_both_dtypes(dtype):
    X, Y = sine_data(30, m=2)
    model = quick(dtype=dtype).fit(X, Y)
    pred = model.predict(np.random.default_rng(0).random((6, 1)))
    for t in (pred.mean, pred.epistemic_var, pred.aleatoric_var):
        assert t.shape == (6, 2) and t.dtype == dtype and torch.isfinite(t).all()
    assert (pred.epistemic_var > 0).all()
    assert model.num_outputs == 2


def test_same_seed_same_model():
    X, Y = sine_data(25)
    Xq = np.linspace(0, 1, 5)[:, None]
    a = quick(seed=2, max_epochs=40).fit(X, Y).predict(Xq)
    b = quick(seed=2, max_epochs=40).fit(X, Y).predict(Xq)
    assert torch.equal(a.mean, b.mean) and torch.equal(a.epistemic_var, b.epistemic_var)


def test_bad_inputs_are_rejected():
    X, Y = sine_data(10)
    Y[0, 0] = np.inf
    with pytest.raises(DataError, match=r"Y\[0, 0\]"):
        quick().fit(X, Y)
    model = quick(max_epochs=5).fit(*sine_data(10))
    with pytest.raises(ShapeError, match="d = 1"):
        model.predict(np.zeros((2, 3)))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"dropout": 0.0}, "dropout"), ({"dropout": 1.2}, "dropout"), ({"num_passes": 1}, "num_passes"), ({"max_epochs": -3}, "max_epochs")],
)
def test_bad_constructor_arguments_name_the_field(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        MCDropoutMLP(**kwargs)


def test_many_points_predict_in_blocks_exactly_as_few_points():
    # 16 passes x 32 units: more than 512 points are evaluated in blocks.
    model = quick().fit(*sine_data(30))
    X = torch.linspace(-0.5, 1.5, 1500, dtype=torch.float64).unsqueeze(-1).requires_grad_(True)
    pred = model.predict(X)
    for start in (0, 700, 1400):
        piece = model.predict(X.detach()[start : start + 100])
        assert torch.allclose(pred.mean[start : start + 100], piece.mean, atol=1e-12)
        assert torch.allclose(pred.epistemic_var[start : start + 100], piece.epistemic_var, atol=1e-12)
    pred.epistemic_var.sum().backward()
    assert torch.isfinite(X.grad).all() and (X.grad != 0).any()


def test_default_refit_trains_from_scratch():
    # Warm start is opt-in (see DeepEnsemble): a refit runs the full automatic schedule.
    X, Y = sine_data(20)
    model = quick(max_epochs=None, num_passes=4).fit(X, Y)
    first = model.training_report_.steps
    model.fit(*sine_data(30, seed=1))
    assert model.warm_start is False and model.training_report_.steps == first
    warm = quick(max_epochs=None, num_passes=4, warm_start=True).fit(X, Y)
    warm.fit(*sine_data(30, seed=1))
    assert warm.training_report_.steps < first
