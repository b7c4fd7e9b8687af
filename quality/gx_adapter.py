"""Great Expectations 1.x suite results → Dagster asset-check results.

Why our own adapter: `dagster-ge` supports only GX < 1 and pandas < 3. This one is small: the
verdict is the suites' success, and the metadata a user needs to act without rerunning anything —
per expectation: success, unexpected count and a few example values. Consumer: the
`source_suite` checks of `quality/checks.py` (and the `quality.check_results` message).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any

import dagster as dg
import pandas as pd

from quality.results import ERROR, CheckOutcome

EXAMPLES_SHOWN = 5
FAILURES_IN_MESSAGE = 3


@dataclass(frozen=True)
class ExpectationOutcome:
    suite: str
    expectation: str  # e.g. expect_column_values_to_be_between(amount)
    success: bool
    unexpected_count: int
    examples: list[str]
    error: str | None = None


def _show(value: Any) -> str:
    """A value as a person reads it: dates in ISO form, missing values as `null`."""
    if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return "null"
    if isinstance(value, datetime):
        return (
            value.isoformat(sep=" ") if value.time() != datetime.min.time() else str(value.date())
        )
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _error_message(exception_info: Any) -> str | None:
    """GX reports exceptions either flat or keyed by metric id; take the first raised one."""
    if not isinstance(exception_info, Mapping):
        return None
    candidates = [exception_info] + [v for v in exception_info.values() if isinstance(v, Mapping)]
    for info in candidates:
        if info.get("raised_exception"):
            return str(info.get("exception_message") or "expectation raised an exception")
    return None


def expectation_outcomes(result: Any) -> list[ExpectationOutcome]:
    """Flatten one `ExpectationSuiteValidationResult` into one record per expectation."""
    suite = str(getattr(result, "suite_name", "") or "")
    outcomes = []
    for item in result.results:
        config = item.expectation_config
        column = config.kwargs.get("column")
        label = f"{config.type}({column})" if column else config.type
        details = item.result or {}
        meta_examples = (config.meta or {}).get("examples")
        raw_examples = (
            meta_examples if meta_examples else details.get("partial_unexpected_list", [])
        )
        outcomes.append(
            ExpectationOutcome(
                suite=suite,
                expectation=label,
                success=bool(item.success),
                unexpected_count=int(details.get("unexpected_count") or 0),
                examples=[_show(v) for v in list(raw_examples or [])[:EXAMPLES_SHOWN]],
                error=_error_message(item.exception_info),
            )
        )
    return outcomes


def _describe(failure: ExpectationOutcome) -> str:
    if failure.error:
        return f"{failure.expectation} could not run ({failure.error})"
    examples = f", e.g. {', '.join(failure.examples)}" if failure.examples else ""
    return f"{failure.expectation}: {failure.unexpected_count} unexpected{examples}"


def _markdown(outcomes: Sequence[ExpectationOutcome]) -> str:
    lines = ["| suite | expectation | ok | unexpected | examples |", "|---|---|---|---|---|"]
    lines += [
        f"| {o.suite} | {o.expectation} | {'yes' if o.success else '**no**'} | "
        f"{o.unexpected_count} | {', '.join(o.examples) if not o.success else ''} |"
        for o in outcomes
    ]
    return "\n".join(lines)


def suite_outcome(results: Sequence[Any], subject: str) -> CheckOutcome:
    """The verdict over several suite results (all must succeed) with per-expectation detail."""
    outcomes = [o for result in results for o in expectation_outcomes(result)]
    failures = [o for o in outcomes if not o.success]
    passed = all(bool(r.success) for r in results) and not failures
    if passed:
        message = f"{subject}: all {len(outcomes)} expectations met"
    else:
        shown = "; ".join(_describe(f) for f in failures[:FAILURES_IN_MESSAGE])
        more = len(failures) - FAILURES_IN_MESSAGE
        message = f"{subject}: {len(failures)} of {len(outcomes)} expectations failed: {shown}" + (
            f"; and {more} more" if more > 0 else ""
        )
    metadata = {
        "expectations": len(outcomes),
        "failed_expectations": len(failures),
        "expectation_results": [asdict(o) for o in outcomes],
        "summary": dg.MetadataValue.md(_markdown(outcomes)),
    }
    return CheckOutcome(passed, message, metadata)


def _metadata_value(value: Any) -> Any:
    if isinstance(value, (list, dict)):
        return dg.MetadataValue.json(value)
    return value


def to_asset_check_result(
    outcome: CheckOutcome,
    *,
    asset_key: dg.AssetKey,
    check_name: str,
    severity: str = ERROR,
) -> dg.AssetCheckResult:
    """Any `CheckOutcome` (suite or gate) as the result Dagster records for a check."""
    metadata = {"message": outcome.message}
    metadata |= {key: _metadata_value(value) for key, value in outcome.metadata.items()}
    return dg.AssetCheckResult(
        passed=outcome.passed,
        asset_key=asset_key,
        check_name=check_name,
        severity=dg.AssetCheckSeverity(severity),
        description=outcome.message,
        metadata=metadata,
    )


def suite_check_result(
    results: Sequence[Any],
    *,
    subject: str,
    asset_key: dg.AssetKey,
    check_name: str,
    severity: str = ERROR,
) -> dg.AssetCheckResult:
    """GX suite results straight to a Dagster check result."""
    return to_asset_check_result(
        suite_outcome(results, subject),
        asset_key=asset_key,
        check_name=check_name,
        severity=severity,
    )
