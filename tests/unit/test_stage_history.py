"""The stage history kept in place (crm/stage_history.py) against the whole-history rewrite it
replaced.

Reference: every run reads the whole history, `advance_history` on all of it, writes all of it
back (the code before). Under test: a run reads only the working periods of its as_of, advances
those and writes back only the rows that changed. Over many runs — days forward, reruns of the
newest as_of, reruns of past as_of dates, customers appearing and disappearing, skipped days — the
warehouse table must hold exactly the reference's periods, and the lifecycle table and the flow
built from the working periods must equal those built from the whole history.
"""

from __future__ import annotations

import random
from datetime import date, timedelta

import duckdb
import pandas as pd
import pytest

from assets.classification import lifecycle_at
from crm.frames import read_table
from crm.lifecycle import HISTORY_COLUMNS, advance_history, lifecycle_flow, stages_before
from crm.rules import STAGES, default_rules
from crm.stage_history import (
    TABLE,
    count_periods,
    read_working_periods,
    store_working_periods,
)

RULES = default_rules()
START = date(2026, 1, 1)


def _stages(rng: random.Random, previous: dict[str, str], customers: int) -> dict[str, str]:
    """Next run's stages: most customers keep theirs, some change, a few leave or arrive."""
    stages = {}
    for n in range(customers):
        customer = f"C{n:03d}"
        if rng.random() < 0.08:
            continue  # not in this run's profile
        stage = previous.get(customer)
        if stage is None or rng.random() < 0.25:
            stage = rng.choice(STAGES)
        stages[customer] = stage
    return stages


def _frame(stages: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame({"customer_id": list(stages), "stage": list(stages.values())}, dtype="str")


def _table(frame: pd.DataFrame) -> list[tuple]:
    """Periods as a sorted multiset, dates as `date` (None for open)."""

    def day(value: object) -> date | None:
        return None if pd.isna(value) else pd.Timestamp(value).date()

    return sorted(
        (
            (
                r.customer_id,
                r.stage,
                None if pd.isna(r.previous_stage) else r.previous_stage,
                day(r.valid_from),
                day(r.valid_to),
            )
            for r in frame[HISTORY_COLUMNS].itertuples(index=False)
        ),
        key=repr,
    )


def _lifecycle_rows(frame: pd.DataFrame) -> list[tuple]:
    return sorted(
        (
            r.customer_id,
            r.stage,
            pd.Timestamp(r.stage_since).date(),
            None if pd.isna(r.previous_stage) else r.previous_stage,
        )
        for r in frame.itertuples(index=False)
    )


def _flow_rows(frame: pd.DataFrame) -> list[tuple]:
    return [
        (None if pd.isna(r.from_stage) else r.from_stage, r.to_stage, int(r.customers))
        for r in frame.itertuples(index=False)
    ]


def _run_sequence(rng: random.Random) -> list[date]:
    """as_of dates in run order: mostly the next day or a few days on, with reruns of the
    newest as_of and of earlier ones (which leave the history alone)."""
    runs: list[date] = []
    newest = START
    for _ in range(24):
        roll = rng.random()
        if roll < 0.2 and runs:
            runs.append(newest)  # rerun of the newest as_of: replaces its decisions
        elif roll < 0.3 and len(runs) > 2:
            runs.append(rng.choice(runs[:-1]))  # a past as_of again
        else:
            newest += timedelta(days=rng.choice([1, 1, 1, 2, 7]))
            runs.append(newest)
    return runs


@pytest.mark.parametrize("seed", range(8))
def test_kept_in_place_equals_whole_history_rewrite(tmp_path, seed: int) -> None:
    rng = random.Random(seed)
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("CREATE SCHEMA marts")
    whole = pd.DataFrame({c: pd.Series([], dtype=object) for c in HISTORY_COLUMNS})
    current: dict[str, str] = {}
    newest: date | None = None
    for as_of in _run_sequence(rng):
        current = _stages(rng, current, customers=40)
        stages = _frame(current)
        advanced = newest is None or as_of >= newest
        newest = as_of if advanced else newest

        periods_before = len(whole)
        # reference: the whole history, advanced and rewritten
        if advanced:
            whole = advance_history(whole, stages, as_of)
        expected_lifecycle = lifecycle_at(whole, stages, as_of, RULES, advanced=advanced)
        expected_flow = lifecycle_flow(stages_before(whole, as_of), stages, as_of)

        # under test: the working periods only
        working = read_working_periods(con, as_of)
        assert len(working) <= periods_before
        if advanced:
            working = advance_history(working, stages, as_of)
            con.execute("BEGIN TRANSACTION")
            deleted, inserted = store_working_periods(con, as_of, working)
            con.execute("COMMIT")
        lifecycle = lifecycle_at(working, stages, as_of, RULES, advanced=advanced)
        flow = lifecycle_flow(stages_before(working, as_of), stages, as_of)

        assert _table(read_table(con, TABLE)) == _table(whole), as_of
        assert count_periods(con) == len(whole)
        assert _lifecycle_rows(lifecycle) == _lifecycle_rows(expected_lifecycle), as_of
        assert _flow_rows(flow) == _flow_rows(expected_flow), as_of


def test_a_quiet_day_writes_only_what_changed(tmp_path) -> None:
    """Day two with one stage change and one new customer: two periods closed or opened for
    the change (old row replaced by its closed form, new open row) and one for the newcomer;
    the other customers' open periods are neither deleted nor rewritten, and a rerun of the
    same as_of with the same stages writes nothing."""
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("CREATE SCHEMA marts")
    day1, day2 = date(2026, 3, 1), date(2026, 3, 2)
    first = {f"C{n}": "active" for n in range(100)}
    periods = advance_history(None, _frame(first), day1)
    assert store_working_periods(con, day1, periods) == (0, 100)

    second = {**first, "C7": "at_risk", "NEW": "new"}
    working = read_working_periods(con, day2)
    assert len(working) == 100
    advanced = advance_history(working, _frame(second), day2)
    assert store_working_periods(con, day2, advanced) == (1, 3)
    assert count_periods(con) == 102
    c7 = con.execute(
        f"SELECT stage, previous_stage, valid_from, valid_to FROM {TABLE} "
        "WHERE customer_id = 'C7' ORDER BY valid_from"
    ).fetchall()
    assert c7 == [("active", None, day1, day2), ("at_risk", "active", day2, None)]

    rerun = advance_history(read_working_periods(con, day2), _frame(second), day2)
    assert store_working_periods(con, day2, rerun) == (0, 0)
    assert count_periods(con) == 102


def test_closed_past_is_not_read(tmp_path) -> None:
    """A period closed before as_of is not a working period; one ending on as_of is (a rerun
    reopens it), and so is one starting on or after it."""
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("CREATE SCHEMA marts")
    con.execute(
        f"""CREATE TABLE {TABLE} AS SELECT * FROM (VALUES
            ('A', 'new', NULL, DATE '2026-01-01', DATE '2026-02-01'),
            ('A', 'active', 'new', DATE '2026-02-01', DATE '2026-03-01'),
            ('A', 'at_risk', 'active', DATE '2026-03-01', NULL),
            ('B', 'new', NULL, DATE '2026-03-01', NULL)
        ) t(customer_id, stage, previous_stage, valid_from, valid_to)"""
    )
    working = read_working_periods(con, date(2026, 3, 1))
    assert sorted(zip(working["customer_id"], working["stage"], strict=True)) == [
        ("A", "active"),
        ("A", "at_risk"),
        ("B", "new"),
    ]
    later = read_working_periods(con, date(2026, 3, 2))
    assert sorted(later["stage"]) == ["at_risk", "new"]


@pytest.mark.parametrize(
    ("damaged", "stage"),
    [
        # the same period twice, opened at as_of: a rerun drops both and opens one
        (
            "('A', 'active', NULL, DATE '2026-01-02', NULL), "
            "('A', 'active', NULL, DATE '2026-01-02', NULL)",
            "active",
        ),
        # the same open period twice from before as_of: the change closes one of them
        (
            "('A', 'new', NULL, DATE '2026-01-01', NULL), "
            "('A', 'new', NULL, DATE '2026-01-01', NULL)",
            "active",
        ),
        # an open period without a start (reported by the history check) gets closed
        ("('A', 'new', NULL, NULL, NULL)", "active"),
        # …or stays as it is
        ("('A', 'new', NULL, NULL, NULL)", "new"),
    ],
)
def test_damaged_history_gives_what_the_whole_rewrite_gives(tmp_path, damaged, stage) -> None:
    """Rows held twice are matched one for one, and a period without a start is still a
    working period: the table ends up as the whole-history rewrite leaves it."""
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("CREATE SCHEMA marts")
    con.execute(
        f"""CREATE TABLE {TABLE} AS SELECT customer_id, stage, previous_stage,
                CAST(valid_from AS DATE) AS valid_from, CAST(valid_to AS DATE) AS valid_to
            FROM (VALUES {damaged},
                ('B', 'new', NULL, DATE '2025-12-01', DATE '2026-01-01'),
                ('B', 'active', 'new', DATE '2026-01-01', NULL)
            ) t(customer_id, stage, previous_stage, valid_from, valid_to)"""
    )
    as_of = date(2026, 1, 2)
    stages = _frame({"A": stage, "B": "active"})
    expected = advance_history(read_table(con, TABLE), stages, as_of)
    advanced = advance_history(read_working_periods(con, as_of), stages, as_of)
    store_working_periods(con, as_of, advanced)
    assert _table(read_table(con, TABLE)) == _table(expected)


def test_a_later_start_is_refused_even_in_a_damaged_period(tmp_path) -> None:
    """A period starting after as_of makes `advance_history` refuse the run (backfills run
    oldest first). An inverted period (valid_to before valid_from, which the history check
    reports) is still read as working when it starts after as_of, so the refusal stays."""
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("CREATE SCHEMA marts")
    con.execute(
        f"""CREATE TABLE {TABLE} AS SELECT * FROM (VALUES
            ('A', 'active', NULL, DATE '2026-03-05', DATE '2026-03-01')
        ) t(customer_id, stage, previous_stage, valid_from, valid_to)"""
    )
    working = read_working_periods(con, date(2026, 3, 2))
    assert list(working["customer_id"]) == ["A"]
    with pytest.raises(ValueError, match="2026-03-05"):
        advance_history(working, _frame({"A": "active"}), date(2026, 3, 2))
