"""Churn alert planning (domain.md §5): candidates, routing in every branch, the cc rule, the
suggested action's priority, cooldown (13 vs 14 days), escalation medium -> high, deterministic
ids. The outbox is a temporary DuckDB file, as in production.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from crm.alerts import alert_id_for, create_alerts, plan_alerts, route_alert, suggest_action
from crm.outbox import ensure_outbox, read_outbox, suppress_pending
from crm.rules import default_rules

POOL = "sales-pool@example.com"  # domain.md §5 default 公海池 address
DAY0 = date(2026, 3, 2)

REPS = pd.DataFrame(
    [
        # rep_id, name, email, manager_email, team, active
        ("R_ACTIVE", "张三", "zhang@example.com", "boss@example.com", "east", True),
        ("R_INACTIVE_MGR", "李四", "li@example.com", "manager2@example.com", "east", False),
        ("R_INACTIVE_ALONE", "王五", "wang@example.com", None, "east", False),
        ("R_NO_MANAGER", "赵六", "zhao@example.com", None, "south", True),
        ("R_ACTIVE_UNKNOWN", "钱七", "qian@example.com", "boss@example.com", "south", None),
    ],
    columns=["rep_id", "name", "email", "manager_email", "team", "active"],
)


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    ensure_outbox(connection)
    yield connection
    connection.close()


def risk_row(customer_id: str, level: str, score: int, signals: str = "overdue") -> dict:
    return {
        "customer_id": customer_id,
        "as_of": DAY0,
        "risk_score": score,
        "risk_level": level,
        "p_alive": 0.4,
        "expected_orders_90d": 0.3,
        "signals": signals,
        "reasons": "reason line",
    }


def customer_row(
    customer_id: str,
    key: bool = False,
    owner: str | None = "R_ACTIVE",
    price_sensitive: bool | None = None,
) -> dict:
    return {
        "customer_id": customer_id,
        "name": f"客户{customer_id}",
        "owner_rep_id": owner,
        "stage": "active",
        "value_tier": "high",
        "is_key_account": key,
        "is_price_sensitive": price_sensitive,
    }


# --- routing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("owner", "recipient"),
    [
        ("R_ACTIVE", "zhang@example.com"),  # rep exists and is active
        ("R_ACTIVE_UNKNOWN", "qian@example.com"),  # active unknown -> default true
        ("R_INACTIVE_MGR", "manager2@example.com"),  # inactive -> the rep's manager
        ("R_INACTIVE_ALONE", POOL),  # inactive without manager -> pool
        ("R_GHOST", POOL),  # unknown rep id -> pool
        (None, POOL),  # no owner -> pool
    ],
)
def test_routing_branches(owner: str | None, recipient: str) -> None:
    route = route_alert(owner, False, REPS, default_rules())
    assert route.recipient == recipient
    assert route.cc is None  # not a key account: never a cc


@pytest.mark.parametrize(
    ("owner", "recipient", "cc"),
    [
        ("R_ACTIVE", "zhang@example.com", "boss@example.com"),  # manager copied
        ("R_INACTIVE_MGR", "manager2@example.com", None),  # manager already is the recipient
        ("R_NO_MANAGER", "zhao@example.com", None),  # no manager to copy
        ("R_GHOST", POOL, None),
        (None, POOL, None),
    ],
)
def test_key_account_cc_rule(owner: str | None, recipient: str, cc: str | None) -> None:
    route = route_alert(owner, True, REPS, default_rules())
    assert (route.recipient, route.cc) == (recipient, cc)


# --- suggested action ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "signals", "price_sensitive", "action"),
    [
        (True, "overdue,complaints", True, "executive_visit"),  # key account wins over all
        (False, "overdue,complaints", True, "service_recovery"),  # complaints before coupon
        (False, "overdue", True, "coupon"),
        (False, "overdue", None, "follow_up_call"),  # null counts as not price sensitive
        (False, "overdue", False, "follow_up_call"),
        (False, "low_satisfaction", False, "follow_up_call"),  # other signals: a plain call
    ],
)
def test_action_priority(
    key: bool, signals: str, price_sensitive: bool | None, action: str
) -> None:
    assert suggest_action(key, signals, price_sensitive) == action


def test_planned_alert_carries_bilingual_action_label_and_route() -> None:
    risk = pd.DataFrame([risk_row("C1", "high", 60, "overdue,complaints")])
    customers = pd.DataFrame([customer_row("C1", key=True)])
    alerts = plan_alerts(risk, customers, REPS, read_outbox_empty(), DAY0, default_rules())
    alert = alerts.iloc[0]
    assert alert["suggested_action"] == "executive_visit"
    assert alert["suggested_action_label"] == "安排高层拜访 / executive visit"
    assert (alert["recipient"], alert["cc"]) == ("zhang@example.com", "boss@example.com")
    assert (alert["status"], alert["attempts"]) == ("pending", 0)
    assert alert["customer_name"] == "客户C1"


def test_candidates_sharing_an_owner_are_each_routed_by_their_own_key_account_flag() -> None:
    """Planning routes once per (owner, key account) pair; every alert must still carry the
    route of its own customer, as `route_alert` gives it for that customer alone."""
    owners = ["R_ACTIVE", " R_ACTIVE ", "R_INACTIVE_MGR", "R_NO_MANAGER", None, "R_GONE", ""]
    risk, customers, expected = [], [], {}
    for number in range(28):
        customer_id = f"C{number:02d}"
        owner, key = owners[number % len(owners)], number % 4 < 2
        risk.append(risk_row(customer_id, "high", 70))
        customers.append(customer_row(customer_id, key=key, owner=owner))
        route = route_alert(owner, key, REPS, default_rules())
        expected[customer_id] = (route.recipient, route.cc)
    alerts = plan_alerts(
        pd.DataFrame(risk),
        pd.DataFrame(customers),
        REPS,
        read_outbox_empty(),
        DAY0,
        default_rules(),
    )
    got = {  # a missing cc reads back as NaN from the frame's string column
        row.customer_id: (row.recipient, row.cc if isinstance(row.cc, str) else None)
        for row in alerts.itertuples()
    }
    assert got == expected
    # the pairs above cover a cc (key account of an active rep) and no cc for the same owner
    assert got["C00"] == ("zhang@example.com", "boss@example.com")
    assert got["C14"] == ("zhang@example.com", None)
    assert got["C04"] == (POOL, None) and got["C05"] == (POOL, None)


def read_outbox_empty() -> pd.DataFrame:
    return pd.DataFrame(columns=["alert_id", "customer_id", "as_of", "risk_level", "status"])


# --- candidates ----------------------------------------------------------------------------


def test_candidates_high_for_all_medium_only_for_key_accounts() -> None:
    risk = pd.DataFrame(
        [
            risk_row("HIGH", "high", 55),
            risk_row("MEDIUM", "medium", 35),
            risk_row("MEDIUM_KEY", "medium", 35),
            risk_row("LOW_KEY", "low", 10),
        ]
    )
    customers = pd.DataFrame(
        [
            customer_row("HIGH"),
            customer_row("MEDIUM"),
            customer_row("MEDIUM_KEY", key=True),
            customer_row("LOW_KEY", key=True),
        ]
    )
    alerts = plan_alerts(risk, customers, REPS, read_outbox_empty(), DAY0, default_rules())
    assert sorted(alerts["customer_id"]) == ["HIGH", "MEDIUM_KEY"]


# --- ids, reruns, cooldown, escalation -----------------------------------------------------


def test_alert_id_is_deterministic_per_customer_and_as_of() -> None:
    assert alert_id_for("C1", DAY0) == alert_id_for("C1", DAY0)
    assert alert_id_for("C1", DAY0) != alert_id_for("C1", DAY0 + timedelta(days=1))
    assert alert_id_for("C1", DAY0) != alert_id_for("C2", DAY0)


def test_same_inputs_give_same_ids_in_separate_warehouses(tmp_path: Path) -> None:
    risk = pd.DataFrame([risk_row("C1", "high", 60), risk_row("C2", "high", 70)])
    customers = pd.DataFrame([customer_row("C1"), customer_row("C2")])
    ids = []
    for name in ("a", "b"):
        with duckdb.connect(str(tmp_path / f"{name}.duckdb")) as connection:
            created = create_alerts(connection, risk, customers, REPS, DAY0, default_rules())
            ids.append(sorted(created["alert_id"]))
    assert ids[0] == ids[1]
    assert len(set(ids[0])) == 2


def run_day(
    con: duckdb.DuckDBPyConnection,
    day: date,
    levels: dict[str, str],
    key_accounts: frozenset[str] = frozenset(),
) -> list[str]:
    """Score the given customers at `day` and return who got a NEW alert."""
    scores = {"high": 60, "medium": 35, "low": 10}
    risk = pd.DataFrame([risk_row(c, lvl, scores[lvl]) for c, lvl in levels.items()])
    risk["as_of"] = day
    customers = pd.DataFrame([customer_row(c, key=c in key_accounts) for c in levels])
    created = create_alerts(con, risk, customers, REPS, day, default_rules(), run_id=str(day))
    return sorted(created["customer_id"])


def test_rerun_of_an_as_of_creates_nothing(con: duckdb.DuckDBPyConnection) -> None:
    assert run_day(con, DAY0, {"C1": "high"}) == ["C1"]
    assert run_day(con, DAY0, {"C1": "high"}) == []
    assert len(read_outbox(con)) == 1


def test_cooldown_13_days_blocks_14_days_does_not(con: duckdb.DuckDBPyConnection) -> None:
    assert run_day(con, DAY0, {"C1": "high"}) == ["C1"]
    # "in the last 14 days" = 0 <= as_of - previous < 14
    assert run_day(con, DAY0 + timedelta(days=13), {"C1": "high"}) == []
    assert run_day(con, DAY0 + timedelta(days=14), {"C1": "high"}) == ["C1"]


def test_escalation_medium_to_high_over_several_days(con: duckdb.DuckDBPyConnection) -> None:
    key = frozenset({"K1"})
    assert run_day(con, DAY0, {"K1": "medium"}, key) == ["K1"]  # day 0: medium key account
    assert run_day(con, DAY0 + timedelta(days=5), {"K1": "medium"}, key) == []  # same level
    assert run_day(con, DAY0 + timedelta(days=6), {"K1": "high"}, key) == ["K1"]  # level rose
    assert run_day(con, DAY0 + timedelta(days=7), {"K1": "high"}, key) == []  # no further rise
    # day 19: 13 days after the high alert of day 6 -> still blocked
    assert run_day(con, DAY0 + timedelta(days=19), {"K1": "high"}, key) == []
    # day 20: 14 days after day 6 and 20 after day 0 -> a new alert
    assert run_day(con, DAY0 + timedelta(days=20), {"K1": "high"}, key) == ["K1"]
    # day 21: medium after a high alert the day before -> not a rise
    assert run_day(con, DAY0 + timedelta(days=21), {"K1": "medium"}, key) == []


def test_suppressed_alert_does_not_block_a_later_real_one(
    con: duckdb.DuckDBPyConnection,
) -> None:
    assert run_day(con, DAY0, {"C1": "high"}) == ["C1"]
    assert suppress_pending(con, "orders source is stale", run_id="r1") == 1
    # the rerun of the suppressed as_of still creates nothing (its key exists) ...
    assert run_day(con, DAY0, {"C1": "high"}) == []
    # ... but the next day a real alert is raised
    assert run_day(con, DAY0 + timedelta(days=1), {"C1": "high"}) == ["C1"]


def test_failed_alert_does_not_block_a_later_one(con: duckdb.DuckDBPyConnection) -> None:
    assert run_day(con, DAY0, {"C1": "high"}) == ["C1"]
    con.execute("UPDATE marts.churn_alerts SET status = 'failed', attempts = 5")
    assert run_day(con, DAY0 + timedelta(days=2), {"C1": "high"}) == ["C1"]


def test_sent_alert_blocks_like_a_pending_one(con: duckdb.DuckDBPyConnection) -> None:
    assert run_day(con, DAY0, {"C1": "high"}) == ["C1"]
    con.execute("UPDATE marts.churn_alerts SET status = 'sent', attempts = 1")
    assert run_day(con, DAY0 + timedelta(days=3), {"C1": "high"}) == []


def test_a_later_alert_does_not_block_an_earlier_as_of(con: duckdb.DuckDBPyConnection) -> None:
    # A backfill run for an earlier date: as_of - previous < 0 is outside the window.
    assert run_day(con, DAY0 + timedelta(days=10), {"C1": "high"}) == ["C1"]
    assert run_day(con, DAY0, {"C1": "high"}) == ["C1"]


# --- cooldown for all candidates at once = the per-row rules --------------------------------


@pytest.mark.parametrize(("seed", "cooldown_days"), [(1, 14), (2, 14), (3, 1), (4, 0), (5, 30)])
def test_planner_agrees_with_the_per_row_rules_on_random_outboxes(
    tmp_path: Path, seed: int, cooldown_days: int
) -> None:
    """Random outboxes (every status, levels incl. an unknown one, alerts before, on and after
    as_of, reruns of as_of itself): `plan_alerts` on the whole outbox and `create_alerts`, which
    reads only the cooldown window from DuckDB, pick exactly the customers the frozen per-row
    rules pick (tests/unit/_legacy_alerts.py)."""
    import random

    from tests.unit._legacy_alerts import alerted_customers

    rng = random.Random(seed)
    base = default_rules()
    rules = base.model_copy(
        update={"alerts": base.alerts.model_copy(update={"cooldown_days": cooldown_days})}
    )
    as_of = DAY0 + timedelta(days=40)
    ids = [f"C{i:03d}" for i in range(300)]
    levels = ("low", "medium", "high")
    risk = pd.DataFrame([risk_row(c, rng.choice(levels), 50) for c in ids])
    customers = pd.DataFrame([customer_row(c, key=rng.random() < 0.3) for c in ids])
    history = []
    for customer_id in rng.sample(ids, 200):
        for _ in range(rng.randint(1, 4)):
            day = as_of + timedelta(days=rng.randint(-35, 3))
            history.append(
                {
                    "alert_id": alert_id_for(customer_id, day),
                    "customer_id": customer_id,
                    "as_of": day,
                    "risk_level": rng.choice((*levels, "unheard-of")),
                    "status": rng.choice(("pending", "sent", "failed", "suppressed")),
                }
            )
    outbox = pd.DataFrame(history).drop_duplicates("alert_id").reset_index(drop=True)
    expected = alerted_customers(risk, customers, outbox, as_of, rules)
    assert 0 < len(expected) < len(ids)  # some candidates pass, some are stopped

    planned = plan_alerts(risk, customers, REPS, outbox, as_of, rules)
    assert sorted(planned["customer_id"]) == expected

    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as connection:
        ensure_outbox(connection)
        connection.register("_history", outbox)
        connection.execute(
            """INSERT INTO marts.churn_alerts (alert_id, customer_id, as_of, risk_level,
                   risk_score, suggested_action, suggested_action_label, recipient, status,
                   attempts)
               SELECT alert_id, customer_id, as_of, risk_level, 50, 'follow_up_call', 'x',
                      'r@example.com', status, 0 FROM _history"""
        )
        created = create_alerts(connection, risk, customers, REPS, as_of, rules)
    assert sorted(created["customer_id"]) == expected


@pytest.mark.parametrize(
    "values",
    [
        pd.Series([True, False, True], dtype="bool"),
        pd.Series([True, None, False], dtype="boolean"),
        pd.Series([True, None, float("nan"), False, 1, 0, "no"], dtype="object"),
    ],
    ids=["bool", "nullable-boolean", "objects"],
)
def test_key_account_flags_are_flag_of_each_value_whatever_the_dtype(values: pd.Series) -> None:
    """The cast for boolean columns answers what `_flag` answers for each value (null = no)."""
    from crm.alerts import _flag, _flags

    assert _flags(values).tolist() == [_flag(v) for v in values]
    assert _flags(values).dtype == bool
