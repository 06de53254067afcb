"""binary_metrics against values worked out by hand (and against scikit-learn on random data)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlcore.metrics import binary_metrics


def test_hand_computed_example():
    y = [1, 0, 1, 0, 1]
    p = [0.9, 0.4, 0.6, 0.3, 0.2]
    m = binary_metrics(y, p)
    # predictions at 0.5: 1 0 1 0 0 -> four of five right
    assert m["accuracy"] == pytest.approx(0.8)
    # positive/negative pairs: 0.9 and 0.6 outrank both negatives (0.4, 0.3), 0.2 neither: 4 of 6
    assert m["roc_auc"] == pytest.approx(4 / 6)
    # tp = 2, fp = 0, fn = 1 -> F1 = 2*2 / (2*2 + 0 + 1)
    assert m["f1_skip"] == pytest.approx(0.8)
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
    assert m["f1_skip"] == 0.0  # no true positive
    assert m["positive_rate"] == 0.0
    only_skips = binary_metrics([1, 1], [0.9, 0.8])
    assert only_skips["roc_auc"] is None and only_skips["f1_skip"] == pytest.approx(1.0)


def test_confident_mistakes_cost_a_finite_loss():
    m = binary_metrics([1, 0], [0.0, 1.0])
    # clipped at 1e-15 (1 - 1e-15 rounds a little in float64, hence the loose tolerance)
    assert m["log_loss"] == pytest.approx(-math.log(1e-15), rel=1e-4)
    assert m["accuracy"] == 0.0


def test_values_are_plain_python_numbers():
    m = binary_metrics(np.array([1, 0, 1]), np.array([0.8, 0.3, 0.4], dtype=np.float32))
    assert all(type(m[k]) is float for k in ("accuracy", "roc_auc", "log_loss", "f1_skip"))
    assert type(m["n"]) is int


def test_agrees_with_scikit_learn():
    from sklearn import metrics as skm

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    p = np.clip(0.3 * y + rng.uniform(0, 0.7, 500), 0, 1)
    m = binary_metrics(y, p)
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p))
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, p))
    assert m["f1_skip"] == pytest.approx(skm.f1_score(y, p >= 0.5))
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
