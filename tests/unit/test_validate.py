"""Row validation, one rule at a time (contract.md §1 "Validation of source rows").

Expected values are derived by hand: Asia/Shanghai is UTC+8 all year (no DST), so local
10:00 is 02:00 UTC; the load date is fixed at 2026-01-15 with the shipped tolerance of one day,
so the last accepted local day is 2026-01-16.
"""

from __future__ import annotations

from datetime import date, datetime

import pandas as pd
import pytest

from crm.ingest.aliases import load_aliases
from crm.ingest.validate import ValidationContext, validate_chunk
from crm.rules import default_rules
from crm.schemas import CUSTOMERS, INTERACTIONS, ORDERS, SALES_REPS

LOAD_DATE = date(2026, 1, 15)
ALIASES = load_aliases()


def context(timezone: str = "Asia/Shanghai") -> ValidationContext:
    return ValidationContext(default_rules().quality, timezone, LOAD_DATE, ALIASES)


def chunk(rows: list[dict[str, str | None]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, dtype=object)
    frame["row_number"] = pd.array(range(1, len(rows) + 1), dtype="Int64")
    frame["raw_record"] = [str(r) for r in rows]
    return frame


def order(**overrides: str | None) -> dict[str, str | None]:
    row = {
        "order_id": "O1",
        "customer_id": "C1",
        "ordered_at": "2024-01-05 10:00",
        "amount": "100",
        "status": "completed",
    }
    row.update(overrides)
    return row


def interaction(**overrides: str | None) -> dict[str, str | None]:
    row = {
        "interaction_id": "I1",
        "customer_id": "C1",
        "occurred_at": "2024-01-05 10:00",
        "channel": "phone",
        "direction": "inbound",
    }
    row.update(overrides)
    return row


def validate_orders(*rows, timezone: str = "Asia/Shanghai"):
    return validate_chunk(chunk(list(rows)), ORDERS, context(timezone))


def only_rejection(rejected: pd.DataFrame) -> dict:
    assert len(rejected) == 1
    return rejected.iloc[0].to_dict()


def test_valid_order_is_typed_with_defaults_filled():
    valid, rejected = validate_orders(order())
    assert rejected.empty
    assert list(valid.columns) == [*ORDERS.column_names, "row_number", "raw_record"]
    row = valid.iloc[0]
    assert row["ordered_at"] == pd.Timestamp("2024-01-05 02:00")  # 10:00 +08:00
    assert row["amount"] == 100.0
    assert row["discount_amount"] == 0.0  # default 0
    assert row["currency"] == "CNY"  # default business currency
    assert row["channel"] is None
    assert str(valid["ordered_at"].dtype) == "datetime64[us]"
    assert str(valid["amount"].dtype) == "float64"
    assert str(valid["row_number"].dtype) == "Int64"


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("¥1,234.50", 1234.50),
        ("￥1,234.5", 1234.50),
        ("1,234", 1234.0),
        ("RMB 12", 12.0),
        ("１２３．５", 123.5),  # full-width digits and point
        ("12元", 12.0),
        ("1.006", 1.01),  # rounded to 2 places
    ],
)
def test_amount_formats_of_chinese_exports_parse(written: str, expected: float):
    valid, rejected = validate_orders(order(amount=written))
    assert rejected.empty
    assert valid["amount"][0] == pytest.approx(expected)


def test_missing_required_value_is_rejected():
    valid, rejected = validate_orders(order(customer_id="  "))
    assert valid.empty
    assert only_rejection(rejected) | {"raw_record": None} == {
        "row_number": 1,
        "raw_record": None,
        "reason": "customer_id: value is missing (rule: required)",
        "rule": "required",
        "column": "customer_id",
    }


@pytest.mark.parametrize("written", ["12abc", "1,23", "--5", "¥"])
def test_unparseable_number_is_a_type_error(written: str):
    _, rejected = validate_orders(order(amount=written))
    rejection = only_rejection(rejected)
    assert rejection["rule"] == "type"
    assert rejection["reason"] == f"amount: '{written}' is not a number (rule: type)"


def test_negative_amount_is_below_min():
    _, rejected = validate_orders(order(amount="-5.00"))
    assert only_rejection(rejected)["reason"] == "amount: '-5.00' is below 0 (rule: min)"


def test_status_aliases_and_case_are_accepted_unknown_values_rejected():
    valid, rejected = validate_orders(
        order(order_id="O1", status="已完成"),
        order(order_id="O2", status=" Cancelled "),
        order(order_id="O3", status="shipped"),
    )
    assert valid["status"].tolist() == ["completed", "cancelled"]
    assert only_rejection(rejected)["reason"] == (
        "status: 'shipped' is not one of completed, cancelled, refunded, pending (rule: allowed)"
    )


@pytest.mark.parametrize("written", ["CNY", "cny", "RMB", "人民币", "¥", "￥"])
def test_business_currency_spellings_are_accepted(written: str):
    valid, rejected = validate_orders(order(currency=written))
    assert rejected.empty
    assert valid["currency"][0] == "CNY"


def test_other_currency_is_rejected():
    _, rejected = validate_orders(order(currency="USD"))
    rejection = only_rejection(rejected)
    assert rejection["rule"] == "currency"
    assert (
        rejection["reason"] == "currency: 'USD' is not the business currency CNY (rule: currency)"
    )


@pytest.mark.parametrize(
    ("written", "utc"),
    [
        ("2024-01-05T10:30:15", datetime(2024, 1, 5, 2, 30, 15)),
        ("2024-01-05T10:30:15.250Z", datetime(2024, 1, 5, 10, 30, 15, 250000)),
        ("2024-01-05T10:30+08:00", datetime(2024, 1, 5, 2, 30)),
        ("2024-01-05T10:30-0500", datetime(2024, 1, 5, 15, 30)),
        ("2024-01-05", datetime(2024, 1, 4, 16, 0)),  # local midnight = 16:00 UTC the day before
        ("2024-01-05 10:30", datetime(2024, 1, 5, 2, 30)),
        ("2024/1/5 10:30:00", datetime(2024, 1, 5, 2, 30)),
        ("2024/01/05", datetime(2024, 1, 4, 16, 0)),
        ("20240105", datetime(2024, 1, 4, 16, 0)),
    ],
)
def test_timestamp_formats_become_naive_utc(written: str, utc: datetime):
    valid, rejected = validate_orders(order(ordered_at=written))
    assert rejected.empty
    assert valid["ordered_at"][0] == pd.Timestamp(utc)


def test_naive_timestamps_are_dst_safe_in_the_configured_zone():
    # New York 2024: clocks jump 02:00→03:00 on 10 March and repeat 01:00–02:00 on 3 November.
    valid, _ = validate_orders(
        order(order_id="O1", ordered_at="2024-07-01 12:00"),  # EDT, UTC-4 → 16:00
        order(order_id="O2", ordered_at="2024-01-15 12:00"),  # EST, UTC-5 → 17:00
        order(order_id="O3", ordered_at="2024-03-10 02:30"),  # does not exist: shifted to 03:00 EDT
        order(order_id="O4", ordered_at="2024-11-03 01:30"),  # ambiguous: first (EDT) instant
        timezone="America/New_York",
    )
    assert valid["ordered_at"].tolist() == [
        pd.Timestamp("2024-07-01 16:00"),
        pd.Timestamp("2024-01-15 17:00"),
        pd.Timestamp("2024-03-10 07:00"),
        pd.Timestamp("2024-11-03 05:30"),
    ]


@pytest.mark.parametrize("written", ["yesterday", "2024-02-30", "2024-01-05 25:00", "05/01/2024"])
def test_unparseable_timestamp_is_a_type_error(written: str):
    _, rejected = validate_orders(order(ordered_at=written))
    rejection = only_rejection(rejected)
    assert (rejection["rule"], rejection["column"]) == ("type", "ordered_at")
    assert rejection["reason"].startswith(f"ordered_at: '{written}' is not a timestamp")


def test_timestamps_before_1990_are_too_early():
    valid, rejected = validate_orders(
        order(order_id="O1", ordered_at="1989-12-31 23:59"),
        order(order_id="O2", ordered_at="1990-01-01 00:00"),  # local day 1990-01-01: allowed
    )
    assert valid["order_id"].tolist() == ["O2"]
    assert only_rejection(rejected)["reason"] == (
        "ordered_at: '1989-12-31 23:59' is before 1990-01-01 (rule: too_early)"
    )


def test_timestamps_more_than_one_day_after_the_load_date_are_future():
    valid, rejected = validate_orders(
        order(order_id="O1", ordered_at="2026-01-16 23:59"),  # load date + 1: allowed
        order(order_id="O2", ordered_at="2026-01-17 00:00"),  # load date + 2: rejected
        order(order_id="O3", ordered_at="2026-01-16T16:30Z"),  # 2026-01-17 00:30 in Shanghai
    )
    assert valid["order_id"].tolist() == ["O1"]
    assert rejected["row_number"].tolist() == [2, 3]
    assert set(rejected["rule"]) == {"future"}
    assert rejected["reason"][0] == (
        "ordered_at: '2026-01-17 00:00' is after 2026-01-16 (load date 2026-01-15 + 1 day(s)) "
        "(rule: future)"
    )


def test_all_problems_of_a_row_are_listed_and_the_first_names_rule_and_column():
    _, rejected = validate_orders(order(order_id=None, amount="-1", status="x"))
    rejection = only_rejection(rejected)
    assert rejection["reason"] == (
        "order_id: value is missing (rule: required); amount: '-1' is below 0 (rule: min); "
        "status: 'x' is not one of completed, cancelled, refunded, pending (rule: allowed)"
    )
    assert (rejection["rule"], rejection["column"]) == ("required", "order_id")


@pytest.mark.parametrize(
    ("column", "written", "outcome"),
    [
        ("satisfaction", "1", "valid"),
        ("satisfaction", "5", "valid"),
        ("satisfaction", "6", "satisfaction: '6' is outside 1–5 (rule: range)"),
        ("satisfaction", "0", "satisfaction: '0' is outside 1–5 (rule: range)"),
        ("nps", "0", "valid"),
        ("nps", "10", "valid"),
        ("nps", "-1", "nps: '-1' is outside 0–10 (rule: range)"),
        ("nps", "11", "nps: '11' is outside 0–10 (rule: range)"),
        ("nps", "7.5", "nps: '7.5' is not a whole number (rule: type)"),
    ],
)
def test_survey_scores_must_be_in_range(column: str, written: str, outcome: str):
    valid, rejected = validate_chunk(
        chunk([interaction(**{column: written})]), INTERACTIONS, context()
    )
    if outcome == "valid":
        assert rejected.empty
        assert valid[column][0] == int(written)
    else:
        assert only_rejection(rejected)["reason"] == outcome


def test_interaction_enums_accept_chinese_values():
    row = interaction(channel="微信", direction="呼出", kind="跟进")
    valid, rejected = validate_chunk(chunk([row]), INTERACTIONS, context())
    assert rejected.empty
    assert valid[["channel", "direction", "kind"]].iloc[0].tolist() == [
        "wechat",
        "outbound",
        "follow_up",
    ]
    assert str(valid["satisfaction"].dtype) == "Int64"


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("true", True),
        ("T", True),
        ("Yes", True),
        ("y", True),
        ("1", True),
        ("是", True),
        ("FALSE", False),
        ("f", False),
        ("no", False),
        ("N", False),
        ("0", False),
        ("否", False),
        (None, True),
    ],  # active defaults to true
)
def test_booleans_accept_the_contract_spellings(written: str | None, expected: bool):
    row = {"rep_id": "R1", "name": "王伟", "email": "w@example.com", "active": written}
    valid, rejected = validate_chunk(chunk([row]), SALES_REPS, context())
    assert rejected.empty
    assert valid["active"][0] == expected
    assert str(valid["active"].dtype) == "boolean"


def test_unknown_boolean_is_a_type_error():
    row = {"customer_id": "C1", "created_at": "2024-01-05", "is_key_account": "maybe"}
    _, rejected = validate_chunk(chunk([row]), CUSTOMERS, context())
    assert only_rejection(rejected)["rule"] == "type"


def test_ids_and_contacts_are_nfkc_normalised_names_keep_their_characters():
    row = {
        "customer_id": " Ｃ００１ ",
        "name": "ＡＢＣ科技",
        "email": "ａ@example.com",
        "phone": "１３８００１３８０００",
        "customer_type": "企业",
        "employees": "１２",
        "created_at": "２０２４-01-05",
    }
    valid, rejected = validate_chunk(chunk([row]), CUSTOMERS, context())
    assert rejected.empty
    out = valid.iloc[0]
    assert (out["customer_id"], out["email"], out["phone"]) == (
        "C001",
        "a@example.com",
        "13800138000",
    )
    assert out["name"] == "ＡＢＣ科技"
    assert out["customer_type"] == "company"
    assert out["employees"] == 12
    assert out["is_key_account"] == False  # noqa: E712 - default false, boolean dtype


def test_empty_chunk_gives_empty_frames_with_all_columns():
    frame = pd.DataFrame({"row_number": pd.array([], dtype="Int64"), "raw_record": []})
    valid, rejected = validate_chunk(frame, ORDERS, context())
    assert list(valid.columns) == [*ORDERS.column_names, "row_number", "raw_record"]
    assert list(rejected.columns) == ["row_number", "raw_record", "reason", "rule", "column"]
    assert valid.empty and rejected.empty


def test_long_values_are_shortened_in_reasons_but_kept_in_raw_record():
    long_value = "9" * 100 + "x"
    frame = chunk([order(amount=long_value)])
    _, rejected = validate_chunk(frame, ORDERS, context())
    rejection = only_rejection(rejected)
    assert rejection["reason"] == f"amount: '{'9' * 60}…' is not a number (rule: type)"
    assert long_value in rejection["raw_record"]


def test_amounts_beyond_decimal_18_2_are_rejected_not_a_failed_source():
    """DECIMAL(18,2) holds up to 9,999,999,999,999,999.99: a larger amount used to overflow the
    cast into the raw table and fail the whole source."""
    valid, rejected = validate_orders(order(amount="1e16"), order(order_id="O2", amount="9999"))
    assert list(valid["order_id"]) == ["O2"]
    row = only_rejection(rejected)
    assert (row["rule"], row["column"]) == ("max", "amount")
    assert row["reason"].startswith("amount: '1e16' is too large")


def test_whole_numbers_too_large_for_the_warehouse_are_rejected():
    """'99999999999999999999' employees used to crash the float → Int64 conversion."""
    rows = [
        {"customer_id": "C1", "created_at": "2024-01-05", "employees": "99999999999999999999"},
        {"customer_id": "C2", "created_at": "2024-01-05", "employees": "120"},
    ]
    valid, rejected = validate_chunk(chunk(rows), CUSTOMERS, context())
    assert list(valid["employees"]) == [120]
    assert only_rejection(rejected)["rule"] == "max"
