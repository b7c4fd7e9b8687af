"""Hand-made `marts.customer_profile` rows for the classification tests.

A test names only what its rule reads: `buyer("c1", recency_days=200, median_gap_days=50)`.
Every other column gets a neutral default — a buyer who is plainly `active`, unrated, `basic`,
neutral, not price sensitive and carries no revenue-based privilege — so the expected value of a
test follows from the overrides alone. Columns follow docs/interfaces.md.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pandas as pd

AS_OF = date(2025, 6, 30)

_IDENTITY: dict[str, Any] = {
    "name": None,
    "customer_type": "company",
    "industry": "制造业",
    "region": "华东",
    "province": "浙江省",
    "city": "杭州",
    "owner_rep_id": None,
    "email": None,
    "phone": None,
    "source_channel": None,
    "is_key_account_flag": False,
    "created_date": date(2020, 1, 1),
    "as_of": AS_OF,
}

_INTERACTIONS: dict[str, Any] = {
    "interactions_90d": 0,
    "inbound_90d": 0,
    "outbound_90d": 0,
    "complaints_90d": 0,
    "avg_satisfaction_90d": None,
    "latest_nps": None,
    "last_outbound_date": None,
    "outbound_visits_365d": 0,
    "outbound_quarters_365d": 0,
    "followed_up_orders_365d": 0,
    "inbound_365d": 0,
    "last_outbound_days": None,
}

# Two purchases, 170 days apart, the last one 30 days ago: active under the default rules
# (not new: tenure 200 >= 90; not at risk: 30 <= 180; not loyal: tenure < 365).
_BUYER: dict[str, Any] = {
    "orders_total": 2,
    "orders_90d": 1,
    "orders_365d": 2,
    "revenue_total": Decimal("100.00"),
    "revenue_90d": Decimal("50.00"),
    "revenue_365d": Decimal("100.00"),
    "avg_order_value": Decimal("50.00"),
    "recency_days": 30,
    "tenure_days": 200,
    "purchase_days": 2,
    "median_gap_days": None,
    "prev_order_date": None,
    "last_gap_days": 170,
    "median_gap_before_last_days": None,
    "orders_prior_year": 1,
    "revenue_prior_year": Decimal("50.00"),
    "discount_order_share_365d": 0.0,
    "bgnbd_x": 1,
    "bgnbd_t_x": 170,
    "bgnbd_T": 200,
    "billed_orders": 0,
    "billed_amount": None,
    "collected_amount": None,
    "collection_ratio": None,
    "max_paid_days": None,
}

# No completed order: buyer-only fields null, counts and sums 0 (domain.md §0).
_PROSPECT: dict[str, Any] = {
    **{key: None for key in _BUYER},
    "orders_total": 0,
    "orders_90d": 0,
    "orders_365d": 0,
    "revenue_total": Decimal("0.00"),
    "revenue_90d": Decimal("0.00"),
    "revenue_365d": Decimal("0.00"),
    "purchase_days": 0,
    "orders_prior_year": 0,
    "revenue_prior_year": Decimal("0.00"),
    "billed_orders": 0,
}


def _with_order_dates(row: dict[str, Any]) -> dict[str, Any]:
    """Dates consistent with recency/tenure unless the test set them itself."""
    if row.get("recency_days") is not None:
        row.setdefault("last_order_date", AS_OF - timedelta(days=int(row["recency_days"])))
    if row.get("tenure_days") is not None:
        row.setdefault("first_order_date", AS_OF - timedelta(days=int(row["tenure_days"])))
    row.setdefault("last_order_date", None)
    row.setdefault("first_order_date", None)
    return row


def buyer(customer_id: str, **overrides: Any) -> dict[str, Any]:
    """A customer with completed orders; overrides replace any profile column."""
    row = {"customer_id": customer_id, **_IDENTITY, **_INTERACTIONS, **_BUYER, **overrides}
    return _with_order_dates(row)


def prospect(customer_id: str, **overrides: Any) -> dict[str, Any]:
    """A customer without completed orders; overrides replace any profile column."""
    row = {"customer_id": customer_id, **_IDENTITY, **_INTERACTIONS, **_PROSPECT, **overrides}
    return _with_order_dates(row)


def profile_frame(*customers: dict[str, Any]) -> pd.DataFrame:
    """The rows as one profile DataFrame (pandas infers types, NaN/None for nulls)."""
    return pd.DataFrame(list(customers))


def profile(**customers: dict[str, Any]) -> pd.DataFrame:
    """Shortcut: profile(c1={...overrides...}) builds buyers keyed by customer id."""
    return profile_frame(*(buyer(cid, **overrides) for cid, overrides in customers.items()))
