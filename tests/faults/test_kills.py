"""SIGKILL inside every step of a night, then a rerun (the fault suite's process faults).

For every registered pipeline, from the night before (D1 published, D2 delivered: the state the
conformance runs left after their first night), each step of D2 runs in a child process that is
killed just before a chosen write (``kill_at.py``: between two statements of a transaction,
before a commit, between a lake file's write and its rename, between two tables of a publish;
kills are spread over the step's writes, counted in the undisturbed run), then the step runs to
completion and the next one is killed. After each kill:

- the child died at that write, not before it was reached nor after the step finished;
- D1 is untouched: its marts partition, and every lake file of D1 (raw, features, model,
  predictions, outputs) byte-identical;
- the warehouse opens read-write at once (no stale lock, no corrupt WAL);
- the day is all or nothing for readers: D2's marts partition is in every table or in none,
  and a lake partition of D2 with its ``_SUCCESS`` marker holds exactly the marts' rows;
- readers list no temporary file.

At the end the night that was killed a dozen times publishes the rows of the undisturbed
night (floats to 1e-6, as the golden test: float32 scores may move one ulp under load), every
partition has its ``_SUCCESS``, and no temporary file is left anywhere in the lake.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from mlcore import pipelines, steps
from mlcore.lake import LocalLake, models_prefix, outputs_prefix
from mlcore.publish import success_key
from mlcore.runs import run_pointer_key
from mlcore.warehouse import connect

KILL_AT = Path(__file__).with_name("kill_at.py")
D1, D2 = "2024-01-30", "2024-01-31"
# Where in each step's writes the kills land (fractions of its undisturbed count). Training
# writes nothing until its models are fitted, so each of its kills costs a whole fit: one kill
# by count (models saved, manifest and run pointer not yet) and one while it fits.
FRACTIONS = {"train": (0.8,), "stage": (0.5,), "gate": (0.5,)}
DEFAULT_FRACTIONS = (0.3, 0.8)
KILL_WHILE_FITTING_S = 15.0


def _cli(step: str, target: str) -> list[str]:
    if step == "train":
        return ["train", target, "--ds", D2]
    return ["step", step.replace("_", "-"), target, "--ds", D2]


def _env(workspace: Path) -> dict:
    return {
        **os.environ,
        "NIGHTSHIFT_LAKE": str(workspace / "lake"),
        "NIGHTSHIFT_WAREHOUSE": str(workspace / "warehouse.duckdb"),
        "NIGHTSHIFT_TRAIN_BACKEND": "local",
        "NIGHTSHIFT_LOG_LEVEL": "WARNING",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }


def _kill(workspace: Path, step: str, target: str, *, at: int | None = None, after_s=None):
    """Run the step in a child and SIGKILL it before its ``at``-th write or after ``after_s``."""
    argv = [sys.executable, str(KILL_AT)]
    argv += ["--kill-at", str(at)] if at else []
    child = subprocess.Popen(
        [*argv, "--", *_cli(step, target)],
        env=_env(workspace),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _, err = child.communicate(timeout=after_s)
    except subprocess.TimeoutExpired:
        child.send_signal(signal.SIGKILL)
        _, err = child.communicate()
    assert child.returncode == -signal.SIGKILL, (
        f"{step} {target} was not killed (at write {at}, after {after_s} s): it exited "
        f"{child.returncode}\n{err[-2000:]}"
    )


def _lake_files(lake_root: Path, keep) -> dict[str, str]:
    return {
        p.relative_to(lake_root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(lake_root.rglob("*"))
        if p.is_file() and keep(p.relative_to(lake_root).as_posix())
    }


def _marts(warehouse: Path, spec, ds: str) -> dict[str, list]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return {
            t: con.execute(f"select * from marts.{t} where ds = ? order by all", [ds]).fetchall()
            for t in spec.published_tables
        }


def _d1_state(workspace: Path, spec) -> tuple:
    """D1's marts partition and the hashes of its lake files (raw to outputs, and its model)."""
    lake = LocalLake(workspace / "lake")
    model = models_prefix(
        spec.name, json.loads(lake.read_text(run_pointer_key(spec.name, D1)))["version"]
    )
    files = _lake_files(lake.root, lambda key: f"ds={D1}" in key or key.startswith(model + "/"))
    return _marts(workspace / "warehouse.duckdb", spec, D1), files


def _assert_readers_see_whole_days(workspace: Path, spec) -> None:
    """Every table has D2 in the marts or none has; a lake partition with _SUCCESS is whole."""
    marts = _marts(workspace / "warehouse.duckdb", spec, D2)
    published = {t for t, rows in marts.items() if rows}
    assert published in (set(), set(spec.published_tables)), (
        f"a partial day in the marts: {published}"
    )
    lake = LocalLake(workspace / "lake")
    for table in spec.published_tables:
        if not lake.exists(success_key(table, D2)):
            continue
        marker = json.loads(lake.read_text(success_key(table, D2)))
        files = [str(lake.path(f"{outputs_prefix(table, D2)}/{f}")) for f in marker["files"]]
        with duckdb.connect() as con:
            rows = con.execute("select count(*) from read_parquet(?)", [files]).fetchone()[0]
        assert rows == len(marts[table]) == marker["rows"], table
    assert not any(".tmp-" in key for key in lake.list("")), "a reader lists a temporary file"


def _assert_same_rows(now: dict, before: dict) -> None:
    assert now.keys() == before.keys()
    for table in before:
        assert len(now[table]) == len(before[table]) > 0, table
        for new, old in zip(now[table], before[table], strict=True):
            for a, b in zip(new, old, strict=True):
                if isinstance(b, float):
                    assert a == pytest.approx(b, abs=1e-6), (table, new, old)
                else:
                    assert a == b, (table, new, old)


def _chain(spec) -> list[tuple[str, str]]:
    return [
        (step, source) for source in spec.sources for step in ("ingest", "validate", "stage")
    ] + [(step, spec.name) for step in ("build_features", "train", "gate", "publish")]


@pytest.mark.parametrize("name", sorted(pipelines.PIPELINES))
def test_a_night_killed_at_every_step_publishes_what_an_undisturbed_night_does(
    pipeline_runs, tmp_path, name
):
    spec, run = pipelines.get(name), pipeline_runs[name]
    workspace = tmp_path / "night"
    shutil.copytree(run.night_before, workspace)
    settings = dataclasses.replace(
        run.settings, lake=str(workspace / "lake"), warehouse=workspace / "warehouse.duckdb"
    )
    d1 = _d1_state(workspace, spec)

    for step, target in _chain(spec):
        writes = run.writes[(step, target)]
        kills = sorted({max(1, round(f * writes)) for f in FRACTIONS.get(step, DEFAULT_FRACTIONS)})
        plan = [{"at": at} for at in kills if writes]
        if step == "train":
            plan.insert(0, {"after_s": KILL_WHILE_FITTING_S})
        for kill in plan:
            _kill(workspace, step, target, **kill)
            assert _d1_state(workspace, spec) == d1, f"killed in {step} {kill}: D1 changed"
            connect(workspace / "warehouse.duckdb", lock_wait=0).close()  # read-write at once
            _assert_readers_see_whole_days(workspace, spec)
        getattr(steps, step)(target, D2, settings)  # the rerun, undisturbed

    reference = run.settings.warehouse
    _assert_same_rows(_marts(workspace / "warehouse.duckdb", spec, D2), _marts(reference, spec, D2))
    _assert_readers_see_whole_days(workspace, spec)
    lake = LocalLake(workspace / "lake")
    assert all(lake.exists(success_key(t, D2)) for t in spec.published_tables)
    assert not list((workspace / "lake").rglob(".tmp-*")), "a killed writer's file was left"
    assert _d1_state(workspace, spec) == d1
