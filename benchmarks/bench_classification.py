"""Classification speed: vectorised crm.segments / crm.lifecycle / crm.summaries vs the per-row
code they replaced (frozen in tests/unit/_legacy_*.py).

Why: classification ran per row (≈ 130 µs per customer for segments, ≈ 200 µs for stages +
history), ≈ 5.5 min at L (1M customers) on every run (docs/performance.md). This times each
public step on a synthetic 1M-customer profile shaped like `marts.customer_profile` as DuckDB
hands it to pandas (DECIMAL → float64, BIGINT with nulls → Int64, DATE → datetime64), with
realistic skew, ties and nulls, and a stage history of one period per customer in which 5 % of
the stages change at this run.

The per-row code is timed on a sample (default 100k customers; its cost is linear in the
customers) and extrapolated; on that sample both versions' outputs are compared for equality.

    .venv/bin/python -m benchmarks.bench_classification [--customers 1000000] [--legacy 100000]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from crm import lifecycle, segments, summaries
from crm.rules import STAGES, Rules, default_rules
from tests.unit import _legacy_lifecycle, _legacy_segments, _legacy_summaries

AS_OF = date(2026, 6, 30)
CHANGED_SHARE = 0.05
PROSPECT_SHARE = 0.15
REGIONS = ["华北", "东北", "华东", "华中", "华南", "西南", "西北", "未知"]
INDUSTRIES = ["制造业", "零售", "互联网", "金融", "医疗", "教育", "物流", "未知"]


def _nullable(values: np.ndarray, present: np.ndarray) -> pd.arrays.IntegerArray:
    """BIGINT with NULLs as DuckDB hands it to pandas (Int64)."""
    return pd.arrays.IntegerArray(values.astype(np.int64), ~present)


def synthetic_profile(customers: int, seed: int = 11) -> pd.DataFrame:
    """The profile columns the classifiers read, with DuckDB's pandas dtypes; prospects carry
    zero counts and null buyer-only measures (domain.md §0)."""
    rng = np.random.default_rng(seed)
    buyer = rng.random(customers) >= PROSPECT_SHARE
    orders_total = np.where(buyer, rng.geometric(0.15, customers), 0)
    orders_365d = np.where(buyer, np.minimum(orders_total, rng.poisson(2.0, customers)), 0)
    # Money in whole cents, log-normal with ties on round amounts.
    revenue = np.round(rng.lognormal(7.5, 1.3, customers), 2)
    revenue = np.where(rng.random(customers) < 0.1, np.round(revenue, -2), revenue)
    revenue_365d = np.where(orders_365d > 0, revenue, 0.0)
    tenure = rng.integers(0, 2500, customers)
    recency = np.minimum(tenure, rng.gamma(1.2, 120, customers).astype(np.int64))
    median_gap = np.where(orders_total >= 3, np.round(rng.gamma(2.0, 30, customers), 1), np.nan)
    last_gap = np.where(orders_total >= 2, rng.integers(1, 700, customers), -1)
    gap_before = np.where(orders_total >= 4, np.round(rng.gamma(2.0, 30, customers), 1), np.nan)
    billed_orders = np.where(buyer, rng.binomial(orders_total, 0.6), 0)
    billed = np.where(billed_orders > 0, np.round(rng.lognormal(7, 1.2, customers), 2), 0.0)
    collected = np.round(billed * rng.choice([1.0, 1.0, 0.9, 0.75, 0.5, 0.0], customers), 2)
    has_billed = billed_orders > 0
    ratio = np.where(has_billed & (billed > 0), collected / np.where(billed > 0, billed, 1), 1.0)
    nps = rng.integers(0, 11, customers)
    share = np.round(rng.random(customers) * 4) / 4
    return pd.DataFrame(
        {
            "customer_id": pd.Series(
                [f"C{i:08d}" for i in rng.permutation(customers)], dtype="str"
            ),
            "is_key_account_flag": rng.random(customers) < 0.01,
            "region": pd.Series(rng.choice(REGIONS, customers), dtype="str"),
            "industry": pd.Series(rng.choice(INDUSTRIES, customers), dtype="str"),
            "orders_total": orders_total.astype(np.int64),
            "orders_365d": orders_365d.astype(np.int64),
            "revenue_365d": revenue_365d,
            "recency_days": _nullable(recency, buyer),
            "tenure_days": _nullable(tenure, buyer),
            "median_gap_days": np.where(buyer, median_gap, np.nan),
            "last_gap_days": _nullable(last_gap, buyer & (last_gap >= 0)),
            "median_gap_before_last_days": np.where(buyer, gap_before, np.nan),
            "billed_orders": billed_orders.astype(np.int64),
            "billed_amount": billed,
            "collected_amount": collected,
            "collection_ratio": np.where(has_billed, ratio, np.nan),
            "max_paid_days": _nullable(rng.integers(0, 400, customers), has_billed),
            "outbound_visits_365d": rng.poisson(1.5, customers).astype(np.int64),
            "outbound_quarters_365d": rng.integers(0, 5, customers).astype(np.int64),
            "followed_up_orders_365d": rng.poisson(0.5, customers).astype(np.int64),
            "inbound_365d": rng.poisson(1.0, customers).astype(np.int64),
            "latest_nps": _nullable(nps, rng.random(customers) < 0.6),
            "discount_order_share_365d": np.where(orders_365d > 0, share, np.nan),
        }
    )


def synthetic_history(stages: pd.DataFrame, seed: int = 12) -> pd.DataFrame:
    """One open period per customer (as read back from DuckDB: DATE → datetime64) whose stage
    differs from today's for CHANGED_SHARE of them."""
    rng = np.random.default_rng(seed)
    customers = len(stages)
    changed = rng.random(customers) < CHANGED_SHARE
    other = np.array(STAGES, dtype=object)[rng.integers(0, len(STAGES), customers)]
    stage = np.where(changed & (other != stages["stage"].to_numpy()), other, stages["stage"])
    since = pd.Timestamp(AS_OF - timedelta(days=30)) - pd.to_timedelta(
        rng.integers(0, 900, customers), unit="D"
    )
    return pd.DataFrame(
        {
            "customer_id": stages["customer_id"].astype("str"),
            "stage": pd.Series(stage, dtype="str"),
            "previous_stage": pd.Series([None] * customers, dtype="str"),
            "valid_from": pd.Series(since).astype("datetime64[us]"),
            "valid_to": pd.Series(pd.NaT, index=range(customers), dtype="datetime64[us]"),
        }
    )


def _timed(step: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = step()
    return time.perf_counter() - started, result


def _steps(module_set: dict[str, Any], profile: pd.DataFrame, rules: Rules) -> dict[str, Any]:
    """Runs the asset sequence once; returns {step: (seconds, output)}."""
    seg, life, summ = module_set["segments"], module_set["lifecycle"], module_set["summaries"]
    results: dict[str, Any] = {}
    results["compute_segments"] = _timed(lambda: seg.compute_segments(profile, rules))
    results["classify_stages"] = _timed(lambda: life.classify_stages(profile, rules))
    stages = results["classify_stages"][1]
    history = synthetic_history(stages)
    results["advance_history"] = _timed(lambda: life.advance_history(history, stages, AS_OF))
    advanced = results["advance_history"][1]
    results["stages_before"] = _timed(lambda: life.stages_before(advanced, AS_OF))
    previous = results["stages_before"][1]
    results["lifecycle_flow"] = _timed(lambda: life.lifecycle_flow(previous, stages, AS_OF))
    results["lifecycle_table"] = _timed(
        lambda: life.lifecycle_table(advanced, stages, AS_OF, rules)
    )
    table = results["lifecycle_table"][1]
    segs = results["compute_segments"][1]
    results["segment_summary"] = _timed(lambda: summ.segment_summary(segs, profile, table, AS_OF))
    return results


def _same(before: Any, after: Any) -> bool:
    try:
        pd.testing.assert_frame_equal(before, after)
    except AssertionError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--legacy", type=int, default=100_000, help="sample for the per-row code")
    args = parser.parse_args()
    rules = default_rules()
    profile = synthetic_profile(args.customers)
    current = {"segments": segments, "lifecycle": lifecycle, "summaries": summaries}
    legacy = {
        "segments": _legacy_segments,
        "lifecycle": _legacy_lifecycle,
        "summaries": _legacy_summaries,
    }
    after = _steps(current, profile, rules)
    sample = profile.head(args.legacy) if args.legacy else None
    before = _steps(legacy, sample, rules) if sample is not None else {}
    check = _steps(current, sample, rules) if sample is not None else {}
    scale = args.customers / args.legacy if args.legacy else 0.0
    print(f"\n{args.customers:,} customers (per-row code on {args.legacy:,}, extrapolated)\n")
    print(
        "| step | per-row µs/customer | per-row s (extrapolated) | vectorised s "
        "| vectorised µs/customer | speed-up | same output on sample |"
    )
    print("|---|---:|---:|---:|---:|---:|---|")
    total_before = total_after = 0.0
    for step, (seconds, _) in after.items():
        total_after += seconds
        row = f"| {step} | "
        if before:
            old = before[step][0] * scale
            total_before += old
            same = _same(before[step][1], check[step][1])
            row += f"{1e6 * before[step][0] / args.legacy:.1f} | {old:.1f} | "
        else:
            row += "– | – | "
        row += f"{seconds:.2f} | {1e6 * seconds / args.customers:.2f} | "
        row += f"{old / seconds:.0f}× | {'yes' if same else 'NO'} |" if before else "– | – |"
        print(row)
    speed_up = f"{total_before / total_after:.0f}×" if before else "–"
    print(f"| **all** | | {total_before:.1f} | {total_after:.2f} | | {speed_up} | |")


if __name__ == "__main__":
    main()
