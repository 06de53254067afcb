"""Every DAG file imports cleanly and cheaply, and follows the platform's rules.

The rules: a schedule, docs, tags, retries and the failure callback on every DAG; the tasks
that write the DuckDB warehouse in the one-slot pool; the task ids that on-call knows. Then
music_skip runs for real under ``dag.test`` (through ``nightshift_airflow.runner``) with the
``mlcore`` steps stubbed out: the wiring, the pool names, the callback's one-line reason and
the Asset events are Airflow's own behaviour, not a mock's.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
PLUGINS = REPO / "plugins"
# Airflow puts plugins/ on sys.path for DAG files; tests do it themselves.
if str(PLUGINS) not in sys.path:
    sys.path.insert(0, str(PLUGINS))

from nightshift_airflow import WAREHOUSE_POOL  # noqa: E402
from nightshift_airflow.airflow_env import POOLS  # noqa: E402

# Tasks that write the warehouse (by id, or id prefix for the per-source tasks).
WAREHOUSE_WRITERS = (
    "ingest_",
    "validate_",
    "stage_",
    "build_features",
    "gate_model",
    "publish_outputs",
)
SOURCE_CHAIN = ["ingest_pozytywka", "validate_pozytywka", "stage_pozytywka"]
MUSIC_SKIP_CHAIN = [
    "build_features",
    "train_model",
    "gate_model",
    "publish_outputs",
]
HEAVY_MODULES = ("tensorflow", "keras", "pandas", "duckdb", "sklearn", "great_expectations")


def isolated_env(home: Path, **extra: str) -> dict[str, str]:
    """This process's environment with an Airflow home and a lake of the test's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "NIGHTSHIFT_"))}
    env.update(
        AIRFLOW_HOME=str(home / "airflow"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        NIGHTSHIFT_LAKE=str(home / "lake"),
        NIGHTSHIFT_WAREHOUSE=str(home / "warehouse" / "nightshift.duckdb"),
        NIGHTSHIFT_TRAIN_BACKEND="local",
        PYTHONPATH=str(PLUGINS),
        **extra,
    )
    return env


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory, background_runs):
    home = tmp_path_factory.mktemp("dagbag")
    with pytest.MonkeyPatch.context() as mp:
        for name, value in isolated_env(home).items():
            if name != "PYTHONPATH":
                mp.setenv(name, value)
        from airflow.dag_processing.dagbag import DagBag

        # known_pools makes the bag warn about tasks in a pool that the setup never creates.
        yield DagBag(dag_folder=str(DAGS), known_pools={"default_pool", *POOLS})


def test_every_dag_file_imports_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert {"music_skip", "ingest_pozytywka"} <= set(dagbag.dags)


def test_every_dag_has_a_schedule_docs_tags_retries_and_the_failure_callback(dagbag):
    from nightshift_airflow.callbacks import task_failed, task_retrying

    for dag_id, dag in dagbag.dags.items():
        dag.check_cycle()
        assert dag.schedule not in (None, "@once"), f"{dag_id}: a nightly DAG needs a schedule"
        assert dag.doc_md and len(dag.doc_md.strip()) > 200, f"{dag_id}: document the DAG"
        assert dag.tags and "nightshift" in dag.tags, dag_id
        assert dag.catchup is False and dag.max_active_runs == 1, dag_id
        assert dag.default_args.get("retries", 0) >= 1, dag_id
        for task in dag.tasks:
            assert task_failed in task.on_failure_callback, f"{dag_id}.{task.task_id}"
            assert task_retrying in task.on_retry_callback, f"{dag_id}.{task.task_id}"
            assert task.doc_md, f"{dag_id}.{task.task_id}: give the task a docstring"


def test_tasks_that_write_the_warehouse_share_the_one_slot_pool(dagbag):
    assert POOLS[WAREHOUSE_POOL][0] == 1
    assert not dagbag.dag_warnings, [w.message for w in dagbag.dag_warnings]
    for dag_id, dag in dagbag.dags.items():
        writers = [t for t in dag.tasks if t.task_id.startswith(WAREHOUSE_WRITERS)]
        assert writers, dag_id
        for task in writers:
            assert task.pool == WAREHOUSE_POOL, f"{dag_id}.{task.task_id} writes the warehouse"
        # The trainer reads and writes the lake only: it must not hold the warehouse slot.
        if "train_model" in dag.task_ids:
            assert dag.get_task("train_model").pool != WAREHOUSE_POOL


def test_each_source_is_ingested_once_by_its_own_dag_whose_asset_schedules_the_pipelines(dagbag):
    from nightshift_airflow.assets import source_asset

    from mlcore.pipelines import PIPELINES
    from mlcore.sources import SOURCES

    ingest = dagbag.dags["ingest_pozytywka"]
    assert sorted(ingest.task_ids) == sorted(SOURCE_CHAIN)
    for upstream, downstream in zip(SOURCE_CHAIN, SOURCE_CHAIN[1:], strict=False):
        assert ingest.get_task(upstream).downstream_task_ids == {downstream}
    assert ingest.get_task("stage_pozytywka").outlets == [source_asset("pozytywka")]
    assert "music_skip" in ingest.doc_md, "the source DAG names the pipelines it starts"
    for source in SOURCES.values():
        assert source.dag_id in dagbag.dags
    for name, spec in PIPELINES.items():
        dag = dagbag.dags[name]
        # Data-aware: no clock of its own, one run when every source it reads has been staged.
        assert sorted(a.name for a in dag.timetable.asset_condition.objects) == sorted(
            source_asset(s).name for s in spec.sources
        )
        assert not any(t.task_id.startswith(("ingest_", "validate_")) for t in dag.tasks), name


def test_music_skip_reads_like_the_pipeline(dagbag):
    from nightshift_airflow.assets import table_asset

    from mlcore.pipelines import get

    dag = dagbag.dags["music_skip"]
    assert sorted(dag.task_ids) == sorted(MUSIC_SKIP_CHAIN)
    for upstream, downstream in zip(MUSIC_SKIP_CHAIN, MUSIC_SKIP_CHAIN[1:], strict=False):
        assert dag.get_task(upstream).downstream_task_ids == {downstream}
    expected = [table_asset(t) for t in get("music_skip").published_tables]
    assert dag.get_task("publish_outputs").outlets == expected


def test_parsing_a_dag_file_imports_no_heavy_library(tmp_path):
    probe = textwrap.dedent(
        f"""
        import json, runpy, sys, time
        started = time.perf_counter()
        runpy.run_path({str(DAGS / "music_skip.py")!r})
        seconds = time.perf_counter() - started
        heavy = sorted({{m.split(".")[0] for m in sys.modules}} & set({HEAVY_MODULES!r}))
        print(json.dumps({{"heavy": heavy, "seconds": seconds}}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        env=isolated_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["heavy"] == [], f"parsing music_skip imported {report['heavy']}"


# The steps stubbed out, then the real runner: dag.test on a fresh SQLite metadata DB.
DRIVER = """
import sys, types

import mlcore
import mlcore.pipelines

steps = types.ModuleType("mlcore.steps")
validate = types.ModuleType("mlcore.validate")


class ValidationFailed(Exception):
    pass


def check(source, ds):
    if ds == "2024-01-31":
        raise ValidationFailed("raw.pozytywka_sessions: 61% of rows broke a rule\\ndetail")
    return {"ok": True}


TABLES = mlcore.pipelines.get("music_skip").published_tables
steps.ingest = lambda source, ds: {"tables": {"sessions": {"rows": 3, "rejected": 0}}}
steps.validate = check
steps.stage = lambda source, ds: {"tables": {"staging.pozytywka_events": 3}}
steps.build_features = lambda pipeline, ds: {"exported": {"plays.parquet": 10}}
steps.gate = lambda pipeline, ds: {"version": "v1", "degraded": None}
steps.publish = lambda pipeline, ds: {
    "tables": {t: 7 for t in TABLES},
    "outputs": {t: f"/lake/outputs/{t}/ds={ds}" for t in TABLES},
}
validate.ValidationFailed = ValidationFailed
sys.modules.update({"mlcore.steps": steps, "mlcore.validate": validate})
mlcore.steps = steps

from nightshift_airflow import airflow_env

airflow_env.apply()  # before Airflow is first imported: it reads its configuration once

from nightshift_airflow import launcher, runner

# The trainer subprocess would need features on the lake: it is tested in test_launcher_specs.
launcher.run_trainer = lambda cmd, env=None: {"command": " ".join(cmd[2:])}
codes = [
    runner.main(["ingest_pozytywka", "music_skip", "--ds", "2024-01-30"]),
    # Retries kept: a failed validation must fail at once, not wait out a retry delay.
    runner.main(["ingest_pozytywka", "music_skip", "--ds", "2024-01-31", "--retries"]),
]
print("EXIT CODES", codes)
"""


@pytest.fixture(scope="module")
def background_runs(tmp_path_factory):
    """Start the stubbed runs at once: they take the longest, the other tests run meanwhile."""
    home = tmp_path_factory.mktemp("runner")
    with open(home / "stdout.txt", "w") as out, open(home / "stderr.txt", "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", DRIVER], env=isolated_env(home), stdout=out, stderr=err, cwd=home
        )
    yield home, proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def stubbed_runs(background_runs):
    home, proc = background_runs
    proc.wait(timeout=300)
    return home, subprocess.CompletedProcess(
        proc.args,
        proc.returncode,
        (home / "stdout.txt").read_text(),
        (home / "stderr.txt").read_text(),
    )


def test_runner_runs_music_skip_and_reports_a_failure_in_one_line(stubbed_runs):
    home, result = stubbed_runs
    out = result.stdout
    assert "EXIT CODES [0, 1]" in out, (out + result.stderr)[-4000:]
    ok, failed = out.split("ingest_pozytywka ds=2024-01-31")
    assert "ingest_pozytywka ds=2024-01-30: success" in ok
    assert "music_skip ds=2024-01-30: success" in ok
    for task_id in SOURCE_CHAIN + MUSIC_SKIP_CHAIN:
        assert f"{task_id:<24} success" in ok
    assert "validate_pozytywka       failed" in failed
    assert "stage_pozytywka          upstream_failed" in failed
    # The pipeline is not started on a source that failed.
    assert "not run: music_skip" in failed and "music_skip ds=2024-01-31" not in failed
    # The validation failure is not retried and its reason is the exception's first line.
    assert "FAILED validate_pozytywka: raw.pozytywka_sessions: 61% of rows broke a rule\n" in out
    assert "nightshift task failed: dag=ingest_pozytywka task=validate_pozytywka ds=2024-01-31" in (
        result.stdout + result.stderr
    )
    with sqlite3.connect(home / "airflow" / "airflow.db") as db:
        tries = db.execute(
            "select ti.try_number, ti.max_tries from task_instance ti join dag_run r "
            "on r.run_id = ti.run_id and r.dag_id = ti.dag_id "
            "where ti.task_id = 'validate_pozytywka' and date(r.logical_date) = '2024-01-31'"
        ).fetchall()
    assert tries == [(1, 2)], "tried once although two retries were allowed"


def test_runner_creates_the_pool_and_publish_emits_one_asset_event_per_table(stubbed_runs):
    from mlcore.pipelines import get

    home, result = stubbed_runs
    with sqlite3.connect(home / "airflow" / "airflow.db") as db:
        pools = dict(db.execute("select pool, slots from slot_pool"))
        events = db.execute(
            "select a.name, e.extra from asset_event e join asset a on a.id = e.asset_id"
        ).fetchall()
    assert pools[WAREHOUSE_POOL] == 1
    tables = get("music_skip").published_tables
    assert sorted(name for name, _ in events) == sorted(
        ["nightshift.raw.pozytywka", *(f"nightshift.marts.{t}" for t in tables)]
    )
    for name, extra in events:
        if name == "nightshift.raw.pozytywka":
            tables_staged = {"staging.pozytywka_events": 3}
            assert json.loads(extra) == {"ds": "2024-01-30", "tables": tables_staged}
            continue
        table = name.rsplit(".", 1)[1]
        assert json.loads(extra) == {
            "ds": "2024-01-30",
            "rows": 7,
            "uri": f"/lake/outputs/{table}/ds=2024-01-30",
        }
