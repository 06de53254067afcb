"""Metrics of every pipeline kind against values worked out by hand (and against references)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mlcore.metrics import (
    average_precision_at_k,
    binary_metrics,
    forecast_metrics,
    ranking_curves,
    ranking_metrics,
    seasonal_naive_scale,
)


# ---- binary ------------------------------------------------------------------------------------
def test_hand_computed_example():
    y = [1, 0, 1, 0, 1]
    p = [0.9, 0.4, 0.6, 0.3, 0.2]
    m = binary_metrics(y, p)
    # predictions at 0.5: 1 0 1 0 0 -> four of five right
    assert m["accuracy"] == pytest.approx(0.8)
    # positive/negative pairs: 0.9 and 0.6 outrank both negatives (0.4, 0.3), 0.2 neither: 4 of 6
    assert m["roc_auc"] == pytest.approx(4 / 6)
    # tp = 2, fp = 0, fn = 1 -> F1 = 2*2 / (2*2 + 0 + 1)
    assert m["f1"] == pytest.approx(0.8)
    expected_loss = -(math.log(0.9) + math.log(0.6) + math.log(0.6) + math.log(0.7) + math.log(0.2))
    assert m["log_loss"] == pytest.approx(expected_loss / 5)
    assert m["log_loss"] == pytest.approx(0.618625, abs=1e-6)
    assert m["positive_rate"] == pytest.approx(0.6)
    assert m["n"] == 5


def test_tied_scores_count_one_half_and_threshold_is_inclusive():
    # pairs: (0.3 vs 0.3) = 1/2, (0.3 vs 0.1) = 1, 0.8 beats both = 2 -> 3.5 / 4
    m = binary_metrics([0, 1, 1, 0], [0.3, 0.3, 0.8, 0.1])
    assert m["roc_auc"] == pytest.approx(0.875)
    constant = binary_metrics([1, 0], [0.5, 0.5])
    assert constant["roc_auc"] == pytest.approx(0.5)
    assert constant["accuracy"] == pytest.approx(0.5)  # p >= 0.5 predicts the positive class
    assert constant["log_loss"] == pytest.approx(math.log(2))


def test_single_class_holdout_gives_no_auc_instead_of_crashing():
    m = binary_metrics([0, 0, 0], [0.1, 0.2, 0.6])
    assert m["roc_auc"] is None
    assert m["accuracy"] == pytest.approx(2 / 3)
    assert m["f1"] == 0.0  # no true positive
    assert m["positive_rate"] == 0.0
    only_skips = binary_metrics([1, 1], [0.9, 0.8])
    assert only_skips["roc_auc"] is None and only_skips["f1"] == pytest.approx(1.0)


def test_confident_mistakes_cost_a_finite_loss():
    m = binary_metrics([1, 0], [0.0, 1.0])
    # clipped at 1e-15 (1 - 1e-15 rounds a little in float64, hence the loose tolerance)
    assert m["log_loss"] == pytest.approx(-math.log(1e-15), rel=1e-4)
    assert m["accuracy"] == 0.0


def test_values_are_plain_python_numbers():
    m = binary_metrics(np.array([1, 0, 1]), np.array([0.8, 0.3, 0.4], dtype=np.float32))
    assert all(type(m[k]) is float for k in ("accuracy", "roc_auc", "log_loss", "f1"))
    assert type(m["n"]) is int


def test_agrees_with_scikit_learn():
    from sklearn import metrics as skm

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    p = np.clip(0.3 * y + rng.uniform(0, 0.7, 500), 0, 1)
    m = binary_metrics(y, p)
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p))
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, p))
    assert m["f1"] == pytest.approx(skm.f1_score(y, p >= 0.5))
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, p >= 0.5))


@pytest.mark.parametrize(
    ("y", "p", "message"),
    [
        ([1, 0], [0.5], "2 rows but p has 1"),
        ([], [], "zero rows"),
        ([2, 0], [0.5, 0.5], "only 0 and 1"),
        ([1, 0], [float("nan"), 0.5], "probabilities"),
        ([1, 0], [1.5, 0.5], "probabilities"),
    ],
)
def test_bad_input_is_a_clear_error(y, p, message):
    with pytest.raises(ValueError, match=message):
        binary_metrics(y, p)


# ---- ranking: AP@k as Kaggle defines it ----------------------------------------------------------
@pytest.mark.parametrize(
    ("actual", "predicted", "k", "expected"),
    [
        # the cases of ml_metrics' own tests (the Kaggle reference implementation)
        (range(1, 6), [6, 4, 7, 1, 2], 2, 0.25),  # one hit at position 2, over min(5, 2)
        (range(1, 6), [1, 1, 1, 1, 1], 5, 0.2),  # a repeated hit counts once
        (range(1, 100), range(1, 100), 20, 1.0),
        ([1, 2, 3], [4, 1, 2], 3, (1 / 2 + 2 / 3) / 3),
        # two purchases, twelve recommendations: the denominator is min(2, 12), not 12
        (["a", "b"], ["x", "a", "y", "b", *"cdefghij"], 12, (1 / 2 + 2 / 4) / 2),
        (["a"], ["x"] * 12 + ["a"], 12, 0.0),  # a hit past k does not count
        ([], [1, 2], 3, 0.0),  # no relevant item
        ([1], [], 12, 0.0),  # no prediction
    ],
)
def test_average_precision_at_k_matches_the_kaggle_definition(actual, predicted, k, expected):
    assert average_precision_at_k(actual, predicted, k) == pytest.approx(expected)


def _small_case() -> tuple[pd.DataFrame, pd.DataFrame]:
    """q1 hits at ranks 2 and 3, q2 at rank 1 (and lists C twice), q3 has truth but no list,
    q9 has a list but no truth."""
    predicted = pd.DataFrame(
        {
            "customer_id": ["q1"] * 3 + ["q2"] * 3 + ["q9"] * 3,
            "article_id": ["X", "A", "B", "C", "Y", "C", "A", "B", "C"],
            "rank": [1, 2, 3] * 3,
        }
    )
    truth = pd.DataFrame(
        {"customer_id": ["q1", "q1", "q2", "q3", "q1"], "article_id": ["A", "B", "C", "D", "A"]}
    )
    return predicted, truth


def test_ranking_metrics_hand_computed():
    predicted, truth = _small_case()
    m = ranking_metrics(predicted, truth, k=3, query="customer_id", item="article_id", ks=(1,))
    ap_q1 = (1 / 2 + 2 / 3) / 2
    assert m["map@3"] == pytest.approx((ap_q1 + 1.0 + 0.0) / 3)
    assert m["recall@3"] == pytest.approx((1.0 + 1.0 + 0.0) / 3)
    assert m["precision@3"] == pytest.approx((2 / 3 + 1 / 3 + 0) / 3)  # C listed twice hits once
    ndcg_q1 = (1 / math.log2(3) + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert m["ndcg@3"] == pytest.approx((ndcg_q1 + 1.0 + 0.0) / 3)
    assert m["hit_rate@3"] == pytest.approx(2 / 3)
    # at k = 1 only q2's C is in a top 1
    assert (
        m["map@1"] == m["recall@1"] == m["precision@1"] == m["hit_rate@1"] == pytest.approx(1 / 3)
    )
    # X A B C Y are in someone's top 3 (q9's lists count), of X A B C Y D seen anywhere
    assert m["catalog_coverage"] == pytest.approx(5 / 6)
    assert m["n_queries"] == 3 and m["n_queries_without_predictions"] == 1
    with_catalog = ranking_metrics(
        predicted, truth, k=3, query="customer_id", item="article_id", catalog_size=50
    )
    assert with_catalog["catalog_coverage"] == pytest.approx(5 / 50)


def test_ranking_metrics_agree_with_the_per_list_reference_on_random_lists():
    rng = np.random.default_rng(7)
    n_q, k = 400, 12
    predicted = pd.DataFrame(
        {
            "q": np.repeat(np.arange(n_q), k),
            "i": rng.integers(0, 60, n_q * k),  # small catalogue: many hits and repeats
            "rank": np.tile(np.arange(1, k + 1), n_q),
        }
    ).sample(frac=1.0, random_state=0)  # row order must not matter
    predicted = predicted[predicted["q"] % 7 != 0]  # some queries without any list
    truth = pd.DataFrame({"q": rng.integers(0, n_q + 50, 1500), "i": rng.integers(0, 60, 1500)})
    m = ranking_metrics(predicted, truth, k=k, query="q", item="i", ks=(5,))
    lists = predicted.sort_values(["q", "rank"]).groupby("q")["i"].apply(list)
    relevant = truth.groupby("q")["i"].apply(set)
    for cut in (5, 12):
        aps = [
            average_precision_at_k(rel, lists.get(q, [])[:cut], cut) for q, rel in relevant.items()
        ]
        hits = [len(rel & set(lists.get(q, [])[:cut])) for q, rel in relevant.items()]
        recall = [h / len(rel) for h, rel in zip(hits, relevant, strict=True)]
        assert m[f"map@{cut}"] == pytest.approx(np.mean(aps))
        assert m[f"recall@{cut}"] == pytest.approx(np.mean(recall))
        assert m[f"hit_rate@{cut}"] == pytest.approx(np.mean(np.array(hits) > 0))
    assert m["n_queries"] == len(relevant)


def test_ranking_metrics_without_predictions_score_zero_and_values_are_plain():
    _, truth = _small_case()
    empty = pd.DataFrame({"customer_id": [], "article_id": [], "rank": []})
    m = ranking_metrics(empty, truth, k=12, query="customer_id", item="article_id")
    assert m["map@12"] == m["recall@12"] == m["ndcg@12"] == 0.0
    assert m["n_queries_without_predictions"] == m["n_queries"] == 3
    assert all(type(v) is float for key, v in m.items() if not key.startswith("n_"))
    assert type(m["n_queries"]) is int


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p, t: (p.assign(rank=[1, 1, 3] * 3), t), "two items at the same rank"),
        (lambda p, t: (p.assign(rank=[0, 1, 2] * 3), t), "whole numbers >= 1"),
        (lambda p, t: (p.assign(rank=[1.5, 2, 3] * 3), t), "whole numbers >= 1"),
        (lambda p, t: (p.drop(columns="rank"), t), "predicted lacks columns rank"),
        (lambda p, t: (p, t.iloc[:0]), "no rows"),
        (lambda p, t: (p, t.assign(article_id=[None, "B", "C", "D", "A"])), "null"),
    ],
)
def test_ranking_metrics_bad_input_is_a_clear_error(change, message):
    predicted, truth = change(*_small_case())
    with pytest.raises(ValueError, match=message):
        ranking_metrics(predicted, truth, k=3, query="customer_id", item="article_id")


def test_ranking_curves_per_model_equal_ranking_metrics():
    predicted, truth = _small_case()
    both = pd.concat(
        [
            predicted.assign(model="good"),
            predicted.assign(model="shifted", rank=predicted["rank"] + 1),
        ]
    )
    curves = ranking_curves(both, truth, query="customer_id", item="article_id", ks=(1, 2, 3))
    assert set(curves) == {"good", "shifted"} and set(curves["good"]) == {1, 2, 3}
    single = ranking_metrics(
        predicted, truth, k=3, query="customer_id", item="article_id", ks=(1, 2)
    )
    for k in (1, 2, 3):
        assert curves["good"][k]["map"] == pytest.approx(single[f"map@{k}"])
        assert curves["good"][k]["recall"] == pytest.approx(single[f"recall@{k}"])
    assert curves["shifted"][1]["map"] == 0.0  # every list starts at rank 2
    alone = ranking_curves(predicted, truth, query="customer_id", item="article_id", by_model=None)
    assert set(alone) == {"model"}


# ---- forecasts ---------------------------------------------------------------------------------
def test_forecast_metrics_hand_computed():
    actual, forecast = [1, 2, 3, 4], [1, 3, 2, 6]  # errors 0, -1, 1, -2
    m = forecast_metrics(
        actual,
        forecast,
        lower=[0, 2.5, 2, 3],
        upper=[2, 3.5, 4, 3.5],
        scale=[1, 1, 2, 0],  # the last series was flat: left out of the MASE
        nominal=0.8,
    )
    assert m["mae"] == pytest.approx(1.0)
    assert m["rmse"] == pytest.approx(math.sqrt(6 / 4))
    assert m["r2"] == pytest.approx(1 - 6 / 5)  # SST around the mean 2.5 is 5
    assert m["mase"] == pytest.approx((0 + 1 + 0.5) / 3) and m["mase_n"] == 3
    assert m["coverage"] == pytest.approx(0.5)  # 1 and 3 inside, 2 and 4 outside
    assert m["interval_width"] == pytest.approx((2 + 1 + 2 + 0.5) / 4)
    assert m["nominal_coverage"] == 0.8 and m["n"] == 4
    assert all(type(m[k]) is float for k in ("mae", "rmse", "r2", "mase", "coverage"))


def test_forecast_metrics_keys_are_stable_and_undefined_values_are_none():
    m = forecast_metrics(np.full((2, 3), 5.0), np.full((2, 3), 4.0))  # constant actual, 2 x 3
    assert set(m) == {
        "mae",
        "rmse",
        "mase",
        "mase_n",
        "r2",
        "smape",
        "coverage",
        "interval_width",
        "nominal_coverage",
        "n",
    }
    assert m["n"] == 6 and m["mae"] == 1.0
    assert m["r2"] is None and m["mase"] is None and m["coverage"] is None
    assert forecast_metrics([1, 2], [1, 2], scale=0.0)["mase"] is None
    perfect = forecast_metrics([1, 2, 3], [1, 2, 3], scale=2.0)  # one scale for every row
    assert perfect["r2"] == 1.0 and perfect["mase"] == 0.0 and perfect["mase_n"] == 3


def test_forecast_metrics_smape_hand_computed():
    # rows: |e| / (|a| + |f|) = 2/6, 0 (both 0: no error), 1 (one side 0), 1/3
    m = forecast_metrics([2, 0, 0, 10], [4, 0, 5, 5])
    assert m["smape"] == pytest.approx(200 * (2 / 6 + 0 + 1 + 5 / 15) / 4)
    assert forecast_metrics([0, 0], [0, 0])["smape"] == 0.0  # offline, forecast offline
    assert forecast_metrics([0, 3], [7, 0])["smape"] == pytest.approx(200.0)  # the maximum
    assert forecast_metrics([1, 2], [1, 2])["smape"] == 0.0
    assert type(m["smape"]) is float


def test_seasonal_naive_scale():
    assert seasonal_naive_scale(np.array([1, 2, 4, 7]), 1) == pytest.approx(2.0)  # 1, 2, 3
    assert seasonal_naive_scale([1, 2, 4, 7], 2) == pytest.approx(4.0)  # |4-1|, |7-2|
    assert seasonal_naive_scale([3, 3, 3], 1) == 0.0
    with pytest.raises(ValueError, match="more than season=4"):
        seasonal_naive_scale([1, 2, 3, 4], 4)
    with pytest.raises(ValueError, match="NaN"):
        seasonal_naive_scale([1, float("nan"), 3], 1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"actual": [1, 2], "forecast": [1]}, r"forecast has shape \(1,\) but actual has \(2,\)"),
        ({"actual": [], "forecast": []}, "zero rows"),
        ({"actual": [1, float("nan")], "forecast": [1, 2]}, "actual holds 1 NaN"),
        ({"actual": [1, 2], "forecast": [1, float("inf")]}, "forecast holds 1 NaN or infinite"),
        ({"actual": [1, 2], "forecast": [1, 2], "lower": [0, 1]}, "both lower and upper"),
        ({"actual": [1, 2], "forecast": [1, 2], "lower": [0, 3], "upper": [2, 2]}, "on 1 row"),
        ({"actual": [1, 2], "forecast": [1, 2], "lower": [0], "upper": [2]}, "lower has shape"),
        ({"actual": [1, 2], "forecast": [1, 2], "scale": [1, -1]}, "negative"),
        ({"actual": [1, 2], "forecast": [1, 2], "scale": [1, 1, 1]}, "scale has shape"),
        ({"actual": [1, 2], "forecast": [1, 2], "nominal": 80}, "nominal"),
    ],
)
def test_forecast_metrics_bad_input_is_a_clear_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        forecast_metrics(**kwargs)


def test_pair_metrics_hand_computed():
    from mlcore.metrics import pair_metrics

    # positives 3.0, 1.0; negatives 2.0, 1.0; unrated -1.0, 0.5
    # auc: pairs (3>2) 1, (3>1) 1, (1<2) 0, (1=1) 0.5 -> 2.5 / 4
    # auc_unrated: every positive beats both unrated -> 1.0
    out = pair_metrics(
        ["positive", "positive", "negative", "negative", "unrated", "unrated"],
        [3.0, 1.0, 2.0, 1.0, -1.0, 0.5],
        rating=[5.0, 4.0, 2.0, 3.0, np.nan, np.nan],
        predicted=[4.0, 4.0, 3.0, 3.0, 9.0, 9.0],  # unrated rows ignored by rmse
    )
    assert out["auc"] == pytest.approx(0.625)
    assert out["auc_unrated"] == pytest.approx(1.0)
    assert out["rmse"] == pytest.approx(math.sqrt((1 + 0 + 1 + 0) / 4))
    assert set(pair_metrics(["positive"], [1.0])) == {"auc", "auc_unrated"}
    assert pair_metrics(["positive"], [1.0])["auc"] is None  # no negative: undefined
    with pytest.raises(ValueError, match="pair kinds"):
        pair_metrics(["liked"], [1.0])
    with pytest.raises(ValueError, match="NaN"):
        pair_metrics(["positive", "negative"], [np.nan, 1.0])
