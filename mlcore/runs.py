"""The run skeleton every trainer uses: inputs, champions, streaming scores, the manifest.

``train(pipeline, lake, ds, settings)`` is what ``nightshift train`` runs (locally, in Docker, in
a pod): it fetches the pipeline's feature files from the lake, hands the trainer a
:class:`TrainingRun`, checks the :class:`~mlcore.manifest.RunManifest` it returns, writes it
(last: a run whose manifest exists is complete) and records which version trained for ``ds``
(the step, :func:`mlcore.steps.train`, then draws the run's evaluation figure for its kind).
The trainer does only what is its own: read its features, fit its models, evaluate them, and
score tonight's rows through the helpers here:

- :meth:`TrainingRun.features` / :func:`check_columns` / :func:`check_no_nulls`: input checks
  that fail in one line naming the file and what is wrong with it;
- :meth:`TrainingRun.champions`: the current champion of each slot, loaded to be re-scored on
  today's evaluation rows (so the gate compares like with like);
- :func:`score_stream`: every row of a big Parquet file scored by several models, batch by batch,
  into one Parquet file, in constant memory.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import platform
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from mlcore import training
from mlcore.config import Settings
from mlcore.contract import Pipeline
from mlcore.lake import Lake, LakeError, features_prefix, models_prefix, predictions_prefix
from mlcore.manifest import ChampionEntry, ManifestError, RunManifest
from mlcore.registry import champion_key
from mlcore.training import TrainingError

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


def run_pointer_key(pipeline: str, ds: dt.date | str) -> str:
    """Where the trainer records which model version it trained for ``ds``."""
    day = ds.isoformat() if isinstance(ds, dt.date) else str(ds)
    return f"{models_prefix(pipeline)}/runs/ds={day}.json"


# ---- input checks -----------------------------------------------------------------------------
def check_columns(path: Path, needed: Sequence[str]) -> None:
    """TrainingError unless the Parquet file at ``path`` has every column of ``needed``."""
    schema = pq.read_schema(path)
    missing = [c for c in needed if c not in schema.names]
    if missing:
        raise TrainingError(f"{path.name} lacks columns {', '.join(missing)}")


def check_no_nulls(table: pa.Table, what: str) -> None:
    """TrainingError naming every column of ``table`` that holds nulls (the SQL must impute)."""
    bad = {c: table.column(c).null_count for c in table.column_names if table.column(c).null_count}
    if bad:
        shown = ", ".join(f"{c} ({n})" for c, n in sorted(bad.items()))
        raise TrainingError(f"{what} has nulls in {shown}; the feature SQL must impute them")


# ---- models that score ------------------------------------------------------------------------
@dataclass(frozen=True)
class Scorer:
    """A model that scores rows: its name, version and the feature columns it reads.

    ``prepare`` builds the model's input from a frame of rows (those columns and the keys)
    for a model that takes more than a matrix of them: a sequence model's history, say.
    Without it the input is the ``inputs`` columns as float32.
    """

    name: str
    version: str
    inputs: tuple[str, ...]
    model: Any
    prepare: Callable[[pd.DataFrame], Any] | None = None

    def input_of(self, frame: pd.DataFrame) -> Any:
        if self.prepare is not None:
            return self.prepare(frame)
        return frame[list(self.inputs)].to_numpy("float32")


def load_artifact(lake: Lake, key: str) -> Any:
    """A model file of the lake: ``.keras`` through Keras, ``.pkl`` through joblib."""
    if key.endswith(".keras"):
        return training.load_keras(lake, key)
    if key.endswith(".pkl"):
        return training.load_pickle(lake, key)
    raise TrainingError(f"cannot load model file {key}: unknown format")


def score_stream(
    path: Path,
    lake: Lake,
    key: str,
    scorers: Sequence[Scorer],
    *,
    keys: Sequence[str],
    score_column: str,
    batch_size: int = 65_536,
    predict: Callable[[Any, Any, int], Any] = training.predict_batched,
) -> int:
    """Score every row of ``path`` with every scorer; write ``key`` in the lake; return rows.

    Rows stream from the Parquet file into a Parquet writer, one batch at a time, so memory
    stays at one batch whatever the number of rows. The output has the ``keys`` columns, then
    ``model_name``, ``model_version`` and ``score_column`` (float64), one row per input row and
    scorer.
    """
    needed = sorted({f for s in scorers for f in s.inputs})
    check_columns(path, [*keys, *needed])
    source = pq.ParquetFile(path)
    schema = pa.schema(
        [
            *(pa.field(k, source.schema_arrow.field(k).type) for k in keys),
            pa.field("model_name", pa.string()),
            pa.field("model_version", pa.string()),
            pa.field(score_column, pa.float64()),
        ]
    )
    n = 0
    with tempfile.TemporaryDirectory(prefix="nightshift-") as tmp:
        out = Path(tmp) / Path(key).name
        with pq.ParquetWriter(out, schema) as writer:
            for rb in source.iter_batches(batch_size=batch_size, columns=[*keys, *needed]):
                table = pa.Table.from_batches([rb])
                check_no_nulls(table, path.name)
                frame = table.to_pandas()
                n += len(frame)
                for s in scorers:
                    p = predict(s.model, s.input_of(frame), batch_size)
                    columns = {k: table.column(k) for k in keys}
                    columns["model_name"] = pa.array([s.name] * len(frame), pa.string())
                    columns["model_version"] = pa.array([s.version] * len(frame), pa.string())
                    columns[score_column] = pa.array(p, pa.float64())
                    writer.write_table(pa.table(columns, schema=schema))
        lake.put_file(out, key)
    return n


# ---- the run ----------------------------------------------------------------------------------
@dataclass
class TrainingRun:
    """One training run of a pipeline for one ``ds``: what a trainer gets from the core."""

    pipeline: Pipeline
    lake: Lake
    ds: str  # YYYY-MM-DD
    settings: Settings
    folder: Path  # a local copy of features/<pipeline>/ds=<ds>/
    pipeline_settings: Any = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.pipeline.name

    @property
    def seed(self) -> int:
        return self.settings.seed

    def features(self, file_name: str) -> Path:
        """The local path of an exported feature file, or of a folder of shards (``"x/"``);
        TrainingError when it is missing."""
        path = self.folder / file_name
        if not (path.is_dir() if file_name.endswith("/") else path.is_file()):
            where = self.lake.url(f"{features_prefix(self.name, self.ds)}/{file_name}")
            raise TrainingError(
                f"no {self.name} features at {where}: run the features step for {self.ds}"
            )
        return path

    def model_key(self, version: str, file_name: str) -> str:
        return f"{models_prefix(self.name, version)}/{file_name}"

    def predictions_key(self, file_name: str) -> str:
        return f"{predictions_prefix(self.name, self.ds)}/{file_name}"

    def version(self, fingerprint: str, params: dict) -> str:
        return training.run_version(self.ds, fingerprint, params)

    @contextlib.contextmanager
    def timed(self, label: str) -> Iterator[None]:
        """Time a phase of the run into ``timings["<label>_seconds"]`` (reported, not hashed)."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[f"{label}_seconds"] = round(time.perf_counter() - started, 2)

    def champions(self, slots: Sequence[str], version: str, available: Sequence[str]) -> dict:
        """{slot: Scorer} for the current champion of each slot, of another version than ours.

        A champion that cannot be loaded, or needs features today's data lacks, is left out
        with a warning: the gate then compares against the baselines only, and says so.
        """
        key = champion_key(self.name)
        if not self.lake.exists(key):
            log.info("no champion yet (%s absent): first run", key)
            return {}
        current = json.loads(self.lake.read_text(key))
        champions = {}
        for slot, champ_version in sorted(current.items()):
            if slot not in slots or champ_version == version:
                continue
            try:
                raw = json.loads(
                    self.lake.read_text(f"{models_prefix(self.name, champ_version)}/manifest.json")
                )
                entry = raw["models"][slot]
                # A manifest written before the typed contract lists its inputs in params.
                inputs = entry.get("inputs") or raw["params"]["features"]
                lacking = sorted(set(inputs) - set(available))
                if lacking:
                    raise TrainingError(f"needs features {lacking}")
                model = load_artifact(self.lake, entry["artifact"])
            except (LakeError, TrainingError, KeyError, ValueError, OSError) as exc:
                log.warning(
                    "champion %s %s left out of the comparison: %s", slot, champ_version, exc
                )
                continue
            champions[slot] = Scorer(slot, champ_version, tuple(inputs), model)
        return champions


def champion_entries(champions: dict[str, Scorer], metrics: dict[str, dict]) -> dict:
    """The manifest's ``champions``: each champion's version and its metrics on today's rows."""
    return {
        slot: ChampionEntry(version=s.version, metrics=metrics[slot])
        for slot, s in champions.items()
    }


def runtime() -> dict[str, str]:
    """Library versions of the run (not part of the version: another backend, the same run)."""
    import keras
    import sklearn

    return {
        "python": platform.python_version(),
        "keras": keras.__version__,
        "keras_backend": keras.backend.backend(),
        "scikit_learn": sklearn.__version__,
    }


def train(pipeline: Pipeline, lake: Lake, ds: dt.date | str, settings: Settings) -> RunManifest:
    """Run the pipeline's trainer for ``ds`` on the lake's features; write the manifest.

    Raises TrainingError (one line) when the features are missing or unusable, and
    ManifestError when the trainer returns a manifest that breaks the contract.
    """
    day = ds.isoformat() if isinstance(ds, dt.date) else str(ds)
    started = time.perf_counter()
    with lake.local_dir(features_prefix(pipeline.name, day)) as folder:
        run = TrainingRun(
            pipeline=pipeline,
            lake=lake,
            ds=day,
            settings=settings,
            folder=Path(folder),
            pipeline_settings=pipeline.load_settings(),
        )
        manifest = pipeline.load_trainer()(run)
    if not isinstance(manifest, RunManifest):
        raise ManifestError(f"{pipeline.name} trainer returned {type(manifest).__name__}")
    if manifest.pipeline != pipeline.name or manifest.ds != day or manifest.kind != pipeline.kind:
        raise ManifestError(
            f"{pipeline.name} trainer returned a manifest of {manifest.pipeline} "
            f"({manifest.kind}) for {manifest.ds}"
        )
    # Timings vary run to run: they are reported, never part of the version.
    manifest.timings = {**run.timings, **manifest.timings}
    manifest.runtime = manifest.runtime or runtime()
    lake.write_text(
        f"{models_prefix(pipeline.name, manifest.version)}/manifest.json", manifest.to_json()
    )
    lake.write_text(
        run_pointer_key(pipeline.name, day), json.dumps({"version": manifest.version, "ds": day})
    )
    log.info(
        "trained %s %s in %.0fs", pipeline.name, manifest.version, time.perf_counter() - started
    )
    return manifest
