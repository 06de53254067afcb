"""Pictures for people: a model run's ROC curves and calibration, as a PNG in the lake."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd


def holdout_figure_png(holdout: pd.DataFrame, title: str, label: str = "label") -> bytes:
    """ROC curves and a reliability diagram for every ``p_skip_<model>`` column of a holdout."""
    import matplotlib

    matplotlib.use("Agg")  # no display on workers and pods
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_auc_score, roc_curve

    y = holdout[label].to_numpy()
    models = [c for c in holdout.columns if c.startswith("p_skip_")]
    fig, (roc_ax, cal_ax) = plt.subplots(1, 2, figsize=(11, 4.8))
    for col in models:
        p = holdout[col].to_numpy()
        name = col.removeprefix("p_skip_")
        if len(np.unique(y)) == 2:
            fpr, tpr, _ = roc_curve(y, p)
            roc_ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(y, p):.3f})")
        bins = np.clip((p * 10).astype(int), 0, 9)
        frame = pd.DataFrame({"bin": bins, "p": p, "y": y}).groupby("bin").mean()
        cal_ax.plot(frame["p"], frame["y"], marker="o", label=name)
    roc_ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    roc_ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC, holdout")
    cal_ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    cal_ax.set(
        xlabel="predicted skip probability",
        ylabel="observed skip rate",
        title="calibration, holdout (10 bins)",
        xlim=(0, 1),
        ylim=(0, 1),
    )
    roc_ax.legend(fontsize=8, loc="lower right")
    cal_ax.legend(fontsize=8, loc="upper left")
    fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()
