"""VarianceCalibrator and the calibration report."""

from __future__ import annotations

import math

import pytest
import torch

from surrogate_al.errors import ConfigError, DataError, NotFittedError, ShapeError
from surrogate_al.surrogates import (
    CalibrationReport,
    GaussianProcess,
    Prediction,
    VarianceCalibrator,
    calibration_report,
    prediction_report,
)

DT = torch.float64
NOISE_SD = 0.2



def _noisy(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    X = torch.rand(n, 1, generator=gen, dtype=DT)
    return X, torch.sin(6 * X) + NOISE_SD * torch.randn(n, 1, generator=gen, dtype=DT)


@pytest.fixture(scope="module")
def noisy_gp() -> GaussianProcess:
    return GaussianProcess(device="cpu", bounds=torch.tensor([[0.0], [1.0]], dtype=DT)).fit(*_noisy(200, seed=0))


def _overconfident(gp: GaussianProcess, X: torch.Tensor) -> Prediction:
    with torch.no_grad():
        pred = gp.predict(X)
    return Prediction(pred.mean, 0.1 * pred.epistemic_var, 0.1 * pred.aleatoric_var)


def test_calibration_repairs_overconfident_variances(noisy_gp: GaussianProcess) -> None:
    X_cal, Y_cal = _noisy(1000, seed=1)
    X_test, Y_test = _noisy(2000, seed=2)
    raw = _overconfident(noisy_gp, X_test)
    before = prediction_report(raw, Y_test)
    assert before.coverage[0.9][0] < 0.6  # the 0.1 scaling makes intervals ~3x too narrow

    calibrator = VarianceCalibrator().fit(_overconfident(noisy_gp, X_cal), Y_cal)
    assert 7.0 < calibrator.scale_[0].item() < 14.0  # undoes the 0.1 scaling
    after = prediction_report(calibrator.apply(raw), Y_test)
    assert abs(after.coverage[0.9][0] - 0.9) <= 0.05
    assert after.nll[0] < before.nll[0]
    assert after.rmse == before.rmse  # means untouched


def test_apply_scales_both_parts_and_state_round_trips() -> None:
    pred = Prediction(
        mean=torch.zeros(3, 2, dtype=DT),
        epistemic_var=torch.ones(3, 2, dtype=DT),
        aleatoric_var=torch.full((3, 2), 2.0, dtype=DT),
    )
    # Residuals^2 / total var: output 0 -> mean(9, 36, 81) / 3 = 14; output 1 -> 9 / 3 = 3.
    Y = torch.tensor([[3.0, 3.0], [6.0, -3.0], [9.0, 3.0]], dtype=DT)
    cal = VarianceCalibrator().fit(pred, Y)
    torch.testing.assert_close(cal.scale_, torch.tensor([14.0, 3.0], dtype=DT))
    out = cal.apply(pred)
    torch.testing.assert_close(out.epistemic_var[0], torch.tensor([14.0, 3.0], dtype=DT))
    torch.testing.assert_close(out.aleatoric_var / out.epistemic_var, pred.aleatoric_var / pred.epistemic_var)
    torch.testing.assert_close(out.mean, pred.mean)
    loaded = VarianceCalibrator().load_state_dict(cal.state_dict())
    torch.testing.assert_close(loaded.apply(pred).total_var, out.total_var)


def test_report_numbers_on_a_hand_made_case() -> None:
    # Unit total variance (0.5 + 0.5), zero mean; z-scores are the observations themselves.
    y0 = [0.1, -0.5, 1.0, 2.0]
    y1 = [0.0, 0.0, 0.0, 4.0]
    Y = torch.tensor([y0, y1], dtype=DT).T
    pred = Prediction(torch.zeros(4, 2, dtype=DT), torch.full((4, 2), 0.5, dtype=DT), torch.full((4, 2), 0.5, dtype=DT))
    report = prediction_report(pred, Y)
    assert isinstance(report, CalibrationReport) and report.n == 4
    # |z| <= 0.674 (50%): {0.1, 0.5}; <= 1.645 (90%): + 1.0; <= 1.960 (95%): 2.0 is outside.
    assert report.coverage == {0.5: (0.5, 0.75), 0.9: (0.75, 0.75), 0.95: (0.75, 0.75)}
    half_log_2pi = 0.5 * math.log(2 * math.pi)
    assert report.nll[0] == pytest.approx(half_log_2pi + (0.01 + 0.25 + 1.0 + 4.0) / 8)
    assert report.nll[1] == pytest.approx(half_log_2pi + 16.0 / 8)
    assert report.rmse[0] == pytest.approx(math.sqrt(5.26 / 4))
    assert report.rmse[1] == pytest.approx(2.0)
    std0 = torch.tensor(y0, dtype=DT).std(unbiased=False).item()
    assert report.nrmse[0] == pytest.approx(math.sqrt(5.26 / 4) / std0)
    assert report.nrmse[1] == pytest.approx(2.0 / math.sqrt(3.0))  # population std of (0,0,0,4) is sqrt(3)
    with pytest.raises(AttributeError):
        report.n = 5  # frozen


def test_calibration_report_on_a_real_surrogate(noisy_gp: GaussianProcess) -> None:
    X_test, Y_test = _noisy(1000, seed=3)
    report = calibration_report(noisy_gp, X_test, Y_test)
    assert set(report.coverage) == {0.5, 0.9, 0.95}
    assert report.coverage == prediction_report(noisy_gp.predict(X_test), Y_test).coverage
    # With 200 points the learned noise is close to the truth: roughly calibrated.
    assert abs(report.coverage[0.9][0] - 0.9) < 0.06
    assert report.coverage[0.5][0] <= report.coverage[0.9][0] <= report.coverage[0.95][0]
    assert report.rmse[0] == pytest.approx(NOISE_SD, rel=0.15)
    assert report.nrmse[0] == pytest.approx(report.rmse[0] / Y_test.std(unbiased=False).item())


def test_bad_inputs_are_rejected() -> None:
    pred = Prediction(torch.zeros(3, 1, dtype=DT), torch.ones(3, 1, dtype=DT), torch.ones(3, 1, dtype=DT))
    with pytest.raises(ShapeError, match=r"Y has shape \(3, 2\); expected the prediction's shape \(3, 1\)"):
        VarianceCalibrator().fit(pred, torch.zeros(3, 2, dtype=DT))
    with pytest.raises(DataError, match="NaN"):
        VarianceCalibrator().fit(pred, torch.tensor([0.0, float("nan"), 1.0], dtype=DT))
    with pytest.raises(NotFittedError):
        VarianceCalibrator().apply(pred)
    with pytest.raises(ConfigError, match="level = 1.5"):
        prediction_report(pred, torch.zeros(3, dtype=DT), levels=(0.5, 1.5))
    cal = VarianceCalibrator().fit(pred, torch.ones(3, dtype=DT))
    two = Prediction(torch.zeros(3, 2, dtype=DT), torch.ones(3, 2, dtype=DT), torch.ones(3, 2, dtype=DT))
    with pytest.raises(ShapeError, match="2 outputs; the calibrator was fitted on 1"):
        cal.apply(two)
