"""Errors of the ingest layer.

`SourceError` is the one exception the loader turns into a failed run (contract.md §1: "a whole
source fails the run"); its text is the one-sentence summary printed as the run's last line, so it
must name the file or table and the problem and never carry a connection string or password.
"""

from __future__ import annotations


class SourceError(Exception):
    """A whole source is unusable.

    str(exc) is ONE sentence naming the file (path relative to the landing folder when known) or
    table and the problem, e.g. "customers/x.csv: required column 'created_at' is missing
    (found: 客户编号, 客户名称)". Never contains a password.
    """


class AliasesError(ValueError):
    """The aliases file (shipped or CRM_ALIASES) cannot be used; the message names file and key."""
