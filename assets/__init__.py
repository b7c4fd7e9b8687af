"""Dagster assets, one module per stage in flow order:
ingest → dbt → classification → churn → alerts → publish."""
