"""`read_table` reads through Arrow for speed; it must give what DuckDB's `.df()` gives.

DuckDB's own `.df()` is the reference: every Python stage was written and tested against its
dtypes (nullable Int64 when a column has NULLs, float64 for DECIMAL, datetime64 for DATE…), so
the faster reader must not change a single dtype or value."""

import duckdb
import pandas as pd
import pytest

from crm.frames import read_query, read_table, records, replace_as_of, replace_table

COLUMNS = {
    "v": "VARCHAR",
    "b": "BOOLEAN",
    "i1": "TINYINT",
    "i2": "SMALLINT",
    "i4": "INTEGER",
    "i8": "BIGINT",
    "f4": "FLOAT",
    "f8": "DOUBLE",
    "d": "DATE",
    "ts": "TIMESTAMP",
    "m": "DECIMAL(18,2)",
    "m4": "DECIMAL(9,4)",
}
ROWS = [  # fmt: skip
    (
        "甲",
        True,
        1,
        2,
        3,
        4,
        1.5,
        2.25,
        "2026-01-01",
        "2026-01-01 10:00:00",
        21927265993.60,
        1.2345,
    ),
    (
        "b",
        False,
        -1,
        -2,
        -3,
        2**40,
        -0.5,
        1e300,
        "1999-12-31",
        "2026-06-30 23:59:59.123456",
        280850517.21,
        -0.0001,
    ),
    ("", True, 0, 0, 0, 0, 0.0, 0.1, "2026-02-28", "1970-01-01 00:00:00", 0.07, 99999.9999),
]


def _make(con: duckdb.DuckDBPyConnection, name: str, rows: list[tuple]) -> None:
    cols = ", ".join(f"{c} {t}" for c, t in COLUMNS.items())
    con.execute(f"CREATE TABLE {name} ({cols})")
    if rows:
        con.executemany(f"INSERT INTO {name} VALUES ({', '.join('?' * len(COLUMNS))})", rows)


def _assert_same_as_df(con: duckdb.DuckDBPyConnection, table: str) -> None:
    expected = con.execute(f"SELECT * FROM {table}").df()
    actual = read_table(con, table)
    assert list(actual.dtypes.astype(str)) == list(expected.dtypes.astype(str))
    pd.testing.assert_frame_equal(actual, expected, check_exact=True)


@pytest.mark.parametrize(
    "rows",
    [
        pytest.param(ROWS, id="no NULLs"),
        pytest.param(ROWS + [(None,) * len(COLUMNS)], id="one NULL row"),
        pytest.param([(None,) * len(COLUMNS)] * 2, id="all NULL"),
        pytest.param([], id="empty"),
    ],
)
def test_read_table_matches_duckdb_df(rows: list[tuple]) -> None:
    con = duckdb.connect()
    _make(con, "t", rows)
    _assert_same_as_df(con, "t")


def test_read_table_of_some_columns_matches_duckdb_df_of_those_columns() -> None:
    con = duckdb.connect()
    _make(con, "t", ROWS + [(None,) * len(COLUMNS)])
    picked = ["m", "b", next(iter(COLUMNS))]  # another order than the table's
    expected = con.execute(f"SELECT {', '.join(picked)} FROM t").df()
    actual = read_table(con, "t", picked)
    assert list(actual.columns) == picked
    pd.testing.assert_frame_equal(actual, expected, check_exact=True)
    con.execute("CREATE TABLE u AS SELECT [1, 2] AS l, 'x' AS v, 3 AS n")  # the .df() fallback
    pd.testing.assert_frame_equal(
        read_table(con, "u", ["l", "n"]), con.execute("SELECT l, n FROM u").df()
    )


def test_nullable_columns_keep_pandas_nullable_dtypes() -> None:
    """What the Python stages rely on, stated directly: an integer column with a NULL is Int64
    (not float64), a boolean one is `boolean`, a DATE is datetime64, DECIMAL is float64."""
    con = duckdb.connect()
    _make(con, "t", ROWS + [(None,) * len(COLUMNS)])
    frame = read_table(con, "t")
    assert str(frame["i8"].dtype) == "Int64" and frame["i8"].isna().sum() == 1
    assert str(frame["b"].dtype) == "boolean"
    assert str(frame["d"].dtype) == "datetime64[us]"
    assert frame["m"].dtype == "float64" and frame["m"].iloc[0] == 21927265993.60


def test_other_types_fall_back_to_df() -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT [1, 2] AS l, 5::HUGEINT AS h, 'x' AS v")
    _assert_same_as_df(con, "t")


WRITE_FRAMES = {
    "numpy": pd.DataFrame(
        {
            "i": [1, 2, 3],
            "f": [1.5, float("nan"), 1e300],
            "b": [True, False, True],
            "ts": pd.to_datetime(
                ["2026-01-01", "2026-06-30 10:00:00.123456", None], format="ISO8601"
            ).astype("datetime64[us]"),
        }
    ),
    "nullable": pd.DataFrame(
        {
            "I": pd.array([1, None, 3], dtype="Int64"),
            "I32": pd.array([1, None, 3], dtype="Int32"),
            "B": pd.array([True, None, False], dtype="boolean"),
            "s": pd.array(["甲", None, ""], dtype="str"),
        }
    ),
    "empty": pd.DataFrame({"s": pd.array([], dtype="str"), "i": pd.array([], dtype="int64")}),
    "dates": pd.DataFrame(
        {
            "as_of": pd.Series([pd.Timestamp("2026-01-01").date(), None, None], dtype=object),
            "s": pd.array(["a", "b", None], dtype="str"),
        }
    ),
    "object": pd.DataFrame(
        {"d": [pd.Timestamp("2026-01-01").date(), None, None], "o": [1, "a", None]}
    ),
}


@pytest.mark.parametrize("name", WRITE_FRAMES)
def test_replace_table_writes_what_the_pandas_scanner_writes(name: str) -> None:
    """replace_table hands DuckDB an Arrow table when it can (faster); the column types and rows
    must be those DuckDB's own pandas scanner would have written."""
    frame = WRITE_FRAMES[name]
    con = duckdb.connect()
    con.register("_reference", frame)
    con.execute("CREATE TABLE expected AS SELECT * FROM _reference")
    replace_table(con, "main.actual", frame)
    assert con.execute("DESCRIBE actual").fetchall() == con.execute("DESCRIBE expected").fetchall()
    assert (
        con.execute("SELECT * FROM actual").fetchall()
        == con.execute("SELECT * FROM expected").fetchall()
    )


def test_plain_and_date_columns_take_the_arrow_path() -> None:
    """The faster scan is really used for the marts' dtypes (and not for mixed objects)."""
    import pyarrow as pa

    from crm.frames import scannable

    for name in ("numpy", "nullable", "empty", "dates"):
        assert isinstance(scannable(WRITE_FRAMES[name]), pa.Table), name
    assert isinstance(scannable(WRITE_FRAMES["object"]), pd.DataFrame)


def test_replace_as_of_appends_through_the_same_scan() -> None:
    """The insert path (table exists): the second as_of slice lands next to the first, values
    unchanged, and rerunning an as_of replaces only its slice."""
    frame = WRITE_FRAMES["nullable"]
    con = duckdb.connect()
    for as_of in ("2026-01-01", "2026-02-01", "2026-02-01"):
        replace_as_of(con, "main.series", frame.assign(as_of=as_of), as_of, {"as_of": "DATE"})
    rows = con.execute(
        "SELECT as_of, count(*), count(I), sum(I32) FROM series GROUP BY 1 ORDER BY 1"
    )
    assert [(str(d), n, ni, s) for d, n, ni, s in rows.fetchall()] == [
        ("2026-01-01", 3, 2, 4),
        ("2026-02-01", 3, 2, 4),
    ]
    assert con.execute("SELECT s FROM series ORDER BY as_of, I NULLS LAST").fetchall()[:3] == [
        ("甲",),
        ("",),
        (None,),
    ]


def test_read_query_matches_duckdb_df() -> None:
    con = duckdb.connect()
    _make(con, "t", ROWS + [(None,) * len(COLUMNS)])
    sql = "SELECT v, b, i8, m, d FROM t WHERE i4 IS NULL OR i4 <= 0"
    pd.testing.assert_frame_equal(read_query(con, sql), con.execute(sql).df(), check_exact=True)


def test_large_frames_are_scanned_in_slices_and_keep_their_row_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The Arrow table handed to DuckDB is cut into record batches so the scan runs on every
    core; the table written holds the frame's rows in the frame's order (as `.df()` reads back)."""
    from crm import frames

    monkeypatch.setattr(frames, "SCAN_SLICE_ROWS", 1000)
    n = 25_000
    frame = pd.DataFrame(
        {
            "i": range(n),
            "s": pd.array([f"C{k:06d}" if k % 7 else None for k in range(n)], dtype="str"),
            "m": pd.array([k if k % 3 else None for k in range(n)], dtype="Int64"),
        }
    )
    scanned = frames.scannable(frame)
    assert len(scanned.to_batches()) == 25
    con = duckdb.connect()
    con.execute("SET threads = 4")
    replace_table(con, "main.t", frame)
    back = read_table(con, "main.t")
    pd.testing.assert_frame_equal(back, frame)


def _same_value(a: object, b: object) -> bool:
    """Equal values, or both missing (None, NaN, NaT, NA)."""
    if pd.isna(a) or pd.isna(b):
        return bool(pd.isna(a) and pd.isna(b))
    return bool(a == b)


def test_records_give_each_rows_values_as_iterrows_does() -> None:
    """`records` is the fast way to walk rows: the value of every cell must equal the one the
    row-by-row reading gives (`iterrows`), NULLs included, in row order."""
    con = duckdb.connect()
    _make(con, "t", ROWS + [(None,) * len(COLUMNS)] + ROWS[:1])
    frame = read_table(con, "t")
    wanted = ["ts", "v", "i8", "b", "no_such_column", "m", "d"]
    rows = records(frame, wanted)
    present = [name for name in wanted if name in frame.columns]
    assert len(rows) == len(frame) == 5
    for row, (_, reference) in zip(rows, frame.iterrows(), strict=True):
        assert list(row) == present  # asked order, the missing column left out
        for name in present:
            assert _same_value(row[name], reference[name]), (name, row[name], reference[name])
    assert rows[0]["v"] == "甲" and rows[1]["i8"] == 2**40 and rows[0]["b"] is True
    assert all(pd.isna(value) for value in rows[3].values())
