"""How we know data is right: expectation suites, the suite → asset-check adapter, gates.

Imports nothing from `assets/` or `pipelines/`."""
