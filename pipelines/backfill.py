"""`python -m pipelines.backfill --from 2024-11-30 --to 2026-10-31 [--every month-end|day]`

Builds classification history from past data: runs `customer_history` (everything but alert
delivery — nobody wants emails about 2024) for each as_of, oldest first, so
`customer_stage_history` and `lifecycle_flow` grow month by month. Rerunning a range is
idempotent. Stops at the first failed date with its message.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date, timedelta

from crm.settings import parse_as_of


def month_ends(start: date, end: date) -> list[date]:
    days = []
    current = date(start.year, start.month, 1)
    while current <= end:
        following = date(current.year + current.month // 12, current.month % 12 + 1, 1)
        last = following - timedelta(days=1)
        if start <= last <= end:
            days.append(last)
        current = following
    return days


def every_day(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run customer_history for a range of as_of dates.")
    parser.add_argument("--from", dest="start", required=True, type=parse_as_of)
    parser.add_argument("--to", dest="end", required=True, type=parse_as_of)
    parser.add_argument("--every", choices=["month-end", "day"], default="month-end")
    args = parser.parse_args(argv)
    if args.start > args.end:
        parser.error("--from must not be after --to")
    dates = (
        month_ends(args.start, args.end)
        if args.every == "month-end"
        else every_day(args.start, args.end)
    )
    if not dates:
        parser.error("no date in that range")

    from pipelines.run import main as run_once

    for i, as_of in enumerate(dates, 1):
        print(f"[{i}/{len(dates)}] as_of {as_of}", flush=True)
        if run_once(["--job", "customer_history", "--as-of", as_of.isoformat()]) != 0:
            print(f"backfill stopped at {as_of}; earlier dates are recorded", file=sys.stderr)
            return 1
    print(f"backfill done: {len(dates)} as_of dates from {dates[0]} to {dates[-1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
