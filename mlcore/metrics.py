"""Evaluation metrics, reported on the holdout's natural class balance.

Every value is a plain Python float or int (or None), so a metrics dict goes straight into a
manifest or a JSON column. A metric that is undefined on the rows given (ROC-AUC when the holdout
holds one class) is None rather than an exception: a quiet night with no skips must not crash the
run, and the gate treats None as "cannot be compared".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Probabilities are clipped before the log so that one confident mistake costs a large but finite
# loss instead of infinity (the same convention as scikit-learn, at float64 precision).
LOG_LOSS_EPS = 1e-15
THRESHOLD = 0.5


def _as_arrays(y_true: Sequence | np.ndarray, p: Sequence | np.ndarray) -> tuple:
    y = np.asarray(y_true, dtype=np.float64).ravel()
    q = np.asarray(p, dtype=np.float64).ravel()
    if y.shape != q.shape:
        raise ValueError(f"y_true has {y.size} rows but p has {q.size}")
    if y.size == 0:
        raise ValueError("cannot compute metrics on zero rows")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("y_true must hold only 0 and 1")
    if not np.isfinite(q).all() or (q < 0).any() or (q > 1).any():
        raise ValueError("p must hold probabilities in [0, 1] (no NaN)")
    return y, q


def roc_auc(y_true: Sequence | np.ndarray, p: Sequence | np.ndarray) -> float | None:
    """Area under the ROC curve; None when only one class is present.

    Computed as the Mann-Whitney statistic with average ranks, so tied scores count one half,
    exactly as ``sklearn.metrics.roc_auc_score`` does.
    """
    from scipy.stats import rankdata

    y, q = _as_arrays(y_true, p)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = rankdata(q)  # average ranks for ties
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def log_loss(y_true: Sequence | np.ndarray, p: Sequence | np.ndarray) -> float:
    """Mean binary cross-entropy (natural log), probabilities clipped to [eps, 1 - eps]."""
    y, q = _as_arrays(y_true, p)
    q = np.clip(q, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
    return float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)))


def f1_positive(y_true: Sequence | np.ndarray, p: Sequence | np.ndarray) -> float:
    """F1 of the positive class at ``p >= 0.5``; 0.0 when there is no true or predicted positive."""
    y, q = _as_arrays(y_true, p)
    pred = q >= THRESHOLD
    tp = float(np.sum(pred & (y == 1)))
    fp = float(np.sum(pred & (y == 0)))
    fn = float(np.sum(~pred & (y == 1)))
    denom = 2 * tp + fp + fn
    return 0.0 if denom == 0 else 2 * tp / denom


def binary_metrics(y_true: Sequence | np.ndarray, p: Sequence | np.ndarray) -> dict:
    """Holdout metrics of a binary classifier that outputs P(label = 1).

    Returns ``accuracy`` (at threshold 0.5, ``p >= 0.5`` predicts 1), ``roc_auc`` (None with a
    single class), ``log_loss``, ``f1_skip`` (F1 of the positive class, the skip),
    ``positive_rate`` (share of true positives in ``y_true``: the natural class balance the
    other numbers should be read against) and ``n`` (rows).
    """
    y, q = _as_arrays(y_true, p)
    return {
        "accuracy": float(np.mean((q >= THRESHOLD) == (y == 1))),
        "roc_auc": roc_auc(y, q),
        "log_loss": log_loss(y, q),
        "f1_skip": f1_positive(y, q),
        "positive_rate": float(y.mean()),
        "n": int(y.size),
    }
