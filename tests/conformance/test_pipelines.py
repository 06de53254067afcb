"""The pipeline contract, checked for every registered pipeline and source.

SQL naming and grain headers, expectation suites per raw table, the DAG and its docs, the
published tables against their declared schemas, the synthetic generator's output passing its
own critical expectations, and the run manifest's shape (its metrics recomputable from the
evaluation rows it left in the lake).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
from pathlib import Path

import duckdb
import pytest

from mlcore import evaluation, pipelines
from mlcore.contract import KINDS, load_ref
from mlcore.lake import open_lake
from mlcore.manifest import RunManifest
from mlcore.registry import read_manifest
from mlcore.runs import run_pointer_key
from mlcore.sources import SOURCES
from mlcore.sqlrun import sql_files
from mlcore.validate import EXPECTATIONS_ROOT

REPO = Path(__file__).resolve().parents[2]
PIPELINES = sorted(pipelines.PIPELINES)
SOURCE_NAMES = sorted(SOURCES)
GRAIN = re.compile(r"grain:", re.IGNORECASE)


@pytest.mark.parametrize("name", PIPELINES)
def test_pipeline_spec_names_real_parts(name):
    spec = pipelines.get(name)
    assert spec.kind in KINDS
    assert set(spec.sources) <= set(SOURCES), spec.sources
    for ref in (spec.trainer, spec.publisher, *([spec.settings] if spec.settings else [])):
        assert callable(load_ref(ref)), ref
    assert (REPO / "dags" / f"{name}.py").is_file(), "one short DAG file per pipeline"
    assert (REPO / spec.docs).is_file(), f"{name}: docs/pipelines/{name}.md"
    docs = (REPO / spec.docs).read_text()
    for table in spec.tables:
        assert table.name in docs, f"{spec.docs} does not document {table.name}"


@pytest.mark.parametrize("folder", [*SOURCE_NAMES, *PIPELINES])
def test_sql_files_are_numbered_and_state_grain_and_key(folder):
    if folder in SOURCES and not (REPO / "sql" / folder).is_dir():
        pytest.skip(f"source {folder} has no staging SQL")
    for path in sql_files(pipelines.get(folder).sql if folder in PIPELINES else folder):
        header = path.read_text().split("create", 1)[0]
        assert GRAIN.search(header) and "key" in header.lower(), f"{path}: grain / key header"


@pytest.mark.parametrize("source", SOURCE_NAMES)
def test_every_raw_table_has_a_suite_and_the_staging_reads_only_its_source(source):
    spec = SOURCES[source]
    for table in spec.tables:
        assert (EXPECTATIONS_ROOT / f"{source}_{table.name}.json").is_file(), table.name
    if (REPO / "sql" / source).is_dir():
        for path in sql_files(source):
            raws = set(re.findall(r"raw\.([a-z0-9_]+)", path.read_text()))
            assert all(r.startswith(f"{source}_") for r in raws), f"{path}: reads {raws}"


@pytest.mark.parametrize("name", PIPELINES)
def test_pipeline_sql_reads_staging_of_its_own_sources_only(name):
    spec = pipelines.get(name)
    for path in sql_files(spec.sql):
        text = path.read_text()
        assert "raw." not in text, f"{path}: a pipeline reads staging, never raw"
        for staged in re.findall(r"staging\.([a-z0-9_]+)", text):
            owners = (*spec.sources, name)
            assert staged.startswith(tuple(f"{o}_" for o in owners)), f"{path}: {staged}"


def test_dags_follow_the_contract(tmp_path):
    """Each source's DAG ingest >> validate >> stage; each pipeline's the fixed chain after it."""
    import subprocess

    probe = f"""
import json, sys
sys.path.insert(0, {str(REPO / "plugins")!r})
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder={str(REPO / "dags")!r})
out = {{d: {{"tasks": {{t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks}},
            "doc": dag.doc_md or "",
            "outlets": {{t.task_id: [a.name for a in t.outlets] for t in dag.tasks}},
            "schedule": sorted(
                a.name for a in getattr(dag.timetable.asset_condition, "objects", ()))}}
        for d, dag in bag.dags.items()}}
print(json.dumps({{"errors": list(bag.import_errors), "dags": out}}))
"""
    env = {
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "PATH": "/usr/bin:/bin",
        "NIGHTSHIFT_TRAIN_BACKEND": "local",
    }
    result = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["errors"] == []
    for source in SOURCES.values():
        dag = report["dags"][source.dag_id]
        tasks = dag["tasks"]
        assert tasks == {
            f"ingest_{source.name}": [f"validate_{source.name}"],
            f"validate_{source.name}": [f"stage_{source.name}"],
            f"stage_{source.name}": [],
        }
        assert dag["outlets"][f"stage_{source.name}"] == [f"nightshift.raw.{source.name}"]
        for table in source.tables:
            assert table.file in dag["doc"], f"DAG {source.dag_id} does not document {table.file}"
    for name in PIPELINES:
        spec = pipelines.get(name)
        dag = report["dags"][name]
        tasks = dag["tasks"]
        assert dag["schedule"] == sorted(f"nightshift.raw.{s}" for s in spec.sources)
        assert tasks["build_features"] == ["train_model"]
        assert tasks["train_model"] == ["gate_model"]
        assert tasks["gate_model"] == ["publish_outputs"]
        assert tasks["publish_outputs"] == []
        assert dag["outlets"]["publish_outputs"] == [
            f"nightshift.marts.{t}" for t in spec.published_tables
        ]
        for table in spec.published_tables:
            assert table in dag["doc"], f"DAG {name} does not document {table}"


# ---- on the two nights each pipeline ran (conftest) --------------------------------------------
@pytest.mark.parametrize("name", PIPELINES)
def test_published_tables_match_their_declared_schema(pipeline_runs, name):
    settings, results = pipeline_runs[name].settings, pipeline_runs[name].results
    spec = pipelines.get(name)
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        for table in spec.tables:
            cols = con.execute(f"describe marts.{table.name}").fetchall()
            assert [(c[0], c[1].lower()) for c in cols] == list(table.columns.items())
            for ds in results:
                rows, distinct = con.execute(
                    f"select count(*), count(distinct ({', '.join(table.key)})) "
                    f"from marts.{table.name} where ds = ?",
                    [ds],
                ).fetchone()
                assert rows == distinct, f"marts.{table.name} ds={ds}: key {table.key} repeats"
                assert rows == results[ds]["publish"]["tables"][table.name]
    lake = open_lake(settings)
    for table in spec.published_tables:
        assert lake.exists(f"outputs/{table}/ds={max(results)}/part-0.parquet"), table


@pytest.mark.parametrize("name", PIPELINES)
def test_the_run_manifest_has_the_contract_shape_and_recomputable_metrics(pipeline_runs, name):
    settings, results = pipeline_runs[name].settings, pipeline_runs[name].results
    spec = pipelines.get(name)
    lake = open_lake(settings)
    for ds in results:
        version = json.loads(lake.read_text(run_pointer_key(name, ds)))["version"]
        manifest = read_manifest(lake, name, version)
        assert RunManifest.from_json(manifest.to_json()) == manifest
        assert manifest.kind == spec.kind and manifest.ds == ds.isoformat()
        assert manifest.counts["evaluation_rows"] > 0 and manifest.counts["scored_rows"] > 0
        assert lake.exists(manifest.scores_key) and lake.exists(manifest.evaluation.key)
        recomputed = evaluation.recompute(lake, manifest)
        for model in [*manifest.models, *manifest.baselines]:
            for metric, value in manifest.entry(model).metrics.items():
                assert recomputed[model][metric] == pytest.approx(value, abs=1e-9), (model, metric)
        assert lake.read_bytes(results[ds]["train"]["plot"]).startswith(b"\x89PNG")
        # Every slot is served, by a model whose scores tonight's run wrote.
        serving = results[ds]["gate"]["serving"]
        assert set(serving) == set(manifest.models)
        for s in serving.values():
            assert any(
                m.model == s["model_name"] and m.version == s["version"] for m in manifest.scored
            ), s


@pytest.mark.parametrize("source", SOURCE_NAMES)
def test_the_synthetic_generator_passes_its_own_critical_expectations(tmp_path, source):
    """Without injected defects a generator's delivery must pass every critical rule."""
    from mlcore import steps
    from mlcore.config import Settings

    spec = SOURCES[source]
    settings = Settings(lake=str(tmp_path / "lake"), warehouse=tmp_path / "w.duckdb")
    options = (
        {**spec.test_nights[0], "defects": False}
        if any(o.name == "defects" for o in spec.synth_options)
        else dict(spec.test_nights[0])
    )
    day = dt.date(2024, 1, 31)
    spec.load_synth()(tmp_path / "lake", day, seed=0, **options)
    steps.ingest(source, day.isoformat(), settings)
    report = steps.validate(source, day.isoformat(), settings)  # raises on a critical failure
    assert set(report["tables"]) == {t.name for t in spec.tables}
