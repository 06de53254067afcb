"""Evaluation metrics for every pipeline kind: binary, ranking / recall, and forecast.

- ``binary_metrics``: a classifier's P(label = 1) on the holdout's natural class balance.
- ``ranking_metrics`` (and ``ranking_curves`` for several cutoffs and models): top-k lists per
  query against the items that turned out relevant (MAP@k as the Kaggle H&M competition scores
  it, recall@k, precision@k, NDCG@k, hit rate, catalogue coverage). The recall kind (u2i / i2i
  tables) is scored by the same function: a query is a user or a seed item.
- ``forecast_metrics``: point forecasts and their interval against what happened (MAE, RMSE,
  MASE, R², interval coverage against its nominal level).

Every value is a plain Python float or int (or None), so a metrics dict goes straight into a
manifest or a JSON column. A metric that is undefined on the rows given (ROC-AUC when the holdout
holds one class, R² on a constant actual) is None rather than an exception: a quiet night with no
skips must not crash the run, and the gate treats None as "cannot be compared". Input that cannot
be scored at all (no rows, NaN, mismatched shapes) is a ValueError that says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

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
    single class), ``log_loss``, ``f1`` (F1 of the positive class: a skip, a purchase),
    ``positive_rate`` (share of true positives in ``y_true``: the natural class balance the
    other numbers should be read against) and ``n`` (rows).
    """
    y, q = _as_arrays(y_true, p)
    return {
        "accuracy": float(np.mean((q >= THRESHOLD) == (y == 1))),
        "roc_auc": roc_auc(y, q),
        "log_loss": log_loss(y, q),
        "f1": f1_positive(y, q),
        "positive_rate": float(y.mean()),
        "n": int(y.size),
    }


# ---- ranking and recall ---------------------------------------------------------------------
# The cutoffs a ranking run reports as curves (metric vs k): 12 is the H&M list length.
RANKING_CURVE_KS = (1, 3, 6, 12)


def average_precision_at_k(actual: Sequence, predicted: Sequence, k: int) -> float:
    """AP@k of one ranked list, as the Kaggle H&M competition (and ``ml_metrics.apk``) defines it.

    The sum, over the first ``k`` predictions that hit a relevant item, of precision@i (i the
    1-based position), divided by ``min(len(actual), k)``: recommending 12 items to a customer
    who bought 2 can still score 1.0. An item predicted twice counts once (the first time).
    ``actual`` is a set of relevant items (duplicates in it count once, as in ``ranking_metrics``);
    an empty ``actual`` scores 0.0. This is the reference, one list at a time, that the
    vectorised ``ranking_metrics`` is tested against.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    relevant = set(actual)
    if not relevant:
        return 0.0
    hits, score, seen = 0, 0.0, set()
    for i, p in enumerate(list(predicted)[:k]):
        if p in relevant and p not in seen:
            hits += 1
            score += hits / (i + 1)
        seen.add(p)
    return score / min(len(relevant), k)


class _Truth(NamedTuple):
    queries: pd.Index  # distinct queries with truth, position = query code
    items: pd.Index  # distinct relevant items, position = item code
    keys: np.ndarray  # sorted unique query_code * n_items + item_code of every relevant pair
    n_relevant: np.ndarray  # relevant items per query code (always >= 1)


def _check_columns(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks columns {', '.join(missing)}")


def _index_truth(truth: pd.DataFrame, query: str, item: str) -> _Truth:
    _check_columns(truth, (query, item), "truth")
    if len(truth) == 0:
        raise ValueError("truth has no rows: there is no query to evaluate")
    if truth[query].isna().any() or truth[item].isna().any():
        raise ValueError(f"truth has null values in {query} or {item}")
    q_codes, queries = pd.factorize(truth[query])
    i_codes, items = pd.factorize(truth[item])
    # One int64 key per (query, item) pair turns the hit test into a sorted-array lookup.
    keys = np.unique(q_codes.astype(np.int64) * len(items) + i_codes)
    n_relevant = np.bincount(keys // len(items), minlength=len(queries))
    return _Truth(pd.Index(queries), pd.Index(items), keys, n_relevant)


def _ranks(predicted: pd.DataFrame, rank: str) -> np.ndarray:
    try:
        r = predicted[rank].to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"predicted[{rank!r}] must hold numbers (1-based ranks)") from exc
    if r.size and (not np.isfinite(r).all() or (r < 1).any() or (r != np.floor(r)).any()):
        raise ValueError(f"predicted[{rank!r}] must hold whole numbers >= 1 (1-based ranks)")
    return r.astype(np.int64)


def _ranking_scores(
    predicted: pd.DataFrame,
    truth: _Truth,
    *,
    query: str,
    item: str,
    rank: str,
    cutoffs: Sequence[int],
) -> tuple[dict[int, dict[str, float]], int]:
    """Per cutoff, the mean over truth queries of each metric; and how many had no prediction.

    Vectorised: a lookup of every prediction's (query, item) key in the sorted truth keys, then
    ``np.bincount`` per query over the hit rows only, which are few (a few % of predictions).
    """
    _check_columns(predicted, (query, item, rank), "predicted")
    max_k = max(cutoffs)
    r = _ranks(predicted, rank)
    q = truth.queries.get_indexer(predicted[query])  # -1: a query without truth, not evaluated
    keep = (q >= 0) & (r <= max_k)
    q, r = q[keep], r[keep]
    if len(q) and pd.Series(q * (max_k + 1) + r).duplicated().any():
        raise ValueError(f"predicted has two items at the same {rank} for one {query}")
    n_q = len(truth.queries)
    has_prediction = np.zeros(n_q, dtype=bool)
    has_prediction[q] = True

    i = truth.items.get_indexer(predicted[item].to_numpy()[keep])  # -1: never relevant
    key = q * len(truth.items) + i
    pos = np.minimum(np.searchsorted(truth.keys, key), len(truth.keys) - 1)
    hit = (i >= 0) & (truth.keys[pos] == key)
    hq, hr, hk = q[hit], r[hit], key[hit]
    order = np.lexsort((hr, hq))  # by query, then rank
    hq, hr, hk = hq[order], hr[order], hk[order]
    first = ~pd.Series(hk).duplicated().to_numpy()  # an item listed twice hits once, at its best
    hq, hr = hq[first], hr[first]
    # The i-th hit of a query (1-based), at rank hr: precision at that rank is i / hr.
    nth_hit = np.arange(len(hq)) - np.searchsorted(hq, hq, side="left") + 1
    precision_at_hit = nth_hit / hr
    gain = 1.0 / np.log2(hr + 1.0)

    n_rel = truth.n_relevant
    scores: dict[int, dict[str, float]] = {}
    for c in sorted(set(cutoffs)):
        sel = hr <= c
        hits = np.bincount(hq[sel], minlength=n_q)
        ap = np.bincount(hq[sel], weights=precision_at_hit[sel], minlength=n_q)
        dcg = np.bincount(hq[sel], weights=gain[sel], minlength=n_q)
        ideal = np.cumsum(1.0 / np.log2(np.arange(2, c + 2)))  # IDCG of 1..c relevant items
        capped = np.minimum(n_rel, c)
        scores[c] = {
            "map": float(np.mean(ap / capped)),
            "recall": float(np.mean(hits / n_rel)),
            "precision": float(np.mean(hits / c)),
            "ndcg": float(np.mean(dcg / ideal[capped - 1])),
            "hit_rate": float(np.mean(hits > 0)),
        }
    return scores, int(n_q - has_prediction.sum())


def ranking_metrics(
    predicted: pd.DataFrame,
    truth: pd.DataFrame,
    *,
    k: int,
    query: str,
    item: str,
    rank: str = "rank",
    ks: Sequence[int] = (),
    catalog_size: int | None = None,
) -> dict:
    """Top-k metrics of ranked recommendations (or recall lists) against the relevant items.

    ``predicted`` has one row per query × recommended item with its 1-based ``rank``; ``truth``
    one row per query × relevant item (duplicates count once). Queries are evaluated when they
    have truth: a query in ``truth`` with no prediction scores 0 on every metric (the Kaggle H&M
    score works so: a customer left out of the submission still counts), and predictions for
    queries without truth are ignored (except by ``catalog_coverage``). A query whose type differs
    between the frames (int vs str) matches nothing: ``n_queries_without_predictions`` then
    equals ``n_queries``, which is the number to look at when a score is suspiciously 0.

    For ``k`` and every cutoff in ``ks`` (``c``), with ``hits`` the relevant items in the top c
    and ``n_rel`` the query's relevant items, averaged over the queries:

    - ``map@c``: AP@c as in ``average_precision_at_k`` (denominator ``min(n_rel, c)``),
    - ``recall@c``: ``hits / n_rel``, ``precision@c``: ``hits / c`` (c even if fewer listed),
    - ``ndcg@c``: binary-gain DCG over the ideal DCG of ``min(n_rel, c)`` hits,
    - ``hit_rate@c``: the share of queries with at least one hit;

    and ``catalog_coverage`` (distinct items in anyone's top k, over ``catalog_size`` or, without
    it, over the distinct items seen in ``predicted`` and ``truth``), ``n_queries`` (with truth),
    ``n_queries_without_predictions``. An item listed twice for a query hits once, at its best
    rank; two items at one rank are an error. Vectorised: about 1M queries × 12 in seconds.
    """
    cutoffs = sorted({k, *ks})
    if cutoffs[0] < 1:
        raise ValueError(f"cutoffs must be at least 1, got {cutoffs[0]}")
    index = _index_truth(truth, query, item)
    scores, n_without = _ranking_scores(
        predicted, index, query=query, item=item, rank=rank, cutoffs=cutoffs
    )
    out: dict = {}
    for c in cutoffs:
        out.update({f"{name}@{c}": value for name, value in scores[c].items()})
    out["catalog_coverage"] = _catalog_coverage(predicted, index, item, rank, k, catalog_size)
    out["n_queries"] = len(index.queries)
    out["n_queries_without_predictions"] = n_without
    return out


def _catalog_coverage(
    predicted: pd.DataFrame, truth: _Truth, item: str, rank: str, k: int, size: int | None
) -> float:
    recommended = predicted.loc[_ranks(predicted, rank) <= k, item].nunique()
    if size is None:
        seen = pd.unique(predicted[item].dropna().to_numpy())
        size = len(truth.items) + int((truth.items.get_indexer(seen) < 0).sum())
    elif size < recommended:
        raise ValueError(
            f"catalog_size {size} is smaller than the {recommended} distinct items recommended"
        )
    return float(recommended / size) if size else 0.0


def ranking_curves(
    predicted: pd.DataFrame,
    truth: pd.DataFrame,
    *,
    query: str,
    item: str,
    rank: str = "rank",
    ks: Sequence[int] = RANKING_CURVE_KS,
    by_model: str | None = "model",
) -> dict[str, dict[int, dict[str, float]]]:
    """Metric vs k per model: ``{model: {k: {"map", "recall", "precision", "ndcg", "hit_rate"}}}``.

    ``predicted`` holds every model's lists, told apart by the ``by_model`` column (``None``: a
    single model, named ``"model"``); all are scored against the same ``truth`` exactly as
    ``ranking_metrics`` scores them. The result feeds ``mlcore.plots.ranking_figure_png``.
    """
    index = _index_truth(truth, query, item)
    if by_model is None:
        groups = [("model", predicted)]
    else:
        _check_columns(predicted, (by_model,), "predicted")
        groups = [(str(name), part) for name, part in predicted.groupby(by_model, sort=True)]
    return {
        name: _ranking_scores(part, index, query=query, item=item, rank=rank, cutoffs=ks)[0]
        for name, part in groups
    }


# ---- forecasts --------------------------------------------------------------------------------
PAIR_KINDS = ("positive", "negative", "unrated")


def score_auc(positive: np.ndarray, negative: np.ndarray) -> float | None:
    """P(a positive's score > a negative's), ties counting one half (Mann-Whitney, any real
    scores: a dot product, not only a probability); None when either side is empty."""
    from scipy.stats import rankdata

    pos = _finite(positive, "positive scores")
    neg = _finite(negative, "negative scores")
    if pos.size == 0 or neg.size == 0:
        return None
    ranks = rankdata(np.concatenate([pos, neg]))
    return float((ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2) / (pos.size * neg.size))


def pair_metrics(
    pair: Sequence | np.ndarray,
    score: Sequence | np.ndarray,
    *,
    rating: Sequence | np.ndarray | None = None,
    predicted: Sequence | np.ndarray | None = None,
) -> dict:
    """AUC and RMSE of a recall model on scored (user, item) pairs of its holdout.

    ``pair`` says what each row is: ``positive`` (a held-out item the user liked),
    ``negative`` (a held-out item the user rated below the bar), ``unrated`` (a random item
    the user never rated). ``auc``: positives against negatives (the protocol of the MovieLens
    LFM project: can the model tell a liked film from a disliked one the user also chose to
    watch?); ``auc_unrated``: positives against unrated items (can it find what the user
    likes at all?). With ``rating`` (the held-out ratings, NaN on unrated rows) and
    ``predicted`` (a rating model's predictions), ``rmse`` over the rated rows too.
    """
    kinds = np.asarray(pair, dtype=object)
    s = np.asarray(score, dtype=np.float64)
    if kinds.shape != s.shape:
        raise ValueError(f"pair has {kinds.size} rows but score has {s.size}")
    unknown = set(pd.unique(kinds)) - set(PAIR_KINDS)
    if unknown:
        raise ValueError(f"pair kinds must be in {PAIR_KINDS}, got {sorted(map(str, unknown))}")
    pos = s[kinds == "positive"]
    out = {
        "auc": score_auc(pos, s[kinds == "negative"]),
        "auc_unrated": score_auc(pos, s[kinds == "unrated"]),
    }
    if predicted is not None:
        if rating is None:
            raise ValueError("rmse needs the held-out ratings beside the predictions")
        rated = kinds != "unrated"
        truth = _finite(np.asarray(rating, dtype=np.float64)[rated], "ratings")
        guess = _finite(np.asarray(predicted, dtype=np.float64)[rated], "predicted ratings")
        out["rmse"] = float(np.sqrt(np.mean((truth - guess) ** 2))) if truth.size else None
    return out


def _finite(values, what: str, shape: tuple | None = None) -> np.ndarray:
    try:
        a = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must hold numbers") from exc
    if shape is not None and a.shape != shape:
        raise ValueError(f"{what} has shape {a.shape} but actual has {shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{what} holds {int((~np.isfinite(a)).sum())} NaN or infinite value(s)")
    return a


def seasonal_naive_scale(history: Sequence | np.ndarray, season: int) -> float:
    """Mean ``|y_t - y_(t - season)|`` over a series' history: the MASE denominator.

    The in-sample error of the seasonal-naive forecast ("same as one season ago"; ``season=1``
    is the plain naive forecast). A MASE below 1 beats that naive forecast's in-sample error.
    Returns 0.0 for a series that repeated itself exactly (``forecast_metrics`` then leaves its
    rows out of the MASE rather than divide by zero).
    """
    if season < 1:
        raise ValueError(f"season must be at least 1, got {season}")
    y = _finite(history, "history")
    if y.ndim != 1:
        raise ValueError(f"history must be one series (1-D), got shape {y.shape}")
    if y.size <= season:
        raise ValueError(f"history has {y.size} values: more than season={season} are needed")
    return float(np.mean(np.abs(y[season:] - y[:-season])))


def _smape(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Symmetric MAPE in percent (0..200); rows with actual = forecast = 0 count as 0 error."""
    denominator = np.abs(actual) + np.abs(forecast)
    ratio = np.divide(
        np.abs(actual - forecast),
        denominator,
        out=np.zeros_like(denominator),
        where=denominator > 0,
    )
    return float(200.0 * np.mean(ratio))


def forecast_metrics(
    actual: Sequence | np.ndarray,
    forecast: Sequence | np.ndarray,
    *,
    lower: Sequence | np.ndarray | None = None,
    upper: Sequence | np.ndarray | None = None,
    scale: float | Sequence | np.ndarray | None = None,
    nominal: float = 0.8,
) -> dict:
    """Accuracy of point forecasts and of their prediction interval, over every row given.

    ``actual`` and ``forecast`` have one shape (rows, or rows × horizon). Returns ``mae``,
    ``rmse``, ``r2`` (None when ``actual`` is constant: no variance to explain), ``smape`` (see
    below), ``mase`` (the mean of ``|error| / scale``), ``mase_n`` (the rows it averaged),
    ``coverage`` (share of actual values inside ``[lower, upper]``, bounds included),
    ``interval_width`` (mean ``upper - lower``), ``nominal_coverage`` (the level the interval
    claims, to read coverage against) and ``n``. The keys are the same every run; a number that
    cannot be computed is None.

    ``scale`` is each row's series' in-sample seasonal-naive MAE (``seasonal_naive_scale``), one
    value per row (or one for all). Scaling per series makes a busy room and a quiet one count
    alike. A row whose scale is 0 or not finite (a series flat over its history: no naive error
    to scale by) is left out of the MASE rather than dividing by zero; ``mase_n`` says how many
    rows remained, and ``mase`` is None when none did or when no scale is given.

    ``smape`` is the symmetric MAPE in percent, from 0 to 200: the mean over rows of
    ``200 · |actual - forecast| / (|actual| + |forecast|)``, where a row whose actual and
    forecast are both 0 counts as 0 error (a room offline and forecast offline is a perfect
    forecast, not a 0/0). A row with one side 0 and the other not costs the full 200, so on
    series with many zeros (offline minutes) it punishes a forecast of 0.3 against an actual 0
    as hard as one of 300: read it beside the MAE.
    """
    if not 0 < nominal < 1:
        raise ValueError(f"nominal must be in (0, 1), got {nominal}")
    a = _finite(actual, "actual")
    if a.size == 0:
        raise ValueError("cannot compute metrics on zero rows")
    f = _finite(forecast, "forecast", a.shape)
    err = a - f
    sst = float(np.sum((a - a.mean()) ** 2))
    out: dict = {
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mase": None,
        "mase_n": 0,
        "r2": None if sst == 0 else float(1 - np.sum(err**2) / sst),
        "smape": _smape(a, f),
        "coverage": None,
        "interval_width": None,
        "nominal_coverage": float(nominal),
        "n": int(a.size),
    }
    if scale is not None:
        s = np.asarray(scale, dtype=np.float64)
        try:
            s = np.broadcast_to(s, a.shape)
        except ValueError as exc:
            raise ValueError(f"scale has shape {s.shape} but actual has {a.shape}") from exc
        if (s < 0).any():
            raise ValueError("scale must not be negative (it is a mean absolute error)")
        usable = np.isfinite(s) & (s > 0)
        if usable.any():
            out["mase"] = float(np.mean(np.abs(err[usable]) / s[usable]))
            out["mase_n"] = int(usable.sum())
    if (lower is None) != (upper is None):
        raise ValueError("give both lower and upper bounds of the interval, or neither")
    if lower is not None:
        lo = _finite(lower, "lower", a.shape)
        hi = _finite(upper, "upper", a.shape)
        crossed = int((lo > hi).sum())
        if crossed:
            raise ValueError(f"lower is above upper on {crossed} row(s)")
        out["coverage"] = float(np.mean((a >= lo) & (a <= hi)))
        out["interval_width"] = float(np.mean(hi - lo))
    return out
