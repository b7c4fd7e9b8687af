"""BG/NBD model (domain.md §4): the paper's CDNOW results, time-unit invariance, p_alive and the
conditional expectation against independent derivations, numerical stability, input checks."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

from crm import bgnbd
from crm.bgnbd import BgNbdParams

CDNOW_SAMPLE = Path(__file__).resolve().parents[1] / "data" / "cdnow_sample.txt"
CALIBRATION_END = pd.Timestamp("1997-09-30")  # 39 weeks after 1997-01-01 (273 days)
DAYS_PER_WEEK = 7

# Fader, Hardie & Lee (2005), CDNOW 1/10 sample, 39-week calibration, time in weeks.
PAPER = BgNbdParams(r=0.243, alpha=4.414, a=0.793, b=2.426)
PAPER_LOG_LIKELIHOOD = -9582.4
PARAM_TOLERANCE = 0.001  # the paper prints three decimals
LOG_LIKELIHOOD_TOLERANCE = 0.1  # ... and one decimal for the log-likelihood


def cdnow_calibration_days() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Calibration summaries in days, built as the paper did.

    Transactions up to 1997-09-30, same-day purchases merged; x = repeat purchase dates,
    t_x = last - first purchase, T = end of calibration - first purchase.
    """
    transactions = pd.read_csv(
        CDNOW_SAMPLE,
        sep=r"\s+",
        header=None,
        names=["master_id", "customer_id", "date", "cds", "dollars"],
        dtype={"master_id": str, "customer_id": int, "date": str},
    )
    transactions["date"] = pd.to_datetime(transactions["date"], format="%Y%m%d")
    calibration = transactions[transactions["date"] <= CALIBRATION_END]
    purchase_dates = calibration.drop_duplicates(["customer_id", "date"]).groupby("customer_id")[
        "date"
    ]
    first, last = purchase_dates.min(), purchase_dates.max()
    x = (purchase_dates.size() - 1).to_numpy(dtype=float)
    t_x = (last - first).dt.days.to_numpy(dtype=float)
    T = (CALIBRATION_END - first).dt.days.to_numpy(dtype=float)
    return x, t_x, T


@pytest.fixture(scope="module")
def cdnow_days() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return cdnow_calibration_days()


@pytest.fixture(scope="module")
def cdnow_weeks(cdnow_days) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, t_x, T = cdnow_days
    return x, t_x / DAYS_PER_WEEK, T / DAYS_PER_WEEK


@pytest.fixture(scope="module")
def fit_weeks(cdnow_weeks) -> BgNbdParams:
    return bgnbd.fit(*cdnow_weeks)


@pytest.fixture(scope="module")
def fit_days(cdnow_days) -> BgNbdParams:
    return bgnbd.fit(*cdnow_days)


def test_cdnow_calibration_summary_has_the_papers_customers(cdnow_days):
    x, t_x, T = cdnow_days
    assert len(x) == 2357
    # Every customer's first purchase is in Q1 1997, so T spans 1997-03-31 .. 1997-01-01 to
    # 1997-09-30: between 183 and 272 days.
    assert T.min() >= 183 and T.max() == 272
    assert (t_x <= T).all()


def test_fit_reproduces_the_paper_in_weeks(fit_weeks):
    assert fit_weeks.converged
    assert fit_weeks.n_customers == 2357
    assert fit_weeks.r == pytest.approx(PAPER.r, abs=PARAM_TOLERANCE)
    assert fit_weeks.alpha == pytest.approx(PAPER.alpha, abs=PARAM_TOLERANCE)
    assert fit_weeks.a == pytest.approx(PAPER.a, abs=PARAM_TOLERANCE)
    assert fit_weeks.b == pytest.approx(PAPER.b, abs=PARAM_TOLERANCE)
    assert fit_weeks.log_likelihood == pytest.approx(
        PAPER_LOG_LIKELIHOOD, abs=LOG_LIKELIHOOD_TOLERANCE
    )


def test_log_likelihood_at_the_papers_parameters(cdnow_weeks):
    # The printed (rounded) parameters sit at the flat top of the likelihood, so the total
    # log-likelihood there matches the printed maximum to its one decimal.
    assert bgnbd.log_likelihood(PAPER, *cdnow_weeks) == pytest.approx(
        PAPER_LOG_LIKELIHOOD, abs=LOG_LIKELIHOOD_TOLERANCE
    )


def test_fit_in_days_scales_alpha_only(fit_days, cdnow_days):
    x, _, _ = cdnow_days
    # Rescaling time by c = 7 multiplies the gamma scale alpha by c and leaves r, a, b; the
    # likelihood is a density in t_x, so each repeat buyer's term gains -x ln c.
    repeat_purchases = x.sum()
    assert repeat_purchases == 2457  # the CDNOW calibration's total repeat transactions
    assert fit_days.converged
    assert fit_days.r == pytest.approx(PAPER.r, abs=PARAM_TOLERANCE)
    assert fit_days.alpha == pytest.approx(DAYS_PER_WEEK * PAPER.alpha, abs=7 * PARAM_TOLERANCE)
    assert fit_days.a == pytest.approx(PAPER.a, abs=PARAM_TOLERANCE)
    assert fit_days.b == pytest.approx(PAPER.b, abs=PARAM_TOLERANCE)
    # -9582.4 - 2457 ln 7 = -9582.4 - 4781.1 = -14363.5
    assert fit_days.log_likelihood == pytest.approx(-14363.5, abs=LOG_LIKELIHOOD_TOLERANCE)


def test_fit_in_days_and_weeks_agree_exactly(fit_days, fit_weeks, cdnow_days):
    x, _, _ = cdnow_days
    assert fit_days.alpha / DAYS_PER_WEEK == pytest.approx(fit_weeks.alpha, rel=1e-6)
    assert (fit_days.r, fit_days.a, fit_days.b) == pytest.approx(
        (fit_weeks.r, fit_weeks.a, fit_weeks.b), rel=1e-6
    )
    assert fit_days.log_likelihood - fit_weeks.log_likelihood == pytest.approx(
        -x.sum() * math.log(DAYS_PER_WEEK), abs=1e-6
    )


def test_grouped_and_ungrouped_fits_agree(cdnow_weeks, fit_weeks):
    x, t_x, T = cdnow_weeks
    rows, counts = np.unique(np.column_stack([x, t_x, T]), axis=0, return_counts=True)
    assert len(rows) < len(x)  # the sample really has repeated summaries
    grouped = bgnbd.fit(rows[:, 0], rows[:, 1], rows[:, 2], weights=counts)
    assert grouped.n_customers == 2357
    assert (grouped.r, grouped.alpha, grouped.a, grouped.b) == pytest.approx(
        (fit_weeks.r, fit_weeks.alpha, fit_weeks.a, fit_weeks.b), rel=1e-6
    )
    assert grouped.log_likelihood == pytest.approx(fit_weeks.log_likelihood, abs=1e-6)


def test_doubling_every_weight_doubles_the_log_likelihood_only(cdnow_weeks, fit_weeks):
    doubled = bgnbd.fit(*cdnow_weeks, weights=np.full(len(cdnow_weeks[0]), 2.0))
    assert doubled.n_customers == 2 * 2357
    assert (doubled.r, doubled.alpha, doubled.a, doubled.b) == pytest.approx(
        (fit_weeks.r, fit_weeks.alpha, fit_weeks.a, fit_weeks.b), rel=1e-6
    )
    assert doubled.log_likelihood == pytest.approx(2 * fit_weeks.log_likelihood, abs=1e-6)


def test_log_likelihood_of_one_customer_by_hand():
    # r = 1, alpha = 1, a = 1, b = 2, x = 1, t_x = 1, T = 2:
    # B(1, 3)/B(1, 2) = (1/3)/(1/2) = 2/3;  B(2, 2)/B(1, 2) = (1/6)/(1/2) = 1/3;
    # Γ(2) 1^1 / Γ(1) = 1;  (1 + 2)^-2 = 1/9;  (1 + 1)^-2 = 1/4.
    # L = 2/3 * 1/9 + 1/3 * 1/4 = 2/27 + 1/12 = 8/108 + 9/108 = 17/108.
    params = BgNbdParams(r=1.0, alpha=1.0, a=1.0, b=2.0)
    assert bgnbd.log_likelihood(params, [1], [1], [2]) == pytest.approx(math.log(17 / 108))


def test_p_alive_is_one_without_repeat_purchases():
    T = np.array([0.0, 1.0, 38.86, 1e4, 1e9])
    assert (bgnbd.p_alive(PAPER, np.zeros(5), np.zeros(5), T) == 1.0).all()


def test_p_alive_by_hand():
    # x = 2, t_x = 30.43, T = 38.86 (CDNOW customer 1) at the paper's parameters:
    # a / (b + x - 1) = 0.793 / 3.426 = 0.231465
    # ((α + T) / (α + t_x))^(r + x) = (43.274 / 34.844)^2.243 = 1.241936^2.243 = 1.625790
    # P(alive) = 1 / (1 + 0.231465 * 1.625790) = 1 / 1.376314 = 0.726579
    assert bgnbd.p_alive(PAPER, 2, 30.43, 38.86) == pytest.approx(0.726579, abs=1e-6)


def test_p_alive_decreases_as_time_since_last_purchase_grows():
    T = np.linspace(10.0, 200.0, 40)
    alive = bgnbd.p_alive(PAPER, np.full_like(T, 3.0), np.full_like(T, 10.0), T)
    assert alive[0] == pytest.approx(1 / (1 + 0.793 / (2.426 + 2)))  # T = t_x: ratio is 1
    assert (np.diff(alive) < 0).all()


def expected_purchases_by_integration(
    params: BgNbdParams, t: float, x: float, t_x: float, T: float
) -> float:
    """Independent route to eq. 10: P(alive) x E[purchases in t | alive].

    A customer alive at T with rate λ and dropout p buys (1 - e^{-λpt}) / p times in the next t
    (Poisson purchases, each one the last with probability p). Given the history and alive,
    λ ~ Gamma(r + x, rate α + T) and p ~ Beta(a, b + x), independent; the gamma average of
    e^{-λpt} is ((α+T)/(α+T+pt))^(r+x), leaving a one-dimensional integral over p.
    """
    shape = params.r + x
    scale = params.alpha + T
    density = stats.beta(params.a, params.b + x).pdf

    def integrand(p: float) -> float:
        return density(p) * -math.expm1(-shape * math.log1p(p * t / scale)) / p

    if_alive, _ = integrate.quad(integrand, 0.0, 1.0, limit=200, epsabs=0, epsrel=1e-10)
    repeat = x > 0
    odds_dropped = (
        params.a / (params.b + x - 1) * ((params.alpha + T) / (params.alpha + t_x)) ** shape
        if repeat
        else 0.0
    )
    return if_alive / (1 + odds_dropped)


@pytest.mark.parametrize(
    ("params", "t", "x", "t_x", "T"),
    [
        (PAPER, 39.0, 0, 0.0, 38.86),  # one-time buyer, a < 1
        (PAPER, 39.0, 2, 30.43, 38.86),  # CDNOW customer 1
        (PAPER, 52.0, 7, 35.0, 38.86),
        (PAPER, 1000.0, 3, 2.0, 40.0),  # long horizon, probably gone
        (PAPER, 90.0, 30, 700.0, 730.0),
        (BgNbdParams(r=0.5, alpha=3.0, a=2.5, b=4.0), 39.0, 2, 30.0, 38.0),  # a > 1
        (BgNbdParams(r=0.5, alpha=3.0, a=1.0, b=0.4), 39.0, 2, 30.0, 38.0),  # a = 1 exactly
        (BgNbdParams(r=0.5, alpha=3.0, a=1.00001, b=0.4), 39.0, 0, 0.0, 38.0),  # a near 1
        (BgNbdParams(r=0.5, alpha=3.0, a=0.3, b=0.4), 39.0, 0, 0.0, 38.0),  # a + b - 1 < 0
        (BgNbdParams(r=2.0, alpha=30.0, a=0.8, b=2.4), 90.0, 120, 1800.0, 1825.0),  # days
    ],
)
def test_expected_purchases_matches_numerical_integration(params, t, x, t_x, T):
    expected = bgnbd.expected_purchases(params, t, x, t_x, T)
    assert expected == pytest.approx(
        expected_purchases_by_integration(params, t, x, t_x, T), rel=1e-6
    )


def test_expected_purchases_is_zero_for_no_time_and_grows_with_the_horizon():
    horizon = np.array([0.0, 1.0, 10.0, 100.0, 1000.0])
    expected = bgnbd.expected_purchases(PAPER, horizon, 2, 30.43, 38.86)
    assert expected[0] == 0.0
    assert (np.diff(expected) > 0).all()


def test_heavy_long_lived_customer_stays_finite():
    x, T = 500, 5000.0
    for t_x in (0.0, 2500.0, 4990.0, 5000.0):
        alive = bgnbd.p_alive(PAPER, x, t_x, T)
        assert np.isfinite(alive) and 0.0 <= alive <= 1.0
        expected = bgnbd.expected_purchases(PAPER, 90.0, x, t_x, T)
        assert np.isfinite(expected) and expected >= 0.0
        assert np.isfinite(bgnbd.log_likelihood(PAPER, x, t_x, T))
    # Bought at the very end: P(alive) = 1 / (1 + a / (b + 499)) = 1 / (1 + 0.793 / 501.426)
    assert bgnbd.p_alive(PAPER, x, T, T) == pytest.approx(1 / (1 + 0.793 / 501.426))
    # Bounds on E = P(alive) E[(1 - e^{-λpt}) / p] from u - u²/2 <= 1 - e^{-u} <= u, u = λpt,
    # with λ ~ Gamma(r + x, α + T), p ~ Beta(a, b + x), t = 90:
    # E[λ] t = 500.243 / 5004.414 * 90 = 8.99644;  upper = 0.998421 * 8.99644 = 8.98224
    # E[λ²] E[p] t² / 2 = (500.243 * 501.243 / 5004.414²) * (0.793 / 503.219) * 4050 = 0.06390
    # lower = 0.998421 * (8.99644 - 0.06390) = 8.91843
    assert 8.918 < bgnbd.expected_purchases(PAPER, 90.0, x, T, T) < 8.983


def test_fit_on_large_counts_converges():
    x = np.array([0, 1, 5, 50, 500, 2000], dtype=float)
    t_x = np.array([0, 100, 900, 2000, 4900, 4999], dtype=float)
    T = np.full(6, 5000.0)
    params = bgnbd.fit(x, t_x, T, weights=[400, 300, 200, 80, 15, 5])
    assert params.converged
    assert np.isfinite(params.log_likelihood)
    assert min(params.r, params.alpha, params.a, params.b) > 0


@pytest.mark.parametrize(
    ("x", "t_x", "T", "message"),
    [
        ([], [], [], "at least one"),
        ([-1], [0], [5], "negative x"),
        ([1.5], [1], [5], "non-integer x"),
        ([2], [6], [5], "t_x > T"),
        ([1], [-1], [5], "negative t_x"),
        ([0], [2], [5], "x = 0"),
        ([1], [np.nan], [5], "NaN"),
    ],
)
def test_fit_rejects_bad_summaries(x, t_x, T, message):
    with pytest.raises(ValueError, match=message):
        bgnbd.fit(x, t_x, T)


def test_fit_rejects_bad_weights():
    with pytest.raises(ValueError, match="non-negative"):
        bgnbd.fit([1, 2], [1, 2], [3, 3], weights=[1, -1])
    with pytest.raises(ValueError, match="sum to zero"):
        bgnbd.fit([1, 2], [1, 2], [3, 3], weights=[0, 0])


def test_scores_reject_inconsistent_summaries():
    with pytest.raises(ValueError, match="t_x > T"):
        bgnbd.p_alive(PAPER, [1], [9], [5])
    with pytest.raises(ValueError, match="horizon"):
        bgnbd.expected_purchases(PAPER, -1, [1], [2], [5])


def test_expected_purchases_stay_finite_for_a_degenerate_fit_on_few_buyers():
    # A fit on three buyers (seen in a backfill of a tiny world) drives a to ~8e4 and b to ~1e-5:
    # everyone drops out right after a purchase. For x = 0 the expectation then tends to the
    # chance of at least one purchase, 1 - ((α+T)/(α+T+t))^r (the 2F1 term and the prefactor
    # (a+b-1)/(a-1) are 1 to 1e-9): T = 319, t = 90 → 1 - (540.29/630.29)^0.50746 ≈ 0.07522.
    params = BgNbdParams(r=0.50746, alpha=221.29, a=79645.98, b=1.2556e-05)
    x, t_x, T = np.array([1.0, 0.0]), np.array([90.0, 0.0]), np.array([150.0, 319.0])
    expected = bgnbd.expected_purchases(params, 90, x, t_x, T)
    assert np.isfinite(expected).all()
    assert expected[1] == pytest.approx(1 - (540.29 / 630.29) ** 0.50746, rel=1e-6)
    assert 0 <= expected[0] < expected[1]  # the buyer has almost surely dropped out
