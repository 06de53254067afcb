"""music_skip training: will a listener skip a track? Reads and writes the lake only.

``train(run)`` is what ``nightshift train music_skip --ds D`` runs (through the core's run
skeleton, :mod:`mlcore.runs`), on a laptop, in Docker or in a pod. It needs no warehouse and
no Airflow:

1. read ``features/music_skip/ds=D/plays.parquet`` (one row per play) and check it;
2. split by time: the latest 20% of plays are the holdout, the earlier ones the training
   period, of which at most ``max_train_rows`` (the NEWEST plays, 2,000,000 by default) are
   used, so that a long history cannot outgrow the trainer's memory;
3. fit the baselines (``always_played``: p_skip = the training skip rate, so it predicts
   "played" for every play; ``gradient_boosting``) and the two published Keras models
   (``mlp_simple``, ``mlp_advanced``: one per arm of the A/B test), all seeded; and the
   challenger ``gru_session``, a GRU over the user's last plays (``history``) beside this
   play's features, measured and scored every night but serving no arm until it earns one;
4. evaluate every model, and every current champion (``models/music_skip/champion.json``), on
   the same holdout rows, so the gate compares like with like;
5. write the models, ``predictions/…/holdout.parquet`` (every model's holdout scores, to
   recompute any metric), ``predictions/…/scores.parquet`` (the candidates, scored in batches
   by both new models, by gradient boosting, which serves when the run is degraded, and by
   each champion of another version) and return the manifest (the core writes it last).

The version is ``<ds>-<10 hex of sha256(data fingerprint + params)>``: re-running a date on the
same data overwrites the same version.

Holdout columns: session_id, user_id, track_id, timestamp, label, ``p_skip_<model>`` for the
four models, and ``p_skip_champion_<model>`` for each champion of another version that was
evaluated (absent on the first run).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mlcore import explain, training
from mlcore.manifest import Evaluation, GateRule, ModelEntry, RunManifest, ScoredModel
from mlcore.metrics import binary_metrics
from mlcore.pipelines.music_skip.features import FEATURES, ID_COLUMNS, LABEL
from mlcore.pipelines.music_skip.history import NO_SESSION, STEP_FEATURES, History, HistorySpec
from mlcore.runs import (
    Scorer,
    TrainingRun,
    champion_entries,
    check_columns,
    check_no_nulls,
    score_stream,
)
from mlcore.training import TrainingError

log = logging.getLogger(__name__)

PIPELINE = "music_skip"
PUBLISHED = ("mlp_simple", "mlp_advanced")  # one per A/B arm
BASELINES = ("always_played", "gradient_boosting")
# Trained, evaluated, explained and scored every night; no arm serves it (see the README's
# results: on real deliveries it has not beaten the MLPs). Giving it an arm is one line in
# publish.ARM_MODELS and a slot in PUBLISHED. NIGHTSHIFT_MUSIC_SKIP_SEQUENCE_CHALLENGER=false
# turns it off (TrainParams.challengers = ()).
CHALLENGERS = ("gru_session",)
GATE = GateRule(
    metric="roc_auc",
    greater_is_better=True,
    must_beat=list(BASELINES),
    naive="always_played",
    baseline_tolerance=0.01,
    # always_played scores 0.5 by construction: a model must beat it outright, no slack.
    tolerance_applies_to=["gradient_boosting"],
)
# The baseline that can serve on a degraded night: it is scored on the candidates too.
FALLBACKS = ("gradient_boosting",)
CANDIDATE_KEYS = ("user_id", "track_id")


@dataclass(frozen=True)
class TrainParams:
    """Everything that shapes the models; all of it goes into the version hash."""

    test_share: float = 0.2
    # Bound on training rows (the newest plays before the holdout): keeps memory and time flat
    # as the history grows; about 2 GB of float32 features at 2M rows with room to spare.
    max_train_rows: int = 2_000_000
    validation_share: float = 0.1  # the latest slice of the training period
    # Upper bound; small histories train with smaller batches (see _batch_size) so that an
    # epoch is still a few dozen gradient steps rather than one or two.
    batch_size: int = 2048
    learning_rate: float = 1e-3
    simple_epochs: int = 8
    advanced_epochs: int = 30
    advanced_dropout: float = 0.3
    early_stopping_patience: int = 3
    reduce_lr_patience: int = 1
    # Chosen on a validation slice of v2-variant01's training period (never its test rows):
    # small trees, slow learning, early-stopped on the latest 10% of the training rows.
    gb_max_iter: int = 500
    gb_learning_rate: float = 0.05
    gb_max_leaf_nodes: int = 15
    gb_min_samples_leaf: int = 80
    # The sequence model, chosen on the same validation slice: a small GRU over the last 10
    # plays with small embeddings; larger ones (32 units, 8 dims, 20 or 50 plays) overfit the
    # real deliveries. Trained on the newest gru_max_train_rows rows: a GRU epoch on CPU costs
    # several MLP epochs.
    challengers: tuple[str, ...] = CHALLENGERS  # () when the pipeline's settings turn them off
    history: HistorySpec = HistorySpec(length=10)
    gru_units: int = 8
    gru_embedding_dim: int = 2
    gru_dropout: float = 0.5
    gru_epochs: int = 30
    gru_max_train_rows: int = 500_000
    score_batch_size: int = 65_536


# ---- step 1: read and check -------------------------------------------------------------------
def _read_plays(path: Path, params: TrainParams) -> tuple[pa.Table, pa.Table, object, int]:
    """Read only the rows training needs: the holdout and the newest training rows.

    The split is decided on the timestamp column alone, then the file is read again with a
    row filter, so a history far longer than ``max_train_rows`` never lands in memory whole.
    """
    ts = pq.read_table(path, columns=["timestamp"]).column("timestamp")
    n_plays = len(ts)
    if n_plays == 0:
        raise TrainingError(f"{path.name} has no rows: no plays to learn from")
    split_time = training.time_split_point(ts, params.test_share)
    before = ts.filter(pc.less(ts, split_time))
    ordered = before.take(pc.sort_indices(before))
    train_start = ordered[max(0, len(ordered) - params.max_train_rows)]
    columns = [*ID_COLUMNS, *FEATURES, LABEL]
    table = pq.read_table(path, columns=columns, filters=pc.field("timestamp") >= train_start)
    check_no_nulls(table, path.name)
    in_test = pc.greater_equal(table.column("timestamp"), split_time)
    return table.filter(pc.invert(in_test)), table.filter(in_test), split_time, n_plays


def _frame(table: pa.Table) -> pd.DataFrame:
    """Arrow → pandas with features as float32 (half the memory; the models compute in float32)."""
    casts = {f: pa.float32() for f in FEATURES}
    schema = pa.schema(
        [pa.field(f.name, casts.get(f.name, f.type)) for f in table.schema],
    )
    df = table.cast(schema).to_pandas()
    return df.sort_values("timestamp", kind="stable").reset_index(drop=True)


def _xy(df: pd.DataFrame, features: list[str] | tuple[str, ...] = FEATURES) -> tuple:
    return df[list(features)].to_numpy(np.float32), df[LABEL].to_numpy().astype(np.int8)


# ---- step 3: fit ------------------------------------------------------------------------------
def _history_inputs(history: History, df: pd.DataFrame) -> dict[str, np.ndarray]:
    """The GRU's input for plays: their history before each one starts, and their features."""
    x = history.inputs(df["user_id"], df["timestamp"], df["session_id"], df["track_id"])
    x["features"] = df[list(FEATURES)].to_numpy(np.float32)
    return x


def _candidate_inputs(history: History, ds: str):
    """A function building the GRU's input for candidates: a new session at the next midnight."""
    at = pd.Timestamp(ds) + pd.Timedelta(days=1)

    def prepare(frame: pd.DataFrame) -> dict[str, np.ndarray]:
        n = len(frame)
        x = history.inputs(
            frame["user_id"], np.full(n, at), np.full(n, NO_SESSION), frame["track_id"]
        )
        x["features"] = frame[list(FEATURES)].to_numpy(np.float32)
        return x

    return prepare


def _fit_gru(x: dict, y: np.ndarray, params: TrainParams, seed: int) -> tuple:
    """The challenger on its inputs ``x`` (the newest training rows, in time order)."""
    from mlcore.models.sequence import build_session_gru

    spec = params.history
    training.set_seeds(seed)
    gru = build_session_gru(
        spec.length,
        len(STEP_FEATURES),
        len(FEATURES),
        [spec.track_buckets, spec.artist_buckets, spec.genre_buckets],
        seed=seed,
        units=params.gru_units,
        embedding_dim=params.gru_embedding_dim,
        dropout=params.gru_dropout,
        train_x=x,
        learning_rate=params.learning_rate,
    )
    fit = training.fit_keras(
        gru,
        x,
        y,
        epochs=params.gru_epochs,
        batch_size=_batch_size(len(y), params.batch_size),
        validation_share=params.validation_share,
        callbacks=training.keras_early_stopping(
            params.early_stopping_patience, params.reduce_lr_patience
        ),
        name="gru_session",
    )
    return gru, fit


def _fit_models(x: np.ndarray, y: np.ndarray, params: TrainParams, seed: int) -> tuple:
    """The four models, each fitted from a freshly seeded state. Returns (models, fit summaries)."""
    from mlcore.models.mlp import build_advanced_mlp, build_simple_mlp

    skip_rate = float(y.mean())
    log.info("always_played: p_skip = training skip rate %.4f", skip_rate)

    training.set_seeds(seed)
    gb = training.fit_gradient_boosting(
        x,
        y,
        seed,
        max_iter=params.gb_max_iter,
        learning_rate=params.gb_learning_rate,
        max_leaf_nodes=params.gb_max_leaf_nodes,
        min_samples_leaf=params.gb_min_samples_leaf,
        validation_share=params.validation_share,
    )

    training.set_seeds(seed)
    simple = build_simple_mlp(x.shape[1], seed=seed, train_x=x, learning_rate=params.learning_rate)
    simple_fit = training.fit_keras(
        simple,
        x,
        y,
        epochs=params.simple_epochs,
        batch_size=_batch_size(len(y), params.batch_size),
        validation_share=params.validation_share,
        name="mlp_simple",
    )

    training.set_seeds(seed)
    advanced = build_advanced_mlp(
        x.shape[1],
        seed=seed,
        dropout=params.advanced_dropout,
        train_x=x,
        learning_rate=params.learning_rate,
    )
    advanced_fit = training.fit_keras(
        advanced,
        x,
        y,
        epochs=params.advanced_epochs,
        batch_size=_batch_size(len(y), params.batch_size),
        validation_share=params.validation_share,
        callbacks=training.keras_early_stopping(
            params.early_stopping_patience, params.reduce_lr_patience
        ),
        name="mlp_advanced",
    )
    models = {
        "always_played": skip_rate,
        "gradient_boosting": gb,
        "mlp_simple": simple,
        "mlp_advanced": advanced,
    }
    return models, {"mlp_simple": simple_fit, "mlp_advanced": advanced_fit}


def _batch_size(n_rows: int, upper: int) -> int:
    """About 100 steps an epoch, between 32 and ``upper`` rows a batch."""
    return int(min(upper, max(32, n_rows // 100)))


def _predict(model, x: np.ndarray, batch_size: int) -> np.ndarray:
    if isinstance(model, float):  # always_played: a constant
        return np.full(len(x), model, dtype=np.float64)
    return training.predict_batched(model, x, batch_size)


# ---- step 4: evaluate -----------------------------------------------------------------------
def _evaluate(
    models: dict, champions: dict, test_df: pd.DataFrame, batch: int, special: dict
) -> tuple[pd.DataFrame, dict, dict]:
    """Score the holdout with every model and champion: (holdout frame, metrics, champions).

    ``champions`` maps each slot to the :class:`~mlcore.runs.Scorer` of its current champion;
    ``special`` maps a model that reads more than the feature matrix (the GRU) to its input.
    """
    x_test, y_test = _xy(test_df)
    holdout = pd.DataFrame(
        {
            "session_id": test_df["session_id"],
            "user_id": test_df["user_id"],
            "track_id": test_df["track_id"],
            "timestamp": test_df["timestamp"],
            "label": y_test.astype(np.int64),
        }
    )
    metrics = {}
    for name, model in models.items():
        holdout[f"p_skip_{name}"] = _predict(model, special.get(name, x_test), batch)
        metrics[name] = binary_metrics(y_test, holdout[f"p_skip_{name}"])
        log.info("%s holdout metrics: %s", name, metrics[name])
    champion_metrics = {}
    for name, champ in champions.items():
        p = training.predict_batched(champ.model, champ.input_of(test_df), batch)
        holdout[f"p_skip_champion_{name}"] = p
        champion_metrics[name] = binary_metrics(y_test, p)
        log.info(
            "champion %s %s on today's holdout: %s", name, champ.version, champion_metrics[name]
        )
    return holdout, metrics, champion_entries(champions, champion_metrics)


def _explain(
    run: TrainingRun,
    version: str,
    models: dict,
    test_df: pd.DataFrame,
    batch: int,
    history,
    challengers: tuple[str, ...],
):
    """Permutation importance and calibration of the Keras models and the fallback, on the
    holdout (a seeded sample of at most explain.MAX_ROWS rows, the same for every model).

    The GRU's importance is that of this play's features, its history held fixed. Written
    next to the manifest (``explain.json``, ``explain.png``); returns their keys.
    """
    if len(test_df) > explain.MAX_ROWS:
        rng = np.random.default_rng(run.seed)
        rows = np.sort(rng.choice(len(test_df), explain.MAX_ROWS, replace=False))
        test_df = test_df.iloc[rows].reset_index(drop=True)
    x_test, y_test = _xy(test_df)
    predictors = {name: (lambda x, m=models[name]: _predict(m, x, batch)) for name in models}
    for name in challengers:
        fixed = _history_inputs(history, test_df)
        predictors[name] = lambda x, m=models[name], h=fixed: _predict(
            m, {**h, "features": x}, batch
        )
    # The peer the gate holds the Keras models to: each model's ROC-AUC interval is paired
    # with it, so "0.005 behind gradient boosting" reads with its noise.
    peer = "gradient_boosting"
    report = {"rows": int(len(y_test)), "metric": "roc_auc", "peer": peer, "models": {}}
    p_peer = predictors[peer](x_test)
    for name in (*PUBLISHED, *challengers, *FALLBACKS):
        predict = predictors[name]
        p = predict(x_test)
        report["models"][name] = {
            "importance": explain.feature_importance(
                predict, x_test, y_test, FEATURES, seed=run.seed, max_rows=len(y_test)
            ),
            "calibration": explain.calibration(y_test, p),
            "roc_auc_interval": explain.auc_interval(
                y_test, p, None if name == peer else p_peer, seed=run.seed
            ),
        }
    keys = {
        "report": training.write_json(run.lake, run.model_key(version, "explain.json"), report),
        "figure": run.model_key(version, "explain.png"),
    }
    title = f"{PIPELINE} {version}: feature importance and calibration on the holdout"
    run.lake.write_bytes(keys["figure"], explain.report_png(report, title=title))
    for name, entry in report["models"].items():
        top = ", ".join(f"{r['feature']} {r['drop']:.3f}" for r in entry["importance"][:5])
        log.info("%s: ECE %.3f; carried by %s", name, entry["calibration"]["ece"], top)
        log.info("%s: %s", name, explain.describe_interval(entry["roc_auc_interval"], peer))
    return keys


# ---- step 5: outputs --------------------------------------------------------------------------
def _save_models(run: TrainingRun, version: str, models: dict, challengers: tuple) -> dict:
    """Write the fitted models of ``version``; {model name: lake key, or None}."""
    artifacts = {
        "always_played": None,  # a constant, recorded in the manifest
        "gradient_boosting": training.save_pickle(
            run.lake, run.model_key(version, "gradient_boosting.pkl"), models["gradient_boosting"]
        ),
    }
    for name in (*PUBLISHED, *challengers):
        artifacts[name] = training.save_keras(
            run.lake, run.model_key(version, f"{name}.keras"), models[name]
        )
    return artifacts


def train(run: TrainingRun, *, params: TrainParams | None = None) -> RunManifest:
    """Train, evaluate and score music_skip for ``run.ds``; write models and predictions.

    Returns the manifest (the core writes it to ``models/music_skip/<version>/manifest.json``).
    Raises TrainingError, with a one-line reason, when the features are missing, empty,
    incomplete or hold a single class.
    """
    params = params or TrainParams()
    if run.pipeline_settings is not None and not run.pipeline_settings.sequence_challenger:
        params = dataclasses.replace(params, challengers=())
    challengers = params.challengers
    seed = run.seed

    # 1. read and check the features
    plays_path = run.features("plays.parquet")
    candidates_path = run.features("candidates.parquet")
    check_columns(plays_path, [*ID_COLUMNS, *FEATURES, LABEL])
    tracks_path = run.features("tracks.parquet")
    check_columns(tracks_path, ["track_id", "artist_id", "genre"])
    fingerprint = training.data_fingerprint([plays_path, candidates_path, tracks_path])
    # Everything that shapes the models, and nothing else: it makes the version.
    run_params = {
        "pipeline": PIPELINE,
        "features": list(FEATURES),
        "label": LABEL,
        "seed": seed,
        **dataclasses.asdict(params),
        "challengers": list(challengers),  # a list, as it reads back from manifest.json
    }
    version = run.version(fingerprint, run_params)
    log.info("music_skip %s: version %s, data %s", run.ds, version, fingerprint[:12])

    # 2. split by time; bound the training rows to the newest max_train_rows
    with run.timed("read"):
        train_tbl, test_tbl, split_time, n_plays = _read_plays(plays_path, params)
        train_df = training.bounded_sample(_frame(train_tbl), params.max_train_rows, seed)
        test_df = _frame(test_tbl)
        del train_tbl, test_tbl
        x_train, y_train = _xy(train_df)
        y_test = test_df[LABEL].to_numpy()
        training.check_binary_labels(np.concatenate([y_train, y_test]), "plays.parquet")
        training.check_binary_labels(y_train, "the training period")
        # The plays the GRU's histories are gathered from: the training period's, and a
        # lookback before it so that its first rows have a history too.
        history, special_train, special_test = None, None, {}
        # The GRU trains on the newest gru_max_train_rows rows: only their histories are
        # built, and only the plays from lookback_days before the first of them are read.
        gru_rows = min(len(train_df), params.gru_max_train_rows)
        if challengers:
            gru_df = train_df.iloc[len(train_df) - gru_rows :]
            lookback = pd.Timedelta(days=params.history.lookback_days)
            history = History.read(
                plays_path,
                tracks_path,
                params.history,
                since=gru_df["timestamp"].min() - lookback,
            )
            special_train = _history_inputs(history, gru_df)
            del gru_df
            special_test = {name: _history_inputs(history, test_df) for name in challengers}
    log.info(
        "%d plays: training on %d (newest before %s), holdout %d; skip rate %.4f / %.4f",
        n_plays,
        len(train_df),
        split_time,
        len(test_df),
        y_train.mean(),
        y_test.mean(),
    )

    # 3. fit the baselines and the two published models
    with run.timed("fit"):
        models, fits = _fit_models(x_train, y_train, params, seed)
        if "gru_session" in challengers:
            models["gru_session"], fits["gru_session"] = _fit_gru(
                special_train, y_train[len(y_train) - gru_rows :], params, seed
            )
        del special_train

    # 4. evaluate every model, and every champion, on the same holdout rows
    with run.timed("evaluate"):
        champions = run.champions(PUBLISHED, version, FEATURES)
        holdout, metrics, champion_entries_ = _evaluate(
            models, champions, test_df, params.score_batch_size, special_test
        )
        artifacts = _save_models(run, version, models, challengers)
        holdout_key = training.write_parquet(
            run.lake, run.predictions_key("holdout.parquet"), holdout
        )
    with run.timed("explain"):
        explained = _explain(
            run, version, models, test_df, params.score_batch_size, history, challengers
        )

    # 5. score tonight's candidates: the new models, the fallback baseline, the champions
    scorers = [Scorer(n, version, FEATURES, models[n]) for n in (*PUBLISHED, *FALLBACKS)]
    if challengers:
        prepare = _candidate_inputs(history, run.ds)
        scorers += [Scorer(n, version, FEATURES, models[n], prepare) for n in challengers]
    scorers += list(champions.values())
    scores_key = run.predictions_key("scores.parquet")
    with run.timed("score"):
        n_candidates = score_stream(
            candidates_path,
            run.lake,
            scores_key,
            scorers,
            keys=CANDIDATE_KEYS,
            score_column="p_skip",
            batch_size=params.score_batch_size,
        )
    log.info("scored %d candidates with %d models into %s", n_candidates, len(scorers), scores_key)

    def entry(name: str) -> ModelEntry:
        return ModelEntry(
            metrics=metrics[name],
            artifact=artifacts[name],
            inputs=list(FEATURES),
            fit=fits.get(name, {}),
        )

    split = split_time.as_py() if isinstance(split_time, pa.Scalar) else split_time
    baselines = {name: entry(name) for name in BASELINES}
    baselines["always_played"].inputs = []
    baselines["always_played"].extra = {"p_skip": models["always_played"]}
    return RunManifest(
        pipeline=PIPELINE,
        kind="binary",
        version=version,
        ds=run.ds,
        data_fingerprint=fingerprint,
        params=run_params,
        gate=GATE,
        models={name: entry(name) for name in PUBLISHED},
        baselines=baselines,
        champions=champion_entries_,
        challengers={
            name: dataclasses.replace(
                entry(name), extra={"history": dataclasses.asdict(params.history)}
            )
            for name in challengers
        },
        scored=[ScoredModel(s.name, s.version) for s in scorers],
        scores_key=scores_key,
        evaluation=Evaluation(
            key=holdout_key,
            columns={"label": "label", "time": "timestamp"},
            scores={c.removeprefix("p_skip_"): c for c in holdout.columns if c.startswith("p_")},
        ),
        counts={
            "input_rows": n_plays,
            "train_rows": len(train_df),
            "evaluation_rows": len(test_df),
            "scored_rows": n_candidates,
        },
        split_time=split.isoformat() if hasattr(split, "isoformat") else str(split),
        extra={"explain": explained},
    )
