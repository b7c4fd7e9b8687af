"""Integrity properties read only the rows added since the table last passed (quality/verified.py).

The reference point everywhere is the whole-table definition (`integrity_properties(entity)`
without a scope): whatever the incremental read reports must equal what reading the whole
table reports, on every run, including runs after a failure, after a release of waiting
orphans and after rows were deleted.
"""

from __future__ import annotations

import random

import duckdb
import pytest

from crm.rules import default_rules
from crm.schemas import ENTITY_BY_NAME
from crm.warehouse import ensure_schema
from quality.suites import integrity_facts, integrity_properties, validate_entity
from tests.unit.test_suites import TZ, customer, insert_raw, order, payment

INTEGRITY = 1  # position of the integrity suite's result in EntityValidation.results


def whole_table_counts(con: duckdb.DuckDBPyConnection, entity: str) -> dict[str, int]:
    facts, _ = integrity_facts(con, integrity_properties(ENTITY_BY_NAME[entity]))
    return {name: int(facts[name][0]) for name in facts.columns}


def check(con, entity: str, run: str, **kwargs) -> tuple[str, dict[str, int], dict[str, list]]:
    """Validate like the raw check does; (scope read, violation counts, examples) of integrity."""
    validation = validate_entity(con, entity, default_rules(), run, TZ, **kwargs)
    result = validation.results[INTEGRITY]
    counts, examples = {}, {}
    for r in result.results:
        column = r.expectation_config.kwargs["column"]
        # one row of violation counts: a failing expectation lists the count as unexpected
        counts[column] = 0 if r.success else int(r.result["partial_unexpected_list"][0])
        examples[column] = r.expectation_config.meta["examples"]
    return validation.integrity_scope, counts, examples


def verified_world(con) -> None:
    insert_raw(con, "customers", [customer("C1"), customer("C2")], run_id="r0")
    insert_raw(con, "orders", [order("O1", "C1"), order("O2", "C2")], run_id="r0")
    assert check(con, "customers", "r0")[0] == "not verified before"
    assert check(con, "orders", "r0")[0] == "not verified before"


def test_after_a_pass_only_added_rows_are_read_and_a_bad_one_is_still_caught(con):
    verified_world(con)
    top = con.execute("SELECT max(_load_seq) FROM raw.orders").fetchone()[0]
    insert_raw(con, "orders", [order("O3", "C404")], run_id="r1")
    scope, counts, examples = check(con, "orders", "r1")
    assert scope == f"rows added after load_seq {top}"
    assert counts["customer_id_not_in_customers"] == 1
    assert examples["customer_id_not_in_customers"] == ["O3 -> C404"]
    assert counts == whole_table_counts(con, "orders")


def test_a_failure_keeps_the_watermark_so_the_next_run_reports_it_again(con):
    verified_world(con)
    top = con.execute("SELECT max(_load_seq) FROM raw.customers").fetchone()[0]
    # a second version of C1 without _load_seq: its latest version is ambiguous
    insert_raw(con, "customers", [customer("C1", _load_seq=None)], run_id="r1")
    _, counts, _ = check(con, "customers", "r1")
    assert counts["customer_id_not_unique_after_latest_wins"] == 1
    insert_raw(con, "customers", [customer("C3")], run_id="r2")  # a good load the next day
    scope, counts, examples = check(con, "customers", "r2")
    assert scope == f"rows added after load_seq {top}"  # not advanced by the failed run
    assert counts["customer_id_not_unique_after_latest_wins"] == 1
    assert examples["customer_id_not_unique_after_latest_wins"] == ["C1"]
    # fixed by hand: the next run passes and moves the watermark past C3
    con.execute("DELETE FROM raw.customers WHERE _load_seq IS NULL")
    _, counts, _ = check(con, "customers", "r3")
    assert set(counts.values()) == {0}
    newest = con.execute("SELECT max(_load_seq) FROM raw.customers").fetchone()[0]
    assert check(con, "customers", "r4")[0] == f"rows added after load_seq {newest}"


def test_a_released_orphan_with_an_old_load_seq_is_read(con):
    verified_world(con)
    # released rows keep their original _load_seq, below the watermark
    insert_raw(con, "orders", [order("O0", "C404", _load_seq=0)], run_id="r1")
    con.execute("INSERT INTO meta.released_rows VALUES ('orders', 0, 'r1', now())")
    scope, counts, examples = check(con, "orders", "r1")
    assert scope.startswith("rows added after")
    assert examples["customer_id_not_in_customers"] == ["O0 -> C404"]
    assert counts == whole_table_counts(con, "orders")


def test_a_row_back_dated_without_a_release_makes_the_check_read_the_whole_table(con):
    verified_world(con)
    insert_raw(con, "orders", [order("O0", "C404", _load_seq=0)], run_id="r1")
    scope, counts, _ = check(con, "orders", "r1")
    assert scope.startswith("rows at or below load_seq")
    assert counts["customer_id_not_in_customers"] == 1


def test_a_parent_deleted_under_its_children_makes_the_child_check_read_the_whole_table(con):
    verified_world(con)
    con.execute("DELETE FROM raw.customers WHERE customer_id = 'C2'")  # e.g. an erasure
    scope, counts, examples = check(con, "orders", "r1")
    assert scope == "customers rows changed since raw.orders was verified"
    assert examples["customer_id_not_in_customers"] == ["O2 -> C2"]


def test_changed_definitions_and_forced_runs_read_the_whole_table(con):
    verified_world(con)
    con.execute("UPDATE meta.verified_through SET definition_hash = 'from older code'")
    assert check(con, "orders", "r1")[0] == "the checks changed since the last verification"
    assert check(con, "orders", "r2")[0].startswith("rows added after")
    assert check(con, "orders", "r3", whole_table=True)[0] == "forced run"


def repair(con) -> None:
    """What an operator would do about failures: delete the rows that break a property."""
    con.execute("DELETE FROM raw.customers WHERE _load_seq IS NULL")
    con.execute("DELETE FROM raw.orders WHERE _load_seq IS NULL")
    con.execute(
        "DELETE FROM raw.orders WHERE customer_id NOT IN (SELECT customer_id FROM raw.customers)"
    )
    con.execute("DELETE FROM raw.payments WHERE order_id NOT IN (SELECT order_id FROM raw.orders)")


@pytest.mark.parametrize("seed", range(4))
def test_incremental_counts_equal_whole_table_counts_over_random_runs(tmp_path, seed):
    """Random daily loads of customers, orders and payments — duplicates, rows without
    _load_seq, unknown parents, released orphans, deletions, repairs — checked run after run:
    the incremental read reports exactly what the whole-table read reports."""
    rng = random.Random(seed)
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    ensure_schema(con)
    seq = iter(range(100, 10_000))

    def load_seq() -> int | None:
        return None if rng.random() < 0.05 else next(seq)

    def some(prefix: str, known: int, unknown: int = 2) -> str:
        return f"{prefix}{rng.randint(1, known + unknown if rng.random() < 0.1 else known)}"

    scopes = []
    for day in range(12):
        run = f"r{day}"
        for _ in range(rng.randint(0, 4)):
            row = customer(some("C", 8, 0), _load_seq=load_seq())
            insert_raw(con, "customers", [row], run)
        for _ in range(rng.randint(0, 5)):
            row = order(some("O", 12, 0), some("C", 8), _load_seq=load_seq())
            insert_raw(con, "orders", [row], run)
        for _ in range(rng.randint(0, 5)):
            row = payment(some("P", 12, 0), some("O", 12), _load_seq=next(seq))
            insert_raw(con, "payments", [row], run)
        if rng.random() < 0.3:  # an orphan released with its original, older _load_seq
            old = rng.randint(0, 99)
            insert_raw(con, "orders", [order("O_R", some("C", 8), _load_seq=old)], run)
            con.execute("INSERT INTO meta.released_rows VALUES ('orders', ?, ?, now())", [old, run])
        if rng.random() < 0.1:
            con.execute("DELETE FROM raw.customers WHERE customer_id = ?", [some("C", 8, 0)])
        if rng.random() < 0.3:
            repair(con)
        for entity in ("customers", "orders", "payments"):
            scope, counts, _ = check(con, entity, run)
            scopes.append(scope)
            assert counts == whole_table_counts(con, entity), (day, entity, scope)
    con.close()
    assert any(s.startswith("rows added after") for s in scopes)  # the incremental path ran
