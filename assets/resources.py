"""The one resource every asset uses: run settings and rules, resolved once per run.

Why overrides and not EnvVar fields: every variable of contract §2 is optional with a default, and
secrets (SMTP_PASSWORD) must never appear in run config or the UI. So the resource reads the
environment at run time and only carries explicit overrides (tests, the backfill command).
"""

from dataclasses import replace
from datetime import date
from pathlib import Path

import dagster as dg

from crm.ingest.aliases import Aliases, load_aliases
from crm.rules import Rules, load_rules
from crm.settings import Settings, parse_as_of

AS_OF_TAG = "crm/as_of"


class CrmResource(dg.ConfigurableResource):
    """Settings from the environment (contract §2), with optional overrides."""

    landing_dir: str | None = None
    source_db_url: str | None = None
    warehouse: str | None = None
    publish_dir: str | None = None
    as_of: str | None = None
    timezone: str | None = None
    rules_path: str | None = None
    mail_dir: str | None = None

    def settings(self) -> Settings:
        base = Settings.from_env()
        overrides: dict[str, object] = {}
        for name in ("landing_dir", "warehouse", "publish_dir", "rules_path", "mail_dir"):
            value = getattr(self, name)
            if value is not None:
                overrides[name] = Path(value)
        if self.source_db_url is not None:
            overrides["source_db_url"] = self.source_db_url or None
        if self.timezone:
            overrides["timezone"] = self.timezone
        if self.as_of:
            overrides["as_of"] = parse_as_of(self.as_of)
        settings = replace(base, **overrides)  # type: ignore[arg-type]
        # Absolute paths: dbt runs as a subprocess in its own project directory.
        return replace(
            settings,
            landing_dir=settings.landing_dir.resolve(),
            warehouse=settings.warehouse.resolve(),
            publish_dir=settings.publish_dir.resolve(),
            mail_dir=settings.mail_dir.resolve(),
        )

    def rules(self) -> Rules:
        return load_rules(self.settings().rules_path)

    def aliases(self) -> Aliases:
        import os

        extra = os.environ.get("CRM_ALIASES", "").strip()
        return load_aliases(Path(extra) if extra else None)

    def as_of_for(self, context: dg.AssetExecutionContext | dg.OpExecutionContext) -> date:
        """A run's as_of: the run tag (schedule, backfill) wins, then CRM_AS_OF, then today."""
        tag = context.run.tags.get(AS_OF_TAG) if context.run else None
        if tag:
            return parse_as_of(tag)
        return self.settings().resolved_as_of()
