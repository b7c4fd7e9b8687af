"""Composition root: builds the Dagster Definitions. Nothing imports this package."""
