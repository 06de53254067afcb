"""TaskFlow task builders: one small task per ``mlcore.steps`` function.

Each builder returns the task already called (an ``XComArg``), so a DAG file wires them with
``>>``: the lake and the warehouse are the contract between tasks, and XCom only carries each
step's small summary dict. ``mlcore.steps`` (and with it DuckDB, pandas, TensorFlow) is
imported inside the task bodies; parsing needs only the cheap settings and pipeline specs.

A TaskFlow function may not take an argument named ``ds`` (Airflow reserves it for the
context), so the tasks read the date of the run from the context with
:func:`nightshift_airflow.context.run_ds`.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import XComArg, get_current_context, task

from mlcore.config import load_settings
from mlcore.pipelines import get as get_pipeline
from nightshift_airflow import WAREHOUSE_POOL
from nightshift_airflow.assets import source_asset, table_asset
from nightshift_airflow.context import run_ds
from nightshift_airflow.launcher import train_task

log = logging.getLogger(__name__)


def ingest(source: str) -> XComArg:
    """``ingest_<source>``: load the day's raw files of ``source`` into the warehouse."""

    @task(task_id=f"ingest_{source}", pool=WAREHOUSE_POOL)
    def ingest_source() -> dict:
        """Load the raw files delivered for this `ds` (`lake/raw/<source>/ds=…/`) into
        DuckDB `raw.*`. Lines that cannot be parsed go to `ops.rejected_lines` with a reason."""
        from mlcore import steps

        return steps.ingest(source, run_ds())

    return ingest_source()


def validate(source: str) -> XComArg:
    """``validate_<source>``: run the source's expectation suites; fail fast when critical."""

    @task(task_id=f"validate_{source}", pool=WAREHOUSE_POOL)
    def validate_source() -> dict:
        """Check the day's raw tables with their Great Expectations suites. Bad rows go to
        `quarantine.*`; results to `ops.validation_results` and Data Docs. A critical failure
        fails the task at once (no retry: the data will not change by itself)."""
        from airflow.sdk.exceptions import AirflowFailException

        from mlcore import steps
        from mlcore.validate import ValidationFailed

        try:
            return steps.validate(source, run_ds())
        except ValidationFailed as exc:
            # AirflowFailException skips the retries, and its message is the one-line reason.
            raise AirflowFailException(str(exc)) from exc

    return validate_source()


def stage(source: str) -> XComArg:
    """``stage_<source>``: run the source's staging SQL, shared by every pipeline reading it."""

    asset = source_asset(source)

    @task(task_id=f"stage_{source}", pool=WAREHOUSE_POOL, outlets=[asset])
    def stage_source() -> dict:
        """Run `sql/<source>/` (rename and cast the validated raw tables into `staging.*`),
        the staging every pipeline that reads this source shares; then update the source's
        Asset (`extra`: ds, rows per staging table), which starts the pipelines reading it."""
        from mlcore import steps

        context = get_current_context()
        ds = run_ds(context)
        result = steps.stage(source, ds)
        context["outlet_events"][asset].extra = {"ds": ds, "tables": result.get("tables", {})}
        return result

    return stage_source()


def source_chain(source: str) -> tuple[XComArg, XComArg]:
    """``ingest_<source> >> validate_<source> >> stage_<source>``: (first task, last task)."""
    first = ingest(source)
    last = stage(source)
    first >> validate(source) >> last
    return first, last


def build_features(pipeline: str) -> XComArg:
    """``build_features``: run ``sql/<pipeline>/`` and export the feature tables."""

    @task(task_id="build_features", pool=WAREHOUSE_POOL)
    def build_features() -> dict:
        """Run the pipeline's SQL (`sql/<pipeline>/NN_*.sql`, in order) on the warehouse and
        export the feature tables to `lake/features/<pipeline>/ds=…/`."""
        from mlcore import steps

        return steps.build_features(pipeline, run_ds())

    return build_features()


def train_model(pipeline: str) -> Any:
    """``train_model``: `nightshift train` on the configured backend (see ``launcher``)."""
    return train_task(pipeline, load_settings())


def gate_model(pipeline: str) -> XComArg:
    """``gate_model``: register the run's models; promote or keep the champion."""

    @task(task_id="gate_model", pool=WAREHOUSE_POOL)
    def gate_model() -> dict:
        """Register the run's models in `ops.model_runs`. A model is promoted when it beats its
        baselines and is no worse than the champion; otherwise the champion keeps serving.
        When nothing passes and no champion can serve, the best model that beats the naive
        baseline serves and the run is marked degraded (a warning with the reason); the task
        fails, without retries, only when nothing beats naive."""
        from airflow.sdk.exceptions import AirflowFailException

        from mlcore import steps
        from mlcore.registry import GateFailed

        try:
            result = steps.gate(pipeline, run_ds())
        except GateFailed as exc:
            # The same run would fail the same way: retrying cannot help.
            raise AirflowFailException(str(exc)) from exc
        if result.get("degraded"):
            log.warning("nightshift run degraded: %s", result["degraded"])
        return result

    return gate_model()


def publish_outputs(pipeline: str) -> XComArg:
    """``publish_outputs``: replace the ``ds`` partition of each table; one Asset event each."""
    tables = get_pipeline(pipeline).published_tables

    @task(task_id="publish_outputs", pool=WAREHOUSE_POOL, outlets=[table_asset(t) for t in tables])
    def publish_outputs() -> dict:
        """Replace this `ds` partition of each `marts.<table>` in one transaction, write
        `lake/outputs/<table>/ds=…/part-0.parquet`, and emit an Asset event per table
        (`extra`: ds, rows, uri) for downstream DAGs."""
        from mlcore import steps

        context = get_current_context()
        ds = run_ds(context)
        result = steps.publish(pipeline, ds)
        rows, outputs = result.get("tables", {}), result.get("outputs", {})
        for table in tables:
            extra = {"ds": ds, "rows": rows.get(table), "uri": outputs.get(table)}
            if result.get("degraded"):
                extra["degraded"] = result["degraded"]
            context["outlet_events"][table_asset(table)].extra = extra
            log.info("published %s rows of %s for ds=%s", rows.get(table), table, ds)
        return result

    return publish_outputs()
