"""`python -m crm.demo`: write the demo data set (see docs/demo_data.md for the options)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from crm.demo.generator import generate
from crm.settings import DEFAULT_TIMEZONE, parse_as_of, today_in

DEFAULT_CUSTOMERS = 2000
DEFAULT_SEED = 42
DEFAULT_DB_URL = "sqlite:///data/source/shop.db"


def _default_db_url() -> str | None:
    """CRM_SOURCE_DB_URL as the pipeline reads it: explicitly empty means files only."""
    value = os.environ.get("CRM_SOURCE_DB_URL")
    if value is None:
        return DEFAULT_DB_URL
    return value.strip() or None


def _parser() -> argparse.ArgumentParser:
    timezone = os.environ.get("CRM_TIMEZONE", "").strip() or DEFAULT_TIMEZONE
    parser = argparse.ArgumentParser(
        prog="python -m crm.demo",
        description="Generate a seeded demo data set (CRM customers, sales reps, orders, "
        "payments, interactions) for a Chinese B2B/B2C company.",
    )
    parser.add_argument(
        "--customers",
        type=int,
        default=DEFAULT_CUSTOMERS,
        help="number of customers (default %(default)s)",
    )
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help="random seed (default %(default)s)"
    )
    parser.add_argument(
        "--as-of",
        type=parse_as_of,
        default=today_in(timezone),
        help="last day of the history, YYYY-MM-DD (default: today in CRM_TIMEZONE)",
    )
    parser.add_argument(
        "--landing",
        type=Path,
        default=Path(os.environ.get("CRM_LANDING_DIR", "").strip() or "data/landing"),
        help="landing folder (default: CRM_LANDING_DIR or data/landing)",
    )
    parser.add_argument(
        "--db-url",
        default=_default_db_url(),
        help="operational database URL for orders and payments; '' writes them as landing "
        "files (default: CRM_SOURCE_DB_URL or sqlite:///data/source/shop.db)",
    )
    parser.add_argument(
        "--force", action="store_true", help="replace demo data that already exists"
    )
    parser.set_defaults(timezone=timezone)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.customers < 1:
        print("--customers must be at least 1", file=sys.stderr)
        return 2
    generate(
        customers=args.customers,
        seed=args.seed,
        as_of=args.as_of,
        landing_dir=args.landing,
        db_url=args.db_url or None,
        force=args.force,
        timezone=args.timezone,
        echo=lambda message: print(message, flush=True),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
