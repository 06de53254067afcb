"""The trainer container: ``DockerOperator`` that hands the container the lake it needs.

Imported only by the docker train backend (``launcher.docker_train``), so that parsing a DAG
that trains locally never imports the Docker provider.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from airflow.providers.docker.operators.docker import DockerOperator

from nightshift_airflow.context import with_run_ds
from nightshift_airflow.hooks.lake import LakeHook
from nightshift_airflow.launcher import docker_error_reason, last_error

log = logging.getLogger(__name__)


class TrainerDockerOperator(DockerOperator):
    """DockerOperator that hands the container the lake it needs, resolved at run time.

    For an S3 lake the credentials come from the Airflow connection ``aws_conn_id`` when
    the task runs (never while parsing), and go to ``private_environment``: Docker gets
    them, the rendered template fields and the logs do not. For a local lake the container
    runs as the owner of the lake folder, so that what it writes stays writable.
    """

    def __init__(self, *, lake: str, aws_conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lake = lake
        self.aws_conn_id = aws_conn_id

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        # "{{ ds }}" in the command: an Asset-triggered run has no logical date of its own.
        super().render_template_fields(with_run_ds(context), jinja_env)

    def lake_credentials(self) -> tuple[dict[str, str], dict[str, str]]:
        """(public env, private env) for an S3 lake, from the lake hook's connection."""
        if not self.lake.startswith("s3://") or not self.aws_conn_id:
            return {}, {}
        public, private = LakeHook(aws_conn_id=self.aws_conn_id).container_env()
        if "NIGHTSHIFT_S3_ENDPOINT" in self.environment:  # the operator's own setting wins
            public.pop("NIGHTSHIFT_S3_ENDPOINT", None)
        return public, private

    def prepare_lake(self) -> None:
        public, private = self.lake_credentials()
        self.environment = {**self.environment, **public}
        self._private_environment = {**self._private_environment, **private}
        lake = Path(self.lake)
        if not self.lake.startswith("s3://") and self.user is None and lake.is_dir():
            # The container writes as the lake's owner, so that what it leaves stays the
            # owner's (root only where the worker itself runs as root).
            st = lake.stat()
            self.user = f"{st.st_uid}:{st.st_gid}"
            # That uid may have no home in the image: give Keras and matplotlib one.
            self.environment.setdefault("HOME", "/tmp")

    def execute(self, context: Any) -> Any:
        from airflow.providers.docker.exceptions import DockerContainerFailedException
        from airflow.sdk.exceptions import AirflowException
        from docker.errors import DockerException

        self.prepare_lake()
        image_missing = False
        try:
            # DockerOperator pulls an image that the engine does not have.
            image_missing = not self.cli.images(name=self.image)
            return super().execute(context)
        except DockerContainerFailedException as exc:
            raise AirflowException(self.exit_reason(exc.logs or [])) from exc
        except DockerException as exc:
            reason = docker_error_reason(self.image, exc, image_missing=image_missing)
            raise AirflowException(reason) from exc
        finally:
            self.remove_container()

    def exit_reason(self, logs: Sequence[str]) -> str:
        """Why the trainer container stopped with a non-zero exit code, in one line."""
        from docker.errors import DockerException

        try:
            state = self.cli.inspect_container(self.container["Id"])["State"]
        except DockerException:  # removed behind our back: the logs still say why
            state = {}
        code = state.get("ExitCode", "?")
        if state.get("OOMKilled"):
            return f"trainer container ran out of memory and was killed (exit code {code})"
        if isinstance(code, int) and code > 128:
            signal_name = {137: "SIGKILL", 143: "SIGTERM"}.get(code, f"signal {code - 128}")
            return f"trainer container was killed by {signal_name} (exit code {code})"
        return f"trainer container exited with code {code}: {last_error(logs)}"

    def remove_container(self) -> None:
        """Remove the container once its state has been read (its log is in Airflow)."""
        if self.container is None:
            return
        from docker.errors import DockerException

        try:
            self.cli.remove_container(self.container["Id"], force=True)
        except DockerException as exc:  # already gone: nothing to clean up
            log.info("could not remove container %s: %s", self.container["Id"][:12], exc)
