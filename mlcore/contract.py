"""The pipeline contract: what a pipeline declares, and what its trainer and publisher do.

A pipeline is data, not code paths in the core: a :class:`Pipeline` names its sources, its SQL
folder, the feature tables it exports to the lake, the tables it publishes (each with its grain,
key and column schema), its ``kind`` and its own settings. Two callables do its specific work:

- a :class:`Trainer` reads the lake through a :class:`mlcore.runs.TrainingRun` and returns a
  :class:`mlcore.manifest.RunManifest` (the core writes it, plots it, and the gate reads it);
- a :class:`Publisher` stages today's rows of every published table on the warehouse and
  returns ``{table: select}`` for :func:`mlcore.publish.publish_tables`.

The core's steps, CLI, bench, demo and conformance tests read the registry
(:mod:`mlcore.pipelines`), so adding a pipeline edits no core file. Importing this module is
cheap (the scheduler parses DAG files with it): no pandas, DuckDB or Keras here.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import datetime as dt

    import duckdb

    from mlcore.config import Settings
    from mlcore.lake import Lake
    from mlcore.manifest import RunManifest
    from mlcore.runs import TrainingRun

KINDS = ("binary", "ranking", "forecast", "recall")
"""What a pipeline's models predict; the kind picks the evaluation metrics and plots."""

# DuckDB writes Parquet row groups in multiples of its vector size: a shard's row count is
# rounded down to one (see Pipeline.shard_rows).
SHARD_ROW_STEP = 2048

_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_")


class ContractError(ValueError):
    """A pipeline or source declaration breaks the contract (the message says which rule)."""


def load_ref(ref: str) -> Any:
    """The object ``"package.module:attribute"`` names (imported on first use)."""
    module, _, attr = ref.partition(":")
    if not module or not attr:
        raise ContractError(f"a reference must look like 'package.module:name', got {ref!r}")
    return getattr(importlib.import_module(module), attr)


def load_registered(package: str, names: tuple[str, ...], attr: str) -> dict[str, Any]:
    """{name: package.<name>.<attr>} for each registered name; its ``name`` must match."""
    out = {}
    for name in names:
        spec = getattr(importlib.import_module(f"{package}.{name}"), attr)
        if spec.name != name:
            raise ContractError(f"{package}.{name} declares {spec.name!r}, registered as {name!r}")
        out[name] = spec
    return out


def check_name(name: str, what: str) -> str:
    """Names become DAG ids, SQL folders, table prefixes and lake folders: keep them plain."""
    if not name or not set(name) <= _NAME_CHARS or not name[0].isalpha():
        raise ContractError(f"{what} name {name!r}: lower-case letters, digits and _ only")
    return name


@dataclass(frozen=True)
class TableSchema:
    """A published table: ``marts.<name>`` and ``lake/outputs/<name>/ds=…/``.

    ``columns`` maps each column, in order, to its DuckDB type; the first is always ``ds``
    (date): every published table is one partition per day. ``key`` is the grain's unique key.
    """

    name: str
    grain: str  # "one row per user × candidate track"
    key: tuple[str, ...]
    columns: dict[str, str]
    doc: str = ""

    def __post_init__(self) -> None:
        check_name(self.name, "table")
        if next(iter(self.columns), None) != "ds" or self.columns["ds"] != "date":
            raise ContractError(f"marts.{self.name}: the first column must be ds date")
        if not self.key or self.key[0] != "ds":
            raise ContractError(f"marts.{self.name}: the key must start with ds")
        unknown = [k for k in self.key if k not in self.columns]
        if unknown:
            raise ContractError(f"marts.{self.name}: key columns {unknown} are not declared")

    def ddl(self) -> str:
        """The column list of ``create table marts.<name> (...)``."""
        return ", ".join(f"{name} {kind}" for name, kind in self.columns.items())


class Trainer(Protocol):
    """``nightshift train <pipeline> --ds D``: reads and writes the lake only (never DuckDB)."""

    def __call__(self, run: TrainingRun) -> RunManifest: ...


@dataclass(frozen=True)
class ServingModel:
    """Which model's scores fill a published model slot tonight, and why."""

    slot: str  # the published model name (an A/B arm's model, say)
    model_name: str  # the model whose scores are published: the slot's own, or a fallback
    version: str
    status: str  # champion | degraded
    reason: str = ""


@dataclass(frozen=True)
class PublishContext:
    """What a publisher gets: the warehouse (inside the publish step), the lake and tonight."""

    con: duckdb.DuckDBPyConnection
    lake: Lake
    ds: dt.date
    settings: Settings
    pipeline_settings: Any  # the pipeline's own settings (Pipeline.settings), or None
    serving: dict[str, ServingModel]  # slot -> the model that serves it


class Publisher(Protocol):
    """Stage today's rows of every published table; return ``{table: select}``."""

    def __call__(self, ctx: PublishContext) -> dict[str, str]: ...


@dataclass(frozen=True)
class Pipeline:
    """One nightly pipeline: its inputs, its SQL, its exports, its outputs, its code."""

    name: str  # also the DAG id and the folder under sql/ and lake/{features,models,...}/
    kind: str  # one of KINDS
    sources: tuple[str, ...]  # raw sources (mlcore.sources) its SQL reads
    tables: tuple[TableSchema, ...]  # what it publishes
    # lake file under features/<pipeline>/ds=…/ -> the warehouse table exported to it. A name
    # ending in "/" ("ratings/") is a folder of Parquet shards of at most ``shard_rows`` rows
    # each (part-00000.parquet, …), for training data read shard by shard.
    feature_exports: dict[str, str]
    trainer: str  # "module:function", a Trainer
    publisher: str  # "module:function", a Publisher
    # "module:Class": a frozen dataclass of the pipeline's own settings, read from
    # NIGHTSHIFT_<PIPELINE>_<FIELD> (see load_pipeline_settings); None when it has none.
    settings: str | None = None
    summary: str = ""
    tags: tuple[str, ...] = ()
    docs: str = ""  # docs/pipelines/<name>.md, relative to the repo
    servable: bool = False  # whether an online service can serve its models (binary today)
    sql_folder: str = ""  # default: the pipeline's name
    shard_rows: int = 200_000  # the most rows of one shard of a folder export
    # Countries (ISO codes of the holidays library: "CN") whose holiday calendars its SQL
    # reads from ref.calendar (mlcore.calendars), written before the SQL runs.
    calendars: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_name(self.name, "pipeline")
        if self.kind not in KINDS:
            raise ContractError(f"pipeline {self.name}: kind must be one of {KINDS}")
        if not self.sources:
            raise ContractError(f"pipeline {self.name}: declares no source")
        names = [t.name for t in self.tables]
        if not names or len(set(names)) != len(names):
            raise ContractError(f"pipeline {self.name}: publishes no table, or one twice")
        for file_name, table in self.feature_exports.items():
            folder = file_name.endswith("/") and "/" not in file_name[:-1] and len(file_name) > 1
            if not folder and (not file_name.endswith(".parquet") or "/" in file_name):
                raise ContractError(
                    f"pipeline {self.name}: export {file_name!r} is no file name (x.parquet) "
                    "or folder of shards (x/)"
                )
            if not table.startswith("features."):
                raise ContractError(f"pipeline {self.name}: exports {table}, not a features.*")

        if self.shard_rows < SHARD_ROW_STEP:
            raise ContractError(f"pipeline {self.name}: shard_rows must be >= {SHARD_ROW_STEP}")

    @property
    def published_tables(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tables)

    @property
    def sql(self) -> str:
        """The folder under sql/ that holds the pipeline's models."""
        return self.sql_folder or self.name

    def table(self, name: str) -> TableSchema:
        for t in self.tables:
            if t.name == name:
                return t
        raise KeyError(f"pipeline {self.name} publishes no table {name!r}")

    def load_trainer(self) -> Trainer:
        return load_ref(self.trainer)

    def load_publisher(self) -> Publisher:
        return load_ref(self.publisher)

    def load_settings(self, env: Mapping[str, str] | None = None) -> Any:
        """The pipeline's own settings from ``NIGHTSHIFT_<PIPELINE>_*`` (None without any)."""
        if self.settings is None:
            return None
        return load_pipeline_settings(self.name, load_ref(self.settings), env)


# ---- the pipeline's own settings ---------------------------------------------------------------
def settings_prefix(pipeline: str) -> str:
    return f"NIGHTSHIFT_{pipeline.upper()}_"


def load_pipeline_settings(pipeline: str, cls: type, env: Mapping[str, str] | None = None) -> Any:
    """Build the settings dataclass ``cls`` from ``NIGHTSHIFT_<PIPELINE>_<FIELD>`` variables.

    Each field's type (int, float, str, bool, or ``X | None``) says how its text is read; an
    unset or empty variable keeps the field's default. A field's metadata may name an older
    variable it also accepts (``metadata={"alias": "NIGHTSHIFT_CACHE_BUDGET"}``).
    """
    from mlcore.config import ConfigError

    env = os.environ if env is None else env
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        name = settings_prefix(pipeline) + f.name.upper()
        raw = env.get(name)
        if (raw is None or raw == "") and f.metadata.get("alias"):
            name, raw = f.metadata["alias"], env.get(f.metadata["alias"])
        if raw is None or raw == "":
            continue
        kind = _base_type(hints[f.name])
        try:
            values[f.name] = _parse(raw, kind)
        except ValueError as exc:
            raise ConfigError(f"{name} must be a {kind.__name__}, got {raw!r}") from exc
    return cls(**values)


def _base_type(hint: Any) -> type:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args else hint


def _parse(raw: str, kind: type) -> Any:
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ValueError(raw)
    if kind is int:
        return int(float(raw)) if float(raw).is_integer() else int(raw)
    return kind(raw)
