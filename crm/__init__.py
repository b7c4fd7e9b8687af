"""Customer-management domain library: settings, rules, source schemas and the pure logic
(ingest parsing, classification, churn, alerts) that Dagster assets wrap.

Nothing here imports Dagster: every rule of domain.md can be tested on hand-made rows.
"""
