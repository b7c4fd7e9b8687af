"""CRM_RULES as a user sets it: a custom file changes results exactly as the README says, and a
broken file stops the run with a message naming the key."""

import email
from email import policy
from pathlib import Path

import duckdb
import pytest

from tests.integration.world import build_world

pytestmark = pytest.mark.integration


def run(env: dict[str, str], capsys) -> tuple[int, str]:
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        from pipelines.run import main

        code = main([])
    return code, capsys.readouterr().err


def run_with_rules(tmp_path: Path, capsys, text: str) -> tuple[dict[str, str], Path, int, str]:
    """The test world's whole job with CRM_RULES pointing at a file holding `text`."""
    env = build_world(tmp_path)
    rules = tmp_path / "rules.yaml"
    rules.write_text(text, encoding="utf-8")
    code, err = run({**env, "CRM_RULES": str(rules)}, capsys)
    return env, rules, code, err


def test_custom_rules_retune_value_tiers_and_lifecycle_windows(tmp_path, capsys):
    env, _, code, err = run_with_rules(
        tmp_path,
        capsys,
        "segments:\n  value_tier: {high_share: 0.5, medium_share: 0.5}\n"
        "lifecycle:\n  new_customer_days: 400\n",
    )
    assert code == 0, err
    with duckdb.connect(f"{env['CRM_PUBLISH_DIR']}/analytics.duckdb", read_only=True) as con:
        tiers = dict(
            con.execute("SELECT customer_id, value_tier FROM marts.customer_segments").fetchall()
        )
        stages = dict(
            con.execute("SELECT customer_id, stage FROM marts.customer_lifecycle").fetchall()
        )
    # N = 3 buyers with revenue: high = ceil(0.5·3) = 2 (C001 6500, C003 5000); medium also
    # ceil(1.5) = 2, so nobody is medium; C002 low. Defaults would give high 1, medium 1, low 1.
    assert tiers == {"C001": "high", "C003": "high", "C002": "low", "C004": "none", "C005": "none"}
    # new = tenure < 400 days: C001 (211), C002 (380) and C003 (302) are all "new" now; nothing
    # before the `new` rule matches them (none churned, none won back).
    assert stages == {
        "C001": "new",
        "C002": "new",
        "C003": "new",
        "C004": "prospect",
        "C005": "prospect",
    }


def test_a_typo_in_the_rules_file_stops_the_run_naming_the_key(tmp_path, capsys):
    _, rules, code, err = run_with_rules(
        tmp_path, capsys, "segments:\n  value_tierr: {high_share: 0.1}\n"
    )
    assert code == 1
    last = err.strip().splitlines()[-1]
    assert "value_tierr" in last and str(rules) in last
    assert not (tmp_path / "published" / "analytics.duckdb").exists()


def test_thresholds_out_of_order_are_refused(tmp_path, capsys):
    _, _, code, err = run_with_rules(
        tmp_path, capsys, "segments:\n  value_tier: {high_share: 0.6, medium_share: 0.5}\n"
    )
    assert code == 1
    assert "high_share must not exceed medium_share" in err.strip().splitlines()[-1]


def test_more_relationship_periods_than_the_profile_can_count_are_refused(tmp_path):
    """The profile counts distinct periods as bits of a 64-bit integer: 64 periods work, 65 are
    refused when the rules load, naming the key, not deep inside dbt."""
    from crm.rules import RulesError, load_rules

    def with_bounds(count: int) -> Path:
        path = tmp_path / f"bounds{count}.yaml"
        bounds = ", ".join(str(5 * i) for i in range(count))
        path.write_text(
            f"segments:\n  relationship:\n    quarter_bounds_days: [{bounds}]\n"
            f"    window_days: {5 * (count - 1)}\n",
            encoding="utf-8",
        )
        return path

    assert len(load_rules(with_bounds(65)).segments.relationship.quarter_bounds_days) == 65
    with pytest.raises(RulesError, match="quarter_bounds_days"):
        load_rules(with_bounds(66))


def test_the_digest_cap_is_off_by_default_and_must_be_positive(tmp_path):
    """alerts.max_alerts_per_digest: absent or null lists every pending alert (domain.md §5);
    a number caps each digest; 0 would send empty digests forever and is refused by name."""
    from crm.rules import RulesError, load_rules

    def with_cap(text: str) -> Path:
        path = tmp_path / "cap.yaml"
        path.write_text(f"alerts:\n  max_alerts_per_digest: {text}\n", encoding="utf-8")
        return path

    assert load_rules(None).alerts.max_alerts_per_digest is None
    assert load_rules(with_cap("null")).alerts.max_alerts_per_digest is None
    capped = load_rules(with_cap("500")).alerts
    assert capped.max_alerts_per_digest == 500 and capped.max_attempts == 5  # the rest kept
    with pytest.raises(RulesError, match="max_alerts_per_digest"):
        load_rules(with_cap("0"))


def test_a_digest_cap_in_the_rules_file_holds_the_rest_for_the_next_run(tmp_path, capsys):
    """The whole job with a user's rules file: alerts for every risk level (C001 35 and C003 30
    in this world), the pool address set to C001's owner so both reach one inbox, and a cap of 1.
    The email lists C001 and says one more waits; C003 stays pending, unattempted, and the run's
    log names the digest that was capped."""
    env, _, code, err = run_with_rules(
        tmp_path,
        capsys,
        "alerts:\n  candidate_levels: [high, medium, low]\n"
        "  pool_address: wang.fang@example.com\n  max_alerts_per_digest: 1\n",
    )
    assert code == 0, err
    with duckdb.connect(env["CRM_WAREHOUSE"], read_only=True) as con:
        alerts = {
            row[0]: row[1:]
            for row in con.execute(
                "SELECT customer_id, recipient, status, attempts FROM marts.churn_alerts"
            ).fetchall()
        }
    assert alerts["C001"] == ("wang.fang@example.com", "sent", 1)
    assert alerts["C003"] == ("wang.fang@example.com", "pending", 0)
    [eml] = [
        email.message_from_bytes(path.read_bytes(), policy=policy.default)
        for path in Path(env["CRM_MAIL_DIR"]).rglob("*.eml")
        if path.name.startswith("wang.fang@example.com")
    ]
    body = eml.get_body(preferencelist=("plain",)).get_content()
    assert "(C001)" in body and "(C003)" not in body
    assert "1 more alert, ranked lower, is not listed here" in body
    assert (
        "digest to wang.fang@example.com listed 1 of 2 pending alerts "
        "(alerts.max_alerts_per_digest); 1 wait for the next run"
    ) in err
