"""Failure callbacks: one log line per failed task that says where and why.

On-call reads ``nightshift task failed: dag=... task=... ds=... reason=...`` in the task log
(and anything that tails logs can alert on the prefix); the full traceback stays above it.
Airflow calls ``on_failure_callback`` only once the retries are spent; an attempt that will be
retried logs ``nightshift task retrying: ...`` instead, so alerts on the first prefix fire once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)

PREFIX = "nightshift task failed"
RETRY_PREFIX = "nightshift task retrying"


def first_line(exc: BaseException | str | None) -> str:
    """The first non-empty line of an exception's message, prefixed with its type.

    Airflow's own exceptions (``AirflowFailException`` raised for a failed validation, say)
    carry a message written for people, so their type is left out.
    """
    if exc is None:
        return "unknown (no exception in the context)"
    if isinstance(exc, str):
        message, kind = exc, ""
    else:
        message, kind = str(exc), type(exc).__name__
    line = next((ln.strip() for ln in message.splitlines() if ln.strip()), "")
    if not kind or kind.startswith("Airflow"):
        return line or kind or "unknown"
    return f"{kind}: {line}" if line else kind


def failure_line(context: Mapping[str, Any], prefix: str = PREFIX) -> str:
    """Format the one-line summary of a failed task from its Airflow context."""
    ti = context.get("task_instance") or context.get("ti")
    dag = context.get("dag")
    dag_id = getattr(ti, "dag_id", None) or getattr(dag, "dag_id", None) or "?"
    task_id = getattr(ti, "task_id", None) or getattr(context.get("task"), "task_id", None) or "?"
    ds = context.get("ds") or "-"
    reason = first_line(context.get("exception"))
    return f"{prefix}: dag={dag_id} task={task_id} ds={ds} reason={reason}"


def task_failed(context: Mapping[str, Any]) -> None:
    """``on_failure_callback`` for every nightshift task (set through ``default_args``)."""
    log.error("%s", failure_line(context))


def task_retrying(context: Mapping[str, Any]) -> None:
    """``on_retry_callback``: the same line for an attempt that Airflow will retry."""
    log.warning("%s", failure_line(context, RETRY_PREFIX))
