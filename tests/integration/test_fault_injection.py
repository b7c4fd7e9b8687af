"""Crash safety of `python -m pipelines.run` (contract §4 and the loader's guarantees).

The promise under test: killing a run with SIGKILL at any step and running it again gives the
same outputs as a run that was never interrupted; a reader always finds the previous publication
(complete and readable) until a run finishes; no loaded row is lost or doubled; no staging
leftovers pile up in the publish folder.

How: one world is run once (publication P1) and copied twice. Both copies then receive the same
new files. Copy `reference` runs once, uninterrupted. Copy `crashed` is killed — the whole process
group, as a crash or an OOM-killed container would, so dbt dies with its parent — during
raw_sources (between reading a file and committing it), during dbt_models (after a mart table was
rebuilt), during classification (after the stage history was written) and during
published_tables, then run to completion. Runs are subprocesses so a kill is a real kill; the
trigger is a line of the run's own log.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from tests.integration.world import build_world

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]

# Wall-clock and run-identity columns: they differ between any two runs by design.
VOLATILE_COLUMNS = frozenset(
    {
        "run_id",
        "loaded_at",
        "rejected_at",
        "sent_at",
        "created_at",
        "created_run_id",
        "last_attempt_at",
        "last_run_id",
    }
)
# Per-run logs: a killed run that got past ingest (or a check) legitimately adds its own rows,
# and their counts describe that run's delivery.
PER_RUN_TABLES = frozenset({"quality.load_audit", "quality.check_results"})

NEW_CUSTOMERS = (
    "customer_id,name,customer_type,industry,region,province,city,email,phone,owner_rep_id,"
    "is_key_account,created_at\n"
    "C006,杭州新客户有限公司,company,零售,,浙江省,杭州,new@hz.cn,13700000006,R1,否,2026-05-01\n"
)
NEW_ORDERS = (
    "order_id,customer_id,ordered_at,amount,discount_amount,currency,status,channel,"
    "product_category\n"
    "O12,C006,2026-06-15 10:00:00,400.00,0,CNY,completed,online,A\n"
    "O13,C777,2026-06-16 10:00:00,50.00,0,CNY,completed,online,A\n"
    "O14,C002,2026-06-17 10:00:00,-5.00,0,CNY,completed,online,A\n"
)

# The load gates (rejected share, volume drop) judge whole deliveries; the small incremental
# files of this story would trip them by design, which is not what is under test here.
GATES_OFF = "quality:\n  max_rejected_share: 1.0\n  max_volume_drop: 1.0\n"

Trigger = Callable[[str], bool]


def _during_raw_sources(line: str) -> bool:
    # Logged after the file's rows are staged and before its transaction commits.
    return "orders/extra.csv: " in line and "rows read" in line


def _during_dbt_models(line: str) -> bool:
    # A model was (re)built and the build goes on: marts are half old, half new.
    return "OK created sql table model" in line or "OK created sql incremental model" in line


def _during_classification(line: str) -> bool:
    # The stage history is written; segments, churn and alerts are not yet.
    return "customer_lifecycle - STEP_SUCCESS" in line


def _during_publication(line: str) -> bool:
    return "published_tables - STEP_START" in line


def _env_for(root: Path, template: dict[str, str], template_root: Path) -> dict[str, str]:
    return {k: v.replace(str(template_root), str(root)) for k, v in template.items()}


def _start(env: dict[str, str]) -> subprocess.Popen[str]:
    full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
    full_env.pop("SMTP_HOST", None)
    return subprocess.Popen(
        [sys.executable, "-m", "pipelines.run"],
        cwd=REPO_ROOT,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: the kill reaches dbt too
    )


def _finish(process: subprocess.Popen[str]) -> None:
    output, _ = process.communicate()
    assert process.returncode == 0, output[-3000:]


def _run_and_kill(env: dict[str, str], trigger: Trigger) -> None:
    process = _start(env)
    assert process.stdout is not None
    seen: list[str] = []
    for line in process.stdout:
        seen.append(line)
        if trigger(line):
            os.killpg(process.pid, signal.SIGKILL)
            break
    process.communicate()
    assert process.returncode == -signal.SIGKILL, (
        "the run ended before the kill point:\n" + "".join(seen[-40:])
    )


def _table_rows(con: duckdb.DuckDBPyConnection, relation: str) -> list[str]:
    columns = [d[0] for d in con.execute(f"SELECT * FROM {relation} LIMIT 0").description]
    kept = ", ".join(f'"{c}"' for c in columns if c not in VOLATILE_COLUMNS)
    return sorted(repr(r) for r in con.execute(f"SELECT {kept} FROM {relation}").fetchall())


def _published_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [
        f"{s}.{t}"
        for s, t in con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_catalog = current_database() ORDER BY 1, 2"
        ).fetchall()
    ]


def published_snapshot(env: dict[str, str]) -> dict[str, list[str]]:
    """Every published table's rows (volatile columns dropped), as a BI reader sees them."""
    with duckdb.connect(f"{env['CRM_PUBLISH_DIR']}/analytics.duckdb", read_only=True) as con:
        return {t: _table_rows(con, t) for t in _published_tables(con) if t not in PER_RUN_TABLES}


def audit_totals(env: dict[str, str]) -> list[tuple]:
    """What was loaded and rejected per source over all runs (re-reads count as duplicates)."""
    with duckdb.connect(f"{env['CRM_PUBLISH_DIR']}/analytics.duckdb", read_only=True) as con:
        return con.execute(
            "SELECT entity, source, sum(rows_loaded), sum(rows_rejected) FROM quality.load_audit "
            "GROUP BY ALL ORDER BY ALL"
        ).fetchall()


def last_run_checks(env: dict[str, str]) -> list[tuple]:
    """Which checks the last run evaluated and whether each passed."""
    with duckdb.connect(f"{env['CRM_PUBLISH_DIR']}/analytics.duckdb", read_only=True) as con:
        return con.execute(
            "SELECT check_name, asset, passed FROM quality.check_results WHERE run_id = "
            "(SELECT arg_max(run_id, checked_at) FROM quality.check_results) ORDER BY ALL"
        ).fetchall()


def raw_row_counts(env: dict[str, str]) -> dict[str, int]:
    with duckdb.connect(env["CRM_WAREHOUSE"], read_only=True) as con:
        tables = [
            t
            for (t,) in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'raw' "
                "ORDER BY 1"
            ).fetchall()
        ]
        return {t: con.execute(f"SELECT count(*) FROM raw.{t}").fetchone()[0] for t in tables}


def parquet_snapshot(env: dict[str, str]) -> dict[str, list[str]]:
    with duckdb.connect() as con:
        return {
            f"{path.stem}": _table_rows(con, f"read_parquet('{path.as_posix()}')")
            for path in sorted(Path(env["CRM_PUBLISH_DIR"]).glob("*.parquet"))
        }


def _add_new_sources(env: dict[str, str]) -> None:
    landing = Path(env["CRM_LANDING_DIR"])
    (landing / "customers" / "new_customers.csv").write_text(NEW_CUSTOMERS, encoding="utf-8")
    (landing / "orders").mkdir(exist_ok=True)
    (landing / "orders" / "extra.csv").write_text(NEW_ORDERS, encoding="utf-8")


def _staging_leftovers(env: dict[str, str]) -> list[str]:
    return sorted(p.name for p in Path(env["CRM_PUBLISH_DIR"]).glob(".staging-*"))


def _mail_files(env: dict[str, str]) -> list[str]:
    mail = Path(env["CRM_MAIL_DIR"])
    return sorted(p.relative_to(mail).as_posix() for p in mail.rglob("*.eml"))


@pytest.fixture(scope="module")
def crash_story(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Runs the whole story once; the tests below assert on what it recorded."""
    base_root = tmp_path_factory.mktemp("base")
    base_env = build_world(base_root)
    (base_root / "rules.yaml").write_text(GATES_OFF, encoding="utf-8")
    base_env["CRM_RULES"] = str(base_root / "rules.yaml")
    _finish(_start(base_env))
    first_publication = published_snapshot(base_env)

    envs = {}
    for name in ("reference", "crashed"):
        root = tmp_path_factory.mktemp(name)
        shutil.copytree(base_root, root, dirs_exist_ok=True)
        envs[name] = _env_for(root, base_env, base_root)
        _add_new_sources(envs[name])
    reference, crashed = envs["reference"], envs["crashed"]

    # The uninterrupted reference runs alongside the crashes: separate folders, separate files.
    reference_run = _start(reference)
    after_kill: dict[str, dict[str, list[str]]] = {}
    raw_after_ingest_kill: dict[str, int] = {}
    for point, trigger in (
        ("raw_sources", _during_raw_sources),
        ("dbt_models", _during_dbt_models),
        ("classification", _during_classification),
    ):
        _run_and_kill(crashed, trigger)
        after_kill[point] = published_snapshot(crashed)
        if point == "raw_sources":
            raw_after_ingest_kill = raw_row_counts(crashed)
    _run_and_kill(crashed, _during_publication)
    _finish(reference_run)
    story: dict[str, object] = {
        "first_publication": first_publication,
        "after_kill": after_kill,
        "raw_after_ingest_kill": raw_after_ingest_kill,
        "raw_base": raw_row_counts(base_env),
        "after_publication_kill": published_snapshot(crashed),
        "parquet_after_publication_kill": parquet_snapshot(crashed),
        "parquet_first": parquet_snapshot(base_env),
        "reference": reference,
        "crashed": crashed,
    }
    # A kill in the middle of a publication leaves its staging folder behind (kill -9 skips
    # every `finally`); plant one so the clean-up is exercised whatever the kill timing was.
    planted = Path(crashed["CRM_PUBLISH_DIR"]) / ".staging-killedrun"
    planted.mkdir(exist_ok=True)
    (planted / "analytics.duckdb").write_bytes(b"half-written")
    _finish(_start(crashed))
    return story


def test_previous_publication_survives_kills_before_publication(crash_story):
    first = crash_story["first_publication"]
    assert "marts.customer_profile" in first  # the snapshot is not vacuous
    for point, snapshot in crash_story["after_kill"].items():
        assert snapshot == first, f"publication changed by a run killed during {point}"


def test_a_kill_mid_ingest_commits_no_partial_source(crash_story):
    # Killed after reading orders/extra.csv and before committing it: raw.orders holds either
    # the 10 orders of the base run (file not committed) or those plus O12 (committed whole);
    # O13 goes to orphans and O14 (amount -5) is rejected — never a part of the file.
    base, after = crash_story["raw_base"], crash_story["raw_after_ingest_kill"]
    assert base["orders"] == 10
    assert (after["orders"], after["orders_orphans"]) in {
        (base["orders"], base["orders_orphans"]),
        (base["orders"] + 1, base["orders_orphans"] + 1),
    }


def test_a_kill_mid_publication_leaves_whole_files_of_one_version(crash_story):
    reference = crash_story["reference"]
    old = crash_story["first_publication"]
    new = published_snapshot(reference)
    assert crash_story["after_publication_kill"] in (old, new)
    old_files, new_files = crash_story["parquet_first"], parquet_snapshot(reference)
    for table, rows in crash_story["parquet_after_publication_kill"].items():
        if f"quality.{table}" in PER_RUN_TABLES:
            continue
        assert rows in (old_files[table], new_files[table]), f"{table}.parquet is mixed"


def test_rerun_after_kills_publishes_what_an_uninterrupted_run_publishes(crash_story):
    reference, crashed = crash_story["reference"], crash_story["crashed"]
    expected = published_snapshot(reference)
    actual = published_snapshot(crashed)
    assert sorted(actual) == sorted(expected)
    for table in expected:
        assert actual[table] == expected[table], table
    assert last_run_checks(crashed) == last_run_checks(reference)
    assert all(passed for *_, passed in last_run_checks(crashed))
    # Not vacuous: the new customer C006 (created 2026-05-01, O12 400.00 completed) is in both.
    assert any("'C006'" in row for row in expected["marts.customer_profile"])
    # Every published table is also there as Parquet (the audit included).
    table_names = {name.split(".", 1)[1] for name in (*expected, *PER_RUN_TABLES)}
    assert set(parquet_snapshot(crashed)) == table_names


def test_no_loaded_row_is_lost_or_doubled(crash_story):
    reference, crashed = crash_story["reference"], crash_story["crashed"]
    assert raw_row_counts(crashed) == raw_row_counts(reference)
    assert audit_totals(crashed) == audit_totals(reference)
    # By hand: base 10 orders (O10 waits) + O12 = 11; orphans O10 and O13; C001..C006.
    counts = raw_row_counts(crashed)
    assert (counts["orders"], counts["orders_orphans"], counts["customers"]) == (11, 2, 6)


def test_alert_emails_are_not_sent_twice(crash_story):
    assert _mail_files(crash_story["crashed"]) == _mail_files(crash_story["reference"])


def test_no_staging_leftovers(crash_story):
    assert _staging_leftovers(crash_story["crashed"]) == []
    assert _staging_leftovers(crash_story["reference"]) == []
