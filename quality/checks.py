"""Dagster asset checks: raw sources (suites and load gates) and classification outputs.

Builders take the asset keys they check, so `quality/` never imports `assets/` or `pipelines/`;
the composition root passes the keys in. Checks reach settings and rules through the `crm`
resource by duck typing (`.settings()`, `.rules()`, `.as_of_for(context)`).

Blocking: a blocking check that fails with severity ERROR fails its step, and Dagster skips every
downstream asset of the checked asset in the same run (dbt does not build on a bad load; churn
and alerts do not run on broken classes). Freshness only warns: the alert gate reads it.

Every outcome is also written to `quality.check_results` (see `quality/results.py`).
"""

# No `from __future__ import annotations` here: Dagster validates the `context` annotation of
# a check function against the real class, and a postponed (string) annotation fails that test.

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import dagster as dg
import duckdb

from crm.rules import Rules
from crm.run_state import is_forced
from crm.schemas import ENTITY_BY_NAME
from crm.warehouse import connect, sql_literal
from quality import gates
from quality.gx_adapter import suite_outcome, to_asset_check_result
from quality.results import ERROR, WARN, CheckOutcome, record_check
from quality.suites import DEFAULT_SAMPLE_ROWS, validate_entity

EXAMPLES_SHOWN = 5


@dataclass(frozen=True)
class CheckKind:
    name: str
    description: str
    blocking: bool = True

    @property
    def severity(self) -> str:
        return ERROR if self.blocking else WARN


SOURCE_SUITE = CheckKind(
    "source_suite", "GX suites: contract §1 row rules on this run's rows; ids and references."
)
REJECTED_SHARE = CheckKind(
    "rejected_share", "This run's rejected share stays within rules.quality.max_rejected_share."
)
VOLUME_DROP = CheckKind(
    "volume_drop", "File rows do not drop by more than rules.quality.max_volume_drop."
)
AUDIT_RECONCILES = CheckKind(
    "audit_reconciles", "rows_read = loaded + rejected + duplicate for every source of the run."
)
FRESHNESS = CheckKind(
    "freshness",
    "Newest record within rules.quality.stale_after_days of as_of (warning; alerts suppressed).",
    blocking=False,
)
ONE_ROW_PER_CUSTOMER = CheckKind(
    "one_row_per_customer", "Exactly one row per customer of the profile, and no other."
)
ALLOWED_VALUES = CheckKind("allowed_values", "Every class value is one the rules define.")
PERIODS_CONSISTENT = CheckKind(
    "periods_consistent", "No overlapping or empty periods; at most one open period per customer."
)


def _spec(kind: CheckKind, key: dg.AssetKey, deps: list[dg.AssetKey] | None = None):
    return dg.AssetCheckSpec(
        kind.name,
        asset=key,
        description=kind.description,
        blocking=kind.blocking,
        additional_deps=[d for d in (deps or []) if d != key],
    )


def _emit(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    key: dg.AssetKey,
    kind: CheckKind,
    outcome: CheckOutcome,
) -> dg.AssetCheckResult:
    """Record the outcome for the alert gate, then hand it to Dagster."""
    record_check(
        con,
        run_id=run_id,
        check_name=kind.name,
        asset=key.to_user_string(),
        passed=outcome.passed,
        blocking=kind.blocking,
        severity=kind.severity,
        message=outcome.message,
    )
    return to_asset_check_result(
        outcome, asset_key=key, check_name=kind.name, severity=kind.severity
    )


# --- raw sources --------------------------------------------------------------------------------


def _raw_outcomes(
    con: duckdb.DuckDBPyConnection,
    entity: str,
    context: Any,
    sample_rows: int,
) -> Iterator[tuple[CheckKind, CheckOutcome]]:
    crm = context.resources.crm
    settings, rules = crm.settings(), crm.rules()
    run_id = context.run.run_id
    validation = validate_entity(
        con,
        entity,
        rules,
        run_id,
        settings.timezone,
        sample_rows,
        whole_table=is_forced(context.run.tags),
    )
    suite = suite_outcome(validation.results, f"raw.{entity}")
    suite.metadata["rows_checked"] = validation.rows_checked
    suite.metadata["integrity_scope"] = validation.integrity_scope
    yield SOURCE_SUITE, suite
    yield REJECTED_SHARE, gates.rejected_share_gate(con, run_id, entity, rules)
    yield VOLUME_DROP, gates.volume_drop_gate(con, run_id, entity, rules)
    yield AUDIT_RECONCILES, gates.audit_reconciliation_gate(con, run_id, entity)
    if ENTITY_BY_NAME[entity].freshness_column:
        as_of = crm.as_of_for(context)
        yield FRESHNESS, gates.freshness_gate(con, entity, as_of, settings.timezone, rules)


def _raw_entity_check(
    entity: str, key: dg.AssetKey, raw_keys: Mapping[str, dg.AssetKey], sample_rows: int
) -> dg.AssetChecksDefinition:
    parent = ENTITY_BY_NAME[entity].parent
    deps = [raw_keys[parent[0]]] if parent and parent[0] in raw_keys else []
    kinds = [SOURCE_SUITE, REJECTED_SHARE, VOLUME_DROP, AUDIT_RECONCILES]
    if ENTITY_BY_NAME[entity].freshness_column:
        kinds.append(FRESHNESS)
    specs = [_spec(k, key, deps if k is SOURCE_SUITE else None) for k in kinds]

    @dg.multi_asset_check(
        name=f"raw_{entity}_quality",
        specs=specs,
        required_resource_keys={"crm"},
        description=f"Suites and load gates of raw.{entity} for this run.",
    )
    def _check(context: dg.AssetCheckExecutionContext) -> Iterator[dg.AssetCheckResult]:
        run_id = context.run.run_id
        with connect(context.resources.crm.settings().warehouse) as con:
            for kind, outcome in _raw_outcomes(con, entity, context, sample_rows):
                if not outcome.passed:
                    log = context.log.error if kind.blocking else context.log.warning
                    log(f"{key.to_user_string()} {kind.name}: {outcome.message}")
                yield _emit(con, run_id, key, kind, outcome)

    return _check


def raw_checks(
    raw_keys: dict[str, dg.AssetKey], sample_rows: int = DEFAULT_SAMPLE_ROWS
) -> list[dg.AssetChecksDefinition]:
    """One check op per raw entity: the GX suite and the rejected-share, volume and audit gates
    (blocking), and the freshness warning for entities with a freshness column."""
    return [_raw_entity_check(name, key, raw_keys, sample_rows) for name, key in raw_keys.items()]


# --- classification outputs ---------------------------------------------------------------------


def _table(key: dg.AssetKey) -> str:
    """`marts/customer_profile` is the DuckDB table `marts.customer_profile`."""
    return ".".join(key.path)


def _count_and_examples(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[int, list[str]]:
    """How many rows `sql` finds and the first few (by their first column), in one run of it:
    these queries read whole marts (the stage history grows every day)."""
    rows = con.execute(
        f"SELECT * FROM (SELECT *, count(*) OVER () AS _total FROM ({sql})) "
        f"ORDER BY 1 LIMIT {EXAMPLES_SHOWN}"
    ).fetchall()
    return (int(rows[0][-1]) if rows else 0), [str(r[0]) for r in rows]


def _outcome(subject: str, problems: dict[str, tuple[int, list[str]]], ok: str) -> CheckOutcome:
    """Passed when every problem count is 0; the message names counts and example keys."""
    found = {name: v for name, v in problems.items() if v[0]}
    metadata: dict[str, Any] = {name: count for name, (count, _) in problems.items()}
    metadata["examples"] = {name: examples for name, (_, examples) in found.items()}
    if not found:
        return CheckOutcome(True, f"{subject}: {ok}", metadata)
    text = "; ".join(
        f"{count} {name} (e.g. {', '.join(ex)})" for name, (count, ex) in found.items()
    )
    return CheckOutcome(False, f"{subject}: {text}", metadata)


def one_row_per_customer(con: duckdb.DuckDBPyConnection, table: str, profile: str) -> CheckOutcome:
    """Every profile customer has exactly one row in `table`, and `table` has no one else."""
    counted = f"(SELECT customer_id, count(*) AS n FROM {table} GROUP BY 1)"
    problems = {
        "customers_missing": _count_and_examples(
            con,
            f"SELECT p.customer_id FROM {profile} p WHERE p.customer_id NOT IN "
            f"(SELECT customer_id FROM {table} WHERE customer_id IS NOT NULL)",
        ),
        "customers_repeated": _count_and_examples(
            con, f"SELECT customer_id FROM {counted} WHERE n > 1"
        ),
        "rows_not_in_profile": _count_and_examples(
            con,
            f"SELECT coalesce(t.customer_id, 'null') FROM {table} t WHERE t.customer_id IS NULL "
            f"OR t.customer_id NOT IN (SELECT customer_id FROM {profile} "
            "WHERE customer_id IS NOT NULL)",
        ),
    }
    return _outcome(table, problems, "one row per profile customer")


@dataclass(frozen=True)
class AllowedValues:
    column: str
    values: tuple[str, ...]
    nullable: bool  # buyer-only classes are null for prospects (domain.md §0)


def segment_allowed_values(rules: Rules) -> list[AllowedValues]:
    seg = rules.segments
    return [
        AllowedValues("value_tier", tuple(seg.value_tier.labels), nullable=False),
        AllowedValues(
            "rfm_segment", tuple(sorted({s for row in seg.rfm.grid.values() for s in row})), True
        ),
        AllowedValues("rfm_class", tuple(sorted(set(seg.rfm.classes.values()))), True),
        AllowedValues(
            "credit_grade", (*(g.grade for g in seg.credit.grades), seg.credit.unrated), True
        ),
        AllowedValues("relationship_level", tuple(seg.relationship.labels), True),
        AllowedValues("loyalty", tuple(seg.loyalty.labels), True),
    ]


def stage_allowed_values(rules: Rules) -> list[AllowedValues]:
    stages = tuple(rules.lifecycle.labels)
    return [AllowedValues("stage", stages, False), AllowedValues("previous_stage", stages, True)]


def _columns_of(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    schema, name = table.split(".", 1)
    rows = con.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = ? AND table_name = ?",
        [schema, name],
    ).fetchall()
    return {r[0] for r in rows}


def allowed_values(
    con: duckdb.DuckDBPyConnection, table: str, allowed: list[AllowedValues]
) -> CheckOutcome:
    """Every value of each column is one of its allowed values (null only where nullable)."""
    present = _columns_of(con, table)
    problems: dict[str, tuple[int, list[str]]] = {}
    for spec in allowed:
        if spec.column not in present:
            problems[f"{spec.column}_column_missing"] = (1, [table])
            continue
        column = f'"{spec.column}"'
        null_rule = "FALSE" if spec.nullable else f"{column} IS NULL"
        values = ", ".join(sql_literal(v) for v in spec.values)
        problems[f"{spec.column}_not_allowed"] = _count_and_examples(
            con,
            f"SELECT coalesce(CAST({column} AS VARCHAR), 'null') || ' (' || customer_id || ')' "
            f"FROM {table} WHERE {null_rule} OR ({column} IS NOT NULL AND {column} NOT IN "
            f"({values}))",
        )
    return _outcome(table, problems, "every value allowed")


def history_consistency(
    con: duckdb.DuckDBPyConnection, table: str, stages: tuple[str, ...]
) -> CheckOutcome:
    """Stage periods [valid_from, valid_to) of a customer never overlap, none is empty or
    inverted, at most one is open (valid_to null), and every stage is a known one."""
    numbered = f"(SELECT *, row_number() OVER () AS period_no FROM {table})"
    far_future = "DATE '9999-12-31'"
    values = ", ".join(sql_literal(s) for s in stages)
    problems = {
        "overlapping_periods": _count_and_examples(
            con,
            f"""SELECT DISTINCT a.customer_id FROM {numbered} a JOIN {numbered} b
                ON a.customer_id = b.customer_id AND a.period_no < b.period_no
                WHERE a.valid_from < coalesce(b.valid_to, {far_future})
                  AND b.valid_from < coalesce(a.valid_to, {far_future})""",
        ),
        "empty_or_inverted_periods": _count_and_examples(
            con,
            f"SELECT customer_id FROM {table} WHERE valid_from IS NULL "
            f"OR (valid_to IS NOT NULL AND valid_to <= valid_from)",
        ),
        "customers_with_several_open_periods": _count_and_examples(
            con,
            f"SELECT customer_id FROM {table} GROUP BY 1 "
            f"HAVING count(*) FILTER (WHERE valid_to IS NULL) > 1",
        ),
        "unknown_stages": _count_and_examples(
            con,
            f"SELECT coalesce(stage, 'null') || ' (' || customer_id || ')' FROM {table} "
            f"WHERE stage IS NULL OR stage NOT IN ({values})",
        ),
    }
    return _outcome(table, problems, "periods consistent")


def classification_checks(
    profile_key: dg.AssetKey,
    segments_key: dg.AssetKey,
    lifecycle_key: dg.AssetKey,
    history_key: dg.AssetKey,
) -> list[dg.AssetChecksDefinition]:
    """One blocking check op over segments, lifecycle and stage history (tables named by keys)."""
    plan = [
        (segments_key, ONE_ROW_PER_CUSTOMER),
        (segments_key, ALLOWED_VALUES),
        (lifecycle_key, ONE_ROW_PER_CUSTOMER),
        (lifecycle_key, ALLOWED_VALUES),
        (history_key, PERIODS_CONSISTENT),
    ]
    specs = [
        _spec(kind, key, [profile_key] if kind is ONE_ROW_PER_CUSTOMER else None)
        for key, kind in plan
    ]

    def outcome_for(
        con: duckdb.DuckDBPyConnection, key: dg.AssetKey, kind: CheckKind, rules: Rules
    ) -> CheckOutcome:
        if kind is ONE_ROW_PER_CUSTOMER:
            return one_row_per_customer(con, _table(key), _table(profile_key))
        if kind is PERIODS_CONSISTENT:
            return history_consistency(con, _table(key), tuple(rules.lifecycle.labels))
        wanted = (
            segment_allowed_values(rules) if key == segments_key else stage_allowed_values(rules)
        )
        return allowed_values(con, _table(key), wanted)

    @dg.multi_asset_check(
        name="classification_quality",
        specs=specs,
        required_resource_keys={"crm"},
        description="Segments, lifecycle and stage history are complete and consistent.",
    )
    def _check(context: dg.AssetCheckExecutionContext) -> Iterator[dg.AssetCheckResult]:
        crm = context.resources.crm
        rules, run_id = crm.rules(), context.run.run_id
        with connect(crm.settings().warehouse) as con:
            for key, kind in plan:
                outcome = outcome_for(con, key, kind, rules)
                if not outcome.passed:
                    context.log.error(f"{key.to_user_string()} {kind.name}: {outcome.message}")
                yield _emit(con, run_id, key, kind, outcome)

    return [_check]
