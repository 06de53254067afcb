"""Permutation importance and calibration (mlcore.explain) on cases whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from mlcore import explain


def test_the_feature_the_label_depends_on_carries_the_model_and_the_others_nothing():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 3)).astype(np.float32)
    y = (x[:, 1] + 0.3 * rng.normal(size=4000) > 0).astype(int)

    def predict(rows):  # a model that reads feature 1 only
        return 1 / (1 + np.exp(-3 * rows[:, 1]))

    ranked = explain.feature_importance(predict, x, y, ["a", "b", "c"], seed=1)
    assert [r["feature"] for r in ranked][0] == "b"
    assert ranked[0]["drop"] > 0.3
    assert all(abs(r["drop"]) < 1e-9 for r in ranked[1:])  # never read: shuffling changes nothing


def test_importance_is_bounded_to_a_sample_and_undefined_for_one_class():
    x = np.zeros((50, 2), dtype=np.float32)
    assert explain.feature_importance(lambda r: r[:, 0], x, np.ones(50), ["a", "b"]) == []
    seen = []

    def predict(rows):
        seen.append(len(rows))
        return rows[:, 0]

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 2)).astype(np.float32)
    explain.feature_importance(predict, x, (x[:, 0] > 0).astype(int), ["a", "b"], max_rows=100)
    assert set(seen) == {100}


def test_calibration_of_calibrated_and_of_overconfident_scores():
    rng = np.random.default_rng(0)
    p = rng.uniform(size=50_000)
    y = (rng.uniform(size=50_000) < p).astype(int)
    good = explain.calibration(y, p)
    assert len(good["bins"]) == 10 and sum(b["rows"] for b in good["bins"]) == 50_000
    assert good["ece"] < 0.01
    for b in good["bins"]:
        assert b["observed"] == pytest.approx(b["predicted"], abs=0.03)
    overconfident = explain.calibration(y, np.where(p > 0.5, 0.99, 0.01))
    assert overconfident["ece"] > 0.2
    constant = explain.calibration(y, np.full(50_000, 0.5))
    assert len(constant["bins"]) == 1 and constant["ece"] == pytest.approx(abs(y.mean() - 0.5))


def test_the_report_figure_is_a_png_even_without_importance():
    report = {
        "models": {
            "m": {"importance": [], "calibration": explain.calibration([0, 1], [0.2, 0.8])},
        }
    }
    assert explain.report_png(report, title="t").startswith(b"\x89PNG")


def test_auc_interval_covers_the_truth_and_pairs_the_difference():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 4000)
    signal = y + rng.normal(0, 1.0, len(y))  # ROC-AUC about 0.76
    noisier = y + rng.normal(0, 1.5, len(y))  # about 0.68
    result = explain.auc_interval(y, signal, noisier, resamples=200, seed=1)
    assert result["low"] < result["roc_auc"] < result["high"]
    assert result["high"] - result["low"] < 0.05  # 4,000 rows: a narrow interval
    diff = result["minus_reference"]
    assert diff["low"] > 0  # the better model is better on every resample's tails
    assert diff["value"] == pytest.approx(
        result["roc_auc"] - explain.auc_interval(y, noisier, resamples=10)["roc_auc"]
    )
    # the same model against itself: a difference of exactly zero, whatever the resample
    same = explain.auc_interval(y, signal, signal, resamples=50)["minus_reference"]
    assert same == {"value": 0.0, "low": 0.0, "high": 0.0}
    line = explain.describe_interval(result, "noisier")
    assert line.startswith("ROC-AUC 0.7") and "minus noisier +0." in line


def test_auc_interval_is_undefined_for_one_class():
    assert explain.auc_interval(np.ones(20), np.linspace(0, 1, 20)) is None
    assert explain.describe_interval(None) == "ROC-AUC undefined (one class)"
