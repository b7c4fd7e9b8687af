"""The alert gate as sales would feel it (domain.md §5): an alert left pending by an SMTP
outage is not sent on a day a blocking data-quality check fails: it is suppressed with the
reason, and nothing reaches the mail server."""

import csv

import duckdb
import pytest

from tests.integration.world import INTERACTIONS_HEADER, build_world
from tests.smtp_server import SmtpTestServer, free_port

pytestmark = pytest.mark.integration


def run(env: dict[str, str]) -> int:
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        from pipelines.run import main

        return main([])


def outbox(env: dict[str, str]) -> list[tuple]:
    with duckdb.connect(env["CRM_WAREHOUSE"], read_only=True) as con:
        return con.execute(
            "SELECT customer_id, status, attempts, status_reason FROM marts.churn_alerts"
        ).fetchall()


def test_pending_alerts_are_suppressed_when_a_blocking_check_fails(tmp_path, capfd):
    env = build_world(tmp_path)
    # Run 1: the SMTP relay is down (nothing listens on the port) → the alert waits, and the
    # run's log says whose digest is stuck and why, not only "pending 1".
    down = {**env, "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(free_port())}
    assert run(down) == 0
    [(customer, status, attempts, _)] = outbox(env)
    assert (customer, status, attempts) == ("C001", "pending", 1)
    with duckdb.connect(env["CRM_WAREHOUSE"], read_only=True) as con:
        [(recipient,)] = con.execute("SELECT recipient FROM marts.churn_alerts").fetchall()
    [warning] = [
        line
        for line in capfd.readouterr().err.splitlines()
        if "not delivered" in line and "WARNING" in line
    ]
    assert f"digest to {recipient} (1 alert) not delivered" in warning
    assert "stay pending for the next run" in warning
    assert "Connection refused" in warning

    # Run 2: the relay is back, but a new interactions file is all bad rows (direction not
    # inbound/outbound): 3 of 3 rows rejected > 5 % → the blocking gate fails the run.
    bad = tmp_path / "landing" / "interactions" / "bad_day.csv"
    with bad.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(INTERACTIONS_HEADER)
        for i in range(3):
            writer.writerow(
                [
                    f"X{i}",
                    "C001",
                    "",
                    "",
                    "2026-06-29 10:00",
                    "phone",
                    "sideways",
                    "inquiry",
                    "",
                    "",
                    "",
                ]
            )
    with SmtpTestServer() as server:
        up = {**env, "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(server.port)}
        assert run(up) == 1
        assert server.messages == []  # nothing left for the sales inbox
    [(customer, status, attempts, reason)] = outbox(env)
    assert (customer, status, attempts) == ("C001", "suppressed", 1)
    assert "rejected_share" in reason and "raw_interactions_quality" in reason
