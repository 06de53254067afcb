"""A latent factor model over hashed IDs (Keras 3, ``keras.layers`` / ``keras.ops`` only).

Users and items are hashed into ONE id space of ``num_buckets`` (``hash_ids`` over strings
such as ``"u:42"`` and ``"i:1193"``: the prefixes keep a user and an item with the same raw id
apart). Hashing needs no vocabulary to build, store and keep in sync between training and
scoring, and a new user or item gets a bucket without a retrain; the price is the odd
collision, small when ``num_buckets`` is a few times the number of distinct ids. One id space
means one embedding table: a user's vector and an item's live side by side, so the same table
serves u2i (user · item) and i2i (item · item) neighbour search (``embedding_matrix``).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import layers, ops

EMBEDDING = "embedding"
OUTPUTS = ("sigmoid", "linear")

# BKDR: h = h * 131 + byte, over the UTF-8 bytes, modulo 2**64 (unsigned 64-bit overflow).
BKDR_SEED = 131
_HASH_CHUNK = 1 << 16  # strings per chunk: bounds the (chunk, longest id) byte matrix


def hash_ids(values: Sequence[str], num_buckets: int) -> np.ndarray:
    """The 64-bit BKDR hash of each string (seed 131, mod 2**64), then mod ``num_buckets``.

    Returns int64 bucket ids in ``[0, num_buckets)``, the same on every machine and in every
    process (unlike Python's ``hash``, which is salted per process). Vectorised per chunk:
    the strings' UTF-8 bytes go into a zero-padded byte matrix and the hash runs one byte
    column at a time over all strings (numpy's uint64 arithmetic wraps modulo 2**64, which is
    exactly the hash's overflow); a string's padding columns leave its hash unchanged. About
    0.2 s per million short ids on one core; ids must be strings (cast numbers first).
    """
    if not 1 <= num_buckets <= 2**63 - 1:
        raise ValueError(f"num_buckets must be in [1, 2**63 - 1], got {num_buckets}")
    seq = list(values)
    out = np.empty(len(seq), dtype=np.int64)
    for start in range(0, len(seq), _HASH_CHUNK):
        out[start : start + _HASH_CHUNK] = _bkdr(seq[start : start + _HASH_CHUNK]) % np.uint64(
            num_buckets
        )
    return out


def _bkdr(strings: list) -> np.ndarray:
    try:
        encoded = [s.encode("utf-8") for s in strings]
    except AttributeError:
        bad = next(s for s in strings if not isinstance(s, str))
        raise ValueError(f"hash_ids takes strings, got {bad!r} ({type(bad).__name__})") from None
    lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
    width = int(lengths.max()) if len(encoded) else 0
    h = np.zeros(len(encoded), dtype=np.uint64)
    if width == 0:
        return h
    # NumPy's "S" dtype pads with NUL bytes on the right; `lengths` keeps real trailing NULs.
    matrix = np.array(encoded, dtype=f"S{width}").view(np.uint8).reshape(len(encoded), width)
    seed = np.uint64(BKDR_SEED)
    for j in range(width):
        live = lengths > j
        h = np.where(live, h * seed + matrix[:, j].astype(np.uint64), h)
    return h


def build_latent_factor_model(
    num_buckets: int,
    *,
    dim: int = 32,
    seed: int,
    output: str = "sigmoid",
    l2: float = 1e-6,
    learning_rate: float = 1e-3,
) -> keras.Model:
    """Inputs ``"user"`` and ``"item"`` (integer buckets) → shared embedding dot product → score.

    ``score = a · (e_user · e_item + b_user + b_item) + c``, with ``e`` one shared table of
    ``dim``-dimensional vectors (L2-regularised by ``l2`` per looked-up row), ``b`` a per-id bias
    (popularity: an item everyone clicks, a user who clicks everything) and ``a``, ``c`` a learned
    scale and offset. ``output="sigmoid"`` gives P(interaction) for implicit feedback with
    sampled negatives (binary cross-entropy, ROC-AUC); ``"linear"`` an explicit rating (MSE,
    MAE). The model takes a dict ``{"user": ids, "item": ids}`` of (n,) arrays.
    """
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}")
    user = keras.Input(shape=(), dtype="int32", name="user")
    item = keras.Input(shape=(), dtype="int32", name="item")
    table = layers.Embedding(
        num_buckets,
        dim,
        embeddings_initializer=keras.initializers.RandomNormal(stddev=0.1, seed=seed),
        embeddings_regularizer=keras.regularizers.L2(l2) if l2 else None,
        name=EMBEDDING,
    )
    bias = layers.Embedding(num_buckets, 1, embeddings_initializer="zeros", name="bias")
    e_user, e_item = table(user), table(item)  # (batch, dim) each: the SAME weights
    dot = layers.Dot(axes=-1, name="dot")([e_user, e_item])
    logit = layers.Add(name="logit")([dot, bias(user), bias(item)])
    score = layers.Dense(
        1,
        activation="sigmoid" if output == "sigmoid" else None,
        kernel_initializer="ones",
        name="score",
    )(logit)
    model = keras.Model({"user": user, "item": item}, score, name="latent_factor")
    if output == "sigmoid":
        loss, metrics = "binary_crossentropy", [keras.metrics.AUC(name="auc")]
    else:
        loss, metrics = "mse", [keras.metrics.MeanAbsoluteError(name="mae")]
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate), loss=loss, metrics=metrics
    )
    return model


def embedding_matrix(model: keras.Model) -> np.ndarray:
    """The shared embedding table, (num_buckets, dim) float32: row ``b`` is bucket ``b``'s vector.

    For i2i neighbour search: the items most similar to item bucket ``b`` are the rows with the
    largest dot product (or cosine) with row ``b``.
    """
    return np.asarray(model.get_layer(EMBEDDING).get_weights()[0])


# ---- ranking objectives on the same shared table ----------------------------------------------
def _shared_tables(num_buckets: int, dim: int, seed: int, l2: float) -> tuple:
    """The shared ``embedding`` table (L2 on the rows looked up, not the whole table) and the
    per-id ``bias``: the layer names ``embedding_matrix`` and ``recall.from_keras`` read."""
    table = layers.Embedding(
        num_buckets,
        dim,
        embeddings_initializer=keras.initializers.RandomNormal(stddev=0.1, seed=seed),
        # An activity regulariser: l2 · Σ(row²) of each looked-up row, over the batch size.
        # (An embeddings_regularizer would decay the whole table every step, and make the
        # gradient dense.)
        activity_regularizer=keras.regularizers.L2(l2) if l2 else None,
        name=EMBEDDING,
    )
    bias = layers.Embedding(num_buckets, 1, embeddings_initializer="zeros", name="bias")
    return table, bias


def bpr_loss(y_true, y_pred):
    """BPR: ``-log σ(d) = softplus(-d)`` of the score difference ``d``; ``y_true`` is unused."""
    del y_true
    return ops.softplus(-y_pred)


def build_bpr_model(
    num_buckets: int,
    *,
    dim: int = 32,
    seed: int,
    l2: float = 1e-5,
    learning_rate: float = 1e-3,
) -> keras.Model:
    """Inputs ``"user"``, ``"item"`` (a positive), ``"negative"`` (integer buckets) → the score
    difference ``s(u, item) - s(u, negative)``, ``s(u, i) = e_u · e_i + b_i``, for BPR.

    One shared table as in ``build_latent_factor_model`` (no user bias: it cancels in the
    difference). Compiled with ``bpr_loss`` and Adam; fit it with dummy targets (zeros).
    """
    user = keras.Input(shape=(), dtype="int32", name="user")
    item = keras.Input(shape=(), dtype="int32", name="item")
    negative = keras.Input(shape=(), dtype="int32", name="negative")
    table, bias = _shared_tables(num_buckets, dim, seed, l2)
    e_user, e_item, e_negative = table(user), table(item), table(negative)
    dot = layers.Dot(axes=-1)([e_user, layers.Subtract()([e_item, e_negative])])
    difference = layers.Add(name="difference")(
        [dot, bias(item), layers.Rescaling(-1.0)(bias(negative))]
    )
    model = keras.Model(
        {"user": user, "item": item, "negative": negative}, difference, name="latent_factor_bpr"
    )
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate), loss=bpr_loss)
    return model
