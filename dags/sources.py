"""One ingest DAG per registered source: ``ingest_<source>`` (docs: built from the source's spec).

Each loads the night's delivery once, checks it, stages it for every pipeline that reads it,
and updates the source's Asset; the pipeline DAGs are scheduled on those Assets.
"""

from airflow.sdk import dag
from nightshift_airflow import tasks
from nightshift_airflow.assets import source_asset
from nightshift_airflow.defaults import DEFAULT_ARGS, START_DATE, TAGS, nightly

from mlcore.pipelines import readers
from mlcore.sources import SOURCES, SourceSpec


def source_doc(source: SourceSpec) -> str:
    tables = "\n".join(
        f"| `{t.file}` | `{source.raw_table(t.name)}` | {', '.join(t.key)} | {t.kind} |"
        for t in source.tables
    )
    pipelines = ", ".join(f"`{name}`" for name in readers(source.name)) or "none yet"
    return f"""
### Ingest {source.name}

{source.doc}

Every night, for the day `ds` that has just ended: load the files delivered under
`lake/raw/{source.name}/ds=…/` into DuckDB (lines that cannot be parsed go to
`ops.rejected_lines` with a reason), check them with the source's Great Expectations suites
(bad rows to `quarantine.*`; a critical failure fails at once, without retries), run the
shared staging SQL `sql/{source.name}/` into `staging.{source.name}_*`, and update the Asset
`{source_asset(source.name).name}` (`extra`: ds, rows per staging table).

| file | raw table | key | kind |
|---|---|---|---|
{tables}

**Starts**: {pipelines} (scheduled on this source's Asset).

**Rerun a day**: clear its run in the UI, or `nightshift run {source.dag_id} --ds YYYY-MM-DD`.
"""


def ingest_dag(source: SourceSpec) -> None:
    @dag(
        dag_id=source.dag_id,
        schedule=nightly(source.schedule),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=DEFAULT_ARGS,
        tags=[*TAGS, "source", source.name],
        doc_md=source_doc(source),
    )
    def ingest():
        tasks.source_chain(source.name)

    ingest()


for spec in SOURCES.values():
    ingest_dag(spec)
