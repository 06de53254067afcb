"""Dense regressors (Keras 3, ``keras.layers`` / ``keras.ops`` only: any backend runs them).

Like the classifiers in ``mlp``, the model starts with a ``Normalization`` layer adapted on the
training rows (the same layer name, so ``mlp.adapt_normalizer`` adapts it too), so the saved
``.keras`` file takes raw feature values. The output is linear: the model predicts in the
target's own units, e.g. viewers per minute, with one unit per target (``outputs``).

Given ``train_y``, a last, inverted ``Normalization`` layer maps the network's output from
standard units back to the target's: a target in the thousands then starts where the
initial weights can reach it, instead of Adam spending its first epochs climbing to the mean.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from mlcore.models.mlp import NORMALIZER

LOSSES = ("mse", "huber")
DENORMALIZER = "denormalize"


def build_dense_regressor(
    n_features: int,
    *,
    seed: int,
    units: tuple[int, ...] = (64, 32),
    train_x: np.ndarray | None = None,
    learning_rate: float = 1e-3,
    loss: str = "mse",
    outputs: int = 1,
    train_y: np.ndarray | None = None,
) -> keras.Model:
    """Normalization → dense ReLU layers of ``units`` → ``outputs`` linear units, compiled.

    ``loss`` is ``"mse"`` (the mean; what RMSE rewards) or ``"huber"`` (squared near zero,
    linear beyond 1: a few extreme minutes, such as a live room's raid, pull it less). MAE is
    tracked as a metric either way. Pass ``train_x`` to adapt the normalisation now, or call
    ``mlcore.models.mlp.adapt_normalizer`` before fitting. ``train_y`` (n, outputs), optional,
    sets the output's scale per target (see the module's docstring); the Huber loss's bend at
    1 is then in the target's units, as always.
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
    inputs = keras.Input(shape=(n_features,), name="features")
    norm = layers.Normalization(axis=-1, name=NORMALIZER)
    if train_x is not None:
        norm.adapt(np.asarray(train_x, dtype="float32"))
    x = norm(inputs)
    for i, width in enumerate(units):
        x = layers.Dense(
            width,
            activation="relu",
            kernel_initializer=keras.initializers.HeUniform(seed=seed + i),
            name=f"dense_{i + 1}",
        )(x)
    out = layers.Dense(
        outputs,
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed + len(units)),
        name="prediction",
    )(x)
    if train_y is not None:
        denorm = layers.Normalization(axis=-1, invert=True, name=DENORMALIZER)
        denorm.adapt(np.asarray(train_y, dtype="float32").reshape(-1, outputs))
        out = denorm(out)
    model = keras.Model(inputs, out, name="dense_regressor")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss=keras.losses.Huber() if loss == "huber" else keras.losses.MeanSquaredError(),
        metrics=[keras.metrics.MeanAbsoluteError(name="mae")],
    )
    return model
