"""Evaluation per pipeline kind: which metrics a kind reports, how they are computed from the
run's evaluation rows, and the figure ops look at.

Every run keeps its evaluation rows in the lake (``RunManifest.evaluation``: the holdout or
backtest rows with every model's output), so :func:`recompute` can rebuild the manifest's
metrics from them without trusting the trainer that reported them; the conformance tests do.

=========  ========================================  ==========================================
kind       metrics (gate metric first)               figure
=========  ========================================  ==========================================
binary     roc_auc, accuracy, log_loss, f1           ROC curves + calibration
ranking    map@k, recall@k, precision@k, ndcg@k      MAP@k and recall@k against k
recall     recall@k, ndcg@k, map@k, hit_rate@k, auc  MAP@k and recall@k against k
forecast   mae, rmse, mase, r2, coverage             actual vs forecast with the interval band
=========  ========================================  ==========================================
"""

from __future__ import annotations

import io
import logging

import pandas as pd

from mlcore.lake import Lake, models_prefix
from mlcore.manifest import Evaluation, RunManifest

log = logging.getLogger(__name__)

FIGURE_FILE = "evaluation.png"
RANKING_KS = (1, 3, 6, 12, 24, 50, 100)


def metric_names(kind: str, k: int | None = None) -> tuple[str, ...]:
    """The metrics a kind reports, in the order tables show them (the gate's default first)."""
    if kind == "binary":
        return ("roc_auc", "accuracy", "log_loss", "f1")
    if kind == "ranking":
        return tuple(f"{m}@{k or 12}" for m in ("map", "recall", "precision", "ndcg"))
    if kind == "recall":
        return (*(f"{m}@{k or 50}" for m in ("recall", "ndcg", "map", "hit_rate")), "auc")
    if kind == "forecast":
        return ("mae", "rmse", "mase", "r2", "coverage")
    raise ValueError(f"unknown pipeline kind {kind!r}")


def _read(lake: Lake, key: str) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(lake.read_bytes(key)))


def compute(kind: str, evaluation: Evaluation, rows: pd.DataFrame, truth=None, pairs=None) -> dict:
    """{model: metrics} from a run's evaluation rows, as the kind defines them."""
    from mlcore import metrics

    c = evaluation.columns
    if kind == "binary":
        y = rows[c.get("label", "label")]
        return {m: metrics.binary_metrics(y, rows[col]) for m, col in evaluation.scores.items()}
    if kind in ("ranking", "recall"):
        by = c.get("model", "model")
        out = {
            str(m): metrics.ranking_metrics(
                part,
                truth,
                k=evaluation.k or 12,
                ks=evaluation.ks,
                query=c["query"],
                item=c["item"],
                rank=c.get("rank", "rank"),
            )
            for m, part in rows.groupby(by, sort=True)
        }
        if pairs is not None:
            for m, column in evaluation.scores.items():
                found = metrics.pair_metrics(
                    pairs[c.get("pair", "pair")],
                    pairs[column],
                    rating=pairs[c.get("rating", "rating")] if m in evaluation.ratings else None,
                    predicted=pairs[evaluation.ratings[m]] if m in evaluation.ratings else None,
                )
                out.setdefault(m, {}).update(found)
        return out
    if kind == "forecast":
        by = c.get("model", "model")
        out = {}
        for m, part in rows.groupby(by, sort=True):
            out[str(m)] = metrics.forecast_metrics(
                part[c.get("actual", "actual")],
                part[c.get("forecast", "forecast")],
                lower=part[c["lower"]] if c.get("lower") else None,
                upper=part[c["upper"]] if c.get("upper") else None,
                scale=part[c["scale"]] if c.get("scale") else None,
            )
        return out
    raise ValueError(f"unknown pipeline kind {kind!r}")


def recompute(lake: Lake, manifest: RunManifest) -> dict:
    """{model: metrics} recomputed from the evaluation rows the run left in the lake."""
    ev = manifest.evaluation
    truth = _read(lake, ev.truth_key) if ev.truth_key else None
    pairs = _read(lake, ev.pairs_key) if ev.pairs_key else None
    return compute(manifest.kind, ev, _read(lake, ev.key), truth, pairs)


def figure_png(lake: Lake, manifest: RunManifest) -> bytes:
    """The run's evaluation figure for its kind (the new models and baselines, no champions)."""
    from mlcore import plots

    ev, c = manifest.evaluation, manifest.evaluation.columns
    rows = _read(lake, ev.key)
    title = f"{manifest.pipeline} {manifest.version} ({len(rows):,} evaluation rows)"
    if manifest.kind == "binary":
        scores = {m: col for m, col in ev.scores.items() if not m.startswith("champion_")}
        return plots.binary_figure_png(
            rows, label=c.get("label", "label"), scores=scores, title=title
        )
    if manifest.kind in ("ranking", "recall"):
        from mlcore.metrics import ranking_curves

        curves = ranking_curves(
            rows,
            _read(lake, ev.truth_key),
            query=c["query"],
            item=c["item"],
            rank=c.get("rank", "rank"),
            ks=RANKING_KS,
            by_model=c.get("model", "model"),
        )
        return plots.ranking_figure_png(curves, title=title)
    if manifest.kind == "forecast":
        return plots.forecast_figure_png(
            rows,
            series=c["series"],
            time=c["time"],
            actual=c.get("actual", "actual"),
            forecast=c.get("forecast", "forecast"),
            lower=c.get("lower"),
            upper=c.get("upper"),
            model=c.get("model", "model"),
            title=title,
        )
    raise ValueError(f"unknown pipeline kind {manifest.kind!r}")


def write_figure(lake: Lake, manifest: RunManifest) -> str:
    """Draw the run's figure next to its manifest; return its lake key."""
    key = f"{models_prefix(manifest.pipeline, manifest.version)}/{FIGURE_FILE}"
    lake.write_bytes(key, figure_png(lake, manifest))
    return key
