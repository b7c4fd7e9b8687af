"""The fast lane of validation: canonical rows are typed by DuckDB, the rest by `validate`.

Why: at a million customers the facts are ~50M source rows, and the exact validator
(`crm.ingest.validate`, Arrow compute plus pandas) costs microseconds per row because it must
understand every spelling users write (¥1,234.50, 2024/1/5, 已完成, full-width digits, Unicode
spaces...) and word a reason for every problem. Almost every row of a machine export is already
canonical: plain ASCII ids, `YYYY-MM-DD HH:MM:SS`, `879.35`, `completed`. For those rows the
answer is known without any of that machinery, and DuckDB computes it in one vectorised,
multi-threaded statement.

Contract: a row takes the fast lane only when every one of its values is in a form whose typed
value the exact validator would compute the same way, and the row breaks no rule. Every other
row — anything unusual, and every row that will be rejected — goes to the exact validator, which
alone words reasons. So the fast lane changes speed, never results: raw tables, rejected rows and
the load audit are the same either way (tests/unit/test_fastlane.py checks that on mixed data).

What counts as canonical (anything else → exact lane):
- every value: no control characters; no whitespace at either end (trimming would change it);
- ids, e-mails, phones, currency (the NFKC columns): printable ASCII, where NFKC changes nothing;
- decimals: `123` or `123.45` (≤ 13 integer digits, ≤ 2 decimals); integers: digits only; both
  within the column's bounds;
- timestamps: `YYYY-MM-DD[( |T)HH:MM:SS]` inside the accepted window (earliest timestamp … load
  date + tolerance), on a local day without a UTC-offset change (DST days go the exact way);
- enumerations, currency, booleans: literals whose canonical value was computed by the exact
  validator's own functions when the lane was built (so user aliases are honoured).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from crm.frames import sliced_for_scan
from crm.ingest.aliases import BOOLEAN_KEY
from crm.ingest.parsing import clean_arrow, map_aliases, parse_boolean
from crm.ingest.readers import RawChunk, TextBatch
from crm.ingest.validate import CURRENCY_COLUMN, ValidationContext, _needs_nfkc
from crm.schemas import Column, Entity
from crm.warehouse import sql_literal

# Characters that trimming removes (Unicode White_Space, plus a few Arrow may treat alike).
_EDGE_SPACE = (
    r"[\s\x{85}\x{a0}\x{1680}\x{180e}\x{2000}-\x{200b}\x{2028}\x{2029}\x{202f}\x{205f}"
    r"\x{3000}\x{feff}]"
)
_CONTROL = r"[\x00-\x1f\x7f]"
_DECIMAL = r"[0-9]{1,13}(\.[0-9]{1,2})?"
_INTEGER = r"[0-9]{1,15}"
_TIMESTAMP = r"[0-9]{4}-[0-9]{2}-[0-9]{2}([ T]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9])?"
BOOLEAN_CANDIDATES = ("true", "false", "1", "0")


def _json_key(name: str) -> str:
    return json.dumps(name, ensure_ascii=False)


@functools.lru_cache(maxsize=8)
def stable_offsets(timezone: str, first: date, last: date) -> list[tuple[date, date, int]]:
    """Runs of local days in [first, last] whose UTC offset is constant all day: (from, to, minutes
    east of UTC). A day on which the offset changes belongs to no run: its rows go the exact way,
    which handles DST gaps and repeated hours. Offsets come from pandas, as in `parse_timestamp`."""
    days = pd.date_range(first - timedelta(days=1), last + timedelta(days=2), freq="D")
    local = days.tz_localize(
        timezone, ambiguous=np.ones(len(days), dtype=bool), nonexistent="shift_forward"
    )
    utc = local.tz_convert("UTC").tz_localize(None)
    minutes = ((days - utc) / pd.Timedelta(minutes=1)).to_numpy().round().astype(int)
    runs: list[tuple[date, date, int]] = []
    for i in range(1, len(days) - 1):
        day = days[i].date()
        if day < first or day > last or minutes[i] != minutes[i + 1]:
            continue
        if runs and runs[-1][2] == minutes[i] and runs[-1][1] == day - timedelta(days=1):
            runs[-1] = (runs[-1][0], day, int(minutes[i]))
        else:
            runs.append((day, day, int(minutes[i])))
    return runs


@dataclass
class _ColumnSql:
    ok: str  # the value takes the fast lane
    typed: str  # its typed value (only meaningful where ok)


class FastLane:
    """Types the canonical rows of text batches straight into the loader's `_incoming` table."""

    def __init__(
        self, con, entity: Entity, ctx: ValidationContext, *, raw_record_when: str = "true"
    ) -> None:
        """`raw_record_when`: SQL over the typed columns naming the rows whose raw_record may
        still be needed (the loader's possible orphans); the others skip building it. It may
        read `_typed`, the batch's fast rows with their typed columns (e.g. to look up only
        the parents this batch names)."""
        self.con = con
        self.entity = entity
        self.ctx = ctx
        self.raw_record_when = raw_record_when
        latest = ctx.load_date + timedelta(days=ctx.quality.future_tolerance_days)
        # computed once per process and time zone (a pandas pass over ~13k days)
        self._offsets = stable_offsets(ctx.timezone, ctx.quality.earliest_timestamp, latest)
        self._literal_cache: dict[str, dict[str, str] | None] = {}

    # ---------------------------------------------------------------- literal tables
    def _literals(self, column: Column) -> dict[str, str] | None:
        """Canonical input → stored value, computed by the exact validator's functions."""
        if column.name not in self._literal_cache:
            self._literal_cache[column.name] = self._compute_literals(column)
        return self._literal_cache[column.name]

    def _compute_literals(self, column: Column) -> dict[str, str] | None:
        if column.type == "boolean":
            text = clean_arrow(pa.array(BOOLEAN_CANDIDATES, pa.string()), nfkc=True)
            index = pd.RangeIndex(len(BOOLEAN_CANDIDATES))
            parsed = parse_boolean(text, self.ctx.aliases.value_map(BOOLEAN_KEY), index)
            return {
                literal: "true" if value else "false"
                for literal, value, bad in zip(
                    BOOLEAN_CANDIDATES, parsed.values, parsed.bad, strict=False
                )
                if not bad and value is not pd.NA
            }
        if column.allowed is not None:
            candidates = list(column.allowed)
            text = clean_arrow(pa.array(candidates, pa.string()), nfkc=True)
            mapped = map_aliases(text, self.ctx.aliases.value_map(column.name)).to_pylist()
            return {c: m for c, m in zip(candidates, mapped, strict=False) if m in column.allowed}
        if column.name == CURRENCY_COLUMN:
            business = self.ctx.quality.currency.strip().upper()
            candidates = sorted({business, business.lower()})
            text = clean_arrow(pa.array(candidates, pa.string()), nfkc=True)
            mapped = map_aliases(text, self.ctx.aliases.value_map(CURRENCY_COLUMN))
            upper = pc.utf8_upper(mapped).to_pylist()
            return {c: u for c, u in zip(candidates, upper, strict=False) if u == business}
        return None

    # ---------------------------------------------------------------- per column SQL
    def _bounds(self, column: Column, typed: str) -> str:
        parts = []
        if column.min_value is not None:
            parts.append(f"{typed} >= {column.min_value!r}")
        if column.max_value is not None:
            parts.append(f"{typed} <= {column.max_value!r}")
        return " AND ".join(parts) or "true"

    def _column_sql(self, column: Column, source: str | None) -> _ColumnSql:
        value = source if source is not None else "CAST(NULL AS VARCHAR)"
        if column.default is not None:
            value = f"coalesce(nullif({value}, ''), {sql_literal(column.default)})"
        else:
            value = f"nullif({value}, '')"
        missing_ok = "false" if column.required else "true"
        literals = self._literals(column)
        if literals is not None:
            if not literals:
                return _ColumnSql(ok=f"{value} IS NULL AND {missing_ok}", typed="NULL")
            cases = " ".join(
                f"WHEN {sql_literal(k)} THEN {sql_literal(v)}" for k, v in literals.items()
            )
            typed = f"CASE {value} {cases} END"
            if column.type == "boolean":
                typed = f"CAST({typed} AS BOOLEAN)"
            keys = ", ".join(sql_literal(k) for k in literals)
            return _ColumnSql(
                ok=f"CASE WHEN {value} IS NULL THEN {missing_ok} ELSE {value} IN ({keys}) END",
                typed=typed,
            )
        if column.type == "text":
            # Control characters are checked once per row (see `stage`); what is left is
            # "ASCII without edge spaces" (NFKC and trimming change nothing) or, for free text,
            # "no Unicode space at either end" (trimming changes nothing).
            pattern = (
                f"(strlen({value}) = length({value}) AND {value} = trim({value}))"
                if _needs_nfkc(column)
                else f"NOT (regexp_matches(left({value}, 1), {sql_literal(_EDGE_SPACE)}) OR "
                f"regexp_matches(right({value}, 1), {sql_literal(_EDGE_SPACE)}))"
            )
            return _ColumnSql(
                ok=f"CASE WHEN {value} IS NULL THEN {missing_ok} ELSE {pattern} END",
                typed=value,
            )
        if column.type in ("decimal", "integer"):
            pattern = _DECIMAL if column.type == "decimal" else _INTEGER
            sql_type = "DECIMAL(18,2)" if column.type == "decimal" else "BIGINT"
            typed = f"TRY_CAST({value} AS {sql_type})"
            check = f"regexp_full_match({value}, {sql_literal(pattern)}) AND {self._bounds(column, typed)}"
            return _ColumnSql(
                ok=f"CASE WHEN {value} IS NULL THEN {missing_ok} ELSE coalesce({check}, false) END",
                typed=typed,
            )
        if column.type == "timestamp":
            wall = f"TRY_CAST({value} AS TIMESTAMP)"
            day = f"CAST({wall} AS DATE)"
            cases = " ".join(
                f"WHEN {day} BETWEEN DATE '{a.isoformat()}' AND DATE '{b.isoformat()}' "
                f"THEN {wall} - INTERVAL ({minutes}) MINUTE"
                for a, b, minutes in reversed(self._offsets)  # recent rows: first branch
            )
            typed = f"CASE {cases} END" if cases else "CAST(NULL AS TIMESTAMP)"
            check = (
                f"regexp_full_match({value}, {sql_literal(_TIMESTAMP)}) AND ({typed}) IS NOT NULL"
            )
            return _ColumnSql(
                ok=f"CASE WHEN {value} IS NULL THEN {missing_ok} ELSE coalesce({check}, false) END",
                typed=typed,
            )
        raise ValueError(f"no fast lane for column type {column.type}")

    # ---------------------------------------------------------------- one batch
    def stage(self, batch: TextBatch, *, expose_row_numbers: bool) -> tuple[int, RawChunk]:
        """Inserts the batch's canonical rows into `_incoming`; returns their count and the other
        rows as a reader chunk for the exact validator."""
        names = batch.names
        columns = {f"s{i}": text for i, text in enumerate(batch.texts)}
        if batch.raw_records is not None:
            columns["_line"] = batch.raw_records
        table = pa.table(
            {
                "_pos": pa.array(np.arange(len(batch), dtype=np.int64)),
                "_rn": pa.array(batch.row_numbers.astype(np.int64)),
                **columns,
            }
        )
        table = sliced_for_scan(table)  # 1.5M interactions: the check 3.2 s -> 1.5 s
        source_of = {canonical: f'"s{pos}"' for pos, canonical in batch.header.positions}
        sqls = [self._column_sql(c, source_of.get(c.name)) for c in self.entity.columns]
        sources = [f"s{i}" for i in range(len(names))]
        # One scan per row for control characters, in any column: trimming would remove some,
        # and raw_record must escape them exactly as json.dumps does.
        control = (
            f"NOT regexp_matches(concat_ws('', {', '.join(sources)}), {sql_literal(_CONTROL)})"
            if sources
            else "true"
        )
        ok = " AND ".join([control] + [s.ok for s in sqls])
        pieces = []
        for i, name in enumerate(names):
            prefix = ("{" if i == 0 else ", ") + _json_key(name) + ": "
            pieces.append(
                f"{sql_literal(prefix)} || CASE WHEN s{i} IS NULL THEN 'null' ELSE "
                f"'\"' || replace(replace(s{i}, '\\', '\\\\'), '\"', '\\\"') || '\"' END"
            )
        raw = " || ".join(pieces) + " || '}'" if pieces else "'{}'"
        carried = list(sources)
        if batch.raw_records is not None:  # the record as read (a JSONL line) is raw_record
            raw = "_line"
            carried.append("_line")
        typed = ", ".join(
            f'{s.typed} AS "{c.name}"' for s, c in zip(sqls, self.entity.columns, strict=True)
        )
        entity_cols = ", ".join(f'"{c.name}"' for c in self.entity.columns)
        row_number = "_rn" if expose_row_numbers else "CAST(NULL AS BIGINT)"
        self.con.register("_fast_batch", table)
        slow = np.empty(0, dtype=np.int64)
        try:
            # The checks run once: first the (few) rows that need the exact lane, then the rest
            # are typed straight into `_incoming`.
            slow = self.con.execute(
                f"SELECT _pos FROM _fast_batch WHERE NOT ({ok}) ORDER BY _pos"
            ).fetchnumpy()["_pos"]
            rows = "_fast_batch"
            if len(slow):
                self.con.register("_slow_positions", pa.table({"_pos": slow}))
                rows = "_fast_batch ANTI JOIN _slow_positions USING (_pos)"  # a hash anti-join
            fast = self.con.execute(
                f"""INSERT INTO _incoming
                WITH _typed AS (
                    SELECT _rn, {typed}{"".join(", " + c for c in carried)} FROM {rows}
                )
                SELECT {entity_cols}, _rn, {row_number},
                       CASE WHEN {self.raw_record_when} THEN {raw} END
                FROM _typed"""
            ).fetchone()[0]
        finally:
            self.con.unregister("_fast_batch")
            if len(slow):
                self.con.unregister("_slow_positions")
        return int(fast), batch.take(np.asarray(slow, dtype=np.int64))
