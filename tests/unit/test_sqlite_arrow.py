"""The SQLite Arrow reader against the path it replaces (SQLAlchemy rows → `str()` text).

The reference is the older reader, which turned every value the `sqlite3` driver returns into
the text a file would carry. The table below holds each SQLite storage class in every column,
columns NULL for longer than a batch (ADBC types a column from its first batch), REALs whose
SQLite text differs from Python's, and blobs."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pyarrow as pa
import pytest

from crm.ingest import sqlite_arrow
from crm.ingest.errors import SourceError
from crm.ingest.loader import _columns_as_text
from tests.unit import test_fastlane

VALUES = [
    None,
    0,
    -7,
    2**62,
    12.5,
    100.0,
    0.1 + 0.2,
    12345678901234.56,  # SQLite's own text: 12345678901234.561 (or …234.6)
    1e16,
    -0.0,
    1.5e-7,
    "879.35",
    " 12 ",
    "客户甲",
    "",
    "2026-01-01 10:00:00",
    b"plain bytes",
    "中文".encode("gbk"),  # not UTF-8: decoded with replacement characters, as before
]
BATCH = 64


def _make(path: Path, rows: int) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute('CREATE TABLE t (a, b TEXT, c NUMERIC(18,2), "d d" INTEGER, e REAL)')
        data = []
        for i in range(rows):
            # a: NULL for the first two batches, then everything; others cycle at their own pace
            a = None if i < 2 * BATCH else VALUES[i % len(VALUES)]
            data.append(
                (
                    a,
                    VALUES[(i * 3) % len(VALUES)],
                    VALUES[(i * 5) % len(VALUES)],
                    VALUES[(i * 7) % len(VALUES)],
                    VALUES[(i * 11) % len(VALUES)],
                )
            )
        conn.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?)", data)


def _reference(path: Path, where: str = "", params: tuple = ()) -> list[list]:
    with sqlite3.connect(path) as conn:
        cursor = conn.execute(f"SELECT * FROM t {where} ORDER BY rowid", params)
        keys = [d[0] for d in cursor.description]
        rows = cursor.fetchall()
    return [column.to_pylist() for column in _columns_as_text(keys, rows)]


def _read(path: Path, **kwargs) -> list[list]:
    with sqlite_arrow.Snapshot(path) as snapshot:
        batches = [
            texts
            for _, texts in snapshot.text_batches(
                "t", ["a", "b", "c", "d d", "e"], batch_rows=BATCH, **kwargs
            )
        ]
    assert all(len(b[0]) <= BATCH for b in batches)
    return [sum((b[i].to_pylist() for b in batches), []) for i in range(5)]


def test_text_equals_the_sqlalchemy_path_for_every_storage_class(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    _make(db, rows=6 * BATCH + 5)
    expected = _reference(db)
    assert "12345678901234.56" in expected[0] and "plain bytes" in expected[0]
    assert _read(db, order_by=["rowid"]) == expected


def test_where_and_parameters(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    _make(db, rows=3 * BATCH)
    got = _read(db, where='typeof("d d") = ?', params=["real"], order_by=["rowid"])
    assert got == _reference(db, 'WHERE typeof("d d") = ?', ("real",))
    assert got[0] and all(v is not None for v in got[3])


def test_invalid_utf8_text_fails_the_read(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    with sqlite3.connect(db) as conn:
        conn.execute('CREATE TABLE t (a TEXT, b, c, "d d", e)')
        conn.execute("INSERT INTO t VALUES (CAST(X'C4E3' AS TEXT), 1, 1, 1, 1)")
    with pytest.raises(pa.ArrowInvalid):
        _read(db)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:////data/shop.db", Path("/data/shop.db")),
        ("sqlite:///shop.db", Path("shop.db")),
        ("sqlite://", None),
        ("sqlite:///:memory:", None),
        ("sqlite:///file:shop.db?mode=ro&uri=true", None),
        ("postgresql://u:p@localhost/shop", None),
    ],
)
def test_only_plain_sqlite_files_take_the_arrow_path(url: str, expected: Path | None) -> None:
    assert sqlite_arrow.sqlite_path(url) == expected


def test_loader_results_are_identical_with_either_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole load (typing, rejections with raw_record, orphans, audit) of messy shop data."""
    world = test_fastlane._world(tmp_path, seed=4, rows=3000)
    calls = []
    real_reader = sqlite_arrow.Snapshot.text_batches

    def spy(self, table, *args, **kwargs):
        calls.append((table, kwargs["rowid"], list(kwargs["order_by"])))
        yield from real_reader(self, table, *args, **kwargs)

    monkeypatch.setattr(sqlite_arrow.Snapshot, "text_batches", spy)
    test_fastlane._load(world, tmp_path / "arrow.duckdb", "Asia/Shanghai")
    # read in storage order, placed by the rowids' change order (`order_id`: no updated_at)
    assert calls == [("orders", "_rowid_", []), ("payments", "_rowid_", [])]

    monkeypatch.setattr(sqlite_arrow, "available", lambda: False)
    test_fastlane._load(world, tmp_path / "sqlalchemy.duckdb", "Asia/Shanghai")
    arrow = test_fastlane._tables(tmp_path / "arrow.duckdb")
    reference = test_fastlane._tables(tmp_path / "sqlalchemy.duckdb")
    assert len(reference["raw.orders"]) > 500 and len(reference["rejected"]) > 100
    for name in reference:
        assert arrow[name] == reference[name], name


def test_a_broken_database_value_names_the_source(tmp_path: Path) -> None:
    world = test_fastlane._world(tmp_path, seed=5, rows=300)
    db = Path(str(world["db_url"]).removeprefix("sqlite:///"))
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE orders SET status = CAST(X'C4E3' AS TEXT) WHERE rowid = 7")
    with pytest.raises(SourceError, match=r"db:orders: reading failed"):
        test_fastlane._load(world, tmp_path / "w.duckdb", "Asia/Shanghai")


def test_reals_of_every_magnitude_read_as_python_writes_them(tmp_path: Path) -> None:
    """Arrow formats most REALs itself (same shortest digits as Python); whole numbers,
    exponents and tiny values go through str(). Both must agree with the reference."""
    import random

    rng = random.Random(7)
    reals = [rng.random() * 10 ** rng.randint(-9, 18) * rng.choice([1, -1]) for _ in range(3000)]
    reals += [round(rng.uniform(-1e7, 1e7), rng.randint(0, 2)) for _ in range(3000)]
    reals += [float(rng.randint(-(10**6), 10**6)) for _ in range(500)] + [1e-4, 9.999e-5, 1e16]
    db = tmp_path / "r.db"
    with sqlite3.connect(db) as conn:
        conn.execute('CREATE TABLE t (a REAL, b, c, "d d", e)')
        conn.executemany("INSERT INTO t (a) VALUES (?)", [(r,) for r in reals])
    expected = _reference(db)
    assert expected[0] == [str(r) for r in reals]
    assert _read(db, order_by=["rowid"]) == expected


def _shop(root: Path, table_sql: str, orders: list[tuple]) -> dict[str, Path | str]:
    """Customer C001 in a landing file and `orders` (updated_at last) in a SQLite table."""
    (root / "landing" / "customers").mkdir(parents=True)
    (root / "landing" / "customers" / "c.csv").write_text(
        "customer_id,name,created_at\nC001,Acme,2023-01-01\n", encoding="utf-8"
    )
    db = root / "shop.db"
    with sqlite3.connect(db) as conn:
        conn.execute(table_sql)
        conn.execute("CREATE TABLE payments (payment_id TEXT, order_id TEXT, paid_at, amount)")
        conn.executemany(
            "INSERT INTO orders (order_id, customer_id, ordered_at, amount, currency, status, "
            "updated_at) VALUES (?, 'C001', '2025-12-01 10:00:00', ?, 'CNY', 'completed', ?)",
            orders,
        )
    return {"landing": root / "landing", "db_url": f"sqlite:///{db}"}


ORDERS_TABLE = (
    "CREATE TABLE orders (order_id TEXT {pk}, customer_id TEXT, ordered_at TEXT, amount, "
    "currency TEXT, status TEXT, updated_at TEXT COLLATE NOCASE){suffix}"
)
# Stored newest first. 'O1' and ' O1 ' are one order once trimmed: the version updated later
# (amount 20) is the current one. updated_at is NOCASE: SQLite's collation decides the order.
OUT_OF_ORDER = [
    (" O1 ", 20, "2025-12-03T09:00:00"),
    ("O3", 30, "2025-12-02t08:00:00"),  # before O2 under NOCASE, after it byte by byte
    ("O2", 40, "2025-12-02T09:00:00"),
    ("O1", 10, "2025-12-01 09:00:00"),
]


def _orders_by_load_seq(warehouse: Path) -> list[tuple]:
    import duckdb

    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(
            "SELECT order_id, CAST(amount AS INTEGER) FROM raw.orders ORDER BY _load_seq"
        ).fetchall()


@pytest.mark.parametrize(
    ("pk", "suffix", "rowid"),
    [
        ("", "", "_rowid_"),  # a plain table: storage-order read placed by the rowids' order
        ("PRIMARY KEY", " WITHOUT ROWID", None),  # no rowid: the read itself is ordered
    ],
)
def test_rows_are_numbered_in_change_order_whatever_the_storage_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pk: str, suffix: str, rowid: str | None
) -> None:
    orders = OUT_OF_ORDER if pk == "" else [o for o in OUT_OF_ORDER if o[0] != " O1 "]
    world = _shop(tmp_path, ORDERS_TABLE.format(pk=pk, suffix=suffix), orders)
    used = []
    real_reader = sqlite_arrow.Snapshot.text_batches

    def spy(self, table, *args, **kwargs):
        used.append((table, kwargs["rowid"]))
        yield from real_reader(self, table, *args, **kwargs)

    monkeypatch.setattr(sqlite_arrow.Snapshot, "text_batches", spy)
    test_fastlane._load(world, tmp_path / "w.duckdb", "Asia/Shanghai")
    assert used[0] == ("orders", rowid)
    # change order: updated_at, then order_id; the trimmed duplicate: latest wins
    expected = [("O1", 10), ("O3", 30), ("O2", 40)] + ([("O1", 20)] if pk == "" else [])
    assert _orders_by_load_seq(tmp_path / "w.duckdb") == expected

    monkeypatch.setattr(sqlite_arrow, "available", lambda: False)  # SQLAlchemy, ordered read
    test_fastlane._load(world, tmp_path / "reference.duckdb", "Asia/Shanghai")
    assert _orders_by_load_seq(tmp_path / "reference.duckdb") == expected


def test_a_column_named_rowid_does_not_hide_the_rowid(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (rowid TEXT, w TEXT)")
        conn.execute("CREATE TABLE u (w TEXT, _rowid_ TEXT)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [("x", "b"), ("x", "a"), ("y", "c")])
        conn.execute("CREATE VIEW v AS SELECT * FROM t")
        conn.execute('CREATE TABLE "all three" (rowid, _rowid_, oid)')
    with sqlite_arrow.Snapshot(db) as snapshot:
        assert snapshot.rowid_name("t") == "_rowid_"
        assert snapshot.rowid_name("u") == "rowid"  # a column not read still takes the name
        order = snapshot.rowids_in_order(
            "t", "_rowid_", where="", params=(), order_by=["w"], batch_rows=2
        )
        assert sum((batch.to_pylist() for batch in order), []) == [2, 1, 3]
        assert snapshot.rowid_name("v") is None
        assert snapshot.rowid_name("all three") is None


TEXTS = ["879.35", " 12 ", "客户甲", "", "2026-01-01 10:00:00", "nul\x00inside", "x" * 5000, "0"]


def _make_text_table(path: Path, rows: int, odd: dict[int, tuple[str, object]]) -> None:
    """TEXT-affinity columns a, b, "d d" holding text only (numbers given to them are stored as
    text), c without affinity; `odd` puts one NULL or blob (column, value) in a chosen row."""
    with sqlite3.connect(path) as conn:
        conn.execute('CREATE TABLE t (a TEXT, b VARCHAR(20), c, "d d" NCHAR(8), e CLOB)')
        data = []
        for i in range(rows):
            row = {
                "a": TEXTS[i % len(TEXTS)],
                "b": [12, 12.5, "甲"][i % 3],  # numbers become text in a TEXT column
                "c": TEXTS[(i * 3) % len(TEXTS)],
                "d d": TEXTS[(i * 5) % len(TEXTS)],
                "e": TEXTS[(i * 7) % len(TEXTS)],
            }
            if i in odd:
                column, value = odd[i]
                row[column] = value
            data.append(tuple(row.values()))
        conn.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?)", data)


@pytest.mark.parametrize(
    ("odd", "text_only"),
    [
        pytest.param({}, {"a", "b", "d d", "e"}, id="all text"),
        pytest.param({5 * BATCH: ("a", None)}, {"b", "d d", "e"}, id="one NULL late"),
        pytest.param({3: ("e", b"\x00\x01")}, {"a", "b", "d d"}, id="one blob"),
    ],
)
def test_columns_of_text_only_are_read_as_is_and_equal_the_reference(
    tmp_path: Path, odd: dict, text_only: set[str]
) -> None:
    """Only TEXT-affinity columns all of whose values read are TEXT skip the tags (c has no
    affinity, so it is never asked about); either way every column reads as the reference."""
    db = tmp_path / "s.db"
    _make_text_table(db, rows=6 * BATCH + 5, odd=odd)
    with sqlite_arrow.Snapshot(db) as snapshot:
        found = snapshot.text_only_columns("t", ["a", "b", "c", "d d", "e"])
    assert found == text_only
    expected = _reference(db)
    assert "nul\x00inside" in expected[0] and "12.5" in expected[1]
    assert _read(db, order_by=["rowid"]) == expected


def test_text_only_is_decided_on_the_rows_read(tmp_path: Path) -> None:
    """A NULL outside the rows `where` selects does not keep a column tagged."""
    db = tmp_path / "s.db"
    _make_text_table(db, rows=3 * BATCH, odd={0: ("a", None)})
    where, params = "rowid > ?", [1]
    with sqlite_arrow.Snapshot(db) as snapshot:
        assert "a" not in snapshot.text_only_columns("t", ["a"])
        assert snapshot.text_only_columns("t", ["a"], where=where, params=params) == {"a"}
    assert _read(db, where=where, params=params, order_by=["rowid"]) == _reference(
        db, "WHERE rowid > ?", (1,)
    )
