"""The fast lane changes speed, never results (crm/ingest/fastlane.py).

Differential test: the same messy sources are loaded twice into real DuckDB files, once with the
fast lane and once with every row sent to the exact validator. Raw tables, orphans, rejected rows
and the load audit must be identical, and the fast lane must really have taken most rows (or the
comparison would prove nothing). The values mix canonical forms with every near miss we could
think of: spaces at the ends (ASCII and U+3000), full-width digits, aliases, DST days, impossible
dates, out-of-window dates, bounds, control characters, quotes and backslashes.
"""

from __future__ import annotations

import csv
import json
import random
import sqlite3
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crm import frames
from crm.ingest.aliases import load_aliases
from crm.ingest.fastlane import FastLane, stable_offsets
from crm.ingest.loader import Loader
from crm.rules import default_rules
from crm.warehouse import connect

NOW = datetime(2026, 1, 15, 9, 0)

TIMESTAMPS = [
    "2024-01-05 10:30:15", "2024-01-05", "2024-01-05T10:30:15", "2025-06-30 23:59:59",
    "2024/01/05", "2024-1-5 10:30", "20240105", "2024-01-05 10:30:15+08:00",
    "2024-01-05 10:30:15.250", "2024-02-30 10:00:00", "2024-01-05 24:00:00",
    "2024-01-05 10:60:00", "1989-12-31", "1990-01-01 00:00:00", "1991-04-14 02:30:00",
    "1991-09-15 01:30:00", "2024-03-31 02:30:00", "2024-10-27 02:30:00", "2024-03-30 12:00:00",
    "2026-01-16 12:00:00", "2026-01-17 00:00:00", " 2024-01-05", "2024-01-05 ", "２０２４-01-05",
    "yesterday", "", None,
]  # fmt: skip
AMOUNTS = [
    "879.35", "0", "12", "12.5", "0012.30", "1234567890123.45", "12345678901234", "-5",
    "1,234.50", "¥12", "12.345", "１２", " 12", "12 ", "12元", ".5", "5.", "1e3", "abc", "", None,
]  # fmt: skip
STATUSES = ["completed", "cancelled", "refunded", "pending", "COMPLETED", "已完成", "shipped",
            " completed", "", None]  # fmt: skip
CURRENCIES = ["CNY", "cny", "RMB", "人民币", "USD", " CNY", "", None]
IDS = ["C001", "C002", "C003", "C004", "Ｃ００１", "C001 ", " C002", "C\u3000", "C9", "", None]
TEXTS = ["Acme", "林伟", "a \"quoted\" name", "back\\slash", "tab\there", "line\nbreak",
         "trail ", "\u3000wide", "nul\x00byte", "", None, "ok name"]  # fmt: skip
CHANNELS = ["phone", "email", "wechat", "电话", "微信", "PHONE", "fax", "", None]
DIRECTIONS = ["inbound", "outbound", "呼入", "in", None]
KINDS = ["inquiry", "follow_up", "complaint", "咨询", "Follow-Up", "other", "", None]
SCORES = ["1", "3", "5", "0", "6", "10", "11", "4.0", "x", "-1", "", None]
EMAILS = [
    "a@example.com",
    " b@example.com",
    "A@Example.com ",
    "b@example.com",
    "ｃ@example.com",
    "",
    None,
]
PHONES = ["13901242486", "86 139 0124 2486", "+86-139-0124-2486", "", None]


def _pick(rng: random.Random, pool: list, canonical_share: float = 0.6):
    """Mostly the first (canonical) values, sometimes anything from the pool."""
    return pool[0] if rng.random() < canonical_share else rng.choice(pool)


def _world(root: Path, seed: int, rows: int) -> dict[str, Path | str]:
    rng = random.Random(seed)
    landing = root / "landing"
    (landing / "customers").mkdir(parents=True)
    (landing / "interactions").mkdir(parents=True)
    (landing / "customers" / "c.csv").write_text(
        "customer_id,name,email,phone,created_at\n"
        "C001,Acme,a@example.com,13901242486,2023-01-01\n"
        "C002,Beta,b@example.com,,2023-01-01\n"
        "C003,Gamma,,13800000000,2023-01-01\n",
        encoding="utf-8",
    )
    # A messy CSV export (quoted fields, aliases, odd field counts, NUL bytes): its rows go to
    # the fast lane as text batches, the odd ones to the exact validator.
    with (landing / "customers" / "export.csv").open("w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["客户编号", "name", "customer_type", "employees", "email", "phone",
                      "is_key_account", "created_at", "remark"])  # fmt: skip
        for i in range(rows // 10):
            row = [
                f"K{i}" if i % 9 else _pick(rng, IDS),
                _pick(rng, TEXTS, 0.5),
                _pick(rng, ["company", "person", "公司", "个人", "Company", "other", "", None]),
                _pick(rng, SCORES + ["1,000", "25"]),
                _pick(rng, EMAILS, 0.5),
                _pick(rng, PHONES, 0.5),
                _pick(rng, ["false", "true", "1", "0", "是", "否", "TRUE", "yes?", "", None]),
                _pick(rng, TIMESTAMPS, 0.5),
                _pick(rng, TEXTS, 0.5),
            ]
            if rng.random() < 0.03:
                row = row[: rng.randrange(len(row))]  # too few fields
            elif rng.random() < 0.03:
                row = row + [rng.choice(["", "", "extra"])]  # an empty or a real extra cell
            out.writerow(["" if v is None else v for v in row])
    interactions = {
        "interaction_id": [
            f"I{i % (rows // 2)}" if i % 7 else _pick(rng, IDS) for i in range(rows)
        ],
        "customer_id": [_pick(rng, IDS, 0.5) for _ in range(rows)],
        "contact_email": [_pick(rng, EMAILS, 0.3) for _ in range(rows)],
        "contact_phone": [_pick(rng, PHONES, 0.3) for _ in range(rows)],
        "occurred_at": [_pick(rng, TIMESTAMPS, 0.3) for _ in range(rows)],
        "channel": [_pick(rng, CHANNELS) for _ in range(rows)],
        "direction": [_pick(rng, DIRECTIONS) for _ in range(rows)],
        "kind": [_pick(rng, KINDS) for _ in range(rows)],
        "rep_id": [_pick(rng, TEXTS, 0.5) for _ in range(rows)],
        "satisfaction": [_pick(rng, SCORES) for _ in range(rows)],
        "nps": [_pick(rng, SCORES) for _ in range(rows)],
        "notes": [_pick(rng, TEXTS, 0.5) for _ in range(rows)],  # unknown column: raw_record only
    }
    pq.write_table(
        pa.table({k: pa.array(v, pa.string()) for k, v in interactions.items()}),
        landing / "interactions" / "i.parquet",
        row_group_size=max(1, rows // 3),
    )
    _write_jsonl_interactions(rng, landing / "interactions" / "j.jsonl", rows // 2)
    db = root / "shop.db"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE orders (order_id TEXT, customer_id TEXT, ordered_at TEXT, amount, "
            "discount_amount, currency TEXT, status TEXT, channel TEXT, product_category TEXT)"
        )
        numbers = [879.35, 0, 12, 12.5, 1e16, -5]  # what a driver hands back for NUMERIC
        conn.executemany(
            "INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    f"O{i % (rows // 2)}" if i % 5 else _pick(rng, IDS),
                    _pick(rng, IDS),
                    _pick(rng, TIMESTAMPS, 0.3),
                    rng.choice(numbers) if rng.random() < 0.3 else _pick(rng, AMOUNTS, 0.4),
                    _pick(rng, AMOUNTS, 0.2),
                    _pick(rng, CURRENCIES),
                    _pick(rng, STATUSES),
                    _pick(rng, TEXTS, 0.5),
                    _pick(rng, TEXTS, 0.5),
                )
                for i in range(rows)
            ],
        )
        conn.execute("CREATE TABLE payments (payment_id TEXT, order_id TEXT, paid_at, amount)")
        conn.executemany(
            "INSERT INTO payments VALUES (?, ?, ?, ?)",
            [
                (
                    f"P{i}",
                    f"O{rng.randrange(rows // 2 + 50)}",  # some orders never arrive: orphans
                    _pick(rng, TIMESTAMPS, 0.5),
                    _pick(rng, AMOUNTS, 0.5),
                )
                for i in range(rows // 3)
            ],
        )
    return {"landing": landing, "db_url": f"sqlite:///{db}"}


# What a JSON value can be besides the text pools: numbers, booleans, nested values.
JSON_EXTRAS = [5, 4.0, 1e1, -1, 3000000000, True, False, {"a": 1}, [1, 2]]


def _write_jsonl_interactions(rng: random.Random, path: Path, rows: int) -> None:
    """A call-centre log as JSONL: canonical lines, JSON numbers and booleans, alias keys beside
    their canonical key (the first non-null wins), unknown and missing keys, escaped control
    characters and NULs, and lines that are blank, broken or not objects."""
    lines = []
    for i in range(rows):
        if rng.random() < 0.03:
            lines.append(
                rng.choice(["", "   ", '{"interaction_id": "J1", ', "[1, 2]", "7", "null"])
            )
            continue
        record = {
            "interaction_id": f"J{i % (rows // 2)}" if i % 7 else _pick(rng, IDS),
            "customer_id": _pick(rng, IDS, 0.5),
            "occurred_at": _pick(rng, TIMESTAMPS, 0.3),
            "channel": _pick(rng, CHANNELS),
            "direction": _pick(rng, DIRECTIONS),
            "kind": _pick(rng, KINDS),
            "satisfaction": _pick(rng, SCORES) if rng.random() < 0.8 else rng.choice(JSON_EXTRAS),
            "nps": _pick(rng, SCORES) if rng.random() < 0.8 else rng.choice(JSON_EXTRAS),
        }
        if record["customer_id"] is None or rng.random() < 0.2:
            record["邮箱"] = _pick(rng, EMAILS, 0.3)
            record["contact_phone"] = _pick(rng, PHONES, 0.3)
        if rng.random() < 0.1:
            record["满意度"] = rng.choice(["2", None, 7])  # alias of satisfaction, after it
        if rng.random() < 0.1:
            record["rep_id"] = _pick(rng, TEXTS, 0.5)
        if rng.random() < 0.1:
            record["notes"] = _pick(rng, TEXTS, 0.5)  # unknown key: raw_record only
        if rng.random() < 0.05:
            record.pop(rng.choice(list(record)))
        keys = list(record)
        rng.shuffle(keys)
        lines.append(json.dumps({k: record[k] for k in keys}, ensure_ascii=rng.random() < 0.5))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _load(world: dict, warehouse: Path, timezone: str) -> None:
    with connect(warehouse) as con:
        Loader(
            con,
            landing_dir=world["landing"],
            source_db_url=world["db_url"],
            rules=default_rules(),
            aliases=load_aliases(),
            timezone=timezone,
            run_id="run",
            now=NOW.replace(tzinfo=ZoneInfo(timezone)),
        ).run()


def _tables(warehouse: Path) -> dict[str, list[tuple]]:
    queries = {
        "raw.customers": "SELECT * EXCLUDE (_loaded_at) FROM raw.customers",
        "raw.interactions": "SELECT * EXCLUDE (_loaded_at) FROM raw.interactions",
        "raw.interactions_orphans": "SELECT * EXCLUDE (_loaded_at) FROM raw.interactions_orphans",
        "raw.orders": "SELECT * EXCLUDE (_loaded_at) FROM raw.orders",
        "raw.orders_orphans": "SELECT * EXCLUDE (_loaded_at) FROM raw.orders_orphans",
        "raw.payments": "SELECT * EXCLUDE (_loaded_at) FROM raw.payments",
        "raw.payments_orphans": "SELECT * EXCLUDE (_loaded_at) FROM raw.payments_orphans",
        "rejected": "SELECT * EXCLUDE (rejected_at) FROM quality.rejected_rows",
        "audit": "SELECT * EXCLUDE (loaded_at) FROM quality.load_audit",
    }
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return {
            name: sorted(con.execute(sql).fetchall(), key=repr) for name, sql in queries.items()
        }


@pytest.mark.parametrize(
    ("seed", "timezone", "scan_slice_rows"),
    # a small slice: each batch is scanned as many Arrow record batches, in parallel, in any
    # order (as 1.5M-row batches are in production)
    [
        (1, "Asia/Shanghai", 97),
        (2, "Europe/Berlin", frames.SCAN_SLICE_ROWS),
        (3, "America/New_York", 2048),
    ],
)
def test_fast_lane_gives_exactly_what_the_exact_validator_gives(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    seed: int,
    timezone: str,
    scan_slice_rows: int,
):
    monkeypatch.setattr(frames, "SCAN_SLICE_ROWS", scan_slice_rows)
    world = _world(tmp_path, seed, rows=3000)
    taken: list[tuple[int, int, bool]] = []
    real_stage = FastLane.stage

    def counting_stage(self, batch, *, expose_row_numbers):
        fast, rest = real_stage(self, batch, expose_row_numbers=expose_row_numbers)
        taken.append((fast, len(batch), batch.raw_records is not None))
        return fast, rest

    monkeypatch.setattr(FastLane, "stage", counting_stage)
    _load(world, tmp_path / "fast.duckdb", timezone)
    fast_rows = sum(f for f, _, _ in taken)
    total_rows = sum(n for _, n, _ in taken)
    assert total_rows > 8000  # the facts (7,000), the JSONL log and the CSV exports' good rows
    assert 0.05 * total_rows < fast_rows < total_rows  # it decided, both ways
    jsonl_fast = sum(f for f, _, lines in taken if lines)
    jsonl_rows = sum(n for _, n, lines in taken if lines)
    assert 0.05 * jsonl_rows < jsonl_fast < jsonl_rows  # the JSONL objects too

    def exact_only(self, batch, *, expose_row_numbers):
        return 0, batch.take(np.arange(len(batch), dtype=np.int64))

    monkeypatch.setattr(FastLane, "stage", exact_only)
    _load(world, tmp_path / "exact.duckdb", timezone)

    fast, exact = _tables(tmp_path / "fast.duckdb"), _tables(tmp_path / "exact.duckdb")
    assert sum(len(rows) for rows in exact.values()) > 3000
    for name in exact:
        assert fast[name] == exact[name], name


def test_canonical_rows_take_the_fast_lane_typed_as_the_contract_says(tmp_path: Path):
    """Hand-checked values: 10:30 in Shanghai is 02:30 UTC; 879.35 stays exact; aliases are
    not needed for canonical literals."""
    landing = tmp_path / "landing" / "interactions"
    landing.mkdir(parents=True)
    (tmp_path / "landing" / "customers").mkdir()
    (tmp_path / "landing" / "customers" / "c.csv").write_text(
        "customer_id,created_at\nC1,2023-01-01\n", encoding="utf-8"
    )
    pq.write_table(
        pa.table(
            {
                "interaction_id": ["I1"],
                "customer_id": ["C1"],
                "occurred_at": ["2024-01-05 10:30:15"],
                "channel": ["wechat"],
                "direction": ["inbound"],
                "satisfaction": ["5"],
            }
        ),
        landing / "i.parquet",
    )
    calls: list[int] = []
    real_stage = FastLane.stage

    def spy(self, batch, *, expose_row_numbers):
        fast, rest = real_stage(self, batch, expose_row_numbers=expose_row_numbers)
        calls.append(fast)
        return fast, rest

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(FastLane, "stage", spy)
        _load(
            {"landing": tmp_path / "landing", "db_url": None},
            tmp_path / "w.duckdb",
            "Asia/Shanghai",
        )
    assert calls == [1, 1]  # the customers CSV row, then the interaction
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        row = con.execute(
            "SELECT interaction_id, occurred_at, channel, satisfaction, _row_number, "
            "resolved_customer_id FROM raw.interactions"
        ).fetchone()
    assert row == ("I1", datetime(2024, 1, 5, 2, 30, 15), "wechat", 5, 1, "C1")


def test_days_with_an_offset_change_are_left_to_the_exact_lane():
    runs = stable_offsets("Europe/Berlin", date(2024, 3, 1), date(2024, 11, 30))
    assert runs == [
        (date(2024, 3, 1), date(2024, 3, 30), 60),
        (date(2024, 4, 1), date(2024, 10, 26), 120),
        (date(2024, 10, 28), date(2024, 11, 30), 60),
    ]
    # Shanghai kept DST until 1991; since then one offset.
    shanghai = stable_offsets("Asia/Shanghai", date(1990, 1, 1), date(2026, 1, 16))
    assert shanghai[-1] == (date(1991, 9, 16), date(2026, 1, 16), 480)
