"""Load gates: is this run's delivery of an entity fit to build on? (contract §1, rules.quality)

Each gate is a pure decision (`*_outcome`, unit-tested at its threshold edge) fed by a small SQL
query on `quality.load_audit` / `quality.rejected_rows` (`*_gate`). Grain: run × entity.
Consumer: the raw asset checks in `quality/checks.py`, which block dbt when a gate fails.

Thresholds are compared as exact fractions (`Fraction(str(0.05))` is 1/20), so a share exactly at
the limit passes and the smallest share above it fails, whatever float rounding would do.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from fractions import Fraction

import duckdb

from crm.rules import Rules
from quality.freshness import Freshness, source_freshness
from quality.results import CheckOutcome

# Rows the loader set aside because their parent has not arrived yet (retried every run).
ORPHAN_SEVERITY = "warning"
DB_SOURCE_PREFIX = "db:"


def _exact(threshold: float) -> Fraction:
    """The threshold as the decimal the user wrote (0.05 → 1/20), not its binary float."""
    return Fraction(str(threshold))


def _percent(share: Fraction) -> str:
    return f"{float(share) * 100:.2f}%"


# --- rejected share -----------------------------------------------------------------------------


def rejected_share(rows_read: int, rows_invalid: int) -> Fraction:
    """Share of this run's rows that broke a rule; 0 when nothing was read."""
    return Fraction(rows_invalid, rows_read) if rows_read else Fraction(0)


def rejected_share_outcome(
    entity: str, rows_read: int, rows_rejected: int, max_share: float, orphans: int = 0
) -> CheckOutcome:
    """Fails when the share of this run's rows that broke a rule exceeds `max_share` (equal
    passes). Orphans are rejected too but do not count: late-arriving parents are normal
    (contract §1) and the orphans load by themselves on a later run; they are reported."""
    share = rejected_share(rows_read, rows_rejected - orphans)
    passed = share <= _exact(max_share)
    detail = f" ({orphans} of them wait for their parent and do not count)" if orphans else ""
    if not rows_read:
        message = f"{entity}: no rows read in this run"
    else:
        verdict = "within" if passed else "above"
        message = (
            f"{entity}: {rows_rejected} of {rows_read} rows rejected{detail} = "
            f"{_percent(share)}, {verdict} the limit of {_percent(_exact(max_share))}"
        )
    return CheckOutcome(
        passed,
        message,
        {
            "rows_read": rows_read,
            "rows_rejected": rows_rejected,
            "orphans": orphans,
            "rejected_share": float(share),
            "max_rejected_share": max_share,
        },
    )


@dataclass(frozen=True)
class RunTotals:
    rows_read: int
    rows_loaded: int
    rows_rejected: int
    rows_duplicate: int


def run_totals(con: duckdb.DuckDBPyConnection, run_id: str, entity: str) -> RunTotals:
    """Sum of `quality.load_audit` over every source of the entity read in this run."""
    row = con.execute(
        """SELECT coalesce(sum(rows_read), 0), coalesce(sum(rows_loaded), 0),
                  coalesce(sum(rows_rejected), 0), coalesce(sum(rows_duplicate), 0)
           FROM quality.load_audit WHERE run_id = ? AND entity = ?""",
        [run_id, entity],
    ).fetchone()
    return RunTotals(*(int(v) for v in row))


def orphans_of_run(con: duckdb.DuckDBPyConnection, run_id: str, entity: str) -> int:
    return int(
        con.execute(
            "SELECT count(*) FROM quality.rejected_rows "
            "WHERE run_id = ? AND entity = ? AND severity = ?",
            [run_id, entity, ORPHAN_SEVERITY],
        ).fetchone()[0]
    )


def rejected_share_gate(
    con: duckdb.DuckDBPyConnection, run_id: str, entity: str, rules: Rules
) -> CheckOutcome:
    totals = run_totals(con, run_id, entity)
    return rejected_share_outcome(
        entity,
        totals.rows_read,
        totals.rows_rejected,
        rules.quality.max_rejected_share,
        orphans_of_run(con, run_id, entity),
    )


# --- volume drop --------------------------------------------------------------------------------


def volume_drop(previous_rows: int, current_rows: int) -> Fraction:
    """Relative drop from the previous delivery; 0 for a rise or without a previous delivery."""
    if previous_rows <= 0 or current_rows >= previous_rows:
        return Fraction(0)
    return Fraction(previous_rows - current_rows, previous_rows)


def volume_drop_outcome(
    entity: str,
    current_rows: int,
    previous_rows: int | None,
    max_drop: float,
    previous_run_id: str | None = None,
) -> CheckOutcome:
    """Fails when this run's file rows fall by more than `max_drop` against the previous run
    that read files of the entity (a drop exactly at the limit passes).

    A run that read no file of the entity is not a delivery: it passes and is never used as the
    baseline (incremental daily runs often find no new file). Without a previous delivery there
    is nothing to compare: passes."""
    metadata = {
        "rows_read_files": current_rows,
        "previous_rows_read_files": previous_rows if previous_rows is not None else -1,
        "previous_run_id": previous_run_id or "",
        "max_volume_drop": max_drop,
    }
    if current_rows == 0:
        return CheckOutcome(
            True, f"{entity}: no file read in this run; nothing to compare", metadata
        )
    if previous_rows is None:
        return CheckOutcome(True, f"{entity}: first delivery ({current_rows} rows)", metadata)
    drop = volume_drop(previous_rows, current_rows)
    passed = drop <= _exact(max_drop)
    metadata["volume_drop"] = float(drop)
    verdict = "within" if passed else "more than"
    message = (
        f"{entity}: {current_rows} rows read from files vs {previous_rows} in the previous "
        f"delivery (run {previous_run_id}): drop {_percent(drop)}, {verdict} the limit of "
        f"{_percent(_exact(max_drop))}"
    )
    return CheckOutcome(passed, message, metadata)


def previous_load_of_source(
    con: duckdb.DuckDBPyConnection, run_id: str, source: str
) -> tuple[str, int] | None:
    """(run_id, rows read) of the latest earlier load of the same landing file path."""
    row = con.execute(
        """WITH this_run AS (
               SELECT min(loaded_at) AS started FROM quality.load_audit WHERE run_id = ?
           ), loads AS (
               SELECT run_id, sum(rows_read) AS rows_read, max(loaded_at) AS loaded_at
               FROM quality.load_audit
               WHERE source = ? AND run_id <> ?
               GROUP BY run_id HAVING sum(rows_read) > 0
           )
           SELECT l.run_id, l.rows_read FROM loads l, this_run t
           WHERE t.started IS NULL OR l.loaded_at <= t.started
           ORDER BY l.loaded_at DESC, l.run_id DESC LIMIT 1""",
        [run_id, source, run_id],
    ).fetchone()
    return (str(row[0]), int(row[1])) if row else None


def volume_drop_gate(
    con: duckdb.DuckDBPyConnection, run_id: str, entity: str, rules: Rules
) -> CheckOutcome:
    """Per landing file: a file delivered again under the same path (a snapshot export replaced
    by a new version) must not shrink by more than `max_volume_drop` against its previous load —
    the truncated-export case. A file under a new name (a daily increment) has no predecessor and
    passes, so a small daily file after a bulk history load is not a "drop". Database reads are
    excluded: an incremental read (watermark minus a look-back) has no comparable volume."""
    sources = con.execute(
        """SELECT source, sum(rows_read) FROM quality.load_audit
           WHERE run_id = ? AND entity = ? AND NOT starts_with(source, ?)
           GROUP BY source ORDER BY source""",
        [run_id, entity, DB_SOURCE_PREFIX],
    ).fetchall()
    max_drop = rules.quality.max_volume_drop
    compared = 0
    for source, rows in sources:
        previous = previous_load_of_source(con, run_id, source)
        if previous is None or not rows:
            continue
        compared += 1
        outcome = volume_drop_outcome(
            f"{entity} ({source})", int(rows), previous[1], max_drop, previous[0]
        )
        if not outcome.passed:
            return outcome
    total = sum(int(rows) for _, rows in sources)
    message = (
        f"{entity}: {len(sources)} file(s) read, {compared} of them delivered before under the "
        "same name; no drop above the limit"
    )
    return CheckOutcome(
        True,
        message,
        {"rows_read_files": total, "files_compared": compared, "max_volume_drop": max_drop},
    )


# --- audit reconciliation -----------------------------------------------------------------------


@dataclass(frozen=True)
class AuditRow:
    source: str
    rows_read: int | None
    rows_loaded: int | None
    rows_rejected: int | None
    rows_duplicate: int | None

    @property
    def reconciles(self) -> bool:
        parts = (self.rows_read, self.rows_loaded, self.rows_rejected, self.rows_duplicate)
        if any(p is None for p in parts):
            return False
        return self.rows_read == self.rows_loaded + self.rows_rejected + self.rows_duplicate


def audit_outcome(entity: str, rows: list[AuditRow]) -> CheckOutcome:
    """Every source row of the run satisfies rows_read = loaded + rejected + duplicate."""
    broken = [r for r in rows if not r.reconciles]
    metadata = {"sources": len(rows), "unreconciled_sources": len(broken)}
    if not broken:
        return CheckOutcome(True, f"{entity}: {len(rows)} source(s) reconcile", metadata)
    shown = "; ".join(
        f"{r.source}: read {r.rows_read} != loaded {r.rows_loaded} + rejected "
        f"{r.rows_rejected} + duplicate {r.rows_duplicate}"
        for r in broken[:5]
    )
    return CheckOutcome(False, f"{entity}: audit does not reconcile for {shown}", metadata)


def audit_rows_of_run(con: duckdb.DuckDBPyConnection, run_id: str, entity: str) -> list[AuditRow]:
    rows = con.execute(
        """SELECT source, rows_read, rows_loaded, rows_rejected, rows_duplicate
           FROM quality.load_audit WHERE run_id = ? AND entity = ? ORDER BY source""",
        [run_id, entity],
    ).fetchall()
    return [AuditRow(*row) for row in rows]


def audit_reconciliation_gate(
    con: duckdb.DuckDBPyConnection, run_id: str, entity: str
) -> CheckOutcome:
    return audit_outcome(entity, audit_rows_of_run(con, run_id, entity))


# --- freshness (a warning: the alert gate suppresses email, the run goes on) -------------------


def freshness_outcome(entity: str, freshness: Freshness | None, rules: Rules) -> CheckOutcome:
    if freshness is None:
        return CheckOutcome(
            True, f"{entity}: not a watched feed (rules quality.freshness_entities)", {}
        )
    newest = freshness.newest.isoformat() if freshness.newest else ""
    metadata = {"newest": newest, "stale_after_days": rules.quality.stale_after_days}
    if freshness.stale:
        message = (
            f"{freshness.message}: stale (older than {rules.quality.stale_after_days} days "
            "before as_of); alerts are suppressed"
        )
        return CheckOutcome(False, message, metadata)
    return CheckOutcome(True, f"{freshness.message}: fresh", metadata)


def freshness_gate(
    con: duckdb.DuckDBPyConnection, entity: str, as_of: date, timezone: str, rules: Rules
) -> CheckOutcome:
    if entity not in rules.quality.freshness_entities:
        return freshness_outcome(entity, None, rules)
    only_this = rules.model_copy(
        update={"quality": rules.quality.model_copy(update={"freshness_entities": [entity]})}
    )
    (result,) = source_freshness(con, as_of, timezone, only_this)
    return freshness_outcome(entity, result, rules)
