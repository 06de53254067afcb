"""Model behaviour of the generic Keras helpers and builders, on tiny synthetic signals.

Each model must learn something measurable against a trivial baseline measured on the same
rows: a regressor against the training mean, the LSTM forecaster against the seasonal-naive
forecast, the CNN+LSTM and the latent factor model against chance (ROC-AUC 0.5). Tiny data,
few epochs: the whole module runs in about half a minute on two CPU cores.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mlcore import training
from mlcore.lake import LocalLake
from mlcore.metrics import forecast_metrics, roc_auc
from mlcore.training import TrainingError

REPO = Path(__file__).resolve().parents[2]
WINDOW, HORIZON, SEASON = 24, 6, 12
QUANTILES = (0.1, 0.5, 0.9)


# ---- make_windows, check_targets: no model needed ------------------------------------------
def test_make_windows_shapes_and_contents():
    values = np.arange(20, dtype=np.float64).reshape(10, 2)  # feature 0 = 0, 2, 4, ...
    x, y = training.make_windows(values, window=3, horizon=2, stride=2)
    assert x.shape == (3, 3, 2) and y.shape == (3, 2)  # starts 0, 2, 4: (10 - 5) // 2 + 1
    np.testing.assert_array_equal(x[1], values[2:5])
    np.testing.assert_array_equal(y[1], values[5:7, 0])
    np.testing.assert_array_equal(y[-1], values[7:9, 0])
    assert x.flags["C_CONTIGUOUS"] and x.dtype == values.dtype
    x1, y1 = training.make_windows(np.arange(6.0), window=4, horizon=2)  # (T,): one feature
    assert x1.shape == (1, 4, 1) and y1.tolist() == [[4.0, 5.0]]
    x1[0, 0, 0] = 99  # a copy, not a view of the caller's series
    assert training.make_windows(np.arange(6.0), window=4, horizon=2)[0][0, 0, 0] == 0


def test_make_windows_refuses_short_series_and_bad_arguments():
    with pytest.raises(TrainingError, match="5 steps is too short for a window of 4"):
        training.make_windows(np.arange(5.0), window=4, horizon=2)
    with pytest.raises(ValueError, match="stride must be at least 1"):
        training.make_windows(np.arange(10.0), window=2, horizon=1, stride=0)
    with pytest.raises(ValueError, match=r"\(T,\) or \(T, F\)"):
        training.make_windows(np.zeros((10, 2, 2)), window=2, horizon=1)


@pytest.mark.parametrize(
    ("y", "message"),
    [
        ([1.0], "1 target row"),
        ([1.0, float("nan")], "NaN or infinite"),
        ([3.0, 3.0, 3.0], "every target is 3.0"),
        (np.array(["a", "b"]), "must be numbers"),
    ],
)
def test_check_targets_refuses_unusable_targets(y, message):
    with pytest.raises(TrainingError, match=message):
        training.check_targets(np.asarray(y), "viewers")


def test_check_targets_accepts_multi_step_targets():
    training.check_targets(np.arange(12.0).reshape(4, 3), "horizons")


class RecordingModel:
    """Stands in for a Keras model: records what fit_keras hands to ``fit``."""

    def fit(self, x, y, *, validation_data, epochs, **kwargs):
        self.x, self.y, self.validation = x, y, validation_data
        history = type("History", (), {"history": {"loss": [1.0] * epochs}})
        return history()


def test_fit_keras_validates_on_the_latest_rows_of_every_input():
    model = RecordingModel()
    x = {"user": np.arange(20), "item": np.arange(20) + 100}
    summary = training.fit_keras(model, x, np.arange(20.0), epochs=2, batch_size=4, name="lf")
    assert summary == {
        "fit_rows": 18,
        "validation_rows": 2,
        "epochs_run": 2,
        "history": {"loss": [1.0, 1.0]},
    }
    assert model.x["item"].tolist() == list(range(100, 118))
    assert model.validation[0]["user"].tolist() == [18, 19]
    assert model.validation[1].tolist() == [18.0, 19.0]
    with pytest.raises(TrainingError, match="same rows"):
        training.fit_keras(
            model, {"a": np.ones(3), "b": np.ones(4)}, np.ones(3), epochs=1, batch_size=1
        )
    with pytest.raises(TrainingError, match="10 input rows but 9 targets"):
        training.fit_keras(model, np.ones((10, 2)), np.ones(9), epochs=1, batch_size=1)


def test_predict_batched_scikit_learn_classifier_and_regressor():
    from sklearn.linear_model import LinearRegression, LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (50, 3))
    y = x @ np.array([1.0, -2.0, 0.5])
    reg = LinearRegression().fit(x, y)
    # atol: predict_batched hands the rows over as float32, as it does to every model
    np.testing.assert_allclose(
        training.predict_batched(reg, x, batch_size=7), reg.predict(x), atol=1e-5
    )
    clf = LogisticRegression().fit(x, y > 0)
    p = training.predict_batched(clf, x, batch_size=7)
    assert p.shape == (50,)
    np.testing.assert_allclose(p, clf.predict_proba(x.astype(np.float32))[:, 1])


# ---- Keras: regression, a dict-input model, forecasters, latent factors ----------------------
def test_dense_regressor_beats_the_mean():
    from mlcore.models.regression import build_dense_regressor

    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (600, 4)).astype(np.float32)
    y = 200 + 30 * x[:, 0] - 20 * x[:, 1] + 10 * x[:, 2] * x[:, 3] + rng.normal(0, 5, 600)
    y = y.astype(np.float32)
    training.check_targets(y, "y")
    training.set_seeds(0)
    model = build_dense_regressor(
        4, seed=0, units=(32, 16), train_x=x[:480], train_y=y[:480], learning_rate=0.01
    )
    summary = training.fit_keras(model, x[:480], y[:480], epochs=10, batch_size=32)
    assert summary["fit_rows"] == 432 and summary["validation_rows"] == 48
    assert summary["epochs_run"] == 10 and "val_mae" in summary["history"]
    p = training.predict_batched(model, x[480:])
    assert p.shape == (120,)
    mean_mae = forecast_metrics(y[480:], np.full(120, y[:480].mean()))["mae"]
    assert forecast_metrics(y[480:], p)["mae"] < 0.4 * mean_mae
    with pytest.raises(ValueError, match="loss must be one of mse, huber"):
        build_dense_regressor(4, seed=0, loss="mae")
    huber = build_dense_regressor(4, seed=0, loss="huber", outputs=3)
    assert training.predict_batched(huber, x[:5]).shape == (5, 3)  # (n, d) for d outputs


def test_cnn_lstm_classifier_learns_from_tokens_and_features():
    """A dict-input model: the label is 'token 3 in the last four steps, or a high last value'."""
    from mlcore.models.sequence import build_cnn_lstm_classifier

    rng = np.random.default_rng(1)
    n, steps = 1000, 12
    tokens = rng.integers(1, 10, (n, steps))
    feats = rng.normal(0, 1, (n, steps, 2)).astype(np.float32)
    label = ((tokens[:, -4:] == 3).any(axis=1) | (feats[:, -1, 0] > 1.0)).astype(np.float32)
    training.set_seeds(0)
    model = build_cnn_lstm_classifier(
        steps,
        2,
        seed=0,
        vocab_size=10,
        filters=16,
        lstm_units=16,
        train_x=feats[:800],
        learning_rate=0.01,
    )
    assert [i.name for i in model.inputs] == ["tokens", "features"]
    train = {"tokens": tokens[:800], "features": feats[:800]}
    training.fit_keras(model, train, label[:800], epochs=6, batch_size=32, name="cnn_lstm")
    p = training.predict_batched(model, {"tokens": tokens[800:], "features": feats[800:]}, 64)
    assert p.shape == (200,) and ((p >= 0) & (p <= 1)).all()
    assert roc_auc(label[800:], p) > 0.85


def test_session_gru_learns_what_only_the_history_holds():
    """The label is 'the last step was skipped, or the query track was skipped before': no
    signal in the tabular features, so only a model that reads the history can learn it."""
    from mlcore.models.sequence import build_session_gru

    rng = np.random.default_rng(3)
    n, steps, n_step, n_feat = 1200, 6, 3, 4
    h_tokens = rng.integers(1, 20, (n, steps, 2)).astype(np.int32)
    h_steps = rng.normal(0, 1, (n, steps, n_step)).astype(np.float32)
    h_steps[..., 0] = rng.integers(0, 2, (n, steps))  # the skip flag of each step
    q_tokens = rng.integers(1, 20, (n, 2)).astype(np.int32)
    seen_skipped = ((h_tokens[..., 0] == q_tokens[:, None, 0]) & (h_steps[..., 0] == 1)).any(1)
    label = ((h_steps[:, -1, 0] == 1) | seen_skipped).astype(np.float32)
    x = {
        "history_tokens": h_tokens,
        "history_steps": h_steps,
        "query_tokens": q_tokens,
        "features": rng.normal(0, 1, (n, n_feat)).astype(np.float32),
    }
    train = {k: v[:1000] for k, v in x.items()}
    test = {k: v[1000:] for k, v in x.items()}
    training.set_seeds(0)
    model = build_session_gru(
        steps,
        n_step,
        n_feat,
        [20, 20],
        seed=0,
        units=16,
        embedding_dim=4,
        dropout=0.0,
        train_x=train,
        learning_rate=0.01,
    )
    assert sorted(i.name for i in model.inputs) == sorted(x)
    training.fit_keras(model, train, label[:1000], epochs=12, batch_size=32, name="gru")
    p = training.predict_batched(model, test, 64)
    assert p.shape == (200,) and ((p >= 0) & (p <= 1)).all()
    assert roc_auc(label[1000:], p) > 0.8


@pytest.fixture(scope="module")
def windows():
    """A seasonal series (period 12) around 500 with a covariate in phase; 80/20 by time."""
    rng = np.random.default_rng(2)
    t = np.arange(1000)
    series = 500 + 100 * np.sin(2 * np.pi * t / SEASON) + rng.normal(0, 10, t.size)
    values = np.stack([series, np.cos(2 * np.pi * t / SEASON)], axis=1).astype(np.float32)
    x, y = training.make_windows(values, window=WINDOW, horizon=HORIZON)
    cut = int(len(x) * 0.8)
    # seasonal naive: step h of the horizon repeats the value one season before it
    naive = x[cut:, WINDOW - SEASON : WINDOW - SEASON + HORIZON, 0]
    return {"train": (x[:cut], y[:cut]), "test": (x[cut:], y[cut:]), "naive": naive}


def fit_forecaster(windows, quantiles=None, cell="lstm"):
    from mlcore.models.sequence import build_lstm_forecaster

    x, y = windows["train"]
    training.set_seeds(0)
    model = build_lstm_forecaster(
        WINDOW,
        2,
        HORIZON,
        seed=0,
        units=16,
        cell=cell,
        quantiles=quantiles,
        train_x=x,
        learning_rate=0.01,
    )
    training.fit_keras(model, x, y, epochs=8, batch_size=32, name=model.name)
    return model


def test_lstm_forecaster_beats_seasonal_naive(windows):
    x, y = windows["test"]
    model = fit_forecaster(windows)
    p = training.predict_batched(model, x)
    assert p.shape == y.shape
    naive_mae = forecast_metrics(y, windows["naive"])["mae"]  # ~ 10 * sqrt(2) * 0.8
    assert forecast_metrics(y, p)["mae"] < 0.9 * naive_mae


def test_gru_cell_builds_and_refuses_unknown_cells():
    from mlcore.models.sequence import build_lstm_forecaster

    gru = build_lstm_forecaster(WINDOW, 1, HORIZON, seed=0, units=4, cell="gru")
    assert gru.get_layer("gru") is not None
    with pytest.raises(ValueError, match="cell must be one of lstm, gru"):
        build_lstm_forecaster(WINDOW, 1, HORIZON, seed=0, cell="rnn")
    with pytest.raises(ValueError, match="increasing"):
        build_lstm_forecaster(WINDOW, 1, HORIZON, seed=0, quantiles=(0.9, 0.1))


@pytest.fixture(scope="module")
def quantile_model(windows, tmp_path_factory):
    model = fit_forecaster(windows, quantiles=QUANTILES)
    lake = LocalLake(tmp_path_factory.mktemp("lake"))
    key = training.save_keras(lake, "models/livestream/v1/lstm_quantile.keras", model)
    return model, lake, key


def test_quantile_forecaster_is_ordered_and_covers_about_its_nominal_level(windows, quantile_model):
    model, _, _ = quantile_model
    x, y = windows["test"]
    p = training.predict_batched(model, x)
    assert p.shape == (len(x), HORIZON, len(QUANTILES))
    mean = p.mean(axis=(0, 1))
    assert mean[0] < mean[1] < mean[2]
    assert (np.diff(p, axis=-1) >= 0).all()  # no row crosses: the interval is never upside down
    m = forecast_metrics(y, p[..., 1], lower=p[..., 0], upper=p[..., 2], nominal=0.8)
    assert 0.6 < m["coverage"] < 0.97
    assert m["mae"] < forecast_metrics(y, windows["naive"])["mae"]


def test_quantile_forecaster_reloads_with_the_same_predictions(windows, quantile_model):
    model, lake, key = quantile_model
    x, _ = windows["test"]
    again = training.load_keras(lake, key)
    assert again.loss.quantiles == QUANTILES
    np.testing.assert_allclose(
        training.predict_batched(again, x), training.predict_batched(model, x), atol=1e-5
    )


def test_quantile_forecaster_reloads_in_a_fresh_process(windows, quantile_model):
    """The scorer imports only mlcore.training: load_keras must register the custom objects."""
    model, lake, key = quantile_model
    x, _ = windows["test"]
    np.save(lake.path("x.npy"), x[:16])
    code = (
        "import sys, numpy as np\n"
        "from mlcore.lake import LocalLake\n"
        "from mlcore.training import load_keras, predict_batched\n"
        "lake = LocalLake(sys.argv[1])\n"
        "model = load_keras(lake, sys.argv[3])\n"
        "np.save(sys.argv[2], predict_batched(model, np.load(lake.path('x.npy'))))\n"
    )
    out = lake.path("p.npy")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run(
        [sys.executable, "-c", code, str(lake.root), str(out), key],
        cwd=REPO,
        env=env,
        check=True,
        timeout=120,
    )
    np.testing.assert_allclose(np.load(out), training.predict_batched(model, x[:16]), atol=1e-5)


def test_latent_factor_model_learns_a_planted_low_rank_structure():
    from mlcore.models.embedding import build_latent_factor_model, embedding_matrix, hash_ids

    rng = np.random.default_rng(3)
    n_users, n_items, rank, n, buckets = 80, 80, 2, 8000, 4096
    users_f, items_f = rng.normal(0, 1, (n_users, rank)), rng.normal(0, 1, (n_items, rank))
    u, i = rng.integers(0, n_users, n), rng.integers(0, n_items, n)
    p_true = 1 / (1 + np.exp(-3 * np.sum(users_f[u] * items_f[i], axis=1)))
    label = (rng.uniform(0, 1, n) < p_true).astype(np.float32)
    ids = {
        "user": hash_ids([f"u:{v}" for v in u], buckets),
        "item": hash_ids([f"i:{v}" for v in i], buckets),
    }
    train = {k: v[:6400] for k, v in ids.items()}
    test = {k: v[6400:] for k, v in ids.items()}
    training.set_seeds(0)
    model = build_latent_factor_model(buckets, dim=8, seed=0, learning_rate=0.02)
    training.fit_keras(model, train, label[:6400], epochs=8, batch_size=64, name="latent")
    auc = roc_auc(label[6400:], training.predict_batched(model, test))
    assert auc > 0.75  # chance is 0.5; the planted probabilities themselves score ~0.93
    table = embedding_matrix(model)
    assert table.shape == (buckets, 8)
    # one shared table: no other weight of the model has the table's shape
    assert sum(tuple(w.shape) == (buckets, 8) for w in model.weights) == 1
    with pytest.raises(ValueError, match="output must be one of"):
        build_latent_factor_model(buckets, seed=0, output="softmax")


def bkdr_reference(s: str) -> int:
    h = 0
    for byte in s.encode("utf-8"):
        h = (h * 131 + byte) % 2**64
    return h


def test_hash_ids_is_the_64_bit_bkdr_hash():
    from mlcore.models.embedding import hash_ids

    # by hand: "ab" = 97 * 131 + 98; "abc" = 12805 * 131 + 99
    assert hash_ids(["ab", "abc"], 2**62).tolist() == [12805, 1677554]
    assert hash_ids(["", "a"], 10).tolist() == [0, 7]
    # long and non-ASCII ids wrap modulo 2**64 exactly as the unsigned C hash does
    ids = ["u:1234567890123", "i:" + "x" * 40, "ü:é", "a\x00", "a"]
    assert hash_ids(ids, 2**63 - 1).tolist() == [bkdr_reference(s) % (2**63 - 1) for s in ids]
    many = [f"u:{v}" for v in range(70_000)]  # more than one chunk
    got = hash_ids(many, 1000)
    assert got.dtype == np.int64 and got.min() >= 0 and got.max() < 1000
    assert (got == hash_ids(many, 1000)).all()
    assert got[[0, 65_537]].tolist() == [bkdr_reference(many[j]) % 1000 for j in (0, 65_537)]
    with pytest.raises(ValueError, match="takes strings, got 7"):
        hash_ids(["a", 7], 10)
