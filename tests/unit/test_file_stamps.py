"""Landing files are recognised by content hash; the hash is cached per (path, size, mtime) so
a daily run does not re-read files it has loaded (crm/ingest/loader.py, meta.file_stamps)."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pytest

from crm.ingest import loader as loader_module
from tests.unit.landing_loads import load_landing

HEADER = "customer_id,name,created_at\n"


def _customers(warehouse: Path) -> int:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute("SELECT count(*) FROM raw.customers").fetchone()[0]


def test_hash_is_read_once_per_file_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    landing = tmp_path / "landing"
    (landing / "customers").mkdir(parents=True)
    export = landing / "customers" / "c.csv"
    export.write_text(HEADER + "C1,Acme,2024-01-05\n", encoding="utf-8")
    warehouse = tmp_path / "w.duckdb"
    hashed: list[str] = []
    real = loader_module._sha256
    monkeypatch.setattr(loader_module, "_sha256", lambda p: hashed.append(p.name) or real(p))

    load_landing(landing, warehouse)
    assert hashed == ["c.csv"] and _customers(warehouse) == 1

    # Unchanged file: neither read nor hashed again.
    assert load_landing(landing, warehouse).report.skipped_files == ["customers/c.csv"]
    assert hashed == ["c.csv"]

    # Touched, same content: hashed once more (mtime changed), recognised, not loaded again.
    stat = export.stat()
    os.utime(export, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert load_landing(landing, warehouse).report.skipped_files == ["customers/c.csv"]
    assert hashed == ["c.csv", "c.csv"] and _customers(warehouse) == 1
    load_landing(landing, warehouse)
    assert len(hashed) == 2  # and cached again

    # New content (new mtime): loaded.
    export.write_text(HEADER + "C1,Acme,2024-01-05\nC2,Beta,2024-01-06\n", encoding="utf-8")
    os.utime(export, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2 * 10**9))
    assert load_landing(landing, warehouse).report.skipped_files == []
    assert _customers(warehouse) == 2
