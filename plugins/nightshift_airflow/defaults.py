"""What every nightshift DAG shares: its start date, schedule semantics, retries and callback.

Only constants and cheap objects live here: the scheduler imports this module while it
parses every DAG file.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import CronDataIntervalTimetable

from nightshift_airflow.callbacks import task_failed, task_retrying

# Early enough for any delivery a source dates (MovieLens ratings start in 1995): a run whose
# ds falls before a DAG's start date runs none of its tasks and still reads "success". With
# catchup=False the scheduler never backfills from it.
START_DATE = dt.datetime(1995, 1, 1, tzinfo=dt.UTC)

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "nightshift",
    "retries": 2,
    "retry_delay": dt.timedelta(minutes=5),
    "on_failure_callback": task_failed,
    "on_retry_callback": task_retrying,
}

TAGS = ["nightshift"]


def nightly(cron: str) -> CronDataIntervalTimetable:
    """A cron schedule whose runs cover the day that has just ended.

    Airflow 3 turns a plain ``schedule="@daily"`` into a CronTriggerTimetable, whose logical
    date is the moment the run starts (``ds`` would be *today*, whose files have not all
    arrived). A data-interval timetable makes the run that starts at 00:00 UTC on D+1 have
    ``ds = D``: the nightly run processes the delivery of the day that is complete.
    """
    return CronDataIntervalTimetable(cron, timezone="UTC")
