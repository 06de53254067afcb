"""The ``docker`` train backend for real: Airflow's DockerOperator runs the trainer image.

``make docker-e2e`` builds the images (``make images``) and runs this module. Without a Docker
engine or the images, every test here skips with the reason; ``make test`` does not select
them (marker ``docker``).

One synthetic Pozytywka delivery, one ``ds``, three runs of the music_skip DAG through
``nightshift run`` (Airflow's ``dag.test``): the ``local`` backend, the ``docker`` backend with
the lake folder mounted into the container, and the ``docker`` backend with the lake in a bucket
of the S3-compatible server on this host. All three must publish the same rows and register the
same models with the same metrics. Then containers that fail (an image that does not exist, a
trainer that exits non-zero, a trainer killed mid-run) must fail ``train_model`` with a one-line
reason and leave the day before's published tables as they were.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pytest

from mlcore.synth.pozytywka import write_delivery

pytestmark = pytest.mark.docker

D1 = dt.date(2024, 1, 30)
D2 = D1 + dt.timedelta(days=1)
MARTS = ("skip_scores", "cache_plan", "ab_assignments", "ab_report")
TRAINER_IMAGE = os.environ.get("NIGHTSHIFT_TRAINER_IMAGE", "nightshift-trainer:latest")
# Same TensorFlow wheel, same CPU, same seeds: the metrics agree to float rounding at most.
METRIC_TOLERANCE = 1e-6


def docker(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=check, timeout=timeout
    )


@pytest.fixture(scope="module")
def engine():
    """Skip the module, with the reason, where there is no engine or no trainer image."""
    try:
        docker("info", timeout=20)
    except (OSError, subprocess.SubprocessError):
        pytest.skip("no Docker engine answers: `make images` starts one (as root) and builds")
    if docker("image", "inspect", TRAINER_IMAGE, check=False).returncode != 0:
        pytest.skip(f"the trainer image {TRAINER_IMAGE} is not built: run `make images`")


def nightshift_run(ds: dt.date, env: dict, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mlcore.cli", "run", "music_skip", "--ds", ds.isoformat()],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_env(root: Path, backend: str, **extra: str) -> dict:
    env = dict(os.environ)
    env.update(
        NIGHTSHIFT_LAKE=str(root / "lake"),
        NIGHTSHIFT_WAREHOUSE=str(root / "warehouse" / "nightshift.duckdb"),
        NIGHTSHIFT_TRAIN_BACKEND=backend,
        NIGHTSHIFT_TRAINER_IMAGE=TRAINER_IMAGE,
        NIGHTSHIFT_DOCKER_GPUS="0",  # this machine has none; 1 would make the engine refuse
        AIRFLOW_HOME=str(root / "airflow"),
        NIGHTSHIFT_LOG_LEVEL="WARNING",
    )
    env.update(extra)
    return env


def deliver(lake: Path, ds: dt.date) -> None:
    """The same delivery for every run: same generator, same seed."""
    write_delivery(lake, ds, users=80, days=21, seed=3, defects=True)


def published(warehouse: Path, ds: dt.date) -> dict:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return {
            t: con.execute(f"select * from marts.{t} where ds = ? order by all", [ds]).fetchall()
            for t in MARTS
        }


def registry(warehouse: Path, ds: dt.date) -> dict:
    """{model_name: (version, status, metrics, baseline_metrics)} registered for ``ds``."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = con.execute(
            "select model_name, version, status, metrics, baseline_metrics "
            "from ops.model_runs where ds = ? order by model_name",
            [ds],
        ).fetchall()
    return {
        name: (version, status, json.loads(metrics), json.loads(baselines or "{}"))
        for name, version, status, metrics, baselines in rows
    }


def assert_metrics_close(got, want, path="metrics"):
    if isinstance(want, dict):
        assert set(got) == set(want), path
        for key in want:
            assert_metrics_close(got[key], want[key], f"{path}.{key}")
    elif isinstance(want, float):
        assert abs(got - want) <= METRIC_TOLERANCE, f"{path}: {got} vs {want}"
    else:
        assert got == want, path


def ran_in_container(result: subprocess.CompletedProcess) -> bool:
    """The DockerOperator's own log line, in the task log that `nightshift run` prints."""
    return f"Starting docker container from image {TRAINER_IMAGE}" in result.stdout + result.stderr


def tail(result: subprocess.CompletedProcess) -> str:
    return (result.stdout[-4000:] + "\n" + result.stderr[-4000:]).strip()


@pytest.fixture(scope="module")
def local_run(engine, tmp_path_factory):
    """The reference: the same ds with the ``local`` backend."""
    root = tmp_path_factory.mktemp("local")
    deliver(root / "lake", D1)
    result = nightshift_run(D1, run_env(root, "local"))
    assert result.returncode == 0, tail(result)
    warehouse = root / "warehouse" / "nightshift.duckdb"
    return published(warehouse, D1), registry(warehouse, D1)


@pytest.fixture(scope="module")
def mounted_run(engine, tmp_path_factory):
    """The ``docker`` backend, the lake folder mounted into the trainer container."""
    root = tmp_path_factory.mktemp("docker-mounted")
    deliver(root / "lake", D1)
    env = run_env(root, "docker")
    result = nightshift_run(D1, env)
    assert result.returncode == 0, tail(result)
    return root, env, result


def test_docker_backend_publishes_the_local_backends_rows_and_metrics(local_run, mounted_run):
    root, _, result = mounted_run
    assert ran_in_container(result), tail(result)
    warehouse = root / "warehouse" / "nightshift.duckdb"
    want_rows, want_registry = local_run
    assert want_rows["skip_scores"], "the local run published nothing"
    assert published(warehouse, D1) == want_rows

    got_registry = registry(warehouse, D1)
    assert set(got_registry) == set(want_registry) and want_registry
    for name, (version, status, metrics, baselines) in want_registry.items():
        got_version, got_status, got_metrics, got_baselines = got_registry[name]
        assert (got_version, got_status) == (version, status), name
        assert_metrics_close(got_metrics, metrics, f"{name}.metrics")
        assert_metrics_close(got_baselines, baselines, f"{name}.baseline_metrics")
    # What the container wrote into the mounted lake belongs to the lake's owner.
    lake = root / "lake"
    models = list((lake / "models" / "music_skip").rglob("*"))
    assert models and {p.stat().st_uid for p in models} == {lake.stat().st_uid}


def test_docker_backend_with_the_lake_on_s3(local_run, engine, tmp_path, s3_settings):
    """The container reaches the S3-compatible server on the host, with the credentials of the
    Airflow connection as private environment."""
    from mlcore.lake import LocalLake, open_lake

    # moto takes any credentials: these are recognisable if they leak into a log.
    s3_settings = s3_settings.with_overrides(
        aws_access_key_id="AKIADOCKERE2E", aws_secret_access_key="docker-e2e-secret-2f9c41"
    )
    delivery = tmp_path / "delivery"
    deliver(delivery, D1)
    lake = open_lake(s3_settings)
    for key in LocalLake(delivery).list("raw"):
        lake.put_file(delivery / key, key)
    connection = {
        "conn_type": "aws",
        "login": s3_settings.aws_access_key_id,
        "password": s3_settings.aws_secret_access_key,
        "extra": {"endpoint_url": s3_settings.s3_endpoint, "region_name": "us-east-1"},
    }
    env = run_env(
        tmp_path,
        "docker",
        NIGHTSHIFT_LAKE=s3_settings.lake,
        NIGHTSHIFT_S3_ENDPOINT=s3_settings.s3_endpoint,
        NIGHTSHIFT_S3_ACCESS_KEY_ID=s3_settings.aws_access_key_id,
        NIGHTSHIFT_S3_SECRET_ACCESS_KEY=s3_settings.aws_secret_access_key,
        NIGHTSHIFT_AWS_CONN_ID="nightshift_lake",
        AIRFLOW_CONN_NIGHTSHIFT_LAKE=json.dumps(connection),
    )
    result = nightshift_run(D1, env)
    assert result.returncode == 0, tail(result)
    assert ran_in_container(result), tail(result)
    # The secret went to the container, not into the task log.
    assert s3_settings.aws_secret_access_key not in result.stdout + result.stderr

    warehouse = tmp_path / "warehouse" / "nightshift.duckdb"
    want_rows, want_registry = local_run
    assert published(warehouse, D1) == want_rows
    got_registry = registry(warehouse, D1)
    for name, (_, _, metrics, _) in want_registry.items():
        assert_metrics_close(got_registry[name][2], metrics, f"{name}.metrics")
    assert lake.exists(f"predictions/music_skip/ds={D1}/holdout.parquet")


# --- containers that fail ----------------------------------------------------------------------


CRASHING_TRAINER = """#!/bin/sh
echo "Traceback (most recent call last):"
echo "RuntimeError: CUDA error: an illegal memory access was encountered" >&2
exit 3
"""


@pytest.fixture(scope="module")
def crashing_image(engine, tmp_path_factory):
    """An image whose `nightshift` fails the way a broken trainer does: a traceback, exit 3."""
    tag = "nightshift-test/crashing-trainer:latest"
    base = "nightshift-local/python:3.11"
    if docker("image", "inspect", base, check=False).returncode != 0:
        pytest.skip(f"{base} is not built: run `make images`")
    context = tmp_path_factory.mktemp("crashing-trainer")
    (context / "nightshift").write_text(CRASHING_TRAINER)
    (context / "nightshift").chmod(0o755)
    (context / "Dockerfile").write_text(f"FROM {base}\nCOPY nightshift /usr/local/bin/\n")
    subprocess.run(
        ["docker", "build", "-q", "-t", tag, str(context)],
        check=True,
        capture_output=True,
        timeout=300,
        env={**os.environ, "DOCKER_BUILDKIT": "0"},
    )
    yield tag
    docker("image", "rm", "-f", tag, check=False)


def kill_trainer_when_it_starts(stop: threading.Event) -> None:
    """`docker kill` the first container of the trainer image that starts running."""
    while not stop.is_set():
        ids = docker("ps", "-q", "--filter", f"ancestor={TRAINER_IMAGE}", check=False).stdout
        if ids.split():
            time.sleep(3)  # let it get going: killed mid-training, not before it starts
            docker("kill", ids.split()[0], check=False)
            return
        time.sleep(0.5)


def failed_reason(result: subprocess.CompletedProcess, task: str) -> str:
    """The one-line reason `nightshift run` prints for a failed task."""
    lines = [ln for ln in result.stdout.splitlines() if ln.startswith(f"FAILED {task}:")]
    assert len(lines) == 1, tail(result)
    return lines[0].removeprefix(f"FAILED {task}:").strip()


@pytest.mark.parametrize("failure", ["missing_image", "non_zero_exit", "killed"])
def test_a_failing_container_fails_the_task_and_leaves_published_tables(
    mounted_run, crashing_image, failure
):
    root, env, _ = mounted_run
    warehouse = root / "warehouse" / "nightshift.duckdb"
    lake = root / "lake"
    before = published(warehouse, D1)
    outputs = {p: p.read_bytes() for p in (lake / "outputs").rglob("*.parquet")}
    assert before["skip_scores"] and outputs
    deliver(lake, D2)

    env = dict(env)
    stop = threading.Event()
    killer = None
    if failure == "missing_image":
        env["NIGHTSHIFT_TRAINER_IMAGE"] = "nightshift-trainer:no-such-tag"
    elif failure == "non_zero_exit":
        env["NIGHTSHIFT_TRAINER_IMAGE"] = crashing_image
    else:
        killer = threading.Thread(target=kill_trainer_when_it_starts, args=(stop,), daemon=True)
        killer.start()
    try:
        result = nightshift_run(D2, env)
    finally:
        stop.set()
        if killer is not None:
            killer.join(timeout=30)

    assert result.returncode == 1, tail(result)
    reason = failed_reason(result, "train_model")
    assert "\n" not in reason
    expected = {
        "missing_image": "trainer image 'nightshift-trainer:no-such-tag' is not on this Docker "
        "engine and could not be pulled",
        "non_zero_exit": "trainer container exited with code 3: RuntimeError: CUDA error",
        "killed": "trainer container was killed by SIGKILL (exit code 137)",
    }[failure]
    assert reason.startswith(expected), reason
    # Nothing of D2 was published; D1's marts and lake outputs are exactly as they were.
    assert all(not rows for rows in published(warehouse, D2).values())
    assert published(warehouse, D1) == before
    assert {p: p.read_bytes() for p in (lake / "outputs").rglob("*.parquet")} == outputs
    # The operator removed its container after reading why it stopped.
    leftover = docker("ps", "-aq", "--filter", f"ancestor={env['NIGHTSHIFT_TRAINER_IMAGE']}")
    assert not leftover.stdout.split()
