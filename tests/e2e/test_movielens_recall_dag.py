"""movielens_recall end to end through Airflow (dag.test), as `nightshift run` runs it.

A small synthetic MovieLens delivery with the real defects: `nightshift run` runs the
`ingest_movielens` DAG and then `movielens_recall`; checks the two marts, the lake's
held-out lists (anyone can recompute the scores from them) and the registry. Everything
else (every step, two nights, kills, concurrency) is held to the contract by
tests/conformance and tests/faults.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import duckdb
import pandas as pd
import pytest

from mlcore.metrics import ranking_metrics
from mlcore.sources import get_source

DS = dt.date(2024, 1, 31)


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e-movielens")
    env = dict(
        os.environ,
        NIGHTSHIFT_LAKE=str(root / "lake"),
        NIGHTSHIFT_WAREHOUSE=str(root / "warehouse.duckdb"),
        NIGHTSHIFT_TRAIN_BACKEND="local",
        AIRFLOW_HOME=str(root / "airflow"),
        NIGHTSHIFT_LOG_LEVEL="WARNING",
    )
    source = get_source("movielens")
    source.load_synth()(root / "lake", DS, seed=5, **source.test_nights[0])
    done = subprocess.run(
        [sys.executable, "-m", "mlcore.cli", "run", "movielens_recall", "--ds", DS.isoformat()],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return root


def test_publishes_u2i_and_i2i_of_the_serving_model(night):
    with duckdb.connect(str(night / "warehouse.duckdb"), read_only=True) as con:
        u2i = con.execute("select * from marts.movie_u2i where ds = ?", [DS]).df()
        i2i = con.execute("select * from marts.movie_i2i where ds = ?", [DS]).df()
        rated = con.execute("select user_id, movie_id from features.movielens_ratings").df()
        serving = con.execute(
            "select model_name, version from ops.serving "
            "where pipeline = 'movielens_recall' and ds = ?",
            [DS],
        ).fetchall()
    assert len(serving) == 1
    assert set(zip(u2i["model_name"], u2i["model_version"], strict=True)) == set(serving)
    # every user of the features gets a full list, best first, of movies not rated yet
    assert set(u2i["user_id"]) == set(rated["user_id"])
    assert (u2i.groupby("user_id")["rank"].max() == 50).all()
    assert u2i.groupby("user_id")["movie_id"].nunique().eq(50).all()
    ordered = u2i.sort_values(["user_id", "rank"])
    assert (ordered.groupby("user_id")["score"].diff().dropna() <= 1e-9).all()
    assert u2i.merge(rated, on=["user_id", "movie_id"]).empty, "an already-rated movie listed"
    # i2i: never a movie as like itself, ranks from 1
    assert not i2i.empty and (i2i["movie_id"] != i2i["similar_movie_id"]).all()
    assert (i2i.groupby("movie_id")["rank"].min() == 1).all()


def test_the_held_out_lists_reproduce_the_manifest_scores(night):
    import json

    lake = night / "lake"
    manifests = list((lake / "models/movielens_recall").glob("*/manifest.json"))
    assert len(manifests) == 1  # one night, one run
    manifest = json.loads(manifests[0].read_text())
    folder = lake / f"predictions/movielens_recall/ds={DS}"
    holdout = pd.read_parquet(folder / "holdout.parquet")
    truth = pd.read_parquet(folder / "truth.parquet")
    assert {"user_id", "rank", "movie_id", "score", "model"} <= set(holdout.columns)
    published = holdout[holdout["model"] == "lfm_bpr"]
    assert published.groupby("user_id")["rank"].max().max() == 50
    again = ranking_metrics(published, truth, k=10, query="user_id", item="movie_id", ks=(20,))
    reported = manifest["models"]["lfm_bpr"]["metrics"]
    assert again["recall@10"] == pytest.approx(reported["recall@10"])
    assert again["ndcg@10"] == pytest.approx(reported["ndcg@10"])
    assert reported["auc"] is not None and reported["auc_unrated"] is not None
    assert manifest["baselines"]["lfm_mse"]["metrics"]["rmse"] > 0
