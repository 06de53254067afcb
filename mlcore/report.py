"""Plain-text views for people: the metrics table and the demo's summary."""

from __future__ import annotations

import datetime as dt

from mlcore.config import Settings
from mlcore.lake import open_lake


def _fmt(v) -> str:
    return f"{v:.4f}" if isinstance(v, float) else ("-" if v is None else str(v))


def metrics_table(result: dict, kind: str = "binary", k: int | None = None) -> str:
    """The latest run's models and baselines, one row each, with the metrics of its kind."""
    from mlcore.evaluation import metric_names

    if k is None and kind in ("ranking", "recall"):
        # the gate's cut-off: the smallest the run reported (its k; ks adds larger ones)
        cutoffs = {
            int(name.split("@")[1])
            for model in result["models"].values()
            for name in model.get("metrics", {})
            if name.startswith("recall@")
        }
        k = min(cutoffs, default=None)
    METRICS = metric_names(kind, k)
    lines = [f"{result.get('pipeline')} run {result.get('version')} (ds {result.get('ds')})"]
    lines.append(f"{'model':<20}{'status':<11}" + "".join(f"{m:>12}" for m in METRICS))
    rows = [(n, m.get("status", ""), m.get("metrics", {})) for n, m in result["models"].items()]
    rows += [(n, "baseline", m) for n, m in result.get("baselines", {}).items()]
    for name, status, metrics in rows:
        lines.append(
            f"{name:<20}{status:<11}" + "".join(f"{_fmt(metrics.get(m)):>12}" for m in METRICS)
        )
    return "\n".join(lines)


def demo_summary(settings: Settings, ds: dt.date) -> str:
    """What the demo published: marts partitions, lake outputs, reports, rejects, quarantine."""
    from mlcore.warehouse import open_warehouse

    lake = open_lake(settings)
    out = [f"\nPublished for ds={ds} (warehouse {settings.warehouse}, lake {lake.uri}):"]
    with open_warehouse(
        settings.warehouse, read_only=True, lock_wait=settings.warehouse_lock_wait
    ) as con:
        rows = con.execute(
            "select table_name, row_count, lake_uri, model_version from ops.publish_log "
            "where ds = ? qualify row_number() over (partition by table_name "
            "order by published_at desc) = 1 order by table_name",
            [ds],
        ).fetchall()
        for table, n, uri, version in rows:
            out.append(f"  marts.{table:<16} {n:>8} rows  {uri}  (models {version})")
        out.append("Data quality:")
        for table, n in con.execute(
            "select source || '.' || table_name, count(*) from ops.rejected_lines "
            "group by all order by 1"
        ).fetchall():
            out.append(f"  ops.rejected_lines      {table:<28} {n:>6} lines")
        for (schema_table,) in con.execute(
            "select table_schema || '.' || table_name from information_schema.tables "
            "where table_schema = 'quarantine' order by 1"
        ).fetchall():
            n = con.execute(f"select count(*) from {schema_table}").fetchone()[0]
            out.append(f"  {schema_table:<40} {n:>6} rows quarantined")
        failed = con.execute(
            "select count(*) filter (where not success), count(*) from ops.validation_results "
            "where ds = ?",
            [ds],
        ).fetchone()
        out.append(
            f"  expectations for ds={ds}: {failed[1] - failed[0]} passed, {failed[0]} "
            "not met (see the Data Docs)"
        )
    for key in lake.list("reports"):
        if key.endswith("index.html") and f"ds={ds}" in key:
            out.append(f"  Data Docs: {lake.url(key)}")
    from mlcore import pipelines

    for name in pipelines.PIPELINES:
        out.append(f"Metrics: nightshift metrics {name} --json")
    return "\n".join(out)
