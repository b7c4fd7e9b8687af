"""A corpus of bad landing files and what each must do (contract.md §1).

Every case writes one file into tmp_path and expects either a SourceError whose message starts
with the file's display name, or exact rejected row numbers with their rule. For every row-level
case, valid + rejected rows = the data rows in the file (blank rows are not data rows).
Load date is fixed at 2026-01-15 (one day of tolerance → 2026-01-16 is the last allowed day).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crm.ingest.aliases import load_aliases
from crm.ingest.errors import SourceError
from crm.ingest.readers import TextBatch, read_file
from crm.ingest.validate import ValidationContext, validate_chunk
from crm.rules import default_rules
from crm.schemas import CUSTOMERS, ENTITY_BY_NAME

ALIASES = load_aliases()
CONTEXT = ValidationContext(default_rules().quality, "Asia/Shanghai", date(2026, 1, 15), ALIASES)
ORDER_HEADER = "order_id,customer_id,ordered_at,amount,currency,status"
INTERACTION_HEADER = "interaction_id,customer_id,occurred_at,channel,direction,satisfaction,nps"


@dataclass
class Case:
    name: str
    entity: str
    file_name: str
    content: bytes | Callable[[Path], None]
    error: str | None = None  # expected SourceError message (after "<entity>/<file>: ")
    data_rows: int = 0
    rejected: dict[int, str] = field(default_factory=dict)  # row_number → rule
    warning: str | None = None  # a warning that must be reported (substring)
    check: Callable[[pd.DataFrame], None] | None = None  # extra assertions on valid rows
    silent: bool = False  # no warning at all may be reported


def csv(text: str, encoding: str = "utf-8") -> bytes:
    return text.encode(encoding)


def orders_csv(*rows: str) -> bytes:
    return csv("\n".join([ORDER_HEADER, *rows]) + "\n")


def interactions_csv(*rows: str) -> bytes:
    return csv("\n".join([INTERACTION_HEADER, *rows]) + "\n")


def write_wrong_type_parquet(path: Path) -> None:
    table = pa.table(
        {
            "order_id": ["O1"],
            "customer_id": ["C1"],
            "ordered_at": ["2024-01-05"],
            "amount": pa.array([datetime(2024, 1, 5)], pa.timestamp("us")),
            "status": ["completed"],
        }
    )
    pq.write_table(table, path)


def expect_values(column: str, expected: list) -> Callable[[pd.DataFrame], None]:
    def check(valid: pd.DataFrame) -> None:
        assert valid[column].tolist() == expected

    return check


def expect_huge_name(valid: pd.DataFrame) -> None:
    assert len(valid["name"][0]) == 1_000_000


CASES = [
    Case(
        "gbk_with_chinese_headers_and_values",
        "customers",
        "gbk.csv",
        csv(
            "客户编号,客户名称,客户类型,创建时间\nC1,华东贸易,公司,2024-01-05\nC2,李雷,个人,2024/01/06\n",
            "gbk",
        ),
        data_rows=2,
        check=expect_values("customer_type", ["company", "person"]),
    ),
    Case(
        "utf8_bom",
        "customers",
        "bom.csv",
        b"\xef\xbb\xbf" + csv("客户编号,创建时间\nC1,2024-01-05\n"),
        data_rows=1,
        check=expect_values("customer_id", ["C1"]),
    ),
    Case(
        "png_renamed_csv",
        "customers",
        "logo.csv",
        b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8,
        error="binary content (a PNG image), not .csv text",
    ),
    Case(
        "nul_bytes_throughout",
        "customers",
        "nul.csv",
        b"c\x00u\x00s\x00t\x00\n\x00" * 200,
        error="binary content (NUL bytes throughout)",
    ),
    Case(
        "undecodable_bytes",
        "customers",
        "bad.csv",
        b"customer_id,created_at\nC1\xff\xfe\x80,2024-01-05\n",
        error="not decodable as UTF-8, GBK or GB18030",
    ),
    Case(
        "utf16_export",
        "customers",
        "utf16.csv",
        "customer_id,created_at\nC1,2024-01-05\n".encode("utf-16"),
        error="not decodable as UTF-8, GBK or GB18030 (it is UTF-16 text)",
    ),
    Case(
        "missing_required_column",
        "customers",
        "x.csv",
        csv("客户编号,客户名称\nC1,华东贸易\n"),
        error="required column 'created_at' is missing (found: 客户编号, 客户名称)",
    ),
    Case(
        "extra_unknown_columns",
        "customers",
        "extra.csv",
        csv("customer_id,created_at,备注,foo\nC1,2024-01-05,x,y\n"),
        data_rows=1,
        warning="customers/extra.csv: column 'foo' is not part of customers; ignored",
    ),
    Case(
        "duplicate_ids_with_conflicting_content",
        "orders",
        "dup.csv",
        orders_csv("O1,C1,2024-01-05,100,CNY,pending", "O1,C1,2024-01-05,90,CNY,completed"),
        data_rows=2,
        check=expect_values("amount", [100.0, 90.0]),  # both returned: dedupe is the loader's
    ),
    Case(
        "negative_amount",
        "orders",
        "neg.csv",
        orders_csv("O1,C1,2024-01-05,100,CNY,completed", "O2,C1,2024-01-05,-5.00,CNY,completed"),
        data_rows=2,
        rejected={2: "min"},
    ),
    Case(
        "unparseable_date",
        "orders",
        "date.csv",
        orders_csv("O1,C1,yesterday,100,CNY,completed", "O2,C1,2024-01-05,1,CNY,completed"),
        data_rows=2,
        rejected={1: "type"},
    ),
    Case(
        "future_date",
        "orders",
        "future.csv",
        orders_csv("O1,C1,2026-01-16 23:00,1,CNY,completed", "O2,C1,2026-01-17,1,CNY,completed"),
        data_rows=2,
        rejected={2: "future"},
    ),
    Case(
        "date_before_1990",
        "orders",
        "old.csv",
        orders_csv("O1,C1,1989-12-31,1,CNY,completed", "O2,C1,1990-01-01,1,CNY,completed"),
        data_rows=2,
        rejected={1: "too_early"},
    ),
    Case(
        "unknown_enum_value",
        "orders",
        "enum.csv",
        orders_csv("O1,C1,2024-01-05,1,CNY,shipped", "O2,C1,2024-01-05,1,CNY,已退款"),
        data_rows=2,
        rejected={1: "allowed"},
    ),
    Case(
        "empty_file",
        "orders",
        "empty.csv",
        b"",
        data_rows=0,
        warning="orders/empty.csv: file is empty; 0 rows loaded",
    ),
    Case(
        "header_only",
        "orders",
        "header.csv",
        csv(ORDER_HEADER + "\n"),
        data_rows=0,
        warning="orders/header.csv: file has a header but no data rows; 0 rows loaded",
    ),
    Case(
        "truncated_line_too_few_fields",
        "orders",
        "short.csv",
        orders_csv("O1,C1,2024-01-05,1,CNY,completed", "O2,C1,2024-01"),
        data_rows=2,
        rejected={2: "field_count"},
    ),
    Case(
        "too_many_fields",
        "orders",
        "long.csv",
        orders_csv("O1,C1,2024-01-05,1,CNY,completed,surprise", "O2,C1,2024-01-05,1,CNY,completed"),
        data_rows=2,
        rejected={1: "field_count"},
    ),
    Case(
        "quoted_newlines",
        "customers",
        "multiline.csv",
        csv(
            'customer_id,name,created_at\nC1,"第一行\n第二行",2024-01-05\nC2,"a, ""b""",2024-01-05\n'
        ),
        data_rows=2,
        check=expect_values("name", ["第一行\n第二行", 'a, "b"']),
    ),
    Case(
        "huge_field_1mb",
        "customers",
        "huge.csv",
        csv("customer_id,name,created_at\nC1," + "长" * 1_000_000 + ",2024-01-05\n"),
        data_rows=1,
        check=expect_huge_name,
    ),
    Case(
        "sql_injection_text_kept_verbatim",
        "customers",
        "sql.csv",
        csv('customer_id,name,created_at\nC1,"Robert\'); DROP TABLE customers;--",2024-01-05\n'),
        data_rows=1,
        check=expect_values("name", ["Robert'); DROP TABLE customers;--"]),
    ),
    Case(
        "nul_byte_in_one_row",
        "customers",
        "nulrow.csv",
        csv(
            "customer_id,name,created_at\nC1,a,2024-01-05\nC2,b\x00c,2024-01-05\nC3,d,2024-01-05\n"
        ),
        data_rows=3,
        rejected={2: "nul"},
    ),
    Case(
        "wrong_currency",
        "orders",
        "usd.csv",
        orders_csv("O1,C1,2024-01-05,1,USD,completed", "O2,C1,2024-01-05,1,人民币,completed"),
        data_rows=2,
        rejected={1: "currency"},
    ),
    Case(
        "satisfaction_6",
        "interactions",
        "sat.csv",
        interactions_csv("I1,C1,2024-01-05,phone,inbound,6,", "I2,C1,2024-01-05,phone,inbound,5,"),
        data_rows=2,
        rejected={1: "range"},
    ),
    Case(
        "nps_minus_1",
        "interactions",
        "nps.csv",
        interactions_csv("I1,C1,2024-01-05,电话,呼入,,-1", "I2,C1,2024-01-05,电话,呼入,,0"),
        data_rows=2,
        rejected={1: "range"},
    ),
    Case(
        "amounts_with_yen_and_thousands",
        "orders",
        "yen.csv",
        orders_csv(
            'O1,C1,2024-01-05,"¥1,234.50",CNY,completed',
            'O2,C1,2024-01-05,"￥1,234.5",CNY,completed',
            'O3,C1,2024-01-05,"1,234",CNY,completed',
            "O4,C1,2024-01-05,RMB 12,CNY,completed",
        ),
        data_rows=4,
        check=expect_values("amount", [1234.5, 1234.5, 1234.0, 12.0]),
    ),
    Case(
        "full_width_digits",
        "orders",
        "fullwidth.csv",
        orders_csv("Ｏ１,Ｃ１,２０２４-０１-０５,１２３．５,CNY,completed"),
        data_rows=1,
        check=expect_values("amount", [123.5]),
    ),
    Case(
        "excel_trailing_empty_rows_and_columns",
        "orders",
        "excel.csv",
        csv(
            ORDER_HEADER + ",,\n"
            "O1,C1,2024-01-05,1,CNY,completed,,\n"
            "O2,C1,2024-01-05,2,CNY,completed,,\n"
            ",,,,,,,\n"
            ",,,,,,,\n"
        ),
        data_rows=2,
        check=expect_values("order_id", ["O1", "O2"]),
        silent=True,
    ),
    Case(
        "required_value_missing",
        "orders",
        "noid.csv",
        orders_csv(",C1,2024-01-05,1,CNY,completed", "O2,C1,2024-01-05,1,CNY,completed"),
        data_rows=2,
        rejected={1: "required"},
    ),
    Case(
        "unknown_boolean",
        "customers",
        "bool.csv",
        csv("customer_id,is_key_account,created_at\nC1,maybe,2024-01-05\nC2,是,2024-01-05\n"),
        data_rows=2,
        rejected={1: "type"},
    ),
    Case(
        "jsonl_with_broken_lines",
        "orders",
        "orders.jsonl",
        csv(
            json.dumps(
                {
                    "order_id": "O1",
                    "customer_id": "C1",
                    "ordered_at": "2024-01-05",
                    "amount": 1,
                    "status": "completed",
                }
            )
            + "\n"
            '{"order_id": "O2", "customer_id": \n'
            "[1, 2]\n"
            "\n"
            + json.dumps(
                {
                    "订单编号": "O3",
                    "客户编号": "C1",
                    "下单时间": "2024-01-05",
                    "订单金额": "¥5",
                    "订单状态": "已完成",
                },
                ensure_ascii=False,
            )
            + "\n"
        ),
        data_rows=4,  # the blank line 4 is not a data row
        rejected={2: "parse", 3: "parse"},
    ),
    Case(
        "parquet_with_wrong_typed_column",
        "orders",
        "orders.parquet",
        write_wrong_type_parquet,
        error="column 'amount' has Parquet type timestamp[us], expected a number or text",
    ),
    Case(
        "csv_that_is_really_parquet",
        "orders",
        "renamed.csv",
        b"PAR1" + bytes(range(256)),
        error="binary content (a Parquet file), not .csv text",
    ),
]


def load(path: Path, entity_name: str) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Read and validate one file the way the loader does: chunk by chunk."""
    entity = ENTITY_BY_NAME[entity_name]
    display = f"{entity_name}/{path.name}"
    valid_parts, rejected_parts, warnings = [], [], []
    for raw in read_file(path, entity, ALIASES, display_name=display, chunk_rows=2):
        if isinstance(raw, TextBatch):  # all of it through the exact validator (the fast lane
            raw = raw.take(np.arange(len(raw)))  # gives the same: tests/unit/test_fastlane.py)
        valid, rejected = validate_chunk(raw.frame, entity, CONTEXT)
        valid_parts.append(valid)
        rejected_parts += [raw.rejected, rejected]
        warnings += raw.warnings
    valid = pd.concat(valid_parts, ignore_index=True)
    rejected = pd.concat(
        [r for r in rejected_parts if len(r)] or [rejected_parts[0]], ignore_index=True
    )
    return valid, rejected, warnings


def write_case(case: Case, tmp_path: Path) -> Path:
    path = tmp_path / case.file_name
    if callable(case.content):
        case.content(path)
    else:
        path.write_bytes(case.content)
    return path


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 25
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, tmp_path: Path):
    path = write_case(case, tmp_path)
    display = f"{case.entity}/{case.file_name}"
    if case.error is not None:
        with pytest.raises(SourceError) as raised:
            load(path, case.entity)
        assert str(raised.value) == f"{display}: {case.error}"
        return
    valid, rejected, warnings = load(path, case.entity)
    assert len(valid) + len(rejected) == case.data_rows
    assert (
        dict(zip(rejected["row_number"].tolist(), rejected["rule"].tolist(), strict=True))
        == case.rejected
    )
    assert rejected["reason"].str.contains(r"\(rule: ", regex=True).all()
    if case.warning is not None:
        assert case.warning in warnings
    if case.silent:
        assert warnings == []
    if case.check is not None:
        case.check(valid)


def test_source_error_message_is_one_sentence_naming_the_file(tmp_path: Path):
    path = tmp_path / "x.csv"
    path.write_text("客户编号,客户名称\nC1,a\n", "utf-8")
    with pytest.raises(SourceError) as raised:
        list(read_file(path, CUSTOMERS, ALIASES, display_name="customers/x.csv"))
    message = str(raised.value)
    assert (
        message
        == "customers/x.csv: required column 'created_at' is missing (found: 客户编号, 客户名称)"
    )
    assert "\n" not in message
