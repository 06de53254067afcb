"""Sequence models (Keras 3, ``keras.layers`` / ``keras.ops`` only: any backend runs them).

- ``build_lstm_forecaster``: a recurrent forecaster of the next ``horizon`` steps of a series
  from its last ``window`` steps (``mlcore.training.make_windows`` makes the pairs), as a point
  forecast or as quantiles trained with the pinball loss.
- ``build_cnn_lstm_classifier``: a binary propensity model over behaviour sequences: a causal
  Conv1D picks local patterns (a view, then a cart), an LSTM reads them in order.
- ``build_session_gru``: a binary classifier of the next event (will this play be skipped?)
  from the user's last events (tokens and numbers per step, read by a GRU) and the event's own
  tabular features, the family of models that led the Spotify Sequential Skip Prediction
  Challenge.

The custom pieces (``PinballLoss``, ``MonotoneQuantiles``) are registered as Keras
serializables, so a saved ``.keras`` file reloads in any process that imported this module
(``mlcore.training.load_keras`` does).

Every random initialiser gets its own seed derived from ``seed``, so two builds with the same
seed start from identical weights whatever happened before in the process.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import keras
import numpy as np
from keras import layers, ops

from mlcore.models.mlp import NORMALIZER

DENORMALIZER = "denormalize"
CELLS = ("lstm", "gru")


@keras.saving.register_keras_serializable(package="nightshift")
class PinballLoss(keras.losses.Loss):
    """The pinball (quantile) loss, averaged over the horizon and the quantiles.

    For quantile ``q`` and error ``e = y - ŷ_q`` the loss is ``max(q·e, (q-1)·e)``: minimising it
    makes ``ŷ_q`` the q-th quantile of ``y`` given the input. ``y_true`` is (batch, horizon),
    ``y_pred`` (batch, horizon, len(quantiles)).
    """

    def __init__(self, quantiles: Sequence[float] = (0.1, 0.5, 0.9), name: str = "pinball", **kw):
        super().__init__(name=name, **kw)
        self.quantiles = tuple(float(q) for q in quantiles)

    def call(self, y_true, y_pred):
        q = ops.convert_to_tensor(self.quantiles, dtype=y_pred.dtype)
        err = ops.expand_dims(ops.cast(y_true, y_pred.dtype), -1) - y_pred
        return ops.mean(ops.maximum(q * err, (q - 1.0) * err), axis=(-2, -1))

    def get_config(self) -> dict:
        return {**super().get_config(), "quantiles": list(self.quantiles)}


@keras.saving.register_keras_serializable(package="nightshift")
class MonotoneQuantiles(layers.Layer):
    """Makes the last axis non-decreasing: the first value, then cumulative softplus steps.

    Quantile heads trained independently can cross (a 10% quantile above the 90% one on some
    rows), which leaves an interval with its bounds upside down. Building each quantile as the
    one below it plus a positive step rules that out by construction.
    """

    def call(self, raw):
        base = raw[..., :1]
        steps = ops.cumsum(ops.softplus(raw[..., 1:]), axis=-1)
        return ops.concatenate([base, base + steps], axis=-1)


def _check_quantiles(quantiles: Sequence[float]) -> tuple[float, ...]:
    qs = tuple(float(q) for q in quantiles)
    if not qs or any(not 0 < q < 1 for q in qs) or any(a >= b for a, b in pairwise(qs)):
        raise ValueError(f"quantiles must be increasing values in (0, 1), got {quantiles}")
    return qs


def _rnn(cell: str, units: int, seed: int, name: str):
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {', '.join(CELLS)}, got {cell!r}")
    kind = layers.LSTM if cell == "lstm" else layers.GRU
    return kind(
        units,
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
        recurrent_initializer=keras.initializers.Orthogonal(seed=seed + 1),
        name=name,
    )


def adapt_forecaster(model: keras.Model, train_x: np.ndarray) -> None:
    """Adapt a forecaster's input and output scaling on its training windows (n, window, F).

    For a forecaster built without ``train_x``; the output scale is the first feature's (the
    one forecast), so the targets need not be passed.
    """
    x = np.asarray(train_x, dtype="float32")
    model.get_layer(NORMALIZER).adapt(x)
    model.get_layer(DENORMALIZER).adapt(x[..., 0].reshape(-1))


def build_lstm_forecaster(
    window: int,
    n_features: int,
    horizon: int,
    *,
    seed: int,
    units: int = 64,
    cell: str = "lstm",
    quantiles: Sequence[float] | None = None,
    train_x: np.ndarray | None = None,
    learning_rate: float = 1e-3,
) -> keras.Model:
    """Input (window, n_features) → normalise → LSTM or GRU → the next ``horizon`` steps.

    The first feature is the series forecast (``make_windows``' convention); the others, if
    any, are covariates over the same window (multivariate). Without ``quantiles`` the output
    is (horizon,) and the loss is MSE; with ``quantiles`` (increasing, e.g. (0.1, 0.5, 0.9) for
    a median and an 80% interval) it is (horizon, len(quantiles)), non-crossing
    (``MonotoneQuantiles``), trained with ``PinballLoss``.

    The network works in standard units at both ends: a ``Normalization`` adapted on
    ``train_x`` scales the inputs, and an inverted one adapted on its first feature maps the
    output back to the series' units, so the model takes and returns raw values (a room's
    viewers) and its start does not depend on the series' level. Without ``train_x`` both are
    identities until ``adapt_forecaster`` is called.
    """
    qs = _check_quantiles(quantiles) if quantiles is not None else None
    inputs = keras.Input(shape=(window, n_features), name="window")
    norm = layers.Normalization(axis=-1, name=NORMALIZER)
    # axis=None: one mean and variance, those of the series forecast, for every output value.
    denorm = layers.Normalization(axis=None, invert=True, name=DENORMALIZER)
    if train_x is not None:
        x_arr = np.asarray(train_x, dtype="float32")
        norm.adapt(x_arr)
        denorm.adapt(x_arr[..., 0].reshape(-1))
    x = _rnn(cell, units, seed, cell)(norm(inputs))
    width = horizon * (len(qs) if qs else 1)
    x = layers.Dense(
        width, kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 2), name="head"
    )(x)
    if qs:
        x = layers.Reshape((horizon, len(qs)), name="per_quantile")(x)
        if len(qs) > 1:
            x = MonotoneQuantiles(name="monotone")(x)
    outputs = denorm(x)
    name = f"{cell}_forecaster" + ("_quantile" if qs else "")
    model = keras.Model(inputs, outputs, name=name)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss=PinballLoss(qs) if qs else keras.losses.MeanSquaredError(),
        metrics=None if qs else [keras.metrics.MeanAbsoluteError(name="mae")],
    )
    return model


def build_cnn_lstm_classifier(
    seq_len: int,
    n_features: int,
    *,
    seed: int,
    filters: int = 32,
    kernel_size: int = 3,
    lstm_units: int = 32,
    vocab_size: int | None = None,
    embedding_dim: int = 16,
    train_x: np.ndarray | None = None,
    learning_rate: float = 1e-3,
) -> keras.Model:
    """Behaviour sequences → causal Conv1D → LSTM → P(positive), e.g. buys in the category.

    Inputs, each (seq_len, …), oldest step first:
    - ``"features"`` (seq_len, n_features) float, normalised (adapted on ``train_x`` when
      given, or by ``mlcore.models.mlp.adapt_normalizer``), when ``n_features > 0``;
    - ``"tokens"`` (seq_len,) integer ids in ``[0, vocab_size)`` (a category, an event type),
      embedded in ``embedding_dim`` dimensions, when ``vocab_size`` is given.
    With both, the model takes a dict with those keys and concatenates them per step. The
    convolution is causal (each step sees only itself and the ``kernel_size - 1`` before it)
    so the LSTM reads the patterns in time order; a padding token is an ordinary id (Conv1D
    takes no mask), which is why sequences are best left-padded. Compiled with binary
    cross-entropy and ROC-AUC, as the ``mlp`` classifiers are.
    """
    if vocab_size is None and n_features < 1:
        raise ValueError("give n_features > 0, a vocab_size, or both: the model has no input")
    inputs, parts = [], []
    if vocab_size is not None:
        tokens = keras.Input(shape=(seq_len,), dtype="int32", name="tokens")
        embed = layers.Embedding(
            vocab_size,
            embedding_dim,
            embeddings_initializer=keras.initializers.RandomUniform(-0.05, 0.05, seed=seed + 10),
            name="embedding",
        )
        inputs.append(tokens)
        parts.append(embed(tokens))
    if n_features > 0:
        feats = keras.Input(shape=(seq_len, n_features), name="features")
        norm = layers.Normalization(axis=-1, name=NORMALIZER)
        if train_x is not None:
            norm.adapt(np.asarray(train_x, dtype="float32"))
        inputs.append(feats)
        parts.append(norm(feats))
    x = parts[0] if len(parts) == 1 else layers.Concatenate(axis=-1, name="per_step")(parts)
    x = layers.Conv1D(
        filters,
        kernel_size,
        padding="causal",
        activation="relu",
        kernel_initializer=keras.initializers.HeUniform(seed=seed),
        name="conv",
    )(x)
    x = _rnn("lstm", lstm_units, seed + 1, "lstm")(x)
    out = layers.Dense(
        1,
        activation="sigmoid",
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 3),
        name="p_positive",
    )(x)
    model = keras.Model(inputs[0] if len(inputs) == 1 else inputs, out, name="cnn_lstm")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="binary_crossentropy",
        metrics=[keras.metrics.AUC(name="auc")],
    )
    return model


def build_session_gru(
    seq_len: int,
    n_step_features: int,
    n_features: int,
    buckets: Sequence[int],
    *,
    seed: int,
    units: int = 32,
    embedding_dim: int = 8,
    dropout: float = 0.2,
    train_x: dict | None = None,
    learning_rate: float = 1e-3,
) -> keras.Model:
    """The user's last ``seq_len`` events + this event's features → P(positive), e.g. a skip.

    Inputs (a dict; ``train_x`` with the same keys adapts the normalisations now):
    - ``"history_tokens"`` (seq_len, len(buckets)) int ids per step, one per kind (track,
      artist, genre), each below its kind's bucket count; 0 is padding;
    - ``"history_steps"`` (seq_len, n_step_features) numbers per step (a skip flag, gaps...);
    - ``"query_tokens"`` (len(buckets),) the ids of the event to score, embedded by the same
      tables as the history, so a track the user skipped before looks like itself;
    - ``"features"`` (n_features,) the event's tabular features (the MLPs' inputs).
    Steps are oldest first, padded on the left, so the GRU's last state is the latest event.
    A GRU over [embeddings ‖ normalised numbers], concatenated with the query's embeddings and
    its normalised features, then dense → dropout → dense → sigmoid. Compiled like the MLPs
    (binary cross-entropy, ROC-AUC).
    """
    kinds = len(buckets)
    if kinds < 1 or seq_len < 1 or n_step_features < 1 or n_features < 1:
        raise ValueError("build_session_gru needs a history, step features and features")
    h_tokens = keras.Input(shape=(seq_len, kinds), dtype="int32", name="history_tokens")
    h_steps = keras.Input(shape=(seq_len, n_step_features), name="history_steps")
    q_tokens = keras.Input(shape=(kinds,), dtype="int32", name="query_tokens")
    feats = keras.Input(shape=(n_features,), name="features")
    step_norm = layers.Normalization(axis=-1, name="normalize_steps")
    feat_norm = layers.Normalization(axis=-1, name=NORMALIZER)
    if train_x is not None:
        steps = np.asarray(train_x["history_steps"], dtype="float32")
        step_norm.adapt(steps.reshape(-1, n_step_features))
        feat_norm.adapt(np.asarray(train_x["features"], dtype="float32"))
    h_parts, q_parts = [], []
    for k, size in enumerate(buckets):
        table = layers.Embedding(
            int(size),
            embedding_dim,
            embeddings_initializer=keras.initializers.RandomUniform(
                -0.05, 0.05, seed=seed + 10 + k
            ),
            embeddings_regularizer=keras.regularizers.L2(1e-5),
            name=f"embedding_{k}",
        )
        h_parts.append(table(h_tokens[..., k]))
        q_parts.append(table(q_tokens[..., k]))
    h = layers.Concatenate(axis=-1, name="per_step")([*h_parts, step_norm(h_steps)])
    h = _rnn("gru", units, seed, "gru")(h)
    q = layers.Concatenate(axis=-1, name="query")([*q_parts, feat_norm(feats)])
    x = layers.Concatenate(axis=-1, name="history_and_query")([h, q])
    x = layers.Dense(
        64,
        activation="relu",
        kernel_initializer=keras.initializers.HeUniform(seed=seed + 2),
        name="dense_1",
    )(x)
    x = layers.Dropout(dropout, seed=seed + 100, name="dropout")(x)
    x = layers.Dense(
        32,
        activation="relu",
        kernel_initializer=keras.initializers.HeUniform(seed=seed + 3),
        name="dense_2",
    )(x)
    out = layers.Dense(
        1,
        activation="sigmoid",
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 4),
        name="p_positive",
    )(x)
    inputs = {
        "history_tokens": h_tokens,
        "history_steps": h_steps,
        "query_tokens": q_tokens,
        "features": feats,
    }
    model = keras.Model(inputs, out, name="session_gru")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="binary_crossentropy",
        metrics=[keras.metrics.AUC(name="auc")],
    )
    return model
