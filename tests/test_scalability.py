"""USL fit, latency model and fleet scaling on published and generated data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from capplan.errors import InputDataError
from forecasting.latency_model import fit_latency_model
from forecasting.scalability import (
    UslParameters,
    fit_fleet_scaling,
    fit_usl,
    scaling_efficiency,
    serving_instances_for,
)

# SPEC SDM91 on a Sun SPARCcenter 2000 (16 CPUs), October 1994: simulated
# users against scripts per hour. Gunther uses it in "Guerrilla Capacity
# Planning" (Springer, 2007). The values are rounded as printed in the README
# of the Go library codahale/usl, which reports the fit sigma 0.0277299,
# kappa 0.000104343 and lambda 89.9878 for this table.
SDM91_USERS = [1, 18, 36, 72, 108, 144, 216]
SDM91_THROUGHPUT = [65, 996, 1652, 1853, 1829, 1775, 1702]
SDM91_PUBLISHED = {"sigma": 0.0277299, "kappa": 0.000104343, "lambda": 89.9878}

# Throughput at 1..32 concurrent clients from Baron Schwartz, "Practical
# Scalability Analysis with the Universal Scalability Law", as tabulated in
# the tests of codahale/usl, which match the book's fit within 0.02 %:
# sigma 0.02671591, kappa 7.690945e-4, lambda 995.6486.
SCHWARTZ_THROUGHPUT = [
    955.16, 1878.91, 2688.01, 3548.68, 4315.54, 5130.43, 5931.37, 6531.08, 7219.8, 7867.61, 8278.71,
    8646.7, 9047.84, 9426.55, 9645.37, 9897.24, 10097.6, 10240.5, 10532.39, 10798.52, 11151.43,
    11518.63, 11806.0, 12089.37, 12075.41, 12177.29, 12211.41, 12158.93, 12155.27, 12118.04, 12140.4,
    12074.39,
]
SCHWARTZ_PUBLISHED = {"sigma": 0.02671591, "kappa": 7.690945e-4, "lambda": 995.6486}


def coefficients(fit) -> dict[str, float]:
    return {"sigma": fit.params.sigma, "kappa": fit.params.kappa, "lambda": fit.params.lambda_}


def test_usl_sdm91_matches_published() -> None:
    fit = fit_usl(SDM91_USERS, SDM91_THROUGHPUT)
    for name, published in SDM91_PUBLISHED.items():
        assert coefficients(fit)[name] == pytest.approx(published, rel=0.01), name
    # Peak at sqrt((1 - sigma) / kappa), about 96 users, as the same README reports.
    assert fit.params.peak_concurrency == pytest.approx(96.5, rel=0.01)


def test_usl_schwartz_matches_published() -> None:
    fit = fit_usl(list(range(1, 33)), SCHWARTZ_THROUGHPUT)
    for name, published in SCHWARTZ_PUBLISHED.items():
        assert coefficients(fit)[name] == pytest.approx(published, rel=0.01), name


def test_usl_generated_from_formula_recovered() -> None:
    """Throughput generated exactly from the published SDM91 coefficients is fitted back to them."""
    truth = UslParameters(SDM91_PUBLISHED["sigma"], SDM91_PUBLISHED["kappa"], SDM91_PUBLISHED["lambda"])
    users = np.array([1, 8, 18, 36, 54, 72, 108, 144, 216], dtype=float)
    fit = fit_usl(users, truth.throughput(users))
    for name, published in SDM91_PUBLISHED.items():
        assert coefficients(fit)[name] == pytest.approx(published, rel=1e-4), name
    assert fit.r_squared == pytest.approx(1.0)


def test_usl_intervals_contain_estimate() -> None:
    fit = fit_usl(SDM91_USERS, SDM91_THROUGHPUT)
    for name, value in coefficients(fit).items():
        low, high = fit.intervals[name]
        assert low is not None and high is not None
        assert 0.0 <= low <= value <= high


def test_usl_fewer_than_six_levels_rejected() -> None:
    with pytest.raises(InputDataError, match="at least 6 distinct concurrency levels, got 5"):
        fit_usl([1, 2, 4, 8, 16], [10, 19, 35, 60, 80])


def test_usl_nonpositive_values_rejected() -> None:
    with pytest.raises(InputDataError, match="finite number above 0"):
        fit_usl([1, 2, 3, 4, 5, 6], [10, 20, 0, 40, 50, 60])


def test_usl_coefficients_never_negative() -> None:
    """Superlinear data cannot push sigma or kappa below 0."""
    users = np.arange(1, 9, dtype=float)
    fit = fit_usl(users, 10.0 * users**1.1)
    assert fit.params.sigma >= 0.0
    assert fit.params.kappa >= 0.0


def test_usl_linear_data_no_signal() -> None:
    users = np.arange(1, 9, dtype=float)
    fit = fit_usl(users, 50.0 * users)
    assert not fit.has_signal
    assert "cannot predict the peak" in (fit.signal_note() or "")


def test_usl_worker_pool_flat_top() -> None:
    """A closed pool of 4 workers at 20 ms: linear to 4 users, flat at 200/s after, sigma and kappa near 0 below."""
    users = np.array([1, 2, 3, 4, 6, 8, 12, 16], dtype=float)
    throughput = np.minimum(users, 4.0) * 50.0
    fit = fit_usl(users, throughput)
    assert fit.has_signal
    assert fit.params.peak_throughput == pytest.approx(200.0, rel=0.10)

    below = fit_usl(users[:4].tolist() + [1.5, 2.5], (np.minimum(np.r_[users[:4], 1.5, 2.5], 4.0) * 50.0))
    assert below.params.sigma < 0.01
    assert below.params.kappa < 0.01
    assert not below.has_signal


def test_latency_model_md1_capacity_exact() -> None:
    """M/D/1 with 5 ms service and 1 ms of network, observed up to 60 % load: the capacity is 200 rps."""
    rates = np.linspace(20, 120, 6)
    rho = rates / 200.0
    mean_ms = 1.0 + 5.0 + 5.0 * rho / (2 * (1 - rho))
    model = fit_latency_model(rates, {"mean": mean_ms})
    assert model.has_signal
    assert model.capacity_rps == pytest.approx(200.0, rel=0.01)
    assert model.predict_ms("mean", 180.0) == pytest.approx(1.0 + 5.0 + 5.0 * 0.9 / 0.2, rel=0.01)
    assert model.predict_ms("mean", 200.0) is None


def test_latency_model_flat_no_signal() -> None:
    rates = np.linspace(20, 120, 6)
    model = fit_latency_model(rates, {"mean": np.full(6, 2.0)})
    assert not model.has_signal
    assert "cannot predict the capacity" in (model.signal_note() or "")


def test_latency_model_rate_for_latency() -> None:
    rates = np.linspace(20, 120, 6)
    rho = rates / 200.0
    p95 = 2.0 + 6.0 * rho / (1 - rho)
    model = fit_latency_model(rates, {"mean": 1.0 + 2.5 * rho / (1 - rho) + 5.0, "p95": p95})
    rate = model.rate_for_latency("p95", 20.0)
    assert rate is not None
    assert model.predict_ms("p95", rate) == pytest.approx(20.0, rel=1e-6)
    assert model.rate_for_latency("p95", 1.0) == 0.0


def test_fleet_scaling_efficiency_fit() -> None:
    truth = UslParameters(sigma=0.05, kappa=0.0, lambda_=100.0)
    sizes = np.array([1, 2, 4, 8], dtype=float)
    fit = fit_fleet_scaling(sizes, truth.throughput(sizes))
    assert scaling_efficiency(fit.params, 4) == pytest.approx(1 / 1.15, rel=1e-3)
    # 500 rps at 80 rps per instance: linear needs 7, with 5 % contention 9 (9 x 80 / 1.4 = 514).
    assert serving_instances_for(500.0, 80.0, None) == (7, True)
    assert serving_instances_for(500.0, 80.0, fit.params) == (9, True)


def test_fleet_scaling_unreachable_demand() -> None:
    params = UslParameters(sigma=0.1, kappa=0.01, lambda_=100.0)
    count, reachable = serving_instances_for(10_000.0, 100.0, params)
    assert not reachable
    assert count == math.floor(params.peak_concurrency) or count == math.floor(params.peak_concurrency) + 1
