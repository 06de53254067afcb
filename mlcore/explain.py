"""Which features carry a binary model, and how well its probabilities are calibrated.

Both on the run's evaluation rows (the time-ordered holdout), so that they describe what the
gate judged:

- :func:`feature_importance`: permutation importance (scikit-learn's), the drop in ROC-AUC when
  one feature's column is shuffled, averaged over a few shuffles. It works for any model that
  maps a float32 matrix to probabilities (Keras, scikit-learn, a constant), needs no refit,
  and measures what the model uses on new rows, not what it memorised.
- :func:`calibration`: a reliability table (predicted vs observed skip rate per quantile bin)
  and the expected calibration error; a cache plan that reads ``p_skip`` as a probability
  needs it small.
- :func:`auc_interval`: a bootstrap interval of ROC-AUC, and of its difference to a reference
  model on the same resampled rows (paired): on a few thousand holdout rows, two models 0.005
  apart are often the same model, and the interval says when.

:func:`report_png` draws both; the trainer keeps the JSON and the PNG next to the manifest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from mlcore.plots import _note, _png, _pyplot

# Permutation importance costs one prediction of the rows per feature and shuffle: bounded.
MAX_ROWS = 10_000


class _Predictor:
    """The estimator interface scikit-learn's permutation_importance needs: nothing but fit."""

    def __init__(self, predict: Callable[[np.ndarray], np.ndarray]) -> None:
        self.predict = predict

    def fit(self, x, y):  # pragma: no cover - never called: the model is fitted already
        return self


def feature_importance(
    predict: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    names: Sequence[str],
    *,
    repeats: int = 2,
    seed: int = 0,
    max_rows: int = MAX_ROWS,
) -> list[dict]:
    """Drop in ROC-AUC when each feature is shuffled, largest first.

    ``predict`` maps ``x`` (rows × features, float32) to P(label = 1). At most ``max_rows``
    rows (a seeded sample) are used. Each entry: feature, drop (mean over ``repeats``
    shuffles), std. Empty when ``y`` holds one class (ROC-AUC is undefined).
    """
    from sklearn.inspection import permutation_importance
    from sklearn.metrics import roc_auc_score

    if len(np.unique(y)) < 2:
        return []
    if len(y) > max_rows:
        keep = np.sort(np.random.default_rng(seed).choice(len(y), max_rows, replace=False))
        x, y = x[keep], y[keep]

    def auc(estimator, x_, y_):
        return roc_auc_score(y_, estimator.predict(np.asarray(x_, dtype=np.float32)))

    result = permutation_importance(
        _Predictor(predict), x, y, scoring=auc, n_repeats=repeats, random_state=seed
    )
    rows = [
        {"feature": name, "drop": float(mean), "std": float(std)}
        for name, mean, std in zip(
            names, result.importances_mean, result.importances_std, strict=True
        )
    ]
    return sorted(rows, key=lambda r: r["drop"], reverse=True)


def calibration(y: np.ndarray, p: np.ndarray, *, bins: int = 10) -> dict:
    """Reliability per quantile bin of ``p`` and the expected calibration error (ECE).

    ``bins``: (rows, mean predicted, observed rate) per bin of about equal size; ``ece``: the
    row-weighted mean of |observed - predicted| over the bins.
    """
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    # Inner cut points only: tied scores (a model that says 0.01 or 0.99) make fewer, not
    # merged, bins; a constant score is one bin.
    cuts = np.unique(np.quantile(p, np.linspace(0, 1, bins + 1)[1:-1]))
    which = np.searchsorted(cuts, p, side="right")
    table = []
    for b in np.unique(which):
        in_bin = which == b
        table.append(
            {
                "rows": int(in_bin.sum()),
                "predicted": float(p[in_bin].mean()),
                "observed": float(y[in_bin].mean()),
            }
        )
    ece = sum(r["rows"] * abs(r["observed"] - r["predicted"]) for r in table) / max(len(y), 1)
    return {"bins": table, "ece": float(ece)}


def auc_interval(
    y: np.ndarray,
    p: np.ndarray,
    reference: np.ndarray | None = None,
    *,
    level: float = 0.95,
    resamples: int = 500,
    seed: int = 0,
) -> dict | None:
    """ROC-AUC of ``p`` with a percentile bootstrap interval; paired with ``reference``.

    Rows are resampled with replacement ``resamples`` times (seeded); each resample scores
    ``p`` and, on the same rows, ``reference``, so ``minus_reference`` is the interval of the
    difference (positive: ``p`` ranks better). Returns ``{"roc_auc", "low", "high",
    "minus_reference": {"value", "low", "high"} (only with a reference), "level",
    "resamples"}``; None when ``y`` holds one class.
    """
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y)
    if len(np.unique(y)) < 2:
        return None
    p = np.asarray(p, dtype=np.float64)
    ref = None if reference is None else np.asarray(reference, dtype=np.float64)
    rng = np.random.default_rng(seed)
    own, diff = [], []
    for _ in range(resamples):
        rows = rng.integers(0, len(y), len(y))
        if y[rows].min() == y[rows].max():  # one class drawn: no AUC on this resample
            continue
        own.append(roc_auc_score(y[rows], p[rows]))
        if ref is not None:
            diff.append(own[-1] - roc_auc_score(y[rows], ref[rows]))
    tails = [100 * (1 - level) / 2, 100 * (1 + level) / 2]
    low, high = np.percentile(own, tails)
    out = {
        "roc_auc": float(roc_auc_score(y, p)),
        "low": float(low),
        "high": float(high),
        "level": level,
        "resamples": len(own),
    }
    if ref is not None:
        d_low, d_high = np.percentile(diff, tails)
        value = out["roc_auc"] - float(roc_auc_score(y, ref))
        out["minus_reference"] = {"value": value, "low": float(d_low), "high": float(d_high)}
    return out


def describe_interval(interval: dict | None, reference: str = "the reference") -> str:
    """One line for :func:`auc_interval`'s result, e.g. for a log or a report."""
    if interval is None:
        return "ROC-AUC undefined (one class)"
    pct = f"{100 * interval['level']:.0f}%"
    low, high = interval["low"], interval["high"]
    line = f"ROC-AUC {interval['roc_auc']:.3f} ({pct}: {low:.3f} to {high:.3f})"
    diff = interval.get("minus_reference")
    if diff:
        line += (
            f"; minus {reference} {diff['value']:+.3f} "
            f"({pct}: {diff['low']:+.3f} to {diff['high']:+.3f})"
        )
    return line


def report_png(report: dict, *, title: str, top: int = 15) -> bytes:
    """Permutation importance (the first model's top features) and reliability, one PNG."""
    plt = _pyplot()
    fig, (imp_ax, cal_ax) = plt.subplots(1, 2, figsize=(12, 5.2))
    models = report.get("models", {})
    first = next(iter(models), None)
    rows = models[first]["importance"][:top] if first else []
    if rows:
        names = [r["feature"] for r in rows][::-1]
        imp_ax.barh(names, [r["drop"] for r in rows][::-1], xerr=[r["std"] for r in rows][::-1])
        imp_ax.set_xlabel("ROC-AUC drop when shuffled")
        imp_ax.set_title(f"what carries {first}")
    else:
        _note(imp_ax, "importance undefined (one class)")
    cal_ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    for name, entry in models.items():
        table = entry["calibration"]["bins"]
        cal_ax.plot(
            [b["predicted"] for b in table],
            [b["observed"] for b in table],
            marker="o",
            label=f"{name} (ECE {entry['calibration']['ece']:.3f})",
        )
    cal_ax.set_xlabel("predicted P(skip)")
    cal_ax.set_ylabel("observed skip rate")
    cal_ax.set_title("calibration (quantile bins)")
    if models:
        cal_ax.legend(loc="upper left", fontsize=8)
    return _png(fig, plt, title)
