"""DeepEnsemble: accuracy, uncertainty decomposition, gradients, state, batching.

Every test trains real networks. Torch runs single-threaded here: the networks
are small, and on a shared 2-core machine two OpenMP threads per process slow
these kernels down several-fold.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import qmc
from torch import nn

from surrogate_al.errors import ConfigError, DataError, NotFittedError, ShapeError
from surrogate_al.surrogates.mlp_training import plan_training
from surrogate_al.surrogates.base import Prediction
from surrogate_al.surrogates.ensemble import DeepEnsemble



BRANIN_BOUNDS = np.array([[-5.0, 0.0], [10.0, 15.0]])


def branin(X: np.ndarray) -> np.ndarray:
    x1, x2 = X[:, 0], X[:, 1]
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * np.cos(x1) + 10


def sobol(n: int, bounds: np.ndarray, seed: int = 0) -> np.ndarray:
    unit = qmc.Sobol(bounds.shape[1], scramble=True, rng=np.random.default_rng(seed)).random_base2(
        math.ceil(math.log2(n))
    )[:n]
    return bounds[0] + unit * (bounds[1] - bounds[0])


def nrmse(pred: torch.Tensor, y: np.ndarray) -> float:
    mu = pred.detach().cpu().numpy().reshape(y.shape)
    return float(np.sqrt(np.mean((mu - y) ** 2)) / y.std())


def quick(**kwargs) -> DeepEnsemble:
    """A cheap ensemble for tests about plumbing rather than accuracy."""
    settings = {"num_members": 4, "hidden_layers": (16, 16), "max_epochs": 150, "device": "cpu", "seed": 0}
    settings.update(kwargs)
    return DeepEnsemble(**settings)


def sine_data(n: int, m: int = 1, seed: int = 0, lo: float = 0.0, hi: float = 1.0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(lo, hi, size=(n, 1))
    Y = np.concatenate([np.sin(6 * X + k) for k in range(m)], axis=1)
    return X, Y


# -- accuracy -------------------------------------------------------------------------------
def test_branin_200_sobol_points_reaches_nrmse_below_0_1_with_defaults():
    X = sobol(200, BRANIN_BOUNDS)
    X_test = BRANIN_BOUNDS[0] + np.random.default_rng(1).random((2000, 2)) * (BRANIN_BOUNDS[1] - BRANIN_BOUNDS[0])
    model = DeepEnsemble(bounds=BRANIN_BOUNDS, device="cpu", seed=0).fit(X, branin(X))
    assert nrmse(model.predict(X_test).mean, branin(X_test)) < 0.1


# -- uncertainty ----------------------------------------------------------------------------
def test_epistemic_variance_is_far_larger_away_from_the_data():
    X, Y = sine_data(30, lo=0.0, hi=0.4)
    model = DeepEnsemble(bounds=[[0.0], [1.0]], device="cpu", seed=0).fit(X, Y)
    epi = model.predict(torch.tensor([[0.2], [0.9]], dtype=torch.float64)).epistemic_var.detach()
    assert epi[1, 0] >= 10 * epi[0, 0]


def test_heteroscedastic_noise_is_learned_as_aleatoric_not_epistemic():
    rng = np.random.default_rng(3)
    X = rng.uniform(0, 1, size=(2000, 1))

    def noise_std(x: np.ndarray) -> np.ndarray:
        return 0.05 + 0.45 * x

    Y = np.sin(6 * X) + noise_std(X) * rng.standard_normal(X.shape)
    model = DeepEnsemble(bounds=[[0.0], [1.0]], device="cpu", seed=0).fit(X, Y)
    # n >= 1000: every member held out its own slice for early stopping.
    assert len(model.training_report_.val_loss) == model.num_members

    x_test = np.linspace(0.05, 0.95, 10)[:, None]
    pred = model.predict(x_test).detach()
    aleatoric_std = pred.aleatoric_var.sqrt().numpy()
    relative_error = np.abs(aleatoric_std - noise_std(x_test)) / noise_std(x_test)
    assert relative_error.max() < 0.3, relative_error
    assert (pred.epistemic_var < 0.2 * pred.aleatoric_var).all()


def test_known_noise_is_used_as_aleatoric_variance():
    X, Y = sine_data(120, seed=4)
    Yvar = np.full_like(Y, 0.01)
    Y = Y + 0.1 * np.random.default_rng(5).standard_normal(Y.shape)
    model = quick(bounds=[[0.0], [1.0]], max_epochs=400).fit(X, Y, Yvar)
    assert model.known_noise_
    aleatoric = model.predict(np.linspace(0.1, 0.9, 9)[:, None]).aleatoric_var.detach()
    assert torch.allclose(aleatoric, torch.full_like(aleatoric, 0.01), rtol=0.3)


def test_epistemic_variance_has_finite_nonzero_gradient_in_x():
    X, Y = sine_data(25, lo=0.0, hi=0.5)
    X2 = np.hstack([X, np.random.default_rng(2).uniform(0, 1, X.shape)])
    model = quick(bounds=[[0.0, 0.0], [1.0, 1.0]]).fit(X2, Y)
    Xq = torch.tensor([[0.7, 0.3], [0.9, 0.8], [0.2, 0.5]], dtype=torch.float64, requires_grad=True)
    model.predict(Xq).epistemic_var.sum().backward()
    assert Xq.grad is not None
    assert torch.isfinite(Xq.grad).all()
    assert (Xq.grad.abs().sum(dim=1) > 0).all()
    # Prediction must not leave gradients on the weights (acquisition backpropagates often).
    assert all(p.grad is None for p in model.net_.parameters())


def test_joint_covariance_matches_epistemic_variance_and_is_psd():
    X, Y = sine_data(40, m=2)
    model = quick().fit(X, Y)
    Xq = torch.linspace(0, 1, 7, dtype=torch.float64).unsqueeze(-1)
    cov = model.joint_epistemic_covariance(Xq)
    assert cov.shape == (2, 7, 7)
    assert torch.allclose(cov, cov.transpose(-1, -2))
    assert torch.linalg.eigvalsh(cov).min() > -1e-10
    epi = model.predict(Xq).epistemic_var
    standardised = epi / model.standardizer_.std_**2
    assert torch.allclose(torch.diagonal(cov, dim1=-2, dim2=-1), standardised.T)


# -- batching -------------------------------------------------------------------------------
def test_vectorised_forward_equals_each_member_as_plain_sequential():
    X, Y = sine_data(50, m=2)
    model = quick(hidden_layers=(8, 12)).fit(X, Y)
    state = model.state_dict()
    Xq = torch.rand(11, 1, dtype=torch.float64)
    U = model.scaler_.transform(Xq)
    batched = model.net_(U)
    assert batched.shape == (4, 11, 4)
    member_means = []
    for i in range(model.num_members):
        # Member i rebuilt by hand from the saved weight slices.
        layers: list[nn.Module] = []
        for layer, (w, b) in enumerate(zip(state["weights"], state["biases"])):
            lin = nn.Linear(w.shape[1], w.shape[2], dtype=torch.float64)
            lin.weight.data.copy_(w[i].T)
            lin.bias.data.copy_(b[i, 0])
            layers += [lin] if layer == len(state["weights"]) - 1 else [lin, nn.SiLU()]
        out = nn.Sequential(*layers)(U)
        assert torch.allclose(batched[i], out, atol=1e-6, rtol=0)
        assert torch.allclose(model.member(i)(U), out, atol=1e-6, rtol=0)
        member_means.append(out[:, :2])
    expected_mean = model.standardizer_.untransform(torch.stack(member_means).mean(dim=0))
    assert torch.allclose(model.predict(Xq).mean, expected_mean, atol=1e-6)


# -- state, shapes, dtypes --------------------------------------------------------------------
def test_state_round_trip_gives_identical_predictions_in_a_new_instance():
    X, Y = sine_data(40, m=2)
    args = {"num_members": 3, "hidden_layers": (16,), "max_epochs": 60, "seed": 7, "device": "cpu"}
    model = DeepEnsemble(**args).fit(X, Y)
    state = model.state_dict()
    for value in state["weights"] + state["biases"]:
        assert isinstance(value, torch.Tensor) and value.device.type == "cpu"
    clone = DeepEnsemble(**args).load_state_dict(state)
    Xq = np.linspace(-0.2, 1.2, 13)[:, None]
    a, b = model.predict(Xq), clone.predict(Xq)
    for field in ("mean", "epistemic_var", "aleatoric_var"):
        assert torch.equal(getattr(a, field), getattr(b, field))
    assert torch.equal(model.joint_epistemic_covariance(Xq), clone.joint_epistemic_covariance(Xq))
    assert clone.num_outputs == 2


def test_load_state_into_a_different_architecture_is_refused():
    model = quick().fit(*sine_data(20))
    with pytest.raises(ConfigError, match="hidden_layers"):
        quick(hidden_layers=(32, 32)).load_state_dict(model.state_dict())


def test_multi_output_shapes():
    X, Y = sine_data(30, m=2)
    model = quick().fit(X, Y)
    pred = model.predict(np.random.default_rng(0).random((5, 1)))
    assert isinstance(pred, Prediction)
    for t in (pred.mean, pred.epistemic_var, pred.aleatoric_var):
        assert t.shape == (5, 2)
    assert (pred.epistemic_var > 0).all() and (pred.aleatoric_var > 0).all()
    assert model.num_outputs == 2
    # A single point of shape d is read as 1 x d.
    assert model.predict(torch.tensor([0.5], dtype=torch.float64)).mean.shape == (1, 2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_both_float_dtypes_fit_and_predict_in_that_dtype(dtype):
    X, Y = sine_data(60, seed=1)
    model = quick(dtype=dtype, max_epochs=600).fit(X, Y)
    assert all(p.dtype == dtype for p in model.net_.parameters())
    X_test, Y_test = sine_data(200, seed=2)
    pred = model.predict(X_test)
    assert pred.mean.dtype == dtype
    assert nrmse(pred.mean, Y_test) < 0.1


def test_training_is_reproducible_for_a_fixed_seed_and_varies_with_it():
    X, Y = sine_data(30)
    Xq = np.linspace(0, 1, 9)[:, None]
    a = quick(seed=3, bootstrap=True).fit(X, Y).predict(Xq).mean
    b = quick(seed=3, bootstrap=True).fit(X, Y).predict(Xq).mean
    c = quick(seed=4, bootstrap=True).fit(X, Y).predict(Xq).mean
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


@pytest.mark.parametrize(
    ("n", "batch", "epochs", "held_out"),
    [(10, 10, 2000, 0), (200, 100, 1000, 0), (5000, 125, 56, 500), (100_000, 128, 10, 10_000)],
)
def test_automatic_schedule_follows_the_data_size(n, batch, epochs, held_out):
    plan = plan_training(n, max_epochs=None, batch_size=None, warm=False)
    assert (plan.batch_size, plan.epochs, plan.num_validation) == (batch, epochs, held_out)
    warm = plan_training(n, max_epochs=None, batch_size=None, warm=True)
    assert warm.epochs < plan.epochs or warm.epochs == 10


# -- warm start -----------------------------------------------------------------------------
def test_warm_start_continues_from_the_previous_networks():
    # learning_rate so small that one epoch changes nothing visible: what the refit
    # predicts is what it started from.
    X1, Y1 = sine_data(30, seed=0, lo=0.0, hi=0.6)
    X2, Y2 = sine_data(50, seed=1, lo=-0.5, hi=1.0)
    Y2 = 3.0 * Y2 + 2.0  # new output scaling as well as a new input box
    Xq = np.linspace(0.0, 0.6, 7)[:, None]
    warm = quick(max_epochs=1, learning_rate=1e-9, warm_start=True).fit(X1, Y1)
    before = warm.predict(Xq).detach()
    warm.fit(X2, Y2)
    after = warm.predict(Xq).detach()
    assert torch.allclose(after.mean, before.mean, atol=1e-5)
    assert torch.allclose(after.epistemic_var, before.epistemic_var, rtol=1e-4)
    cold = quick(max_epochs=1, learning_rate=1e-9, warm_start=False).fit(X1, Y1)
    cold.fit(X2, Y2)
    assert not torch.allclose(cold.predict(Xq).mean, before.mean, atol=1e-2)


def test_warm_refit_runs_fewer_steps_and_stays_accurate():
    X1, Y1 = sine_data(40, seed=0)
    X2, Y2 = sine_data(60, seed=1)
    X_test, Y_test = sine_data(300, seed=9)
    model = DeepEnsemble(num_members=5, hidden_layers=(32, 32), device="cpu", warm_start=True).fit(X1, Y1)
    cold_steps = model.training_report_.steps
    model.fit(np.vstack([X1, X2]), np.vstack([Y1, Y2]))
    assert model.training_report_.steps < 0.5 * cold_steps
    assert nrmse(model.predict(X_test).mean, Y_test) < 0.05


def test_default_refit_trains_from_scratch_with_the_full_budget():
    # Warm start is opt-in: warm refits ended 1.6-3.5x less accurate along a campaign (benchmarks/warm_start.py).
    X1, Y1 = sine_data(20, seed=0)
    X2, Y2 = sine_data(30, seed=1)
    model = quick(max_epochs=None).fit(X1, Y1)
    first = model.training_report_.steps
    model.fit(np.vstack([X1, X2]), np.vstack([Y1, Y2]))
    assert model.warm_start is False
    assert model.training_report_.steps == first == plan_training(50, None, None, warm=False).epochs


# -- errors ---------------------------------------------------------------------------------
def test_nan_in_y_is_rejected_with_the_position():
    X, Y = sine_data(10)
    Y[3, 0] = np.nan
    with pytest.raises(DataError, match=r"Y\[3, 0\]"):
        quick().fit(X, Y)


def test_wrong_input_width_is_rejected():
    with pytest.raises(ShapeError, match="expects d = 2"):
        quick(bounds=[[0.0, 0.0], [1.0, 1.0]]).fit(*sine_data(10))
    model = quick(max_epochs=5).fit(*sine_data(10))
    with pytest.raises(ShapeError, match="d = 1"):
        model.predict(np.zeros((3, 2)))


def test_use_before_fit_is_rejected():
    with pytest.raises(NotFittedError, match="fit"):
        quick().predict(np.zeros((2, 1)))
    with pytest.raises(NotFittedError):
        quick().state_dict()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"num_members": 1}, "num_members"),
        ({"hidden_layers": ()}, "hidden_layers"),
        ({"hidden_layers": (16, 0)}, "hidden_layers"),
        ({"activation": "sigmoidish"}, "activation"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"weight_decay": -1.0}, "weight_decay"),
        ({"max_epochs": 0}, "max_epochs"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"dtype": torch.float16}, "dtype"),
        ({"bounds": [[1.0], [0.0]]}, "bounds"),
        ({"bounds": [0.0, 1.0]}, "bounds"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_constructor_arguments_name_the_field(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        DeepEnsemble(**kwargs)
