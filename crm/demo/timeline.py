"""Time in the demo world: the history window, seasonality, times of day and text timestamps.

All times are local wall-clock times of the business (Asia/Shanghai by default) counted as
seconds since 1970-01-01 00:00 *local*, because the contract's sources carry local times without
an offset. Days are handled as offsets 0..history_days-1, where the last offset is as_of.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crm.demo.reference import SPRING_FESTIVAL, SPRING_FESTIVAL_FALLBACK
from crm.demo.shape import DemoShape

SECONDS_PER_DAY = 86_400
_EPOCH = date(1970, 1, 1)


@dataclass(frozen=True)
class Timeline:
    """The generated history: `history_days` days ending at as_of, nothing after `cutoff`."""

    as_of: date
    history_days: int
    cutoff_seconds: int  # inclusive upper bound: end of as_of, or "now" when as_of is today

    @property
    def first_epoch_day(self) -> int:
        return (self.as_of - _EPOCH).days - self.history_days + 1

    @property
    def last_offset(self) -> int:
        return self.history_days - 1

    def offset_days_ago(self, days_ago: np.ndarray | int) -> np.ndarray | int:
        """Day offset of a day `days_ago` days before as_of (0 = as_of)."""
        return self.last_offset - days_ago

    def dates(self) -> list[date]:
        start = self.as_of - timedelta(days=self.last_offset)
        return [start + timedelta(days=i) for i in range(self.history_days)]

    def day_offset(self, seconds: np.ndarray) -> np.ndarray:
        """Day offset of local timestamps (inverse of `seconds`)."""
        return seconds // SECONDS_PER_DAY - self.first_epoch_day

    def seconds(self, day_offset: np.ndarray, second_of_day: np.ndarray) -> np.ndarray:
        days = day_offset.astype(np.int64) + self.first_epoch_day
        return days * SECONDS_PER_DAY + second_of_day.astype(np.int64)


def build_timeline(
    as_of: date, history_days: int, timezone: str, now: datetime | None = None
) -> Timeline:
    """Cut the history at the end of as_of, or earlier when as_of is today (never the future)."""
    end_of_as_of = datetime.combine(as_of, datetime.max.time()).replace(microsecond=0)
    local_now = (now or datetime.now(ZoneInfo(timezone))).astimezone(ZoneInfo(timezone))
    cutoff = min(end_of_as_of, local_now.replace(tzinfo=None, microsecond=0))
    cutoff_seconds = int((cutoff - datetime(1970, 1, 1)).total_seconds())
    return Timeline(as_of=as_of, history_days=history_days, cutoff_seconds=cutoff_seconds)


def _spring_festival(year: int) -> date:
    month, day = SPRING_FESTIVAL_FALLBACK
    return SPRING_FESTIVAL.get(year, date(year, month, day))


def shopping_weights(timeline: Timeline, shape: DemoShape) -> np.ndarray:
    """Relative order volume per day: a Spring Festival dip, 618 and a strong Double-11 peak."""
    weights = np.ones(timeline.history_days)
    festival_from, festival_to = shape.spring_festival_days
    for i, day in enumerate(timeline.dates()):
        days_from_festival = (day - _spring_festival(day.year)).days
        if festival_from <= days_from_festival <= festival_to:
            weights[i] = shape.spring_festival_factor
        elif day.month == 11 and day.day == shape.double11_days[1]:
            weights[i] = shape.double11_day_factor
        elif day.month == 11 and shape.double11_days[0] <= day.day <= shape.double11_days[1]:
            weights[i] = shape.double11_factor
        elif day.month == 6 and shape.mid_year_days[0] <= day.day <= shape.mid_year_days[1]:
            weights[i] = shape.mid_year_factor
    return weights


def seasonal_buyer_weights(timeline: Timeline, shape: DemoShape) -> np.ndarray:
    """Seasonal buyers barely buy outside the festivals and much more during them."""
    base = shopping_weights(timeline, shape)
    peaks = np.where(base > 1.0, base**shape.seasonal_peak_power, shape.seasonal_base_factor)
    return np.where(base < 1.0, base * shape.seasonal_base_factor, peaks)


def cumulative(weights: np.ndarray) -> np.ndarray:
    """Cumulative weights with a leading 0, for inverse-CDF sampling of days."""
    return np.concatenate(([0.0], np.cumsum(weights)))


def sample_days(
    rng: np.random.Generator,
    cdf: np.ndarray,
    first: np.ndarray,
    last: np.ndarray,
    fading: np.ndarray | None = None,
) -> np.ndarray:
    """One day offset per row in [first, last] (inclusive), following the weights behind `cdf`.

    `fading` rows get a linearly decreasing density over their window (activity dying out).
    """
    low = cdf[first]
    high = cdf[last + 1]
    u = rng.random(len(first))
    if fading is not None:
        u = np.where(fading, 1.0 - np.sqrt(1.0 - u), u)
    target = low + u * (high - low)
    day = np.searchsorted(cdf, target, side="right") - 1
    return np.clip(day, first, last)


def sample_seconds_of_day(
    rng: np.random.Generator, is_company: np.ndarray, shape: DemoShape
) -> np.ndarray:
    """Time of day: office hours for companies, evenings for consumers."""
    company_p = np.asarray(shape.company_hours) / np.sum(shape.company_hours)
    person_p = np.asarray(shape.person_hours) / np.sum(shape.person_hours)
    hour = np.where(
        is_company,
        rng.choice(24, size=len(is_company), p=company_p),
        rng.choice(24, size=len(is_company), p=person_p),
    )
    return hour * 3600 + rng.integers(0, 3600, size=len(is_company))


def format_timestamps(seconds: np.ndarray) -> pa.Array:
    """`YYYY-MM-DD HH:MM:SS` text (contract §1), vectorised through Arrow."""
    stamps = pa.array(seconds.astype(np.int64), type=pa.int64()).cast(pa.timestamp("s"))
    return pc.strftime(stamps, format="%Y-%m-%d %H:%M:%S")


def format_dates_slashed(seconds: np.ndarray) -> pa.Array:
    """`YYYY/MM/DD`, the date-only form Chinese Excel exports use."""
    stamps = pa.array(seconds.astype(np.int64), type=pa.int64()).cast(pa.timestamp("s"))
    return pc.strftime(stamps, format="%Y/%m/%d")


def years_of(seconds: np.ndarray) -> np.ndarray:
    days = (seconds // SECONDS_PER_DAY).astype("datetime64[D]")
    return days.astype("datetime64[Y]").astype(np.int64) + 1970
