"""The platform's Airflow Assets: one per raw source, one per published table.

Each source's ingest DAG (``ingest_<source>``) updates ``nightshift.raw.<source>`` when it has
staged a day; the pipeline DAGs are scheduled on the Assets of their sources, so a source read
by two pipelines is ingested once a night. Each event's ``extra`` carries the ``ds``.

Downstream teams schedule on the published tables: a DAG waits for tonight's skip scores with
``schedule=[table_asset("skip_scores")]`` (or ``Asset.ref(name="nightshift.marts.skip_scores")``
without importing this package); each event's ``extra`` carries the ``ds``, the row count and
the lake URI of the partition that was published.
"""

from __future__ import annotations

from airflow.sdk import Asset

GROUP = "nightshift"


def table_asset(table: str) -> Asset:
    """The Asset of ``marts.<table>`` (stable name; the ``x-`` URI scheme is ours)."""
    return Asset(name=f"nightshift.marts.{table}", uri=f"x-nightshift://marts/{table}", group=GROUP)


def table_assets(tables: tuple[str, ...] | list[str]) -> list[Asset]:
    return [table_asset(t) for t in tables]


def source_asset(source: str) -> Asset:
    """The Asset of a raw source, validated and staged for one ``ds`` (``extra["ds"]``)."""
    return Asset(name=f"nightshift.raw.{source}", uri=f"x-nightshift://raw/{source}", group=GROUP)
