"""Publishing replaces exactly one ds partition, atomically, and mirrors it to the lake."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pyarrow.parquet as pq
import pytest

from mlcore.lake import LocalLake
from mlcore.pipelines.music_skip.publish import plan_cache
from mlcore.publish import publish_tables, success_key
from mlcore.warehouse import WarehouseError, connect, replace_partition

D1, D2 = dt.date(2024, 1, 30), dt.date(2024, 1, 31)


@pytest.fixture
def env(tmp_path):
    con = connect(tmp_path / "w.duckdb")
    yield con, LocalLake(tmp_path / "lake")
    con.close()


def _rows(con, table):
    return con.execute(f"select * from {table} order by all").fetchall()


def test_publish_replaces_only_its_partition(env):
    con, lake = env
    publish_tables(con, lake, D1, {"t": "select DATE '2024-01-30' as ds, 1 as x"})
    publish_tables(con, lake, D2, {"t": "select DATE '2024-01-31' as ds, 2 as x"})
    out = publish_tables(
        con, lake, D2, {"t": "select DATE '2024-01-31' as ds, unnest([3, 4]) as x"}
    )
    assert out["tables"] == {"t": 2}
    assert _rows(con, "marts.t") == [(D1, 1), (D2, 3), (D2, 4)]
    key = "outputs/t/ds=2024-01-31/part-0.parquet"
    assert lake.list("outputs/t/ds=2024-01-31") == ["outputs/t/ds=2024-01-31/_SUCCESS", key]
    assert pq.read_table(lake.path(key)).column("x").to_pylist() == [3, 4]
    assert con.execute("select count(*) from ops.publish_log").fetchone()[0] == 3


def test_a_failing_publish_changes_nothing(env):
    con, lake = env
    publish_tables(
        con,
        lake,
        D2,
        {
            "a": "select DATE '2024-01-31' as ds, 1 as x",
            "b": "select DATE '2024-01-31' as ds, 1 as y",
        },
    )
    with pytest.raises(Exception, match="Conversion Error|Could not convert"):
        publish_tables(
            con,
            lake,
            D2,
            {
                "a": "select DATE '2024-01-31' as ds, 99 as x",
                "b": "select DATE '2024-01-31' as ds, 'not a number'::integer as y",
            },
        )
    assert _rows(con, "marts.a") == [(D2, 1)]
    assert _rows(con, "marts.b") == [(D2, 1)]


class _FailingLake(LocalLake):
    """A lake whose writes of one table's partition fail, as a run killed there would stop."""

    def __init__(self, root, failing_prefix: str):
        super().__init__(root)
        self.failing_prefix = failing_prefix

    def put_file(self, local, key):
        if key.startswith(self.failing_prefix):
            raise OSError(f"killed while writing {key}")
        super().put_file(local, key)


def test_a_lake_day_is_marked_complete_only_when_every_table_is_written(env, tmp_path):
    con, lake = env
    day = {
        "a": "select DATE '2024-01-31' as ds, 1 as x",
        "b": "select DATE '2024-01-31' as ds, unnest([1, 2]) as y",
    }
    publish_tables(con, lake, D2, day, model_version="v1")
    marker = json.loads(lake.read_text(success_key("b", D2)))
    assert marker == {
        "table": "b",
        "ds": "2024-01-31",
        "rows": 2,
        "files": ["part-0.parquet"],
        "model_version": "v1",
        "tables_of_the_run": ["a", "b"],
    }
    assert lake.list("outputs/a/ds=2024-01-31") == [
        "outputs/a/ds=2024-01-31/_SUCCESS",
        "outputs/a/ds=2024-01-31/part-0.parquet",
    ]

    # Re-published, killed after table a's file and before b's: the marts hold the new rows
    # (committed first), and NO table of the day is marked, so lake readers skip the day
    # rather than read a's new rows beside b's old ones.
    killed = _FailingLake(lake.root, "outputs/b/")
    again = {"a": day["a"].replace("1 as x", "7 as x"), "b": day["b"]}
    with pytest.raises(OSError, match="killed while writing outputs/b/"):
        publish_tables(con, killed, D2, again, model_version="v2")
    assert _rows(con, "marts.a") == [(D2, 7)]
    assert not lake.exists(success_key("a", D2)) and not lake.exists(success_key("b", D2))
    # the rerun marks the whole day again
    publish_tables(con, lake, D2, again, model_version="v2")
    for table in ("a", "b"):
        assert json.loads(lake.read_text(success_key(table, D2)))["model_version"] == "v2"
    path = lake.path("outputs/a/ds=2024-01-31/part-0.parquet")
    assert pq.read_table(path).column("x").to_pylist() == [7]


def test_rows_of_another_ds_are_refused(env):
    con, lake = env
    with pytest.raises(ValueError, match="another ds"):
        publish_tables(con, lake, D2, {"t": "select DATE '2024-01-30' as ds, 1 as x"})
    assert not con.execute(
        "select count(*) from information_schema.tables where table_name = 't'"
    ).fetchone()[0]


def test_replace_partition_refuses_hostile_table_names(env):
    con, _ = env
    with pytest.raises(WarehouseError, match="not a valid table name"):
        replace_partition(con, "marts.t; drop table ops.model_runs", D1, "select 1")


def test_cache_plan_respects_the_budget_and_ranks_by_demand():
    rates = {"SLOW": 1.0, "MEDIUM": 2.0, "FAST": 10.0}
    demand = pd.DataFrame(
        {
            "track_id": ["hot", "warm", "cold", "dead"],
            "storage_class": ["SLOW", "SLOW", "FAST", "MEDIUM"],
            "daily_cost": [1.0, 1.0, 10.0, 2.0],
            "duration_ms": [1.0, 1.0, 1.0, 1.0],
            "expected_plays": [50.0, 0.5, 0.2, 0.0],
            "p_full": [0.8, 0.9, 0.5, 0.7],
        }
    )
    plan = plan_cache(demand, rates, budget=None).set_index("track_id")
    # Today's cost is 14; all-SLOW costs 4, so 10 is spare: FAST for the hot track (+9), and
    # the 1 left buys MEDIUM for the next one in line; the cold FAST track is moved down.
    assert plan.loc["hot", "recommended_storage_class"] == "FAST"
    assert plan.loc["warm", "recommended_storage_class"] == "MEDIUM"
    assert plan.loc["cold", "recommended_storage_class"] == "SLOW"
    assert plan.loc["dead", "recommended_storage_class"] == "SLOW"
    assert plan["recommended_daily_cost"].sum() <= demand["daily_cost"].sum()
    assert plan.loc["hot", "expected_full_plays"] == pytest.approx(40.0)
    tight = plan_cache(demand, rates, budget=4.0)
    assert set(tight["recommended_storage_class"]) == {"SLOW"}
