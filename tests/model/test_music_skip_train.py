"""Model behaviour of music_skip training, on a small synthetic features delivery.

All the Keras-using tests of the suite live in this module so TensorFlow is imported once.
The synthetic plays carry a learnable signal (the listener's and the track's skip history,
the previous skip, taste overlap), so a working model must beat the constant baseline.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlcore import evaluation, pipelines, runs, training
from mlcore.config import Settings
from mlcore.lake import LocalLake, features_prefix, models_prefix
from mlcore.manifest import ChampionEntry, RunManifest, ScoredModel
from mlcore.pipelines.music_skip import train as music_skip_train
from mlcore.pipelines.music_skip.features import FEATURES, LABEL
from mlcore.pipelines.music_skip.train import TrainParams
from mlcore.runs import TrainingRun
from mlcore.training import TrainingError

DS = dt.date(2024, 3, 31)
N_PLAYS = 4000
# Few epochs and small batches: enough to learn the synthetic signal, quick on a laptop CPU.
FAST = TrainParams(simple_epochs=3, advanced_epochs=4, batch_size=256, gb_max_iter=50)
SETTINGS = Settings(seed=42)
PREVIOUS = "2024-03-30-0123456789"  # a fake earlier run, made the champion before the re-run


def make_features(lake: LocalLake, ds: dt.date, n: int = N_PLAYS, seed: int = 0) -> None:
    """Write plays.parquet, candidates.parquet and tracks.parquet with a learnable skip signal."""
    rng = np.random.default_rng(seed)
    n_users, n_tracks = 60, 200
    user_bias = rng.normal(0, 1.0, n_users)
    track_bias = rng.normal(0, 1.0, n_tracks)

    def rows(m: int, users: np.ndarray, tracks: np.ndarray) -> dict:
        cols = {f: rng.normal(0, 1, m) for f in FEATURES}
        cols["user_prior_skip_rate"] = 1 / (1 + np.exp(-user_bias[users])) + rng.normal(0, 0.05, m)
        cols["track_prior_skip_rate"] = 1 / (1 + np.exp(-track_bias[tracks]))
        cols["genre_overlap_share"] = rng.uniform(0, 1, m)
        cols["prev_skipped"] = rng.integers(0, 2, m).astype(float)
        cols["hour"] = rng.integers(0, 24, m).astype(float)
        return cols

    users = rng.integers(0, n_users, n)
    tracks = rng.integers(0, n_tracks, n)
    cols = rows(n, users, tracks)
    logit = (
        -0.8
        + 1.2 * user_bias[users]
        + 1.0 * track_bias[tracks]
        - 1.0 * cols["genre_overlap_share"]
        + 0.8 * cols["prev_skipped"]
        + 0.6 * np.sin(cols["hour"] / 24 * 2 * np.pi)
    )
    label = (rng.uniform(0, 1, n) < 1 / (1 + np.exp(-logit))).astype(np.int32)
    # Unique timestamps over two months, written in a shuffled order: the trainer must sort.
    seconds = np.sort(rng.choice(60 * 86400, size=n, replace=False))
    order = rng.permutation(n)
    start = np.datetime64("2024-02-01T00:00:00", "us")
    plays = pd.DataFrame(
        {
            "session_id": (np.arange(n) // 8).astype(np.int64),
            "user_id": users.astype(np.int32),
            "track_id": [f"t{t:04d}" for t in tracks],
            "timestamp": start + seconds.astype("timedelta64[s]"),
            **cols,
            LABEL: label,
        }
    ).iloc[order]
    cu = np.repeat(np.arange(20), 15)
    ct = rng.integers(0, n_tracks, cu.size)
    candidates = pd.DataFrame(
        {
            "user_id": cu.astype(np.int32),
            "track_id": [f"t{t:04d}" for t in ct],
            **rows(cu.size, cu, ct),
        }
    )
    folder = lake.path(features_prefix("music_skip", ds))
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(plays, preserve_index=False), folder / "plays.parquet")
    pq.write_table(
        pa.Table.from_pandas(candidates, preserve_index=False), folder / "candidates.parquet"
    )
    catalogue = pd.DataFrame(
        {
            "track_id": [f"t{t:04d}" for t in range(n_tracks)],
            "artist_id": [f"a{t % 40:02d}" for t in range(n_tracks)],
            "genre": [None if t % 7 == 0 else f"g{t % 5}" for t in range(n_tracks)],
        }
    )
    pq.write_table(pa.Table.from_pandas(catalogue, preserve_index=False), folder / "tracks.parquet")


def read(lake: LocalLake, key: str) -> pd.DataFrame:
    return pq.read_table(lake.path(key)).to_pandas()


def train_fast(lake: LocalLake, params: TrainParams = FAST) -> RunManifest:
    """What ``mlcore.runs.train`` does, with FAST params: the trainer on a TrainingRun, then
    the manifest written last, where the champion lookup and the gate read it."""
    pipeline = pipelines.get("music_skip")
    with lake.local_dir(features_prefix("music_skip", DS)) as folder:
        run = TrainingRun(
            pipeline=pipeline,
            lake=lake,
            ds=DS.isoformat(),
            settings=SETTINGS,
            folder=Path(folder),
            pipeline_settings=pipeline.load_settings(),
        )
        manifest = music_skip_train.train(run, params=params)
    assert isinstance(manifest, RunManifest)
    lake.write_text(
        f"{models_prefix('music_skip', manifest.version)}/manifest.json", manifest.to_json()
    )
    return manifest


def train_default(lake: LocalLake) -> RunManifest:
    """The run skeleton, as ``nightshift train music_skip`` runs it (default TrainParams)."""
    return runs.train(pipelines.get("music_skip"), lake, DS, SETTINGS)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Train twice on the same data; before the second run, install a champion of another version.

    The champion is a copy of the first run's models under PREVIOUS, so the second run must
    evaluate and score it, and its holdout metrics must equal the first run's.
    """
    lake = LocalLake(tmp_path_factory.mktemp("lake"))
    make_features(lake, DS)
    first = train_fast(lake)
    holdout_first = read(lake, first.evaluation.key)
    scores_first = read(lake, first.scores_key)

    source, target = (
        models_prefix("music_skip", first.version),
        models_prefix("music_skip", PREVIOUS),
    )
    for key in lake.list(source):
        lake.put_file(lake.path(key), target + key[len(source) :])
    manifest = json.loads(lake.read_text(f"{target}/manifest.json"))
    manifest["version"] = PREVIOUS
    for name in ("mlp_simple", "mlp_advanced"):
        manifest["models"][name]["artifact"] = f"{target}/{name}.keras"
    lake.write_text(f"{target}/manifest.json", json.dumps(manifest))
    lake.write_text(
        f"{models_prefix('music_skip')}/champion.json",
        json.dumps({"mlp_simple": PREVIOUS, "mlp_advanced": PREVIOUS}),
    )

    second = train_fast(lake)
    return {
        "lake": lake,
        "first": first,
        "holdout_first": holdout_first,
        "scores_first": scores_first,
        "second": second,
        "holdout_second": read(lake, second.evaluation.key),
        "scores_second": read(lake, second.scores_key),
    }


METRICS = {"accuracy", "roc_auc", "log_loss", "f1", "positive_rate", "n"}


def test_writes_manifest_models_and_predictions(trained):
    lake, m = trained["lake"], trained["first"]
    folder = models_prefix("music_skip", m.version)
    for name in (
        "mlp_simple.keras",
        "mlp_advanced.keras",
        "gradient_boosting.pkl",
        "manifest.json",
    ):
        assert lake.exists(f"{folder}/{name}"), name
    assert m.version.startswith("2024-03-31-") and len(m.version) == len("2024-03-31-") + 10
    assert m.pipeline == "music_skip" and m.kind == "binary" and m.ds == DS.isoformat()
    assert set(m.models) == {"mlp_simple", "mlp_advanced"}
    assert set(m.baselines) == {"always_played", "gradient_boosting"}
    assert m.gate.metric == "roc_auc" and m.gate.naive == "always_played"
    assert m.champions == {}
    assert m.evaluation.key == "predictions/music_skip/ds=2024-03-31/holdout.parquet"
    assert m.scores_key == "predictions/music_skip/ds=2024-03-31/scores.parquet"
    on_disk = RunManifest.from_json(lake.read_text(f"{folder}/manifest.json"))
    assert on_disk.version == m.version and on_disk.params["seed"] == 42
    for entry in (*m.models.values(), *m.baselines.values()):
        assert set(entry.metrics) == METRICS
    assert m.models["mlp_simple"].inputs == list(FEATURES)
    assert m.baselines["always_played"].artifact is None
    assert m.baselines["always_played"].extra["p_skip"] == pytest.approx(
        m.baselines["always_played"].metrics["positive_rate"], abs=0.1
    )


def test_manifest_round_trips_through_json(trained):
    for m in (trained["first"], trained["second"]):
        assert RunManifest.from_json(m.to_json()) == m


def test_mlps_beat_the_constant_baseline(trained):
    m = trained["first"]
    assert m.baselines["always_played"].metrics["roc_auc"] == pytest.approx(0.5)
    for name in ("mlp_simple", "mlp_advanced"):
        assert m.models[name].metrics["roc_auc"] > 0.65, name
    # the sequence challenger learns too, and is recorded with its history's shape
    gru = m.challengers["gru_session"]
    assert gru.metrics["roc_auc"] > 0.6
    assert gru.extra["history"]["length"] == 10
    assert gru.artifact.endswith("gru_session.keras")


def test_holdout_is_the_latest_fifth_of_plays(trained):
    lake, m, holdout = trained["lake"], trained["first"], trained["holdout_first"]
    plays = read(lake, f"{features_prefix('music_skip', DS)}/plays.parquet")
    assert m.counts["input_rows"] == N_PLAYS
    assert len(holdout) == m.counts["evaluation_rows"] == N_PLAYS // 5
    assert m.counts["train_rows"] == N_PLAYS - N_PLAYS // 5
    train_ts = plays.loc[~plays["timestamp"].isin(holdout["timestamp"]), "timestamp"]
    assert len(train_ts) == m.counts["train_rows"]
    assert holdout["timestamp"].min() > train_ts.max()
    assert holdout["timestamp"].min().isoformat() == m.split_time
    expected = ["session_id", "user_id", "track_id", "timestamp", "label"]
    expected += [
        f"p_skip_{n}"
        for n in ("always_played", "gradient_boosting", "mlp_simple", "mlp_advanced", "gru_session")
    ]
    assert list(holdout.columns) == expected
    assert m.evaluation.columns["label"] == "label"
    assert m.evaluation.scores == {c.removeprefix("p_skip_"): c for c in expected[5:]}
    # the holdout's label is the play's own label, row by row
    joined = holdout.merge(plays, on=["session_id", "user_id", "track_id", "timestamp"])
    assert len(joined) == len(holdout) and (joined["label"] == joined[LABEL]).all()


def test_saved_models_score_raw_features(trained):
    """The .keras file normalises inside: raw features in, the holdout's p_skip out."""
    lake, m, holdout = trained["lake"], trained["first"], trained["holdout_first"]
    plays = read(lake, f"{features_prefix('music_skip', DS)}/plays.parquet")
    rows = holdout[["session_id", "timestamp"]].merge(plays, on=["session_id", "timestamp"])
    for name in ("mlp_simple", "mlp_advanced"):
        model = training.load_keras(lake, m.models[name].artifact)
        p = training.predict_batched(model, rows[list(FEATURES)].to_numpy(np.float32))
        np.testing.assert_allclose(p, holdout[f"p_skip_{name}"], rtol=0, atol=1e-6)
    gb = training.load_pickle(lake, m.baselines["gradient_boosting"].artifact)
    np.testing.assert_allclose(
        gb.predict_proba(rows[list(FEATURES)].to_numpy(np.float32))[:, 1],
        holdout["p_skip_gradient_boosting"],
    )


def test_rerun_is_deterministic(trained):
    """Same data, params and seed: the same version and bit-identical holdout predictions.

    Measured on CPU (TensorFlow 2.21, oneDNN): the predictions are bitwise equal, in one process
    and across processes. On a GPU, or with another thread count, allow a small tolerance.
    """
    first, second = trained["first"], trained["second"]
    assert first.version == second.version
    assert first.data_fingerprint == second.data_fingerprint
    assert first.params == second.params
    for name in ("always_played", "gradient_boosting", "mlp_simple", "mlp_advanced"):
        col = f"p_skip_{name}"
        assert (
            trained["holdout_first"][col].to_numpy() == trained["holdout_second"][col].to_numpy()
        ).all()
    for name in first.models:
        assert first.models[name].metrics == second.models[name].metrics
    for name in first.baselines:
        assert first.baselines[name].metrics == second.baselines[name].metrics


def test_champion_of_another_version_is_evaluated_on_the_same_holdout(trained):
    first, second, holdout = trained["first"], trained["second"], trained["holdout_second"]
    assert set(second.champions) == {"mlp_simple", "mlp_advanced"}
    for name, champ in second.champions.items():
        assert isinstance(champ, ChampionEntry)
        assert champ.version == PREVIOUS
        # the champion is a copy of the first run's model: same rows, same numbers
        assert champ.metrics == first.models[name].metrics
        np.testing.assert_array_equal(holdout[f"p_skip_champion_{name}"], holdout[f"p_skip_{name}"])
        assert second.evaluation.scores[f"champion_{name}"] == f"p_skip_champion_{name}"


def test_scores_cover_every_candidate_for_both_models_the_fallback_and_the_champions(trained):
    lake, first, second = trained["lake"], trained["first"], trained["second"]
    candidates = read(lake, f"{features_prefix('music_skip', DS)}/candidates.parquet")
    scores = trained["scores_first"]
    assert list(scores.columns) == ["user_id", "track_id", "model_name", "model_version", "p_skip"]
    assert set(scores["model_version"]) == {first.version}
    # gradient_boosting serves a degraded night: it must have scores too; so does the challenger
    names = {"mlp_simple", "mlp_advanced", "gradient_boosting", "gru_session"}
    assert set(scores["model_name"]) == names
    for name in sorted(names):
        part = scores[scores["model_name"] == name]
        assert len(part) == len(candidates)
        assert (
            part[["user_id", "track_id"]].to_numpy()
            == candidates[["user_id", "track_id"]].to_numpy()
        ).all()
        assert part["p_skip"].between(0, 1).all()
    assert first.counts["scored_rows"] == len(candidates)
    later = trained["scores_second"]
    by_model = later.groupby(["model_name", "model_version"]).size().to_dict()
    assert by_model == {
        ("gradient_boosting", second.version): len(candidates),
        ("gru_session", second.version): len(candidates),
        ("mlp_advanced", PREVIOUS): len(candidates),
        ("mlp_advanced", second.version): len(candidates),
        ("mlp_simple", PREVIOUS): len(candidates),
        ("mlp_simple", second.version): len(candidates),
    }


def test_manifest_lists_what_was_scored(trained):
    first, second = trained["first"], trained["second"]
    assert all(isinstance(s, ScoredModel) for s in first.scored)
    assert {(s.model, s.version) for s in first.scored} == {
        ("mlp_simple", first.version),
        ("mlp_advanced", first.version),
        ("gradient_boosting", first.version),
        ("gru_session", first.version),
    }
    assert {(s.model, s.version) for s in second.scored} == {
        ("mlp_simple", second.version),
        ("mlp_advanced", second.version),
        ("gradient_boosting", second.version),
        ("gru_session", second.version),
        ("mlp_simple", PREVIOUS),
        ("mlp_advanced", PREVIOUS),
    }
    assert first.is_scored("gradient_boosting", first.version)
    assert not first.is_scored("always_played", first.version)
    # and the scored pairs are exactly those in scores.parquet
    for m, scores in ((first, trained["scores_first"]), (second, trained["scores_second"])):
        in_file = set(map(tuple, scores[["model_name", "model_version"]].drop_duplicates().values))
        assert in_file == {(s.model, s.version) for s in m.scored}


def test_evaluation_recomputes_the_manifest_metrics(trained):
    lake = trained["lake"]
    for m in (trained["first"], trained["second"]):
        recomputed = evaluation.recompute(lake, m)
        entries = (*m.models.items(), *m.baselines.items(), *m.challengers.items())
        expected = {n: e.metrics for n, e in entries}
        expected |= {f"champion_{n}": c.metrics for n, c in m.champions.items()}
        assert set(recomputed) == set(expected)
        for name, metrics in expected.items():
            assert set(recomputed[name]) == set(metrics), name
            for key, value in metrics.items():
                assert recomputed[name][key] == pytest.approx(value, abs=1e-9), (name, key)


def test_explain_report_next_to_the_manifest(trained):
    """Importance, calibration and a ROC-AUC interval paired with gradient boosting, for every
    model that can serve and the challenger, on the holdout (here whole: under MAX_ROWS)."""
    lake, m = trained["lake"], trained["first"]
    holdout = trained["holdout_first"]
    report = json.loads(lake.read_text(m.extra["explain"]["report"]))
    assert lake.read_bytes(m.extra["explain"]["figure"]).startswith(b"\x89PNG")
    assert report["rows"] == len(holdout) and report["peer"] == "gradient_boosting"
    names = {"mlp_simple", "mlp_advanced", "gru_session", "gradient_boosting"}
    assert set(report["models"]) == names
    for name in names:
        entry = report["models"][name]
        assert {r["feature"] for r in entry["importance"]} == set(FEATURES)
        interval = entry["roc_auc_interval"]
        auc = m.entry(name).metrics["roc_auc"]
        assert interval["roc_auc"] == pytest.approx(auc, abs=1e-6)
        assert interval["low"] <= auc <= interval["high"]
        if name == "gradient_boosting":
            assert "minus_reference" not in interval
        else:
            diff = interval["minus_reference"]
            peer = m.baselines["gradient_boosting"].metrics["roc_auc"]
            assert diff["value"] == pytest.approx(auc - peer, abs=1e-6)
            assert diff["low"] <= diff["value"] <= diff["high"]


def test_evaluation_figure_is_a_png(trained):
    lake, m = trained["lake"], trained["first"]
    key = evaluation.write_figure(lake, m)
    assert key == f"{models_prefix('music_skip', m.version)}/{evaluation.FIGURE_FILE}"
    assert lake.read_bytes(key).startswith(b"\x89PNG")


# ---- failures: clear one-line errors, before any model is built ---------------------------
# Through the run skeleton (default TrainParams): each fails before any fitting.
def one_line(info) -> str:
    message = str(info.value)
    assert "\n" not in message, message
    return message


def test_missing_features_fail_clearly(tmp_path):
    with pytest.raises(
        TrainingError, match=r"no music_skip features at .*run the features step"
    ) as e:
        train_default(LocalLake(tmp_path))
    one_line(e)


def test_empty_plays_fail_clearly(tmp_path):
    lake = LocalLake(tmp_path)
    make_features(lake, DS)
    path = lake.path(f"{features_prefix('music_skip', DS)}/plays.parquet")
    pq.write_table(pq.read_table(path).slice(0, 0), path)
    with pytest.raises(TrainingError, match="no rows") as e:
        train_default(lake)
    one_line(e)


def test_single_class_fails_clearly(tmp_path):
    lake = LocalLake(tmp_path)
    make_features(lake, DS)
    path = lake.path(f"{features_prefix('music_skip', DS)}/plays.parquet")
    table = pq.read_table(path)
    labels = pa.array(np.zeros(table.num_rows, dtype=np.int32))
    pq.write_table(table.set_column(table.schema.get_field_index(LABEL), LABEL, labels), path)
    with pytest.raises(TrainingError, match="single class") as e:
        train_default(lake)
    one_line(e)


def test_missing_feature_column_fails_clearly(tmp_path):
    lake = LocalLake(tmp_path)
    make_features(lake, DS)
    path = lake.path(f"{features_prefix('music_skip', DS)}/plays.parquet")
    pq.write_table(pq.read_table(path).drop_columns(["tempo"]), path)
    with pytest.raises(TrainingError, match="lacks columns tempo") as e:
        train_default(lake)
    one_line(e)


def test_failed_run_writes_no_manifest(tmp_path):
    lake = LocalLake(tmp_path)
    make_features(lake, DS)
    path = lake.path(f"{features_prefix('music_skip', DS)}/plays.parquet")
    pq.write_table(pq.read_table(path).drop_columns(["tempo"]), path)
    with pytest.raises(TrainingError):
        train_fast(lake)
    assert not [k for k in lake.list(models_prefix("music_skip")) if k.endswith("manifest.json")]


# ---- the bounded training set ----------------------------------------------------------------
def test_training_rows_are_bounded_to_the_newest(tmp_path):
    lake = LocalLake(tmp_path)
    make_features(lake, DS)
    path = lake.path(f"{features_prefix('music_skip', DS)}/plays.parquet")
    params = TrainParams(max_train_rows=1000)
    train_tbl, test_tbl, split_time, n = music_skip_train._read_plays(path, params)
    plays = pq.read_table(path).to_pandas().sort_values("timestamp")
    assert n == N_PLAYS and test_tbl.num_rows == N_PLAYS // 5
    newest_before = plays["timestamp"].iloc[N_PLAYS - N_PLAYS // 5 - 1000 : N_PLAYS - N_PLAYS // 5]
    assert sorted(train_tbl.column("timestamp").to_pandas()) == list(newest_before)


# ---- generic training helpers ----------------------------------------------------------------
def test_time_split_sends_boundary_ties_to_the_test_side():
    ts = pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-03", "2024-01-04"])
    df = pd.DataFrame({"t": ts[::-1], "x": range(5)})
    split = training.time_split(df, "t", test_share=0.4)  # 2 rows, but the boundary day ties
    assert split.split_time == pd.Timestamp("2024-01-03")
    assert list(split.train["t"]) == list(ts[:2])
    assert list(split.test["t"]) == list(ts[2:])


def test_time_split_refuses_a_single_timestamp():
    df = pd.DataFrame({"t": pd.to_datetime(["2024-01-01"] * 4)})
    with pytest.raises(TrainingError, match="one timestamp"):
        training.time_split(df, "t")


def test_bounded_sample_keeps_the_newest_rows():
    df = pd.DataFrame({"timestamp": [5, 1, 4, 2, 3], "v": list("eadbc")})
    assert list(training.bounded_sample(df, 3, seed=0)["v"]) == ["c", "d", "e"]
    assert training.bounded_sample(df, 10, seed=0) is df
    sampled = training.bounded_sample(df, 2, seed=0, time_col=None)
    assert len(sampled) == 2
    assert sampled.equals(training.bounded_sample(df, 2, seed=0, time_col=None))


def test_data_fingerprint_depends_on_content_not_location(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for folder in ("a", "b"):
        (tmp_path / folder / "plays.parquet").write_bytes(b"same bytes")
    fp_a = training.data_fingerprint([tmp_path / "a" / "plays.parquet"])
    assert fp_a == training.data_fingerprint([tmp_path / "b" / "plays.parquet"])
    (tmp_path / "b" / "plays.parquet").write_bytes(b"other bytes")
    assert fp_a != training.data_fingerprint([tmp_path / "b" / "plays.parquet"])
    assert training.data_fingerprint([b"ab", b"c"]) != training.data_fingerprint([b"a", b"bc"])
