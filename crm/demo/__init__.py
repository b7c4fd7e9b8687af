"""Seeded, deterministic demo data for the customer pipeline (see docs/demo_data.md)."""

from crm.demo.generator import generate

__all__ = ["generate"]
