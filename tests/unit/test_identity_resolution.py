"""Identity resolution of interactions across runs (contract §1): customer_id when known, else
the one customer whose normalised e-mail, else phone, matches; a contact shared by several
customers matches none; an unmatched interaction waits as an orphan and loads when its customer
arrives.

The loader builds the customer side of the match once per run and reuses it for every file and
for the orphan release (crm/ingest/loader.py `_ensure_match_keys`); these runs change the
customers between and within runs, so keys built on an older state of raw.customers would give
other answers than the rule."""

from __future__ import annotations

from pathlib import Path

import duckdb

from tests.unit.landing_loads import load_landing

CUSTOMERS = "customer_id,name,email,phone,created_at\n"
INTERACTIONS = (
    "interaction_id,customer_id,contact_email,contact_phone,occurred_at,channel,direction\n"
)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _resolved(warehouse: Path) -> dict[str, tuple[str | None, str | None]]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = con.execute(
            "SELECT interaction_id, resolved_customer_id, match_method FROM raw.interactions "
            "UNION ALL SELECT interaction_id, NULL, 'waiting' FROM raw.interactions_orphans"
        ).fetchall()
    return {i: (c, m) for i, c, m in rows}


def test_matches_follow_the_customers_loaded_so_far(tmp_path: Path) -> None:
    landing, warehouse = tmp_path / "landing", tmp_path / "w.duckdb"
    _write(
        landing / "customers" / "a.csv",
        CUSTOMERS
        + "C1,Acme,Sales@Acme.cn,13800138000,2024-01-05\n"
        + "C2,Beta,shared@x.cn,,2024-01-05\n"
        + "C3,Gamma,shared@x.cn,13900139000,2024-01-05\n",
    )
    _write(
        landing / "interactions" / "day1.csv",
        INTERACTIONS
        + "I1,,  sales@acme.cn ,,2024-02-01 10:00:00,phone,inbound\n"  # e-mail, normalised
        + "I2,,,+86 139-0013-9000,2024-02-01 10:00:00,phone,inbound\n"  # phone with country code
        + "I3,,shared@x.cn,,2024-02-01 10:00:00,phone,inbound\n"  # shared by C2 and C3: none
        + "I4,,new@delta.cn,,2024-02-01 10:00:00,phone,inbound\n"  # nobody yet: waits
        + "I5,C1,shared@x.cn,,2024-02-01 10:00:00,phone,inbound\n"  # customer_id wins
        + "I6,C9,sales@acme.cn,,2024-02-01 10:00:00,phone,inbound\n",  # unknown id: no fallback
    )
    load_landing(landing, warehouse, "r1")
    first = _resolved(warehouse)
    assert first["I1"] == ("C1", "email")
    assert first["I2"] == ("C3", "phone")
    assert first["I3"] == (None, "waiting")
    assert first["I4"] == (None, "waiting")
    assert first["I5"] == ("C1", "customer_id")
    assert first["I6"] == (None, "waiting")

    # Run 2: Delta arrives with I4's e-mail, and a second customer now shares C1's phone.
    _write(
        landing / "customers" / "b.csv",
        CUSTOMERS
        + "C4,Delta,New@Delta.cn,,2024-03-01\n"
        + "C5,Epsilon,,138 0013 8000,2024-03-01\n",
    )
    _write(
        landing / "interactions" / "day2.csv",
        INTERACTIONS
        + "I7,,,13800138000,2024-03-02 10:00:00,visit,outbound\n"  # phone now shared: none
        + "I8,,new@delta.cn,,2024-03-02 10:00:00,visit,outbound\n",
    )
    loader = load_landing(landing, warehouse, "r2")
    second = _resolved(warehouse)
    assert loader.report.orphans_released == {"interactions": 1}
    with duckdb.connect(str(warehouse), read_only=True) as con:  # what dbt staging reads
        released = con.execute(
            "SELECT r.entity, r.run_id, i.interaction_id FROM meta.released_rows r "
            "JOIN raw.interactions i ON i._load_seq = r.load_seq"
        ).fetchall()
    assert released == [("interactions", "r2", "I4")]
    assert second["I4"] == ("C4", "email")  # released in run 2, against run 2's customers
    assert second["I8"] == ("C4", "email")
    assert second["I7"] == (None, "waiting")
    assert second["I3"] == (None, "waiting") and second["I6"] == (None, "waiting")
    # loaded rows keep the match of their load
    assert second["I1"] == ("C1", "email") and second["I2"] == ("C3", "phone")
