"""The file hashes that decide "has the code changed": the run fingerprint's `code_hash` and the
staging tests' `staging_definitions` share `content_hash`, so both must move exactly when a file
they cover changes and ignore what they do not cover."""

from pathlib import Path

import pytest

from assets import dbt as dbt_assets
from crm.run_state import CODE_DIRS, code_hash, content_hash


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "a.py").write_text("A = 1\n")
    (tmp_path / "pkg" / "sub" / "b.sql").write_text("select 1\n")
    (tmp_path / "pkg" / "notes.txt").write_text("not code\n")
    (tmp_path / "top.yml").write_text("k: v\n")
    return tmp_path


def test_a_covered_file_changes_the_hash(tree):
    before = content_hash(tree, ["pkg", "top.yml"])
    (tree / "pkg" / "sub" / "b.sql").write_text("select 2\n")
    assert content_hash(tree, ["pkg", "top.yml"]) != before


def test_a_single_file_entry_is_covered(tree):
    before = content_hash(tree, ["top.yml"])
    (tree / "top.yml").write_text("k: w\n")
    assert content_hash(tree, ["top.yml"]) != before


def test_a_rename_changes_the_hash_even_with_the_same_bytes(tree):
    before = content_hash(tree, ["pkg"])
    (tree / "pkg" / "a.py").rename(tree / "pkg" / "c.py")
    assert content_hash(tree, ["pkg"]) != before


def test_uncovered_files_caches_and_missing_folders_do_not_count(tree):
    before = content_hash(tree, ["pkg", "missing"], {".py", ".sql"})
    (tree / "pkg" / "notes.txt").write_text("edited\n")  # suffix not covered
    (tree / "pkg" / "__pycache__").mkdir()
    (tree / "pkg" / "__pycache__" / "a.cpython-311.py").write_text("cache\n")
    (tree / "elsewhere.py").write_text("outside the entries\n")
    assert content_hash(tree, ["pkg", "missing"], {".py", ".sql"}) == before


def test_code_hash_follows_the_pipeline_sources(tmp_path):
    for folder in CODE_DIRS:
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "crm" / "x.py").write_text("X = 1\n")
    before = code_hash(tmp_path)
    (tmp_path / "dbt_project" / "models" / "m.sql").write_text("select 1\n")
    assert code_hash(tmp_path) != before
    changed = code_hash(tmp_path)
    (tmp_path / "dbt_project" / "models" / "README.md").write_text("docs\n")
    assert code_hash(tmp_path) == changed


def test_staging_definitions_move_with_the_time_zone_and_the_dbt_tests(tmp_path, monkeypatch):
    project = tmp_path / "dbt_project"
    for folder in ("models", "macros", "tests/generic"):
        (project / folder).mkdir(parents=True)
    (project / "dbt_project.yml").write_text("name: x\n")
    (project / "models" / "m.sql").write_text("select 1\n")
    monkeypatch.setattr(dbt_assets, "DBT_PROJECT_DIR", project)
    shanghai = dbt_assets.staging_definitions("Asia/Shanghai")
    assert dbt_assets.staging_definitions("Asia/Shanghai") == shanghai
    assert dbt_assets.staging_definitions("Asia/Urumqi") != shanghai
    (project / "tests" / "generic" / "unique_since.sql").write_text("{% test x() %}{% endtest %}")
    assert dbt_assets.staging_definitions("Asia/Shanghai") != shanghai
    after_test = dbt_assets.staging_definitions("Asia/Shanghai")
    (project / "seeds").mkdir()
    (project / "seeds" / "s.csv").write_text("a\n1\n")  # not a definition of the staging tests
    assert dbt_assets.staging_definitions("Asia/Shanghai") == after_test
