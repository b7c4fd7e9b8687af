"""Vectorised value parsers for source text: numbers, integers, booleans, timestamps, enums.

Why Arrow compute: a million-row export must validate in seconds, and pandas' object-dtype
string methods loop in Python. Every parser here takes a whole column as a pyarrow string array
of cleaned text (see `clean_arrow`) and returns pandas values aligned with the chunk's index plus
`bad`: the rows whose non-empty value did not parse. Consumer: `crm.ingest.validate`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

# Amounts as Chinese exports write them: ¥1,234.50 / ￥1,234.5 (NFKC turns ￥ into ¥) / RMB 12 /
# 1,234 / 12元. Thousands separators must group by three, so "1,23" is not silently 123.
# (RE2 syntax: Arrow's regex engine.)
_NUMBER_BODY = r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d*)?|\d+(?:\.\d*)?|\.\d+)(?P<exp>[eE][+-]?\d+)?"
_MONEY_PATTERN = (
    r"^(?P<sign1>[+-]?)\s*(?:¥|(?i:rmb|cny)|人民币)?\s*(?P<sign2>[+-]?)\s*"
    + _NUMBER_BODY
    + r"\s*元?$"
)
_PLAIN_NUMBER_PATTERN = r"^(?P<sign1>[+-]?)(?P<sign2>)\s*" + _NUMBER_BODY + "$"

# ISO 8601 (T or space, optional fraction and offset), YYYY-MM-DD[ HH:MM[:SS]], YYYY/MM/DD[...];
# YYYYMMDD is rewritten to YYYY-MM-DD first.
_TIMESTAMP_PATTERN = (
    r"^(?P<year>\d{4})[-/](?P<month>\d{1,2})[-/](?P<day>\d{1,2})"
    r"(?:(?:T|\s+)(?P<hour>\d{1,2}):(?P<minute>\d{2})"
    r"(?::(?P<second>\d{2})(?:[.,](?P<fraction>\d{1,9}))?)?)?"
    r"\s*(?P<offset>Z|[+-]\d{2}(?::?\d{2})?)?$"
)
_COMPACT_DATE = r"^(\d{4})(\d{2})(\d{2})$"
_MICROSECOND_DIGITS = 6
_CLOCK_LIMITS = {"hour": 23, "minute": 59, "second": 59}
_DATE_PARTS = ("year", "month", "day")


# The largest magnitudes the warehouse holds exactly: DECIMAL(18,2) and whole numbers that a
# float64 (the parsers' intermediate) still carries to the unit. Larger values are rejected
# (rule `max`) instead of failing the whole source on an overflowing cast.
DECIMAL_LIMIT = 1e16
INTEGER_LIMIT = 1e15


@dataclass
class Parsed:
    """Typed values of one column and the rows whose (non-empty) value did not parse."""

    values: pd.Series
    bad: pd.Series  # bool, aligned with values
    too_large: pd.Series | None = None  # parsed, but beyond what the warehouse type holds


def _stringify(value: object) -> object:
    return value if value is None or isinstance(value, str) else str(value)


def to_arrow_text(series: pd.Series) -> pa.Array:
    """A chunk column (str/None, or anything a database hands back) as an Arrow string array."""
    values = series.astype(object).to_numpy()
    missing = pd.isna(values)
    if missing.any():
        values = values.copy()
        values[missing] = None
    try:
        return pa.array(values, type=pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([_stringify(v) for v in values], type=pa.string())


def clean_arrow(text: pa.Array, *, nfkc: bool) -> pa.Array:
    """Trimmed, empty → null; NFKC (full-width → half-width) when asked."""
    if nfkc:
        text = pc.utf8_normalize(text, "NFKC")
    text = pc.utf8_trim_whitespace(text)
    return pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)


def to_object(values: pa.Array, index: pd.Index) -> pd.Series:
    """Arrow strings → object Series of str/None (the readers' and raw tables' text form)."""
    return pd.Series(values.to_numpy(zero_copy_only=False), index=index, dtype=object)


def as_object_text(series: pd.Series) -> pd.Series:
    """object dtype with None for missing (pandas 3 otherwise infers its NaN-based `str`)."""
    text = series.astype(object)
    missing = text.isna()
    if missing.any():
        text = text.copy()
        text[missing] = None
    return text


def clean_text(series: pd.Series, *, nfkc: bool) -> pd.Series:
    """str or None: trimmed, empty → None, NFKC when asked (pandas in, pandas out)."""
    return to_object(clean_arrow(to_arrow_text(series), nfkc=nfkc), series.index)


def comparison_key(text: pa.Array) -> pa.Array:
    """The vectorised `aliases.normalise_key`: NFKC, trimmed, lower case, `_` for inner gaps."""
    folded = pc.utf8_lower(pc.utf8_trim_whitespace(pc.utf8_normalize(text, "NFKC")))
    return pc.replace_substring_regex(folded, r"[\s\-]+", "_")


def _lookup(keys: pa.Array, mapping: dict[str, str]) -> pa.Array:
    """mapping[key] per row; null where the key is not in the mapping."""
    if not mapping:
        return pa.nulls(len(keys), pa.string())
    positions = pc.index_in(keys, value_set=pa.array(list(mapping), pa.string()))
    return pc.take(pa.array(list(mapping.values()), pa.string()), positions)


def map_aliases(text: pa.Array, mapping: dict[str, str]) -> pa.Array:
    """Alias values → canonical values; others → their comparison key (lower case)."""
    keys = comparison_key(text)
    return pc.coalesce(_lookup(keys, mapping), keys)


def _field(parts: pa.Array, name: str) -> pa.Array:
    """A regex group as text, null where the row did not match or the group is empty."""
    value = pc.struct_field(parts, name)
    return pc.if_else(pc.equal(value, ""), pa.scalar(None, pa.string()), value)


def _signed_numbers(text: pa.Array, pattern: str, index: pd.Index) -> Parsed:
    parts = pc.extract_regex(text, pattern)
    digits = pc.binary_join_element_wise(
        pc.replace_substring(_field(parts, "num"), ",", ""),
        pc.fill_null(_field(parts, "exp"), ""),
        "",
    )
    magnitude = pc.cast(digits, pa.float64()).to_numpy(zero_copy_only=False)
    sign1 = pc.fill_null(_field(parts, "sign1"), "").to_numpy(zero_copy_only=False)
    sign2 = pc.fill_null(_field(parts, "sign2"), "").to_numpy(zero_copy_only=False)
    negative = (sign1 == "-") | (sign2 == "-")
    both_signed = (sign1 != "") & (sign2 != "")
    values = np.where(negative, -magnitude, magnitude)
    values = np.where(both_signed, np.nan, values).astype("float64")
    present = pc.is_valid(text).to_numpy(zero_copy_only=False)
    return Parsed(
        pd.Series(values, index=index), pd.Series(present & np.isnan(values), index=index)
    )


def parse_decimal(text: pa.Array, index: pd.Index) -> Parsed:
    """Money and other decimals → float64 rounded to 2 places (DECIMAL(18,2) downstream)."""
    parsed = _signed_numbers(text, _MONEY_PATTERN, index)
    values = parsed.values.round(2)
    too_large = values.abs() >= DECIMAL_LIMIT
    return Parsed(values.where(~too_large), parsed.bad, too_large)


def parse_integer(text: pa.Array, index: pd.Index) -> Parsed:
    """Counts and scores → Int64; "4.0" (Excel) is 4, "4.5" is not a whole number (bad)."""
    parsed = _signed_numbers(text, _PLAIN_NUMBER_PATTERN, index)
    whole = parsed.values.notna() & (parsed.values == np.floor(parsed.values))
    bad = parsed.bad | (parsed.values.notna() & ~whole)
    too_large = whole & (parsed.values.abs() >= INTEGER_LIMIT)
    return Parsed(parsed.values.where(whole & ~too_large).astype("Int64"), bad, too_large)


def parse_boolean(text: pa.Array, mapping: dict[str, str], index: pd.Index) -> Parsed:
    """true/false, 1/0, yes/no, y/n, t/f, 是/否 (the `boolean` value aliases) → boolean dtype."""
    canonical = _lookup(comparison_key(text), mapping)
    values = pd.Series(canonical.to_numpy(zero_copy_only=False), index=index, dtype=object)
    typed = values.map({"true": True, "false": False}).astype("boolean")
    present = pd.Series(pc.is_valid(text).to_numpy(zero_copy_only=False), index=index)
    return Parsed(typed, present & typed.isna())


def _number_column(parts: pa.Array, name: str) -> np.ndarray:
    return pc.cast(_field(parts, name), pa.float64()).to_numpy(zero_copy_only=False)


def _wall_clock(parts: pa.Array, index: pd.Index) -> pd.Series:
    """The written date and time as naive datetime64[us] (NaT for impossible dates or clocks)."""
    numbers = pd.DataFrame(
        {name: _number_column(parts, name) for name in (*_DATE_PARTS, *_CLOCK_LIMITS)},
        index=index,
    )
    clock = numbers[list(_CLOCK_LIMITS)].fillna(0)
    numbers[list(_CLOCK_LIMITS)] = clock
    # to_datetime would roll "25:00" over into the next day; a clock reading must be valid.
    clock_ok = pd.concat([clock[k] <= limit for k, limit in _CLOCK_LIMITS.items()], axis=1)
    complete = numbers[list(_DATE_PARTS)].notna().all(axis=1) & clock_ok.all(axis=1)
    wall = pd.Series(pd.NaT, index=index, dtype="datetime64[us]")
    if complete.any():
        assembled = pd.to_datetime(numbers[complete], errors="coerce").astype("datetime64[us]")
        fraction = pc.fill_null(_field(parts, "fraction"), "")
        padded = pc.utf8_slice_codeunits(
            pc.utf8_rpad(fraction, _MICROSECOND_DIGITS, "0"), 0, _MICROSECOND_DIGITS
        )
        micros = pd.Series(pc.cast(padded, pa.int64()).to_numpy(), index=index)[complete]
        wall[complete] = assembled + pd.to_timedelta(micros, unit="us")
    return wall


def _offset_minutes(parts: pa.Array, index: pd.Index) -> pd.Series:
    """'+08:00' / '+0800' / '+08' / 'Z' → signed minutes east of UTC; NaN where no offset."""
    offset = _field(parts, "offset")
    digits = pc.replace_substring(pc.replace_substring(offset, ":", ""), "Z", "+0000")
    sign = pc.if_else(pc.starts_with(digits, "-"), -1.0, 1.0)
    hours = pc.cast(pc.utf8_slice_codeunits(digits, 1, 3), pa.float64())
    minute_text = pc.utf8_slice_codeunits(digits, 3, 5)
    minutes = pc.cast(pc.if_else(pc.equal(minute_text, ""), "0", minute_text), pa.float64())
    total = pc.multiply(sign, pc.add(pc.multiply(hours, 60.0), minutes))
    return pd.Series(total.to_numpy(zero_copy_only=False), index=index, dtype="float64")


def _expand_compact_dates(text: pa.Array) -> pa.Array:
    """YYYYMMDD → YYYY-MM-DD, touching only 8-character values (the regex is the costly part)."""
    compact = pc.fill_null(pc.equal(pc.utf8_length(text), len("YYYYMMDD")), False)
    if not pc.any(compact).as_py():
        return text
    expanded = pc.replace_substring_regex(pc.filter(text, compact), _COMPACT_DATE, r"\1-\2-\3")
    return pc.replace_with_mask(text, compact, expanded)


def parse_timestamp(text: pa.Array, timezone: str, index: pd.Index) -> Parsed:
    """Source timestamps → naive UTC datetime64[us].

    Values without an offset are local time in `timezone` (CRM_TIMEZONE), localised through
    zoneinfo: DST gaps shift forward, repeated hours take the first (DST) instant.
    """
    text = _expand_compact_dates(text)
    parts = pc.extract_regex(text, _TIMESTAMP_PATTERN)
    wall = _wall_clock(parts, index)
    offset = _offset_minutes(parts, index)
    utc = pd.Series(pd.NaT, index=index, dtype="datetime64[us]")
    with_offset = wall.notna() & offset.notna()
    utc[with_offset] = wall[with_offset] - pd.to_timedelta(offset[with_offset], unit="min")
    local = wall.notna() & offset.isna()
    if local.any():
        localised = wall[local].dt.tz_localize(
            timezone,
            ambiguous=np.ones(int(local.sum()), dtype=bool),
            nonexistent="shift_forward",
        )
        utc[local] = localised.dt.tz_convert("UTC").dt.tz_localize(None)
    present = pd.Series(pc.is_valid(text).to_numpy(zero_copy_only=False), index=index)
    return Parsed(utc.astype("datetime64[us]"), present & utc.isna())


def local_dates(utc: pd.Series, timezone: str) -> pd.Series:
    """Naive UTC timestamps → local calendar day (midnight, naive) in `timezone`."""
    return utc.dt.tz_localize("UTC").dt.tz_convert(timezone).dt.tz_localize(None).dt.normalize()


def as_timestamp(day: date) -> pd.Timestamp:
    return pd.Timestamp(day.year, day.month, day.day)
