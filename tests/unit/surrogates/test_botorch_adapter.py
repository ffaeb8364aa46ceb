"""SurrogateModel: BoTorch acquisitions on the GP and the deep ensemble; moments; conditioning."""

from __future__ import annotations


import pytest
import torch
from botorch.acquisition import qUpperConfidenceBound
from botorch.acquisition.active_learning import qNegIntegratedPosteriorVariance
from botorch.acquisition.objective import ScalarizedPosteriorTransform
from botorch.optim import optimize_acqf
from botorch.sampling import SobolQMCNormalSampler
from botorch.utils.sampling import draw_sobol_samples
from gpytorch.distributions import MultitaskMultivariateNormal, MultivariateNormal

from surrogate_al.errors import ConfigError, NotFittedError, ShapeError
from surrogate_al.surrogates import DeepEnsemble, GaussianProcess, SurrogateModel

DT = torch.float64
BOUNDS = torch.tensor([[0.0, -1.0], [2.0, 1.0]], dtype=DT)



def _inside(n: int, seed: int, batch: tuple[int, ...] = ()) -> torch.Tensor:
    """``batch x n x 2`` uniform points in BOUNDS."""
    gen = torch.Generator().manual_seed(seed)
    return BOUNDS[0] + torch.rand(*batch, n, 2, generator=gen, dtype=DT) * (BOUNDS[1] - BOUNDS[0])


def _f(X: torch.Tensor) -> torch.Tensor:
    """``n x 2`` -> ``n x 2``: two smooth outputs."""
    return torch.cat([torch.sin(3 * X[:, :1]) + X[:, 1:] ** 2, X[:, :1] * X[:, 1:]], dim=-1)


def _ensemble(seed: int) -> DeepEnsemble:
    return DeepEnsemble(num_members=5, max_epochs=60, hidden_layers=(32, 32), bounds=BOUNDS, seed=seed, device="cpu")


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, torch.Tensor]:
    X = _inside(30, seed=0)
    return X, _f(X)


@pytest.fixture(scope="module")
def gp(data: tuple[torch.Tensor, torch.Tensor]) -> GaussianProcess:
    X, Y = data
    return GaussianProcess(device="cpu", bounds=BOUNDS).fit(X, Y[:, :1])


@pytest.fixture(scope="module")
def gp2(data: tuple[torch.Tensor, torch.Tensor]) -> GaussianProcess:
    X, Y = data
    return GaussianProcess(device="cpu", bounds=BOUNDS).fit(X, Y)


@pytest.fixture(scope="module")
def ensemble(data: tuple[torch.Tensor, torch.Tensor]) -> DeepEnsemble:
    X, Y = data
    return _ensemble(seed=0).fit(X, Y[:, :1])


@pytest.fixture(scope="module")
def ensemble2(data: tuple[torch.Tensor, torch.Tensor]) -> DeepEnsemble:
    X, Y = data
    return _ensemble(seed=1).fit(X, Y)


def _optimize(acqf: torch.nn.Module, q: int) -> tuple[torch.Tensor, torch.Tensor]:
    return optimize_acqf(acqf, bounds=BOUNDS, q=q, num_restarts=2, raw_samples=16, options={"maxiter": 15})


@pytest.mark.parametrize("which", ["gp", "ensemble"])
def test_qnipv_and_qucb_optimise_on_adapted_surrogates(which: str, request: pytest.FixtureRequest) -> None:
    surrogate = request.getfixturevalue(which)
    model = SurrogateModel(surrogate)
    assert model.is_delegating == (which == "gp")
    mc_points = draw_sobol_samples(BOUNDS, n=32, q=1, seed=5).squeeze(-2)
    for acqf in (qNegIntegratedPosteriorVariance(model, mc_points=mc_points), qUpperConfidenceBound(model, beta=4.0)):
        candidates, value = _optimize(acqf, q=2)
        assert candidates.shape == (2, 2)
        assert torch.isfinite(candidates).all() and torch.isfinite(value).all()
        assert ((candidates >= BOUNDS[0]) & (candidates <= BOUNDS[1])).all()
    # Querying reduces integrated variance: the value is the negative mean posterior variance.
    nipv = qNegIntegratedPosteriorVariance(model, mc_points=mc_points)
    prior_ipv = model.posterior(mc_points).variance.mean()
    assert -nipv(candidates.unsqueeze(0)).item() < prior_ipv.item()


def test_ensemble_posterior_matches_epistemic_moments(ensemble2: DeepEnsemble) -> None:
    model = SurrogateModel(ensemble2)
    X = _inside(4, seed=2, batch=(3,))  # 3 x 4 x 2
    post = model.posterior(X)
    assert isinstance(post.distribution, MultitaskMultivariateNormal)
    pred = ensemble2.predict(X.reshape(-1, 2))
    torch.testing.assert_close(post.mean, pred.mean.reshape(3, 4, 2))
    # Equal up to the jitter (1e-6 of the mean variance) put on the diagonal.
    level = pred.epistemic_var.mean().item()
    torch.testing.assert_close(post.variance, pred.epistemic_var.reshape(3, 4, 2), rtol=1e-5, atol=1e-5 * level)
    for b in range(3):
        joint = ensemble2.joint_epistemic_covariance(X[b])  # m x q x q, standardised
        scale = pred.epistemic_var.reshape(3, 4, 2)[b] / torch.diagonal(joint, dim1=-2, dim2=-1).T  # q x m
        # One scale per output (the output variance), the same at every point.
        torch.testing.assert_close(scale, scale[:1].expand_as(scale), rtol=1e-6, atol=0.0)
        for j in range(2):
            block = post.distribution.covariance_matrix[b].reshape(2, 4, 2, 4)[j, :, j, :]  # non-interleaved
            torch.testing.assert_close(block, joint[j] * scale[0, j], rtol=1e-4, atol=1e-5 * level)


def test_gaussian_path_is_differentiable_in_batched_inputs(ensemble: DeepEnsemble) -> None:
    model = SurrogateModel(ensemble)
    X = _inside(3, seed=3, batch=(5,)).requires_grad_(True)  # 5 x 3 x 2
    post = model.posterior(X)
    assert isinstance(post.distribution, MultivariateNormal)
    assert post.mean.shape == (5, 3, 1)
    torch.linalg.cholesky(post.distribution.covariance_matrix)  # PSD after jitter
    (post.variance.sum() + post.mean.sum()).backward()
    assert torch.isfinite(X.grad).all() and X.grad.abs().sum() > 0


def test_observation_noise_adds_aleatoric_variance(ensemble: DeepEnsemble, gp: GaussianProcess) -> None:
    X = _inside(3, seed=4)
    for surrogate in (ensemble, gp):
        model = SurrogateModel(surrogate)
        pred = surrogate.predict(X)
        latent, noisy = model.posterior(X), model.posterior(X, observation_noise=True)
        torch.testing.assert_close(noisy.variance - latent.variance, pred.aleatoric_var, rtol=1e-6, atol=1e-10)


def test_gaussian_conditioning_equals_exact_gp_update(gp2: GaussianProcess) -> None:
    """The Gaussian-moment path applied to a GP must reproduce BoTorch's exact GP update."""
    exact, moments = SurrogateModel(gp2), SurrogateModel(gp2, use_botorch_model=False)
    X_obs, X_test = _inside(3, seed=6, batch=(4,)), _inside(6, seed=7)
    Y_obs = torch.randn(4, 3, 2, generator=torch.Generator().manual_seed(8), dtype=DT)
    a = exact.condition_on_observations(X_obs, Y_obs).posterior(X_test)
    b = moments.condition_on_observations(X_obs, Y_obs).posterior(X_test)
    assert a.mean.shape == b.mean.shape == (4, 6, 2)
    torch.testing.assert_close(b.mean, a.mean, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(b.variance, a.variance, rtol=1e-4, atol=1e-9)
    # Without conditioning the two paths give the same joint covariance.
    torch.testing.assert_close(
        moments.posterior(X_test).distribution.covariance_matrix,
        exact.posterior(X_test).distribution.covariance_matrix,
        rtol=1e-4,
        atol=1e-9,
    )


def test_fantasize_shapes_and_variance_reduction(ensemble: DeepEnsemble) -> None:
    model = SurrogateModel(ensemble)
    X_f = _inside(2, seed=9, batch=(3,))  # 3 x 2 x 2
    fantasy = model.fantasize(X_f, SobolQMCNormalSampler(torch.Size([4])))
    assert fantasy.batch_shape == torch.Size([4, 3])
    post = fantasy.posterior(X_f)
    assert post.mean.shape == (4, 3, 2, 1)
    before = model.posterior(X_f).variance
    # Observing a point (with noise) shrinks the epistemic variance there.
    assert (post.variance < before.unsqueeze(0)).all()
    # A second conditioning stacks on the first.
    again = fantasy.condition_on_observations(X_f, post.mean)
    assert (again.posterior(X_f).variance < post.variance).all()


def test_multi_output_nipv_with_scalarisation(ensemble2: DeepEnsemble, gp2: GaussianProcess) -> None:
    weights = torch.tensor([0.5, 0.5], dtype=DT)
    mc_points = draw_sobol_samples(BOUNDS, n=16, q=1, seed=3).squeeze(-2)
    X = _inside(2, seed=10, batch=(5,))
    for surrogate in (ensemble2, gp2):
        acqf = qNegIntegratedPosteriorVariance(
            SurrogateModel(surrogate), mc_points=mc_points, posterior_transform=ScalarizedPosteriorTransform(weights)
        )
        values = acqf(X)
        assert values.shape == (5,)
        assert torch.isfinite(values).all() and (values < 0).all()


def test_bad_use_is_rejected(data: tuple[torch.Tensor, torch.Tensor], ensemble: DeepEnsemble) -> None:
    with pytest.raises(NotFittedError):
        SurrogateModel(GaussianProcess(device="cpu"))
    with pytest.raises(ConfigError, match="jitter = -1"):
        SurrogateModel(ensemble, jitter=-1.0)
    model = SurrogateModel(ensemble)
    with pytest.raises(ShapeError, match=r"Y has shape \(3, 2\); expected batch x 3 x 1"):
        model.condition_on_observations(_inside(3, seed=1), torch.zeros(3, 2, dtype=DT))


@pytest.mark.parametrize("use_botorch_model", [True, False])
def test_qnipv_gradient_matches_finite_differences_on_gp(gp: GaussianProcess, use_botorch_model: bool) -> None:
    """BoTorch's own GP fantasies detach GPyTorch's caches and get this gradient wrong; ours must not."""
    model = SurrogateModel(gp, use_botorch_model=use_botorch_model)
    acqf = qNegIntegratedPosteriorVariance(model, mc_points=draw_sobol_samples(BOUNDS, n=32, q=1, seed=5).squeeze(-2))
    X = torch.tensor([[[0.6, 0.2], [1.6, -0.8]]], dtype=DT, requires_grad=True)
    (grad,) = torch.autograd.grad(acqf(X).sum(), X)
    eps = 1e-6
    numeric = torch.zeros_like(grad)
    with torch.no_grad():
        for i in range(2):
            for j in range(2):
                step = torch.zeros_like(X)
                step[0, i, j] = eps
                numeric[0, i, j] = (acqf(X + step) - acqf(X - step)).item() / (2 * eps)
    assert grad.abs().max() > 0
    torch.testing.assert_close(grad, numeric, rtol=1e-3, atol=1e-3 * numeric.abs().max().item())


def test_chunking_of_covariance_calls_does_not_change_results(ensemble2: DeepEnsemble) -> None:
    """Few large joint-covariance calls or many small ones: the same posterior."""
    X_obs, X_test = _inside(2, seed=11, batch=(6,)), _inside(5, seed=12, batch=(1,))
    Y_obs = torch.zeros(6, 2, 2, dtype=DT)
    posts = []
    for block in (1, 3, 10_000):
        model = SurrogateModel(ensemble2, max_block_points=block).condition_on_observations(X_obs, Y_obs)
        posts.append(model.posterior(X_test))
    assert posts[0].mean.shape == (6, 5, 2)
    for other in posts[1:]:
        torch.testing.assert_close(other.mean, posts[0].mean)
        torch.testing.assert_close(other.distribution.covariance_matrix, posts[0].distribution.covariance_matrix)


def test_qnipv_evaluations_without_backward_free_their_fantasy_models(gp: GaussianProcess) -> None:
    """Fantasy caches that carry autograd history must not keep fantasy models alive (a GPyTorch cycle)."""
    import gc

    from gpytorch.models.exact_prediction_strategies import DefaultPredictionStrategy

    acqf = qNegIntegratedPosteriorVariance(SurrogateModel(gp), mc_points=_inside(64, seed=5))

    def live_strategies() -> int:
        gc.collect()
        return sum(isinstance(o, DefaultPredictionStrategy) for o in gc.get_objects())

    X = _inside(3, seed=6, batch=(4,)).requires_grad_(True)
    acqf(X).sum().backward()  # one full pass first: whatever is built once is built now
    before = live_strategies()
    for _ in range(10):
        value = acqf(X)  # with autograd history, no backward: as in optimize_acqf's line searches
    del value
    assert live_strategies() - before < 3
    assert gp.model_.prediction_strategy is not None  # the surrogate's own caches are kept
