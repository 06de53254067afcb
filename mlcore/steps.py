"""The steps of every pipeline, one function each: what the DAG's tasks and the CLI call.

Each step takes plain strings (a pipeline or source name, ``ds`` as YYYY-MM-DD), reads its
settings from the environment, does its work on the lake and the warehouse, and returns a
small JSON-able summary (what Airflow keeps in XCom). Steps are idempotent for their ``ds``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import tempfile
from pathlib import Path

from mlcore import pipelines
from mlcore.config import Settings, load_settings, parse_ds
from mlcore.contract import SHARD_ROW_STEP
from mlcore.lake import features_prefix, open_lake
from mlcore.sources import get_source
from mlcore.warehouse import SQL_ROOT, open_warehouse

log = logging.getLogger(__name__)


def _settings(settings: Settings | None) -> Settings:
    return settings or load_settings()


def _warehouse(s: Settings):
    """The warehouse as every step opens it: its memory limit, and a bounded wait for a lock."""
    return open_warehouse(
        s.warehouse, memory_limit=s.duckdb_memory_limit, lock_wait=s.warehouse_lock_wait
    )


def ingest(source: str, ds: str, settings: Settings | None = None) -> dict:
    """Load the raw delivery of ``source`` for ``ds`` into ``raw.*``."""
    from mlcore.ingest import ingest_delivery

    s, day = _settings(settings), parse_ds(ds)
    with _warehouse(s) as con:
        return ingest_delivery(con, open_lake(s), get_source(source), day).summary()


def validate(source: str, ds: str, settings: Settings | None = None) -> dict:
    """Check ``source``'s delivery with its GX suites; quarantine bad rows; fail on critical."""
    from mlcore.validate import validate_source

    s, day = _settings(settings), parse_ds(ds)
    spec = get_source(source)
    with _warehouse(s) as con:
        _check_snapshots(con, spec, day)
        report = validate_source(
            con, open_lake(s), spec, day, max_bad_row_share=s.max_bad_row_share
        )
    return report.summary()


class StaleSource(RuntimeError):
    """A source's staging tables are for another day than the pipeline run's."""


def _check_snapshots(con, spec, day: dt.date) -> None:
    """The source's snapshot tables must hold ``day``'s delivery: each ingest replaces them, so
    a run of another day that ingested in between (a backfill beside the nightly run) would
    otherwise have this day staged with that day's catalogue, silently."""
    for table in spec.tables:
        if table.kind != "snapshot":
            continue
        days = [
            r[0]
            for r in con.execute(f"select distinct ds from {spec.raw_table(table.name)}").fetchall()
        ]
        if days and days != [day]:
            held = ", ".join(str(d) for d in sorted(days))
            raise StaleSource(
                f"{spec.name} for {day}: {spec.raw_table(table.name)} holds the delivery of "
                f"{held}, ingested since by another run; ingest {day} again "
                f"(nightshift run {spec.dag_id} --ds {day})"
            )


def stage(source: str, ds: str, settings: Settings | None = None) -> dict:
    """Run the source's staging SQL (``sql/<source>/``: rename and cast), shared by every
    pipeline that reads the source, and record the day it was staged for."""
    from mlcore.sqlrun import run_sql_dir

    s, day, spec = _settings(settings), parse_ds(ds), get_source(source)
    with _warehouse(s) as con:
        _check_snapshots(con, spec, day)
        steps = run_sql_dir(con, spec.name, {"ds": day}) if (SQL_ROOT / spec.name).is_dir() else []
        tables = {st["table"]: st["rows"] for st in steps if st.get("table")}
        con.execute("begin transaction")
        con.execute("delete from ops.staged_sources where source = ?", [spec.name])
        con.execute(
            "insert into ops.staged_sources values (?, ?, ?, now()::timestamp)",
            [spec.name, day, json.dumps(tables, sort_keys=True)],
        )
        con.execute("commit")
    log.info("staged %s for ds=%s: %s", source, day, tables)
    return {"sql": [st["name"] for st in steps], "tables": tables}


def _check_staged(con, spec, day: dt.date) -> None:
    rows = dict(
        con.execute(
            "select source, ds from ops.staged_sources where source in "
            f"({', '.join('?' for _ in spec.sources)})",
            list(spec.sources),
        ).fetchall()
    )
    for source in spec.sources:
        staged = rows.get(source)
        if staged != day:
            where = f"staged for {staged}" if staged else "never staged"
            raise StaleSource(
                f"{spec.name} for {day}: source {source} is {where}; stage it for {day} first "
                f"(nightshift run {spec.name} --ds {day} runs the whole chain)"
            )


def build_features(pipeline: str, ds: str, settings: Settings | None = None) -> dict:
    """Run ``sql/<pipeline>/`` in order and export the feature tables to the lake."""
    from mlcore.sqlrun import run_sql_dir

    s, day, spec = _settings(settings), parse_ds(ds), pipelines.get(pipeline)
    lake = open_lake(s)
    with _warehouse(s) as con:
        _check_staged(con, spec, day)
        if spec.calendars:
            from mlcore import calendars

            calendars.refresh(con, spec.calendars, day.year + 1)
        steps = run_sql_dir(con, spec.sql, {"ds": day})
        exported = {}
        with tempfile.TemporaryDirectory(prefix="nightshift-features-") as tmp:
            for file_name, table in spec.feature_exports.items():
                _export(con, table, Path(tmp) / file_name, spec.shard_rows)
                exported[file_name] = con.execute(f"select count(*) from {table}").fetchone()[0]
            lake.replace_prefix(features_prefix(pipeline, day), tmp)
    log.info("features for %s ds=%s: %s", pipeline, day, exported)
    return {"sql": [st.get("name") for st in steps], "exported": exported}


def _export(con, table: str, target: Path, shard_rows: int) -> None:
    """Write ``table`` to ``target``: one Parquet file, or (``target`` named ``x/``) a folder of
    shards ``part-00000.parquet``, … of at most ``shard_rows`` rows each.

    Rows are sorted, so the same features give the same bytes: the trainer's data fingerprint,
    the model version and the models themselves depend on it. COPY cannot bind its target; the
    path is our own temporary file.
    """
    query = f"select * from {table} order by all"
    if target.suffix == ".parquet":
        con.execute(f"copy ({query}) to '{target}' (format parquet, row_group_size 1000000)")
        return
    # One row group per file; DuckDB sizes row groups in multiples of SHARD_ROW_STEP.
    rows = shard_rows // SHARD_ROW_STEP * SHARD_ROW_STEP
    con.execute(
        f"copy ({query}) to '{target}' (format parquet, row_group_size {rows}, "
        "row_groups_per_file 1, per_thread_output false)"
    )
    import pyarrow.parquet as pq

    written = sorted(target.glob("*.parquet"), key=lambda p: int(p.stem.rpartition("_")[2]))
    for i, path in enumerate(written):
        n = pq.ParquetFile(path).metadata.num_rows
        if n > shard_rows:  # DuckDB's row-group sizing changed: fail rather than mislabel
            raise RuntimeError(f"{table}: shard {path.name} holds {n} rows > {shard_rows}")
        path.rename(target / f"part-{i:05d}.parquet")


def train(pipeline: str, ds: str, settings: Settings | None = None) -> dict:
    """Train and evaluate on the lake's features; write model, metrics, predictions back.

    This is what `nightshift train` runs, locally, in a Docker container or in a pod: it needs
    nothing but the lake. The run's evaluation figure for its kind lands beside its manifest.
    """
    from mlcore import evaluation, runs

    s, day, spec = _settings(settings), parse_ds(ds), pipelines.get(pipeline)
    lake = open_lake(s)
    manifest = runs.train(spec, lake, day, s)
    plot_key = evaluation.write_figure(lake, manifest)
    return {
        "version": manifest.version,
        "kind": manifest.kind,
        "models": {k: v.metrics for k, v in manifest.models.items()},
        "baselines": {k: v.metrics for k, v in manifest.baselines.items()},
        "challengers": {k: v.metrics for k, v in manifest.challengers.items()},
        "rows": manifest.counts,
        "timings": manifest.timings,
        "plot": plot_key,
    }


def trained_version(pipeline: str, ds: dt.date, settings: Settings | None = None) -> str:
    from mlcore.runs import run_pointer_key

    lake = open_lake(_settings(settings))
    key = run_pointer_key(pipeline, ds)
    if not lake.exists(key):
        raise RuntimeError(f"{pipeline}: no model trained for {ds} (missing {lake.url(key)})")
    return json.loads(lake.read_text(key))["version"]


def gate(pipeline: str, ds: str, settings: Settings | None = None) -> dict:
    """Register the run's models; promote those that beat baselines and champion; choose what
    serves each slot tonight (a degraded fallback when nothing passed). Raises GateFailed
    when nothing beats the naive baseline."""
    from mlcore.registry import gate_run

    s, day = _settings(settings), parse_ds(ds)
    pipelines.get(pipeline)  # an unknown name is refused before it becomes a lake path
    version = trained_version(pipeline, day, s)
    with _warehouse(s) as con:
        result = gate_run(con, open_lake(s), pipeline, version, tolerance=s.champion_tolerance)
    return {
        "version": version,
        "decisions": result["decisions"],
        "serving": {slot: dataclasses.asdict(m) for slot, m in result["serving"].items()},
        "degraded": result["degraded"],
    }


def publish(pipeline: str, ds: str, settings: Settings | None = None) -> dict:
    """Publish the pipeline's tables for ``ds`` (marts partition, lake outputs)."""
    from mlcore.contract import PublishContext
    from mlcore.publish import ensure_marts, publish_tables
    from mlcore.registry import serving_models

    s, day, spec = _settings(settings), parse_ds(ds), pipelines.get(pipeline)
    lake = open_lake(s)
    with _warehouse(s) as con:
        serving = serving_models(con, pipeline, day)
        if not serving:
            raise RuntimeError(f"{pipeline}: nothing gated for {day}; run gate_model first")
        ensure_marts(con, spec.tables)
        ctx = PublishContext(con, lake, day, s, spec.load_settings(), serving)
        selects = spec.load_publisher()(ctx)
        versions = ",".join(sorted({m.version for m in serving.values()}))
        result = publish_tables(con, lake, day, selects, tables=spec.tables, model_version=versions)
    degraded = sorted({m.reason for m in serving.values() if m.status == "degraded"})
    return {
        **result,
        "serving": {
            slot: f"{m.model_name} {m.version} ({m.status})" for slot, m in serving.items()
        },
        "degraded": "; ".join(degraded) or None,
    }
