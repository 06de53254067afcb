"""The run's ds: from the logical date, or from the Asset events that started the run.

The events are built with Airflow's own accessor (what a task of an Asset-triggered run gets
as ``triggering_asset_events``), not a stand-in mapping.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import pytest

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
if str(PLUGINS) not in sys.path:
    sys.path.insert(0, str(PLUGINS))

from airflow.sdk.exceptions import AirflowFailException  # noqa: E402
from airflow.sdk.execution_time.comms import AssetEventDagRunReferenceResult  # noqa: E402
from airflow.sdk.execution_time.context import TriggeringAssetEventsAccessor  # noqa: E402
from nightshift_airflow.assets import source_asset  # noqa: E402
from nightshift_airflow.context import run_ds  # noqa: E402


def event(source: str, extra: dict) -> AssetEventDagRunReferenceResult:
    asset = source_asset(source)
    return AssetEventDagRunReferenceResult(
        asset={"name": asset.name, "uri": asset.uri, "extra": {}},
        extra=extra,
        source_task_id=f"stage_{source}",
        source_dag_id=f"ingest_{source}",
        source_run_id="scheduled__x",
        source_map_index=-1,
        source_aliases=[],
        timestamp=dt.datetime(2024, 2, 1, 0, 5, tzinfo=dt.UTC),
    )


def triggered(*events) -> dict:
    return {"ds": None, "triggering_asset_events": TriggeringAssetEventsAccessor.build(events)}


def test_a_run_with_a_logical_date_works_on_its_ds():
    assert run_ds({"ds": "2024-01-31", "triggering_asset_events": {}}) == "2024-01-31"


def test_an_asset_triggered_run_works_on_the_ds_its_source_staged():
    assert run_ds(triggered(event("pozytywka", {"ds": "2024-01-31"}))) == "2024-01-31"


def test_two_sources_give_the_last_day_that_both_have_staged():
    context = triggered(
        # hm staged two nights since the last run, taobao only the first of them
        event("hm", {"ds": "2024-01-30"}),
        event("hm", {"ds": "2024-01-31"}),
        event("taobao", {"ds": "2024-01-30"}),
    )
    assert run_ds(context) == "2024-01-30"


def test_a_run_with_neither_fails_with_the_reason():
    with pytest.raises(AirflowFailException, match="no logical date"):
        run_ds(triggered(event("pozytywka", {"rows": 3})))
