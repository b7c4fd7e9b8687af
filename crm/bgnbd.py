"""BG/NBD purchase model (Fader, Hardie & Lee 2005, "Counting Your Customers the Easy Way").

Why it is here: the churn score (domain.md §4, `marts.churn_risk`) needs, per buyer, the
probability that the customer is still "alive" and the expected number of purchases in the next
horizon. Both come from this model, fitted by maximum likelihood on all buyers each run.

Grain: one value per customer summary (x, t_x, T):

- x   = repeat purchase dates (purchase_days - 1),
- t_x = last - first purchase date,
- T   = as_of (or end of calibration) - first purchase date.

The time unit is whatever the caller uses (the pipeline uses days). Every formula works in log
space (`gammaln`, `betaln`, log-sum-exp) so large counts and long histories neither overflow nor
lose precision. Only numpy and scipy are used (no dependency on the unmaintained `lifetimes`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize
from scipy.special import betaln, digamma, expit, gammaln, hyp2f1

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]

# Optimiser bounds on log(parameter) (alpha is scaled by the mean T first, see `_time_scale`):
# wide enough for any realistic customer base, narrow enough that exp() never overflows.
_LOG_PARAM_BOUND = 20.0
# The conditional expectation has a removable singularity at a = 1 (the factor 1 / (a - 1));
# closer than this, it is interpolated linearly between a = 1 -/+ this step (error O(step**2)).
_A_NEAR_ONE = 1e-4


@dataclass(frozen=True)
class BgNbdParams:
    """Fitted BG/NBD parameters and how the fit went.

    r, alpha: gamma heterogeneity of the purchase rate (alpha is in the caller's time unit).
    a, b: beta heterogeneity of the dropout probability after each purchase.
    log_likelihood: total log-likelihood of the fitted data at these parameters.
    n_customers: total weight (number of customers) the model was fitted on.
    converged: the optimiser reported success and no parameter sits on a bound.
    """

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float = float("nan")
    n_customers: float = 0.0
    converged: bool = True


class _Summaries(NamedTuple):
    """Validated customer summaries as float arrays of one shape."""

    x: FloatArray
    t_x: FloatArray
    T: FloatArray


def _validated(x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> _Summaries:
    """Broadcast and check the summaries; a bad row would silently bias the whole fit."""
    x_arr, t_x_arr, T_arr = np.broadcast_arrays(
        np.asarray(x, dtype=np.float64),
        np.asarray(t_x, dtype=np.float64),
        np.asarray(T, dtype=np.float64),
    )
    if x_arr.size == 0:
        raise ValueError("BG/NBD needs at least one customer summary (x, t_x, T); got none")
    checks = (
        (~np.isfinite(x_arr) | ~np.isfinite(t_x_arr) | ~np.isfinite(T_arr), "are NaN or infinite"),
        (x_arr < 0, "have a negative x (repeat purchases)"),
        (x_arr != np.round(x_arr), "have a non-integer x (repeat purchases)"),
        (t_x_arr < 0, "have a negative t_x (last - first purchase)"),
        (t_x_arr > T_arr, "have t_x > T (last purchase after the end of the period)"),
        ((x_arr == 0) & (t_x_arr != 0), "have t_x != 0 although x = 0 (no repeat purchase)"),
    )
    for bad, problem in checks:
        if bad.any():
            raise ValueError(f"{int(bad.sum())} customer summaries {problem}")
    return _Summaries(x_arr.copy(), t_x_arr.copy(), T_arr.copy())


def _validated_weights(weights: ArrayLike | None, shape: tuple[int, ...]) -> FloatArray:
    if weights is None:
        return np.ones(shape, dtype=np.float64)
    w = np.broadcast_to(np.asarray(weights, dtype=np.float64), shape)
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("weights must be finite and non-negative")
    if w.sum() <= 0:
        raise ValueError("weights sum to zero: there is nothing to fit")
    return w


def _codes(values: NDArray[np.generic]) -> tuple[NDArray[np.generic], IntArray]:
    """Distinct values and, per element, the index of its value (a 1-D sort: fast)."""
    distinct, index = np.unique(values.ravel(), return_inverse=True)
    return distinct, index.ravel()


def _grouped(summaries: _Summaries, weights: FloatArray) -> tuple[_Summaries, FloatArray]:
    """Unique (x, t_x, T) rows with summed weights.

    Why: real customer bases repeat the same summary many times (a day-grained T takes a few
    hundred values), so the likelihood is evaluated on far fewer rows than customers. Rows are
    keyed by combining per-column codes pairwise (each key < rows², within int64), which is much
    faster than the row-wise `np.unique(axis=0)`.
    """
    x, t_x, T = (column.ravel() for column in summaries)
    _, x_code = _codes(x)
    t_x_values, t_x_code = _codes(t_x)
    _, pair_code = _codes(x_code * len(t_x_values) + t_x_code)
    T_values, T_code = _codes(T)
    _, first_row, row_code = np.unique(
        pair_code * len(T_values) + T_code, return_index=True, return_inverse=True
    )
    counts = np.bincount(row_code.ravel(), weights=weights.ravel(), minlength=len(first_row))
    keep = counts > 0
    representative = first_row[keep]
    return _Summaries(x[representative], t_x[representative], T[representative]), counts[keep]


class _Factorized(NamedTuple):
    """Summaries as distinct values plus, per row, the index of the row's value.

    Why: the special functions (gammaln, betaln, digamma) dominate the cost of one likelihood
    evaluation and depend on x alone, which takes few distinct values; the logs of alpha + T and
    alpha + t_x likewise. They are computed once per distinct value and gathered per row.
    """

    x: FloatArray
    x_row: IntArray
    t_x: FloatArray
    t_x_row: IntArray
    T: FloatArray
    T_row: IntArray

    @classmethod
    def of(cls, s: _Summaries) -> _Factorized:
        return cls(*_codes(s.x), *_codes(s.t_x), *_codes(s.T))


class _RowTerms(NamedTuple):
    """Per-row log-likelihood, the softmax weights of its two terms, and shared pieces."""

    log_likelihood: FloatArray
    weight_alive: FloatArray
    weight_dropped: FloatArray
    r_plus_x: FloatArray
    log_alpha_T: FloatArray
    log_alpha_t_x: FloatArray


def _row_terms(r: float, alpha: float, a: float, b: float, f: _Factorized) -> _RowTerms:
    """Per-row log-likelihood (paper eq. 6) with its two terms kept apart.

    L = B(a, b+x)/B(a, b) * Γ(r+x) α^r / (Γ(r) (α+T)^(r+x))
      + [x > 0] B(a+1, b+x-1)/B(a, b) * Γ(r+x) α^r / (Γ(r) (α+t_x)^(r+x))

    The second term only exists for repeat buyers (the customer may have dropped out right after
    the last purchase); log-sum-exp adds the two without overflow.
    """
    x = f.x
    repeat = x > 0
    common = gammaln(r + x) - gammaln(r) + r * np.log(alpha) - betaln(a, b)
    log_beta_dropped = np.full_like(x, -np.inf)
    log_beta_dropped[repeat] = betaln(a + 1, b + x[repeat] - 1)
    r_plus_x = (r + x)[f.x_row]
    log_alpha_T = np.log(alpha + f.T)[f.T_row]
    log_alpha_t_x = np.log(alpha + f.t_x)[f.t_x_row]
    still_alive = betaln(a, b + x)[f.x_row] - r_plus_x * log_alpha_T
    dropped = log_beta_dropped[f.x_row] - r_plus_x * log_alpha_t_x
    # log-sum-exp with a single exp: log(e^s + e^d) = max + log1p(e^-|s - d|).
    smaller_over_larger = np.exp(-np.abs(still_alive - dropped))
    mixture = np.maximum(still_alive, dropped) + np.log1p(smaller_over_larger)
    share_larger = 1 / (1 + smaller_over_larger)
    alive_larger = still_alive >= dropped
    weight_alive = np.where(alive_larger, share_larger, 1 - share_larger)
    return _RowTerms(
        log_likelihood=common[f.x_row] + mixture,
        weight_alive=weight_alive,
        weight_dropped=1 - weight_alive,
        r_plus_x=r_plus_x,
        log_alpha_T=log_alpha_T,
        log_alpha_t_x=log_alpha_t_x,
    )


def _weighted_log_likelihood_and_gradient(
    r: float, alpha: float, a: float, b: float, f: _Factorized, counts: FloatArray
) -> tuple[float, FloatArray]:
    """Sum of counts x row log-likelihood, and its gradient with respect to (r, alpha, a, b)."""
    terms = _row_terms(r, alpha, a, b, f)
    w_alive = counts * terms.weight_alive
    w_dropped = counts * terms.weight_dropped
    x = f.x
    # b + x - 1 only appears in the dropped term, whose weight is zero for x = 0.
    b_dropped = np.where(x > 0, b + x - 1, b)
    psi_abx = digamma(a + b + x)
    n = counts.sum()
    d_r = (
        np.dot(counts, (digamma(r + x) - digamma(r) + np.log(alpha))[f.x_row])
        - np.dot(w_alive, terms.log_alpha_T)
        - np.dot(w_dropped, terms.log_alpha_t_x)
    )
    d_alpha = n * r / alpha - np.dot(
        terms.r_plus_x,
        w_alive * (1 / (alpha + f.T))[f.T_row] + w_dropped * (1 / (alpha + f.t_x))[f.t_x_row],
    )
    d_a = (
        -n * (digamma(a) - digamma(a + b))
        + np.dot(w_alive, (digamma(a) - psi_abx)[f.x_row])
        + np.dot(w_dropped, (digamma(a + 1) - psi_abx)[f.x_row])
    )
    d_b = (
        -n * (digamma(b) - digamma(a + b))
        + np.dot(w_alive, (digamma(b + x) - psi_abx)[f.x_row])
        + np.dot(w_dropped, (digamma(b_dropped) - psi_abx)[f.x_row])
    )
    value = float(np.dot(counts, terms.log_likelihood))
    return value, np.array([d_r, d_alpha, d_a, d_b])


def log_likelihood(
    params: BgNbdParams,
    x: ArrayLike,
    t_x: ArrayLike,
    T: ArrayLike,
    weights: ArrayLike | None = None,
) -> float:
    """Total (weighted) BG/NBD log-likelihood of the summaries under `params`.

    It is a density in t_x, so it depends on the time unit: in days it is lower than in weeks
    by sum(x) * ln 7 (domain.md §4).
    """
    summaries = _validated(x, t_x, T)
    w = _validated_weights(weights, summaries.x.shape)
    terms = _row_terms(params.r, params.alpha, params.a, params.b, _Factorized.of(summaries))
    return float(np.dot(w.ravel(), terms.log_likelihood))


def _time_scale(s: _Summaries, w: FloatArray) -> float:
    """Mean observation length, so the optimiser sees alpha in units where it is near 1."""
    mean_T = float(np.dot(w, s.T) / np.sum(w))
    return mean_T if mean_T > 0 else 1.0


def _start(s: _Summaries, w: FloatArray) -> FloatArray:
    """Start at r = a = b = 1 with alpha matching the observed repeat rate (r / alpha = rate)."""
    total_time = float(np.dot(w, s.T))
    total_repeats = float(np.dot(w, s.x))
    alpha = total_time / total_repeats if total_repeats > 0 and total_time > 0 else 1.0
    return np.log(np.array([1.0, alpha, 1.0, 1.0]))


def fit(
    x: ArrayLike,
    t_x: ArrayLike,
    T: ArrayLike,
    weights: ArrayLike | None = None,
) -> BgNbdParams:
    """Maximum-likelihood BG/NBD fit (the churn asset fits it once per run on all buyers).

    Rows are grouped to unique (x, t_x, T) with summed weights before optimising, so a million
    customers fit in seconds. The optimiser (L-BFGS-B with the analytic gradient) works on
    log-parameters, with alpha divided by the mean T, which keeps the problem unit-free.
    Raises ValueError for empty input, NaN, x < 0, non-integer x, t_x < 0, t_x > T, or
    t_x != 0 with x = 0.
    """
    summaries = _validated(x, t_x, T)
    w = _validated_weights(weights, summaries.x.shape)
    grouped, counts = _grouped(summaries, w)
    scale = _time_scale(grouped, counts)
    scaled = _Summaries(grouped.x, grouped.t_x / scale, grouped.T / scale)
    factorized = _Factorized.of(scaled)
    total_weight = float(counts.sum())

    def negative_mean_ll(log_params: FloatArray) -> tuple[float, FloatArray]:
        params = np.exp(log_params)
        value, gradient = _weighted_log_likelihood_and_gradient(*params, factorized, counts)
        return -value / total_weight, -gradient * params / total_weight

    result = minimize(
        negative_mean_ll,
        _start(scaled, counts),
        jac=True,
        method="L-BFGS-B",
        bounds=[(-_LOG_PARAM_BOUND, _LOG_PARAM_BOUND)] * 4,
        options={"maxiter": 1000, "ftol": 1e-15, "gtol": 1e-10},
    )
    r, alpha_scaled, a, b = np.exp(result.x)
    on_bound = bool(np.any(np.abs(result.x) >= _LOG_PARAM_BOUND - 1e-6))
    fitted = BgNbdParams(r=float(r), alpha=float(alpha_scaled * scale), a=float(a), b=float(b))
    return replace(
        fitted,
        log_likelihood=log_likelihood(fitted, grouped.x, grouped.t_x, grouped.T, counts),
        n_customers=total_weight,
        converged=bool(result.success) and not on_bound,
    )


def _log_odds_dropped(params: BgNbdParams, s: _Summaries) -> FloatArray:
    """log of P(dropped after last purchase) / P(alive), given the history; -inf when x = 0."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    log_odds = np.full_like(s.x, -np.inf)
    repeat = s.x > 0
    x = s.x[repeat]
    log_odds[repeat] = (
        np.log(a)
        - np.log(b + x - 1)
        + (r + x) * (np.log(alpha + s.T[repeat]) - np.log(alpha + s.t_x[repeat]))
    )
    return log_odds


def p_alive(params: BgNbdParams, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> FloatArray:
    """P(customer still alive at T | x, t_x, T) (paper eq. 9); exactly 1 when x = 0.

    1 / (1 + [x > 0] a / (b + x - 1) * ((α + T) / (α + t_x))^(r + x)), computed as a logistic
    of the log-odds so that x = 500, T = 5000 stays finite and within [0, 1].
    """
    summaries = _validated(x, t_x, T)
    return expit(-_log_odds_dropped(params, summaries))


def _expected_if_alive(params: BgNbdParams, t: FloatArray, s: _Summaries) -> FloatArray:
    """E[purchases in (T, T+t] | alive at T, history] (paper eq. 10 without the P(alive) factor).

    Eq. 10 holds (a+b+x-1)/(a-1) * [1 - ((α+T)/(α+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; z)] with
    z = t / (α+T+t). For large x that 2F1 diverges as z -> 1 while its prefactor vanishes.
    Euler's transformation 2F1(A, B; C; z) = (1-z)^(C-A-B) 2F1(C-A, C-B; C; z) cancels the two
    analytically: the bracket becomes 1 - (1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z), whose series
    has a small second parameter and a large third one, so it converges fast and stays finite.
    """
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    horizon = alpha + s.T + t
    z = t / horizon
    log_one_minus_z = np.log(alpha + s.T) - np.log(horizon)
    c = a + b + s.x - 1
    with np.errstate(invalid="ignore", over="ignore"):
        transformed = np.exp((a - 1) * log_one_minus_z) * hyp2f1(a + b - 1 - r, a - 1, c, z)
        result = c / (a - 1) * (1 - transformed)
        # For a huge `a` (a degenerate fit on a handful of buyers) the transformed series
        # overflows, while the original one, with its large third parameter, converges at once.
        broken = ~np.isfinite(result)
        if broken.any():
            direct = np.exp((r + s.x) * log_one_minus_z) * hyp2f1(r + s.x, b + s.x, c, z)
            result = np.where(broken, c / (a - 1) * (1 - direct), result)
    return result


def expected_purchases(
    params: BgNbdParams, t: ArrayLike, x: ArrayLike, t_x: ArrayLike, T: ArrayLike
) -> FloatArray:
    """Conditional expected purchases in the next t periods (paper eq. 10).

    Feeds `expected_orders_90d` of `marts.churn_risk` (t in the caller's time unit, the pipeline
    uses days). Equals P(alive) times the expectation for a customer known to be alive.
    """
    horizon, x, t_x, T = np.broadcast_arrays(np.asarray(t, dtype=np.float64), x, t_x, T)
    summaries = _validated(x, t_x, T)
    if not np.isfinite(horizon).all() or (horizon < 0).any():
        raise ValueError("the horizon t must be finite and non-negative")
    if abs(params.a - 1) < _A_NEAR_ONE:
        below = _expected_if_alive(replace(params, a=1 - _A_NEAR_ONE), horizon, summaries)
        above = _expected_if_alive(replace(params, a=1 + _A_NEAR_ONE), horizon, summaries)
        share_of_step = (params.a - (1 - _A_NEAR_ONE)) / (2 * _A_NEAR_ONE)
        if_alive = below + share_of_step * (above - below)
    else:
        if_alive = _expected_if_alive(params, horizon, summaries)
    return if_alive * expit(-_log_odds_dropped(params, summaries))
