"""The contract refuses bad declarations and bad publish queries with one clear line."""

from __future__ import annotations

import duckdb
import pytest

from mlcore.contract import ContractError, Pipeline, TableSchema
from mlcore.publish import SchemaMismatch, check_schema, publish_tables

TABLE = TableSchema(
    "t", grain="one row per id", key=("ds", "id"), columns={"ds": "date", "id": "integer"}
)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"columns": {"id": "integer", "ds": "date"}}, "first column must be ds"),
        ({"key": ("id",)}, "key must start with ds"),
        ({"key": ("ds", "nope")}, "not declared"),
        ({"name": "Bad-Name"}, "lower-case"),
    ],
)
def test_a_bad_table_schema_is_refused(kwargs, match):
    args = {
        "name": "t",
        "grain": "g",
        "key": ("ds", "id"),
        "columns": {"ds": "date", "id": "integer"},
    }
    with pytest.raises(ContractError, match=match):
        TableSchema(**{**args, **kwargs})


def test_a_bad_pipeline_is_refused():
    base = dict(
        name="p",
        kind="binary",
        sources=("s",),
        tables=(TABLE,),
        feature_exports={},
        trainer="m:t",
        publisher="m:p",
    )
    with pytest.raises(ContractError, match="kind must be one of"):
        Pipeline(**{**base, "kind": "magic"})
    with pytest.raises(ContractError, match="declares no source"):
        Pipeline(**{**base, "sources": ()})
    with pytest.raises(ContractError, match="one twice"):
        Pipeline(**{**base, "tables": (TABLE, TABLE)})
    with pytest.raises(ContractError, match="not a features"):
        Pipeline(**{**base, "feature_exports": {"x.parquet": "staging.x"}})
    for bad in ("x.csv", "a/b.parquet", "a/b/", "/"):
        with pytest.raises(ContractError, match="no file name"):
            Pipeline(**{**base, "feature_exports": {bad: "features.x"}})
    with pytest.raises(ContractError, match="shard_rows"):
        Pipeline(**{**base, "shard_rows": 100})
    assert Pipeline(**{**base, "feature_exports": {"x/": "features.x"}}).shard_rows == 200_000


def test_a_folder_export_writes_ordered_shards_of_at_most_shard_rows(tmp_path):
    import pyarrow.dataset as pads
    import pyarrow.parquet as pq

    from mlcore.steps import _export

    con = duckdb.connect()
    con.execute("create table t as select (9999 - range) as i from range(10000)")
    _export(con, "t", tmp_path / "t", 4100)
    shards = sorted(p.name for p in (tmp_path / "t").iterdir())
    assert shards == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    sizes = [pq.ParquetFile(tmp_path / "t" / s).metadata.num_rows for s in shards]
    assert max(sizes) <= 4100 and sum(sizes) == 10000
    values = pads.dataset(tmp_path / "t").to_table().column("i").to_pylist()
    assert values == list(range(10000))  # sorted across shards, in shard order


def test_a_publish_query_off_the_declared_schema_publishes_nothing(tmp_path):
    import datetime as dt

    from mlcore.lake import LocalLake
    from mlcore.warehouse import connect

    con = connect(tmp_path / "w.duckdb")
    ds = dt.date(2024, 1, 31)
    lake = LocalLake(tmp_path / "lake")
    publish_tables(
        con, lake, ds, {"t": "select date '2024-01-31' as ds, 1::integer as id"}, tables=(TABLE,)
    )
    before = con.execute("select * from marts.t").fetchall()
    with pytest.raises(SchemaMismatch, match="unexpected: id varchar; missing: id integer"):
        publish_tables(
            con, lake, ds, {"t": "select date '2024-01-31' as ds, 'x' as id"}, tables=(TABLE,)
        )
    with pytest.raises(SchemaMismatch, match="declares"):
        publish_tables(con, lake, ds, {}, tables=(TABLE,))
    assert con.execute("select * from marts.t").fetchall() == before
    with pytest.raises(SchemaMismatch, match="another order"):
        check_schema(duckdb.connect(), TABLE, "select 1::integer as id, date '2024-01-31' as ds")


def test_features_refuse_a_source_staged_for_another_day(tmp_path):
    from mlcore import steps
    from mlcore.config import Settings
    from mlcore.warehouse import connect

    settings = Settings(lake=str(tmp_path / "lake"), warehouse=tmp_path / "w.duckdb")
    with pytest.raises(
        steps.StaleSource, match="pozytywka is never staged; stage it for 2024-01-31 first"
    ):
        steps.build_features("music_skip", "2024-01-31", settings)
    con = connect(settings.warehouse)
    con.execute(
        "insert into ops.staged_sources values ('pozytywka', date '2024-01-30', '{}', now())"
    )
    con.close()
    with pytest.raises(steps.StaleSource, match="staged for 2024-01-30"):
        steps.build_features("music_skip", "2024-01-31", settings)
