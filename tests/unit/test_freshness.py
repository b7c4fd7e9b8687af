"""The newest local date of a feed, found without converting every raw row.

Reference: the definition itself — convert every row's UTC timestamp to the business's local
date, keep those on or before as_of, take the newest — run as plain SQL over all rows."""

import random
from datetime import date, datetime, timedelta

import duckdb
import pytest

from crm.warehouse import ensure_schema
from quality.freshness import newest_local_date

AS_OF = date(2026, 3, 29)  # a DST weekend in Europe; Havana and Santiago change near midnight
ZONES = [
    "Asia/Shanghai",
    "America/Havana",
    "America/Santiago",
    "Europe/Berlin",
    "Pacific/Kiritimati",  # UTC+14
    "Etc/GMT+12",  # UTC-12
    "UTC",
]


def _reference(con: duckdb.DuckDBPyConnection, tz: str, as_of: date) -> date | None:
    return con.execute(
        """SELECT max(d) FROM (
             SELECT CAST(timezone(?, occurred_at AT TIME ZONE 'UTC') AS DATE) AS d
             FROM raw.interactions) WHERE d <= ?""",
        [tz, as_of],
    ).fetchone()[0]


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    ensure_schema(connection)
    return connection


def _insert(con: duckdb.DuckDBPyConnection, moments: list[datetime]) -> None:
    con.executemany(
        "INSERT INTO raw.interactions (interaction_id, occurred_at) VALUES (?, ?)",
        [(f"I{i}", m) for i, m in enumerate(moments)],
    )


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("tz", ZONES)
def test_newest_local_date_equals_the_row_by_row_definition(con, tz: str, seed: int) -> None:
    rng = random.Random(seed)
    start = datetime.combine(AS_OF, datetime.min.time())
    # Near as_of (either side), plus a sparse older history: some seeds leave a gap of days
    # before as_of, so the answer must come from the older rows.
    near = [start + timedelta(minutes=rng.randint(-3 * 1440, 3 * 1440)) for _ in range(40)]
    if seed % 2:
        near = [m for m in near if m > start + timedelta(hours=14)]  # only rows after as_of
    old = [start - timedelta(days=rng.randint(3, 400), minutes=rng.randint(0, 1439))]
    _insert(con, near + old * (seed % 3))
    for as_of in (AS_OF - timedelta(days=1), AS_OF, AS_OF + timedelta(days=1)):
        assert newest_local_date(con, "interactions", as_of, tz) == _reference(con, tz, as_of)


@pytest.mark.parametrize("tz", ZONES)
def test_rows_at_the_edges_of_the_local_day(con, tz: str) -> None:
    """Rows one microsecond either side of local midnight, for every zone."""
    from zoneinfo import ZoneInfo

    midnight = datetime.combine(AS_OF + timedelta(days=1), datetime.min.time(), ZoneInfo(tz))
    utc = midnight.astimezone(ZoneInfo("UTC")).replace(tzinfo=None)
    _insert(con, [utc - timedelta(microseconds=1), utc, utc + timedelta(days=5)])
    assert newest_local_date(con, "interactions", AS_OF, tz) == _reference(con, tz, AS_OF)
    assert newest_local_date(con, "interactions", AS_OF, tz) == AS_OF


def test_no_rows_or_none_on_or_before_as_of(con) -> None:
    assert newest_local_date(con, "interactions", AS_OF, "Asia/Shanghai") is None
    _insert(con, [datetime(2026, 4, 5, 12)])
    assert newest_local_date(con, "interactions", AS_OF, "Asia/Shanghai") is None
