"""Backfill: `python -m pipelines.backfill` builds stage history month by month from past data,
and running the range again changes nothing (domain.md §2 stage history)."""

from datetime import date

import duckdb
import pytest

from tests.integration.world import build_world

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def backfilled(tmp_path_factory: pytest.TempPathFactory):
    env = build_world(tmp_path_factory.mktemp("backfill"))
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        from pipelines.backfill import main

        assert main(["--from", "2026-04-01", "--to", "2026-06-30"]) == 0
    return env


def history(env: dict[str, str]) -> list[tuple]:
    with duckdb.connect(f"{env['CRM_PUBLISH_DIR']}/analytics.duckdb", read_only=True) as con:
        return con.execute(
            "SELECT customer_id, stage, previous_stage, valid_from, valid_to "
            "FROM marts.customer_stage_history ORDER BY customer_id, valid_from"
        ).fetchall()


def test_history_enters_stays_and_changes(backfilled):
    # As of 2026-04-30, 05-31, 06-30 (month ends of the range):
    # C001 bought 2025-12-01 and 2026-03-01 → active throughout (recency 60/91/29 < thresholds).
    # C002 one purchase 2025-06-15 → recency 319 > 180 → at_risk on 04-30; buys 2026-05-30 →
    #      active from 05-31 (last gap 349 ≤ 365, so not won_back).
    # C003 one purchase 2025-09-01 → recency 241/272/302: at_risk throughout.
    # C004 created 2026-05-20 → absent on 04-30, prospect from 05-31. C005 prospect throughout.
    d = date.fromisoformat
    assert history(backfilled) == [
        ("C001", "active", None, d("2026-04-30"), None),
        ("C002", "at_risk", None, d("2026-04-30"), d("2026-05-31")),
        ("C002", "active", "at_risk", d("2026-05-31"), None),
        ("C003", "at_risk", None, d("2026-04-30"), None),
        ("C004", "prospect", None, d("2026-05-31"), None),
        ("C005", "prospect", None, d("2026-04-30"), None),
    ]


def test_lifecycle_flow_counts_transitions_per_as_of(backfilled):
    with duckdb.connect(f"{backfilled['CRM_PUBLISH_DIR']}/analytics.duckdb", read_only=True) as con:
        flow = con.execute(
            "SELECT from_stage, to_stage, customers FROM marts.lifecycle_flow "
            "WHERE as_of = DATE '2026-05-31' ORDER BY ALL NULLS FIRST"
        ).fetchall()
        lifecycle = con.execute(
            "SELECT customer_id, stage, stage_since, previous_stage FROM marts.customer_lifecycle "
            "WHERE customer_id = 'C002'"
        ).fetchone()
    assert flow == [
        (None, "prospect", 1),  # C004, new on 05-31
        ("active", "active", 1),  # C001
        ("at_risk", "active", 1),  # C002
        ("at_risk", "at_risk", 1),  # C003
        ("prospect", "prospect", 1),  # C005
    ]
    assert lifecycle == ("C002", "active", date(2026, 5, 31), "at_risk")


def test_running_the_range_again_changes_nothing(backfilled):
    before = history(backfilled)
    with pytest.MonkeyPatch.context() as mp:
        for key, value in backfilled.items():
            mp.setenv(key, value)
        from pipelines.backfill import main

        # 2026-05-31 is already recorded and older than the newest as_of: history stays.
        assert main(["--from", "2026-05-01", "--to", "2026-05-31"]) == 0
    assert history(backfilled) == before


def test_no_alert_is_planned_or_sent_by_a_backfill(backfilled):
    from pathlib import Path

    assert not list(Path(backfilled["CRM_MAIL_DIR"]).rglob("*.eml"))
