"""Dense binary classifiers (Keras 3, ``keras.layers`` / ``keras.ops`` only: any backend runs them).

Both builders put a ``Normalization`` layer first, adapted on the training rows, so the saved
``.keras`` file takes raw feature values: the scorer needs no separate scaler to keep in sync.
They return a compiled model (sigmoid output, binary cross-entropy, ROC-AUC as a metric).

Every random initialiser and dropout layer gets its own seed derived from ``seed``, so two
builds with the same seed start from identical weights whatever happened before in the process.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

NORMALIZER = "normalize"


def _inputs(n_features: int, train_x: np.ndarray | None) -> tuple:
    inputs = keras.Input(shape=(n_features,), name="features")
    norm = layers.Normalization(axis=-1, name=NORMALIZER)
    if train_x is not None:
        norm.adapt(np.asarray(train_x, dtype="float32"))
    return inputs, norm(inputs)


def _dense(units: int, seed: int, name: str, activation: str | None = "relu") -> layers.Dense:
    return layers.Dense(
        units,
        activation=activation,
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
        name=name,
    )


def _compile(model: keras.Model, learning_rate: float) -> keras.Model:
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="binary_crossentropy",
        metrics=[keras.metrics.AUC(name="auc")],
    )
    return model


def adapt_normalizer(model: keras.Model, train_x: np.ndarray) -> None:
    """Adapt the model's input normalisation on ``train_x`` (when it was built without data)."""
    model.get_layer(NORMALIZER).adapt(np.asarray(train_x, dtype="float32"))


def build_simple_mlp(
    n_features: int,
    *,
    seed: int,
    train_x: np.ndarray | None = None,
    learning_rate: float = 1e-3,
) -> keras.Model:
    """A small dense net, like the student project's simple MLP: 64 → 32 → sigmoid.

    Pass ``train_x`` (the training features) to adapt the normalisation now, or call
    ``adapt_normalizer`` before fitting.
    """
    inputs, x = _inputs(n_features, train_x)
    x = _dense(64, seed, "dense_1")(x)
    x = _dense(32, seed + 1, "dense_2")(x)
    outputs = _dense(1, seed + 2, "p_skip", activation="sigmoid")(x)
    return _compile(keras.Model(inputs, outputs, name="mlp_simple"), learning_rate)


def build_advanced_mlp(
    n_features: int,
    *,
    seed: int,
    dropout: float = 0.3,
    train_x: np.ndarray | None = None,
    learning_rate: float = 1e-3,
) -> keras.Model:
    """A deeper net: three blocks of dense → batch norm → ReLU → dropout (128, 64, 32 units).

    Meant to be trained with ReduceLROnPlateau and EarlyStopping
    (``mlcore.training.keras_early_stopping``), as the student project's advanced model was.
    The dense layers have no bias: the batch normalisation that follows has its own shift.
    """
    inputs, x = _inputs(n_features, train_x)
    for i, units in enumerate((128, 64, 32)):
        x = layers.Dense(
            units,
            use_bias=False,
            kernel_initializer=keras.initializers.HeUniform(seed=seed + i),
            name=f"dense_{i + 1}",
        )(x)
        x = layers.BatchNormalization(name=f"batch_norm_{i + 1}")(x)
        x = layers.Activation("relu", name=f"relu_{i + 1}")(x)
        x = layers.Dropout(dropout, seed=seed + 100 + i, name=f"dropout_{i + 1}")(x)
    outputs = _dense(1, seed + 10, "p_skip", activation="sigmoid")(x)
    return _compile(keras.Model(inputs, outputs, name="mlp_advanced"), learning_rate)
