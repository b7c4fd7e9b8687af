"""Loads every source into the warehouse's raw tables (contract.md §1).

Grain: one raw row per loaded version of a source record. Consumers: the dbt staging models
(latest `_load_seq` per id wins) and the quality checks (audit, rejected rows).

Why the work is split this way: parsing and row rules live in `readers`/`validate` (pure, per
chunk); everything that needs the warehouse — "is this row a duplicate of what we already hold?",
"does its parent exist yet?", "which customer does this contact belong to?" — is set-based SQL
here, so a 30M-row source costs a few queries, not a Python loop.

Guarantees:
- idempotent: a file already loaded (same path and content hash) is skipped; a database row
  identical to the version already held counts as a duplicate, not a new version;
- atomic per source: a source's rows, rejects, audit row and "loaded" mark commit together, so a
  crash mid-file leaves nothing behind and the file loads again on the next run;
- nothing valid is lost: orphans wait in `raw.<entity>_orphans` and are retried every run.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from crm.ingest import sqlite_arrow
from crm.ingest.aliases import Aliases
from crm.ingest.errors import SourceError
from crm.ingest.fastlane import FastLane
from crm.ingest.prefetch import prefetched
from crm.ingest.readers import TEXT_BATCH_CHUNKS, RawChunk, TextBatch, read_file, text_batch
from crm.ingest.validate import ValidationContext, validate_chunk
from crm.rules import Rules
from crm.schemas import DUCKDB_TYPES, ENTITIES, ENTITY_BY_NAME, Entity
from crm.warehouse import ensure_schema, raw_table_columns, sql_literal

SUPPORTED_SUFFIXES = (".csv", ".jsonl", ".parquet")
Log = Callable[[str], None]
_logger = logging.getLogger(__name__)


@dataclass
class SourceAudit:
    """One `quality.load_audit` row: rows_read = rows_loaded + rows_rejected + rows_duplicate."""

    entity: str
    source: str
    rows_read: int = 0
    rows_loaded: int = 0
    rows_rejected: int = 0
    rows_duplicate: int = 0


@dataclass
class LoadReport:
    run_id: str
    audits: list[SourceAudit] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    orphans_released: dict[str, int] = field(default_factory=dict)
    skipped_files: list[str] = field(default_factory=list)

    def totals(self, entity: str) -> SourceAudit:
        total = SourceAudit(entity, "*")
        for a in self.audits:
            if a.entity == entity:
                total.rows_read += a.rows_read
                total.rows_loaded += a.rows_loaded
                total.rows_rejected += a.rows_rejected
                total.rows_duplicate += a.rows_duplicate
        return total


def mask_url(url: str) -> str:
    """The database URL as it may appear in messages: never with its password."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparseable URL: show only its scheme
        return url.split(":", 1)[0] + "://…"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def discover_files(landing_dir: Path) -> tuple[dict[str, list[Path]], list[str]]:
    """Files per entity in path order, and warnings for what is ignored."""
    found: dict[str, list[Path]] = {e.name: [] for e in ENTITIES}
    warnings: list[str] = []
    if not landing_dir.exists():
        warnings.append(f"landing folder {landing_dir} does not exist; no files loaded")
        return found, warnings
    for child in sorted(landing_dir.iterdir()):
        if child.name.startswith("."):
            continue
        if not child.is_dir():
            warnings.append(f"{child.name}: not inside an entity sub-folder; ignored")
            continue
        if child.name not in found:
            warnings.append(
                f"{child.name}/: unknown sub-folder (expected one of {', '.join(found)}); ignored"
            )
            continue
        for path in sorted(p for p in child.rglob("*") if p.is_file()):
            rel = path.relative_to(landing_dir).as_posix()
            if path.name.startswith("."):
                continue
            if path.suffix.lower() not in SUPPORTED_SUFFIXES:
                warnings.append(f"{rel}: not a .csv, .jsonl or .parquet file; ignored")
                continue
            found[child.name].append(path)
    return found, warnings


class Loader:
    """Loads all sources for one run. Use `Loader(...).run()`; one instance per run."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        *,
        landing_dir: Path,
        source_db_url: str | None,
        rules: Rules,
        aliases: Aliases,
        timezone: str,
        run_id: str,
        log: Log | None = None,
        now: datetime | None = None,
    ) -> None:
        self.con = con
        self.landing_dir = Path(landing_dir)
        self.source_db_url = source_db_url
        self.rules = rules
        self.aliases = aliases
        self.timezone = timezone
        self.run_id = run_id
        self.log = log or _logger.info
        self.now = now or datetime.now(ZoneInfo(timezone))
        self.ctx = ValidationContext(
            quality=rules.quality,
            timezone=timezone,
            load_date=self.now.date(),
            aliases=aliases,
        )
        self.report = LoadReport(run_id=run_id)
        self._loaded_at = datetime.now(ZoneInfo("UTC")).replace(tzinfo=None)
        self._match_keys_state: tuple | None = None  # raw.customers state the keys were built on

    # ------------------------------------------------------------------ orchestration
    def run(self) -> LoadReport:
        ensure_schema(self.con)
        files, warnings = discover_files(self.landing_dir)
        self._warn(*warnings)
        # Raw rows carry their load order in _load_seq, so inserts need not keep the order of
        # the rows they read: DuckDB then writes in parallel (a third faster on big sources).
        self.con.execute("SET preserve_insertion_order = false")
        try:
            for entity in ENTITIES:  # parents before children: orphans are decided in this run
                if entity.parent:
                    self._release_orphans(entity)
                for path in files[entity.name]:
                    self._load_file(entity, path)
                if entity.db_table and self.source_db_url:
                    self._load_db_table(entity)
        finally:
            self.con.execute("RESET preserve_insertion_order")
            for kind in ("known", "email", "phone"):
                self.con.execute(f"DROP TABLE IF EXISTS _match_{kind}")
            self._match_keys_state = None
        return self.report

    def _warn(self, *messages: str) -> None:
        for message in messages:
            if message in self.report.warnings:  # chunks of one source repeat their warnings
                continue
            self.report.warnings.append(message)
            self.log(f"WARNING {message}")

    # ------------------------------------------------------------------ files
    def _load_file(self, entity: Entity, path: Path) -> None:
        rel = path.relative_to(self.landing_dir).as_posix()
        stat = path.stat()
        size = stat.st_size
        # The content hash decides; it is cached per (path, size, mtime), so a daily run does
        # not re-read gigabytes of files it has already loaded.
        cached = self.con.execute(
            "SELECT sha256 FROM meta.file_stamps WHERE source = ? AND size = ? AND mtime_ns = ?",
            [rel, size, stat.st_mtime_ns],
        ).fetchone()
        sha = cached[0] if cached else _sha256(path)
        stamp = (
            "INSERT OR REPLACE INTO meta.file_stamps VALUES (?, ?, ?, ?)",
            [rel, size, stat.st_mtime_ns, sha],
        )
        seen = self.con.execute(
            "SELECT 1 FROM meta.loaded_files WHERE source = ? AND sha256 = ? LIMIT 1", [rel, sha]
        ).fetchone()
        if seen:
            if not cached:
                self.con.execute(*stamp)
            self.report.skipped_files.append(rel)
            return
        chunks = read_file(
            path,
            entity,
            self.aliases,
            display_name=rel,
            timezone=self.timezone,
            chunk_rows=self.rules.ingest.chunk_rows,
        )
        audit = self._load_chunks(entity, rel, chunks, show_row_numbers=True)
        self.con.execute(
            "INSERT INTO meta.loaded_files VALUES (?, ?, ?, ?, ?, ?, ?)",
            [entity.name, rel, size, sha, audit.rows_read, self.run_id, self._loaded_at],
        )
        self.con.execute(*stamp)
        self.con.execute("COMMIT")
        self._log_audit(audit)

    # ------------------------------------------------------------------ database
    def _load_db_table(self, entity: Entity) -> None:
        from sqlalchemy import create_engine, inspect, text

        table = entity.db_table
        source = f"db:{table}"
        masked = mask_url(self.source_db_url or "")
        try:
            engine = create_engine(self.source_db_url)
            with engine.connect() as probe:
                inspector = inspect(probe)
                if not inspector.has_table(table):
                    raise SourceError(f"{source}: table '{table}' is missing in {masked}")
                columns = {c["name"].lower(): c["name"] for c in inspector.get_columns(table)}
        except SourceError:
            raise
        except Exception as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            reason = _without_password(reason, self.source_db_url)
            raise SourceError(
                f"{source}: cannot read the source database {masked} ({reason})"
            ) from None

        watermark_col = columns.get("updated_at")
        previous = self.con.execute(
            "SELECT watermark FROM meta.db_watermarks WHERE source = ?", [source]
        ).fetchone()
        quoted = engine.dialect.identifier_preparer.quote
        query = f"SELECT * FROM {quoted(table)}"
        params: dict[str, str] = {}
        if watermark_col and previous and previous[0] is not None:
            since = previous[0] - timedelta(days=self.rules.ingest.db_lookback_days)
            query += f" WHERE {quoted(watermark_col)} >= :since"
            params["since"] = since.strftime("%Y-%m-%d %H:%M:%S")
        # the source's change order: watermark then id, or the id alone
        order_columns = [watermark_col or columns.get(entity.id_column)]
        if watermark_col:
            order_columns.append(columns.get(entity.id_column))
        order_columns = [c for c in order_columns if c]
        if order_columns:
            query += " ORDER BY " + ", ".join(quoted(c) for c in order_columns)

        newest: list[str] = []
        sqlite_file = sqlite_arrow.sqlite_path(self.source_db_url or "")

        snapshot: sqlite_arrow.Snapshot | None = None
        rowid: str | None = None

        def text_partitions() -> Iterator[tuple[list[str], list[pa.Array], pa.Array | None]]:
            if snapshot is not None:
                # SQLite: Arrow batches straight from the driver (crm/ingest/sqlite_arrow.py),
                # in storage order when the source order was read apart (see `_store_order`)
                names = list(columns.values())
                for rowids, batch in snapshot.text_batches(
                    table,
                    names,
                    where=f"{quoted(watermark_col)} >= ?" if params else "",
                    params=[params["since"]] if params else [],
                    order_by=[] if rowid else order_columns,
                    batch_rows=self.rules.ingest.chunk_rows * TEXT_BATCH_CHUNKS,
                    rowid=rowid,
                ):
                    yield names, batch, rowids
                return
            with engine.connect() as conn:
                result = conn.execution_options(
                    stream_results=True, yield_per=self.rules.ingest.chunk_rows
                ).execute(text(query), params)
                keys = list(result.keys())
                for partition in result.partitions(self.rules.ingest.chunk_rows):
                    yield keys, _columns_as_text(keys, partition), None

        def chunks() -> Iterator[RawChunk | TextBatch]:
            position = 1
            for keys, texts, rowids in text_partitions():
                rows = len(texts[0]) if texts else 0
                names, texts = list(keys), list(texts)
                if watermark_col:
                    # bookkeeping of the source system, not a contract column
                    at = names.index(watermark_col)
                    names.pop(at)
                    top = pc.max(texts.pop(at)).as_py()
                    if top is not None:
                        newest.append(top)
                yield text_batch(
                    names,
                    texts,
                    entity,
                    self.aliases,
                    display_name=source,
                    first_position=position,
                    row_numbers=None if rowids is None else rowids.to_numpy(),
                )
                position += rows

        self.log(
            f"reading {source} from {masked}" + (f" since {params['since']}" if params else "")
        )
        ordered_rows: int | None = None
        try:
            if sqlite_file is not None and sqlite_arrow.available():
                snapshot = sqlite_arrow.Snapshot(sqlite_file)
                if order_columns:
                    rowid = snapshot.rowid_name(table)
                if rowid:
                    ordered_rows = self._store_order(
                        snapshot.rowids_in_order(
                            table,
                            rowid,
                            where=f"{quoted(watermark_col)} >= ?" if params else "",
                            params=[params["since"]] if params else [],
                            order_by=order_columns,
                            batch_rows=self.rules.ingest.chunk_rows * TEXT_BATCH_CHUNKS,
                        )
                    )
            audit = self._load_chunks(
                entity, source, chunks(), show_row_numbers=False, ordered_rows=ordered_rows
            )
        except SourceError:
            _rollback_if_open(self.con)
            raise
        except Exception as exc:
            _rollback_if_open(self.con)
            reason = _without_password(
                str(exc).splitlines()[0] if str(exc) else "", self.source_db_url
            )
            raise SourceError(
                f"{source}: reading failed ({type(exc).__name__}: {reason})"
            ) from None
        finally:
            if snapshot is not None:
                snapshot.close()
            self.con.execute("DROP TABLE IF EXISTS _source_order")
        if newest:
            mark = _parse_db_timestamp(max(newest))
            if mark is not None:
                self.con.execute(
                    "INSERT OR REPLACE INTO meta.db_watermarks VALUES (?, ?, ?, ?)",
                    [source, mark, self.run_id, self._loaded_at],
                )
        self.con.execute("COMMIT")
        self._log_audit(audit)
        engine.dispose()

    def _store_order(self, rowids: Iterable[pa.Array]) -> int:
        """`_source_order` (rowid → 1-based position in the source's change order) from the
        rowids a SQLite source returns in that order; returns how many rows it holds.

        Positions number a source's rows (`_load_seq` = base + position), and the latest of
        two versions of an id read together is the later one in change order, so rows read
        in storage order take their position from here (`_load_chunks`)."""
        con = self.con
        con.execute("DROP TABLE IF EXISTS _source_order")
        con.execute("CREATE TEMP TABLE _source_order (_rowid BIGINT, _pos BIGINT)")
        position = 1
        for ids in rowids:
            con.register(
                "_order_batch",
                pa.table(
                    {
                        "_rowid": ids,
                        "_pos": pa.array(np.arange(position, position + len(ids), dtype=np.int64)),
                    }
                ),
            )
            con.execute("INSERT INTO _source_order SELECT _rowid, _pos FROM _order_batch")
            con.unregister("_order_batch")
            position += len(ids)
        return position - 1

    # ------------------------------------------------------------------ the common path
    def _load_chunks(
        self,
        entity: Entity,
        source: str,
        chunks: Iterable[RawChunk | TextBatch],
        *,
        show_row_numbers: bool,
        ordered_rows: int | None = None,
    ) -> SourceAudit:
        """Validate, stage, then classify each row as loaded / rejected / orphan / duplicate.

        `ordered_rows`: the chunks number their rows by SQLite rowid, and `_source_order`
        (that many rows) gives each rowid its position in the source's change order.
        Leaves an open transaction on success (the caller adds its bookkeeping and commits)."""
        con = self.con
        audit = SourceAudit(entity.name, source)
        cols = raw_table_columns(entity)
        entity_cols = [c.name for c in entity.columns]
        typed = ", ".join(f'"{c.name}" {DUCKDB_TYPES[c.type]}' for c in entity.columns)
        con.execute("DROP TABLE IF EXISTS _incoming")
        con.execute(
            f"CREATE TEMP TABLE _incoming ({typed}, _ord BIGINT, _row_number BIGINT, _raw VARCHAR)"
        )
        con.execute("DROP TABLE IF EXISTS _rejects")
        con.execute(
            "CREATE TEMP TABLE _rejects (row_number BIGINT, raw_record VARCHAR, reason VARCHAR, "
            "rule VARCHAR, record_id VARCHAR, _ord BIGINT)"
        )
        lane = FastLane(con, entity, self.ctx, raw_record_when=self._may_be_orphan_sql(entity))
        for chunk in prefetched(chunks):  # the next chunk is read while this one loads
            self._warn(*chunk.warnings)
            fast_rows = 0
            if isinstance(chunk, TextBatch):
                fast_rows, chunk = lane.stage(chunk, expose_row_numbers=show_row_numbers)
            valid, rejected = validate_chunk(chunk.frame, entity, self.ctx)
            parse_rejected = chunk.rejected
            n_rows = fast_rows + len(chunk.frame) + len(parse_rejected)
            audit.rows_read += n_rows
            # row_number orders the rows of a source: the data row of a file, the position of a
            # database row (which is not shown: a database row has no row number for users).
            valid_ord = valid["row_number"].astype("int64")
            if len(valid):
                staged = valid[entity_cols].copy()
                staged["_ord"] = valid_ord.to_numpy()
                staged["_row_number"] = valid["row_number"] if show_row_numbers else None
                staged["_raw"] = valid["raw_record"]
                select = ", ".join(_cast_expr(c.name, c.type) for c in entity.columns)
                con.register("_chunk", staged)
                con.execute(
                    f"INSERT INTO _incoming SELECT {select}, _ord, "
                    f"CAST(_row_number AS BIGINT), CAST(_raw AS VARCHAR) FROM _chunk"
                )
                con.unregister("_chunk")
            for frame in (rejected, parse_rejected):
                if len(frame):
                    rej = pd.DataFrame(
                        {
                            "row_number": frame["row_number"] if show_row_numbers else None,
                            "raw_record": frame["raw_record"].astype(str),
                            "reason": frame["reason"].astype(str),
                            "rule": frame["rule"].astype(str) if "rule" in frame else None,
                        }
                    )
                    con.register("_rej", rej)
                    con.execute(
                        "INSERT INTO _rejects SELECT CAST(row_number AS BIGINT), raw_record, "
                        "reason, rule, NULL, NULL FROM _rej"
                    )
                    con.unregister("_rej")
            if n_rows:
                self.log(f"{source}: {audit.rows_read} rows read")

        if entity.name == "interactions":
            self._ensure_match_keys()  # before BEGIN: the key tables must outlive a rollback
        # The staged rows are built before the source's transaction opens, so that `_incoming`
        # can be dropped (and its memory freed) before the steps that sort and write them: a
        # table dropped inside an open transaction is kept until it ends. Only this loader
        # writes the warehouse, so `base` cannot change before the rows are inserted.
        base = con.execute(
            f"SELECT coalesce(max(s), 0) FROM (SELECT max(_load_seq) s FROM raw.{entity.name}"
            + (
                f" UNION ALL SELECT max(_load_seq) FROM raw.{entity.name}_orphans"
                if entity.parent
                else ""
            )
            + ")"
        ).fetchone()[0]
        hash_expr = (
            "md5(concat_ws(chr(31), "
            + ", ".join(f'coalesce(CAST("{c}" AS VARCHAR), chr(0))' for c in entity_cols)
            + "))"
        )
        id_col = entity.id_column
        con.execute("DROP TABLE IF EXISTS _staged")
        incoming = "_incoming"
        if ordered_rows is not None:
            if audit.rows_read != ordered_rows:
                raise SourceError(
                    f"{source}: {audit.rows_read} rows read but {ordered_rows} ordered; the "
                    "table changed during the read in a way its snapshot should prevent: run again"
                )
            incoming = (
                "(SELECT i.* REPLACE (o._pos AS _ord) FROM _incoming i "
                "JOIN _source_order o ON o._rowid = i._ord)"
            )
        staged = f"SELECT *, {hash_expr} AS _row_hash, {base} + _ord AS _seq FROM {incoming}"
        if entity.name == "interactions":  # resolved in the same pass (one write of the rows)
            staged = self._resolved_interactions_sql(f"({staged})")
        con.execute(f"CREATE TEMP TABLE _staged AS {staged}")
        if ordered_rows is not None:
            placed, incoming_rows = con.execute(
                "SELECT (SELECT count(*) FROM _staged), (SELECT count(*) FROM _incoming)"
            ).fetchone()
            if placed != incoming_rows:
                raise SourceError(
                    f"{source}: {incoming_rows - placed} rows read have no place in the "
                    "source order; run again"
                )
        # Two copies of 10M rows do not fit in the memory limit together: dropped here, the
        # steps below ran about twice as fast on a first load at 1M customers (duplicate check
        # of orders + payments 13.7 → 3.8 s, their raw inserts 39 → 22 s; session 10 in
        # docs/performance-history.md).
        con.execute("DROP TABLE _incoming")
        con.execute("BEGIN TRANSACTION")
        # Latest version already held (loaded or waiting as orphan), then lag over the union:
        # a row identical to the version just before it is a duplicate.
        held = [f"raw.{entity.name}"] + ([f"raw.{entity.name}_orphans"] if entity.parent else [])
        # The staged ids' range as constants, so the scan of the held rows skips row groups by
        # their min/max (ids mostly arrive in ranges). DuckDB derived that filter itself only
        # while `_staged` was uncommitted: without it, ~1 s more per 1.5M interactions at 12M held.
        low, high = con.execute(f'SELECT min("{id_col}"), max("{id_col}") FROM _staged').fetchone()
        in_range = (
            "true"
            if low is None
            else f'"{id_col}" BETWEEN {sql_literal(low)} AND {sql_literal(high)}'
        )
        prior = " UNION ALL ".join(
            f"""SELECT "{id_col}" AS _id, _row_hash, _load_seq AS _seq FROM {t}
                WHERE {in_range} AND "{id_col}" IN (SELECT "{id_col}" FROM _staged)
                QUALIFY row_number() OVER (PARTITION BY "{id_col}" ORDER BY _load_seq DESC) = 1"""
            for t in held
        )
        con.execute("DROP TABLE IF EXISTS _dupes")
        con.execute(
            f"""CREATE TEMP TABLE _dupes AS
            SELECT _seq FROM (
                SELECT _seq, _row_hash, lag(_row_hash) OVER (PARTITION BY _id ORDER BY _seq) AS prev,
                       is_new
                FROM (SELECT _id, _row_hash, _seq, false AS is_new FROM ({prior})
                      UNION ALL SELECT "{id_col}", _row_hash, _seq, true FROM _staged)
            ) WHERE is_new AND prev = _row_hash"""
        )
        audit.rows_duplicate = con.execute("SELECT count(*) FROM _dupes").fetchone()[0]
        con.execute("DELETE FROM _staged WHERE _seq IN (SELECT _seq FROM _dupes)")

        extra_select = ""
        if entity.name == "interactions":
            extra_select = "resolved_customer_id, match_method, "
        meta_select = (
            f"_seq, {sql_literal(source)}, _row_number, _row_hash, {sql_literal(self.run_id)}, "
            f"TIMESTAMP '{self._loaded_at.isoformat(sep=' ')}'"
        )
        all_cols = ", ".join(f'"{c}"' for c, _ in cols)
        entity_select = ", ".join(f'"{c}"' for c in entity_cols)
        select = f"{entity_select}, {extra_select}{meta_select}"
        if entity.parent:
            orphan_cond, orphan_reason_sql = self._orphan_condition(entity, "_staged")
            if entity.name != "interactions":
                # Decided once: each use of the parent lookup hashes every parent id (10M
                # orders behind payments: ~1.5 s a statement, and four statements use it).
                orphan_cond = self._orphans_decided_once(entity)
            con.execute(
                f"INSERT INTO raw.{entity.name}_orphans ({all_cols}) "
                f"SELECT {select} FROM _staged WHERE {orphan_cond}"
            )
            con.execute(
                f"""INSERT INTO quality.rejected_rows
                SELECT '{entity.name}', {sql_literal(source)}, _row_number, _raw,
                       {orphan_reason_sql}, 'warning', {sql_literal(self.run_id)},
                       TIMESTAMP '{self._loaded_at.isoformat(sep=" ")}', "{id_col}",
                       {self._orphan_rule_sql(entity)}, _seq
                FROM _staged WHERE {orphan_cond}"""
            )
            orphans = con.execute(f"SELECT count(*) FROM _staged WHERE {orphan_cond}").fetchone()[0]
            con.execute(f"DELETE FROM _staged WHERE {orphan_cond}")
        else:
            orphans = 0
        con.execute(f"INSERT INTO raw.{entity.name} ({all_cols}) SELECT {select} FROM _staged")
        audit.rows_loaded = con.execute("SELECT count(*) FROM _staged").fetchone()[0]
        invalid = con.execute("SELECT count(*) FROM _rejects").fetchone()[0]
        con.execute(
            f"""INSERT INTO quality.rejected_rows
            SELECT '{entity.name}', {sql_literal(source)}, row_number, raw_record, reason, 'error',
                   {sql_literal(self.run_id)}, TIMESTAMP '{self._loaded_at.isoformat(sep=" ")}',
                   NULL, rule, NULL
            FROM _rejects"""
        )
        audit.rows_rejected = invalid + orphans
        assert audit.rows_read == audit.rows_loaded + audit.rows_rejected + audit.rows_duplicate, (
            f"audit does not reconcile for {source}: {audit}"
        )
        con.execute(
            "INSERT INTO quality.load_audit VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                self.run_id,
                entity.name,
                source,
                audit.rows_read,
                audit.rows_loaded,
                audit.rows_rejected,
                audit.rows_duplicate,
                self._loaded_at,
            ],
        )
        self.report.audits.append(audit)
        # freed when the caller commits, not held while the next source is read
        for table in ("_staged", "_dupes", "_orphan_seqs"):
            con.execute(f"DROP TABLE IF EXISTS {table}")
        return audit

    def _log_audit(self, audit: SourceAudit) -> None:
        self.log(
            f"{audit.source}: read {audit.rows_read}, loaded {audit.rows_loaded}, "
            f"rejected {audit.rows_rejected}, duplicate {audit.rows_duplicate}"
        )

    # ------------------------------------------------------------------ references
    def _orphan_condition(self, entity: Entity, table: str) -> tuple[str, str]:
        """SQL predicate for rows whose parent is unknown, and the SQL of their reason."""
        if entity.name == "interactions":
            reason = (
                "CASE WHEN customer_id IS NOT NULL THEN 'customer_id: ''' || customer_id || "
                "''' is not a known customer (rule: unknown_customer)' ELSE "
                "'contact_email: ''' || coalesce(contact_email, '') || ''', contact_phone: ''' || "
                "coalesce(contact_phone, '') || ''' match no single customer "
                "(rule: unmatched_contact)' END"
            )
            return "resolved_customer_id IS NULL", reason
        parent_name, column = entity.parent  # type: ignore[misc]
        cond = _parent_missing_sql(entity)
        noun = "customer" if parent_name == "customers" else "order"
        reason = (
            f"'{column}: ''' || \"{column}\" || ''' is not a known {noun} "
            f"(rule: {entity.orphan_reason})'"
        )
        return cond, reason

    def _orphans_decided_once(self, entity: Entity) -> str:
        """Stores the `_seq` of the staged rows whose parent is unknown in `_orphan_seqs`
        and returns the predicate naming them.

        When this load is small beside the parent table (a daily run), the lookup reads only
        the parents this load names (~0.35 s instead of ~1.5 s against 10M orders); a first
        load keeps the plain lookup, which is cheaper when both sides are large."""
        con = self.con
        parent_name = entity.parent[0]  # type: ignore[index]
        staged, parents = con.execute(
            f"SELECT (SELECT count(*) FROM _staged), (SELECT count(*) FROM raw.{parent_name})"
        ).fetchone()
        among = "_staged" if staged * 4 < parents else None
        con.execute("DROP TABLE IF EXISTS _orphan_seqs")
        con.execute(
            "CREATE TEMP TABLE _orphan_seqs AS SELECT _seq FROM _staged "
            f"WHERE {_parent_missing_sql(entity, among=among)}"
        )
        return "_seq IN (SELECT _seq FROM _orphan_seqs)"

    def _may_be_orphan_sql(self, entity: Entity) -> str:
        """Rows that may turn out orphans (their parent not loaded yet): the only fast-lane rows
        whose raw_record can still be needed, for `quality.rejected_rows`.

        Asked per fast-lane batch, so the lookup reads only the parents the batch names
        (`_typed`, see `FastLane`): hashing every parent id instead cost ~0.8 s per 500k-row
        batch of payments against 10M orders (~0.35 s this way)."""
        if entity.parent is None:
            return "false"
        return f'"{entity.parent[1]}" IS NULL OR {_parent_missing_sql(entity, among="_typed")}'

    def _orphan_rule_sql(self, entity: Entity) -> str:
        if entity.name == "interactions":
            return (
                "CASE WHEN customer_id IS NOT NULL THEN 'unknown_customer' "
                "ELSE 'unmatched_contact' END"
            )
        return f"'{entity.orphan_reason}'"

    def _ensure_match_keys(self) -> None:
        """The customer side of identity resolution as three temp tables: known ids, and the
        normalised e-mails and phones that belong to exactly one customer.

        Why cached: every interactions file and the orphan release resolve against the same
        customers, and normalising 1M customers' contacts cost ~2.5 s each time. The tables are
        rebuilt whenever raw.customers changed (it is append-only, so its row count and newest
        `_load_seq` identify its state). Built outside any source transaction: a source that
        rolls back must not take them with it."""
        con = self.con
        state = con.execute("SELECT count(*), max(_load_seq) FROM raw.customers").fetchone()
        if state == self._match_keys_state:
            return
        current = """(SELECT customer_id, email, phone FROM raw.customers
                      QUALIFY row_number() OVER (PARTITION BY customer_id ORDER BY _load_seq DESC) = 1)"""
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _match_known AS "
            "SELECT DISTINCT customer_id FROM raw.customers WHERE customer_id IS NOT NULL"
        )
        for kind, normalise in (("email", _email_sql), ("phone", _phone_sql)):
            con.execute(
                f"""CREATE OR REPLACE TEMP TABLE _match_{kind} AS
                SELECT {normalise(kind)} AS k, min(customer_id) AS customer_id
                FROM {current} WHERE {normalise(kind)} <> ''
                GROUP BY 1 HAVING count(DISTINCT customer_id) = 1"""
            )
        self._match_keys_state = state

    def _resolved_interactions_sql(self, rows: str) -> str:
        """`rows` (interactions, without resolution columns) with resolved_customer_id and
        match_method (contract §1 identity resolution), against the keys of
        `_ensure_match_keys`.

        customer_id when given and known; else the one customer whose normalised email matches;
        else the one whose normalised phone matches. A contact shared by several customers
        matches none. Pure equi-joins on the normalised keys (each key side unique); the CASE
        keeps the order of precedence (customer_id, then e-mail, then phone; contacts only when
        customer_id is empty). The contact keys are therefore computed only for rows without a
        customer_id (NULL joins nothing): normalising every row's phone cost ~0.6 s per 1.5M
        interactions, 95 % of which carry a customer_id."""
        keyed = (
            f"(SELECT *, CASE WHEN customer_id IS NULL THEN {_email_sql('contact_email')} END "
            f"AS _email_key, CASE WHEN customer_id IS NULL THEN {_phone_sql('contact_phone')} "
            f"END AS _phone_key FROM {rows})"
        )
        return f"""SELECT t.* EXCLUDE (_email_key, _phone_key),
                   CASE WHEN k.customer_id IS NOT NULL THEN k.customer_id
                        WHEN t.customer_id IS NULL THEN coalesce(e.customer_id, p.customer_id)
                        END AS resolved_customer_id,
                   CASE WHEN k.customer_id IS NOT NULL THEN 'customer_id'
                        WHEN t.customer_id IS NOT NULL THEN NULL
                        WHEN e.customer_id IS NOT NULL THEN 'email'
                        WHEN p.customer_id IS NOT NULL THEN 'phone' END AS match_method
            FROM {keyed} AS t
            LEFT JOIN _match_known AS k ON t.customer_id = k.customer_id
            LEFT JOIN _match_email AS e ON t._email_key = e.k
            LEFT JOIN _match_phone AS p ON t._phone_key = p.k"""

    def _release_orphans(self, entity: Entity) -> None:
        """Orphans whose parent has arrived load now, keeping their original load order."""
        con = self.con
        if not con.execute(f"SELECT count(*) FROM raw.{entity.name}_orphans").fetchone()[0]:
            return
        waiting = f"SELECT * FROM raw.{entity.name}_orphans"
        if entity.name == "interactions":
            self._ensure_match_keys()  # before BEGIN, as in _load_chunks
            waiting = self._resolved_interactions_sql(
                f"(SELECT * EXCLUDE (resolved_customer_id, match_method) "
                f"FROM raw.{entity.name}_orphans)"
            )
        con.execute("BEGIN TRANSACTION")
        con.execute("DROP TABLE IF EXISTS _orph")
        con.execute(f"CREATE TEMP TABLE _orph AS {waiting}")
        cond, _ = self._orphan_condition(entity, "_orph")
        # decided once (each parent lookup hashes every parent id), then named by _load_seq
        con.execute("DROP TABLE IF EXISTS _released")
        con.execute(
            f"CREATE TEMP TABLE _released AS SELECT _load_seq FROM _orph WHERE NOT ({cond})"
        )
        found = "_load_seq IN (SELECT _load_seq FROM _released)"
        all_cols = ", ".join(f'"{c}"' for c, _ in raw_table_columns(entity))
        released = con.execute("SELECT count(*) FROM _released").fetchone()[0]
        if released:
            con.execute(
                f"INSERT INTO raw.{entity.name} ({all_cols}) SELECT {all_cols} FROM _orph "
                f"WHERE {found}"
            )
            con.execute(
                f"""INSERT INTO meta.released_rows
                SELECT '{entity.name}', _load_seq, {sql_literal(self.run_id)},
                       TIMESTAMP '{self._loaded_at.isoformat(sep=" ")}'
                FROM _orph WHERE {found}"""
            )
            con.execute(
                f"""DELETE FROM quality.rejected_rows WHERE entity = '{entity.name}'
                AND load_seq IN (SELECT _load_seq FROM _released)"""
            )
            con.execute(f"DELETE FROM raw.{entity.name}_orphans WHERE {found}")
        con.execute("COMMIT")
        if released:
            self.report.orphans_released[entity.name] = released
            self.log(f"{entity.name}: {released} waiting rows found their parent and loaded")


def _parent_missing_sql(entity: Entity, among: str | None = None) -> str:
    """SQL predicate: the row's parent id (customer of an order, order of a payment) is not
    among the parents loaded so far. NULL when the id itself is NULL (NOT IN semantics).

    `among`: a table holding every row the predicate will be asked about; the lookup then
    reads only the parents those rows name (the same answer for each of them, found without
    hashing the whole parent table)."""
    parent_name, column = entity.parent  # type: ignore[misc]
    parent_id = ENTITY_BY_NAME[parent_name].id_column
    if among:
        # an empty lookup would make `NULL NOT IN (...)` true: keep NULL ids NULL
        return (
            f'CASE WHEN "{column}" IS NOT NULL THEN "{column}" NOT IN (SELECT "{parent_id}" '
            f'FROM raw.{parent_name} WHERE "{parent_id}" IS NOT NULL '
            f'AND "{parent_id}" IN (SELECT "{column}" FROM {among})) END'
        )
    return (
        f'"{column}" NOT IN (SELECT "{parent_id}" FROM raw.{parent_name} '
        f'WHERE "{parent_id}" IS NOT NULL)'
    )


def _without_password(text: str, url: str | None) -> str:
    """Driver messages may echo connection details: never let the password through."""
    if not url or "@" not in url:
        return text
    from sqlalchemy.engine import make_url

    try:
        password = make_url(url).password
    except Exception:  # an unparseable URL never connected, so no driver echoed it
        return text
    return text.replace(str(password), "***") if password else text


def _rollback_if_open(con: duckdb.DuckDBPyConnection) -> None:
    """Undo a source's half-done transaction; a failure before BEGIN has nothing to undo."""
    with contextlib.suppress(duckdb.TransactionException):
        con.execute("ROLLBACK")


def _cast_expr(name: str, type_: str) -> str:
    if type_ == "decimal":
        return f'CAST(round(CAST("{name}" AS DOUBLE), 2) AS DECIMAL(18,2))'
    return f'CAST("{name}" AS {DUCKDB_TYPES[type_]})'


def _email_sql(expr: str) -> str:
    return f"lower(trim(coalesce({expr}, '')))"


def _phone_sql(expr: str) -> str:
    digits = f"regexp_replace(coalesce({expr}, ''), '[^0-9]', '', 'g')"
    return (
        f"CASE WHEN length({digits}) > 11 AND starts_with({digits}, '0086') THEN substr({digits}, 5) "
        f"WHEN length({digits}) > 11 AND starts_with({digits}, '86') THEN substr({digits}, 3) "
        f"ELSE {digits} END"
    )


def _db_value_as_text(value: object) -> object:
    """Database values as the text a file would carry, so one validator serves both."""
    if value is None:
        return None
    kind = type(value)
    if kind is float or kind is int:  # the common case first: amounts from NUMERIC columns
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _columns_as_text(keys: list[str], rows: list) -> list[pa.Array]:
    """Database rows as Arrow text columns: a column that already holds only text (SQLite's
    timestamps, ids) is taken as is by Arrow; others go through `_db_value_as_text`."""
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in keys]
    texts = []
    for values in columns:
        try:
            texts.append(pa.array(values, type=pa.string()))
        except (pa.ArrowTypeError, pa.ArrowInvalid):
            converted = [v if type(v) is str else _db_value_as_text(v) for v in values]
            texts.append(pa.array(converted, type=pa.string()))
    return texts


def _parse_db_timestamp(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text).replace("T", " ")[:19])
    except ValueError:
        return None
