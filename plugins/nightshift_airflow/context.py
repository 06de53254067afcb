"""The run's date: what every nightshift task works on.

Its own module so that the task builders and the train launcher both use it without
importing each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow.sdk import get_current_context


def run_ds(context: Mapping[str, Any] | None = None) -> str:
    """The run's ``ds`` (YYYY-MM-DD), from its logical date.

    Airflow 3 allows runs without a logical date; a nightshift run needs one because every
    step works on one ``ds`` partition, so such a run fails at once with the reason.
    """
    from airflow.sdk.exceptions import AirflowFailException

    context = get_current_context() if context is None else context
    ds = context.get("ds")
    if not ds:
        raise AirflowFailException(
            "this run has no logical date: trigger it with one (the ds to process)"
        )
    return ds
