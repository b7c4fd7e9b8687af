"""Source entities of contract.md §1: columns, types, required fields and allowed values.

One declaration serves the file readers (header matching), the row validator (types, lists,
ranges), the loader (raw table DDL) and the demo generator, so the contract is written once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ColumnType = Literal["text", "timestamp", "decimal", "integer", "boolean"]

# DuckDB types of the typed raw tables (`raw.<entity>`), per column type.
DUCKDB_TYPES: dict[str, str] = {
    "text": "VARCHAR",
    "timestamp": "TIMESTAMP",  # UTC, naive
    "decimal": "DECIMAL(18,2)",
    "integer": "BIGINT",
    "boolean": "BOOLEAN",
}


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType = "text"
    required: bool = False
    allowed: tuple[str, ...] | None = None  # after aliases, lower-case
    min_value: float | None = None
    max_value: float | None = None
    default: str | None = None  # applied to an empty value before validation


@dataclass(frozen=True)
class Entity:
    name: str  # landing sub-folder and raw table name
    id_column: str
    columns: tuple[Column, ...]
    db_table: str | None = None  # table in the operational database, when it may come from there
    # (parent entity, column): rows whose parent is unknown are orphans, retried every run
    parent: tuple[str, str] | None = None
    orphan_reason: str | None = None
    freshness_column: str | None = None  # newest value decides staleness
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


CUSTOMER_TYPES = ("company", "person")
ORDER_STATUSES = ("completed", "cancelled", "refunded", "pending")
CHANNELS = ("phone", "email", "visit", "meeting", "wechat", "chat", "ticket", "survey")
DIRECTIONS = ("inbound", "outbound")
KINDS = ("inquiry", "follow_up", "complaint", "support", "survey", "marketing", "visit")

CUSTOMERS = Entity(
    name="customers",
    id_column="customer_id",
    columns=(
        Column("customer_id", required=True),
        Column("name"),
        Column("customer_type", allowed=CUSTOMER_TYPES),
        Column("industry"),
        Column("region"),
        Column("province"),
        Column("city"),
        Column("employees", "integer", min_value=0),
        Column("email"),
        Column("phone"),
        Column("owner_rep_id"),
        Column("source_channel"),
        Column("is_key_account", "boolean", default="false"),
        Column("created_at", "timestamp", required=True),
    ),
    freshness_column="created_at",
)

SALES_REPS = Entity(
    name="sales_reps",
    id_column="rep_id",
    columns=(
        Column("rep_id", required=True),
        Column("name", required=True),
        Column("email", required=True),
        Column("manager_email"),
        Column("team"),
        Column("active", "boolean", default="true"),
    ),
)

ORDERS = Entity(
    name="orders",
    id_column="order_id",
    db_table="orders",
    columns=(
        Column("order_id", required=True),
        Column("customer_id", required=True),
        Column("ordered_at", "timestamp", required=True),
        Column("amount", "decimal", required=True, min_value=0),
        Column("discount_amount", "decimal", min_value=0, default="0"),
        Column("currency", default="CNY"),
        Column("status", required=True, allowed=ORDER_STATUSES),
        Column("channel"),
        Column("product_category"),
    ),
    parent=("customers", "customer_id"),
    orphan_reason="unknown_customer",
    freshness_column="ordered_at",
)

PAYMENTS = Entity(
    name="payments",
    id_column="payment_id",
    db_table="payments",
    columns=(
        Column("payment_id", required=True),
        Column("order_id", required=True),
        Column("paid_at", "timestamp", required=True),
        Column("amount", "decimal", required=True, min_value=0),
    ),
    parent=("orders", "order_id"),
    orphan_reason="unknown_order",
    freshness_column="paid_at",
)

INTERACTIONS = Entity(
    name="interactions",
    id_column="interaction_id",
    columns=(
        Column("interaction_id", required=True),
        Column("customer_id"),
        Column("contact_email"),
        Column("contact_phone"),
        Column("occurred_at", "timestamp", required=True),
        Column("channel", required=True, allowed=CHANNELS),
        Column("direction", required=True, allowed=DIRECTIONS),
        Column("kind", allowed=KINDS),
        Column("rep_id"),
        Column("satisfaction", "integer", min_value=1, max_value=5),
        Column("nps", "integer", min_value=0, max_value=10),
    ),
    parent=("customers", "customer_id"),
    orphan_reason="unmatched_contact",
    freshness_column="occurred_at",
)

# Load order matters: parents before children, so orphans can be decided in the same run.
ENTITIES: tuple[Entity, ...] = (CUSTOMERS, SALES_REPS, ORDERS, PAYMENTS, INTERACTIONS)
ENTITY_BY_NAME: dict[str, Entity] = {e.name: e for e in ENTITIES}

# Load metadata columns on every raw table (contract: raw history is kept, latest wins).
META_COLUMNS: tuple[tuple[str, str], ...] = (
    ("_load_seq", "BIGINT"),  # global load order: files in path order, rows in file order, DB last
    ("_source", "VARCHAR"),  # file path relative to the landing folder, or db:<table>
    ("_row_number", "BIGINT"),  # 1-based data row (JSONL: line); null for database rows
    ("_row_hash", "VARCHAR"),  # content hash, to tell duplicates from changed rows
    ("_run_id", "VARCHAR"),
    ("_loaded_at", "TIMESTAMP"),
)
