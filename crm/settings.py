"""Run settings read from the environment (contract.md §2), in one place.

Why a plain dataclass and not Dagster config: the same settings drive the CLI tools (demo data,
benchmarks) and the Dagster resources; `pipelines/` turns them into resources.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

DEFAULT_TIMEZONE = "Asia/Shanghai"


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    if value is None:
        return default
    value = value.strip()
    return value if value != "" else default


def today_in(timezone: str) -> date:
    """Today's date where the business is, not where the server is."""
    return datetime.now(ZoneInfo(timezone)).date()


def parse_as_of(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError as exc:
        raise ValueError(f"CRM_AS_OF={text!r} is not a date in the form YYYY-MM-DD") from exc


@dataclass(frozen=True)
class SmtpSettings:
    host: str | None = None
    port: int = 25
    user: str | None = None
    password: str | None = field(default=None, repr=False)  # never printed
    starttls: bool = False
    sender: str = "crm-alerts@localhost"

    @property
    def enabled(self) -> bool:
        return bool(self.host)


@dataclass(frozen=True)
class Settings:
    landing_dir: Path = Path("data/landing")
    source_db_url: str | None = "sqlite:///data/source/shop.db"
    warehouse: Path = Path("data/warehouse.duckdb")
    publish_dir: Path = Path("data/published")
    as_of: date | None = None
    timezone: str = DEFAULT_TIMEZONE
    rules_path: Path | None = None
    mail_dir: Path = Path("data/mail")
    smtp: SmtpSettings = field(default_factory=SmtpSettings)

    @classmethod
    def from_env(cls) -> Settings:
        timezone = _env("CRM_TIMEZONE", DEFAULT_TIMEZONE)
        try:
            ZoneInfo(timezone)
        except Exception as exc:  # ZoneInfoNotFoundError or ValueError for odd names
            raise ValueError(f"CRM_TIMEZONE={timezone!r} is not a known IANA time zone") from exc
        as_of_text = _env("CRM_AS_OF")
        rules = _env("CRM_RULES")
        port_text = _env("SMTP_PORT", "25")
        try:
            port = int(port_text)
        except ValueError as exc:
            raise ValueError(f"SMTP_PORT={port_text!r} is not a port number") from exc
        # An explicitly empty CRM_SOURCE_DB_URL means "files only" (contract §2).
        db_url = os.environ.get("CRM_SOURCE_DB_URL")
        if db_url is None:
            db_url = "sqlite:///data/source/shop.db"
        db_url = db_url.strip() or None
        return cls(
            landing_dir=Path(_env("CRM_LANDING_DIR", "data/landing")),
            source_db_url=db_url,
            warehouse=Path(_env("CRM_WAREHOUSE", "data/warehouse.duckdb")),
            publish_dir=Path(_env("CRM_PUBLISH_DIR", "data/published")),
            as_of=parse_as_of(as_of_text) if as_of_text else None,
            timezone=timezone,
            rules_path=Path(rules) if rules else None,
            mail_dir=Path(_env("CRM_MAIL_DIR", "data/mail")),
            smtp=SmtpSettings(
                host=_env("SMTP_HOST"),
                port=port,
                user=_env("SMTP_USER"),
                password=_env("SMTP_PASSWORD"),
                starttls=(_env("SMTP_STARTTLS", "false") or "").lower()
                in {"1", "true", "yes", "y", "t"},
                sender=_env("ALERT_FROM", "crm-alerts@localhost"),
            ),
        )

    def resolved_as_of(self) -> date:
        return self.as_of or today_in(self.timezone)
