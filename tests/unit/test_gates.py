"""Load gates (quality/gates.py), check results (quality/results.py) and the classification
consistency rules used by quality/checks.py, each at its edge. Defaults: max_rejected_share 0.05,
max_volume_drop 0.5, stale_after_days 30 (crm/rules_default.yaml)."""

from __future__ import annotations

from datetime import date, datetime

import duckdb
import pytest

from crm.rules import default_rules
from quality import gates
from quality.checks import (
    allowed_values,
    history_consistency,
    one_row_per_customer,
    segment_allowed_values,
    stage_allowed_values,
)
from quality.results import blocking_failures, failed_checks, record_check

RULES = default_rules()
TZ = "Asia/Shanghai"


def audit(con, run_id, entity, source, read, loaded, rejected, duplicate, loaded_at):
    con.execute(
        "INSERT INTO quality.load_audit VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [run_id, entity, source, read, loaded, rejected, duplicate, loaded_at],
    )


# --- rejected share -----------------------------------------------------------------------------


def test_rejected_share_exactly_at_the_limit_passes():
    # 1 of 20 = 5 % = the limit: "exceeds" is what fails.
    assert gates.rejected_share_outcome("orders", 20, 1, 0.05).passed


def test_rejected_share_just_above_the_limit_fails():
    # 501 of 10,000 = 5.01 % > 5 %.
    outcome = gates.rejected_share_outcome("orders", 10_000, 501, 0.05)
    assert not outcome.passed
    assert "501 of 10000 rows rejected" in outcome.message


def test_rejected_share_of_a_run_that_read_nothing_passes():
    assert gates.rejected_share_outcome("orders", 0, 0, 0.05).passed


def test_rejected_share_gate_sums_the_runs_sources_and_leaves_orphans_out(con):
    t = datetime(2026, 6, 30, 2)
    # 60 + 40 = 100 rows read, 2 + 5 = 7 rejected, 1 of them an orphan: 6 invalid = 6 % > 5 %.
    audit(con, "r1", "orders", "orders/a.csv", 60, 58, 2, 0, t)
    audit(con, "r1", "orders", "db:orders", 40, 35, 5, 0, t)
    audit(con, "r0", "orders", "orders/old.csv", 100, 0, 100, 0, t)  # another run: ignored
    con.execute(
        "INSERT INTO quality.rejected_rows (entity, severity, run_id) VALUES "
        "('orders', 'warning', 'r1'), ('orders', 'error', 'r1')"
    )
    outcome = gates.rejected_share_gate(con, "r1", "orders", RULES)
    assert not outcome.passed
    assert outcome.metadata["rows_read"] == 100 and outcome.metadata["rows_rejected"] == 7
    assert outcome.metadata["orphans"] == 1
    assert outcome.metadata["rejected_share"] == pytest.approx(0.06)
    # Orphans alone never fail the gate: 30 of 100 rows waiting for their parent.
    audit(con, "r3", "orders", "orders/c.csv", 100, 70, 30, 0, t)
    con.execute(
        "INSERT INTO quality.rejected_rows (entity, severity, run_id) "
        "SELECT 'orders', 'warning', 'r3' FROM range(30)"
    )
    assert gates.rejected_share_gate(con, "r3", "orders", RULES).passed
    # 5 of 100 on a fresh run passes.
    audit(con, "r2", "orders", "orders/b.csv", 100, 95, 5, 0, t)
    assert gates.rejected_share_gate(con, "r2", "orders", RULES).passed


# --- volume drop --------------------------------------------------------------------------------


def test_volume_drop_of_exactly_half_passes():
    # 100 → 50: drop (100 - 50) / 100 = 50 % = the limit.
    assert gates.volume_drop_outcome("orders", 50, 100, 0.5).passed


def test_volume_drop_of_more_than_half_fails():
    # 100 → 49: drop 51 %.
    outcome = gates.volume_drop_outcome("orders", 49, 100, 0.5, "r1")
    assert not outcome.passed
    assert "drop 51.00%" in outcome.message


@pytest.mark.parametrize(
    ("current", "previous"),
    [(0, 100), (10, None), (500, 100)],
    ids=["nothing-read-this-run", "first-delivery", "a-rise"],
)
def test_volume_gate_passes_without_a_drop_to_judge(current, previous):
    assert gates.volume_drop_outcome("orders", current, previous, 0.5).passed


def test_volume_gate_compares_a_redelivered_file_with_its_previous_load(con):
    # customers/export.csv is a snapshot export delivered three times: 100 → 50 rows (exactly
    # 50 %, passes) → 24 rows (52 % less than the 50 before: fails, against run r2).
    audit(con, "r1", "customers", "customers/export.csv", 100, 100, 0, 0, datetime(2026, 6, 1))
    audit(con, "r2", "customers", "customers/export.csv", 50, 0, 0, 50, datetime(2026, 6, 2))
    audit(con, "r3", "customers", "customers/export.csv", 24, 0, 0, 24, datetime(2026, 6, 3))
    assert gates.previous_load_of_source(con, "r2", "customers/export.csv") == ("r1", 100)
    assert gates.volume_drop_gate(con, "r2", "customers", RULES).passed
    outcome = gates.volume_drop_gate(con, "r3", "customers", RULES)
    assert not outcome.passed
    assert outcome.metadata["previous_run_id"] == "r2"
    assert "customers/export.csv" in outcome.message


def test_volume_gate_lets_a_small_daily_file_follow_a_bulk_load(con):
    # A 10,000-row history file, then a 40-row daily file under a new name, and 5,000 database
    # rows then 3 (an incremental read): none of these is a drop of one source.
    audit(con, "r1", "orders", "orders/history.csv", 10_000, 10_000, 0, 0, datetime(2026, 6, 1))
    audit(con, "r1", "orders", "db:orders", 5000, 5000, 0, 0, datetime(2026, 6, 1))
    audit(con, "r2", "orders", "orders/day2.csv", 40, 40, 0, 0, datetime(2026, 6, 2))
    audit(con, "r2", "orders", "db:orders", 3, 3, 0, 0, datetime(2026, 6, 2))
    outcome = gates.volume_drop_gate(con, "r2", "orders", RULES)
    assert outcome.passed
    assert outcome.metadata["files_compared"] == 0
    assert gates.volume_drop_gate(con, "r3", "orders", RULES).passed  # a run that read nothing


# --- audit reconciliation ----------------------------------------------------------------------


def test_audit_reconciliation(con):
    t = datetime(2026, 6, 30)
    audit(con, "r1", "orders", "orders/a.csv", 10, 7, 2, 1, t)  # 7 + 2 + 1 = 10
    assert gates.audit_reconciliation_gate(con, "r1", "orders").passed
    audit(con, "r1", "orders", "orders/b.csv", 10, 7, 2, 0, t)  # 9 != 10
    outcome = gates.audit_reconciliation_gate(con, "r1", "orders")
    assert not outcome.passed
    assert "orders/b.csv: read 10 != loaded 7 + rejected 2 + duplicate 0" in outcome.message


def test_audit_row_with_a_missing_count_does_not_reconcile():
    assert not gates.AuditRow("orders/a.csv", 10, None, 0, 0).reconciles


# --- freshness ----------------------------------------------------------------------------------


def _order_at(con, local_day: date) -> None:
    # 04:00 UTC is 12:00 in Shanghai: the same local date.
    con.execute(
        "INSERT INTO raw.orders (order_id, ordered_at) VALUES ('O1', ?)",
        [datetime(local_day.year, local_day.month, local_day.day, 4)],
    )


def test_freshness_is_a_warning_at_the_stale_edge(con):
    # as_of 2026-06-30 − 30 days = 2026-05-31: a newest record on that day is still fresh.
    _order_at(con, date(2026, 5, 31))
    assert gates.freshness_gate(con, "orders", date(2026, 6, 30), TZ, RULES).passed
    # One day later the same data is stale.
    outcome = gates.freshness_gate(con, "orders", date(2026, 7, 1), TZ, RULES)
    assert not outcome.passed
    assert "newest record 2026-05-31" in outcome.message


def test_freshness_of_an_unwatched_entity_passes(con):
    assert gates.freshness_gate(con, "customers", date(2026, 6, 30), TZ, RULES).passed


# --- check results ------------------------------------------------------------------------------


def test_blocking_failures_lists_only_failed_blocking_errors_of_the_run(con):
    common = {"run_id": "r1", "asset": "raw/orders"}
    record_check(
        con,
        **common,
        check_name="source_suite",
        passed=False,
        blocking=True,
        severity="ERROR",
        message="amount below 0",
    )
    record_check(
        con,
        **common,
        check_name="freshness",
        passed=False,
        blocking=False,
        severity="WARN",
        message="stale",
    )
    record_check(
        con,
        **common,
        check_name="volume_drop",
        passed=True,
        blocking=True,
        severity="ERROR",
        message="ok",
    )
    record_check(
        con,
        run_id="r0",
        asset="raw/orders",
        check_name="rejected_share",
        passed=False,
        blocking=True,
        severity="ERROR",
        message="old run",
    )
    assert blocking_failures(con, "r1") == ["raw/orders source_suite: amount below 0"]
    assert failed_checks(con, "r1") == [
        "raw/orders freshness: stale",
        "raw/orders source_suite: amount below 0",
    ]
    # Re-running the check in the same run replaces its row.
    record_check(
        con,
        **common,
        check_name="source_suite",
        passed=True,
        blocking=True,
        severity="ERROR",
        message="fixed",
    )
    assert blocking_failures(con, "r1") == []


def test_blocking_failures_without_any_recorded_check(tmp_path):
    with duckdb.connect(str(tmp_path / "empty.duckdb")) as fresh:
        assert blocking_failures(fresh, "r1") == []


# --- classification consistency -----------------------------------------------------------------


def _history(con, rows):
    con.execute(
        "CREATE OR REPLACE TABLE marts.customer_stage_history (customer_id VARCHAR, stage VARCHAR, "
        "previous_stage VARCHAR, valid_from DATE, valid_to DATE)"
    )
    con.executemany("INSERT INTO marts.customer_stage_history VALUES (?, ?, ?, ?, ?)", rows)


STAGES = tuple(RULES.lifecycle.labels)


def test_consecutive_periods_do_not_overlap(con):
    # [01-31, 02-28) then [02-28, open): touching ends are not an overlap (half-open periods).
    _history(
        con,
        [
            ("C1", "new", None, date(2026, 1, 31), date(2026, 2, 28)),
            ("C1", "active", "new", date(2026, 2, 28), None),
        ],
    )
    assert history_consistency(con, "marts.customer_stage_history", STAGES).passed


def test_overlapping_periods_are_detected(con):
    # [01-31, 03-31) and [02-28, open) share March.
    _history(
        con,
        [
            ("C1", "new", None, date(2026, 1, 31), date(2026, 3, 31)),
            ("C1", "active", "new", date(2026, 2, 28), None),
            ("C2", "new", None, date(2026, 1, 31), None),
        ],
    )
    outcome = history_consistency(con, "marts.customer_stage_history", STAGES)
    assert not outcome.passed
    assert outcome.metadata["overlapping_periods"] == 1
    assert outcome.metadata["examples"] == {"overlapping_periods": ["C1"]}


def test_two_open_periods_are_detected(con):
    # Two open periods always overlap too, so both rules name C1.
    _history(
        con,
        [
            ("C1", "new", None, date(2026, 1, 31), None),
            ("C1", "active", "new", date(2026, 2, 28), None),
        ],
    )
    outcome = history_consistency(con, "marts.customer_stage_history", STAGES)
    assert outcome.metadata["customers_with_several_open_periods"] == 1
    assert outcome.metadata["overlapping_periods"] == 1


def test_empty_period_and_unknown_stage_are_detected(con):
    _history(
        con,
        [
            ("C1", "new", None, date(2026, 1, 31), date(2026, 1, 31)),
            ("C2", "sleepy", None, date(2026, 1, 31), None),
        ],
    )
    outcome = history_consistency(con, "marts.customer_stage_history", STAGES)
    assert outcome.metadata["empty_or_inverted_periods"] == 1
    assert outcome.metadata["unknown_stages"] == 1
    assert outcome.metadata["examples"]["unknown_stages"] == ["sleepy (C2)"]


def _profile_and_segments(con, profile_ids, segment_rows):
    con.execute("CREATE OR REPLACE TABLE marts.customer_profile (customer_id VARCHAR)")
    con.executemany("INSERT INTO marts.customer_profile VALUES (?)", [[c] for c in profile_ids])
    con.execute(
        "CREATE OR REPLACE TABLE marts.customer_segments (customer_id VARCHAR, value_tier VARCHAR, "
        "rfm_segment VARCHAR, rfm_class VARCHAR, credit_grade VARCHAR, "
        "relationship_level VARCHAR, loyalty VARCHAR)"
    )
    if segment_rows:
        con.executemany(
            "INSERT INTO marts.customer_segments VALUES (?, ?, ?, ?, ?, ?, ?)", segment_rows
        )


BUYER = ("high", "champions", "重要价值客户", "A", "partner", "loyal")
PROSPECT = ("none", None, None, None, None, None)


def test_one_row_per_customer(con):
    _profile_and_segments(con, ["C1", "C2"], [("C1", *BUYER), ("C2", *PROSPECT)])
    assert one_row_per_customer(con, "marts.customer_segments", "marts.customer_profile").passed


def test_missing_repeated_and_foreign_rows_fail(con):
    # C2 twice, C3 missing, C9 not a profile customer.
    _profile_and_segments(
        con,
        ["C1", "C2", "C3"],
        [("C1", *BUYER), ("C2", *BUYER), ("C2", *BUYER), ("C9", *BUYER)],
    )
    outcome = one_row_per_customer(con, "marts.customer_segments", "marts.customer_profile")
    assert not outcome.passed
    assert outcome.metadata["examples"] == {
        "customers_missing": ["C3"],
        "customers_repeated": ["C2"],
        "rows_not_in_profile": ["C9"],
    }


def test_segment_values_come_from_the_rules(con):
    # Prospects may have null buyer-only classes; value_tier is never null.
    _profile_and_segments(con, ["C1", "C2"], [("C1", *BUYER), ("C2", *PROSPECT)])
    assert allowed_values(con, "marts.customer_segments", segment_allowed_values(RULES)).passed
    con.execute(
        "INSERT INTO marts.customer_segments VALUES ('C3', NULL, 'sleepers', '重要价值客户', "
        "'unrated', 'basic', 'neutral')"
    )
    outcome = allowed_values(con, "marts.customer_segments", segment_allowed_values(RULES))
    assert not outcome.passed
    assert outcome.metadata["examples"] == {
        "value_tier_not_allowed": ["null (C3)"],
        "rfm_segment_not_allowed": ["sleepers (C3)"],
    }


def test_stage_values_come_from_the_rules(con):
    con.execute(
        "CREATE TABLE marts.customer_lifecycle AS SELECT * FROM (VALUES "
        "('C1', 'loyal', 'active'), ('C2', 'dormant', NULL)) t(customer_id, stage, previous_stage)"
    )
    outcome = allowed_values(con, "marts.customer_lifecycle", stage_allowed_values(RULES))
    assert outcome.metadata["examples"] == {"stage_not_allowed": ["dormant (C2)"]}


def test_counts_every_problem_and_names_the_first_five(con):
    # Twelve profile customers without segments: all twelve counted, the first five by id named.
    ids = [f"C{n:02d}" for n in range(12)]
    _profile_and_segments(con, ids, [])
    outcome = one_row_per_customer(con, "marts.customer_segments", "marts.customer_profile")
    assert outcome.metadata["customers_missing"] == 12
    assert outcome.metadata["customers_repeated"] == 0
    assert outcome.metadata["examples"] == {"customers_missing": ids[:5]}
