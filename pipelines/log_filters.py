"""Dagster's own log lines that mislead operators of this job, demoted to DEBUG.

A rerun with nothing new ends after ingest (crm/run_state.py) and Dagster skips every later step.
For each blocking check of a skipped check step and each step downstream of it, Dagster 1.13 then
logs a WARNING "Blocking asset check '…' emitted no result in step '…'; downstream step '…' will
proceed without gating on it" (`dagster._core.execution.plan.active`): 70 lines on an
ordinary rerun, each saying a step would go ahead unchecked, although the next line skips it.

In this job that message can only come from such a skip: every check step yields a result for
each of its checks or fails (a failed step abandons, never ungates, what is downstream), and every
step that waits for a check also waits for the asset it checks, which a skip leaves missing. So
the line is kept, at DEBUG, where a debugging operator still finds it, and nothing else changes.
tests/integration/test_rerun_skip.py checks that an unchanged rerun logs no such warning.
"""

from __future__ import annotations

import logging

DAGSTER_PLAN_LOGGER = "dagster._core.execution.plan.active"
_NO_RESULT = "emitted no result in step"


class SkippedCheckNoticeFilter(logging.Filter):
    """Lowers Dagster's 'blocking asset check emitted no result' warning to DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.DEBUG and _NO_RESULT in record.getMessage():
            record.levelno = logging.DEBUG
            record.levelname = logging.getLevelName(logging.DEBUG)
        return True


def install() -> None:
    """Adds the filter to Dagster's execution-plan logger once per process."""
    logger = logging.getLogger(DAGSTER_PLAN_LOGGER)
    if not any(isinstance(f, SkippedCheckNoticeFilter) for f in logger.filters):
        logger.addFilter(SkippedCheckNoticeFilter())
