"""One Airflow Asset per published table, for downstream teams to schedule on.

A downstream DAG waits for tonight's skip scores with
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
