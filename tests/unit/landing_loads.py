"""One ingest run of a landing folder into a warehouse file, as the pipeline's `raw_sources`
does it (shipped rules and aliases, Asia/Shanghai), for tests that follow a warehouse across
runs."""

from __future__ import annotations

from pathlib import Path

from crm.ingest.aliases import load_aliases
from crm.ingest.loader import Loader
from crm.rules import default_rules
from crm.warehouse import connect


def load_landing(landing: Path, warehouse: Path, run_id: str = "r") -> Loader:
    """Runs the loader once and returns it (its `report` says what the run did)."""
    with connect(warehouse) as con:
        loader = Loader(
            con,
            landing_dir=landing,
            source_db_url=None,
            rules=default_rules(),
            aliases=load_aliases(),
            timezone="Asia/Shanghai",
            run_id=run_id,
        )
        loader.run()
    return loader
