"""CRM_RULES as a user sets it: a custom file changes results exactly as the README says, and a
broken file stops the run with a message naming the key."""

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


def test_custom_rules_retune_value_tiers_and_lifecycle_windows(tmp_path, capsys):
    env = build_world(tmp_path)
    rules = tmp_path / "bank.yaml"
    rules.write_text(
        "segments:\n  value_tier: {high_share: 0.5, medium_share: 0.5}\n"
        "lifecycle:\n  new_customer_days: 400\n",
        encoding="utf-8",
    )
    code, err = run({**env, "CRM_RULES": str(rules)}, capsys)
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
    env = build_world(tmp_path)
    rules = tmp_path / "typo.yaml"
    rules.write_text("segments:\n  value_tierr: {high_share: 0.1}\n", encoding="utf-8")
    code, err = run({**env, "CRM_RULES": str(rules)}, capsys)
    assert code == 1
    last = err.strip().splitlines()[-1]
    assert "value_tierr" in last and str(rules) in last
    assert not (tmp_path / "published" / "analytics.duckdb").exists()


def test_thresholds_out_of_order_are_refused(tmp_path, capsys):
    env = build_world(tmp_path)
    rules = tmp_path / "order.yaml"
    rules.write_text(
        "segments:\n  value_tier: {high_share: 0.6, medium_share: 0.5}\n", encoding="utf-8"
    )
    code, err = run({**env, "CRM_RULES": str(rules)}, capsys)
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
