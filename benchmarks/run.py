"""`make bench`: run `customer_daily` on data sets S / M / L and print where the time goes.

Why a separate process per run: peak memory must be the run's own (the job, and the dbt CLI it
starts), and a run must see a cold Python like `python -m pipelines.run` does. The parent polls
`/proc` for the resident memory of the whole process tree; the child executes the job in process
and writes its step timings (from the Dagster event log) and dbt's per-model timings as JSON.

Data sets (seeded, reused when present, gitignored under `benchmarks/data/`):
S = 10k customers, M = 100k, L = 1M (≈10M orders, 9M payments, 30M interactions).
On the sizes in `BENCH_INCREMENTAL` (default L) two more runs follow the full one: a new day of
orders, payments and interactions (as_of + 1), and a rerun with no new data. The new day is
removed again afterwards, so the data set stays reusable.

Env: `BENCH_SIZES=S,M` (default S,M,L), `BENCH_INCREMENTAL=L`, `BENCH_AS_OF` (default
2026-11-01, the generated history's last day). Results: `benchmarks/results/<date>-<sizes>.md`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

from benchmarks.lower_bound import LowerBound, report_lines

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / "benchmarks"
DATA_DIR = BENCH_DIR / "data"
RESULTS_DIR = BENCH_DIR / "results"
DBT_NODE_LINE = re.compile(
    r"\d+ of \d+ (?:OK created sql \w+ model|PASS|OK|WARN) ([\w.:]+).*?in ([\d.]+)s\]"
)
SIZES = {"S": 10_000, "M": 100_000, "L": 1_000_000}
DEFAULT_AS_OF = "2026-11-01"
RSS_POLL_SECONDS = 0.2
NEW_DAY_ROWS_PER_1K_CUSTOMERS = {"orders": 10, "payments": 9, "interactions": 30}
NEW_DAY_PREFIX = "BENCHDAY"
STEP_ORDER = (
    "raw_sources",
    "dbt_models",
    "customer_lifecycle",
    "marts__customer_segments",
    "marts__churn_risk",
    "marts__segment_summary",
    "marts__churn_alerts",
    "alert_delivery",
    "published_tables",
)


@dataclass(frozen=True)
class PeakSplit:
    """The moment a run's process tree held the most memory, split by process.

    Why: the 4 GiB target is on the whole tree, and during `dbt_models` the tree is two
    processes, the job waiting and the dbt CLI it started. Which one grew decides the remedy (the
    dbt budget in profiles.yml, or the job's own heap), so the report says it for every run."""

    total_mib: float
    job_mib: float  # the measured process: Dagster and every in-process step
    children_mib: float  # its descendants: the dbt CLI during `dbt_models`
    step: str  # the step running at that moment ("" between steps)


@dataclass
class RunResult:
    size: str
    kind: str  # full | new day | no change
    as_of: str
    ok: bool
    wall_seconds: float
    peak_rss_mib: float
    steps: dict[str, float] = field(default_factory=dict)
    step_rows: dict[str, int] = field(default_factory=dict)
    step_peak_mib: dict[str, float] = field(default_factory=dict)
    peak: PeakSplit | None = None
    dbt_models: list[tuple[str, float]] = field(default_factory=list)
    floor_seconds: float | None = None
    lower_bound: LowerBound | None = None  # measured after a full run
    error: str = ""


# ---------------------------------------------------------------------------- data sets


def data_paths(size: str) -> dict[str, Path]:
    base = DATA_DIR / size
    return {
        "base": base,
        "landing": base / "landing",
        "db": base / "source" / "shop.db",
        "run": base / "run",
    }


def ensure_data(size: str, as_of: str) -> None:
    """Generate the data set once; later benchmarks reuse it (generating L takes ~7 min)."""
    paths = data_paths(size)
    customers = paths["landing"] / "customers"
    if customers.exists() and any(customers.iterdir()) and paths["db"].exists():
        return
    print(f"generating data set {size} ({SIZES[size]:,} customers) ...", flush=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "crm.demo",
            "--customers",
            str(SIZES[size]),
            "--as-of",
            as_of,
            "--landing",
            str(paths["landing"]),
            "--db-url",
            f"sqlite:///{paths['db']}",
            "--force",
        ],
        check=True,
        cwd=ROOT,
    )


def source_counts(size: str) -> dict[str, int]:
    """Source rows per entity (database tables counted exactly, landing rows from the run)."""
    with sqlite3.connect(data_paths(size)["db"]) as con:
        return {
            t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("orders", "payments")
        }


def append_new_day(size: str, day: date) -> dict[str, int]:
    """One more day of business: orders and payments in the database (updated_at = that day, so
    the watermark read picks them up) and an interactions landing file. Returns rows added."""
    paths = data_paths(size)
    scale = SIZES[size] // 1000
    counts = {e: n * scale for e, n in NEW_DAY_ROWS_PER_1K_CUSTOMERS.items()}
    stamp = f"{day.isoformat()} 10:00:00"
    with sqlite3.connect(paths["db"]) as con:
        customers = [
            r[0]
            for r in con.execute(
                "SELECT DISTINCT customer_id FROM orders LIMIT ?", [counts["orders"]]
            )
        ]
        orders = [
            (
                f"{NEW_DAY_PREFIX}-O{i}",
                customers[i % len(customers)],
                stamp,
                "199.00",
                0,
                "CNY",
                "completed",
                "online",
                "office",
                stamp,
            )
            for i in range(counts["orders"])
        ]
        con.executemany(
            "INSERT INTO orders (order_id, customer_id, ordered_at, amount, discount_amount, currency, "
            "status, channel, product_category, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            orders,
        )
        payments = [
            (f"{NEW_DAY_PREFIX}-P{i}", orders[i][0], stamp, "199.00", stamp)
            for i in range(counts["payments"])
        ]
        con.executemany(
            "INSERT INTO payments (payment_id, order_id, paid_at, amount, updated_at) VALUES (?,?,?,?,?)",
            payments,
        )
    lines = ["interaction_id,customer_id,occurred_at,channel,direction,kind,satisfaction"]
    lines += [
        f"{NEW_DAY_PREFIX}-I{i},{customers[i % len(customers)]},{stamp},phone,outbound,follow_up,4"
        for i in range(counts["interactions"])
    ]
    new_day_file(size).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return counts


def new_day_file(size: str) -> Path:
    return data_paths(size)["landing"] / "interactions" / f"zz_{NEW_DAY_PREFIX.lower()}.csv"


def remove_new_day(size: str) -> None:
    """Undo `append_new_day`, so the data set is the generated one again."""
    paths = data_paths(size)
    new_day_file(size).unlink(missing_ok=True)
    with sqlite3.connect(paths["db"]) as con:
        con.execute(f"DELETE FROM orders WHERE order_id LIKE '{NEW_DAY_PREFIX}-%'")
        con.execute(f"DELETE FROM payments WHERE payment_id LIKE '{NEW_DAY_PREFIX}-%'")


# ---------------------------------------------------------------------------- measuring a run


def _rss_kib(root_pid: int) -> tuple[int, int]:
    """Resident memory of a process with all its descendants (the job and the dbt CLI), and of
    the process alone."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        pid = int(entry.name)
        children.setdefault(int(fields.get("PPid", "0").strip()), []).append(pid)
        rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0])
    total, stack = 0, [root_pid]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total, rss.get(root_pid, 0)


def peak_split(
    samples: list[tuple[float, int, int]], steps: dict[str, tuple[float, float]]
) -> PeakSplit | None:
    """The sample with the largest tree RSS, split into the job and its children, and the step
    whose [start, end] holds it. `samples` are (epoch seconds, tree KiB, job KiB)."""
    if not samples:
        return None
    when, tree, job = max(samples, key=lambda s: s[1])
    step = next((name for name, (a, b) in steps.items() if a <= when <= b), "")
    return PeakSplit(tree / 1024, job / 1024, (tree - job) / 1024, step)


def run_job(size: str, kind: str, as_of: str) -> RunResult:
    """One `customer_daily` run in a child process; wall time, peak tree RSS, step timings."""
    paths = data_paths(size)
    report = paths["run"] / "bench_child.json"
    report.unlink(missing_ok=True)
    env = {
        **os.environ,
        "CRM_LANDING_DIR": str(paths["landing"]),
        "CRM_SOURCE_DB_URL": f"sqlite:///{paths['db']}",
        "CRM_WAREHOUSE": str(paths["run"] / "warehouse.duckdb"),
        "CRM_PUBLISH_DIR": str(paths["run"] / "published"),
        "CRM_MAIL_DIR": str(paths["run"] / "mail"),
        "CRM_AS_OF": as_of,
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    env.pop("DAGSTER_HOME", None)  # an ephemeral instance: benchmarks leave no run history
    log = (paths["run"] / f"bench_{kind.replace(' ', '_')}.log").open("w")
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.run", "--child", str(report)],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    samples: list[tuple[float, int, int]] = []  # (epoch seconds, tree RSS KiB, job RSS KiB)
    while child.poll() is None:
        samples.append((time.time(), *_rss_kib(child.pid)))
        time.sleep(RSS_POLL_SECONDS)
    wall = time.perf_counter() - started
    log.close()
    peak = max((tree for _, tree, _ in samples), default=0)
    result = RunResult(size, kind, as_of, child.returncode == 0, wall, peak / 1024)
    result.dbt_models = _dbt_node_times(Path(log.name))
    spans: dict[str, tuple[float, float]] = {}
    if report.exists():
        data = json.loads(report.read_text())
        spans = {k: (start, end) for k, (start, end) in data["steps"].items()}
        result.steps = {k: end - start for k, (start, end) in spans.items()}
        result.step_rows = data["step_rows"]
        result.error = data.get("error", "")
        for step, (start, end) in spans.items():
            inside = [tree for t, tree, _ in samples if start <= t <= end]
            result.step_peak_mib[step] = max(inside, default=0) / 1024
    result.peak = peak_split(samples, spans)
    return result


def _dbt_node_times(log_path: Path) -> list[tuple[str, float]]:
    """dbt's own per-node timings, from its console lines in the run's log."""
    text = log_path.read_text(errors="replace") if log_path.exists() else ""
    times = [(name, float(sec)) for name, sec in DBT_NODE_LINE.findall(text)]
    return sorted(times, key=lambda t: -t[1])


def child_main(report_path: Path) -> int:
    """Inside the measured process: execute the job, dump step timings from the event log."""
    import dagster as dg

    from assets.resources import AS_OF_TAG
    from crm.settings import Settings
    from pipelines.definitions import defs

    settings = Settings.from_env()
    instance = dg.DagsterInstance.ephemeral()
    job = defs.resolve_job_def("customer_daily")
    result = job.execute_in_process(
        instance=instance,
        tags={AS_OF_TAG: settings.resolved_as_of().isoformat()},
        raise_on_error=False,
    )
    starts: dict[str, float] = {}
    steps: dict[str, tuple[float, float]] = {}
    for entry in instance.all_logs(result.run_id):
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type_value == "STEP_START":
            starts[event.step_key] = entry.timestamp
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
            steps[event.step_key] = (starts.get(event.step_key, entry.timestamp), entry.timestamp)
    payload = {
        "steps": steps,
        "step_rows": _step_rows(settings, result.run_id) if result.success else {},
        "error": "" if result.success else _failure(result),
    }
    report_path.write_text(json.dumps(payload, indent=1))
    return 0 if result.success else 1


def _failure(result: object) -> str:
    from pipelines.run import failure_summary

    return failure_summary(result)  # type: ignore[arg-type]


def _step_rows(settings: object, run_id: str) -> dict[str, int]:
    """Rows each step works through: source rows read (ingest), raw rows (dbt), customers."""
    from crm.warehouse import connect

    with connect(settings.warehouse, read_only=True) as con:  # type: ignore[attr-defined]
        read = con.execute(
            "SELECT coalesce(sum(rows_read), 0) FROM quality.load_audit WHERE run_id = ?", [run_id]
        ).fetchone()[0]
        raw = sum(
            con.execute(f"SELECT count(*) FROM raw.{t}").fetchone()[0]
            for t in ("customers", "orders", "payments", "interactions")
        )
        customers = con.execute("SELECT count(*) FROM marts.customer_profile").fetchone()[0]
        interactions = con.execute("SELECT count(*) FROM raw.interactions").fetchone()[0]
    return {
        "raw_sources": int(read),
        "dbt_models": int(raw),
        "_raw": int(raw),
        "_customers": int(customers),
        "_interactions": int(interactions),
    }


def _rows_for(result: RunResult, step: str) -> int | None:
    """Rows a step works through: ingest reads sources, raw checks and dbt read raw rows, the
    Python steps read one row per customer."""
    if step in result.step_rows:
        return result.step_rows[step]
    if step.startswith("raw_") and step.endswith("_quality"):
        return result.step_rows.get("_raw")
    return result.step_rows.get("_customers")


def _step_columns(results: list[RunResult]) -> list[str]:
    """Steps in run order: the known ones first, then any the job gained since (checks...)."""
    seen = [s for s in STEP_ORDER if any(s in r.steps for r in results)]
    for r in results:
        seen += [s for s in r.steps if s not in seen]
    return seen


def run_lower_bound(size: str, as_of: str) -> LowerBound | None:
    """Read, write once and the floor on the full run's data, in a process of its own.

    A process of its own, so that the CPU time it reports is these parts' alone."""
    paths = data_paths(size)
    if not (paths["run"] / "warehouse.duckdb").exists():
        return None
    out = paths["run"] / "lower_bound.json"
    out.unlink(missing_ok=True)
    command = [
        sys.executable,
        "-m",
        "benchmarks.lower_bound",
        str(paths["run"]),
        str(paths["landing"]),
        str(paths["db"]),
        as_of,
        str(out),
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"[{size}] lower bound failed:\n{done.stderr[-2000:]}", file=sys.stderr, flush=True)
        return None
    return LowerBound.from_json(json.loads(out.read_text(encoding="utf-8")))


# ---------------------------------------------------------------------------- report


def machine_description() -> list[str]:
    import dbt.version
    import duckdb

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    mem_kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    load = os.getloadavg()
    return [
        f"- cores: {os.cpu_count()}, RAM: {mem_kib / 1024 / 1024:.1f} GiB, CPU: {cpu}",
        f"- Python {platform.python_version()}, DuckDB {duckdb.__version__}, dbt-core {dbt.version.__version__}",
        f"- load average at the end: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (the CPU is shared)",
    ]


def _rate(rows: int | None, seconds: float | None) -> str:
    if not rows or not seconds:
        return "–"
    return f"{rows / seconds:,.0f}"


def markdown(results: list[RunResult], volumes: dict[str, dict[str, int]]) -> str:
    lines = [
        f"# customer_daily benchmark, {datetime.now():%Y-%m-%d %H:%M}",
        "",
        *machine_description(),
        "",
    ]
    lines += [
        "| size | run | as_of | ok | wall s | peak RSS MiB | floor s | pipeline / floor |",
        "|---|---|---|---|---:|---:|---:|---:|",
    ]
    for r in results:
        ratio = f"{r.wall_seconds / r.floor_seconds:.0f}×" if r.floor_seconds else "–"
        floor = f"{r.floor_seconds:.1f}" if r.floor_seconds is not None else "–"
        lines.append(
            f"| {r.size} | {r.kind} | {r.as_of} | {'yes' if r.ok else 'NO'} | {r.wall_seconds:.1f} "
            f"| {r.peak_rss_mib:,.0f} | {floor} | {ratio} |"
        )
    lines += ["", "Memory at each run's peak (the job process, and its children: the dbt CLI):", ""]
    for r in results:
        if r.peak is not None:
            where = f"in {r.peak.step}" if r.peak.step else "between steps"
            lines.append(
                f"- {r.size} {r.kind}: {r.peak.total_mib:,.0f} MiB {where} = job "
                f"{r.peak.job_mib:,.0f} MiB + children {r.peak.children_mib:,.0f} MiB"
            )
    bounds = {r.size: r.lower_bound for r in results if r.lower_bound is not None}
    if bounds:
        lines += ["", *report_lines(bounds)]
    lines += ["", "Source volumes:", ""]
    for size, counts in volumes.items():
        lines.append(f"- {size}: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    lines += ["", "## Steps: seconds (rows/s, peak RSS of the process tree during the step)", ""]
    lines += [
        "| step | " + " | ".join(f"{r.size} {r.kind}" for r in results) + " |",
        "|---|" + "---:|" * len(results),
    ]
    for step in _step_columns(results):
        cells = []
        for r in results:
            seconds = r.steps.get(step)
            rate = _rate(_rows_for(r, step), seconds)
            peak = r.step_peak_mib.get(step)
            memory = f", {peak:,.0f} MiB" if peak else ""
            cells.append("–" if seconds is None else f"{seconds:.1f} ({rate}{memory})")
        lines.append(f"| {step} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "rows = source rows read (raw_sources), raw rows held (dbt_models, raw_*_quality), "
        "customers (the rest).",
        "",
        "## Slowest dbt nodes per run",
        "",
    ]
    for r in results:
        top = ", ".join(f"{name} {sec:.1f}s" for name, sec in r.dbt_models[:6]) or "–"
        lines.append(f"- {r.size} {r.kind}: {top}")
    failures = [r for r in results if not r.ok]
    if failures:
        lines += ["", "## Failures", ""] + [f"- {r.size} {r.kind}: {r.error}" for r in failures]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- main


def bench_size(size: str, as_of: str, incremental: bool) -> tuple[list[RunResult], dict[str, int]]:
    ensure_data(size, as_of)
    paths = data_paths(size)
    shutil.rmtree(paths["run"], ignore_errors=True)
    paths["run"].mkdir(parents=True)
    remove_new_day(size)  # a benchmark interrupted earlier may have left its new day behind
    volumes = source_counts(size)
    print(f"[{size}] full run ...", flush=True)
    full = run_job(size, "full", as_of)
    if full.ok:
        print(f"[{size}] the least any pipeline needs: read, write once, floor ...", flush=True)
        full.lower_bound = run_lower_bound(size, as_of)
        full.floor_seconds = full.lower_bound.floor.wall if full.lower_bound else None
    results = [full]
    if incremental and full.ok:
        next_day = (date.fromisoformat(as_of) + timedelta(days=1)).isoformat()
        try:
            added = append_new_day(size, date.fromisoformat(next_day))
            print(f"[{size}] new day {next_day} ({added}) ...", flush=True)
            results.append(run_job(size, "new day", next_day))
            print(f"[{size}] no-change rerun ...", flush=True)
            results.append(run_job(size, "no change", next_day))
        finally:
            remove_new_day(size)
    for r in results:
        print(
            f"[{size}] {r.kind}: {'ok' if r.ok else 'FAILED'} {r.wall_seconds:.1f}s, {r.peak_rss_mib:,.0f} MiB",
            flush=True,
        )
    return results, volumes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child_main(args.child)
    sizes = [
        s.strip().upper() for s in os.environ.get("BENCH_SIZES", "S,M,L").split(",") if s.strip()
    ]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        print(f"BENCH_SIZES: unknown size(s) {unknown}; use {', '.join(SIZES)}", file=sys.stderr)
        return 2
    incremental_sizes = {
        s.strip().upper() for s in os.environ.get("BENCH_INCREMENTAL", "L").split(",")
    }
    as_of = os.environ.get("BENCH_AS_OF", DEFAULT_AS_OF)
    results: list[RunResult] = []
    volumes: dict[str, dict[str, int]] = {}
    for size in sizes:
        size_results, volumes[size] = bench_size(size, as_of, size in incremental_sizes)
        results += size_results
        full = size_results[0]
        if full.step_rows:
            volumes[size] = {
                "customers": full.step_rows.get("_customers", 0),
                "interactions (raw)": full.step_rows.get("_interactions", 0),
                **volumes[size],
            }
    table = markdown(results, volumes)
    print("\n" + table)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"{datetime.now():%Y-%m-%d-%H%M}-{''.join(sizes)}.md"
    out.write_text(table, encoding="utf-8")
    print(f"saved {out.relative_to(ROOT)}")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
