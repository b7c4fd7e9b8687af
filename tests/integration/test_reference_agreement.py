"""The published marts agree, column by column, with an independent implementation of domain.md.

Why: acceptance compares every column of customer_profile, customer_segments, customer_lifecycle
and churn_risk with its own implementation on held-out data (100 % on edge cases, ≥ 99.9 % on a
few thousand synthetic customers). `tests/reference/domain_reference.py` is our stand-in for that
implementation, written only from domain.md and contract.md; this test runs the real pipeline
once on a seeded demo world and demands 100 % agreement on every deterministic column.

Tolerances: numbers 1e-6 relative, money exact to the cent, dates and labels exact; the BG/NBD
outputs (p_alive, expected_orders_90d) depend on a numerical optimum and get 1e-4 relative.
Every disagreement is printed and written to `disagreements.csv` in the run's folder.
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from tests.reference.domain_reference import (
    Reference,
    bgnbd_log_likelihood,
    compute_reference,
    fit_bgnbd,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
AS_OF = date(2026, 6, 30)
CUSTOMERS = 1500
SEED = 7
DETERMINISTIC_RELATIVE_TOLERANCE = 1e-6
MODEL_RELATIVE_TOLERANCE = 1e-4
MODEL_MIN_AGREEMENT = 0.999  # the acceptance bar on synthetic data

# (table, column, kind) — kind picks the comparison: text, int, bool, money, date, number,
# signals (comma-separated list), lines (number of reason lines = number of signals), model.
COLUMNS: list[tuple[str, str, str]] = [
    *[
        ("customer_profile", c, "text")
        for c in ("name", "customer_type", "industry", "region", "province", "city")
    ],
    ("customer_profile", "owner_rep_id", "text"),
    ("customer_profile", "first_order_date", "date"),
    ("customer_profile", "last_order_date", "date"),
    *[
        ("customer_profile", c, "int")
        for c in (
            "orders_total",
            "orders_90d",
            "orders_365d",
            "recency_days",
            "tenure_days",
            "purchase_days",
            "orders_prior_year",
            "interactions_90d",
            "inbound_90d",
            "outbound_90d",
            "complaints_90d",
            "latest_nps",
        )
    ],
    *[
        ("customer_profile", c, "money")
        for c in (
            "revenue_total",
            "revenue_90d",
            "revenue_365d",
            "avg_order_value",
            "revenue_prior_year",
        )
    ],
    ("customer_profile", "median_gap_days", "number"),
    ("customer_profile", "discount_order_share_365d", "number"),
    ("customer_profile", "avg_satisfaction_90d", "number"),
    ("customer_profile", "last_outbound_date", "date"),
    *[
        ("customer_segments", c, "text")
        for c in (
            "value_tier",
            "rfm_segment",
            "rfm_class",
            "credit_grade",
            "relationship_level",
            "loyalty",
            "region",
            "industry",
        )
    ],
    ("customer_segments", "is_key_account", "bool"),
    ("customer_segments", "is_price_sensitive", "bool"),
    *[("customer_segments", c, "int") for c in ("r_score", "f_score", "m_score", "max_paid_days")],
    ("customer_segments", "collection_ratio", "number"),
    ("customer_lifecycle", "stage", "text"),
    ("customer_lifecycle", "stage_since", "date"),
    ("customer_lifecycle", "previous_stage", "text"),
    ("churn_risk", "risk_score", "int"),
    ("churn_risk", "risk_level", "text"),
    ("churn_risk", "signals", "signals"),
    ("churn_risk", "reasons", "lines"),
]
MODEL_COLUMNS = [("churn_risk", "p_alive"), ("churn_risk", "expected_orders_90d")]
TABLES = ("customer_profile", "customer_segments", "customer_lifecycle", "churn_risk")


# ---------------------------------------------------------------------------------------------
# Normalising values of both sides to comparable Python values
# ---------------------------------------------------------------------------------------------


def _missing(value: object) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def _as_money(value: object) -> Decimal:
    """Exact to the cent: a Decimal as it is, a float rounded to the nearest cent."""
    cents = int(value * 100) if isinstance(value, Decimal) else round(float(value) * 100)
    return Decimal(cents).scaleb(-2)


def _as_date(value: object) -> date:
    if isinstance(value, datetime | pd.Timestamp):
        return value.date()
    return value  # already a date


def _as_signal_list(value: object) -> tuple[str, ...]:
    return tuple(s.strip() for s in str(value).split(",") if s.strip())


_NORMALISE: dict[str, Callable[[object], object]] = {
    "text": str,
    "int": int,
    "bool": bool,
    "money": _as_money,
    "date": _as_date,
    "number": float,
    "model": float,
    "signals": _as_signal_list,
    "lines": lambda v: len([line for line in str(v).splitlines() if line.strip()]),
}


def normalised(value: object, kind: str) -> object:
    if _missing(value):
        return None
    return _NORMALISE[kind](value)


def values_agree(ref: object, pipe: object, kind: str, rel_tol: float) -> bool:
    if ref is None or pipe is None:
        return ref is None and pipe is None
    if kind in ("number", "model"):
        return math.isclose(ref, pipe, rel_tol=rel_tol, abs_tol=1e-12)
    return ref == pipe


# ---------------------------------------------------------------------------------------------
# The world: demo data, one pipeline run, the reference
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Disagreement:
    table: str
    column: str
    customer_id: str
    reference: object
    pipeline: object


@dataclass(frozen=True)
class World:
    root: Path
    reference: Reference
    published: dict[str, dict[str, dict]]  # table -> customer_id -> row


def _run(args: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (
        f"{' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )


def _published_rows(path: Path) -> dict[str, dict[str, dict]]:
    with duckdb.connect(str(path), read_only=True) as con:
        tables = {}
        for table in TABLES:
            cursor = con.execute(f"SELECT * FROM marts.{table}")  # noqa: S608 — fixed names
            names = [d[0] for d in cursor.description]
            rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
            tables[table] = {row["customer_id"]: row for row in rows}
    return tables


def _reference_rows(reference: Reference) -> dict[str, dict[str, dict]]:
    frames = {
        "customer_profile": reference.profile,
        "customer_segments": reference.segments,
        "customer_lifecycle": reference.lifecycle,
        "churn_risk": reference.churn.assign(reasons=reference.churn["signal_count"]),
    }
    return {
        table: {row["customer_id"]: row for row in frame.to_dict("records")}
        for table, frame in frames.items()
    }


# Edge cases added on top of the demo world (same single run): boundaries of every window,
# versions, time zones, matching and formats. The test needs no expected values for them — both
# sides must agree — but each row says which rule it probes.
def _ago(days: int, clock: str = "10:00:00") -> str:
    return f"{AS_OF - timedelta(days=days)} {clock}"


EDGE_CUSTOMERS = [
    # Two versions of E001: the later row wins (industry 物流); 内蒙古自治区 → 华北 by prefix.
    {"customer_id": "E001", "name": "边界一号", "customer_type": "company", "industry": "制造业",
     "province": "内蒙古自治区", "email": " Edge.One@Example.com ", "phone": "138-9999-0001",
     "owner_rep_id": "R002", "is_key_account": "是", "created_at": "2023-01-01 08:00:00"},
    {"customer_id": "E001", "name": "边界一号", "customer_type": "company", "industry": " 物流 ",
     "province": "内蒙古自治区", "email": " Edge.One@Example.com ", "phone": "138-9999-0001",
     "owner_rep_id": "R002", "is_key_account": "是", "created_at": "2023-01-01 08:00:00"},
    # Explicit region wins (trimmed); shares its e-mail with E003.
    {"customer_id": "E002", "name": "边界二号", "customer_type": "person", "region": " 华东 ",
     "province": "California", "email": "shared@example.com", "phone": "13899990002",
     "created_at": "2024-01-01 10:00"},
    # Non-Chinese province → 未知; compact date format; same shared e-mail.
    {"customer_id": "E003", "name": "边界三号", "customer_type": "person",
     "province": "California", "email": "SHARED@example.com", "phone": "+86 138 9999 0003",
     "created_at": "20240101"},
    # Created after as_of in local time (16:30 UTC = 00:30 next day in Shanghai): not in the run.
    {"customer_id": "E004", "name": "未来客户", "customer_type": "person",
     "created_at": f"{AS_OF}T16:30:00Z"},
    # Created at 23:59:59 local on as_of: exists, a prospect with interactions.
    {"customer_id": "E005", "name": "当天客户", "customer_type": "person",
     "created_at": f"{AS_OF}T15:59:59Z"},
    # Key account by flag, last outbound contact exactly 60 days ago (neglected).
    {"customer_id": "E006", "name": "冷落大客户", "customer_type": "company", "industry": "能源",
     "province": "广西壮族自治区", "is_key_account": "yes", "created_at": "2024-03-01"},
    # Won back: rhythm of 20 days before the last purchase, then a gap of 650 days.
    {"customer_id": "E007", "name": "挽回一号", "customer_type": "person", "province": "黑龙江省",
     "created_at": "2024-01-01"},
    # Won back with fewer than 3 dates before the last one: threshold 365, gap 391.
    {"customer_id": "E008", "name": "挽回二号", "customer_type": "person", "province": "香港",
     "created_at": "2024-01-01"},
    # Not won back: gap 350 is below the default 365.
    {"customer_id": "E009", "name": "挽回三号", "customer_type": "person", "province": "西藏自治区",
     "created_at": "2024-01-01"},
]  # fmt: skip

EDGE_ORDERS = [
    # order_id, customer_id, ordered_at, amount, discount_amount, status
    ("EO01", "E001", _ago(730), "1000.00", "0", "completed"),  # not billed (730 not < 730)
    ("EO02", "E001", _ago(455), "200.00", "0", "completed"),  # not prior year (455)
    ("EO03", "E001", _ago(454), "300.00", "0", "completed"),  # prior year
    ("EO04", "E001", _ago(365), "400.00", "10", "completed"),  # not in 365d; prior year
    ("EO05", "E001", _ago(364), "500.00", "0", "completed"),  # in 365d
    ("EO06", "E001", _ago(90), "600.00", "20", "completed"),  # not in 90d; prior year
    ("EO07", "E001", _ago(89), "700.00", "0", "completed"),  # in 90d
    ("EO08", "E001", _ago(30), "800.01", "0", "completed"),  # billed (30)
    ("EO09", "E001", _ago(29), "100.00", "0", "completed"),  # not billed (29)
    ("EO10", "E001", f"{AS_OF} 23:59:59", "50.00", "5", "completed"),  # counts (as_of)
    ("EO11", "E001", f"{AS_OF + timedelta(days=1)} 00:00:00", "999.00", "0", "completed"),
    ("EO12", "E001", f"{AS_OF}T16:00:00Z", "999.00", "0", "completed"),  # 00:00 next day local
    ("EO13", "E001", _ago(10), "5000.00", "0", "completed"),
    ("EO13", "E001", _ago(10), "5000.00", "0", "cancelled"),  # later version: not a purchase
    ("EO14", "E001", _ago(20), "250.00", "0", "pending"),
    ("EO14", "E001", _ago(20), "250.00", "0", "completed"),  # later version: a purchase
    ("EO20", "E002", _ago(10, "10:00:00"), "100.00", "10", "completed"),  # same day twice
    ("EO21", "E002", _ago(10, "18:00:00"), "100.00", "0", "completed"),
    ("EO22", "E002", _ago(40), "100.00", "10", "completed"),
    ("EO23", "E002", _ago(41), "100.00", "0", "completed"),  # discount share 2/4 = 0.5
    ("EO30", "E003", _ago(400), "300.00", "0", "completed"),  # one purchase date, churned
    ("EO40", "E006", _ago(5), "20000.00", "0", "completed"),
    *[(f"EO5{i}", "E007", _ago(d), "100.00", "0", "completed") for i, d in enumerate((700, 680, 660, 10))],
    *[(f"EO6{i}", "E008", _ago(d), "100.00", "0", "completed") for i, d in enumerate((500, 480, 89))],
    *[(f"EO7{i}", "E009", _ago(d), "100.00", "0", "completed") for i, d in enumerate((400, 380, 30))],
]  # fmt: skip

EDGE_PAYMENTS = [
    ("EP01", "EO08", _ago(20), "400.00"),  # EO08 reaches its amount on as_of: 30 days
    ("EP02", "EO08", _ago(0), "400.01"),
    ("EP03", "EO06", _ago(95), "600.00"),  # paid before the order date: 0 days
    ("EP04", "EO05", _ago(300), "250.00"),  # never complete: days since order, 250 collected
    ("EP05", "EO07", _ago(60), "800.00"),  # overpaid: collected capped at 700
    ("EP06", "EO03", _ago(400), "300.00"),
    ("EP07", "EO04", f"{AS_OF + timedelta(days=1)} 09:00:00", "400.00"),  # after as_of
]

EDGE_INTERACTIONS = [
    # interaction_id, customer_id, contact_email, contact_phone, occurred_at, channel, direction,
    # kind, satisfaction, nps
    ("EI01", "E002", "", "", _ago(5, "10:00:00"), "survey", "inbound", "survey", "", "3"),
    ("EI02", "E002", "", "", _ago(5, "15:00:00"), "survey", "inbound", "survey", "", "9"),  # latest
    ("EI03", "E002", "", "", _ago(1), "phone", "inbound", "complaint", "2", ""),
    ("EI04", "E002", "", "", _ago(3), "chat", "inbound", "support", "3", ""),  # avg 2.5
    ("EI05", "E002", "", "", _ago(89), "ticket", "inbound", "complaint", "", ""),  # 2 complaints
    ("EI06", "E002", "", "", _ago(90), "ticket", "inbound", "complaint", "1", ""),  # outside 90d
    ("EI07", "E002", "", "", f"{AS_OF}T17:00:00Z", "phone", "inbound", "complaint", "1", ""),
    ("EI10", "E005", "", "", _ago(0, "09:00:00"), "survey", "inbound", "survey", "", "4"),
    ("EI11", "E005", "", "", _ago(0, "09:00:00"), "survey", "inbound", "survey", "", "8"),  # row
    ("EI12", "E005", "", "", _ago(0, "11:00:00"), "phone", "outbound", "marketing", "", ""),
    ("EI20", "", " EDGE.ONE@example.COM", "", _ago(10), "visit", "outbound", "visit", "", ""),
    ("EI21", "", "", "0086 138-9999-0001", _ago(100), "visit", "outbound", "visit", "", ""),
    ("EI22", "E001", "", "", _ago(200), "meeting", "outbound", "visit", "", ""),
    ("EI23", "E001", "", "", _ago(300), "visit", "outbound", "visit", "", ""),  # partner
    ("EI24", "E001", "", "", _ago(365), "meeting", "outbound", "visit", "", ""),  # outside
    ("EI30", "", "", "8613899990003", _ago(50), "phone", "inbound", "inquiry", "", ""),  # E003
    ("EI31", "", "shared@example.com", "", _ago(50), "email", "inbound", "inquiry", "", ""),  # none
    # Shared e-mail (matches none), so the phone decides: E002 (contract §1 "else by phone").
    ("EI32", "", "Shared@example.com", "138 9999 0002", _ago(50), "email", "inbound", "inquiry", "", ""),
    ("EI40", "E006", "", "", _ago(60), "phone", "outbound", "follow_up", "", ""),  # neglected
    ("EI50", "E007", "", "", _ago(4), "phone", "outbound", "follow_up", "", ""),  # follows EO53
]  # fmt: skip


def _write_csv(path: Path, header: list[str], rows: list) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def add_edge_cases(landing: Path) -> None:
    """Writes the edge cases as extra landing files (customers as JSONL, the rest CSV)."""
    lines = [json.dumps(c, ensure_ascii=False) for c in EDGE_CUSTOMERS]
    (landing / "customers" / "zz_edge_cases.jsonl").write_text("\n".join(lines) + "\n", "utf-8")
    _write_csv(
        landing / "orders" / "edge_orders.csv",
        ["order_id", "customer_id", "ordered_at", "amount", "discount_amount", "status"],
        EDGE_ORDERS,
    )
    _write_csv(
        landing / "payments" / "edge_payments.csv",
        ["payment_id", "order_id", "paid_at", "amount"],
        EDGE_PAYMENTS,
    )
    _write_csv(
        landing / "interactions" / "zz_edge_cases.csv",
        [
            "interaction_id",
            "customer_id",
            "contact_email",
            "contact_phone",
            "occurred_at",
            "channel",
            "direction",
            "kind",
            "satisfaction",
            "nps",
        ],
        EDGE_INTERACTIONS,
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """1,500 demo customers as of 2026-06-30, one `python -m pipelines.run`, the reference."""
    root = tmp_path_factory.mktemp("reference_world")
    landing, db_url = root / "landing", f"sqlite:///{root / 'source' / 'shop.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMTP_", "CRM_", "DAGSTER"))}
    demo = [sys.executable, "-m", "crm.demo", "--customers", str(CUSTOMERS), "--seed", str(SEED)]
    demo += ["--as-of", AS_OF.isoformat(), "--landing", str(landing), "--db-url", db_url]
    _run(demo, env)
    add_edge_cases(landing)
    env |= {
        "CRM_LANDING_DIR": str(landing),
        "CRM_SOURCE_DB_URL": db_url,
        "CRM_WAREHOUSE": str(root / "warehouse" / "warehouse.duckdb"),
        "CRM_PUBLISH_DIR": str(root / "published"),
        "CRM_MAIL_DIR": str(root / "mail"),
        "CRM_AS_OF": AS_OF.isoformat(),
        "CRM_TIMEZONE": "Asia/Shanghai",
    }
    _run([sys.executable, "-m", "pipelines.run"], env)
    reference = compute_reference(landing, db_url, AS_OF, "Asia/Shanghai")
    return World(root, reference, _published_rows(root / "published" / "analytics.duckdb"))


def disagreements(
    world: World, table: str, column: str, kind: str, rel_tol: float
) -> list[Disagreement]:
    """Every customer where the two sides differ on one column (a missing row differs too)."""
    ref_rows = _reference_rows(world.reference)[table]
    pipe_rows = world.published[table]
    found = []
    for customer_id in sorted(set(ref_rows) | set(pipe_rows)):
        ref_row, pipe_row = ref_rows.get(customer_id), pipe_rows.get(customer_id)
        if ref_row is None or pipe_row is None:
            found.append(
                Disagreement(table, column, customer_id, ref_row and "row", pipe_row and "row")
            )
            continue
        ref_kind = "int" if kind == "lines" else kind
        ref = normalised(ref_row.get(column), ref_kind)
        pipe = normalised(pipe_row.get(column), kind)
        if not values_agree(ref, pipe, kind, rel_tol):
            found.append(Disagreement(table, column, customer_id, ref, pipe))
    return found


def _record(world: World, found: list[Disagreement]) -> None:
    """Appends the disagreements to disagreements.csv in the world folder and prints them."""
    path = world.root / "disagreements.csv"
    new_file = not path.exists()
    with path.open("a", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        if new_file:
            writer.writerow(["table", "column", "customer_id", "reference", "pipeline"])
        for d in found:
            writer.writerow([d.table, d.column, d.customer_id, d.reference, d.pipeline])
    for d in found:
        print(
            f"{d.table}.{d.column} {d.customer_id}: reference={d.reference!r} pipeline={d.pipeline!r}"
        )
    print(f"recorded in {path}")


def _summary(found: list[Disagreement], total: int, limit: int = 25) -> str:
    lines = [f"{len(found)} of {total} customers disagree"]
    lines += [
        f"  {d.customer_id}: reference={d.reference!r} pipeline={d.pipeline!r}"
        for d in found[:limit]
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("table", TABLES)
def test_same_customers_in_each_table(world: World, table: str):
    reference_ids = set(_reference_rows(world.reference)[table])
    assert reference_ids, "the reference produced no rows"
    assert set(world.published[table]) == reference_ids


@pytest.mark.parametrize(
    ("table", "column", "kind"), COLUMNS, ids=[f"{t}.{c}" for t, c, _ in COLUMNS]
)
def test_deterministic_column_agrees_fully(world: World, table: str, column: str, kind: str):
    found = disagreements(world, table, column, kind, DETERMINISTIC_RELATIVE_TOLERANCE)
    _record(world, found)
    total = len(world.published[table])
    assert not found, f"{table}.{column}: " + _summary(found, total)


@pytest.mark.parametrize(("table", "column"), MODEL_COLUMNS, ids=[c for _, c in MODEL_COLUMNS])
def test_bgnbd_column_agrees_within_model_tolerance(world: World, table: str, column: str):
    found = disagreements(world, table, column, "model", MODEL_RELATIVE_TOLERANCE)
    _record(world, found)
    total = len(world.published[table])
    print(f"reference BG/NBD (r, alpha, a, b) in days: {world.reference.bgnbd_params}")
    assert 1 - len(found) / total >= MODEL_MIN_AGREEMENT, f"{table}.{column}: " + _summary(
        found, total
    )


def _cdnow_calibration() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x, t_x, T in weeks on the CDNOW 1/10 sample: calibration through 1997-09-30 inclusive,
    same-day purchases merged (domain.md §4)."""
    raw = pd.read_csv(
        REPO / "tests" / "data" / "cdnow_sample.txt",
        sep=r"\s+",
        header=None,
        names=["master_id", "customer", "date", "cds", "dollars"],
        dtype={"date": str},
    )
    raw["day"] = pd.to_datetime(raw["date"], format="%Y%m%d")
    end = pd.Timestamp("1997-09-30")
    calibration = raw[raw["day"] <= end].drop_duplicates(["customer", "day"])
    per = calibration.groupby("customer")["day"].agg(["min", "max", "count"])
    x = (per["count"] - 1).to_numpy(dtype=float)
    t_x = ((per["max"] - per["min"]).dt.days / 7).to_numpy()
    T = ((end - per["min"]).dt.days / 7).to_numpy()
    return x, t_x, T


def test_reference_bgnbd_reproduces_the_published_cdnow_fit():
    """The reference's own BG/NBD must match Fader, Hardie & Lee (2005) before it may judge:
    r = 0.243, α = 4.414, a = 0.793, b = 2.426, log-likelihood −9582.4 (weeks)."""
    x, t_x, T = _cdnow_calibration()
    assert len(x) == 2357
    r, alpha, a, b = fit_bgnbd(x, t_x, T)
    assert (round(r, 3), round(alpha, 3), round(a, 3), round(b, 3)) == (0.243, 4.414, 0.793, 2.426)
    log_likelihood = float(np.sum(bgnbd_log_likelihood(np.array([r, alpha, a, b]), x, t_x, T)))
    assert log_likelihood == pytest.approx(-9582.4, abs=0.05)
