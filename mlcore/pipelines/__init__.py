"""The registered pipelines, one sub-package each; ``get(name)`` returns its spec.

A pipeline is a sub-package ``mlcore/pipelines/<name>/`` whose ``__init__`` defines ``PIPELINE``
(a :class:`mlcore.contract.Pipeline`); registering it is one line in ``REGISTERED``. Specs are
cheap to import (no TensorFlow, no pandas at module level) because the Airflow scheduler reads
them while parsing DAG files. ``docs/adding-a-pipeline.md`` walks through the files to add.
"""

from __future__ import annotations

from mlcore.contract import Pipeline, load_registered

# The registered pipelines. Adding a pipeline: one line here.
REGISTERED = ("music_skip",)


PIPELINES: dict[str, Pipeline] = load_registered(__name__, REGISTERED, "PIPELINE")


def get(name: str) -> Pipeline:
    try:
        return PIPELINES[name]
    except KeyError:
        known = ", ".join(sorted(PIPELINES))
        raise KeyError(f"unknown pipeline {name!r}; known: {known}") from None
