"""movielens_recall training: the latent factor model and its peers, judged on held-out ratings.

``train(run)`` is what ``nightshift train movielens_recall --ds D`` runs (through the core's
run skeleton, :mod:`mlcore.runs`); it reads and writes the lake only:

1. read ``features/movielens_recall/ds=D/ratings/`` (Parquet shards of at most 200,000 rows,
   split by the SQL: per user the last two ratings are ``test``) and ``movies.parquet``;
2. fit on the training split: the published slot ``lfm_bpr`` (a latent factor model over
   hashed ids, one shared embedding table, trained with a ranking objective on positives),
   the original's ``lfm_mse`` (the same table trained with MSE on ratings) and the peers a
   recommender engineer tries first: ``popularity`` (the naive bar), ``ease`` and implicit's
   ``als``;
3. evaluate every model, and the current champion, on the same held-out users (a seeded
   sample of at most ``max_eval_users``): full-ranking top-50 lists with the user's training
   movies excluded (``holdout.parquet``: user_id, rank, movie_id, score, model), scored
   against their held-out positives (``truth.parquet``) for Recall@10/20/50, NDCG@10, MAP and
   hit rate; and scored pairs (``pairs.parquet``) for AUC (held-out positives against
   held-out negatives, the original's protocol, and against random unrated movies) and the
   MSE model's RMSE;
4. score every user and every movie with enough ratings with the models that may serve
   tonight: the slot's candidate, the best peer (it serves when it beats the candidate) and
   the champion of another version (``u2i.parquet``, ``i2i.parquet``).

Models serve from their lake file (``<name>.pkl``: numpy factors, not a Keras graph); the LFM's
embedding table is also saved through its table interface (``<name>_table.npz``).

The version is ``<ds>-<10 hex of sha256(data fingerprint + params)>``.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from mlcore import training
from mlcore.manifest import (
    ChampionEntry,
    Evaluation,
    GateRule,
    ModelEntry,
    RunManifest,
    ScoredModel,
)
from mlcore.pipelines.movielens_recall import MovielensRecallSettings
from mlcore.pipelines.movielens_recall.features import MOVIE_COLUMNS, RATING_COLUMNS
from mlcore.runs import TrainingRun, check_columns
from mlcore.training import TrainingError

log = logging.getLogger(__name__)

PIPELINE = "movielens_recall"
SLOT = "lfm_bpr"
PEERS = ("popularity", "ease", "als", "lfm_mse")
# The published model must beat every peer, on Recall@10 of the held-out positives: the gate
# publishes the best of the run's models. When a peer wins, the candidate is rejected and the
# best peer that beats popularity serves (a degraded night that says so).
GATE = GateRule(
    metric="recall@10", greater_is_better=True, must_beat=list(PEERS), naive="popularity"
)
K = 10  # the gate's cut-off
KS = [20, 50]  # reported beside it
EVAL_LIST = 50  # held-out lists are this long (Recall@50 needs them)


@dataclass(frozen=True)
class TrainParams:
    """Everything that shapes the models; all of it goes into the version hash."""

    # Hashed id space of users and movies: a prime a few times the ids (ml-20m: 165k ids).
    # BKDR mod 2**20 put 29k of them in shared buckets, the prime 1,048,573 about 7k.
    num_buckets: int = 1_048_573
    dim: int = 64
    # Measured on an ml-20m-sized set (2 cores): 6 epochs at batch 65,536 gave Recall@10 0.089;
    # 12 epochs overfit (0.074). Smaller data trains with smaller batches (see _batch_size).
    bpr_epochs: int = 6
    bpr_learning_rate: float = 1e-2
    mse_epochs: int = 10
    mse_learning_rate: float = 5e-3
    max_batch_size: int = 65_536
    min_steps_per_epoch: int = 50
    popularity_days: int | None = None  # all time: 0.054 against 0.035 for the last year
    ease_l2: float = 500.0
    ease_max_items: int = 20_000
    als_factors: int = 64
    als_iterations: int = 15
    als_regularization: float = 0.05
    unrated_per_user: int = 4  # random unrated movies per evaluated user (pairs for AUC)


# ---- step 1: read and check -------------------------------------------------------------------
def _read(run: TrainingRun) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    folder = run.features("ratings/")
    shards = sorted(folder.glob("part-*.parquet"))
    if not shards:
        raise TrainingError(f"{folder.name}: no ratings shards; run the features step")
    check_columns(shards[0], RATING_COLUMNS)
    movies_path = run.features("movies.parquet")
    check_columns(movies_path, MOVIE_COLUMNS)
    fingerprint = training.data_fingerprint([*shards, movies_path])
    ratings = pads.dataset([str(s) for s in shards], format="parquet").to_table(
        columns=list(RATING_COLUMNS)
    )
    if ratings.num_rows == 0:
        raise TrainingError("ratings: no rows up to this ds; nothing to learn from")
    frame = ratings.to_pandas()
    bad = frame[["user_id", "movie_id", "rating"]].isna().sum()
    if bad.any():
        raise TrainingError(f"ratings hold nulls: {bad[bad > 0].to_dict()}")
    movies = pq.read_table(movies_path, columns=["movie_id", "train_ratings"]).to_pandas()
    return frame, movies, fingerprint


# ---- step 2: the models -----------------------------------------------------------------------
def _batch_size(rows: int, params: TrainParams) -> int:
    """At most ``max_batch_size``, and small enough for ``min_steps_per_epoch`` steps: a
    small night (the tests', a new deployment's) would otherwise train one step an epoch."""
    return int(min(params.max_batch_size, max(64, rows // params.min_steps_per_epoch)))


def _models(params: TrainParams, seed: int, positives: int, rows: int) -> dict:
    from mlcore.models import recall

    return {
        "lfm_bpr": recall.LatentFactorBPR(
            num_buckets=params.num_buckets,
            dim=params.dim,
            epochs=params.bpr_epochs,
            batch_size=_batch_size(positives, params),
            learning_rate=params.bpr_learning_rate,
            seed=seed,
        ),
        "lfm_mse": recall.LatentFactorMSE(
            num_buckets=params.num_buckets,
            dim=params.dim,
            epochs=params.mse_epochs,
            batch_size=_batch_size(rows, params),
            learning_rate=params.mse_learning_rate,
            seed=seed,
        ),
        "popularity": recall.Popularity(days=params.popularity_days),
        "ease": recall.EASE(l2=params.ease_l2, max_items=params.ease_max_items),
        "als": recall.ImplicitALS(
            factors=params.als_factors,
            iterations=params.als_iterations,
            regularization=params.als_regularization,
            seed=seed,
        ),
    }


def _seen(frame: pd.DataFrame) -> dict[int, np.ndarray]:
    """{user_id: the movie ids the frame holds for them}, for excluding from their lists."""
    ordered = frame[["user_id", "movie_id"]].sort_values(["user_id", "movie_id"])
    users = ordered["user_id"].to_numpy()
    movies = ordered["movie_id"].to_numpy()
    cuts = np.flatnonzero(np.diff(users)) + 1
    starts = np.concatenate([[0], cuts])
    return {int(users[s]): part for s, part in zip(starts, np.split(movies, cuts), strict=True)}


def _ranked(queries: np.ndarray, items, scores, query: str, item: str) -> pd.DataFrame:
    """One row per query × listed item (query, rank from 1, item, score); the -1 / NaN padding
    of a list the catalogue could not fill is dropped."""
    items, scores = np.asarray(items), np.asarray(scores, dtype=np.float64)
    rank = np.broadcast_to(np.arange(1, items.shape[1] + 1), items.shape)
    frame = pd.DataFrame(
        {
            query: np.repeat(queries, items.shape[1]),
            "rank": rank.ravel().astype(np.int32),
            item: items.ravel().astype(np.int64),
            "score": scores.ravel(),
        }
    )
    return frame[(frame[item] >= 0) & np.isfinite(frame["score"])]


def _lists(model, users: np.ndarray, k: int, seen: dict) -> pd.DataFrame:
    """One row per user × listed movie: user_id, rank, movie_id, score."""
    return _ranked(users, *model.recommend(users, k, exclude=seen), "user_id", "movie_id")


# ---- step 3: evaluation -----------------------------------------------------------------------
def _eval_users(test: pd.DataFrame, most: int, seed: int) -> np.ndarray:
    """The held-out users evaluated: those with a held-out positive, a seeded sample of them."""
    users = np.sort(test.loc[test["label"] == 1, "user_id"].unique())
    if len(users) > most:
        users = np.sort(np.random.default_rng(seed).choice(users, most, replace=False))
    return users


def _pairs(
    test: pd.DataFrame,
    users: np.ndarray,
    seen_all: dict,
    catalogue: np.ndarray,
    per_user: int,
    seed: int,
) -> pd.DataFrame:
    """The scored pairs of the evaluated users: their held-out ratings (positive / negative)
    and ``per_user`` random movies of the catalogue they never rated (unrated)."""
    rated = test[test["user_id"].isin(users)]
    rows = pd.DataFrame(
        {
            "user_id": rated["user_id"].to_numpy(),
            "movie_id": rated["movie_id"].to_numpy(),
            "pair": np.where(rated["label"].to_numpy() == 1, "positive", "negative"),
            "rating": rated["rating"].to_numpy(dtype=np.float64),
        }
    )
    rng = np.random.default_rng(seed + 1)
    draws = rng.choice(catalogue, size=(len(users), per_user * 3))
    unrated_u, unrated_m = [], []
    for user, row in zip(users, draws, strict=True):
        fresh = row[~np.isin(row, seen_all.get(int(user), ()))]
        fresh = pd.unique(fresh)[:per_user]
        unrated_u.append(np.full(len(fresh), user))
        unrated_m.append(fresh)
    unrated = pd.DataFrame(
        {
            "user_id": np.concatenate(unrated_u) if unrated_u else np.array([], np.int64),
            "movie_id": np.concatenate(unrated_m) if unrated_m else np.array([], np.int64),
            "pair": "unrated",
            "rating": np.nan,
        }
    )
    pairs = pd.concat([rows, unrated], ignore_index=True)
    return pairs.sort_values(["user_id", "pair", "movie_id"], ignore_index=True)


def _evaluate(models: dict, champions: dict, test, users, seen_train, pairs) -> tuple:
    """(holdout rows, truth, pairs with a score column per model, metrics per model)."""
    from mlcore.evaluation import compute

    lists, scored = [], {"lfm_mse": "rating_lfm_mse"}
    judged = {**models, **{f"champion_{slot}": s.model for slot, s in champions.items()}}
    for name, model in judged.items():
        lists.append(_lists(model, users, EVAL_LIST, seen_train).assign(model=name))
        pairs[f"score_{name}"] = np.asarray(
            model.score_pairs(pairs["user_id"].to_numpy(), pairs["movie_id"].to_numpy()),
            dtype=np.float64,
        )
        log.info("evaluated %s on %d users", name, len(users))
    pairs["rating_lfm_mse"] = np.asarray(
        models["lfm_mse"].predict_rating(pairs["user_id"].to_numpy(), pairs["movie_id"].to_numpy()),
        dtype=np.float64,
    )
    holdout = pd.concat(lists, ignore_index=True)
    truth = test.loc[(test["label"] == 1) & test["user_id"].isin(users), ["user_id", "movie_id"]]
    truth = truth.sort_values(["user_id", "movie_id"], ignore_index=True)
    evaluation = _evaluation("", "", "", {name: f"score_{name}" for name in judged}, scored)
    metrics = compute("recall", evaluation, holdout, truth, pairs)
    return holdout, truth, pairs, metrics


def _evaluation(
    key: str, truth_key: str, pairs_key: str, scores: dict, ratings: dict
) -> Evaluation:
    return Evaluation(
        key=key,
        columns={
            "query": "user_id",
            "item": "movie_id",
            "rank": "rank",
            "model": "model",
            "pair": "pair",
            "rating": "rating",
        },
        scores=scores,
        truth_key=truth_key,
        k=K,
        ks=list(KS),
        pairs_key=pairs_key,
        ratings=ratings,
    )


# ---- step 4: tonight's lists ------------------------------------------------------------------
def _similar(model, movies: np.ndarray, k: int) -> pd.DataFrame:
    """One row per movie × similar movie: movie_id, rank, similar_movie_id, score."""
    return _ranked(movies, *model.similar(movies, k), "movie_id", "similar_movie_id")


def _score_tonight(run, serving: dict, users, seen_all, movies_ok, top_k) -> tuple[str, str, int]:
    """u2i and i2i lists of every model that may serve tonight; returns the keys and rows."""
    u2i, i2i = [], []
    for (name, version), model in serving.items():
        with run.timed(f"score_{name}"):
            u2i.append(
                _lists(model, users, top_k, seen_all).assign(model_name=name, model_version=version)
            )
            # Ask for more than top_k: movies below min_movie_ratings are dropped from the lists.
            similar = _similar(model, movies_ok, min(len(movies_ok), 2 * top_k + 1))
            similar = similar[similar["similar_movie_id"].isin(movies_ok)]
            similar = similar[similar["similar_movie_id"] != similar["movie_id"]]
            similar["rank"] = similar.groupby("movie_id").cumcount().astype(np.int32) + 1
            i2i.append(
                similar[similar["rank"] <= top_k].assign(model_name=name, model_version=version)
            )
        log.info("scored %s %s: %d users, %d movies", name, version, len(users), len(movies_ok))
    u2i_key = training.write_parquet(
        run.lake, run.predictions_key("u2i.parquet"), pd.concat(u2i, ignore_index=True)
    )
    i2i_key = training.write_parquet(
        run.lake, run.predictions_key("i2i.parquet"), pd.concat(i2i, ignore_index=True)
    )
    return u2i_key, i2i_key, sum(len(f) for f in u2i)


def train(run: TrainingRun, params: TrainParams | None = None) -> RunManifest:
    """Fit, evaluate and score; return the manifest (the core writes it). Raises TrainingError,
    with a one-line reason, when the features are missing, empty or hold no held-out user."""
    params = params or TrainParams()
    settings = run.pipeline_settings or MovielensRecallSettings()
    seed = run.seed

    with run.timed("read"):
        frame, movies, fingerprint = _read(run)
    run_params = {
        "pipeline": PIPELINE,
        "seed": seed,
        **dataclasses.asdict(params),
        **{f"setting_{k}": v for k, v in dataclasses.asdict(settings).items()},
    }
    version = run.version(fingerprint, run_params)
    is_test = frame["split"].to_numpy() == "test"
    train_df, test_df = (
        frame[~is_test].reset_index(drop=True),
        frame[is_test].reset_index(drop=True),
    )
    if test_df.empty or not (test_df["label"] == 1).any():
        raise TrainingError(
            "no held-out positive rating (every user needs 3+ ratings, one of the last two >= 4)"
        )
    log.info(
        "movielens_recall %s: version %s; %d ratings of %d users (%d held out), %d movies",
        run.ds,
        version,
        len(frame),
        frame["user_id"].nunique(),
        len(test_df),
        len(movies),
    )

    positives = int((train_df["label"] == 1).sum())
    models = _models(params, seed, positives, len(train_df))
    fits = {}
    for name, model in models.items():
        with run.timed(f"fit_{name}"):
            fits[name] = model.fit(train_df) or {}
        log.info("fitted %s in %.1fs", name, run.timings[f"fit_{name}_seconds"])

    seen_train = _seen(train_df)
    seen_all = _seen(frame)
    catalogue = np.sort(train_df["movie_id"].unique())
    with run.timed("evaluate"):
        users = _eval_users(test_df, settings.max_eval_users, seed)
        champions = run.champions([SLOT], version, ["user_id", "movie_id"])
        pairs = _pairs(test_df, users, seen_all, catalogue, params.unrated_per_user, seed)
        holdout, truth, pairs, metrics = _evaluate(
            models, champions, test_df, users, seen_train, pairs
        )
        holdout_key = training.write_parquet(
            run.lake, run.predictions_key("holdout.parquet"), holdout
        )
        truth_key = training.write_parquet(run.lake, run.predictions_key("truth.parquet"), truth)
        pairs_key = training.write_parquet(run.lake, run.predictions_key("pairs.parquet"), pairs)
    popularity = metrics["popularity"].get(GATE.metric) or 0.0
    log.info(
        "recall@10: %s (popularity x%.2f for %s)",
        {n: round(m.get("recall@10") or 0.0, 4) for n, m in metrics.items()},
        (metrics[SLOT]["recall@10"] or 0.0) / popularity if popularity else float("nan"),
        SLOT,
    )

    artifacts = {}
    for name, model in models.items():
        artifacts[name] = training.save_pickle(
            run.lake, run.model_key(version, f"{name}.pkl"), model
        )
        table = getattr(model, "table", None)
        if table is not None:  # the LFMs: their embedding table through its own interface
            with tempfile.TemporaryDirectory(prefix="nightshift-table-") as tmp:
                path = Path(tmp) / f"{name}_table.npz"
                table.save(path)
                run.lake.put_file(path, run.model_key(version, path.name))

    # Tonight's lists: the candidate, the best peer (it serves when it beats the candidate)
    # and the champion of another version (it serves when the candidate is rejected).
    best_peer = max(
        (p for p in PEERS if p != GATE.naive and metrics[p].get(GATE.metric) is not None),
        key=lambda p: metrics[p][GATE.metric],
        default=None,
    )
    serving = {(SLOT, version): models[SLOT]}
    if best_peer:
        serving[(best_peer, version)] = models[best_peer]
    for slot, scorer in champions.items():
        serving[(slot, scorer.version)] = scorer.model
    all_users = np.sort(frame["user_id"].unique())
    movies_ok = np.sort(
        movies.loc[movies["train_ratings"] >= settings.min_movie_ratings, "movie_id"].to_numpy()
    )
    u2i_key, _, scored_rows = _score_tonight(
        run, serving, all_users, seen_all, movies_ok, settings.top_k
    )

    def entry(name: str) -> ModelEntry:
        return ModelEntry(
            metrics=metrics[name],
            artifact=artifacts[name],
            inputs=["user_id", "movie_id"],
            fit=fits.get(name, {}),
        )

    scores = {name: f"score_{name}" for name in [*models, *(f"champion_{s}" for s in champions)]}
    return RunManifest(
        pipeline=PIPELINE,
        kind="recall",
        version=version,
        ds=run.ds,
        data_fingerprint=fingerprint,
        params=run_params,
        gate=GATE,
        models={SLOT: entry(SLOT)},
        baselines={name: entry(name) for name in PEERS},
        champions={
            slot: ChampionEntry(s.version, metrics[f"champion_{slot}"])
            for slot, s in champions.items()
        },
        scored=[ScoredModel(name, v) for name, v in serving],
        scores_key=u2i_key,
        evaluation=_evaluation(
            holdout_key, truth_key, pairs_key, scores, {"lfm_mse": "rating_lfm_mse"}
        ),
        counts={
            "input_rows": len(frame),
            "train_rows": len(train_df),
            "evaluation_rows": len(holdout),
            "scored_rows": scored_rows,
            "evaluated_users": len(users),
            "users": len(all_users),
            "i2i_movies": len(movies_ok),
        },
        split_time=str(test_df["rated_at"].min()),
        extra={
            "recall@10_vs_popularity": (metrics[SLOT]["recall@10"] or 0.0) / popularity
            if popularity
            else None
        },
    )
