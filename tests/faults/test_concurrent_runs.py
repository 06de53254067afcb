"""Two runs at once against one warehouse (the fault suite's concurrency cases).

DuckDB lets one process write a file at a time; each step waits for the other's (bounded by
NIGHTSHIFT_WAREHOUSE_LOCK_WAIT) instead of failing. From the night before of the conformance
runs, for every registered pipeline:

- the same ds twice at once: both runs succeed and publish the rows of one undisturbed run;
- two ds at once: the staging tables and a source's snapshot tables hold one day at a time,
  so a run whose day another run replaced must stop with a one-line reason, never build one
  day's features on the other day's catalogue; each day's features, once its run is
  repeated alone, are those of a run that had the warehouse to itself.

Training reads and writes the lake only; to keep this cheap the trained model of the
undisturbed D2 run is copied in, and the runs here do everything around it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import duckdb
import pytest

from mlcore import pipelines, steps
from mlcore.lake import LocalLake, features_prefix, models_prefix, predictions_prefix
from mlcore.runs import run_pointer_key
from mlcore.sources import get_source

D2 = dt.date(2024, 1, 31)
D3 = D2 + dt.timedelta(days=1)


def _data_chain(spec, ds: dt.date) -> list[list[str]]:
    chain = [
        ["step", step, source, "--ds", ds.isoformat()]
        for source in spec.sources
        for step in ("ingest", "validate", "stage")
    ]
    return [*chain, ["step", "build-features", spec.name, "--ds", ds.isoformat()]]


def _run_chain(workspace: Path, commands: list[list[str]], out: list) -> None:
    """Run the commands in order in child processes; stop at the first failure."""
    env = {
        **os.environ,
        "NIGHTSHIFT_LAKE": str(workspace / "lake"),
        "NIGHTSHIFT_WAREHOUSE": str(workspace / "warehouse.duckdb"),
        "NIGHTSHIFT_LOG_LEVEL": "ERROR",
        "NIGHTSHIFT_WAREHOUSE_LOCK_WAIT": "300",
    }
    for command in commands:
        done = subprocess.run(
            [sys.executable, "-m", "mlcore.cli", *command],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        out.append((command, done.returncode, done.stderr.strip()))
        if done.returncode:
            return


def _at_once(workspace: Path, *chains: list[list[str]]) -> list[list]:
    results = [[] for _ in chains]
    threads = [
        threading.Thread(target=_run_chain, args=(workspace, chain, out))
        for chain, out in zip(chains, results, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def _features(lake_root: Path, pipeline: str, ds: dt.date) -> dict[str, str]:
    folder = lake_root / features_prefix(pipeline, ds)
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))  # a folder export's shards included
        if p.is_file()
    }


def _workspace(run, tmp_path: Path, name: str) -> Path:
    workspace = tmp_path / name
    shutil.copytree(run.night_before, workspace)
    return workspace


@pytest.mark.parametrize("name", sorted(pipelines.PIPELINES))
def test_the_same_night_twice_at_once_publishes_it_once(pipeline_runs, tmp_path, name):
    spec, run = pipelines.get(name), pipeline_runs[name]
    workspace = _workspace(run, tmp_path, "same-night")
    reference, lake = LocalLake(run.settings.lake), LocalLake(workspace / "lake")
    version = reference.read_text(run_pointer_key(name, D2))
    for prefix in (models_prefix(name), predictions_prefix(name, D2)):
        for key in reference.list(prefix):
            lake.put_file(reference.path(key), key)
    assert lake.read_text(run_pointer_key(name, D2)) == version

    day = D2.isoformat()
    chain = _data_chain(spec, D2) + [
        ["step", "gate", name, "--ds", day],
        ["step", "publish", name, "--ds", day],
    ]
    for outcome in _at_once(workspace, chain, chain):
        assert [rc for _, rc, _ in outcome] == [0] * len(chain), outcome[-1]

    with (
        duckdb.connect(str(workspace / "warehouse.duckdb"), read_only=True) as con,
        duckdb.connect(str(run.settings.warehouse), read_only=True) as ref,
    ):
        for table in spec.published_tables:
            query = f"select * exclude (ds) from marts.{table} where ds = ? order by all"
            assert con.execute(query, [D2]).fetchall() == ref.execute(query, [D2]).fetchall()
    assert _features(lake.root, name, D2) == _features(reference.root, name, D2)


def _in_process(spec, ds: dt.date, workspace: Path, settings) -> None:
    settings = dataclasses.replace(
        settings, lake=str(workspace / "lake"), warehouse=workspace / "warehouse.duckdb"
    )
    for command in _data_chain(spec, ds):
        getattr(steps, command[1].replace("-", "_"))(command[2], command[4], settings)


@pytest.mark.parametrize("name", sorted(pipelines.PIPELINES))
def test_two_nights_at_once_stop_cleanly_and_leave_nothing_a_rerun_would_not_undo(
    pipeline_runs, tmp_path, name
):
    spec, run = pipelines.get(name), pipeline_runs[name]
    workspace = _workspace(run, tmp_path, "two-nights")
    for source in spec.sources:  # a third night, delivered like the second
        src = get_source(source)
        src.load_synth()(workspace / "lake", D3, seed=3, **src.test_nights[1])
    alone = _workspace(run, tmp_path, "alone")
    shutil.copytree(workspace / "lake", alone / "lake", dirs_exist_ok=True)
    for ds in (D2, D3):  # the two nights one after the other, the warehouse to themselves
        _in_process(spec, ds, alone, run.settings)

    chains = {D2: _data_chain(spec, D2), D3: _data_chain(spec, D3)}
    outcomes = dict(zip(chains, _at_once(workspace, *chains.values()), strict=True))
    for ds, outcome in outcomes.items():
        command, rc, err = outcome[-1]
        if rc:  # stopped because the other night replaced what this one had loaded or staged
            assert "\n" not in err and str(ds) in err, err
            assert f"ingest {ds} again" in err or f"stage it for {ds} first" in err, err
            assert command[1] in ("validate", "stage", "build-features"), command
    # Whatever the two left, the nights repeated in order build what they build alone.
    for ds in (D2, D3):
        _in_process(spec, ds, workspace, run.settings)
        assert _features(workspace / "lake", name, ds) == _features(alone / "lake", name, ds)
    assert _features(alone / "lake", name, D2) == _features(Path(run.settings.lake), name, D2)


@pytest.mark.parametrize("name", sorted(pipelines.PIPELINES))
def test_a_night_whose_catalogue_another_night_replaced_is_not_staged(
    pipeline_runs, tmp_path, name
):
    """The interleaving the test above may or may not meet, made to happen."""
    spec, run = pipelines.get(name), pipeline_runs[name]
    workspace = _workspace(run, tmp_path, "replaced")
    settings = dataclasses.replace(
        run.settings, lake=str(workspace / "lake"), warehouse=workspace / "warehouse.duckdb"
    )
    for source in spec.sources:
        src = get_source(source)
        if not any(t.kind == "snapshot" for t in src.tables):
            continue
        src.load_synth()(workspace / "lake", D3, seed=3, **src.test_nights[1])
        steps.ingest(source, D2.isoformat(), settings)
        steps.ingest(source, D3.isoformat(), settings)  # another run's ingest, in between
        for step in (steps.validate, steps.stage):
            with pytest.raises(steps.StaleSource, match=f"{source} for {D2}: raw.* holds the"):
                step(source, D2.isoformat(), settings)
