"""The train launcher's three backends, rendered and checked without a cluster or a Docker engine.

The pod is built with the operator's own ``build_pod_request_obj`` (a dry run: no kube config
needed); the container spec is read off the DockerOperator after the lake's credentials are
resolved from an Airflow connection given as an ``AIRFLOW_CONN_*`` variable.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Airflow puts plugins/ on sys.path for DAG files; tests do it themselves.
if str(REPO / "plugins") not in sys.path:
    sys.path.insert(0, str(REPO / "plugins"))

from mlcore.config import ConfigError, Settings  # noqa: E402

DS = "2024-01-30"
S3_LAKE = "s3://nightshift-lake/prod"
ACCESS_KEY = "AKIANIGHTSHIFTTEST"
SECRET_KEY = "n1ghtsh1ft/secret+key"


@pytest.fixture(autouse=True)
def airflow_home(tmp_path, monkeypatch):
    """An Airflow home of its own, and the lake connection as an environment variable."""
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow"))
    monkeypatch.setenv("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    connection = {
        "conn_type": "aws",
        "login": ACCESS_KEY,
        "password": SECRET_KEY,
        "extra": {"endpoint_url": "http://127.0.0.1:9000"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_NIGHTSHIFT_LAKE", json.dumps(connection))


def build(settings: Settings, pipeline: str = "music_skip"):
    """The train task of ``pipeline`` for ``settings``, inside a DAG, templates rendered."""
    from airflow.sdk import DAG
    from nightshift_airflow.launcher import train_task

    with DAG("launcher_spec", schedule=None, start_date=dt.datetime(2024, 1, 1, tzinfo=dt.UTC)):
        op = train_task(pipeline, settings)
    return op


def render(op) -> None:
    op.render_template_fields({"ds": DS})


# --- kubernetes --------------------------------------------------------------------------------


def k8s_settings(**changes) -> Settings:
    base = Settings(
        lake=S3_LAKE,
        train_backend="kubernetes",
        trainer_image="registry.example.com/nightshift-trainer:1.2.3",
        k8s_namespace="ml-batch",
        k8s_lake_secret="nightshift-lake-credentials",
        s3_endpoint="https://s3.eu-central-1.amazonaws.com",
    )
    return base.with_overrides(**changes)


def test_pod_runs_the_trainer_image_with_a_gpu_and_the_lake_secret():
    op = build(k8s_settings())
    render(op)
    pod = op.build_pod_request_obj(dry_run=True)

    assert op.task_id == "train_model"
    assert pod.metadata.namespace == "ml-batch"
    assert pod.metadata.name.startswith("nightshift-train-music-skip")
    assert pod.spec.restart_policy == "Never"
    (container,) = pod.spec.containers
    assert container.image == "registry.example.com/nightshift-trainer:1.2.3"
    assert container.command + container.args == ["nightshift", "train", "music_skip", "--ds", DS]

    resources = container.resources
    assert resources.limits["nvidia.com/gpu"] == "1"
    assert {"cpu", "memory"} <= set(resources.requests)
    assert any(t.key == "nvidia.com/gpu" for t in pod.spec.tolerations)

    env = {e.name: e.value for e in container.env}
    assert env["NIGHTSHIFT_LAKE"] == S3_LAKE
    assert env["NIGHTSHIFT_S3_ENDPOINT"] == "https://s3.eu-central-1.amazonaws.com"
    # Credentials come from the Kubernetes secret, never as plain values in the spec.
    assert [e.secret_ref.name for e in container.env_from] == ["nightshift-lake-credentials"]
    assert not any("AWS" in name for name in env)
    assert container.security_context.run_as_non_root is True

    assert op.get_logs is True
    assert op.on_finish_action.value == "delete_pod"


def test_pod_gpu_count_follows_the_setting():
    pod = build(k8s_settings(docker_gpus=2)).build_pod_request_obj(dry_run=True)
    assert pod.spec.containers[0].resources.limits["nvidia.com/gpu"] == "2"


def test_pod_refuses_a_local_lake_it_could_not_see():
    with pytest.raises(ConfigError, match="needs an s3:// lake"):
        build(k8s_settings(lake="/srv/nightshift/lake"))


# --- docker ------------------------------------------------------------------------------------


def docker_settings(lake: str, **changes) -> Settings:
    base = Settings(
        lake=lake, train_backend="docker", trainer_image="nightshift-trainer:test", docker_gpus=1
    )
    return base.with_overrides(**changes)


def test_container_mounts_a_local_lake_at_the_same_path(tmp_path):
    lake = tmp_path / "lake"
    lake.mkdir()
    op = build(docker_settings(str(lake)))
    render(op)
    op.prepare_lake()

    assert op.task_id == "train_model"
    assert op.image == "nightshift-trainer:test"
    assert op.entrypoint + op.command == ["nightshift", "train", "music_skip", "--ds", DS]
    (request,) = op.device_requests
    assert request["Count"] == 1 and request["Capabilities"] == [["gpu"]]
    (mount,) = op.mounts
    assert mount["Source"] == mount["Target"] == str(lake)
    assert mount["Type"] == "bind"
    assert op.environment["NIGHTSHIFT_LAKE"] == str(lake)
    assert op.network_mode == "host"
    # The operator removes the container itself, once it has read why it stopped.
    assert op.auto_remove == "never"
    assert op._private_environment == {}
    # The container writes as the lake's owner, not as the image's user.
    assert op.user == f"{lake.stat().st_uid}:{lake.stat().st_gid}"


def test_container_gets_s3_credentials_privately_from_the_airflow_connection():
    op = build(docker_settings(S3_LAKE))
    render(op)
    op.prepare_lake()

    assert op.mounts == []
    assert op.environment["NIGHTSHIFT_LAKE"] == S3_LAKE
    # Not set in the settings: taken from the connection's extra.
    assert op.environment["NIGHTSHIFT_S3_ENDPOINT"] == "http://127.0.0.1:9000"
    assert op._private_environment == {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
    }
    # Nothing the UI renders or the log prints holds the secret.
    rendered = json.dumps({f: getattr(op, f) for f in op.template_fields}, default=str)
    assert SECRET_KEY not in rendered and ACCESS_KEY not in rendered


def test_credentials_are_read_when_the_task_runs_not_while_parsing(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_NIGHTSHIFT_LAKE")
    op = build(docker_settings(S3_LAKE))  # parsing needs no connection
    assert op._private_environment == {}


def test_no_gpu_requested_when_none_configured(tmp_path):
    op = build(docker_settings(str(tmp_path), docker_gpus=0))
    assert op.device_requests == []


# --- local -------------------------------------------------------------------------------------


def test_local_backend_is_a_taskflow_task_named_train_model():
    op = build(Settings(train_backend="local"))
    assert op.operator.task_id == "train_model"
    assert op.operator.pool == "default_pool"  # writes the lake only, not the warehouse


def test_local_trainer_streams_output_and_returns_its_json_summary():
    from nightshift_airflow.launcher import run_trainer

    code = "import json; print('epoch 1/2'); print(json.dumps({'version': 'v1'}, indent=2))"
    assert run_trainer([sys.executable, "-c", code]) == {"version": "v1"}


def test_local_trainer_fails_with_the_last_error_line():
    from airflow.sdk.exceptions import AirflowException
    from nightshift_airflow.launcher import run_trainer

    code = "print('loading features'); raise FileNotFoundError('no features for 2024-01-30')"
    with pytest.raises(AirflowException) as failure:
        run_trainer([sys.executable, "-c", code])
    assert str(failure.value) == (
        "trainer exited with code 1: FileNotFoundError: no features for 2024-01-30"
    )


class FakeDockerClient:
    """The one call `exit_reason` makes: the stopped container's state."""

    def __init__(self, state: dict) -> None:
        self.state = state

    def inspect_container(self, container_id: str) -> dict:
        return {"Id": container_id, "State": self.state}


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        (
            {"ExitCode": 3, "OOMKilled": False},
            "trainer container exited with code 3: "
            "RuntimeError: CUDA error: an illegal memory access was encountered",
        ),
        (
            {"ExitCode": 137, "OOMKilled": False},
            "trainer container was killed by SIGKILL (exit code 137)",
        ),
        (
            {"ExitCode": 137, "OOMKilled": True},
            "trainer container ran out of memory and was killed (exit code 137)",
        ),
    ],
)
def test_a_failed_container_is_reported_in_one_line(tmp_path, monkeypatch, state, reason):
    op = build(docker_settings(str(tmp_path)))
    monkeypatch.setattr(type(op), "cli", property(lambda self: FakeDockerClient(state)))
    op.container = {"Id": "0123456789ab"}
    logs = [
        "Epoch 3/20",
        "Traceback (most recent call last):",
        '  File "/opt/venv/bin/nightshift", line 8, in <module>',
        "RuntimeError: CUDA error: an illegal memory access was encountered",
        "",
    ]
    assert op.exit_reason(logs) == reason


def test_engine_errors_say_whether_the_image_was_missing():
    from docker.errors import APIError
    from nightshift_airflow.launcher import docker_error_reason

    no_registry = APIError(
        "500 Server Error",
        explanation='Get "https://registry-1.docker.io/v2/":\n dial tcp: no such host',
    )
    assert docker_error_reason("nightshift-trainer:x", no_registry, image_missing=True) == (
        "trainer image 'nightshift-trainer:x' is not on this Docker engine and could not be "
        'pulled: Get "https://registry-1.docker.io/v2/": dial tcp: no such host'
    )
    no_gpu = APIError(
        "500", explanation='could not select device driver "" with capabilities: [[gpu]]'
    )
    assert docker_error_reason("nightshift-trainer:x", no_gpu, image_missing=False) == (
        'trainer container could not run (APIError): could not select device driver "" with '
        "capabilities: [[gpu]]"
    )


# --- a run started by its sources' Assets has no logical date --------------------------------


def asset_triggered_context(ds: str) -> dict:
    from airflow.sdk.execution_time.comms import AssetEventDagRunReferenceResult
    from airflow.sdk.execution_time.context import TriggeringAssetEventsAccessor

    event = AssetEventDagRunReferenceResult(
        asset={
            "name": "nightshift.raw.pozytywka",
            "uri": "x-nightshift://raw/pozytywka",
            "extra": {},
        },
        extra={"ds": ds},
        source_task_id="stage_pozytywka",
        source_dag_id="ingest_pozytywka",
        source_run_id="scheduled__x",
        source_map_index=-1,
        source_aliases=[],
        timestamp=dt.datetime(2024, 2, 1, tzinfo=dt.UTC),
    )
    return {"ds": None, "triggering_asset_events": TriggeringAssetEventsAccessor.build([event])}


@pytest.mark.parametrize("backend", ["docker", "kubernetes"])
def test_the_trainer_gets_the_ds_of_the_asset_event_that_started_the_run(tmp_path, backend):
    if backend == "docker":
        (tmp_path / "lake").mkdir()
        op = build(docker_settings(str(tmp_path / "lake")))
    else:
        op = build(k8s_settings())
    op.render_template_fields(asset_triggered_context(DS))
    args = op.command if backend == "docker" else op.arguments
    assert args == ["train", "music_skip", "--ds", DS]
