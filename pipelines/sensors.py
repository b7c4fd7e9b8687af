"""Schedule and sensor of `customer_daily`.

The sensor never opens the warehouse (a run may be writing it): it fingerprints the landing
folder (path, size, mtime of every file) and starts a run when the fingerprint changes. The run
itself decides which files are new (by content hash), so a spurious trigger costs one quick run.
"""

import hashlib
import os
from datetime import datetime
from pathlib import Path

import dagster as dg

from assets.resources import AS_OF_TAG

SCHEDULE_CRON = "0 6 * * *"
SCHEDULE_TIMEZONE = "Asia/Shanghai"


def landing_fingerprint(landing_dir: Path) -> tuple[str, int]:
    if not landing_dir.exists():
        return "", 0
    digest = hashlib.sha256()
    count = 0
    for path in sorted(
        p for p in landing_dir.rglob("*") if p.is_file() and not p.name.startswith(".")
    ):
        stat = path.stat()
        digest.update(
            f"{path.relative_to(landing_dir)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode()
        )
        count += 1
    return (digest.hexdigest() if count else ""), count


def build_schedule(job: dg.JobDefinition) -> dg.ScheduleDefinition:
    @dg.schedule(
        job=job,
        cron_schedule=SCHEDULE_CRON,
        execution_timezone=SCHEDULE_TIMEZONE,
        name="customer_daily_schedule",
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Every day at 06:00 Asia/Shanghai, for that day's as_of.",
    )
    def customer_daily_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        scheduled: datetime = context.scheduled_execution_time
        as_of = scheduled.date().isoformat()
        return dg.RunRequest(run_key=f"daily-{as_of}", tags={AS_OF_TAG: as_of})

    return customer_daily_schedule


def build_landing_sensor(job: dg.JobDefinition) -> dg.SensorDefinition:
    @dg.sensor(
        job=job,
        name="landing_files_sensor",
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="Starts customer_daily when files in CRM_LANDING_DIR are added or changed.",
    )
    def landing_files_sensor(context: dg.SensorEvaluationContext):
        landing = Path(os.environ.get("CRM_LANDING_DIR", "").strip() or "data/landing")
        fingerprint, count = landing_fingerprint(landing)
        if not fingerprint:
            return dg.SkipReason(f"landing folder {landing} does not exist or is empty")
        if fingerprint == context.cursor:
            return dg.SkipReason(f"no change in {count} landing files")
        context.update_cursor(fingerprint)
        return dg.RunRequest(run_key=f"landing-{fingerprint[:16]}")

    return landing_files_sensor
