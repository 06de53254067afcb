"""music_skip training: will a listener skip a track? Reads and writes the lake only.

``train(lake, ds, settings)`` is what ``nightshift train music_skip --ds D`` runs, on a laptop,
in Docker or in a pod. It needs no warehouse and no Airflow:

1. read ``features/music_skip/ds=D/plays.parquet`` (one row per play) and check it;
2. split by time: the latest 20% of plays are the holdout, the earlier ones the training
   period, of which at most ``max_train_rows`` (the NEWEST plays, 2,000,000 by default) are
   used, so that a long history cannot outgrow the trainer's memory;
3. fit the baselines (``always_played``: p_skip = the training skip rate, so it predicts
   "played" for every play; ``gradient_boosting``) and the two published Keras models
   (``mlp_simple``, ``mlp_advanced``: one per arm of the A/B test), all seeded;
4. evaluate every model, and every current champion (``models/music_skip/champion.json``), on
   the same holdout rows, so the gate compares like with like;
5. write the models, ``predictions/…/holdout.parquet`` (every model's holdout scores, to
   recompute any metric), ``predictions/…/scores.parquet`` (the candidates, scored in batches
   by both new models and by each champion of another version) and, last, the manifest: a run
   whose manifest exists is complete.

The version is ``<ds>-<10 hex of sha256(data fingerprint + params)>``: re-running a date on the
same data overwrites the same version.

Holdout columns: session_id, user_id, track_id, timestamp, label, ``p_skip_<model>`` for the
four models, and ``p_skip_champion_<model>`` for each champion of another version that was
evaluated (absent on the first run).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mlcore import training
from mlcore.config import Settings
from mlcore.lake import Lake, LakeError, features_prefix, models_prefix, predictions_prefix
from mlcore.metrics import binary_metrics
from mlcore.pipelines.music_skip_features import FEATURES, ID_COLUMNS, LABEL
from mlcore.registry import champion_key
from mlcore.training import TrainingError

log = logging.getLogger(__name__)

PIPELINE = "music_skip"
PUBLISHED = ("mlp_simple", "mlp_advanced")  # one per A/B arm
BASELINES = ("always_played", "gradient_boosting")
GATE = {
    "metric": "roc_auc",
    "greater_is_better": True,
    "must_beat": list(BASELINES),
    "baseline_tolerance": 0.01,
    # always_played scores 0.5 by construction: a model must beat it outright, no slack.
    "tolerance_applies_to": ["gradient_boosting"],
}
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
    gb_max_iter: int = 200
    gb_learning_rate: float = 0.1
    gb_max_leaf_nodes: int = 31
    score_batch_size: int = 65_536


# ---- step 1: read and check -------------------------------------------------------------------
def _plays_path(folder: Path, ds: str, lake: Lake) -> Path:
    path = folder / "plays.parquet"
    if not path.is_file():
        where = lake.url(f"{features_prefix(PIPELINE, ds)}/plays.parquet")
        raise TrainingError(f"no music_skip features at {where}: run the features step for {ds}")
    return path


def _check_columns(path: Path, needed: list[str]) -> None:
    schema = pq.read_schema(path)
    missing = [c for c in needed if c not in schema.names]
    if missing:
        raise TrainingError(f"{path.name} lacks columns {', '.join(missing)}")


def _check_no_nulls(table: pa.Table, what: str) -> None:
    nulls = {c: table.column(c).null_count for c in table.column_names}
    bad = {c: n for c, n in nulls.items() if n}
    if bad:
        shown = ", ".join(f"{c} ({n})" for c, n in sorted(bad.items()))
        raise TrainingError(f"{what} has nulls in {shown}; the feature SQL must impute them")


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
    _check_no_nulls(table, path.name)
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
    )

    training.set_seeds(seed)
    simple = build_simple_mlp(x.shape[1], seed=seed, train_x=x, learning_rate=params.learning_rate)
    simple_fit = training.fit_keras_binary(
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
    advanced_fit = training.fit_keras_binary(
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


# ---- step 4: champions ------------------------------------------------------------------------
def _load_champions(lake: Lake, version: str) -> dict:
    """{model_name: (version, features, keras model)} for champions of another version.

    A champion that cannot be loaded, or needs features today's data lacks, is left out with a
    warning: the gate then compares against the baselines only, and says so.
    """
    key = champion_key(PIPELINE)
    if not lake.exists(key):
        log.info("no champion yet (%s absent): first run", key)
        return {}
    current = json.loads(lake.read_text(key))
    champions = {}
    for name, champ_version in sorted(current.items()):
        if name not in PUBLISHED or champ_version == version:
            continue
        try:
            manifest = json.loads(
                lake.read_text(f"{models_prefix(PIPELINE, champ_version)}/manifest.json")
            )
            features = manifest["params"]["features"]
            if not set(features) <= set(FEATURES):
                raise TrainingError(f"needs features {sorted(set(features) - set(FEATURES))}")
            model = training.load_keras(lake, manifest["models"][name]["artifact"])
        except (LakeError, TrainingError, KeyError, ValueError, OSError) as exc:
            log.warning("champion %s %s left out of the comparison: %s", name, champ_version, exc)
            continue
        champions[name] = (champ_version, features, model)
    return champions


def _evaluate(
    models: dict, champions: dict, test_df: pd.DataFrame, batch: int
) -> tuple[pd.DataFrame, dict, dict]:
    """Score the holdout with every model and champion: (holdout frame, metrics, champions)."""
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
        holdout[f"p_skip_{name}"] = _predict(model, x_test, batch)
        metrics[name] = binary_metrics(y_test, holdout[f"p_skip_{name}"])
        log.info("%s holdout metrics: %s", name, metrics[name])
    entries = {}
    for name, (champ_version, feats, model) in champions.items():
        p = training.predict_batched(model, test_df[feats].to_numpy(np.float32), batch)
        holdout[f"p_skip_champion_{name}"] = p
        entries[name] = {"version": champ_version, "metrics": binary_metrics(y_test, p)}
        log.info(
            "champion %s %s on today's holdout: %s", name, champ_version, entries[name]["metrics"]
        )
    return holdout, metrics, entries


# ---- step 5: outputs --------------------------------------------------------------------------
def _save_models(lake: Lake, model_dir: str, models: dict) -> dict:
    """Write the fitted models under ``model_dir``; {model name: lake key, or None}."""
    artifacts = {
        "always_played": None,  # a constant, recorded in the manifest
        "gradient_boosting": training.save_pickle(
            lake, f"{model_dir}/gradient_boosting.pkl", models["gradient_boosting"]
        ),
    }
    for name in PUBLISHED:
        artifacts[name] = training.save_keras(lake, f"{model_dir}/{name}.keras", models[name])
    return artifacts


def _score_candidates(
    path: Path, lake: Lake, key: str, scorers: list[tuple[str, str, list, object]], batch: int
) -> int:
    """Score every candidate with every (name, version, features, model), batch by batch.

    Rows are streamed from ``candidates.parquet`` into a Parquet writer, so memory stays at one
    batch whatever the number of candidates. Returns the number of candidate rows.
    """
    needed = sorted({f for _, _, feats, _ in scorers for f in feats})
    _check_columns(path, [*CANDIDATE_KEYS, *needed])
    source = pq.ParquetFile(path)
    key_types = [source.schema_arrow.field(k).type for k in CANDIDATE_KEYS]
    schema = pa.schema(
        [
            pa.field("user_id", key_types[0]),
            pa.field("track_id", key_types[1]),
            pa.field("model_name", pa.string()),
            pa.field("model_version", pa.string()),
            pa.field("p_skip", pa.float64()),
        ]
    )
    n = 0
    with tempfile.TemporaryDirectory(prefix="nightshift-") as tmp:
        out = Path(tmp) / "scores.parquet"
        with pq.ParquetWriter(out, schema) as writer:
            for rb in source.iter_batches(batch_size=batch, columns=[*CANDIDATE_KEYS, *needed]):
                table = pa.Table.from_batches([rb])
                _check_no_nulls(table, path.name)
                frame = table.to_pandas()
                n += len(frame)
                for name, version, feats, model in scorers:
                    p = training.predict_batched(model, frame[feats].to_numpy(np.float32), batch)
                    writer.write_table(
                        pa.table(
                            {
                                "user_id": table.column("user_id"),
                                "track_id": table.column("track_id"),
                                "model_name": pa.array([name] * len(frame), pa.string()),
                                "model_version": pa.array([version] * len(frame), pa.string()),
                                "p_skip": pa.array(p, pa.float64()),
                            },
                            schema=schema,
                        )
                    )
        lake.put_file(out, key)
    return n


def train(
    lake: Lake, ds: dt.date | str, settings: Settings, *, params: TrainParams | None = None
) -> dict:
    """Train, evaluate and score music_skip for ``ds``; write everything to the lake.

    Returns the manifest (also written to ``models/music_skip/<version>/manifest.json``).
    Raises TrainingError, with a one-line reason, when the features are missing, empty,
    incomplete or hold a single class.
    """
    params = params or TrainParams()
    ds = ds.isoformat() if isinstance(ds, dt.date) else str(ds)
    seed = settings.seed
    feats_prefix = features_prefix(PIPELINE, ds)

    with lake.local_dir(feats_prefix) as folder:
        # 1. read and check the features
        plays_path = _plays_path(folder, ds, lake)
        candidates_path = folder / "candidates.parquet"
        if not candidates_path.is_file():
            where = lake.url(f"{feats_prefix}/candidates.parquet")
            raise TrainingError(f"no candidates at {where}: run the features step for {ds}")
        _check_columns(plays_path, [*ID_COLUMNS, *FEATURES, LABEL])
        fingerprint = training.data_fingerprint([plays_path, candidates_path])
        run_params = {
            "pipeline": PIPELINE,
            "features": list(FEATURES),
            "label": LABEL,
            "seed": seed,
            **dataclasses.asdict(params),
        }
        version = training.run_version(ds, fingerprint, run_params)
        log.info("music_skip %s: version %s, data %s", ds, version, fingerprint[:12])

        # 2. split by time; bound the training rows to the newest max_train_rows
        clock = time.perf_counter()
        timings: dict[str, float] = {}
        train_tbl, test_tbl, split_time, n_plays = _read_plays(plays_path, params)
        train_df = training.bounded_sample(_frame(train_tbl), params.max_train_rows, seed)
        test_df = _frame(test_tbl)
        del train_tbl, test_tbl
        x_train, y_train = _xy(train_df)
        y_test = test_df[LABEL].to_numpy()
        training.check_binary_labels(np.concatenate([y_train, y_test]), "plays.parquet")
        training.check_binary_labels(y_train, "the training period")
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
        timings["read_seconds"] = time.perf_counter() - clock
        clock = time.perf_counter()
        models, fits = _fit_models(x_train, y_train, params, seed)
        timings["fit_seconds"] = time.perf_counter() - clock
        clock = time.perf_counter()

        # 4. evaluate every model, and every champion, on the same holdout rows
        champions = _load_champions(lake, version)
        holdout, metrics, champion_entries = _evaluate(
            models, champions, test_df, params.score_batch_size
        )

        # 5. write the models, the predictions and, last, the manifest
        model_dir = models_prefix(PIPELINE, version)
        artifacts = _save_models(lake, model_dir, models)
        pred_dir = predictions_prefix(PIPELINE, ds)
        holdout_key = training.write_parquet(lake, f"{pred_dir}/holdout.parquet", holdout)
        scorers = [(name, version, list(FEATURES), models[name]) for name in PUBLISHED]
        scorers += [(name, v, feats, m) for name, (v, feats, m) in champions.items()]
        scores_key = f"{pred_dir}/scores.parquet"
        timings["evaluate_seconds"] = time.perf_counter() - clock
        clock = time.perf_counter()
        n_candidates = _score_candidates(
            candidates_path, lake, scores_key, scorers, params.score_batch_size
        )
        timings["score_seconds"] = time.perf_counter() - clock
        log.info(
            "scored %d candidates with %d models into %s", n_candidates, len(scorers), scores_key
        )

    manifest = _manifest(
        ds=ds,
        version=version,
        fingerprint=fingerprint,
        params=run_params,
        metrics=metrics,
        artifacts=artifacts,
        fits=fits,
        skip_rate=models["always_played"],
        champions=champion_entries,
        counts={
            "plays_rows": n_plays,
            "train_rows": len(train_df),
            "test_rows": len(test_df),
            "candidate_rows": n_candidates,
        },
        split_time=split_time,
        holdout_key=holdout_key,
        scores_key=scores_key,
    )
    # Timings vary run to run: they are reported, never part of the version.
    manifest["timings"] = {k: round(v, 2) for k, v in timings.items()}
    training.write_json(lake, f"{model_dir}/manifest.json", manifest)
    log.info("music_skip %s: wrote %s/manifest.json", ds, model_dir)
    return manifest


def _manifest(
    *,
    ds: str,
    version: str,
    fingerprint: str,
    params: dict,
    metrics: dict,
    artifacts: dict,
    fits: dict,
    skip_rate: float,
    champions: dict,
    counts: dict,
    split_time,
    holdout_key: str,
    scores_key: str,
) -> dict:
    import keras
    import sklearn

    split = split_time.as_py() if isinstance(split_time, pa.Scalar) else split_time
    return {
        "pipeline": PIPELINE,
        "version": version,
        "ds": ds,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "data_fingerprint": fingerprint,
        "params": params,
        "gate": GATE,
        "models": {
            name: {"metrics": metrics[name], "artifact": artifacts[name], "fit": fits[name]}
            for name in PUBLISHED
        },
        "baselines": {
            "always_played": {
                "metrics": metrics["always_played"],
                "artifact": None,
                "p_skip": skip_rate,
            },
            "gradient_boosting": {
                "metrics": metrics["gradient_boosting"],
                "artifact": artifacts["gradient_boosting"],
            },
        },
        "champions": champions,
        **counts,
        "split_time": split.isoformat() if hasattr(split, "isoformat") else str(split),
        "holdout_key": holdout_key,
        "scores_key": scores_key,
        # Not part of the version: the same data and params on another backend is the same run.
        "runtime": {
            "python": platform.python_version(),
            "keras": keras.__version__,
            "keras_backend": keras.backend.backend(),
            "scikit_learn": sklearn.__version__,
        },
    }
