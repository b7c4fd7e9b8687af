"""A small, hand-made source world for end-to-end runs (as_of 2026-06-30, Asia/Shanghai).

Every number asserted about it in the tests is derived by hand in the test's comments.
"""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path

AS_OF = "2026-06-30"

REPS = [
    # rep_id, name, email, manager_email, team, active
    ("R1", "王芳", "wang.fang@example.com", "boss.li@example.com", "华南", "true"),
    ("R2", "赵强", "zhao.qiang@example.com", "boss.chen@example.com", "华东", "false"),
    ("R3", "孙丽", "sun.li@example.com", "", "华北", "false"),
]

CUSTOMERS = [
    # customer_id, name, customer_type, industry, region, province, city, email, phone,
    # owner_rep_id, is_key_account, created_at
    (
        "C001",
        "广州某某贸易有限公司",
        "company",
        "零售",
        "",
        "广东省",
        "广州",
        "buyer@gzmm.cn",
        "020-12345678",
        "R1",
        "是",
        "2024-01-05 10:00:00",
    ),
    (
        "C002",
        "张三",
        "person",
        "",
        "",
        "上海",
        "上海",
        "zhangsan@example.com",
        "13900001111",
        "R2",
        "否",
        "2025-02-01",
    ),
    (
        "C003",
        "Acme Inc",
        "company",
        " 制造业 ",
        "",
        "California",
        "LA",
        "",
        "",
        "",
        "",
        "2025-03-01",
    ),
    ("C004", "李四", "person", "", "", "", "", "", "", "R3", "", "2026-05-20"),
    (
        "C005",
        "深圳某某科技",
        "company",
        "互联网",
        "华南",
        "",
        "深圳",
        "Foo@Example.com",
        "13800138000",
        "R9",
        "",
        "2025-06-01",
    ),
]

ORDERS = [
    # order_id, customer_id, ordered_at (local), amount, discount_amount, currency, status,
    # channel, product_category, updated_at
    (
        "O1",
        "C001",
        "2025-12-01 09:00:00",
        1000.00,
        0,
        "CNY",
        "completed",
        "online",
        "A",
        "2025-12-01 09:00:00",
    ),
    (
        "O2",
        "C001",
        "2026-03-01 09:00:00",
        2000.00,
        100,
        "CNY",
        "completed",
        "online",
        "A",
        "2026-03-01 09:00:00",
    ),
    (
        "O3",
        "C001",
        "2026-03-01 15:00:00",
        500.00,
        0,
        "CNY",
        "completed",
        "online",
        "B",
        "2026-03-01 15:00:00",
    ),
    (
        "O4",
        "C001",
        "2026-06-01 09:00:00",
        3000.00,
        0,
        "CNY",
        "completed",
        "online",
        "A",
        "2026-06-01 09:00:00",
    ),
    (
        "O5",
        "C001",
        "2026-06-10 09:00:00",
        800.00,
        0,
        "CNY",
        "cancelled",
        "online",
        "A",
        "2026-06-10 09:00:00",
    ),
    (
        "O6",
        "C002",
        "2025-06-15 12:00:00",
        300.00,
        30,
        "CNY",
        "completed",
        "store",
        "B",
        "2025-06-15 12:00:00",
    ),
    (
        "O7",
        "C002",
        "2026-05-30 23:30:00",
        200.00,
        0,
        "CNY",
        "completed",
        "store",
        "B",
        "2026-05-30 23:30:00",
    ),
    (
        "O8",
        "C003",
        "2025-09-01 10:00:00",
        5000.00,
        0,
        "CNY",
        "completed",
        "sales",
        "C",
        "2025-09-01 10:00:00",
    ),
    (
        "O9",
        "C005",
        "2026-06-20 10:00:00",
        700.00,
        0,
        "CNY",
        "refunded",
        "online",
        "A",
        "2026-06-20 10:00:00",
    ),
    (
        "O10",
        "C999",
        "2026-06-01 10:00:00",
        100.00,
        0,
        "CNY",
        "completed",
        "online",
        "A",
        "2026-06-01 10:00:00",
    ),
    (
        "O11",
        "C005",
        "2026-07-05 10:00:00",
        900.00,
        0,
        "CNY",
        "completed",
        "online",
        "A",
        "2026-07-05 10:00:00",
    ),
]

PAYMENTS = [
    ("P1", "O1", "2025-12-10 10:00:00", 1000.00, "2025-12-10 10:00:00"),
    ("P2", "O2", "2026-03-20 10:00:00", 1900.00, "2026-03-20 10:00:00"),
    ("P3", "O6", "2025-06-16 10:00:00", 270.00, "2025-06-16 10:00:00"),
    ("P4", "O404", "2026-06-16 10:00:00", 10.00, "2026-06-16 10:00:00"),
    ("P5", "O4", "2026-06-25 10:00:00", 3000.00, "2026-06-25 10:00:00"),
]

INTERACTIONS_HEADER = [
    "interaction_id",
    "customer_id",
    "contact_email",
    "contact_phone",
    "occurred_at",
    "channel",
    "direction",
    "kind",
    "rep_id",
    "satisfaction",
    "nps",
]
INTERACTIONS = [
    ("I1", "C001", "", "", "2026-06-15 10:00", "visit", "outbound", "visit", "R1", "", ""),
    (
        "I2",
        "",
        " FOO@example.com ",
        "",
        "2026-06-16 10:00",
        "email",
        "inbound",
        "inquiry",
        "",
        "4",
        "",
    ),
    (
        "I3",
        "",
        "",
        "+86 138-0013-8000",
        "2026-06-17 10:00",
        "phone",
        "inbound",
        "complaint",
        "",
        "2",
        "",
    ),
    (
        "I4",
        "",
        "nobody@example.com",
        "",
        "2026-06-18 10:00",
        "phone",
        "inbound",
        "inquiry",
        "",
        "",
        "",
    ),
    ("I5", "C002", "", "", "2026-06-01 10:00", "survey", "inbound", "survey", "", "", "9"),
    ("I6", "C002", "", "", "2026-06-02 10:00", "wechat", "inbound", "complaint", "", "3", ""),
    ("I7", "C001", "", "", "2026-06-20 10:00", "phone", "inbound", "complaint", "", "2", ""),
    ("I8", "C001", "", "", "2026-06-21 10:00", "ticket", "inbound", "complaint", "", "1", ""),
]


def _write_csv(path: Path, header: list[str], rows, encoding: str = "utf-8") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding=encoding) as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def build_world(root: Path) -> dict[str, str]:
    """Writes landing files and a SQLite source under root; returns the env vars of a run."""
    landing = root / "landing"
    _write_csv(
        landing / "sales_reps" / "reps.csv",
        ["rep_id", "name", "email", "manager_email", "team", "active"],
        REPS,
    )
    # Customers as a Chinese Excel export: GBK, Chinese headers.
    _write_csv(
        landing / "customers" / "客户导出.csv",
        [
            "客户编号",
            "客户名称",
            "客户类型",
            "行业",
            "区域",
            "省份",
            "城市",
            "邮箱",
            "手机",
            "负责人",
            "is_key_account",
            "创建时间",
        ],
        CUSTOMERS,
        encoding="gbk",
    )
    _write_csv(landing / "interactions" / "calls.csv", INTERACTIONS_HEADER, INTERACTIONS)
    db = root / "source" / "shop.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(db)
    con.execute(
        "CREATE TABLE orders (order_id TEXT PRIMARY KEY, customer_id TEXT, ordered_at TEXT, "
        "amount REAL, discount_amount REAL, currency TEXT, status TEXT, channel TEXT, "
        "product_category TEXT, updated_at TEXT)"
    )
    con.execute(
        "CREATE TABLE payments (payment_id TEXT PRIMARY KEY, order_id TEXT, paid_at TEXT, "
        "amount REAL, updated_at TEXT)"
    )
    con.executemany("INSERT INTO orders VALUES (?,?,?,?,?,?,?,?,?,?)", ORDERS)
    con.executemany("INSERT INTO payments VALUES (?,?,?,?,?)", PAYMENTS)
    con.commit()
    con.close()
    return {
        "CRM_LANDING_DIR": str(landing),
        "CRM_SOURCE_DB_URL": f"sqlite:///{db}",
        "CRM_WAREHOUSE": str(root / "wh" / "warehouse.duckdb"),
        "CRM_PUBLISH_DIR": str(root / "published"),
        "CRM_MAIL_DIR": str(root / "mail"),
        "CRM_AS_OF": AS_OF,
        "CRM_TIMEZONE": "Asia/Shanghai",
    }
