"""Great Expectations suites, in code, for the source rules of contract §1 — one pair per entity.

What they guard: the loader promises that `raw.<entity>` holds only valid rows; these suites
verify that promise independently before dbt builds on it (consumer: the blocking `source_suite`
check of `quality/checks.py`). Two suites per entity because they look at two different frames:

- `<entity>_rows`: the **current version** (latest `_load_seq`) of each id loaded in **this run**
  (`_run_id`), a reservoir sample of at most `sample_rows` rows, so memory stays bounded on a
  30M-row load: required columns present and non-null, allowed values, ranges, timestamps
  between rules.quality.earliest_timestamp and the load date + future_tolerance_days (local date,
  as the validator judges them), business currency, ids unique.
- `<entity>_integrity`: properties of the whole table that a sample cannot see, computed by DuckDB
  as small aggregates (one row of violation counts, a few example keys in each expectation's
  `meta`): ids present and unique after latest-wins, references (orders → customers, payments →
  orders, interactions.resolved_customer_id → customers). References are checked on every stored
  version: a parent id never leaves `raw`, so a current version with a known parent implies the
  same of every version, and the check needs no window over the whole table.

Why pandas and not GX over DuckDB: GX through SQLAlchemy on DuckDB reports every expectation as
failed (open upstream issue). GX costs seconds to import, so it is imported on first use and one
ephemeral context serves the whole process.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any

import duckdb
import pandas as pd

from crm.rules import Rules
from crm.schemas import ENTITY_BY_NAME, Column, Entity
from crm.settings import today_in
from quality.verified import Scope, definition_hash, record_verified, scope_for

if TYPE_CHECKING:
    from great_expectations import ExpectationSuite
    from great_expectations.core import ExpectationSuiteValidationResult

# Rows of one run validated row by row; the rest of a bigger load is covered by the integrity
# aggregates. Not a business rule, so not in the rules file (see docs/quality.md).
DEFAULT_SAMPLE_ROWS = 200_000
SAMPLE_SEED = 20_260_101  # a fixed seed: the same load always yields the same sample
EXAMPLES_PER_PROPERTY = 5
LOCAL_DATE_SUFFIX = "_local_date"

# Identity resolution outcomes written by the loader (crm/ingest/loader.py).
MATCH_METHODS = ("customer_id", "email", "phone")
# The column that references the parent, where it is not the parent's id column itself.
REFERENCE_COLUMN = {"interactions": "resolved_customer_id"}
CURRENCY_COLUMN = "currency"


# --- the GX context, once per process ---------------------------------------------------------


@cache
def _batch_definition() -> Any:
    """One ephemeral context, one pandas data source and one whole-frame batch definition."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_pandas("crm_quality")
    asset = source.add_dataframe_asset(name="frame")
    return asset.add_batch_definition_whole_dataframe("whole_frame")


def _expectations() -> Any:
    import great_expectations as gx

    return gx.expectations


def _new_suite(name: str) -> ExpectationSuite:
    """A suite needs the process's context to exist first (GX resolves it on use)."""
    _batch_definition()
    import great_expectations as gx

    return gx.ExpectationSuite(name=name)


def validate(frame: pd.DataFrame, suite: ExpectationSuite) -> ExpectationSuiteValidationResult:
    """Runs a suite on a DataFrame; unexpected values are summarised (SUMMARY result format)."""
    batch = _batch_definition().get_batch(batch_parameters={"dataframe": frame})
    return batch.validate(suite, result_format="SUMMARY")


# --- row suite: this run's current versions ---------------------------------------------------


def local_date_column(column: str) -> str:
    return f"{column}{LOCAL_DATE_SUFFIX}"


def _as_datetime(day: date) -> datetime:
    """DuckDB DATE columns arrive in pandas as datetime64; bounds must be comparable."""
    return datetime.combine(day, time.min)


def _column_expectations(column: Column, rules: Rules, load_date: date) -> list[Any]:
    gxe = _expectations()
    found: list[Any] = []
    if column.required:
        found.append(gxe.ExpectColumnToExist(column=column.name))
        found.append(gxe.ExpectColumnValuesToNotBeNull(column=column.name))
    if column.allowed is not None:
        found.append(
            gxe.ExpectColumnValuesToBeInSet(column=column.name, value_set=list(column.allowed))
        )
    if column.min_value is not None or column.max_value is not None:
        found.append(
            gxe.ExpectColumnValuesToBeBetween(
                column=column.name, min_value=column.min_value, max_value=column.max_value
            )
        )
    if column.type == "timestamp":
        latest = load_date + timedelta(days=rules.quality.future_tolerance_days)
        found.append(
            gxe.ExpectColumnValuesToBeBetween(
                column=local_date_column(column.name),
                min_value=_as_datetime(rules.quality.earliest_timestamp),
                max_value=_as_datetime(latest),
            )
        )
    if column.name == CURRENCY_COLUMN:
        business = rules.quality.currency.strip().upper()
        found.append(gxe.ExpectColumnValuesToBeInSet(column=column.name, value_set=[business]))
    return found


def row_suite(entity: Entity, rules: Rules, load_date: date) -> ExpectationSuite:
    """Contract §1 row rules on one entity's rows; `load_date` is the local date of the load."""
    gxe = _expectations()
    suite = _new_suite(f"{entity.name}_rows")
    for column in entity.columns:
        for expectation in _column_expectations(column, rules, load_date):
            suite.add_expectation(expectation)
    suite.add_expectation(gxe.ExpectColumnValuesToBeUnique(column=entity.id_column))
    if entity.name in REFERENCE_COLUMN:
        resolved = REFERENCE_COLUMN[entity.name]
        suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column=resolved))
        suite.add_expectation(
            gxe.ExpectColumnValuesToBeInSet(column="match_method", value_set=list(MATCH_METHODS))
        )
    return suite


def _quoted(name: str) -> str:
    return f'"{name}"'


def run_sample(
    con: duckdb.DuckDBPyConnection,
    entity: Entity,
    run_id: str,
    timezone: str,
    sample_rows: int = DEFAULT_SAMPLE_ROWS,
) -> pd.DataFrame:
    """Current versions of the ids this run loaded, at most `sample_rows` of them.

    Timestamp columns also come as `<column>_local_date` (local date in `timezone`), the day the
    validator judged."""
    columns = [c.name for c in entity.columns]
    if entity.name in REFERENCE_COLUMN:
        columns += [REFERENCE_COLUMN[entity.name], "match_method"]
    select = [f"r.{_quoted(c)}" for c in columns]
    select += [
        f"CAST(timezone($tz, r.{_quoted(c.name)} AT TIME ZONE 'UTC') AS DATE) "
        f"AS {_quoted(local_date_column(c.name))}"
        for c in entity.columns
        if c.type == "timestamp"
    ]
    id_col = _quoted(entity.id_column)
    table = f"raw.{entity.name}"
    run_count, total = con.execute(
        f"SELECT count(*) FILTER (WHERE _run_id = $run_id), count(*) FROM {table}",
        {"run_id": run_id},
    ).fetchone()
    if run_count * 2 > total:
        # Most rows are this run's (a first load): one window over the table. The join below
        # would hash every id twice (30M interactions: 86 s, spilling).
        current = f"""SELECT id, seq FROM (
                SELECT {id_col} AS id, _load_seq AS seq, _run_id,
                       max(_load_seq) OVER (PARTITION BY {id_col}) AS newest_seq
                FROM {table}) WHERE _run_id = $run_id AND seq = newest_seq"""
    else:
        # "No later version" as an equi-join on (id, newest _load_seq) of this run's ids: the
        # correlated NOT EXISTS it replaced became an inequality join over the whole table.
        current = f"""WITH run_keys AS (
                SELECT {id_col} AS id, _load_seq AS seq FROM {table} WHERE _run_id = $run_id),
            newest AS (
                SELECT {id_col} AS id, max(_load_seq) AS seq FROM {table}
                WHERE {id_col} IN (SELECT id FROM run_keys) GROUP BY 1)
            SELECT k.id, k.seq FROM run_keys k JOIN newest USING (id, seq)"""
    # The sample is drawn on (id, _load_seq) alone, in its own statement; only the drawn rows
    # are then read in full and converted to local dates (as one statement DuckDB converted and
    # joined all 30M rows of a first load: 90 s).
    drawn = con.execute(
        f"""SELECT * FROM ({current})
            USING SAMPLE reservoir({int(sample_rows)} ROWS) REPEATABLE ({SAMPLE_SEED})""",
        {"run_id": run_id},
    ).to_arrow_table()
    con.register("_drawn", drawn)
    try:
        sql = f"""SELECT {", ".join(select)} FROM {table} r
            SEMI JOIN _drawn ON _drawn.id = r.{id_col} AND _drawn.seq = r._load_seq
            WHERE r._run_id = $run_id"""
        params = {"run_id": run_id} | ({"tz": timezone} if "$tz" in sql else {})
        return con.execute(sql, params).df()
    finally:
        con.unregister("_drawn")


def load_date_of_run(
    con: duckdb.DuckDBPyConnection, entity: Entity, run_id: str, timezone: str
) -> date:
    """Local date of this run's load (the machine clock the validator used), today if none."""
    value = con.execute(
        f"""SELECT CAST(timezone(?, max(_loaded_at) AT TIME ZONE 'UTC') AS DATE)
            FROM raw.{entity.name} WHERE _run_id = ?""",
        [timezone, run_id],
    ).fetchone()[0]
    return value if value is not None else today_in(timezone)


# --- integrity suite: whole-table properties as small aggregates -------------------------------


@dataclass(frozen=True)
class IntegrityProperty:
    """A whole-table property; `violations_sql` selects one `key` per offending id."""

    name: str
    description: str
    violations_sql: str


def integrity_properties(entity: Entity, scope: Scope | None = None) -> list[IntegrityProperty]:
    """The properties of `raw.<entity>`, over the rows `scope` names (default: all of them).

    With a scope of added rows each property reads only what can break it (quality/verified.py):
    the added rows themselves, and for the latest-version property every row of their ids."""
    table, id_col = f"raw.{entity.name}", _quoted(entity.id_column)
    rows = scope.added_rows(table) if scope else table
    ids_among = (
        ""
        if scope is None or scope.whole_table
        else f"AND {id_col} IN (SELECT {id_col} FROM {rows})"
    )
    found = [
        IntegrityProperty(
            f"{entity.id_column}_missing",
            f"rows of {table} without {entity.id_column}",
            f"SELECT CAST(_load_seq AS VARCHAR) AS key FROM {rows} WHERE {id_col} IS NULL",
        ),
        IntegrityProperty(
            f"{entity.id_column}_not_unique_after_latest_wins",
            f"ids whose latest version is ambiguous (tied or missing _load_seq) in {table}",
            # One aggregation: the two highest _load_seq of each id (NULLs ignored) tie, or
            # a version has no _load_seq. (A join back to each id's maximum cost twice as much:
            # 27 s over 30M interactions.)
            f"""SELECT key FROM (
                    SELECT {id_col} AS key, max(_load_seq, 2) AS top,
                           count(*) - count(_load_seq) AS unordered
                    FROM {table} WHERE {id_col} IS NOT NULL {ids_among} GROUP BY 1)
                WHERE unordered > 0 OR (len(top) = 2 AND top[1] = top[2])""",
        ),
    ]
    if entity.parent:
        parent_name, parent_column = entity.parent
        parent = ENTITY_BY_NAME[parent_name]
        column = REFERENCE_COLUMN.get(entity.name, parent_column)
        found.append(
            IntegrityProperty(
                f"{column}_not_in_{parent_name}",
                f"{table} rows whose {column} is not a known {parent_name} id",
                f"""SELECT c.{id_col} || ' -> ' || coalesce(c.{_quoted(column)}, 'null') AS key
                    FROM {rows} c WHERE NOT EXISTS (
                        SELECT 1 FROM raw.{parent_name} p
                        WHERE p.{_quoted(parent.id_column)} = c.{_quoted(column)})""",
            )
        )
    return found


def integrity_definitions(entity: Entity) -> str:
    """Hash of the whole-table properties: when they change, a verified watermark is void."""
    return definition_hash([p.violations_sql for p in integrity_properties(entity)])


def integrity_facts(
    con: duckdb.DuckDBPyConnection, properties: list[IntegrityProperty]
) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """One row of violation counts (a column per property) and a few example keys each."""
    counts: dict[str, list[int]] = {}
    examples: dict[str, list[str]] = {}
    for prop in properties:
        # one scan per property: the count and the smallest few keys together
        count, smallest = con.execute(
            f"SELECT count(*), min(key, {EXAMPLES_PER_PROPERTY}) FROM ({prop.violations_sql})"
        ).fetchone()
        counts[prop.name] = [count]
        examples[prop.name] = [str(k) for k in (smallest or [])]
    return pd.DataFrame(counts, dtype="int64"), examples


def integrity_suite(
    entity: Entity,
    properties: list[IntegrityProperty],
    examples: Mapping[str, list[str]] | None = None,
) -> ExpectationSuite:
    """Each property's violation count must be 0; example keys travel in the expectation meta."""
    gxe = _expectations()
    suite = _new_suite(f"{entity.name}_integrity")
    for prop in properties:
        suite.add_expectation(
            gxe.ExpectColumnValuesToBeBetween(
                column=prop.name,
                min_value=0,
                max_value=0,
                meta={
                    "description": prop.description,
                    "examples": list((examples or {}).get(prop.name, [])),
                },
            )
        )
    return suite


# --- one entity, both suites -------------------------------------------------------------------


@dataclass(frozen=True)
class EntityValidation:
    entity: str
    rows_checked: int
    load_date: date
    results: list[ExpectationSuiteValidationResult]
    integrity_scope: str  # which rows the integrity suite read, and why

    @property
    def success(self) -> bool:
        return all(r.success for r in self.results)


def validate_entity(
    con: duckdb.DuckDBPyConnection,
    entity_name: str,
    rules: Rules,
    run_id: str,
    timezone: str,
    sample_rows: int = DEFAULT_SAMPLE_ROWS,
    *,
    whole_table: bool = False,
) -> EntityValidation:
    """Both suites of one entity against the warehouse, for the run `run_id`.

    The integrity suite reads the rows added since the table last passed it, or the whole table
    (`whole_table`, or see quality/verified.py); when it passes, the table is recorded as
    verified up to its newest row."""
    entity = ENTITY_BY_NAME[entity_name]
    load_date = load_date_of_run(con, entity, run_id, timezone)
    sample = run_sample(con, entity, run_id, timezone, sample_rows)
    definitions = integrity_definitions(entity)
    scope = scope_for(con, entity, definitions, whole=whole_table)
    properties = integrity_properties(entity, scope)
    facts, examples = integrity_facts(con, properties)
    integrity = validate(facts, integrity_suite(entity, properties, examples))
    if integrity.success:
        record_verified(con, scope, definitions, run_id)
    results = [validate(sample, row_suite(entity, rules, load_date)), integrity]
    return EntityValidation(entity_name, len(sample), load_date, results, scope.reason)
