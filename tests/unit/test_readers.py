"""Readers: formats, encodings, header matching and aliases (contract.md §1 "Sources")."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crm.ingest.aliases import load_aliases
from crm.ingest.errors import SourceError
from crm.ingest.readers import (
    TEXT_BATCH_CHUNKS,
    RawChunk,
    TextBatch,
    normalise_frame,
    read_file,
)
from crm.schemas import CUSTOMERS, INTERACTIONS, ORDERS, PAYMENTS

ALIASES = load_aliases()


def read_all(path: Path, entity, aliases=ALIASES, **kwargs) -> list[RawChunk]:
    """The file's chunks as the exact validator sees them: a text batch (rows the fast lane may
    take) is turned into the chunk its rows would make on the row-wise path."""
    return [
        chunk.take(np.arange(len(chunk))) if isinstance(chunk, TextBatch) else chunk
        for chunk in read_file(path, entity, aliases, display_name=path.name, **kwargs)
    ]


def single(path: Path, entity, aliases=ALIASES) -> RawChunk:
    chunks = read_all(path, entity, aliases)
    assert len(chunks) == 1
    return chunks[0]


def test_csv_with_canonical_headers_gives_text_row_numbers_and_raw_record(tmp_path: Path):
    path = tmp_path / "c.csv"
    path.write_text("customer_id,name,created_at\nC1,Acme,2024-01-05\nC2,,2024-01-06\n", "utf-8")
    chunk = single(path, CUSTOMERS)
    assert list(chunk.frame.columns) == [
        "customer_id",
        "name",
        "created_at",
        "row_number",
        "raw_record",
    ]
    assert chunk.frame["customer_id"].tolist() == ["C1", "C2"]
    assert chunk.frame["row_number"].tolist() == [1, 2]
    assert json.loads(chunk.frame["raw_record"][0]) == {
        "customer_id": "C1",
        "name": "Acme",
        "created_at": "2024-01-05",
    }
    assert chunk.frame["name"].dtype == object
    assert chunk.rejected.empty and chunk.warnings == []


def test_gbk_export_with_chinese_headers_is_decoded_and_mapped(tmp_path: Path):
    path = tmp_path / "c.csv"
    text = "客户编号,客户名称,客户类型,创建时间\nC1,华东贸易有限公司,公司,2024-01-05\n"
    path.write_bytes(text.encode("gbk"))
    chunk = single(path, CUSTOMERS)
    row = chunk.frame.iloc[0]
    assert (row["customer_id"], row["name"], row["customer_type"]) == (
        "C1",
        "华东贸易有限公司",
        "公司",
    )
    assert json.loads(row["raw_record"])["客户名称"] == "华东贸易有限公司"


def test_utf8_bom_does_not_stick_to_the_first_header(tmp_path: Path):
    path = tmp_path / "c.csv"
    path.write_bytes("\ufeffcustomer_id,created_at\nC1,2024-01-05\n".encode())
    chunk = single(path, CUSTOMERS)
    assert chunk.frame["customer_id"].tolist() == ["C1"]
    assert chunk.warnings == []


def test_headers_match_ignoring_case_spaces_and_full_width(tmp_path: Path):
    path = tmp_path / "c.csv"
    path.write_text(
        " Customer_ID ,ＣＲＥＡＴＥＤ_ＡＴ,Customer Type\nC1,2024-01-05,person\n", "utf-8"
    )
    chunk = single(path, CUSTOMERS)
    assert chunk.frame[["customer_id", "created_at", "customer_type"]].iloc[0].tolist() == [
        "C1",
        "2024-01-05",
        "person",
    ]


def test_ambiguous_chinese_headers_resolve_per_entity(tmp_path: Path):
    interactions = tmp_path / "i.csv"
    interactions.write_text("互动编号,时间,渠道,方向,类型\nI1,2024-01-05,电话,呼入,投诉\n", "utf-8")
    row = single(interactions, INTERACTIONS).frame.iloc[0]
    assert (row["occurred_at"], row["kind"], row["channel"]) == ("2024-01-05", "投诉", "电话")

    payments = tmp_path / "p.csv"
    payments.write_text("付款编号,订单编号,付款时间,金额\nP1,O1,2024-01-05,10\n", "utf-8")
    assert single(payments, PAYMENTS).frame["amount"].tolist() == ["10"]

    # 类型 means kind only for interactions: for customers it is an unknown column.
    customers = tmp_path / "c.csv"
    customers.write_text("客户编号,创建时间,类型\nC1,2024-01-05,x\n", "utf-8")
    chunk = single(customers, CUSTOMERS)
    assert "kind" not in chunk.frame.columns
    assert chunk.warnings == ["c.csv: column '类型' is not part of customers; ignored"]


def test_two_headers_meaning_one_column_fail_the_source(tmp_path: Path):
    path = tmp_path / "c.csv"
    path.write_text("客户编号,customer_id,created_at\nC1,C1,2024-01-05\n", "utf-8")
    with pytest.raises(SourceError, match=r"^c\.csv: columns '客户编号' and 'customer_id'"):
        read_all(path, CUSTOMERS)


def test_user_aliases_file_is_merged_over_the_defaults(tmp_path: Path):
    extra = tmp_path / "my_aliases.yaml"
    extra.write_text(
        "headers:\n  customers:\n    Kundennummer: customer_id\nvalues:\n  customer_type:\n    firma: company\n",
        "utf-8",
    )
    aliases = load_aliases(extra)
    assert aliases.header_target("customers", "kundennummer") == "customer_id"
    assert aliases.header_target("customers", "客户编号") == "customer_id"  # defaults kept
    assert aliases.value_map("customer_type")["firma"] == "company"
    assert aliases.value_map("customer_type")["公司"] == "company"

    path = tmp_path / "c.csv"
    path.write_text("Kundennummer,created_at\nC9,2024-01-05\n", "utf-8")
    assert single(path, CUSTOMERS, aliases).frame["customer_id"].tolist() == ["C9"]


def test_large_file_streams_in_chunks_with_running_row_numbers(tmp_path: Path):
    path = tmp_path / "c.csv"
    rows = "".join(f"C{i},2024-01-05\n" for i in range(1, 6))
    # a header with a blank name: row-wise chunks of chunk_rows
    path.write_text("customer_id,created_at,\n" + rows.replace("\n", ",\n"), "utf-8")
    chunks = read_all(path, CUSTOMERS, chunk_rows=2)
    assert [len(c.frame) for c in chunks] == [2, 2, 1]
    assert pd.concat([c.frame for c in chunks])["row_number"].tolist() == [1, 2, 3, 4, 5]


def test_csv_with_distinct_names_streams_text_batches_of_several_chunks(tmp_path: Path):
    """Such rows go to the fast lane as text batches (TEXT_BATCH_CHUNKS × chunk_rows rows);
    rows with a wrong field count or a NUL byte come beside them as rejected rows, worded as
    the row-wise path words them."""
    path = tmp_path / "c.csv"
    rows = [f"C{i},2024-01-05" for i in range(1, 13)]
    rows[3] = "C4,2024-01-05,extra"
    rows[10] = "C11,2024-01-\x0005"
    path.write_text("客户编号,created_at\n" + "\n".join(rows) + "\n", "utf-8")
    chunks = list(read_file(path, CUSTOMERS, ALIASES, display_name="c.csv", chunk_rows=2))
    batches = [c for c in chunks if isinstance(c, TextBatch)]
    assert [len(b) for b in batches] == [2 * TEXT_BATCH_CHUNKS - 1, 1]
    assert np.concatenate([b.row_numbers for b in batches]).tolist() == [
        1, 2, 3, 5, 6, 7, 8, 9, 10, 12
    ]  # fmt: skip
    assert batches[0].names == ["客户编号", "created_at"]
    rejected = pd.concat([c.rejected for c in chunks if isinstance(c, RawChunk)])
    assert rejected["row_number"].tolist() == [4, 11]
    assert rejected["rule"].tolist() == ["field_count", "nul"]
    assert rejected["reason"].iloc[1] == "created_at: value contains a NUL byte (rule: nul)"
    assert json.loads(rejected["raw_record"].iloc[1]) == {
        "客户编号": "C11",
        "created_at": "2024-01-\x0005",
    }


def test_tab_separated_export_is_read(tmp_path: Path):
    path = tmp_path / "c.csv"
    path.write_text("customer_id\tcreated_at\nC1\t2024-01-05\n", "utf-8")
    assert single(path, CUSTOMERS).frame["created_at"].tolist() == ["2024-01-05"]


def test_jsonl_numbers_become_text_and_row_number_is_the_line(tmp_path: Path):
    path = tmp_path / "o.jsonl"
    lines = [
        {
            "order_id": "O1",
            "customer_id": "C1",
            "ordered_at": "2024-01-05",
            "amount": 12.5,
            "status": "completed",
        },
        None,  # a blank line: skipped, but line numbers still count it
        {
            "order_id": "O2",
            "customer_id": 7,
            "ordered_at": "2024-01-06",
            "amount": 3,
            "status": "pending",
        },
    ]
    path.write_text("".join((json.dumps(x) if x else "") + "\n" for x in lines), "utf-8")
    chunk = single(path, ORDERS)
    assert chunk.frame["row_number"].tolist() == [1, 3]
    assert chunk.frame["amount"].tolist() == ["12.5", "3"]
    assert chunk.frame["customer_id"].tolist() == ["C1", "7"]
    assert json.loads(chunk.frame["raw_record"][1])["customer_id"] == 7


def test_jsonl_objects_come_as_text_batches_keeping_each_line_as_read(tmp_path: Path):
    """The fast lane's input: one text column per entity column (the first non-null of a key
    and its alias), the line text as raw_record; lines the reader rejects stay a plain chunk."""
    path = tmp_path / "i.jsonl"
    lines = [
        '{"interaction_id": "I1", "customer_id": "C1", "occurred_at": "2024-01-05",'
        ' "channel": "phone", "direction": "inbound", "satisfaction": 4, "notes": "x"}',
        "not json",
        '{"互动编号": "I2", "满意度": null, "satisfaction": 5, "occurred_at": "2024-01-06",'
        ' "channel": "微信",   "customer_id": "C2"}',
        '{"interaction_id": "I3", "customer_id": {"id": 1}, "occurred_at": "2024-01-06"}',
        "",
        '{"interaction_id": "I4", "customer_id": "C\\u0000", "occurred_at": "2024-01-06"}',
        '{"occurred_at": "2024-01-07", "interaction_id": "I5", "满意度": 3, "satisfaction": 1}',
    ]
    path.write_text("\n".join(lines) + "\n", "utf-8")
    chunks = list(read_file(path, INTERACTIONS, ALIASES, display_name="i.jsonl", chunk_rows=3))
    batches = [c for c in chunks if isinstance(c, TextBatch)]
    rejects = pd.concat([c.rejected for c in chunks if isinstance(c, RawChunk)])
    assert rejects["row_number"].tolist() == [2, 4, 6]
    assert rejects["rule"].tolist() == ["parse", "type", "nul"]
    assert rejects["raw_record"].tolist() == [lines[1], lines[3], lines[5]]
    assert [b.row_numbers.tolist() for b in batches] == [[1, 3], [7]]
    first = batches[0]
    assert first.names == list(INTERACTIONS.column_names)
    column = {name: text.to_pylist() for name, text in zip(first.names, first.texts, strict=True)}
    assert column["interaction_id"] == ["I1", "I2"]
    assert column["satisfaction"] == ["4", "5"]  # a null alias does not hide the later key
    assert column["channel"] == ["phone", "微信"]  # values are mapped later, by the validator
    assert column["contact_email"] == [None, None]
    assert first.raw_records.to_pylist() == [lines[0], lines[2]]
    assert batches[1].texts[first.names.index("satisfaction")].to_pylist() == ["3"]  # first wins
    assert batches[1].raw_records.to_pylist() == [lines[6]]
    # the rows the fast lane leaves keep the line as raw_record
    left = first.take(np.array([1]))
    assert left.frame["raw_record"].tolist() == [lines[2]]
    assert left.frame["row_number"].tolist() == [3]


def test_parquet_typed_columns_are_read_as_text(tmp_path: Path):
    path = tmp_path / "o.parquet"
    table = pa.table(
        {
            "order_id": ["O1"],
            "customer_id": ["C1"],
            "ordered_at": pa.array([datetime(2024, 1, 5, 10, 0)], pa.timestamp("us")),
            "amount": pa.array([Decimal("12.50")], pa.decimal128(18, 2)),
            "status": ["completed"],
        }
    )
    pq.write_table(table, path)
    row = single(path, ORDERS).frame.iloc[0]
    assert row["amount"] == "12.50"
    assert row["ordered_at"].startswith("2024-01-05 10:00:00")
    assert row["row_number"] == 1


def test_database_frame_is_normalised_without_row_numbers():
    frame = pd.DataFrame(
        {
            "ORDER_ID": ["O1"],
            "customer_id": ["C1"],
            "ordered_at": [datetime(2024, 1, 5, 10, 0)],
            "amount": [Decimal("12.50")],
            "status": ["completed"],
            "note": ["x"],
        }
    )
    chunk = normalise_frame(frame, ORDERS, ALIASES, display_name="db:orders")
    row = chunk.frame.iloc[0]
    assert (row["order_id"], row["ordered_at"], row["amount"]) == (
        "O1",
        "2024-01-05T10:00:00",
        "12.50",
    )
    assert pd.isna(row["row_number"])
    assert json.loads(row["raw_record"])["ORDER_ID"] == "O1"
    assert chunk.warnings == ["db:orders: column 'note' is not part of orders; ignored"]


def test_database_frame_missing_required_column_names_the_table():
    frame = pd.DataFrame({"order_id": ["O1"], "customer_id": ["C1"]})
    with pytest.raises(SourceError, match=r"^db:orders: required column 'ordered_at' is missing"):
        normalise_frame(frame, ORDERS, ALIASES, display_name="db:orders")


def test_unsupported_extension_is_a_source_error(tmp_path: Path):
    path = tmp_path / "c.xlsx"
    path.write_bytes(b"PK\x03\x04")
    with pytest.raises(SourceError, match=r"^c\.xlsx: unsupported file type"):
        read_all(path, CUSTOMERS)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_csv_text_batches_hold_what_the_row_wise_path_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
):
    """A messy export read as text batches (then made rows, as the exact lane does) and read
    row-wise give the same values, row numbers, raw records and rejected rows."""
    import csv
    import random

    from crm.ingest import readers

    rng = random.Random(seed)
    pool = ["C1", "", "林伟", 'a "quoted", name', "back\\slash", "line\nbreak", " edge ",
            "\u3000", "nul\x00byte", "2024-01-05", "是", "1,000", "\r", "tab\there"]  # fmt: skip
    path = tmp_path / "export.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["客户编号", "name", "employees", "is_key_account", "created_at", "remark"])
        for _ in range(400):
            row = [rng.choice(pool) for _ in range(6)]
            if rng.random() < 0.05:
                row = row[: rng.randrange(6)]
            elif rng.random() < 0.05:
                row = row + [rng.choice(["", "", "extra"])] * rng.randrange(1, 3)
            if rng.random() < 0.03:
                row = [""] * 6  # blank line
            out.writerow(row)

    def rows_of(chunks: list[RawChunk]) -> tuple[pd.DataFrame, pd.DataFrame]:
        frame = pd.concat([c.frame for c in chunks]).sort_values("row_number")
        rejected = pd.concat([c.rejected for c in chunks]).sort_values("row_number")
        return frame.reset_index(drop=True), rejected.reset_index(drop=True)

    batched = list(read_file(path, CUSTOMERS, ALIASES, display_name="e.csv", chunk_rows=7))
    assert any(isinstance(c, TextBatch) for c in batched)
    as_rows = rows_of(read_all(path, CUSTOMERS, chunk_rows=7))
    monkeypatch.setattr(readers, "_csv_batchable", lambda header: False)
    row_wise = list(read_file(path, CUSTOMERS, ALIASES, display_name="e.csv", chunk_rows=7))
    assert not any(isinstance(c, TextBatch) for c in row_wise)
    expected = rows_of(row_wise)
    assert len(expected[0]) > 150 and len(expected[1]) > 50  # both kinds, in numbers
    pd.testing.assert_frame_equal(as_rows[0], expected[0])
    pd.testing.assert_frame_equal(as_rows[1], expected[1])


@pytest.mark.parametrize(("seed", "messy"), [(1, True), (2, True), (3, True), (4, False)])
def test_jsonl_objects_of_known_key_orders_read_as_each_object_alone_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int, messy: bool
):
    """Objects whose key order was seen before are appended by their layout, their values made
    text per column when the batch is built. Read with and without that shortcut (every object
    through `_add_json_object`), a call-centre log gives the same chunks: values, row numbers,
    lines, rejected rows, warnings and their order. A messy log has broken lines, nested values
    and NULs in most chunks; a clean one has chunks with no rejected line at all."""
    import random

    from crm.ingest import readers

    rng = random.Random(seed)
    keys = ["interaction_id", "customer_id", "occurred_at", "channel", "satisfaction", "nps",
            "互动编号", "满意度", "notes", "Customer ID"]  # fmt: skip
    values = ["I1", "C1", "", " edge ", "a [bracket]", "{brace}", "nul\x00", "林伟", None, 0, -0,
              7, 2**70, 1.5, 1e16, 0.1, -2.5e-7, True, False, float("nan"), float("inf"),
              {"id": 1}, [1, 2], [], "2024-01-05 10:00:00"]  # fmt: skip
    if not messy:
        values = [v for v in values if not isinstance(v, dict | list) and v != "nul\x00"]
    orders = [rng.sample(keys, rng.randrange(2, 7)) for _ in range(6)]
    lines = []
    for number in range(600):
        roll = rng.random()
        if messy and roll < 0.03:
            lines.append(rng.choice(["not json", "[1, 2]", "", '{"a": 1', "\ufeff\ufeff{}"]))
            continue
        order = rng.choice(orders) if roll < 0.9 else rng.sample(keys, rng.randrange(1, 5))
        obj = {key: rng.choice(values) for key in order}
        obj.setdefault("interaction_id", f"I{number}")
        for required in INTERACTIONS.required:  # else the file fails as a whole
            obj.setdefault(required, "inbound" if required == "direction" else "x")
        text = json.dumps(obj, ensure_ascii=rng.random() < 0.5)
        lines.append(("  " if rng.random() < 0.05 else "") + text)
    path = tmp_path / "log.jsonl"
    path.write_text("\ufeff" + "\n".join(lines) + "\n", "utf-8")

    def chunks() -> list[tuple]:
        read = read_file(path, INTERACTIONS, ALIASES, display_name="log.jsonl", chunk_rows=40)
        out = []
        for chunk in read:
            if isinstance(chunk, TextBatch):
                out.append(
                    (
                        "batch",
                        chunk.names,
                        [text.to_pylist() for text in chunk.texts],
                        chunk.row_numbers.tolist(),
                        chunk.raw_records.to_pylist(),
                        chunk.warnings,
                    )
                )
            else:
                out.append(
                    (
                        "chunk",
                        chunk.frame.to_dict("list"),
                        chunk.rejected.to_dict("list"),
                        chunk.warnings,
                    )
                )
        return out

    by_layout = chunks()
    monkeypatch.setattr(readers._JsonKeys, "layout", lambda self, keys: None)
    one_by_one = chunks()
    assert by_layout == one_by_one
    batched = [c for c in by_layout if c[0] == "batch"]
    rejected = sum(len(c[2]["row_number"]) for c in by_layout if c[0] == "chunk")
    texts = {v for c in batched for column in c[2] for v in column}
    assert sum(len(c[3]) for c in batched) > 300  # accepted and rejected rows, in numbers
    assert rejected > 50 if messy else rejected == 0
    assert {"true", "1e+16", "NaN", "1180591620717411303424", "-2.5e-07"} <= texts
