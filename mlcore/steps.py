"""The steps of every pipeline, one function each: what the DAG's tasks and the CLI call.

Each step takes plain strings (a pipeline or source name, ``ds`` as YYYY-MM-DD), reads its
settings from the environment, does its work on the lake and the warehouse, and returns a
small JSON-able summary (what Airflow keeps in XCom). Steps are idempotent for their ``ds``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import tempfile
import time
from pathlib import Path

from mlcore import pipelines
from mlcore.config import Settings, load_settings
from mlcore.lake import features_prefix, models_prefix, open_lake
from mlcore.sources import get_source
from mlcore.warehouse import open_warehouse

log = logging.getLogger(__name__)


def parse_ds(ds: str | dt.date) -> dt.date:
    if isinstance(ds, dt.date):
        return ds
    try:
        return dt.date.fromisoformat(ds)
    except ValueError:
        raise ValueError(f"ds must be a date like 2024-01-31, got {ds!r}") from None


def _settings(settings: Settings | None) -> Settings:
    return settings or load_settings()


def run_pointer_key(pipeline: str, ds: dt.date) -> str:
    """Where the trainer records which model version it trained for ``ds``."""
    return f"{models_prefix(pipeline)}/runs/ds={ds.isoformat()}.json"


def ingest(source: str, ds: str, settings: Settings | None = None) -> dict:
    """Load the raw delivery of ``source`` for ``ds`` into ``raw.*``."""
    from mlcore.ingest import ingest_delivery

    s, day = _settings(settings), parse_ds(ds)
    with open_warehouse(s.warehouse, memory_limit=s.duckdb_memory_limit) as con:
        return ingest_delivery(con, open_lake(s), get_source(source), day).summary()


def validate(source: str, ds: str, settings: Settings | None = None) -> dict:
    """Check ``source``'s delivery with its GX suites; quarantine bad rows; fail on critical."""
    from mlcore.validate import validate_source

    s, day = _settings(settings), parse_ds(ds)
    with open_warehouse(s.warehouse, memory_limit=s.duckdb_memory_limit) as con:
        report = validate_source(
            con, open_lake(s), get_source(source), day, max_bad_row_share=s.max_bad_row_share
        )
    return report.summary()


def build_features(pipeline: str, ds: str, settings: Settings | None = None) -> dict:
    """Run ``sql/<pipeline>/`` in order and export the feature tables to the lake."""
    from mlcore.sqlrun import run_sql_dir

    s, day, spec = _settings(settings), parse_ds(ds), pipelines.get(pipeline)
    lake = open_lake(s)
    with open_warehouse(s.warehouse, memory_limit=s.duckdb_memory_limit) as con:
        steps = run_sql_dir(con, pipeline, {"ds": day})
        exported = {}
        with tempfile.TemporaryDirectory(prefix="nightshift-features-") as tmp:
            for file_name, table in spec.feature_exports.items():
                # Sorted, so the same features give the same bytes: the trainer's data
                # fingerprint, the model version and the models themselves depend on it.
                # COPY cannot bind its target; the path is our own temporary file.
                con.execute(
                    f"copy (select * from {table} order by all) to '{Path(tmp) / file_name}' "
                    "(format parquet, row_group_size 1000000)"
                )
                exported[file_name] = con.execute(f"select count(*) from {table}").fetchone()[0]
            lake.replace_prefix(features_prefix(pipeline, day), tmp)
    log.info("features for %s ds=%s: %s", pipeline, day, exported)
    return {"sql": [st.get("name") for st in steps], "exported": exported}


def train(pipeline: str, ds: str, settings: Settings | None = None) -> dict:
    """Train and evaluate on the lake's features; write model, metrics, predictions back.

    This is what `nightshift train` runs, locally, in a Docker container or in a pod: it needs
    nothing but the lake.
    """
    s, day, spec = _settings(settings), parse_ds(ds), pipelines.get(pipeline)
    lake = open_lake(s)
    started = time.perf_counter()
    manifest = spec.load(spec.trainer)(lake, day, s)
    lake.write_text(
        run_pointer_key(pipeline, day),
        json.dumps({"version": manifest["version"], "ds": day.isoformat()}),
    )
    log.info("trained %s %s in %.0fs", pipeline, manifest["version"], time.perf_counter() - started)
    plot_key = _plot_holdout(lake, manifest)
    return {
        "version": manifest["version"],
        "models": {k: v["metrics"] for k, v in manifest["models"].items()},
        "baselines": {k: v.get("metrics", v) for k, v in manifest["baselines"].items()},
        "rows": {
            k: manifest.get(k) for k in ("plays_rows", "train_rows", "test_rows", "candidate_rows")
        },
        "timings": manifest.get("timings", {}),
        "plot": plot_key,
    }


def _plot_holdout(lake, manifest: dict) -> str | None:
    """Draw the run's ROC and calibration curves next to its manifest (a picture for ops)."""
    import io

    import pandas as pd

    from mlcore.plots import holdout_figure_png

    key = manifest.get("holdout_key")
    if not key:
        return None
    holdout = pd.read_parquet(io.BytesIO(lake.read_bytes(key)))
    cols = [c for c in holdout.columns if not c.startswith("p_skip_champion_")]
    title = f"{manifest['pipeline']} {manifest['version']} ({len(holdout):,} holdout rows)"
    png_key = f"{models_prefix(manifest['pipeline'], manifest['version'])}/holdout.png"
    lake.write_bytes(png_key, holdout_figure_png(holdout[cols], title))
    return png_key


def trained_version(pipeline: str, ds: dt.date, settings: Settings | None = None) -> str:
    lake = open_lake(_settings(settings))
    key = run_pointer_key(pipeline, ds)
    if not lake.exists(key):
        raise RuntimeError(f"{pipeline}: no model trained for {ds} (missing {lake.url(key)})")
    return json.loads(lake.read_text(key))["version"]


def gate(pipeline: str, ds: str, settings: Settings | None = None) -> dict:
    """Register the run's models; promote those that beat baselines and champion."""
    from mlcore.registry import gate_run

    s, day = _settings(settings), parse_ds(ds)
    version = trained_version(pipeline, day, s)
    with open_warehouse(s.warehouse, memory_limit=s.duckdb_memory_limit) as con:
        decisions = gate_run(con, open_lake(s), pipeline, version, tolerance=s.champion_tolerance)
    unserved = {m: d["reason"] for m, d in decisions.items() if not d.get("serving_version")}
    if unserved:
        reasons = "; ".join(f"{m}: {r}" for m, r in unserved.items())
        raise RuntimeError(f"{pipeline}: no model can serve ({reasons})")
    return {"version": version, "decisions": decisions}


def publish(pipeline: str, ds: str, settings: Settings | None = None) -> dict:
    """Publish the pipeline's tables for ``ds`` (marts partition, lake outputs)."""
    from mlcore.publish import publish_tables
    from mlcore.registry import serving_versions

    s, day, spec = _settings(settings), parse_ds(ds), pipelines.get(pipeline)
    lake = open_lake(s)
    with open_warehouse(s.warehouse, memory_limit=s.duckdb_memory_limit) as con:
        serving = serving_versions(con, pipeline)
        selects = spec.load(spec.publisher)(con, lake, day, s, serving)
        return publish_tables(
            con, lake, day, selects, model_version=",".join(sorted(set(serving.values())))
        )
