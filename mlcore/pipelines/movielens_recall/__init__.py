"""movielens_recall: which movies to put in front of each user, and which movies go together.

A latent factor model over hashed ids (the MovieLens LFM project, done so that it learns), with
u2i and i2i recall tables published every night. The work is in ``sql/movielens_recall/``
(the split), ``train`` (the models and their evaluation on the original's protocol) and
``publish``. Docs: ``docs/pipelines/movielens_recall.md``. Cheap to import.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlcore.contract import Pipeline, TableSchema


@dataclass(frozen=True)
class MovielensRecallSettings:
    """``NIGHTSHIFT_MOVIELENS_RECALL_*``: the settings of this pipeline alone."""

    # Length of every published list (u2i per user, i2i per movie).
    top_k: int = 50
    # A movie gets an i2i list (and appears in others') once it has this many training ratings:
    # below that its vector is mostly its initialisation.
    min_movie_ratings: int = 10
    # Full-ranking metrics are computed on a seeded sample of this many test users: the
    # numbers settle well before, and ranking 27k movies for 138k users per model would cost
    # as much as publishing does.
    max_eval_users: int = 20_000


PIPELINE = Pipeline(
    name="movielens_recall",
    kind="recall",
    sources=("movielens",),
    tables=(
        TableSchema(
            "movie_u2i",
            grain="one row per user × recommended movie",
            key=("ds", "user_id", "rank"),
            columns={
                "ds": "date",
                "user_id": "bigint",
                "rank": "integer",
                "movie_id": "bigint",
                "score": "double",
                "model_name": "varchar",
                "model_version": "varchar",
            },
            doc="the top movies for each user (already-rated ones excluded), best first",
        ),
        TableSchema(
            "movie_i2i",
            grain="one row per movie × similar movie",
            key=("ds", "movie_id", "rank"),
            columns={
                "ds": "date",
                "movie_id": "bigint",
                "rank": "integer",
                "similar_movie_id": "bigint",
                "score": "double",
                "model_name": "varchar",
                "model_version": "varchar",
            },
            doc="the movies most like each movie with enough ratings, best first",
        ),
    ),
    feature_exports={
        "ratings/": "features.movielens_ratings",
        "movies.parquet": "features.movielens_movies",
    },
    trainer="mlcore.pipelines.movielens_recall.train:train",
    publisher="mlcore.pipelines.movielens_recall.publish:publish",
    settings="mlcore.pipelines.movielens_recall:MovielensRecallSettings",
    summary="MovieLens: a latent factor model over hashed ids trained for recall (BPR), "
    "against popularity, EASE and implicit ALS; u2i and i2i top-50 tables every night.",
    tags=("movielens", "recall"),
    docs="docs/pipelines/movielens_recall.md",
)
