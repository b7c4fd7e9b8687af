"""Fixtures shared by the unit tests."""

from __future__ import annotations

import duckdb
import pytest

from crm.warehouse import ensure_schema


@pytest.fixture
def con(tmp_path) -> duckdb.DuckDBPyConnection:
    """A warehouse file with every ingest table, as `ensure_schema` creates it for a run."""
    connection = duckdb.connect(str(tmp_path / "w.duckdb"))
    ensure_schema(connection)
    yield connection
    connection.close()
