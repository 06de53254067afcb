"""Settings from ``NIGHTSHIFT_*`` environment variables, with defaults that run on a laptop.

``load_settings()`` is a plain function with no side effects: nothing is read, created or
logged at import time, so the trainer image and the tests can build settings from any mapping.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

PREFIX = "NIGHTSHIFT_"
TRAIN_BACKENDS = ("local", "docker", "kubernetes")


class ConfigError(ValueError):
    """A setting has a value the platform cannot use."""


@dataclass(frozen=True)
class Settings:
    """Everything a task needs to know about where data lives and how training runs."""

    lake: str = "./lake"
    warehouse: Path = Path("./warehouse/nightshift.duckdb")
    train_backend: str = "local"
    trainer_image: str = "nightshift-trainer:latest"
    k8s_namespace: str = "nightshift"
    k8s_lake_secret: str = "nightshift-lake"
    docker_gpus: int = 1
    s3_endpoint: str | None = None
    s3_region: str = "us-east-1"
    # Credentials never appear in repr(), logs or error messages.
    aws_access_key_id: str | None = field(default=None, repr=False)
    aws_secret_access_key: str | None = field(default=None, repr=False)
    aws_conn_id: str = "nightshift_lake"
    # Share of a table's rows that may break row-level rules before validation fails hard.
    max_bad_row_share: float = 0.25
    # How much worse than the champion (in the gate metric) a candidate may be and still publish.
    champion_tolerance: float = 0.005
    seed: int = 42
    # DuckDB's memory limit per connection; beyond it, big joins and sorts spill to disk.
    duckdb_memory_limit: str = "6GB"
    # Seconds a step or a command waits for another process's hold on the warehouse file.
    warehouse_lock_wait: float = 60.0
    # A pipeline's own settings are not here: each pipeline declares them and reads
    # NIGHTSHIFT_<PIPELINE>_* (mlcore.contract.load_pipeline_settings).

    @property
    def lake_is_s3(self) -> bool:
        return self.lake.startswith("s3://")

    def with_overrides(self, **changes) -> Settings:
        return replace(self, **changes)


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(PREFIX + name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigError(f"{PREFIX}{name} must be a number, got {raw!r}") from exc


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from ``env`` (default: the process environment)."""
    env = os.environ if env is None else env
    d = Settings()
    backend = env.get(PREFIX + "TRAIN_BACKEND", d.train_backend).strip().lower()
    if backend not in TRAIN_BACKENDS:
        raise ConfigError(
            f"{PREFIX}TRAIN_BACKEND must be one of {', '.join(TRAIN_BACKENDS)}, got {backend!r}"
        )
    lake = env.get(PREFIX + "LAKE", d.lake).rstrip("/") or d.lake
    if lake.startswith("s3:") and not lake.startswith("s3://"):
        raise ConfigError(f"{PREFIX}LAKE must look like s3://bucket/prefix, got {lake!r}")
    return Settings(
        lake=lake,
        warehouse=Path(env.get(PREFIX + "WAREHOUSE", str(d.warehouse))),
        train_backend=backend,
        trainer_image=env.get(PREFIX + "TRAINER_IMAGE", d.trainer_image),
        k8s_namespace=env.get(PREFIX + "K8S_NAMESPACE", d.k8s_namespace),
        k8s_lake_secret=env.get(PREFIX + "K8S_LAKE_SECRET", d.k8s_lake_secret),
        docker_gpus=int(_float(env, "DOCKER_GPUS", d.docker_gpus)),
        s3_endpoint=env.get(PREFIX + "S3_ENDPOINT") or None,
        s3_region=env.get(PREFIX + "S3_REGION", d.s3_region),
        aws_access_key_id=env.get(PREFIX + "S3_ACCESS_KEY_ID") or env.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=(
            env.get(PREFIX + "S3_SECRET_ACCESS_KEY") or env.get("AWS_SECRET_ACCESS_KEY")
        ),
        aws_conn_id=env.get(PREFIX + "AWS_CONN_ID", d.aws_conn_id),
        max_bad_row_share=_float(env, "MAX_BAD_ROW_SHARE", d.max_bad_row_share),
        champion_tolerance=_float(env, "CHAMPION_TOLERANCE", d.champion_tolerance),
        seed=int(_float(env, "SEED", d.seed)),
        duckdb_memory_limit=env.get(PREFIX + "DUCKDB_MEMORY_LIMIT", d.duckdb_memory_limit),
        warehouse_lock_wait=_float(env, "WAREHOUSE_LOCK_WAIT", d.warehouse_lock_wait),
    )


_DS = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_ds(ds: str | dt.date) -> dt.date:
    """A run's date from ``YYYY-MM-DD`` only; ValueError otherwise.

    Stricter than ``date.fromisoformat``, which since Python 3.11 also takes ``20240131`` and
    ``2024-W05-3``: a ds names lake folders and partitions, so it has exactly one spelling.
    """
    if isinstance(ds, dt.datetime):
        raise ValueError(f"ds must be a date like 2024-01-31, got the datetime {ds!r}")
    if isinstance(ds, dt.date):
        return ds
    if not isinstance(ds, str) or not _DS.fullmatch(ds):
        raise ValueError(f"ds must be a date like 2024-01-31, got {ds!r}")
    try:
        return dt.date.fromisoformat(ds)
    except ValueError:
        raise ValueError(f"ds must be a date like 2024-01-31, got {ds!r}") from None
