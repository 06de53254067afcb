"""Training helpers that every pipeline reuses: splits, seeds, fitting, scoring, artifacts.

Importing this module is cheap: Keras (and through it TensorFlow) is imported inside the
functions that need it, so the scheduler and the CLI can import pipeline modules freely.

Conventions the helpers rely on:
- Evaluation is by time: ``time_split`` puts the latest period in the test set, and
  ``fit_keras`` validates on the latest slice of the training period, so no model ever
  learns from rows that come after the rows it is judged on.
- Rows handed to ``fit_keras`` are sorted by time (``time_split`` returns them so;
  ``make_windows`` keeps a series' order).
- Every random choice is seeded from ``Settings.seed``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from mlcore.lake import Lake

log = logging.getLogger(__name__)


class TrainingError(RuntimeError):
    """Training cannot go on (missing or unusable features); the message says why, in one line."""


# ---- reproducibility --------------------------------------------------------------------------
def set_seeds(seed: int) -> None:
    """Seed Python, NumPy and the Keras backend, and ask the backend for deterministic ops.

    Call it again right before each model is fitted, so that a model's result does not depend
    on how much randomness the models before it consumed.
    TensorFlow gets ``enable_op_determinism`` (bitwise-reproducible CPU runs; on GPU some ops
    become slower); PyTorch gets ``use_deterministic_algorithms``. JAX is deterministic on CPU;
    on GPU it needs ``XLA_FLAGS=--xla_gpu_deterministic_ops=true`` set before the process starts,
    which is the trainer image's job, not this function's.
    """
    import keras

    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)  # python, numpy and the backend's global generator
    backend = keras.backend.backend()
    # The only backend-specific lines in mlcore: each backend spells "deterministic" its own way.
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    elif backend == "torch":
        import torch

        torch.use_deterministic_algorithms(True, warn_only=True)


def cpu_count(limit: int = 4) -> int:
    """The cores this process may use (its CPU affinity, which a container's cpuset limits;
    ``os.cpu_count()`` would count the host's), at most ``limit``: a model's process pool
    stays within what a shared worker should take."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, limit))


def data_fingerprint(items: Iterable[str | Path | bytes]) -> str:
    """SHA-256 (hex) over the given files' contents (or raw bytes), in the order given.

    Each item is framed by its base name and length, so that moving bytes from one file to the
    next changes the fingerprint while moving the lake to another root does not.
    """
    h = hashlib.sha256()
    for item in items:
        if isinstance(item, bytes):
            h.update(b"<bytes>\0" + len(item).to_bytes(8, "big"))
            h.update(item)
            continue
        path = Path(item)
        h.update(path.name.encode("utf-8") + b"\0" + path.stat().st_size.to_bytes(8, "big"))
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def run_version(ds: str, fingerprint: str, params: dict) -> str:
    """``<ds>-<10 hex>``: the same data and params give the same version, so a re-run overwrites."""
    digest = hashlib.sha256(
        (fingerprint + json.dumps(params, sort_keys=True, default=str)).encode("utf-8")
    ).hexdigest()
    return f"{ds}-{digest[:10]}"


# ---- splits -----------------------------------------------------------------------------------
class TimeSplit(NamedTuple):
    train: pd.DataFrame  # rows strictly before split_time, sorted by time
    test: pd.DataFrame  # rows at or after split_time, sorted by time
    split_time: Any  # the first timestamp of the test period


def holdout_row_count(n: int, test_share: float) -> int:
    """How many of ``n`` rows the latest ``test_share`` holds (at least one, never all)."""
    if not 0 < test_share < 1:
        raise ValueError(f"test_share must be in (0, 1), got {test_share}")
    if n < 2:
        raise TrainingError(f"cannot split {n} row(s) into a train and a test period")
    return min(max(round(n * test_share), 1), n - 1)


def time_split_point(ts: pd.Series | np.ndarray | pa.ChunkedArray | pa.Array, test_share: float):
    """The first timestamp of the test period: the latest ``test_share`` of rows by time.

    Ties at the boundary all go to the test side (the test period is ``ts >= split_time``), so
    the split is a clean cut in time; with many equal timestamps the test set can be a little
    larger than ``test_share``. Returns a value of the input's kind (an Arrow scalar for Arrow
    input), ready to compare with the same column.
    """
    k = len(ts) - holdout_row_count(len(ts), test_share)
    if isinstance(ts, pa.Array | pa.ChunkedArray):
        value = ts.take(pc.sort_indices(ts))[k]
        first = pc.min(ts)
    else:
        ordered = pd.Series(ts).sort_values(kind="stable").reset_index(drop=True)
        value, first = ordered.iloc[k], ordered.iloc[0]
    if first == value:
        raise TrainingError(
            "all rows up to the test period share one timestamp: nothing left to train on"
        )
    return value


def time_split(df: pd.DataFrame, time_col: str, test_share: float = 0.2) -> TimeSplit:
    """Train on the earliest ``1 - test_share`` of rows by ``time_col``, test on the latest.

    Both parts come back sorted by time (a stable sort, so equal timestamps keep their order),
    which ``fit_keras`` relies on to validate on the latest slice of the training period.
    """
    split = time_split_point(df[time_col], test_share)
    ordered = df.sort_values(time_col, kind="stable")
    in_test = ordered[time_col] >= split
    return TimeSplit(
        ordered[~in_test].reset_index(drop=True), ordered[in_test].reset_index(drop=True), split
    )


def bounded_sample(
    df: pd.DataFrame, max_rows: int, seed: int, *, time_col: str | None = "timestamp"
) -> pd.DataFrame:
    """At most ``max_rows`` rows of ``df``: the newest ones by ``time_col``.

    Why the newest rather than a random sample: behaviour drifts, the newest rows are the
    closest to the days the model will score, and the test period follows them directly.
    Rows that tie at the cutoff are kept in their input order (a stable sort), so the same file
    gives the same sample. ``seed`` is used only without a time column (``time_col=None``),
    where a seeded uniform sample is drawn, keeping the input order.
    """
    if max_rows < 1:
        raise ValueError(f"max_rows must be positive, got {max_rows}")
    if len(df) <= max_rows:
        return df
    if time_col is None:
        keep = np.sort(np.random.default_rng(seed).choice(len(df), size=max_rows, replace=False))
        return df.iloc[keep].reset_index(drop=True)
    return df.sort_values(time_col, kind="stable").iloc[-max_rows:].reset_index(drop=True)


def check_binary_labels(y: np.ndarray, what: str) -> None:
    """Raise a one-line TrainingError unless ``y`` holds both classes (0 and 1) and nothing else."""
    values = set(np.unique(y).tolist())
    if not values <= {0, 1}:
        raise TrainingError(f"{what}: labels must be 0 or 1, found {sorted(values)[:5]}")
    if len(values) < 2:
        raise TrainingError(
            f"{what}: a single class (every label is {values.pop() if values else 'missing'}), "
            "a binary model cannot learn from it"
        )


def check_targets(y: np.ndarray, what: str) -> None:
    """Raise a one-line TrainingError unless ``y`` is a usable regression / forecast target.

    ``y`` (rows first, any shape) must hold finite numbers, at least 2 rows, and not one value
    throughout: a constant target trains a model that only learns the constant, and R² and
    the MASE are undefined on it, so it is refused before any model is built.
    """
    arr = np.asarray(y)
    if arr.dtype.kind not in "biuf":
        raise TrainingError(f"{what}: targets must be numbers, found dtype {arr.dtype}")
    if arr.ndim == 0 or len(arr) < 2:
        raise TrainingError(f"{what}: {arr.size} target row(s), at least 2 are needed")
    bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
    if bad:
        raise TrainingError(f"{what}: {bad} target value(s) are NaN or infinite")
    if np.all(arr == arr.flat[0]):
        raise TrainingError(f"{what}: every target is {arr.flat[0]}, a model cannot learn from it")


def make_windows(
    values: np.ndarray, *, window: int, horizon: int, stride: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Sliding windows over one time-ordered series, for sequence forecasters.

    ``values`` is (T,) or (T, F), oldest first; the first feature is the one forecast. Window
    ``i`` starts at ``s = i * stride``: ``X[i] = values[s : s + window]`` (shape (window, F)) and
    ``y[i] = values[s + window : s + window + horizon, 0]``, the ``horizon`` steps right after it.
    Returns ``X`` (n, window, F) and ``y`` (n, horizon) in the input's dtype, as contiguous
    copies (numpy stride tricks, no Python loop per window); the windows stay in time order,
    so ``fit_keras`` validates on the latest ones.
    """
    for arg, v in (("window", window), ("horizon", horizon), ("stride", stride)):
        if v < 1:
            raise ValueError(f"{arg} must be at least 1, got {v}")
    arr = np.asarray(values)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"values must be (T,) or (T, F), got shape {np.shape(values)}")
    t = len(arr)
    if t < window + horizon:
        raise TrainingError(
            f"a series of {t} steps is too short for a window of {window} and a horizon of "
            f"{horizon} ({window + horizon} steps needed)"
        )
    n = (t - window - horizon) // stride + 1
    # sliding_window_view gives (T - L + 1, F, L) views over the series; the first n * stride
    # starts, every stride-th, are the windows, then features go last.
    views = np.lib.stride_tricks.sliding_window_view(arr, window + horizon, axis=0)
    views = views[: (n - 1) * stride + 1 : stride]
    # .copy() (C order), not ascontiguousarray: that returns the read-only view itself
    # whenever the view happens to be contiguous already (one feature, one window).
    x = views[:, :, :window].transpose(0, 2, 1).copy()
    y = views[:, 0, window:].copy()
    return x, y


class Progress:
    """Logs a long loop's progress every ~10% (only when it is ``every`` items or more long),
    through ``logger`` (the caller's, so the line says whose loop it is)."""

    def __init__(self, what: str, total: int, every: int, logger: logging.Logger = log):
        self.what, self.total, self.done, self.shown = what, total, 0, 0
        self.on = total >= every
        self.log = logger
        self.t0 = time.perf_counter()

    def add(self, n: int = 1) -> None:
        self.done += n
        decile = self.done * 10 // max(self.total, 1)
        if self.on and decile > self.shown:
            self.shown = decile
            self.log.info(
                "%s: %d/%d (%d%%) in %.1fs",
                self.what,
                self.done,
                self.total,
                100 * self.done // self.total,
                time.perf_counter() - self.t0,
            )


# ---- fitting ----------------------------------------------------------------------------------
def keras_early_stopping(patience: int, lr_patience: int, *, monitor: str = "val_loss") -> list:
    """ReduceLROnPlateau + EarlyStopping (best weights restored), as the original project had."""
    import keras

    return [
        keras.callbacks.ReduceLROnPlateau(
            monitor=monitor, factor=0.5, patience=lr_patience, min_lr=1e-5
        ),
        keras.callbacks.EarlyStopping(
            monitor=monitor, patience=patience, restore_best_weights=True
        ),
    ]


def _rows(x, what: str) -> int:
    """The row count of an input array, or of every array of a dict input (they must agree)."""
    if isinstance(x, dict):
        counts = {key: len(v) for key, v in x.items()}
        if not counts or len(set(counts.values())) != 1:
            raise TrainingError(f"{what}: inputs must all have the same rows, got {counts}")
        return next(iter(counts.values()))
    return len(x)


def _slice(x, start: int, stop: int):
    if isinstance(x, dict):
        return {key: v[start:stop] for key, v in x.items()}
    return x[start:stop]


def fit_keras(
    model,
    x,
    y: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    validation_share: float = 0.1,
    callbacks: Sequence = (),
    name: str = "model",
) -> dict:
    """Fit any compiled Keras model; validate on the LATEST ``validation_share`` rows.

    ``x`` is an array of any rank, rows first (features, windows, token sequences), or a dict of
    such arrays keyed by the model's input names (multi-input models); ``y`` an array of any
    shape with the same rows (0/1 labels, regression targets, multi-step horizons). The rows
    must be in time order: the validation slice is the tail, not a random draw, because a
    random draw would let early stopping peek at rows interleaved with the future. Batches
    within the fit part are shuffled (seeded by ``set_seeds``). Returns a summary of the fit
    for the manifest: rows used, epochs run and the per-epoch history.
    """
    import keras

    n = _rows(x, name)
    if len(y) != n:
        raise TrainingError(f"{name}: {n} input rows but {len(y)} targets")
    n_val = math.floor(n * validation_share) if validation_share > 0 else 0
    if n - n_val < 1:
        raise TrainingError(f"{name}: no training rows left after the validation slice")
    fit_x, fit_y = _slice(x, 0, n - n_val), y[: n - n_val]
    validation = (_slice(x, n - n_val, n), y[n - n_val :]) if n_val else None

    def log_epoch(epoch: int, logs: dict | None) -> None:
        shown = " ".join(f"{k}={v:.4f}" for k, v in sorted((logs or {}).items()))
        log.info("%s epoch %d/%d: %s", name, epoch + 1, epochs, shown)

    log.info(
        "%s: fitting on %d rows, validating on the latest %d, up to %d epochs of batch %d",
        name,
        n - n_val,
        n_val,
        epochs,
        batch_size,
    )
    history = model.fit(
        fit_x,
        fit_y,
        validation_data=validation,
        epochs=epochs,
        batch_size=batch_size,
        shuffle=True,
        callbacks=[*callbacks, keras.callbacks.LambdaCallback(on_epoch_end=log_epoch)],
        verbose=0,
    )
    hist = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    return {
        "fit_rows": n - n_val,
        "validation_rows": n_val,
        "epochs_run": len(hist.get("loss", [])),
        "history": hist,
    }


def fit_gradient_boosting(
    x: np.ndarray,
    y: np.ndarray,
    seed: int,
    *,
    max_iter: int = 500,
    learning_rate: float = 0.05,
    max_leaf_nodes: int = 15,
    min_samples_leaf: int = 80,
    validation_share: float = 0.1,
    n_iter_no_change: int = 20,
):
    """A scikit-learn HistGradientBoostingClassifier, early-stopped on time.

    The rows must be in time order: the latest ``validation_share`` of them is the validation
    slice on which boosting stops once the log loss has not improved for ``n_iter_no_change``
    iterations (sklearn's own early stopping would hold out a random slice, which lets the
    future leak into the stopping point). So the number of trees follows the data: a few
    dozen on ten thousand plays, hundreds on millions. ``validation_share=0`` fits a fixed
    ``max_iter`` trees on every row.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier

    n_val = int(len(x) * validation_share) if validation_share > 0 else 0
    model = HistGradientBoostingClassifier(
        max_iter=max_iter,
        learning_rate=learning_rate,
        max_leaf_nodes=max_leaf_nodes,
        min_samples_leaf=min_samples_leaf,
        early_stopping=n_val > 0,
        n_iter_no_change=n_iter_no_change,
        scoring="loss",
        random_state=seed,
    )
    if n_val == 0:
        log.info("gradient_boosting: fitting on %d rows, %d iterations", len(x), max_iter)
        return model.fit(x, y)
    cut = len(x) - n_val
    model.fit(x[:cut], y[:cut], X_val=x[cut:], y_val=y[cut:])
    log.info(
        "gradient_boosting: %d trees on %d rows, stopped on the latest %d",
        model.n_iter_,
        cut,
        n_val,
    )
    return model


def _model_input(x):
    # Integer inputs (token or bucket ids) stay integers: float32 holds integers exactly only
    # up to 2**24, fewer than a hashed id space has buckets. Everything else goes in as float32.
    if isinstance(x, dict):
        return {key: _model_input(v) for key, v in x.items()}
    arr = np.asarray(x)
    return arr if arr.dtype.kind in "iu" else arr.astype(np.float32, copy=False)


def predict_batched(model, x, batch_size: int = 65_536) -> np.ndarray:
    """A model's output for every row of ``x``, computed ``batch_size`` rows at a time.

    - Keras models: ``x`` is an array (rows first) or a dict of arrays (multi-input models,
      batched per key). One output unit gives an (n,) array, as binary classifiers and
      one-step regressors need; a wider output keeps its shape after the rows, e.g. (n, d)
      or (n, horizon, quantiles).
    - scikit-learn classifiers (``predict_proba``): P(label = 1), shape (n,).
    - scikit-learn regressors (``predict`` only): the prediction, (n,) or (n, d).

    Batching bounds the memory of the backend's intermediate tensors; the result is float64.
    """
    x = _model_input(x)
    n = _rows(x, "predict_batched")
    out: np.ndarray | None = None
    for start in range(0, n, batch_size):
        chunk = _slice(x, start, start + batch_size)
        if hasattr(model, "predict_proba"):
            p = np.asarray(model.predict_proba(chunk))[:, 1]
        elif hasattr(model, "predict_on_batch"):
            raw = model.predict_on_batch(chunk)
            if isinstance(raw, list | tuple | dict):
                raise TypeError("predict_batched scores models with a single output")
            p = np.asarray(raw)
        else:
            p = np.asarray(model.predict(chunk))
        rows = len(p)
        p = p.reshape(rows) if p.size == rows else p
        if out is None:
            out = np.empty((n, *p.shape[1:]), dtype=np.float64)
        out[start : start + rows] = p
    return out if out is not None else np.empty(0, dtype=np.float64)


# ---- artifacts in the lake --------------------------------------------------------------------
def save_keras(lake: Lake, key: str, model) -> str:
    """Write a Keras model to ``key`` (a ``.keras`` file) and return the key."""
    with tempfile.TemporaryDirectory(prefix="nightshift-") as tmp:
        path = Path(tmp) / Path(key).name
        model.save(path)
        lake.put_file(path, key)
    return key


def load_keras(lake: Lake, key: str):
    """Load a ``.keras`` model from the lake (downloaded to a temporary file first)."""
    import keras

    # Registers the custom layers and losses (quantile outputs, pinball loss) that saved
    # forecasters refer to by name: a scoring process may not have imported them yet.
    import mlcore.models.sequence  # noqa: F401

    with tempfile.TemporaryDirectory(prefix="nightshift-") as tmp:
        path = Path(tmp) / Path(key).name
        lake.get_file(key, path)
        return keras.saving.load_model(path)


def save_pickle(lake: Lake, key: str, obj) -> str:
    """Write a scikit-learn model (or any picklable object) with joblib; return the key."""
    import joblib

    with tempfile.TemporaryDirectory(prefix="nightshift-") as tmp:
        path = Path(tmp) / Path(key).name
        joblib.dump(obj, path)
        lake.put_file(path, key)
    return key


def load_pickle(lake: Lake, key: str):
    """Load a joblib file from the lake. Only load files this platform wrote: pickle runs code."""
    import joblib

    with tempfile.TemporaryDirectory(prefix="nightshift-") as tmp:
        path = Path(tmp) / Path(key).name
        lake.get_file(key, path)
        return joblib.load(path)


def write_parquet(lake: Lake, key: str, table: pa.Table | pd.DataFrame) -> str:
    """Write a table to ``key`` as one Parquet file; return the key."""
    import pyarrow.parquet as pq

    if isinstance(table, pd.DataFrame):
        table = pa.Table.from_pandas(table, preserve_index=False)
    with tempfile.TemporaryDirectory(prefix="nightshift-") as tmp:
        path = Path(tmp) / Path(key).name
        pq.write_table(table, path)
        lake.put_file(path, key)
    return key


def write_json(lake: Lake, key: str, obj: dict) -> str:
    """Write ``obj`` as indented, key-sorted JSON (diffable between runs); return the key."""
    lake.write_text(key, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
    return key
