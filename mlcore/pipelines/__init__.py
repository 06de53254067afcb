"""The registered pipelines, one sub-package each; ``get(name)`` returns its spec.

A pipeline is a sub-package ``mlcore/pipelines/<name>/`` whose ``__init__`` defines ``PIPELINE``
(a :class:`mlcore.contract.Pipeline`); registering it is one line in ``REGISTERED``. Specs are
cheap to import (no TensorFlow, no pandas at module level) because the Airflow scheduler reads
them while parsing DAG files. ``docs/adding-a-pipeline.md`` walks through the files to add.
"""

from __future__ import annotations

from mlcore.contract import Pipeline, load_registered

# The registered pipelines. Adding a pipeline: one line here.
REGISTERED = ("music_skip", "movielens_recall", "livestream_forecast")


PIPELINES: dict[str, Pipeline] = load_registered(__name__, REGISTERED, "PIPELINE")


def get(name: str) -> Pipeline:
    try:
        return PIPELINES[name]
    except KeyError:
        known = ", ".join(sorted(PIPELINES))
        raise KeyError(f"unknown pipeline {name!r}; known: {known}") from None


def readers(source: str) -> list[str]:
    """The pipelines that read ``source`` (and run when its ingest DAG has staged a day)."""
    return [name for name, spec in PIPELINES.items() if source in spec.sources]


def dag_chain(name: str) -> list[str]:
    """The DAGs ``nightshift run <name>`` runs for one ds: its sources' ingest DAGs, then its own.

    A source's DAG id is also accepted (it runs alone).
    """
    from mlcore.sources import SOURCES

    for source in SOURCES.values():
        if name == source.dag_id:
            return [name]
    return [*(SOURCES[s].dag_id for s in get(name).sources), name]
