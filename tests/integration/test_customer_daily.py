"""The whole `customer_daily` job on the hand-made world of `world.py`, configured only through
the environment variables of contract §2 — the way a user runs it."""

from __future__ import annotations

import email
from decimal import Decimal
from email import policy

import duckdb
import pytest

from tests.integration.world import build_world

pytestmark = pytest.mark.integration


def run_job(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, as_of: str | None = None):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("SMTP_HOST", raising=False)
    from pipelines.run import main

    return main(["--as-of", as_of] if as_of else [])


def published(env: dict[str, str]) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(f"{env['CRM_PUBLISH_DIR']}/analytics.duckdb", read_only=True)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("world")
    env = build_world(root)
    with pytest.MonkeyPatch.context() as mp:
        assert run_job(env, mp) == 0
    return env


def profile_row(env: dict[str, str], customer_id: str) -> dict:
    with published(env) as con:
        cur = con.execute(
            "SELECT * FROM marts.customer_profile WHERE customer_id = ?", [customer_id]
        )
        names = [d[0] for d in cur.description]
        return dict(zip(names, cur.fetchone(), strict=True))


def test_profile_has_one_row_per_existing_customer(first_run):
    with published(first_run) as con:
        ids = [
            r[0]
            for r in con.execute(
                "SELECT customer_id FROM marts.customer_profile ORDER BY 1"
            ).fetchall()
        ]
    # C001..C005 were all created on or before 2026-06-30.
    assert ids == ["C001", "C002", "C003", "C004", "C005"]


def test_profile_measures_of_a_regular_buyer(first_run):
    row = profile_row(first_run, "C001")
    # Completed: O1 2025-12-01 1000, O2 2026-03-01 2000, O3 2026-03-01 500, O4 2026-06-01 3000;
    # O5 is cancelled. Purchase dates 2025-12-01, 2026-03-01, 2026-06-01 (O2 and O3 same day).
    assert row["orders_total"] == 4
    assert row["revenue_total"] == Decimal("6500.00")
    assert row["purchase_days"] == 3
    # gaps 90 (Dec 31 + Jan 31 + Feb 28 - 0) and 92 (Mar 31 + Apr 30 + May 31) → median 91
    assert row["median_gap_days"] == pytest.approx(91.0)
    assert str(row["last_order_date"]) == "2026-06-01"
    assert row["recency_days"] == 29
    assert row["tenure_days"] == 211  # 2025-12-01 → 2026-06-30
    assert row["orders_90d"] == 1 and row["revenue_90d"] == Decimal("3000.00")
    assert row["orders_365d"] == 4 and row["revenue_365d"] == Decimal("6500.00")
    assert row["orders_prior_year"] == 3  # O1 (211 days ago), O2 and O3 (121 days ago)
    assert row["discount_order_share_365d"] == pytest.approx(0.25)  # only O2 had a discount
    assert row["region"] == "华南"  # 广东省 → 华南
    # I1 outbound visit, I7 and I8 inbound complaints with satisfaction 2 and 1
    assert (row["interactions_90d"], row["inbound_90d"], row["outbound_90d"]) == (3, 2, 1)
    assert row["complaints_90d"] == 2
    assert row["avg_satisfaction_90d"] == pytest.approx(1.5)


def test_interactions_matched_by_email_and_by_phone(first_run):
    row = profile_row(first_run, "C005")
    # I2 carries ' FOO@example.com ' (customer email Foo@Example.com); I3 '+86 138-0013-8000'
    # (customer phone 13800138000). Both inbound; I3 is a complaint. Satisfaction 4 and 2.
    assert row["interactions_90d"] == 2
    assert row["complaints_90d"] == 1
    assert row["avg_satisfaction_90d"] == pytest.approx(3.0)
    # O9 was refunded and O11 is after as_of: still a prospect
    assert row["orders_total"] == 0 and row["first_order_date"] is None
    assert row["region"] == "华南"  # the explicit region wins


def test_orphans_and_unmatched_contacts_are_quarantined_with_reasons(first_run):
    with published(first_run) as con:
        rows = con.execute(
            "SELECT entity, reason FROM quality.rejected_rows ORDER BY entity"
        ).fetchall()
    reasons = {entity: reason for entity, reason in rows}
    assert "unmatched_contact" in reasons["interactions"]  # I4 nobody@example.com
    assert "C999" in reasons["orders"] and "unknown_customer" in reasons["orders"]  # O10
    assert "O404" in reasons["payments"] and "unknown_order" in reasons["payments"]  # P4


def test_load_audit_reconciles(first_run):
    with published(first_run) as con:
        audit = con.execute(
            "SELECT source, rows_read, rows_loaded, rows_rejected, rows_duplicate FROM quality.load_audit"
        ).fetchall()
    by_source = {a[0]: a[1:] for a in audit}
    for read, loaded, rejected, dup in by_source.values():
        assert read == loaded + rejected + dup
    assert by_source["db:orders"] == (11, 10, 1, 0)
    assert by_source["interactions/calls.csv"] == (8, 7, 1, 0)


def test_segments_and_stages(first_run):
    with published(first_run) as con:
        tiers = dict(
            con.execute("SELECT customer_id, value_tier FROM marts.customer_segments").fetchall()
        )
        stages = dict(
            con.execute("SELECT customer_id, stage FROM marts.customer_lifecycle").fetchall()
        )
    # revenue_365d: C001 6500, C003 5000, C002 200 → N=3: high ceil(0.6)=1, medium ceil(1.5)=2
    assert tiers == {
        "C001": "high",
        "C003": "medium",
        "C002": "low",
        "C004": "none",
        "C005": "none",
    }
    # C003: one order 302 days ago, no rhythm → at_risk threshold 180 < 302 ≤ 365 churn threshold
    assert stages == {
        "C001": "active",
        "C002": "active",
        "C003": "at_risk",
        "C004": "prospect",
        "C005": "prospect",
    }


def test_key_account_alert_written_as_eml_to_owner_with_manager_in_cc(first_run):
    from pathlib import Path

    files = sorted(Path(first_run["CRM_MAIL_DIR"]).rglob("*.eml"))
    messages = [email.message_from_bytes(f.read_bytes(), policy=policy.default) for f in files]
    to_owner = [m for m in messages if m["To"] == "wang.fang@example.com"]
    assert len(to_owner) == 1
    assert to_owner[0]["Cc"] == "boss.li@example.com"
    body = to_owner[0].get_body(preferencelist=("plain",)).get_content()
    assert "广州某某贸易有限公司" in body and "安排高层拜访" in body


def test_second_run_without_new_data_changes_nothing(first_run):
    tables = [
        "marts.customer_profile",
        "marts.customer_segments",
        "marts.customer_lifecycle",
        "marts.customer_stage_history",
        "marts.churn_risk",
        "marts.churn_alerts",
        "quality.rejected_rows",
    ]

    def snapshot():
        with published(first_run) as con:
            return {
                t: sorted(map(repr, con.execute(f"SELECT * FROM {t}").fetchall())) for t in tables
            }

    before = snapshot()
    with pytest.MonkeyPatch.context() as mp:
        assert run_job(first_run, mp) == 0
    assert snapshot() == before
    with duckdb.connect(first_run["CRM_WAREHOUSE"], read_only=True) as con:
        second_run = con.execute(
            "SELECT source, rows_read, rows_loaded, rows_duplicate FROM quality.load_audit "
            "WHERE loaded_at = (SELECT max(loaded_at) FROM quality.load_audit) ORDER BY source"
        ).fetchall()
        raw_counts = con.execute(
            "SELECT (SELECT count(*) FROM raw.customers), (SELECT count(*) FROM raw.orders), "
            "(SELECT count(*) FROM raw.interactions)"
        ).fetchone()
    # Landing files are not read again; the database rows re-read within the lookback window
    # are identical to what is held: duplicates, nothing loaded.
    assert all(source.startswith("db:") for source, *_ in second_run)
    assert all(loaded == 0 and read == dup for _, read, loaded, dup in second_run)
    assert raw_counts == (5, 10, 7)
