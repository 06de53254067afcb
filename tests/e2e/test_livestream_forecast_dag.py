"""livestream_forecast end to end through Airflow (dag.test), as `nightshift run` runs it.

Two synthetic rooms over eight days with the real export's defects (a 3-day backtest in the
tests: tests/conftest.py): `nightshift run` runs the `ingest_douyin_live` DAG and then
`livestream_forecast`; checks the mart (tomorrow, every room and minute, a band around each
forecast), the served model's backtest (its scores recompute from it), the figures, and the
real one-day sample refused in one line. Every step over two nights, kills and concurrency are
held to the contract by tests/conformance and tests/faults.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import duckdb
import pandas as pd
import pytest
from conftest import shared_data

from mlcore.metrics import forecast_metrics
from mlcore.pipelines import get
from mlcore.sources import get_source

DS = dt.date(2024, 1, 31)
PIPELINE = "livestream_forecast"


def _run(root, ds: dt.date) -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        NIGHTSHIFT_LAKE=str(root / "lake"),
        NIGHTSHIFT_WAREHOUSE=str(root / "warehouse.duckdb"),
        NIGHTSHIFT_TRAIN_BACKEND="local",
        AIRFLOW_HOME=str(root / "airflow"),
        NIGHTSHIFT_LOG_LEVEL="WARNING",
    )
    return subprocess.run(
        [sys.executable, "-m", "mlcore.cli", "run", PIPELINE, "--ds", ds.isoformat()],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e-livestream")
    source = get_source("douyin_live")
    source.load_synth()(root / "lake", DS, seed=3, **source.test_nights[0])
    done = _run(root, DS)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return root


def test_publishes_tomorrow_for_every_room_and_minute_with_a_band(night):
    with duckdb.connect(str(night / "warehouse.duckdb"), read_only=True) as con:
        mart = con.execute("select * from marts.livestream_forecast where ds = ?", [DS]).df()
        serving = con.execute(
            "select model_name, version from ops.serving where pipeline = ? and ds = ?",
            [PIPELINE, DS],
        ).fetchall()
    assert len(serving) == 1
    assert set(zip(mart["model_name"], mart["model_version"], strict=True)) == set(serving)
    assert mart["room_id"].nunique() == get_source("douyin_live").test_nights[0]["rooms"]
    tomorrow = pd.Timestamp(DS + dt.timedelta(days=1))
    assert (mart["ts"].dt.normalize() == tomorrow).all()
    assert (mart.groupby("room_id")["ts"].nunique() == 1440).all()
    assert (mart["yhat_p10"] >= 0).all()
    assert (mart["yhat_p10"] <= mart["yhat"] + 1e-9).all()
    assert (mart["yhat"] <= mart["yhat_p90"] + 1e-9).all()
    assert (mart["yhat_p90"] > mart["yhat_p10"]).any()


def test_the_served_backtest_reproduces_the_manifest_scores(night):
    lake = night / "lake"
    manifests = list((lake / f"models/{PIPELINE}").glob("*/manifest.json"))
    assert len(manifests) == 1  # one night, one run
    manifest = json.loads(manifests[0].read_text())
    with duckdb.connect(str(night / "warehouse.duckdb"), read_only=True) as con:
        (model,) = con.execute(
            "select model_name from ops.serving where pipeline = ? and ds = ?", [PIPELINE, DS]
        ).fetchone()
    folder = lake / f"predictions/{PIPELINE}/ds={DS}"
    backtest = pd.read_parquet(folder / "backtest.parquet")
    assert list(backtest.columns) == ["room_id", "ts", "y", "yhat", "yhat_p10", "yhat_p90"]
    assert not backtest.duplicated(["room_id", "ts"]).any()
    days = get("livestream_forecast").load_settings().backtest_days
    assert backtest["ts"].dt.normalize().nunique() == days  # the last days, up to ds
    assert backtest["ts"].max() < pd.Timestamp(DS + dt.timedelta(days=1))
    again = forecast_metrics(
        backtest["y"], backtest["yhat"], lower=backtest["yhat_p10"], upper=backtest["yhat_p90"]
    )
    entry = {**manifest["models"], **manifest["baselines"]}[model]
    for name in ("mae", "rmse", "coverage", "smape"):
        assert again[name] == pytest.approx(entry["metrics"][name]), name
    short = manifest["extra"]["horizons"]["10min"]
    assert {"seasonal_naive_day", "gradient_boosting", "lstm_univariate"} <= set(short)
    assert "mstl" in manifest["baselines"]


def test_a_figure_per_room_linked_from_an_index(night):
    folder = night / "lake" / f"reports/{PIPELINE}/ds={DS}"
    pngs = sorted(folder.glob("room=*.png"))
    assert len(pngs) == get_source("douyin_live").test_nights[0]["rooms"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    index = (folder / "index.html").read_text()
    assert all(p.name in index for p in pngs)


def test_the_real_one_day_sample_is_refused_in_one_line(tmp_path):
    """One live day cannot be backtested: the run says so and publishes nothing."""
    data = shared_data("douyin-live", "predict.csv").parents[1]
    source = get_source("douyin_live")
    from mlcore.lake import LocalLake

    day = dt.date.fromisoformat(source.sample_ds)
    source.load_sample()(LocalLake(tmp_path / "lake"), day, data)
    done = _run(tmp_path, day)
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "no room can be forecast for the day after 2019-12-02" in output
    settings = get("livestream_forecast").load_settings()
    assert (
        f"room sample: 0 day(s) of history before the {settings.backtest_days}-day backtest, "
        f"{settings.min_train_days} needed"
    ) in output
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        published = con.execute(
            "select count(*) from information_schema.tables where table_name = ?",
            ["livestream_forecast"],
        ).fetchone()[0]
    assert published == 0
