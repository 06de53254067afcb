"""The ``train_model`` task: ``nightshift train <pipeline> --ds <ds>`` on the configured backend.

The same command runs everywhere; only where it runs changes with ``NIGHTSHIFT_TRAIN_BACKEND``:

- ``local``: a subprocess of the Airflow worker (laptops, CI, the compose stack);
- ``docker``: a container of the trainer image on the worker's Docker engine, with GPUs;
- ``kubernetes``: a pod of the trainer image, with a GPU, in ``NIGHTSHIFT_K8S_NAMESPACE``.

The trainer needs nothing but the lake: the container gets the lake's location, and for an
S3 lake its credentials, never the warehouse or Airflow. Provider imports stay inside the
builders, so parsing a DAG that trains locally never imports Docker or Kubernetes clients.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import task

from mlcore.config import ConfigError, Settings
from nightshift_airflow.context import run_ds

if TYPE_CHECKING:
    from airflow.providers.docker.operators.docker import DockerOperator

    from nightshift_airflow.operators.trainer_pod import TrainerPodOperator

log = logging.getLogger(__name__)

TASK_ID = "train_model"
TRAINER_ENTRYPOINT = ["nightshift"]
# Pod requests sized for the Keras models of the nightly pipelines on one GPU.
POD_CPU = "4"
POD_MEMORY = "16Gi"
# Seconds for a call to the Docker engine (the provider's default is 60).
DOCKER_API_TIMEOUT = 600

# The last line of a Python traceback (``pkg.SomeError: why``) or of `nightshift`'s own error
# report (``nightshift train: why``): the one-line reason the task fails with.
_ERROR_LINE = re.compile(r"^([\w.]*(Error|Exception|Failed)\b|nightshift \w+:)")


def trainer_args(pipeline: str, ds: str) -> list[str]:
    """The arguments after ``nightshift``: the same in a subprocess, a container and a pod."""
    return ["train", pipeline, "--ds", ds]


def lake_env(settings: Settings) -> dict[str, str]:
    """The trainer's non-secret settings: where the lake is and how to reach it."""
    env = {"NIGHTSHIFT_LAKE": settings.lake, "NIGHTSHIFT_SEED": str(settings.seed)}
    if settings.lake_is_s3:
        env["NIGHTSHIFT_S3_REGION"] = settings.s3_region
        if settings.s3_endpoint:
            env["NIGHTSHIFT_S3_ENDPOINT"] = settings.s3_endpoint
    return env


def train_task(pipeline: str, settings: Settings) -> Any:
    """The ``train_model`` task of ``pipeline`` for ``settings.train_backend``.

    Call it inside a DAG definition, like any operator.
    """
    builders = {"local": local_train, "docker": docker_train, "kubernetes": kubernetes_train}
    try:
        build = builders[settings.train_backend]
    except KeyError:
        known = ", ".join(builders)
        raise ConfigError(
            f"unknown train backend {settings.train_backend!r}; known: {known}"
        ) from None
    return build(pipeline, settings)


# --- local: a subprocess of the worker ---------------------------------------------------------


def run_trainer(cmd: Sequence[str], env: Mapping[str, str] | None = None) -> dict:
    """Run the trainer command, streaming its output into the task log.

    Returns the JSON summary the command prints last (or a small dict when there is none);
    raises with the last error line of the output when the command fails.
    """
    from airflow.sdk.exceptions import AirflowException

    run_env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
    tail: collections.deque[str] = collections.deque(maxlen=500)
    log.info("running %s", " ".join(cmd))
    proc = subprocess.Popen(
        list(cmd),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        env=run_env,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            tail.append(line)
            log.info("%s", line)
        returncode = proc.wait()
    finally:
        # The task was killed or timed out: do not leave the trainer running on the worker.
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    if returncode != 0:
        raise AirflowException(f"trainer exited with code {returncode}: {last_error(tail)}")
    return last_json(tail) or {"command": " ".join(cmd), "returncode": 0}


def last_error(lines: Sequence[str]) -> str:
    """The line that says why a command failed: its last error line, else its last line."""
    stripped = [ln.strip() for ln in lines if ln.strip()]
    for line in reversed(stripped):
        if _ERROR_LINE.match(line):
            return line
    return stripped[-1] if stripped else "no output"


def last_json(lines: Sequence[str]) -> dict | None:
    """The JSON object the command printed last (``nightshift train`` prints its summary)."""
    lines = list(lines)
    for start in range(len(lines) - 1, -1, -1):
        if lines[start].startswith("{"):
            try:
                value = json.loads("\n".join(lines[start:]))
            except ValueError:
                return None
            return value if isinstance(value, dict) else None
    return None


def local_train(pipeline: str, settings: Settings) -> Any:
    @task(task_id=TASK_ID)
    def train_model() -> dict:
        """Train, evaluate and score from the lake: `nightshift train <pipeline> --ds …` in a
        subprocess of this worker (backend `local`). Its output streams into this log."""
        cmd = [sys.executable, "-m", "mlcore.cli", *trainer_args(pipeline, run_ds())]
        return run_trainer(cmd)

    return train_model()


# --- docker: a container of the trainer image --------------------------------------------------


def docker_train(pipeline: str, settings: Settings) -> DockerOperator:
    from docker.types import DeviceRequest, Mount

    from nightshift_airflow.operators.trainer_docker import TrainerDockerOperator

    env = lake_env(settings)
    mounts = []
    if not settings.lake_is_s3:
        # Mounted at the same path, so lake URIs written in the container are valid outside.
        lake = str(Path(settings.lake).absolute())
        env["NIGHTSHIFT_LAKE"] = lake
        mounts.append(Mount(target=lake, source=lake, type="bind"))
    devices = []
    if settings.docker_gpus:
        devices.append(DeviceRequest(count=settings.docker_gpus, capabilities=[["gpu"]]))
    return TrainerDockerOperator(
        task_id=TASK_ID,
        doc_md="Train, evaluate and score from the lake: `nightshift train` in a container of "
        f"`{settings.trainer_image}` with {settings.docker_gpus} GPU(s) (backend `docker`).",
        image=settings.trainer_image,
        entrypoint=TRAINER_ENTRYPOINT,
        command=trainer_args(pipeline, "{{ ds }}"),
        environment=env,
        lake=settings.lake if settings.lake_is_s3 else env["NIGHTSHIFT_LAKE"],
        aws_conn_id=settings.aws_conn_id,
        device_requests=devices,
        mounts=mounts,
        mount_tmp_dir=False,
        network_mode="host",
        # Engine API calls: creating a container copies the image's layers on a vfs engine,
        # more than the provider's 60 s default on a loaded 2-core machine (measured).
        timeout=DOCKER_API_TIMEOUT,
        # The operator removes the container itself, after reading why it stopped.
        auto_remove="never",
    )


def docker_error_reason(image: str, exc: Exception, *, image_missing: bool) -> str:
    """One line for an error of the Docker engine around the trainer container."""
    explanation = getattr(exc, "explanation", None) or str(exc)
    explanation = " ".join(str(explanation).split())
    if image_missing:
        return (
            f"trainer image {image!r} is not on this Docker engine and could not be pulled: "
            f"{explanation}"
        )
    return f"trainer container could not run ({type(exc).__name__}): {explanation}"


# --- kubernetes: a pod of the trainer image ----------------------------------------------------


def kubernetes_train(pipeline: str, settings: Settings) -> TrainerPodOperator:
    from airflow.providers.cncf.kubernetes.secret import Secret
    from kubernetes.client import models as k8s

    if not settings.lake_is_s3:
        # A pod cannot see the worker's folder: fail at parse time, where on-call sees it.
        raise ConfigError(
            f"NIGHTSHIFT_TRAIN_BACKEND=kubernetes needs an s3:// lake, got {settings.lake!r}"
        )
    limits = {"memory": POD_MEMORY}
    if settings.docker_gpus:
        limits["nvidia.com/gpu"] = str(settings.docker_gpus)
    from nightshift_airflow.operators.trainer_pod import TrainerPodOperator

    return TrainerPodOperator(
        task_id=TASK_ID,
        doc_md="Train, evaluate and score from the lake: `nightshift train` in a pod of "
        f"`{settings.trainer_image}` in namespace `{settings.k8s_namespace}` (backend "
        "`kubernetes`).",
        name=f"nightshift-train-{pipeline}".replace("_", "-"),
        namespace=settings.k8s_namespace,
        image=settings.trainer_image,
        cmds=TRAINER_ENTRYPOINT,
        arguments=trainer_args(pipeline, "{{ ds }}"),
        env_vars=lake_env(settings),
        # Every key of the secret becomes an env var (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY).
        secrets=[Secret(deploy_type="env", deploy_target=None, secret=settings.k8s_lake_secret)],
        container_resources=k8s.V1ResourceRequirements(
            requests={"cpu": POD_CPU, "memory": POD_MEMORY}, limits=limits
        ),
        # GPU node pools are usually tainted so that only GPU work lands there.
        tolerations=[
            k8s.V1Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")
        ],
        container_security_context=k8s.V1SecurityContext(
            run_as_non_root=True, allow_privilege_escalation=False
        ),
        labels={"app.kubernetes.io/name": "nightshift-trainer", "nightshift/pipeline": pipeline},
        # On error, Kubernetes keeps the log's last lines as the termination message.
        termination_message_policy="FallbackToLogsOnError",
        # A GPU node may have to be started by the autoscaler first.
        startup_timeout_seconds=900,
        get_logs=True,
        log_events_on_failure=True,
        on_finish_action="delete_pod",
    )
