"""A failed run ends with one sentence naming the source and the problem (contract §3).

`dagster job execute` closes a failed run with a stack trace and "Error: Run … resulted in
failure." The hook below records the first failure's own message (a `dg.Failure` description such
as "db:orders: table 'orders' is missing in …", or the root cause of an unexpected error), logs it
for the UI, and — only under the `dagster job execute` CLI — prints it as the process's last
lines. `python -m pipelines.run` prints its own summary instead.
"""

import atexit
import sys

import dagster as dg

_failures: list[str] = []
_registered = False


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


@dg.failure_hook(name="summarise_failure")
def summarise_failure(context: dg.HookContext) -> None:
    global _registered
    summary = f"step {context.step_key} failed: {_message(context.op_exception)}"
    _failures.append(summary)
    context.log.error(summary)
    if _under_execute_cli() and not _registered:
        atexit.register(_print_at_exit)
        _registered = True
