"""Benchmark of crm.bgnbd on a synthetic customer base of one million buyers (time in days).

Why: the churn asset fits BG/NBD on every buyer each run, so the fit and the per-customer
scores must stay in the seconds range at production size. Prints a markdown table; it asserts
nothing (timings belong in benchmarks, not tests).

Run: .venv/bin/python benchmarks/bench_bgnbd.py [n_customers]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TypeVar

import numpy as np

from crm import bgnbd

T_ = TypeVar("T_")

# The CDNOW parameters of the paper, converted from weeks to days (alpha x 7).
TRUE_PARAMS = bgnbd.BgNbdParams(r=0.243, alpha=4.414 * 7, a=0.793, b=2.426)
ACQUISITION_WINDOW_DAYS = 730  # first purchases spread over two years before as_of
HORIZON_DAYS = 90  # expected_orders_90d of marts.churn_risk
DEFAULT_CUSTOMERS = 1_000_000
SEED = 20050101


def simulate(
    params: bgnbd.BgNbdParams, n_customers: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw (x, t_x, T) in whole days from the BG/NBD generative process.

    Each customer has a purchase rate λ ~ Gamma(r, α) and drops out right after repeat
    purchase J ~ Geometric(p), p ~ Beta(a, b). With N ~ Poisson(λT) purchases in (0, T]:
    N >= J means the customer left at the J-th purchase (x = J, t_x = its time, the J-th of N
    uniform order statistics); otherwise x = N and t_x is the latest of N uniform times.
    t_x is rounded down to whole days like the pipeline's dates, which shifts the fitted a and b
    by about 2 % from the true values (without the rounding they are recovered to < 1 %).
    """
    rate = rng.gamma(params.r, 1 / params.alpha, n_customers)
    dropout = rng.beta(params.a, params.b, n_customers)
    repeats_until_dropout = rng.geometric(dropout)
    T = rng.integers(1, ACQUISITION_WINDOW_DAYS + 1, n_customers).astype(float)
    purchases_in_window = rng.poisson(rate * T)
    x = np.minimum(purchases_in_window, repeats_until_dropout)
    left = purchases_in_window >= repeats_until_dropout
    order_statistic = np.where(left, repeats_until_dropout, purchases_in_window)
    last_share = np.zeros(n_customers)
    bought = x > 0
    last_share[bought] = rng.beta(
        order_statistic[bought], purchases_in_window[bought] - order_statistic[bought] + 1
    )
    t_x = np.floor(last_share * T)
    return x.astype(float), t_x, T


def timed(step: Callable[[], T_]) -> tuple[T_, float]:
    started = time.perf_counter()
    result = step()
    return result, time.perf_counter() - started


def main(n_customers: int) -> None:
    x, t_x, T = simulate(TRUE_PARAMS, n_customers, np.random.default_rng(SEED))
    unique_rows = len(np.unique(np.column_stack([x, t_x, T]), axis=0))
    params, fit_seconds = timed(lambda: bgnbd.fit(x, t_x, T))
    _, alive_seconds = timed(lambda: bgnbd.p_alive(params, x, t_x, T))
    _, expected_seconds = timed(lambda: bgnbd.expected_purchases(params, HORIZON_DAYS, x, t_x, T))

    print(f"BG/NBD on {n_customers:,} synthetic customers ({unique_rows:,} unique rows), days\n")
    print("| step | seconds |")
    print("|---|---:|")
    print(f"| fit (grouping + L-BFGS-B) | {fit_seconds:.2f} |")
    print(f"| p_alive | {alive_seconds:.2f} |")
    print(f"| expected_purchases({HORIZON_DAYS}) | {expected_seconds:.2f} |")
    print("\n| parameter | true | fitted |")
    print("|---|---:|---:|")
    for name in ("r", "alpha", "a", "b"):
        print(f"| {name} | {getattr(TRUE_PARAMS, name):.3f} | {getattr(params, name):.3f} |")
    print(f"\nconverged: {params.converged}, log-likelihood: {params.log_likelihood:,.1f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_CUSTOMERS)
