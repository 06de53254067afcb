"""The run's date: what every nightshift task works on.

Its own module so that the task builders and the train launcher both use it without
importing each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow.sdk import get_current_context


def run_ds(context: Mapping[str, Any] | None = None) -> str:
    """The run's ``ds`` (YYYY-MM-DD).

    A scheduled or manual run has a logical date: its ``ds``. A run that the scheduler started
    because the pipeline's sources were staged (an Asset-triggered run) has none; its ``ds``
    is in the triggering events' ``extra``: per source the latest day staged, and of those the
    earliest, the last day every source has delivered (features would refuse a source that is
    behind). A run with neither fails at once with the reason.
    """
    from airflow.sdk.exceptions import AirflowFailException

    context = get_current_context() if context is None else context
    ds = context.get("ds")
    if ds:
        return ds
    latest: dict[str, str] = {}
    for asset, events in (context.get("triggering_asset_events") or {}).items():
        days = [e.extra["ds"] for e in events if (e.extra or {}).get("ds")]
        if days:
            latest[getattr(asset, "name", str(asset))] = max(days)
    if latest:
        return min(latest.values())
    raise AirflowFailException(
        "this run has no logical date and no triggering Asset event with a ds: trigger it "
        "with a logical date (the ds to process)"
    )


def with_run_ds(context: Any) -> Any:
    """``context`` with ``ds`` set to :func:`run_ds` where the run has no logical date.

    For operators whose arguments are templates (``--ds {{ ds }}``): an Asset-triggered run
    renders the ``ds`` its triggering events carry.
    """
    if not context.get("ds"):
        context["ds"] = run_ds(context)
    return context
