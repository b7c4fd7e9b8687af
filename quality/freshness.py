"""Source freshness (contract §1): a feed whose newest record is too old makes alerts unsafe.

A stale feed does not stop the run (the profile is still right for the data we have), but the
alert gate suppresses email: telling a rep "no order for 94 days" is wrong when orders simply
stopped arriving.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import duckdb

from crm.rules import Rules
from crm.schemas import ENTITY_BY_NAME


@dataclass(frozen=True)
class Freshness:
    entity: str
    newest: date | None  # newest record dated on or before as_of (local date)
    stale: bool

    @property
    def message(self) -> str:
        if self.newest is None:
            return f"{self.entity}: no record on or before as_of"
        return f"{self.entity}: newest record {self.newest.isoformat()}"


def source_freshness(
    con: duckdb.DuckDBPyConnection, as_of: date, timezone: str, rules: Rules
) -> list[Freshness]:
    limit = as_of - timedelta(days=rules.quality.stale_after_days)
    results = []
    for name in rules.quality.freshness_entities:
        column = ENTITY_BY_NAME[name].freshness_column
        newest = con.execute(
            f"""SELECT max(d) FROM (
                  SELECT CAST(timezone(?, "{column}" AT TIME ZONE 'UTC') AS DATE) AS d
                  FROM raw.{name}) WHERE d <= ?""",
            [timezone, as_of],
        ).fetchone()[0]
        results.append(Freshness(name, newest, newest is None or newest < limit))
    return results
