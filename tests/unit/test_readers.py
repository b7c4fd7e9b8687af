"""Readers: formats, encodings, header matching and aliases (contract.md §1 "Sources")."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crm.ingest.aliases import load_aliases
from crm.ingest.errors import SourceError
from crm.ingest.readers import RawChunk, normalise_frame, read_file
from crm.schemas import CUSTOMERS, INTERACTIONS, ORDERS, PAYMENTS

ALIASES = load_aliases()


def read_all(path: Path, entity, aliases=ALIASES, **kwargs) -> list[RawChunk]:
    return list(read_file(path, entity, aliases, display_name=path.name, **kwargs))


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
    path.write_text("customer_id,created_at\n" + rows, "utf-8")
    chunks = read_all(path, CUSTOMERS, chunk_rows=2)
    assert [len(c.frame) for c in chunks] == [2, 2, 1]
    assert pd.concat([c.frame for c in chunks])["row_number"].tolist() == [1, 2, 3, 4, 5]


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
