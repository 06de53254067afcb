"""music_skip: will a Pozytywka listener play a track in full or skip it?

The spec below is all the core needs to run the pipeline; the work is in ``features``
(the feature contract with ``sql/music_skip/``), ``train`` and ``publish``. Docs:
``docs/pipelines/music_skip.md``. Cheap to import: the scheduler parses DAGs with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mlcore.contract import Pipeline, TableSchema


@dataclass(frozen=True)
class MusicSkipSettings:
    """``NIGHTSHIFT_MUSIC_SKIP_*``: the settings of this pipeline alone."""

    # Daily storage budget of the cache plan; None keeps today's total cost. The older name
    # NIGHTSHIFT_CACHE_BUDGET is still read.
    cache_budget: float | None = field(default=None, metadata={"alias": "NIGHTSHIFT_CACHE_BUDGET"})
    # Train, evaluate and score the sequence challenger (gru_session) every night. It serves no
    # arm and costs most of the training time on a CPU: false turns it off (the run's version
    # changes with it, as with any change to what is trained).
    sequence_challenger: bool = True


PIPELINE = Pipeline(
    name="music_skip",
    kind="binary",
    sources=("pozytywka",),
    tables=(
        TableSchema(
            "skip_scores",
            grain="one row per user × candidate track",
            key=("ds", "user_id", "track_id"),
            columns={
                "ds": "date",
                "user_id": "integer",
                "track_id": "varchar",
                "p_skip": "double",
                "model_version": "varchar",
                "arm": "varchar",
            },
            doc="the probability that the user skips the track, from the user's arm's model",
        ),
        TableSchema(
            "cache_plan",
            grain="one row per track of the catalogue",
            key=("ds", "track_id"),
            columns={
                "ds": "date",
                "track_id": "varchar",
                "expected_full_plays": "double",
                "p_full": "double",
                "storage_class": "varchar",
                "recommended_storage_class": "varchar",
                "daily_cost": "double",
                "recommended_daily_cost": "double",
                "daily_cost_change": "double",
            },
            doc="the storage class to keep each track in tomorrow, within the daily budget",
        ),
        TableSchema(
            "ab_assignments",
            grain="one row per scored user",
            key=("ds", "user_id"),
            columns={
                "ds": "date",
                "user_id": "integer",
                "arm": "varchar",
                "model_name": "varchar",
                "model_version": "varchar",
            },
            doc="the A/B arm of each user (a stable md5 hash of the id) and the model serving it",
        ),
        TableSchema(
            "ab_report",
            grain="one row per scoring day (the 7 before ds) × arm",
            key=("ds", "score_ds", "arm"),
            columns={
                "ds": "date",
                "score_ds": "date",
                "arm": "varchar",
                "model_version": "varchar",
                "users": "bigint",
                "plays": "bigint",
                "skips": "hugeint",
                "realised_skip_rate": "double",
                "scored_plays": "bigint",
                "predicted_skip_rate": "double",
            },
            doc="the realised next-day skip rate per arm against the predicted one",
        ),
    ),
    feature_exports={
        "plays.parquet": "features.music_skip_plays",
        "candidates.parquet": "features.music_skip_candidates",
        "tracks.parquet": "features.music_skip_tracks",
    },
    trainer="mlcore.pipelines.music_skip.train:train",
    publisher="mlcore.pipelines.music_skip.publish:publish",
    settings="mlcore.pipelines.music_skip:MusicSkipSettings",
    summary="Pozytywka: will a user play a track in full or skip it? Skip scores per user and "
    "track, a cache plan per track, an A/B test of two Keras models.",
    tags=("music", "pozytywka"),
    docs="docs/pipelines/music_skip.md",
    servable=True,
)
