"""Read a SQLite table as Arrow text columns through ADBC, with the text SQLAlchemy gives.

Why: at 1M customers the shop database holds 19M orders and payments, and the Python `sqlite3`
driver spends ~1 µs per value building Python objects that are then turned back into text
(~110 s per 10M rows with the Arrow conversion). ADBC's SQLite driver hands over Arrow batches
directly (~5 s per 1M orders, including the tagging below).

Exactness: the loader validates database values as the text a file would carry
(`loader._db_value_as_text`: Python's `str()` of an int or float, UTF-8 of a blob). SQLite's own
text for a REAL differs from Python's (`12345678901234.561` against `12345678901234.56`), and
ADBC types a result column from its first batch (a column NULL for a whole batch breaks the next
one). So a column is read as tagged text that is never NULL — `n` for NULL, `v…` for integer
and text values (SQLite's text of an integer is Python's), `r` for a REAL, `b<hex>` for a blob —
plus the REAL itself in a second column. A REAL is written by Arrow where Arrow's text is
provably Python's (same shortest digits, positional, |x| >= 1e-4), else by `str()`; a blob is
decoded by Python as before. A column whose every value in the rows read is TEXT needs no tag
and is read as it is (`Snapshot.text_only_columns`). tests/unit/test_sqlite_arrow.py compares
both readers on tables mixing every storage class.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

try:  # optional: without the driver the loader keeps the SQLAlchemy path
    import adbc_driver_sqlite.dbapi as adbc_sqlite
except ImportError:  # pragma: no cover - exercised only where the package is missing
    adbc_sqlite = None


def available() -> bool:
    return adbc_sqlite is not None


def sqlite_path(url: str) -> Path | None:
    """The database file of a plain `sqlite:///path` URL; None for anything else (memory
    databases, URI filenames with options, other dialects), which stay on SQLAlchemy."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.query or not parsed.database:
        return None
    if parsed.database == ":memory:" or parsed.database.startswith("file:"):
        return None
    return Path(parsed.database)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Snapshot:
    """One read transaction on a SQLite file: every query made through it sees the same rows.

    Why: sorting a wide read in SQLite is slow (10M L orders by `updated_at, order_id`: ~78 s
    through the index, 71 s with a sort, 38 s unsorted), while sorting just the rowids takes
    9 s. The loader reads the source order of the rowids first and then the rows in storage
    order; both queries must see the same rows, so they share this transaction (the ADBC
    connection opens one: autocommit is off)."""

    def __init__(self, path: Path) -> None:
        self._conn = adbc_sqlite.connect(path.resolve().as_uri() + "?mode=ro")

    def __enter__(self) -> Snapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._conn.close()

    def _batches(self, query: str, params: Sequence[object], batch_rows: int):
        with self._conn.cursor() as cursor:
            cursor.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(batch_rows)})
            cursor.execute(query, parameters=list(params) if params else None)
            yield from cursor.fetch_record_batch()

    def _column(self, query: str, params: Sequence[object]) -> list[object]:
        return [
            v for batch in self._batches(query, params, 1024) for v in batch.column(0).to_pylist()
        ]

    def rowid_name(self, table: str) -> str | None:
        """A name that reads the rowid of `table`, or None: a view, a WITHOUT ROWID table, or
        a table whose own columns (any of them, read or not) take all three names SQLite gives
        the rowid."""
        kinds = self._column(
            "SELECT type FROM sqlite_schema WHERE name = ? COLLATE NOCASE", [table]
        )
        if kinds != ["table"]:
            return None
        taken = {
            str(c).lower() for c in self._column("SELECT name FROM pragma_table_xinfo(?)", [table])
        }
        name = next((n for n in ("_rowid_", "rowid", "oid") if n not in taken), None)
        if name is None:
            return None
        try:
            list(self._batches(f"SELECT {name} FROM {_quote(table)} LIMIT 0", (), 16))
        except Exception:  # WITHOUT ROWID: "no such column"
            return None
        return name

    def rowids_in_order(
        self,
        table: str,
        rowid: str,
        *,
        where: str,
        params: Sequence[object],
        order_by: Sequence[str],
        batch_rows: int,
    ) -> Iterator[pa.Array]:
        """The rowids of the rows `where` selects, in `order_by` order (int64 batches); rows
        equal in that order keep their storage order.

        `+column` keeps each column's collation but stops SQLite from walking an index and
        fetching every row by rowid, which is what made the ordered read slow."""
        query = f"SELECT {rowid} FROM {_quote(table)}"
        if where:
            query += f" WHERE {where}"
        # rows equal in change order keep their storage order
        query += " ORDER BY " + ", ".join(["+" + _quote(c) for c in order_by] + [rowid])
        for batch in self._batches(query, params, batch_rows):
            yield batch.column(0).cast(pa.int64())

    def text_batches(
        self,
        table: str,
        columns: Sequence[str],
        *,
        where: str = "",
        params: Sequence[object] = (),
        order_by: Sequence[str] = (),
        batch_rows: int,
        rowid: str | None = None,
    ) -> Iterator[tuple[pa.Array | None, list[pa.Array]]]:
        """Batches of `table` as (rowids or None, one Arrow string array per column, None for
        NULL, in `columns` order); `where` uses `?` placeholders. Invalid UTF-8 text fails the
        read (as on sqlite3).

        Columns whose every value read is TEXT (`text_only_columns`) are read as they are; the
        others as tagged text (module docstring)."""
        plain = self.text_only_columns(table, columns, where=where, params=params)
        select = [f"{rowid}, 0.0"] if rowid else []
        for name in columns:
            q = _quote(name)
            if name in plain:
                select.append(q)
                continue
            select.append(
                f"CASE typeof({q}) WHEN 'null' THEN 'n' WHEN 'real' THEN 'r' "
                f"WHEN 'blob' THEN 'b' || hex({q}) ELSE 'v' || {q} END, "
                f"CASE typeof({q}) WHEN 'real' THEN {q} ELSE 0.0 END"
            )
        query = f"SELECT {', '.join(select)} FROM {_quote(table)}"
        if where:
            query += f" WHERE {where}"
        if order_by:
            query += " ORDER BY " + ", ".join(_quote(c) for c in order_by)
        for batch in self._batches(query, params, batch_rows):
            position = 2 if rowid else 0
            texts = []
            for name in columns:
                if name in plain:
                    texts.append(_valid_text(batch.column(position)))
                    position += 1
                else:
                    texts.append(_untag(batch.column(position), batch.column(position + 1)))
                    position += 2
            yield (batch.column(0).cast(pa.int64()) if rowid else None), texts

    def text_only_columns(
        self, table: str, columns: Sequence[str], *, where: str = "", params: Sequence[object] = ()
    ) -> set[str]:
        """The columns of `columns` with TEXT affinity whose every value in the rows `where`
        selects is TEXT (no NULL, no blob): their values need no tag, so they are read as is.

        Why: tagging costs SQLite a CASE and a string copy per value. At 1M customers reading
        10M orders took 40.7 s of CPU tagged, 12.8 s as is; asking which columns are all text
        takes ~4 s (one scan of those rows: one test per row, then per column if one fails).
        Only TEXT affinity is asked about (SQLite stores numbers given to such a column as
        text); NULLs stay tagged because ADBC types a column from its first batch."""
        declared = {
            str(row["name"]): str(row["type"] or "")
            for batch in self._batches(
                "SELECT name, type FROM pragma_table_xinfo(?)", [table], 1024
            )
            for row in batch.to_pylist()
        }
        candidates = [name for name in columns if _text_affinity(declared.get(name))]
        if not candidates:
            return set()
        tests = [f"typeof({_quote(name)}) <> 'text'" for name in candidates]
        suffix = f" FROM {_quote(table)}" + (f" WHERE {where}" if where else "")
        if not self._counts(
            f"SELECT count(*) FILTER (WHERE {' OR '.join(tests)})" + suffix, params
        )[0]:
            return set(candidates)
        counts = self._counts(
            "SELECT " + ", ".join(f"count(*) FILTER (WHERE {test})" for test in tests) + suffix,
            params,
        )
        return {name for name, count in zip(candidates, counts, strict=True) if not count}

    def _counts(self, query: str, params: Sequence[object]) -> list[int]:
        (row,) = [row for batch in self._batches(query, params, 16) for row in batch.to_pylist()]
        return [int(value or 0) for value in row.values()]


def _text_affinity(declared: str | None) -> bool:
    """SQLite's rule for a declared column type (datatype3.html §3.1): TEXT affinity when it
    holds CHAR, CLOB or TEXT and not INT (INT decides first). None: no such column."""
    if declared is None:
        return False
    upper = declared.upper()
    return "INT" not in upper and any(word in upper for word in ("CHAR", "CLOB", "TEXT"))


def _valid_text(column: pa.Array) -> pa.Array:
    text = column.cast(pa.string())
    text.validate(full=True)  # invalid UTF-8 raises here, as for tagged text
    return text


def _untag(tagged: pa.Array, reals: pa.Array) -> pa.Array:
    tagged = tagged.cast(pa.string())
    tagged.validate(full=True)  # invalid UTF-8 raises here, not later in DuckDB
    tags = pc.utf8_slice_codeunits(tagged, 0, 1)
    text = pc.if_else(
        pc.equal(tags, "n"), pa.scalar(None, pa.string()), pc.utf8_slice_codeunits(tagged, 1)
    )
    is_real = pc.equal(tags, "r")
    if pc.any(is_real).as_py():
        # Arrow writes a double with the same shortest round-trip digits as Python, so where
        # both write it positionally (a '.', no exponent, |x| >= 1e-4) the texts are equal;
        # the rest (whole numbers: '100' vs '100.0', exponents) is left to Python's str().
        arrow_text = reals.cast(pa.string())
        same = pc.and_(
            pc.and_(
                pc.match_substring(arrow_text, "."), pc.invert(pc.match_substring(arrow_text, "e"))
            ),
            pc.greater_equal(pc.abs(reals), 1e-4),
        )
        text = pc.if_else(is_real, arrow_text, text)
        text = _python_text_where(text, pc.and_(is_real, pc.invert(same)), reals, "r")
    is_blob = pc.equal(tags, "b")
    if pc.any(is_blob).as_py():
        text = _python_text_where(text, is_blob, text, "b")
    return text


def _python_text_where(text: pa.Array, mask: pa.Array, source: pa.Array, tag: str) -> pa.Array:
    """`text` with the masked rows replaced by the sqlite3 path's text: `str(float)` of a REAL,
    the UTF-8 (with replacement characters) of a blob's hex."""
    positions = np.flatnonzero(mask.to_numpy(zero_copy_only=False))
    if not len(positions):
        return text
    values = text.to_pylist()
    picked = source.take(pa.array(positions)).to_pylist()
    for position, value in zip(positions, picked, strict=True):
        if tag == "r":
            values[position] = str(value)
        else:
            values[position] = bytes.fromhex(value).decode("utf-8", errors="replace")
    return pa.array(values, type=pa.string())
