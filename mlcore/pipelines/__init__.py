"""The pipelines nightshift runs, one module each; ``get(name)`` returns its spec.

A spec is cheap to import (no TensorFlow, no pandas at module level) because the Airflow
scheduler reads it while parsing DAG files.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class PipelineSpec:
    name: str  # also the DAG id and the folder under sql/ and lake/*/
    sources: tuple[str, ...]  # raw sources ingested and validated before the SQL runs
    published_tables: tuple[str, ...]  # marts.<table>, lake/outputs/<table>/
    # lake file name under features/<pipeline>/ds=…/ -> warehouse table exported to it
    feature_exports: dict[str, str]
    trainer: str  # "module:function" called by `nightshift train`, reads and writes the lake only
    publisher: str  # "module:function" called by the publish step, on the warehouse
    schedule: str = "@daily"
    summary: str = ""

    def load(self, ref: str):
        module, _, attr = ref.partition(":")
        return getattr(importlib.import_module(module), attr)


MUSIC_SKIP = PipelineSpec(
    name="music_skip",
    sources=("pozytywka",),
    published_tables=("skip_scores", "cache_plan", "ab_assignments", "ab_report"),
    feature_exports={
        "plays.parquet": "features.music_skip_plays",
        "candidates.parquet": "features.music_skip_candidates",
        "tracks.parquet": "features.music_skip_tracks",
    },
    trainer="mlcore.pipelines.music_skip_train:train",
    publisher="mlcore.pipelines.music_skip_publish:publish",
    summary="Pozytywka: will a user play a track in full or skip it? Skip scores per user and "
    "track, a cache plan per track, an A/B test of two Keras models.",
)

PIPELINES: dict[str, PipelineSpec] = {p.name: p for p in (MUSIC_SKIP,)}


def get(name: str) -> PipelineSpec:
    try:
        return PIPELINES[name]
    except KeyError:
        known = ", ".join(sorted(PIPELINES))
        raise KeyError(f"unknown pipeline {name!r}; known: {known}") from None
