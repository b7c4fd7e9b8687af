"""Row validation of source chunks (contract.md §1 "Validation of source rows").

Grain: one source row. A row that breaks any rule is rejected whole, with a reason naming the
column, the value and the rule; the other rows come back typed and normalised, ready for the raw
tables (docs/interfaces.md). Consumer: `crm.ingest.loader`, which dedupes, resolves orphans and
writes `quality.rejected_rows`. Every check is vectorised over the chunk.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from crm.ingest.aliases import BOOLEAN_KEY, Aliases
from crm.ingest.parsing import (
    DECIMAL_LIMIT,
    INTEGER_LIMIT,
    Parsed,
    as_timestamp,
    clean_arrow,
    clean_text,
    local_dates,
    map_aliases,
    parse_boolean,
    parse_decimal,
    parse_integer,
    parse_timestamp,
    to_arrow_text,
    to_object,
)
from crm.rules import QualityRules
from crm.schemas import Column, Entity

REJECTED_COLUMNS = ("row_number", "raw_record", "reason", "rule", "column")
CURRENCY_COLUMN = "currency"
# Long values (a 1 MB field) are cut in reasons so the rejected-rows table stays readable;
# raw_record still holds the whole row.
MAX_VALUE_CHARS_IN_REASON = 60


@dataclass
class ValidationContext:
    quality: QualityRules  # currency, earliest_timestamp, future_tolerance_days
    timezone: str  # CRM_TIMEZONE: naive timestamps are local time there
    load_date: date  # the machine's local date (NOT as_of)
    aliases: Aliases


class _Problems:
    """Per-row reasons, accumulated check by check; the first problem names rule and column.

    Reasons are built only for the rows that fail, so a clean chunk costs one mask per check.
    """

    def __init__(self, index: pd.Index) -> None:
        self.reason = pd.Series(None, index=index, dtype=object)
        self.rule = pd.Series(None, index=index, dtype=object)
        self.column = pd.Series(None, index=index, dtype=object)

    def add(
        self, mask: pd.Series, column: str, rule: str, text: str, shown: pd.Series | None = None
    ) -> None:
        """Record `column: 'value' text (rule: rule)` for the rows in mask."""
        mask = pd.Series(mask, index=self.reason.index).fillna(False).astype(bool)
        if not mask.any():
            return
        prefix = f"{column}: "
        if shown is not None:
            prefix = prefix + _quoted(shown[mask]) + " "
        message = prefix + f"{text} (rule: {rule})"
        earlier = self.reason[mask]
        first = earlier.isna()
        self.reason[mask] = np.where(first, message, earlier.fillna("") + "; " + message)
        self.rule[mask] = self.rule[mask].where(~first, rule)
        self.column[mask] = self.column[mask].where(~first, column)

    @property
    def rejected(self) -> pd.Series:
        return self.reason.notna()


def _quoted(values: pd.Series) -> pd.Series:
    """'value' for reasons (trimmed as written), long values shortened with an ellipsis."""
    text = clean_text(values, nfkc=False).fillna("").astype(str)
    short = text.str.slice(0, MAX_VALUE_CHARS_IN_REASON)
    short = short.where(text.str.len() <= MAX_VALUE_CHARS_IN_REASON, short + "…")
    return ("'" + short + "'").astype(object)


def _needs_nfkc(column: Column) -> bool:
    """Full-width → half-width only where it changes meaning: ids, numbers, emails, phones."""
    name = column.name
    return (
        column.type != "text"
        or column.allowed is not None
        or name == CURRENCY_COLUMN
        or name.endswith("_id")
        or "email" in name
        or "phone" in name
    )


def _source_values(frame: pd.DataFrame, column: Column) -> pd.Series:
    if column.name in frame.columns:
        return frame[column.name]
    return pd.Series(None, index=frame.index, dtype=object)


def _with_default(text: pa.Array, column: Column) -> pa.Array:
    if column.default is None:
        return text
    return pc.fill_null(text, column.default)


def _format_bound(value: float) -> str:
    return f"{value:g}"


def _check_bounds(values: pd.Series, raw: pd.Series, column: Column, problems: _Problems) -> None:
    """Both bounds → rule `range` (satisfaction 1–5, nps 0–10); a lower bound only → `min`."""
    low, high = column.min_value, column.max_value
    if low is not None and high is not None:
        outside = (values < low) | (values > high)
        bounds = f"{_format_bound(low)}–{_format_bound(high)}"
        problems.add(outside, column.name, "range", f"is outside {bounds}", raw)
    elif low is not None:
        problems.add(values < low, column.name, "min", f"is below {_format_bound(low)}", raw)
    elif high is not None:
        problems.add(values > high, column.name, "max", f"is above {_format_bound(high)}", raw)


def _check_timestamp_window(
    values: pd.Series, raw: pd.Series, column: Column, ctx: ValidationContext, problems: _Problems
) -> None:
    """Judged on the local calendar day, as the user wrote it (not the UTC instant)."""
    present = values.notna()
    if not present.any():
        return
    day = local_dates(values, ctx.timezone)
    earliest = ctx.quality.earliest_timestamp
    latest = ctx.load_date + timedelta(days=ctx.quality.future_tolerance_days)
    too_early = present & (day < as_timestamp(earliest))
    problems.add(too_early, column.name, "too_early", f"is before {earliest.isoformat()}", raw)
    future = present & (day > as_timestamp(latest))
    problems.add(
        future,
        column.name,
        "future",
        f"is after {latest.isoformat()} (load date {ctx.load_date.isoformat()} "
        f"+ {ctx.quality.future_tolerance_days} day(s))",
        raw,
    )


def _parse_typed(text: pa.Array, column: Column, ctx: ValidationContext, index: pd.Index) -> Parsed:
    if column.type == "decimal":
        return parse_decimal(text, index)
    if column.type == "integer":
        return parse_integer(text, index)
    if column.type == "boolean":
        return parse_boolean(text, ctx.aliases.value_map(BOOLEAN_KEY), index)
    return parse_timestamp(text, ctx.timezone, index)


_TYPE_NAMES = {
    "decimal": "a number",
    "integer": "a whole number",
    "boolean": "a boolean (true/false, 1/0, yes/no, y/n, t/f, 是/否)",
    "timestamp": "a timestamp (ISO 8601, YYYY-MM-DD[ HH:MM[:SS]], YYYY/MM/DD, YYYYMMDD)",
}


def _validate_text(
    text: pa.Array, raw: pd.Series, column: Column, ctx: ValidationContext, problems: _Problems
) -> pd.Series:
    """Enumerations and currency: value aliases, then the allowed list / business currency."""
    index = raw.index
    if column.allowed is not None:
        canonical = to_object(map_aliases(text, ctx.aliases.value_map(column.name)), index)
        outside = canonical.notna() & ~canonical.isin(column.allowed)
        problems.add(
            outside, column.name, "allowed", f"is not one of {', '.join(column.allowed)}", raw
        )
        return canonical
    if column.name == CURRENCY_COLUMN:
        business = ctx.quality.currency.strip().upper()
        mapped = map_aliases(text, ctx.aliases.value_map(CURRENCY_COLUMN))
        canonical = to_object(pc.utf8_upper(mapped), index)
        other = canonical.notna() & (canonical != business)
        problems.add(
            other, column.name, "currency", f"is not the business currency {business}", raw
        )
        return canonical
    return to_object(text, index)


def _validate_column(
    frame: pd.DataFrame, column: Column, ctx: ValidationContext, problems: _Problems
) -> pd.Series:
    raw = _source_values(frame, column)
    text = _with_default(clean_arrow(to_arrow_text(raw), nfkc=_needs_nfkc(column)), column)
    if column.required:
        missing = pd.Series(pc.is_null(text).to_numpy(zero_copy_only=False), index=frame.index)
        problems.add(missing, column.name, "required", "value is missing")
    if column.type == "text":
        return _validate_text(text, raw, column, ctx, problems)
    parsed = _parse_typed(text, column, ctx, frame.index)
    problems.add(parsed.bad, column.name, "type", f"is not {_TYPE_NAMES[column.type]}", raw)
    if parsed.too_large is not None:
        limit = DECIMAL_LIMIT if column.type == "decimal" else INTEGER_LIMIT
        problems.add(
            parsed.too_large,
            column.name,
            "max",
            f"is too large (the warehouse holds values below {limit:.0e})",
            raw,
        )
    if column.type in ("decimal", "integer"):
        _check_bounds(parsed.values, raw, column, problems)
    if column.type == "timestamp":
        _check_timestamp_window(parsed.values, raw, column, ctx, problems)
    return parsed.values


def _carried(frame: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """row_number (Int64, null for database rows) and raw_record, as the reader made them."""
    if "row_number" in frame.columns:
        row_number = frame["row_number"].astype("Int64")
    else:
        row_number = pd.Series(pd.NA, index=frame.index, dtype="Int64")
    if "raw_record" in frame.columns:
        raw_record = frame["raw_record"].astype(object)
    else:
        raw_record = pd.Series(None, index=frame.index, dtype=object)
    return row_number, raw_record


def validate_chunk(
    frame: pd.DataFrame, entity: Entity, ctx: ValidationContext
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a reader chunk into typed valid rows and rejected rows (see module docstring).

    valid: every entity column in schema order (text → str/None, enums lower-case after
    aliases, timestamp → datetime64[us] naive UTC, decimal → float64 rounded to 2, integer →
    Int64, boolean → boolean), plus row_number and raw_record.
    rejected: row_number, raw_record, reason (all problems joined by "; "), rule and column
    (of the first problem, in schema column order).
    """
    problems = _Problems(frame.index)
    typed = {
        column.name: _validate_column(frame, column, ctx, problems) for column in entity.columns
    }
    row_number, raw_record = _carried(frame)
    typed["row_number"] = row_number
    typed["raw_record"] = raw_record
    result = pd.DataFrame(typed, index=frame.index)
    rejected_mask = problems.rejected
    valid = result[~rejected_mask].reset_index(drop=True)
    rejected = pd.DataFrame(
        {
            "row_number": row_number[rejected_mask],
            "raw_record": raw_record[rejected_mask],
            "reason": problems.reason[rejected_mask],
            "rule": problems.rule[rejected_mask],
            "column": problems.column[rejected_mask],
        },
        columns=list(REJECTED_COLUMNS),
    ).reset_index(drop=True)
    return valid, rejected
