"""A from-scratch reference implementation of domain.md §0–§4, written only from domain.md and
contract.md, in plain pandas/numpy/scipy.

Why it exists: acceptance compares every column of the published marts with an independent
implementation on held-out data. This module is that implementation, so that disagreements are
found here first. It deliberately shares no code with the pipeline (no crm.ingest, no dbt SQL, no
crm.segments / crm.lifecycle / crm.churn / crm.bgnbd); only the thresholds come from the shared
`Rules` object, so a rules file changes both sides alike.

Grain of every output: one row per customer that exists on as_of (churn: one row per scored
customer). Consumer: tests/integration/test_reference_agreement.py.

Conventions kept throughout:
- money is held as integer cents (exact sums and comparisons), turned into `Decimal` on output;
- every date is a local date in the run's time zone, and "days ago" is `as_of - date` in days;
- a source row that breaks a contract rule is dropped (the pipeline rejects it), orphans too.
"""

from __future__ import annotations

import io
import json
import math
import re
import sqlite3
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import betaln, expit, gammaln, hyp2f1

from crm.rules import Rules, default_rules

# --------------------------------------------------------------------------------------------
# Contract §1: entities, required columns, aliases
# --------------------------------------------------------------------------------------------

ENTITY_COLUMNS: dict[str, list[str]] = {
    "customers": [
        "customer_id",
        "name",
        "customer_type",
        "industry",
        "region",
        "province",
        "city",
        "employees",
        "email",
        "phone",
        "owner_rep_id",
        "source_channel",
        "is_key_account",
        "created_at",
    ],
    "orders": [
        "order_id",
        "customer_id",
        "ordered_at",
        "amount",
        "discount_amount",
        "currency",
        "status",
        "channel",
        "product_category",
    ],
    "payments": ["payment_id", "order_id", "paid_at", "amount"],
    "interactions": [
        "interaction_id",
        "customer_id",
        "contact_email",
        "contact_phone",
        "occurred_at",
        "channel",
        "direction",
        "kind",
        "rep_id",
        "satisfaction",
        "nps",
    ],
}
ID_COLUMN = {
    "customers": "customer_id",
    "orders": "order_id",
    "payments": "payment_id",
    "interactions": "interaction_id",
}
REQUIRED: dict[str, list[str]] = {
    "customers": ["customer_id", "created_at"],
    "orders": ["order_id", "customer_id", "ordered_at", "amount", "status"],
    "payments": ["payment_id", "order_id", "paid_at", "amount"],
    "interactions": ["interaction_id", "occurred_at", "channel", "direction"],
}

# The contract's default Chinese header aliases; words that mean different things per entity
# (类型, 金额, 时间, 状态, 邮箱, 手机) are resolved per entity.
_COMMON_HEADER_ALIASES = {
    "客户编号": "customer_id",
    "客户id": "customer_id",
    "订单编号": "order_id",
    "渠道": "channel",
    "币种": "currency",
}
_ENTITY_HEADER_ALIASES: dict[str, dict[str, str]] = {
    "customers": {
        "客户名称": "name",
        "客户类型": "customer_type",
        "行业": "industry",
        "区域": "region",
        "地区": "region",
        "省份": "province",
        "城市": "city",
        "邮箱": "email",
        "手机": "phone",
        "电话": "phone",
        "负责人": "owner_rep_id",
        "来源": "source_channel",
        "创建时间": "created_at",
    },
    "orders": {
        "下单时间": "ordered_at",
        "订单金额": "amount",
        "金额": "amount",
        "优惠金额": "discount_amount",
        "状态": "status",
        "订单状态": "status",
        "品类": "product_category",
    },
    "payments": {
        "付款编号": "payment_id",
        "付款时间": "paid_at",
        "付款金额": "amount",
        "金额": "amount",
    },
    "interactions": {
        "互动编号": "interaction_id",
        "时间": "occurred_at",
        "方向": "direction",
        "类型": "kind",
        "满意度": "satisfaction",
        "邮箱": "contact_email",
        "手机": "contact_phone",
        "电话": "contact_phone",
    },
}
_VALUE_ALIASES: dict[str, dict[str, str]] = {
    "status": {
        "已完成": "completed",
        "已取消": "cancelled",
        "已退款": "refunded",
        "待付款": "pending",
    },
    "direction": {"呼入": "inbound", "呼出": "outbound"},
    "channel": {
        "电话": "phone",
        "邮件": "email",
        "拜访": "visit",
        "会议": "meeting",
        "微信": "wechat",
        "在线咨询": "chat",
        "工单": "ticket",
        "问卷": "survey",
    },
    "kind": {
        "咨询": "inquiry",
        "跟进": "follow_up",
        "投诉": "complaint",
        "售后": "support",
        "问卷": "survey",
        "营销": "marketing",
        "拜访": "visit",
    },
}
_ALLOWED: dict[str, set[str]] = {
    "status": {"completed", "cancelled", "refunded", "pending"},
    "channel": {"phone", "email", "visit", "meeting", "wechat", "chat", "ticket", "survey"},
    "direction": {"inbound", "outbound"},
    "kind": {"inquiry", "follow_up", "complaint", "support", "survey", "marketing", "visit"},
    "customer_type": {"company", "person"},
}
_TRUE = {"true", "1", "yes", "y", "t", "是"}
_FALSE = {"false", "0", "no", "n", "f", "否"}
_EARLIEST = date(1990, 1, 1)

_TIMESTAMP = re.compile(
    r"^(\d{4})[-/](\d{1,2})[-/](\d{1,2})"
    r"(?:[ T](\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6})\d*)?)?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?$"
)
_COMPACT_DATE = re.compile(r"^(\d{4})(\d{2})(\d{2})$")


@dataclass(frozen=True)
class Sources:
    """The latest valid version of every source record, typed, with local dates.

    customers: customer_id, name, customer_type, industry, region, province, city, owner_rep_id,
      email, phone, is_key_account (bool), created_date;
    orders: order_id, customer_id, order_date, amount (cents), discount (cents), status;
    payments: payment_id, order_id, paid_date, amount (cents);
    interactions: interaction_id, customer_id (resolved), occurred_date, occurred_utc, seq,
      channel, direction, kind, satisfaction, nps.
    """

    customers: pd.DataFrame
    orders: pd.DataFrame
    payments: pd.DataFrame
    interactions: pd.DataFrame
    dropped: dict[str, int]


# --------------------------------------------------------------------------------------------
# Reading raw rows (files in path order, then database rows)
# --------------------------------------------------------------------------------------------


def _decode(raw: bytes) -> str:
    """UTF-8 (with or without BOM), else GBK/GB18030 — the encodings contract §1 allows."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("gb18030")


def _canonical_header(header: str, entity: str) -> str:
    key = str(header).strip().casefold()
    aliases = {**_COMMON_HEADER_ALIASES, **_ENTITY_HEADER_ALIASES[entity]}
    return aliases.get(key, key)


def _as_text_frame(frame: pd.DataFrame, entity: str) -> pd.DataFrame:
    """Canonical headers, every cell a trimmed string or None (empty means missing)."""
    frame = frame.rename(columns=lambda h: _canonical_header(h, entity))
    out = pd.DataFrame(index=range(len(frame)))
    for column in ENTITY_COLUMNS[entity]:
        if column not in frame.columns:
            out[column] = None
            continue
        values = []
        for cell in frame[column].tolist():
            text = None if cell is None or (isinstance(cell, float) and math.isnan(cell)) else cell
            text = str(text).strip() if text is not None else None
            values.append(text if text else None)
        out[column] = pd.Series(values, dtype=object)
    return out


def _read_file(path: Path, entity: str) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        text = _decode(path.read_bytes())
        if not text.strip():
            return _as_text_frame(pd.DataFrame(), entity)
        raw = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    elif suffix == ".jsonl":
        lines = _decode(path.read_bytes()).splitlines()
        raw = pd.DataFrame([json.loads(line) for line in lines if line.strip()])
    elif suffix == ".parquet":
        raw = pd.read_parquet(path)
    else:
        return _as_text_frame(pd.DataFrame(), entity)
    return _as_text_frame(raw.astype(object), entity)


def _db_float_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _read_sqlite(db_url: str | None, table: str, entity: str) -> pd.DataFrame:
    """Orders/payments of a `sqlite:///path` database (the demo's operational database)."""
    if not db_url:
        return _as_text_frame(pd.DataFrame(), entity)
    if not db_url.startswith("sqlite:///"):
        raise ValueError(f"the reference reads only sqlite:/// URLs, not {db_url!r}")
    with sqlite3.connect(db_url.removeprefix("sqlite:///")) as con:
        cursor = con.execute(f"SELECT * FROM {table}")  # noqa: S608 — fixed table names
        names = [d[0] for d in cursor.description]
        rows = [[_db_float_text(v) for v in row] for row in cursor.fetchall()]
    return _as_text_frame(pd.DataFrame(rows, columns=names), entity)


def _read_entity(landing: Path, db_url: str | None, entity: str) -> pd.DataFrame:
    """Every raw row of an entity in load order (`seq`): files in path order, then the DB."""
    folder = landing / entity
    files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
    parts = [_read_file(p, entity) for p in files]
    if entity in ("orders", "payments"):
        parts.append(_read_sqlite(db_url, entity, entity))
    frame = pd.concat(parts, ignore_index=True) if parts else _as_text_frame(pd.DataFrame(), entity)
    frame["seq"] = np.arange(len(frame))
    return frame


# --------------------------------------------------------------------------------------------
# Parsing and validation (a row breaking a rule is dropped whole)
# --------------------------------------------------------------------------------------------


def parse_instant(text: str | None, tz: ZoneInfo) -> datetime | None:
    """A contract timestamp as an aware UTC instant; without an offset it is local time."""
    if text is None:
        return None
    match = _TIMESTAMP.match(text)
    if match:
        y, mo, d, h, mi, s, frac, offset = match.groups()
        micro = int((frac or "0").ljust(6, "0"))
        try:
            naive = datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0), micro)
        except ValueError:
            return None
        if offset is None:
            return naive.replace(tzinfo=tz).astimezone(UTC)
        if offset == "Z":
            return naive.replace(tzinfo=UTC)
        sign = 1 if offset[0] == "+" else -1
        digits = offset[1:].replace(":", "")
        delta = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        return (naive - sign * delta).replace(tzinfo=UTC)
    match = _COMPACT_DATE.match(text)
    if match:
        try:
            naive = datetime(*(int(g) for g in match.groups()))
        except ValueError:
            return None
        return naive.replace(tzinfo=tz).astimezone(UTC)
    return None


def parse_cents(text: str | None) -> int | None:
    """A money amount as integer cents (half-up to the cent); None when not a number."""
    if text is None:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    if not value.is_finite():
        return None
    return int((value * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def parse_bool(text: str | None) -> bool | None:
    if text is None:
        return None
    key = text.strip().casefold()
    if key in _TRUE:
        return True
    if key in _FALSE:
        return False
    raise ValueError(text)


def _enum(text: str | None, column: str) -> str | None:
    if text is None:
        return None
    key = text.strip()
    return _VALUE_ALIASES.get(column, {}).get(key, key.casefold())


def _parse_int_in(text: str | None, low: int, high: int) -> int | None:
    """An integer score within [low, high]; raises ValueError when outside or not a number."""
    if text is None:
        return None
    value = float(text)
    if not value.is_integer() or not low <= value <= high:
        raise ValueError(text)
    return int(value)


class _RowRejected(ValueError):
    """The row breaks a contract §1 rule and does not load."""


def _typed_row(row: dict, entity: str, tz: ZoneInfo, load_date: date, currency: str) -> dict:
    """One raw row typed and checked against contract §1; raises _RowRejected."""
    if any(row[c] is None for c in REQUIRED[entity]):
        raise _RowRejected("required value missing")
    typed = dict(row)
    for column in ("created_at", "ordered_at", "paid_at", "occurred_at"):
        if column in row:
            instant = parse_instant(row[column], tz)
            local = instant.astimezone(tz).date() if instant else None
            if local is None or local < _EARLIEST or local > load_date + timedelta(days=1):
                raise _RowRejected(f"bad timestamp {column}")
            typed[column] = instant
            typed[column.replace("_at", "_date")] = local
    for column in ("amount", "discount_amount"):
        if column in row:
            text = row[column] if row[column] is not None else "0"
            cents = parse_cents(text)
            if cents is None or cents < 0:
                raise _RowRejected(f"bad {column}")
            typed[column] = cents
    for column in ("status", "channel", "direction", "kind", "customer_type"):
        if column in row and not (column == "channel" and entity == "orders"):
            typed[column] = _enum(row[column], column)
            if typed[column] is not None and typed[column] not in _ALLOWED[column]:
                raise _RowRejected(f"{column} outside its list")
    if entity == "orders" and (row["currency"] or currency).upper() != currency.upper():
        raise _RowRejected("foreign currency")
    try:
        if entity == "customers":
            typed["is_key_account"] = parse_bool(row["is_key_account"])
        if entity == "interactions":
            typed["satisfaction"] = _parse_int_in(row["satisfaction"], 1, 5)
            typed["nps"] = _parse_int_in(row["nps"], 0, 10)
    except ValueError as exc:
        raise _RowRejected(str(exc)) from exc
    return typed


def _valid_latest(
    raw: pd.DataFrame, entity: str, tz: ZoneInfo, load_date: date, currency: str
) -> tuple[pd.DataFrame, int]:
    """Valid rows typed; the latest loaded version per id wins (contract §1)."""
    typed, dropped = [], 0
    for row in raw.to_dict("records"):
        try:
            typed.append(_typed_row(row, entity, tz, load_date, currency))
        except _RowRejected:
            dropped += 1
    frame = pd.DataFrame(typed)
    if frame.empty:
        return frame, dropped
    frame = frame.sort_values("seq").drop_duplicates(ID_COLUMN[entity], keep="last")
    return frame.reset_index(drop=True), dropped


# --------------------------------------------------------------------------------------------
# Interaction matching (contract §1)
# --------------------------------------------------------------------------------------------


def _text(value: object) -> str | None:
    """A trimmed non-empty string, or None (pandas turns missing text into NaN)."""
    return value.strip() or None if isinstance(value, str) else None


def normalise_email(text: object) -> str | None:
    text = _text(text)
    return text.lower() if text else None


def normalise_phone(text: object) -> str | None:
    """Digits only; a leading 0086 / 86 is dropped when the number is longer than 11 digits."""
    text = _text(text)
    if not text:
        return None
    digits = re.sub(r"\D", "", text)
    for prefix in ("0086", "86"):
        if digits.startswith(prefix) and len(digits) > 11:
            digits = digits[len(prefix) :]
            break
    return digits or None


def _unique_lookup(keys: pd.Series, ids: pd.Series) -> dict[str, str]:
    """key → customer_id for keys held by exactly one customer (a shared contact matches none)."""
    pairs = pd.DataFrame({"key": keys, "id": ids}).dropna()
    counts = pairs.groupby("key")["id"].nunique()
    unique_keys = counts[counts == 1].index
    single = pairs[pairs["key"].isin(unique_keys)].drop_duplicates("key")
    return dict(zip(single["key"], single["id"], strict=True))


def resolve_interaction_customers(interactions: pd.DataFrame, customers: pd.DataFrame) -> pd.Series:
    """customer_id when given and known; else unique normalised email; else unique phone."""
    known = set(customers["customer_id"])
    by_email = _unique_lookup(customers["email"].map(normalise_email), customers["customer_id"])
    by_phone = _unique_lookup(customers["phone"].map(normalise_phone), customers["customer_id"])

    def resolve(row: dict) -> str | None:
        given = _text(row["customer_id"])
        if given is not None:
            return given if given in known else None
        email = normalise_email(row["contact_email"])
        if email in by_email:
            return by_email[email]
        return by_phone.get(normalise_phone(row["contact_phone"]))

    return pd.Series(
        [resolve(r) for r in interactions.to_dict("records")],
        index=interactions.index,
        dtype=object,
    )


def load_sources(
    landing_dir: Path | str,
    db_url: str | None,
    timezone: str = "Asia/Shanghai",
    currency: str = "CNY",
    load_date: date | None = None,
) -> Sources:
    """Reads the sources the way a user delivers them and applies contract §1."""
    tz = ZoneInfo(timezone)
    load_date = load_date or datetime.now(tz).date()
    landing = Path(landing_dir)
    frames, dropped = {}, {}
    for entity in ENTITY_COLUMNS:
        raw = _read_entity(landing, db_url, entity)
        frames[entity], dropped[entity] = _valid_latest(raw, entity, tz, load_date, currency)
    customers, orders, payments = frames["customers"], frames["orders"], frames["payments"]
    orphan_orders = ~orders["customer_id"].isin(customers["customer_id"])
    orders = orders[~orphan_orders]
    orphan_payments = ~payments["order_id"].isin(orders["order_id"])
    payments = payments[~orphan_payments]
    interactions = frames["interactions"].copy()
    interactions["customer_id"] = resolve_interaction_customers(interactions, customers)
    unmatched = interactions["customer_id"].isna()
    dropped["orphans"] = int(orphan_orders.sum() + orphan_payments.sum() + unmatched.sum())
    interactions = interactions[~unmatched]
    return Sources(
        customers=customers,
        orders=orders.rename(columns={"ordered_date": "order_date", "discount_amount": "discount"}),
        payments=payments,
        interactions=interactions.rename(columns={"occurred_at": "occurred_utc"}),
        dropped=dropped,
    )


# --------------------------------------------------------------------------------------------
# §1 Profile
# --------------------------------------------------------------------------------------------


def _days_ago(dates: pd.Series, as_of: date) -> pd.Series:
    return pd.Series([(as_of - d).days for d in dates], index=dates.index, dtype="int64")


def _median_gap(days: list[int], min_dates: int) -> float | None:
    """Median of the gaps between consecutive distinct dates (as day numbers)."""
    ordered = sorted(set(days))
    if len(ordered) < min_dates:
        return None
    return float(np.median(np.diff(ordered)))


def _region(region: object, province: object, rules: Rules) -> str:
    """§3.8: the given region, else the region whose province name prefixes the province."""
    if _text(region):
        return _text(region)
    name = _text(province) or ""
    for region_name, provinces in rules.segments.regions.items():
        if name and any(name.startswith(p) for p in provinces):
            return region_name
    return rules.segments.unknown_label


def _cents_to_decimal(cents: int | None) -> Decimal | None:
    return None if cents is None else Decimal(cents) / 100


def group_records(frame: pd.DataFrame, key: str) -> dict[str, list[dict]]:
    """Rows as plain dicts grouped by a key column, keeping the frame's order (fast and plain)."""
    groups: dict[str, list[dict]] = {}
    for record in frame.to_dict("records"):
        groups.setdefault(record[key], []).append(record)
    return groups


def _order_measures(orders: pd.DataFrame, rules: Rules) -> pd.DataFrame:
    """Buyer measures per customer_id from completed orders already limited to days_ago >= 0."""
    p = rules.profile
    rows = []
    for customer_id, group in group_records(orders, "customer_id").items():

        def within(lo: int, hi: int, group: list[dict] = group) -> list[dict]:
            return [o for o in group if lo <= o["days_ago"] < hi]

        last90, last365 = within(0, p.recent_days), within(0, p.year_days)
        prior = within(p.prior_year_from_days, p.prior_year_to_days)
        day_numbers = sorted({-o["days_ago"] for o in group})  # ascending, as_of = 0
        rows.append(
            {
                "customer_id": customer_id,
                "orders_total": len(group),
                "revenue_total_c": sum(o["amount"] for o in group),
                "orders_90d": len(last90),
                "revenue_90d_c": sum(o["amount"] for o in last90),
                "orders_365d": len(last365),
                "revenue_365d_c": sum(o["amount"] for o in last365),
                "orders_prior_year": len(prior),
                "revenue_prior_year_c": sum(o["amount"] for o in prior),
                "discount_orders_365d": sum(1 for o in last365 if o["discount"] > 0),
                "recency_days": -day_numbers[-1],
                "tenure_days": -day_numbers[0],
                "purchase_days": len(day_numbers),
                "median_gap_days": _median_gap(day_numbers, p.median_gap_min_purchase_days),
                "purchase_day_numbers": day_numbers,
            }
        )
    return pd.DataFrame(rows)


def _is_set(value: object) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _latest_nps(group: list[dict]) -> int | None:
    """nps of the latest interaction carrying one: latest date, then timestamp, then row."""
    rated = [i for i in group if _is_set(i["nps"])]
    if not rated:
        return None
    latest = max(rated, key=lambda i: (-i["days_ago"], i["occurred_utc"], i["seq"]))
    return int(latest["nps"])


def _interaction_measures(interactions: pd.DataFrame, rules: Rules) -> pd.DataFrame:
    """Interaction measures per customer_id from interactions limited to days_ago >= 0."""
    recent_days = rules.profile.recent_days
    rows = []
    for customer_id, group in group_records(interactions, "customer_id").items():
        recent = [i for i in group if i["days_ago"] < recent_days]
        scores = [float(i["satisfaction"]) for i in recent if _is_set(i["satisfaction"])]
        outbound_ago = [i["days_ago"] for i in group if i["direction"] == "outbound"]
        rows.append(
            {
                "customer_id": customer_id,
                "interactions_90d": len(recent),
                "inbound_90d": sum(1 for i in recent if i["direction"] == "inbound"),
                "outbound_90d": sum(1 for i in recent if i["direction"] == "outbound"),
                "complaints_90d": sum(1 for i in recent if i["kind"] == "complaint"),
                "avg_satisfaction_90d": sum(scores) / len(scores) if scores else None,
                "latest_nps": _latest_nps(group),
                "last_outbound_days_ago": min(outbound_ago) if outbound_ago else None,
            }
        )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# §3.4 credit and §3.5 relationship inputs
# --------------------------------------------------------------------------------------------


def _paid_days(order: dict, payments: list[dict]) -> tuple[int, int]:
    """(paid_days, collected cents) of one billed order, from its payments up to as_of.

    paid_days counts to the first date on which the cumulative payments reach the amount (0
    when that is before the order date); never reached: days since the order date."""
    per_day: dict[int, int] = {}
    for payment in payments:
        per_day[payment["days_ago"]] = per_day.get(payment["days_ago"], 0) + payment["amount"]
    cumulative = 0
    for days_ago in sorted(per_day, reverse=True):  # oldest payment date first
        cumulative += per_day[days_ago]
        if cumulative >= order["amount"]:
            return max(0, order["days_ago"] - days_ago), order["amount"]
    return order["days_ago"], min(order["amount"], cumulative)


def _credit_measures(orders: pd.DataFrame, payments: pd.DataFrame, rules: Rules) -> pd.DataFrame:
    """collection_ratio and max_paid_days per customer over billed orders (§3.4)."""
    credit = rules.segments.credit
    ago = orders["days_ago"]
    billed = orders[(ago >= credit.billed_min_days) & (ago < credit.billed_max_days)]
    by_order = group_records(payments, "order_id")
    rows = []
    for customer_id, group in group_records(billed, "customer_id").items():
        results = [_paid_days(o, by_order.get(o["order_id"], [])) for o in group]
        total = sum(o["amount"] for o in group)
        rows.append(
            {
                "customer_id": customer_id,
                "collection_ratio": sum(c for _, c in results) / total if total else None,
                "max_paid_days": max(d for d, _ in results),
            }
        )
    return pd.DataFrame(rows, columns=["customer_id", "collection_ratio", "max_paid_days"])


def credit_grade(collection_ratio: float | None, max_paid_days: int | None, rules: Rules) -> str:
    credit = rules.segments.credit
    if max_paid_days is None:
        return credit.unrated
    for grade in credit.grades[:-1]:
        ratio_ok = collection_ratio is not None and collection_ratio >= grade.min_collection_ratio
        if ratio_ok and max_paid_days <= grade.max_paid_days:
            return grade.grade
    return credit.grades[-1].grade


def relationship_level(interactions: list[dict], order_days_ago: list[int], rules: Rules) -> str:
    """Kotler's level (§3.5) from one buyer's interactions (days_ago >= 0) and order days."""
    rel = rules.segments.relationship
    window = [i for i in interactions if i["days_ago"] < rel.window_days]
    outbound = [i for i in window if i["direction"] == "outbound"]
    bounds = rel.quarter_bounds_days
    quarters = sum(
        1
        for lo, hi in zip(bounds, bounds[1:], strict=False)
        if any(lo <= i["days_ago"] < hi for i in outbound)
    )
    visits = sum(1 for i in outbound if i["channel"] in rel.partner_channels)
    if visits >= rel.partner_min_visits and quarters >= rel.partner_min_quarters:
        return "partner"
    if quarters >= rel.proactive_min_quarters:
        return "proactive"
    outbound_days = {i["days_ago"] for i in outbound}
    for order_ago in order_days_ago:
        if order_ago < rel.window_days and any(
            0 <= order_ago - d <= rel.accountable_follow_up_days for d in outbound_days
        ):
            return "accountable"
    if any(i["direction"] == "inbound" for i in window):
        return "reactive"
    return "basic"


# --------------------------------------------------------------------------------------------
# The reference result
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    """The four marts as domain.md defines them (money as Decimal, dates as datetime.date)."""

    profile: pd.DataFrame
    segments: pd.DataFrame
    lifecycle: pd.DataFrame
    churn: pd.DataFrame
    bgnbd_params: tuple[float, float, float, float]


def compute_profile(
    sources: Sources, as_of: date, rules: Rules
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """marts.customer_profile (every customer created on or before as_of), plus the completed
    orders and the interactions up to as_of, each with `days_ago`, for the later sections."""
    customers = sources.customers[sources.customers["created_date"] <= as_of].copy()
    orders = sources.orders[sources.orders["status"] == "completed"].copy()
    orders["days_ago"] = _days_ago(orders["order_date"], as_of)
    orders = orders[orders["days_ago"] >= 0]
    interactions = sources.interactions.copy()
    interactions["days_ago"] = _days_ago(interactions["occurred_date"], as_of)
    interactions = interactions[interactions["days_ago"] >= 0]

    profile = customers[
        ["customer_id", "name", "customer_type", "province", "city", "owner_rep_id"]
    ].copy()
    profile["region"] = [
        _region(r, p, rules)
        for r, p in zip(customers["region"], customers["province"], strict=True)
    ]
    profile["industry"] = [_text(i) or rules.segments.unknown_label for i in customers["industry"]]
    profile["is_key_account_flag"] = customers["is_key_account"].map(lambda v: v is True)
    profile = profile.merge(_order_measures(orders, rules), on="customer_id", how="left")
    profile = profile.merge(
        _interaction_measures(interactions, rules), on="customer_id", how="left"
    )
    profile = _finish_profile(profile, as_of)
    return profile, orders, interactions


def _finish_profile(profile: pd.DataFrame, as_of: date) -> pd.DataFrame:
    """Counts/sums 0 for prospects, buyer-only fields null, money as Decimal, dates as date."""
    count_columns = [
        "orders_total",
        "orders_90d",
        "orders_365d",
        "orders_prior_year",
        "purchase_days",
        "interactions_90d",
        "inbound_90d",
        "outbound_90d",
        "complaints_90d",
    ]
    for column in count_columns:
        profile[column] = profile[column].fillna(0).astype("int64")
    for column in ("revenue_total", "revenue_90d", "revenue_365d", "revenue_prior_year"):
        cents = profile[f"{column}_c"].fillna(0).astype("int64")
        profile[f"{column}_c"] = cents
        profile[column] = cents.map(_cents_to_decimal)
    buyer = profile["orders_total"] > 0
    profile["avg_order_value"] = [
        (Decimal(c) / n / 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP) if n else None
        for c, n in zip(profile["revenue_total_c"], profile["orders_total"], strict=True)
    ]
    profile["last_order_date"] = [
        as_of - timedelta(days=int(d)) if ok else None
        for d, ok in zip(profile["recency_days"], buyer, strict=True)
    ]
    profile["first_order_date"] = [
        as_of - timedelta(days=int(d)) if ok else None
        for d, ok in zip(profile["tenure_days"], buyer, strict=True)
    ]
    profile["discount_order_share_365d"] = [
        d / n if n else None
        for d, n in zip(profile["discount_orders_365d"], profile["orders_365d"], strict=True)
    ]
    profile["last_outbound_date"] = [
        as_of - timedelta(days=int(d)) if pd.notna(d) else None
        for d in profile["last_outbound_days_ago"]
    ]
    profile["as_of"] = as_of
    return profile.reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# §3 Segments
# --------------------------------------------------------------------------------------------


def _value_order(profile: pd.DataFrame) -> pd.DataFrame:
    """revenue_365d descending, then customer_id ascending in plain string order."""
    ranked = profile[["customer_id", "revenue_365d_c"]].copy()
    ranked["neg"] = -ranked["revenue_365d_c"]
    return ranked.sort_values(["neg", "customer_id"], kind="mergesort").reset_index(drop=True)


def _value_tiers_and_key_accounts(profile: pd.DataFrame, rules: Rules) -> pd.DataFrame:
    vt = rules.segments.value_tier
    ranked = _value_order(profile)
    positive = ranked[ranked["revenue_365d_c"] > 0].reset_index(drop=True)
    n = len(positive)
    high_cut, medium_cut = math.ceil(vt.high_share * n), math.ceil(vt.medium_share * n)
    tiers = {}
    for position, customer_id in enumerate(positive["customer_id"], start=1):
        tiers[customer_id] = (
            "high" if position <= high_cut else "medium" if position <= medium_cut else "low"
        )
    total = int(ranked["revenue_365d_c"].sum())
    before = ranked["revenue_365d_c"].cumsum() - ranked["revenue_365d_c"]
    share = rules.segments.key_account_revenue_share
    top_half = {
        cid
        for cid, b in zip(ranked["customer_id"], before, strict=True)
        if total > 0 and b < share * total
    }
    return pd.DataFrame(
        {
            "customer_id": profile["customer_id"],
            "value_tier": profile["customer_id"].map(lambda c: tiers.get(c, "none")),
            "is_key_account": [
                bool(flag) or cid in top_half
                for cid, flag in zip(
                    profile["customer_id"], profile["is_key_account_flag"], strict=True
                )
            ],
        }
    )


def _score_up(values: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    return 1 + (values[:, None] > quantiles[None, :]).sum(axis=1)


def _rfm(profile: pd.DataFrame, rules: Rules) -> pd.DataFrame:
    """r/f/m scores, rfm_segment and rfm_class over the scored (buyer) customers."""
    rfm = rules.segments.rfm
    scored = profile[profile["orders_total"] > 0]
    r = scored["recency_days"].to_numpy(dtype=float)
    f = scored["orders_365d"].to_numpy(dtype=float)
    m = scored["revenue_365d_c"].to_numpy(dtype=float) / 100
    levels = np.asarray(rfm.quantiles)
    out = pd.DataFrame({"customer_id": scored["customer_id"].to_numpy()})
    if len(scored) == 0:
        return out.assign(r_score=[], f_score=[], m_score=[], rfm_segment=[], rfm_class=[])
    out["f_score"] = _score_up(f, np.quantile(f, levels, method="linear"))
    out["m_score"] = _score_up(m, np.quantile(m, levels, method="linear"))
    out["r_score"] = 6 - _score_up(r, np.quantile(r, levels, method="linear"))
    out["rfm_segment"] = [
        rfm.segment(rs, fs) for rs, fs in zip(out["r_score"], out["f_score"], strict=True)
    ]
    key_r = np.where(r < r.mean(), "H", "L")
    key_f = np.where(f > f.mean(), "H", "L")
    key_m = np.where(m > m.mean(), "H", "L")
    out["rfm_class"] = [rfm.classes[a + b + c] for a, b, c in zip(key_r, key_f, key_m, strict=True)]
    return out


def loyalty(orders_365d: int, latest_nps: int | None, rules: Rules) -> str:
    lr = rules.segments.loyalty
    if orders_365d == 0 or (latest_nps is not None and latest_nps <= lr.disloyal_max_nps):
        return "disloyal"
    if orders_365d >= lr.loyal_min_orders_365d and (
        latest_nps is None or latest_nps >= lr.loyal_min_nps
    ):
        return "loyal"
    if orders_365d >= lr.promoter_min_orders_365d and (
        latest_nps is not None and latest_nps >= lr.promoter_min_nps
    ):
        return "loyal"
    return "neutral"


def compute_segments(
    profile: pd.DataFrame,
    orders: pd.DataFrame,
    payments: pd.DataFrame,
    interactions: pd.DataFrame,
    as_of: date,
    rules: Rules,
) -> pd.DataFrame:
    """marts.customer_segments, one row per profile customer."""
    segments = _value_tiers_and_key_accounts(profile, rules)
    segments = segments.merge(_rfm(profile, rules), on="customer_id", how="left")
    payments = payments.copy()
    payments["days_ago"] = _days_ago(payments["paid_date"], as_of)
    payments = payments[payments["days_ago"] >= 0]
    credit = _credit_measures(orders, payments, rules)
    segments = segments.merge(credit, on="customer_id", how="left")
    # §0: the classes of §3.3–§3.7 are buyer-only, so a prospect has no grade (not `unrated`).
    is_buyer = profile.set_index("customer_id")["orders_total"].gt(0)
    segments["credit_grade"] = [
        credit_grade(None if pd.isna(c) else float(c), None if pd.isna(d) else int(d), rules)
        if is_buyer[cid]
        else None
        for cid, c, d in zip(
            segments["customer_id"],
            segments["collection_ratio"],
            segments["max_paid_days"],
            strict=True,
        )
    ]
    by_customer_interactions = group_records(interactions, "customer_id")
    by_customer_orders = {
        k: [o["days_ago"] for o in g] for k, g in group_records(orders, "customer_id").items()
    }
    info = profile.set_index("customer_id")
    levels, loyalties, sensitive = [], [], []
    ps = rules.segments.price_sensitivity
    for customer_id in segments["customer_id"]:
        row = info.loc[customer_id]
        if row["orders_total"] == 0:
            levels.append(None)
            loyalties.append(None)
            sensitive.append(None)
            continue
        levels.append(
            relationship_level(
                by_customer_interactions.get(customer_id, []),
                by_customer_orders.get(customer_id, []),
                rules,
            )
        )
        nps = None if pd.isna(row["latest_nps"]) else int(row["latest_nps"])
        loyalties.append(loyalty(int(row["orders_365d"]), nps, rules))
        share = row["discount_order_share_365d"]
        sensitive.append(
            None
            if row["orders_365d"] < ps.min_orders_365d
            else bool(share >= ps.min_discount_share)
        )
    segments["relationship_level"] = levels
    segments["loyalty"] = loyalties
    segments["is_price_sensitive"] = sensitive
    segments["region"] = profile["region"].to_numpy()
    segments["industry"] = profile["industry"].to_numpy()
    return segments


# --------------------------------------------------------------------------------------------
# §2 Lifecycle
# --------------------------------------------------------------------------------------------


def _threshold(median_gap: float | None, min_days: int, multiplier: float, default: int) -> float:
    if median_gap is None or (isinstance(median_gap, float) and math.isnan(median_gap)):
        return float(default)
    return max(float(min_days), multiplier * median_gap)


def lifecycle_stage(row: dict, rules: Rules) -> str:
    """The first §2 rule that matches, for one profile row."""
    lc = rules.lifecycle
    if row["orders_total"] == 0:
        return "prospect"
    gap = row["median_gap_days"]
    churn = lc.churn_threshold
    churn_days = _threshold(gap, churn.min_days, churn.gap_multiplier, churn.default_days)
    if row["recency_days"] > churn_days:
        return "churned"
    dates = row["purchase_day_numbers"]
    if row["recency_days"] < lc.won_back_recent_days and len(dates) >= 2:
        before_last = _median_gap(dates[:-1], rules.profile.median_gap_min_purchase_days)
        threshold_before = _threshold(
            before_last, churn.min_days, churn.gap_multiplier, churn.default_days
        )
        if dates[-1] - dates[-2] > threshold_before:
            return "won_back"
    if row["tenure_days"] < lc.new_customer_days:
        return "new"
    risk = lc.at_risk_threshold
    if row["recency_days"] > _threshold(gap, risk.min_days, risk.gap_multiplier, risk.default_days):
        return "at_risk"
    if row["tenure_days"] >= lc.loyal_min_tenure_days and (
        row["orders_365d"] >= lc.loyal_min_orders_365d
    ):
        return "loyal"
    return "active"


def compute_lifecycle(profile: pd.DataFrame, as_of: date, rules: Rules) -> pd.DataFrame:
    """marts.customer_lifecycle of a first run (no history: entered on as_of, no previous)."""
    return pd.DataFrame(
        {
            "customer_id": profile["customer_id"],
            "stage": [lifecycle_stage(r, rules) for r in profile.to_dict("records")],
            "stage_since": as_of,
            "previous_stage": None,
            "as_of": as_of,
        }
    )


# --------------------------------------------------------------------------------------------
# §4 BG/NBD (Fader, Hardie & Lee 2005)
# --------------------------------------------------------------------------------------------


def bgnbd_log_likelihood(
    params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
) -> np.ndarray:
    """Per-customer log-likelihood (FHL 2005, eq. 6), a density in t_x."""
    r, alpha, a, b = params
    common = gammaln(r + x) - gammaln(r) + r * np.log(alpha) - betaln(a, b)
    first = common + betaln(a, b + x) - (r + x) * np.log(alpha + T)
    repeat = x > 0
    b_minus = np.where(repeat, b + x - 1, 1.0)
    second = common + betaln(a + 1, b_minus) - (r + x) * np.log(alpha + t_x)
    return np.where(repeat, np.logaddexp(first, second), first)


def fit_bgnbd(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> tuple[float, float, float, float]:
    """Maximum-likelihood (r, alpha, a, b), optimised on log parameters and polished."""
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    keys = pd.DataFrame({"x": x, "t": t_x, "T": T}).value_counts().reset_index()
    ux, ut, uT, weight = (keys[c].to_numpy(dtype=float) for c in ("x", "t", "T", "count"))

    def negative(log_params: np.ndarray) -> float:
        ll = bgnbd_log_likelihood(np.exp(log_params), ux, ut, uT)
        value = -float(np.sum(weight * ll))
        return value if math.isfinite(value) else 1e300

    start = np.log([1.0, max(1.0, float(np.mean(T))), 1.0, 1.0])
    first = minimize(negative, start, method="L-BFGS-B")
    polished = minimize(
        negative,
        first.x,
        method="Nelder-Mead",
        options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 40000, "maxfev": 40000},
    )
    best = polished if polished.fun <= first.fun else first
    r, alpha, a, b = np.exp(best.x)
    return float(r), float(alpha), float(a), float(b)


def _odds_dead(params, x, t_x, T) -> np.ndarray:
    """log of a/(b+x-1) · ((α+T)/(α+t_x))^(r+x) for x > 0 (−inf for x = 0)."""
    r, alpha, a, b = params
    repeat = x > 0
    b_minus = np.where(repeat, b + x - 1, 1.0)
    log_odds = np.log(a) - np.log(b_minus) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
    return np.where(repeat, log_odds, -np.inf)


def p_alive(params, x, t_x, T) -> np.ndarray:
    """P(alive | x, t_x, T) (FHL 2005, eq. 11); 1 when x = 0."""
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    return expit(-_odds_dead(params, x, t_x, T))


def expected_purchases(params, t: float, x, t_x, T) -> np.ndarray:
    """E[Y(t) | x, t_x, T] (FHL 2005, eq. 10): expected purchases in the next t days."""
    r, alpha, a, b = params
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    z = t / (alpha + T + t)
    bracket = 1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp2f1(
        r + x, b + x, a + b + x - 1, z
    )
    return (a + b + x - 1) / (a - 1) * bracket * p_alive(params, x, t_x, T)


# --------------------------------------------------------------------------------------------
# §4 Churn risk
# --------------------------------------------------------------------------------------------

SIGNAL_ORDER = (
    "overdue",
    "frequency_drop",
    "spend_drop",
    "complaints",
    "low_satisfaction",
    "low_p_alive",
    "neglected_key_account",
)


def churn_signals(row: dict, rules: Rules) -> list[str]:
    """The names of the §4 signals that fire for one scored customer, in table order."""
    s = rules.churn.signals
    fired = []
    gap = row["median_gap_days"]
    has_gap = gap is not None and not (isinstance(gap, float) and math.isnan(gap))
    limit = s.overdue.gap_multiplier * gap if has_gap else s.overdue.default_days
    if row["recency_days"] > limit:
        fired.append("overdue")
    prior_orders = row["orders_prior_year"]
    if prior_orders >= s.frequency_drop.min_prior_orders and (
        row["orders_90d"] < s.frequency_drop.ratio * prior_orders / 4
    ):
        fired.append("frequency_drop")
    prior_cents = row["revenue_prior_year_c"]
    if (
        prior_cents > 0
        and prior_orders >= s.spend_drop.min_prior_orders
        and row["revenue_90d_c"] < s.spend_drop.ratio * prior_cents / 4
    ):
        fired.append("spend_drop")
    if row["complaints_90d"] >= s.complaints.min_complaints:
        fired.append("complaints")
    sat = row["avg_satisfaction_90d"]
    if sat is not None and not math.isnan(sat) and sat <= s.low_satisfaction.max_avg_satisfaction:
        fired.append("low_satisfaction")
    if (
        row["purchase_days"] >= s.low_p_alive.min_purchase_days
        and row["p_alive"] < s.low_p_alive.max_p_alive
    ):
        fired.append("low_p_alive")
    last_out = row["last_outbound_days_ago"]
    contacted = last_out is not None and not math.isnan(last_out)
    if row["is_key_account"] and not (
        contacted and last_out < s.neglected_key_account.no_outbound_days
    ):
        fired.append("neglected_key_account")
    return fired


def compute_churn(
    profile: pd.DataFrame,
    segments: pd.DataFrame,
    lifecycle: pd.DataFrame,
    as_of: date,
    rules: Rules,
) -> tuple[pd.DataFrame, tuple[float, float, float, float]]:
    """marts.churn_risk for the scored stages; BG/NBD fitted on all buyers."""
    buyers = profile[profile["orders_total"] > 0]
    x = buyers["purchase_days"].to_numpy(dtype=float) - 1
    t_x = (buyers["tenure_days"] - buyers["recency_days"]).to_numpy(dtype=float)
    T = buyers["tenure_days"].to_numpy(dtype=float)
    params = fit_bgnbd(x, t_x, T)
    horizon = rules.churn.expected_orders_horizon_days
    model = pd.DataFrame(
        {
            "customer_id": buyers["customer_id"].to_numpy(),
            "p_alive": p_alive(params, x, t_x, T),
            "expected_orders_90d": expected_purchases(params, horizon, x, t_x, T),
        }
    )
    frame = (
        profile.merge(segments[["customer_id", "is_key_account"]], on="customer_id")
        .merge(lifecycle[["customer_id", "stage"]], on="customer_id")
        .merge(model, on="customer_id", how="left")
    )
    frame = frame[frame["stage"].isin(rules.churn.scored_stages)]
    weights = {name: getattr(rules.churn.signals, name).weight for name in SIGNAL_ORDER}
    rows = []
    for row in frame.to_dict("records"):
        fired = churn_signals(row, rules)
        score = min(rules.churn.max_score, sum(weights[name] for name in fired))
        rows.append(
            {
                "customer_id": row["customer_id"],
                "as_of": as_of,
                "risk_score": score,
                "risk_level": rules.churn.level(score),
                "p_alive": row["p_alive"],
                "expected_orders_90d": row["expected_orders_90d"],
                "signals": ",".join(fired),
                "signal_count": len(fired),
            }
        )
    return pd.DataFrame(rows), params


def compute_reference(
    landing_dir: Path | str,
    db_url: str | None,
    as_of: date,
    timezone: str = "Asia/Shanghai",
    rules: Rules | None = None,
) -> Reference:
    """Every mart of domain.md §1–§4 from the raw sources, for one as_of."""
    rules = rules or default_rules()
    sources = load_sources(landing_dir, db_url, timezone, rules.quality.currency)
    profile, orders, interactions = compute_profile(sources, as_of, rules)
    orders = orders[orders["customer_id"].isin(profile["customer_id"])]
    segments = compute_segments(profile, orders, sources.payments, interactions, as_of, rules)
    lifecycle = compute_lifecycle(profile, as_of, rules)
    churn, params = compute_churn(profile, segments, lifecycle, as_of, rules)
    return Reference(profile, segments, lifecycle, churn, params)
