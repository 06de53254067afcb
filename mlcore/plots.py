"""Pictures for people, one PNG per run in the lake: one figure per pipeline kind.

- ``binary_figure_png``: ROC curves and a reliability diagram of each model's scores.
- ``ranking_figure_png``: MAP@k and recall@k against k, one line per model
  (``mlcore.metrics.ranking_curves`` computes the numbers; the recall kind draws the same).
- ``forecast_figure_png``: actual vs forecast with its interval for a few series, and the
  absolute error over time.

matplotlib is imported inside the functions, with the Agg backend (no display on workers and
pods), so importing this module costs nothing. Each function returns the PNG's bytes; degenerate
input (one class, one series, no bounds, no rows) gives a figure that says so, not an exception,
because a picture must never be the reason a run fails.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display on workers and pods
    import matplotlib.pyplot as plt

    return plt


def _png(fig, plt, title: str) -> bytes:
    fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def _note(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="grey")


# ---- binary -----------------------------------------------------------------------------------
def binary_figure_png(
    frame: pd.DataFrame, *, label: str, scores: dict[str, str], title: str
) -> bytes:
    """ROC curves and a reliability diagram (10 bins) for each model's P(label = 1).

    ``scores`` maps a model's name to the column of ``frame`` that holds its probabilities.
    With a single class in ``label`` the ROC panel says "undefined" instead of drawing curves
    (the calibration panel still shows how far the scores are from the one observed rate).
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    plt = _pyplot()
    y = frame[label].to_numpy()
    two_classes = len(np.unique(y)) == 2
    fig, (roc_ax, cal_ax) = plt.subplots(1, 2, figsize=(11, 4.8))
    for name, col in scores.items():
        p = frame[col].to_numpy(dtype=np.float64)
        if two_classes:
            fpr, tpr, _ = roc_curve(y, p)
            roc_ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(y, p):.3f})")
        bins = np.clip((p * 10).astype(int), 0, 9)
        calib = pd.DataFrame({"bin": bins, "p": p, "y": y}).groupby("bin").mean()
        cal_ax.plot(calib["p"], calib["y"], marker="o", label=name)
    if not two_classes:
        _note(roc_ax, "single class in the holdout: ROC undefined")
    roc_ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    roc_ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC, holdout")
    cal_ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    cal_ax.set(
        xlabel="predicted probability",
        ylabel="observed positive rate",
        title="calibration, holdout (10 bins)",
        xlim=(0, 1),
        ylim=(0, 1),
    )
    if two_classes and scores:
        roc_ax.legend(fontsize=8, loc="lower right")
    if scores:
        cal_ax.legend(fontsize=8, loc="upper left")
    return _png(fig, plt, title)


# ---- ranking and recall -----------------------------------------------------------------------
def ranking_figure_png(curves: dict[str, dict[int, dict[str, float]]], *, title: str) -> bytes:
    """MAP@k and recall@k against k, one line per model.

    ``curves`` is ``{model: {k: {"map": …, "recall": …, …}}}``, as
    ``mlcore.metrics.ranking_curves`` returns it; a model lacking a metric is left out of that
    panel.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    for ax, metric, shown in zip(axes, ("map", "recall"), ("MAP@k", "recall@k"), strict=True):
        drawn = False
        for name, by_k in curves.items():
            ks = sorted(k for k, values in by_k.items() if metric in values)
            if ks:
                ax.plot(ks, [by_k[k][metric] for k in ks], marker="o", label=name)
                drawn = True
        if drawn:
            ax.legend(fontsize=8, loc="upper left")
            ax.set_ylim(bottom=0)
        else:
            _note(ax, "no curves")
        ax.set(xlabel="k (list length)", ylabel=shown, title=f"{shown} vs k")
    return _png(fig, plt, title)


# ---- forecasts --------------------------------------------------------------------------------
def forecast_figure_png(
    frame: pd.DataFrame,
    *,
    series: str,
    time: str,
    actual: str,
    forecast: str,
    lower: str | None = None,
    upper: str | None = None,
    model: str | None = None,
    title: str,
    max_series: int = 4,
) -> bytes:
    """Actual vs forecast (with the interval band) for a few series, and the absolute error.

    ``frame`` has one row per series × time (× model, when ``model`` names a column that tells
    several models' forecasts apart). The series drawn are the ``max_series`` with the largest
    total actual (ties by name): for live rooms, the busiest ones, where errors cost the most.
    The last panel is the mean absolute error at each time over ALL series, per model, so it
    also shows whether the error grows along the forecast day.
    """
    plt = _pyplot()
    models = [None] if model is None else sorted(frame[model].unique(), key=str)
    totals = frame.drop_duplicates([series, time]).groupby(series)[actual].sum()
    shown = sorted(totals.items(), key=lambda kv: (-kv[1], str(kv[0])))[:max_series]
    n_panels = len(shown) + 1
    fig, axes = plt.subplots(n_panels, 1, figsize=(11, 2.6 * n_panels + 0.6), squeeze=False)
    axes = axes[:, 0]
    for ax, (name, _) in zip(axes, shown, strict=False):
        rows = frame[frame[series] == name].sort_values(time)
        truth = rows.drop_duplicates(time)
        ax.plot(truth[time], truth[actual], color="black", linewidth=1.2, label="actual")
        for m in models:
            part = rows if m is None else rows[rows[model] == m]
            tag = forecast if m is None else str(m)
            (line,) = ax.plot(part[time], part[forecast], linewidth=1.0, label=tag)
            if lower is not None and upper is not None:
                ax.fill_between(
                    part[time], part[lower], part[upper], color=line.get_color(), alpha=0.2
                )
        ax.set(title=f"{series} {name}", ylabel=actual)
        ax.legend(fontsize=8, loc="upper left")
    err_ax = axes[-1]
    if len(frame):
        for m in models:
            part = frame if m is None else frame[frame[model] == m]
            err = (part[actual] - part[forecast]).abs().groupby(part[time]).mean().sort_index()
            tag = forecast if m is None else str(m)
            err_ax.plot(err.index, err.to_numpy(), linewidth=1.0, label=tag)
        err_ax.legend(fontsize=8, loc="upper left")
    else:
        _note(err_ax, "no rows")
    n_all = frame[series].nunique()
    err_ax.set(title=f"mean absolute error over all {n_all} series", xlabel=time, ylabel="|error|")
    return _png(fig, plt, title)


def series_forecast_png(
    history: pd.DataFrame,
    backtest: pd.DataFrame,
    future: pd.DataFrame,
    *,
    title: str,
    ylabel: str = "y",
) -> bytes:
    """One series: its recent actuals, the backtest (actual against forecast, with the
    interval) and the forecast ahead with its interval, on one time axis.

    ``history``: ``ts``, ``y``; ``backtest``: ``ts``, ``y``, ``yhat``, ``lower``, ``upper``;
    ``future``: ``ts``, ``yhat``, ``lower``, ``upper``. Any of them may be empty.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(12, 3.6))
    drawn = False
    if len(history):
        ax.plot(history["ts"], history["y"], color="grey", linewidth=0.8, label="actual")
        drawn = True
    if len(backtest):
        ax.plot(
            backtest["ts"], backtest["y"], color="black", linewidth=0.8, label="actual (backtest)"
        )
        ax.plot(
            backtest["ts"],
            backtest["yhat"],
            color="tab:blue",
            linewidth=0.9,
            label="backtest forecast",
        )
        ax.fill_between(
            backtest["ts"], backtest["lower"], backtest["upper"], color="tab:blue", alpha=0.2
        )
        drawn = True
    if len(future):
        ax.plot(future["ts"], future["yhat"], color="tab:orange", linewidth=1.1, label="forecast")
        ax.fill_between(
            future["ts"],
            future["lower"],
            future["upper"],
            color="tab:orange",
            alpha=0.25,
            label="80% interval",
        )
        ax.axvline(future["ts"].min(), color="tab:orange", linestyle=":", linewidth=1)
        drawn = True
    if drawn:
        ax.legend(fontsize=8, loc="upper left", ncol=5)
    else:
        _note(ax, "no rows")
    ax.set(ylabel=ylabel)
    return _png(fig, plt, title)
