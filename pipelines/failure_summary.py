"""What happens when a run fails: one sentence for the user, and no alert goes out on bad data.

- `dagster job execute` closes a failed run with a stack trace and "Error: Run … resulted in
  failure." The hook records the first failure's own message (a `dg.Failure` description such as
  "db:orders: table 'orders' is missing in …", or the root cause of an unexpected error), logs it
  for the UI, and — only under that CLI — prints it as the process's last lines.
  (`python -m pipelines.run` prints its own summary.)
- domain.md §5: when a blocking data-quality check failed, waiting alerts are `suppressed` with the
  reason, not sent. A blocking check (or a dbt test) stops the run before delivery, so the hook
  suppresses the alerts still pending from earlier runs (e.g. after an SMTP outage): none of
  them leaves on a day the data is known to be bad.
"""

import atexit
import sys

import dagster as dg
from dagster._core.errors import DagsterAssetCheckFailedError  # not exported at the top level

from crm.outbox import ensure_outbox, suppress_pending
from crm.warehouse import connect

_failures: list[str] = []
_registered = False
DBT_STEP = "dbt_models"


def _message(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    if isinstance(exc, dg.Failure) and exc.description:
        return exc.description
    while exc.__cause__ is not None:  # the root cause, not Dagster's wrappers
        exc = exc.__cause__
    text = str(exc).strip().replace("\n", " ")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _print_at_exit() -> None:
    if _failures:
        print("\nRun failed: " + _failures[0], file=sys.stderr)


def _under_execute_cli() -> bool:
    return bool(sys.argv) and sys.argv[0].endswith("dagster") and "execute" in sys.argv


def _is_quality_failure(context: dg.HookContext) -> bool:
    exc = context.op_exception
    return isinstance(exc, DagsterAssetCheckFailedError) or context.step_key == DBT_STEP


@dg.failure_hook(name="summarise_failure", required_resource_keys={"crm"})
def summarise_failure(context: dg.HookContext) -> None:
    global _registered
    summary = f"step {context.step_key} failed: {_message(context.op_exception)}"
    _failures.append(summary)
    context.log.error(summary)
    if _is_quality_failure(context):
        settings = context.resources.crm.settings()
        if settings.warehouse.exists():
            with connect(settings.warehouse) as con:
                ensure_outbox(con)
                reason = f"blocking data-quality failure in run {context.run_id}: {summary}"
                suppressed = suppress_pending(con, reason, context.run_id)
            if suppressed:
                context.log.warning(f"{suppressed} pending alert(s) suppressed: {reason}")
    if _under_execute_cli() and not _registered:
        atexit.register(_print_at_exit)
        _registered = True
