"""Model behaviour of the live-room forecasters (mlcore.models.forecast) on small synthetic grids.

The leakage rule first: ``as_of`` and ``windows_as_of`` by hand (lead offsets, room
boundaries), then every model's forecast checked against a grid where everything the rule
forbids (rows after t − L of the room, every row of the other rooms) is replaced by noise.
Then values: the seasonal naive by hand, MSTL against the mean on a daily sine, gradient
boosting against the weekly naive after a level shift, the LSTMs finite and non-negative;
pickling round trips; degenerate rooms. Tiny grids (3 rooms × 10 days + tomorrow), few trees
and epochs: TensorFlow is imported once, the module runs in well under a minute on 2 cores.
"""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from mlcore.metrics import forecast_metrics
from mlcore.models import forecast as fc

DAY = fc.DAY
EXOG = ("natural_total", "paid_total", "online_users", "comment_cnt")  # a short list for speed
FAST_GBM = {"exogenous": EXOG, "max_iter": 40, "max_rows": 6000, "min_samples_leaf": 20}
TINY_LSTM = {
    "exogenous": EXOG,
    "window": 24,
    "units": 8,
    "epochs": 2,
    "batch_size": 256,
    "max_windows": 2000,
    "learning_rate": 5e-3,
}


def make_grid(
    n_rooms: int = 3,
    days: int = 10,
    *,
    seed: int = 0,
    levels: tuple[float, ...] = (200.0, 30.0, 5.0),
    shift_day: int | None = None,
    always_live: bool = False,
    noise: bool = True,
    weekend: float = 1.3,
) -> pd.DataFrame:
    """A minute grid as the pipeline's SQL builds it: ``days`` observed days + tomorrow.

    Room k is live 08:00-12:00 and 19:00-23:00 (or always), at ``levels[k]`` viewers a minute
    shaped by a daily bump, ×``weekend`` on weekends, ×2 from ``shift_day`` on; Poisson noise;
    offline minutes 0; a few minutes missing (y NaN, y_filled the last value); tomorrow's y NaN.
    """
    rng = np.random.default_rng(seed)
    frames = []
    start = pd.Timestamp("2024-03-04")  # a Monday
    n = (days + 1) * DAY
    for k in range(n_rooms):
        ts = pd.date_range(start, periods=n, freq="min")
        minute = np.arange(n) % DAY
        day = np.arange(n) // DAY
        weekday = ts.day_of_week.to_numpy()
        if always_live:
            live = np.ones(n, dtype=bool)
        else:
            live = ((minute >= 480) & (minute < 720)) | ((minute >= 1140) & (minute < 1380))
        shape = 1.0 + 0.6 * np.sin(2 * np.pi * minute / DAY)
        mean = levels[k % len(levels)] * shape * np.where(weekday >= 5, weekend, 1.0)
        if shift_day is not None:
            mean = mean * np.where(day >= shift_day, 2.0, 1.0)
        y = np.where(live, rng.poisson(mean) if noise else mean, 0).astype(np.float64)
        missing = live & (rng.random(n) < 0.01)
        y[missing] = np.nan
        tomorrow = day == days
        y[tomorrow] = np.nan
        y_filled = pd.Series(y).ffill().to_numpy().copy()
        y_filled[tomorrow] = np.nan
        g = pd.DataFrame(
            {
                "room_id": f"room{k}",
                "ts": ts,
                "day": ts.date,
                "y": y,
                "y_filled": y_filled,
                "live": np.where(tomorrow, None, live),
                "observed": ~np.isnan(y),
                "minute_of_day": minute,
                "hour": minute // 60,
                "weekday": weekday,
                "is_weekend": (weekday >= 5).astype(int),
                "is_holiday": 0,
                "is_workday_shift": 0,
                "is_festival": 0,
                "part_of_day": np.digitize(minute // 60, [6, 11, 14, 18]),
            }
        )
        exog = {
            "natural_total": 0.7 * y_filled,
            "paid_total": 0.3 * y_filled,
            "online_users": 3 * y_filled,
            "comment_cnt": 0.1 * y_filled,
        }
        for c, v in exog.items():
            g[c] = np.where(tomorrow, np.nan, np.where(live, v, 0.0))
        s = pd.Series(y_filled)
        for lag in (1, 5, 10, 60, 1440, 10080):
            g[f"y_lag_{lag}"] = s.shift(lag).to_numpy()
        g["y_mean_60"] = s.shift(1).rolling(60, min_periods=1).mean().to_numpy()
        g["y_std_60"] = s.shift(1).rolling(60, min_periods=2).std().to_numpy()
        g["y_mean_1440"] = s.shift(1).rolling(1440, min_periods=1).mean().to_numpy()
        frames.append(g)
    return pd.concat(frames, ignore_index=True)


def rows_of(grid: pd.DataFrame, days: range | list, *, known: bool = True) -> np.ndarray:
    """Positions of the rows on those day numbers (0 = the first day) of every room."""
    d = (grid["ts"] - grid["ts"].min()).dt.days.to_numpy()
    keep = np.isin(d, list(days))
    if known:
        keep &= grid["y"].notna().to_numpy()
    return np.flatnonzero(keep)


@pytest.fixture(scope="module")
def grid() -> pd.DataFrame:
    return make_grid()


@pytest.fixture(scope="module")
def tomorrow(grid) -> np.ndarray:
    return rows_of(grid, [10], known=False)


# ---- the helpers, by hand ----------------------------------------------------------------------
def small_grid() -> pd.DataFrame:
    """Two rooms of 6 minutes; every column's value is 100 × room + minute (+ 0.5 for stats)."""
    rows = []
    for k, room in enumerate(("a", "b")):
        for m in range(6):
            v = 100.0 * k + m
            rows.append((room, pd.Timestamp("2024-01-01") + pd.Timedelta(minutes=m), v, m))
    g = pd.DataFrame(rows, columns=["room_id", "ts", "y_filled", "minute_of_day"])
    g["y_mean_60"] = g["y_filled"] + 0.5
    return g


def test_as_of_reads_each_kind_of_column_from_its_row_and_never_across_rooms():
    g = small_grid()
    rows = np.array([0, 2, 5, 6, 8, 11])
    got = fc.as_of(g, ["y_filled", "y_mean_60", "minute_of_day"], rows, 2)
    nan = np.nan
    np.testing.assert_array_equal(got[:, 0], [nan, 0, 3, nan, 100, 103])  # row t - 2
    np.testing.assert_array_equal(got[:, 1], [nan, 1.5, 4.5, nan, 101.5, 104.5])  # t - 1
    np.testing.assert_array_equal(got[:, 2], [0, 2, 5, 0, 2, 5])  # the calendar of t
    # Row 6 is room b's first: at lead 1 it must not see room a's last row (5).
    assert np.isnan(fc.as_of(g, ["y_filled"], [6], 1)[0, 0])
    assert fc.read_offset("y_lag_10", 10) == 10 and fc.read_offset("hour", 1440) == 0
    with pytest.raises(ValueError, match="lead must be"):
        fc.as_of(g, ["y_filled"], [1], 0)
    with pytest.raises(IndexError):
        fc.as_of(g, ["y_filled"], [12], 1)


def test_windows_as_of_ends_at_the_origin_and_pads_before_the_room():
    g = small_grid()
    w = fc.windows_as_of(g, ["y_filled"], [5, 8], 1, 3)
    np.testing.assert_array_equal(w[0, :, 0], [2, 3, 4])  # rows 2..4 end at t - 1 = 4
    np.testing.assert_array_equal(w[1, :, 0], [0, 100, 101])  # one step before room b: 0
    w = fc.windows_as_of(g, ["y_filled"], [7], 1, 3, fill=-1.0)
    np.testing.assert_array_equal(w[0, :, 0], [-1, -1, 100])


def test_room_starts_refuses_grids_the_rule_cannot_read():
    g = small_grid()
    np.testing.assert_array_equal(fc.room_starts(g), [0] * 6 + [6] * 6)
    with pytest.raises(ValueError, match="not contiguous"):
        fc.room_starts(g.iloc[[0, 6, 1]])
    with pytest.raises(ValueError, match="by one minute"):
        fc.room_starts(g.drop(index=3))


# ---- the leakage rule, per model ---------------------------------------------------------------
def scramble(grid: pd.DataFrame, target: int, lead: int, seed: int) -> pd.DataFrame:
    """Noise on everything a forecast of ``target`` at ``lead`` may not read: the target's
    room from row t - L + 1 on (trailing stats from t - L + 2), every row of the other rooms."""
    rng = np.random.default_rng(seed)
    g = grid.copy()
    room = g["room_id"].to_numpy()
    pos = np.arange(len(g))
    other = room != room[target]
    for c in g.columns:
        if c in (*fc.CALENDAR, "room_id", "ts", "day", "live", "observed"):
            continue
        first = target - lead + (2 if c in fc.TRAILING else 1)
        hit = other | (pos >= first)
        g.loc[hit, c] = rng.uniform(0, 5000, int(hit.sum()))
    return g


def fitted_models(grid: pd.DataFrame) -> dict[str, fc.Forecaster]:
    train = rows_of(grid, range(10))
    models = {
        "naive_day": fc.SeasonalNaive(DAY),
        "naive_week": fc.SeasonalNaive(fc.WEEK, DAY),
        "gbm_1440": fc.GradientBoostingForecaster(DAY, **FAST_GBM),
        "gbm_10": fc.GradientBoostingForecaster(10, **FAST_GBM),
        "lstm_uni_1440": fc.LSTMForecaster(DAY, **TINY_LSTM),
        "lstm_multi_10": fc.LSTMForecaster(10, multivariate=True, **TINY_LSTM),
    }
    return {name: m.fit(grid, train) for name, m in models.items()}


@pytest.fixture(scope="module")
def models(grid) -> dict[str, fc.Forecaster]:
    return fitted_models(grid)


def test_every_model_ignores_what_its_lead_forbids(grid, models, tomorrow):
    # Tomorrow's minutes (lead 1440) and minutes inside day 9 (lead 10), two rooms each.
    minutes = [600, 1200]
    day9 = rows_of(grid, [9], known=False)
    for name, model in models.items():
        targets = tomorrow if model.lead == DAY else day9
        picks = [targets[(k * (len(targets) // 3)) + m] for k in (0, 1) for m in minutes]
        for i, t in enumerate(picks):
            before = model.predict(grid, np.array([t]))
            after = model.predict(scramble(grid, t, model.lead, seed=i), np.array([t]))
            np.testing.assert_array_equal(after, before, err_msg=f"{name} read the future")


def test_the_leakage_check_can_fail(grid, models, tomorrow):
    """Scrambling from row t - L itself (one row more) must change the forecasts: the check
    above would otherwise pass for a model that reads nothing. (The weekly naive reads only
    t - 10080, so it is left out.)"""
    for name, model in models.items():
        if name == "naive_week":
            continue
        t = tomorrow[720] if model.lead == DAY else rows_of(grid, [9], known=False)[700]
        before = model.predict(grid, np.array([t]))
        after = model.predict(scramble(grid, t - 1, model.lead, seed=7), np.array([t]))
        assert not np.array_equal(after, before), f"{name} did not read row t - L"


def test_mstl_uses_only_the_days_before_the_target_day():
    g = make_grid(2, 8, seed=1)
    target = rows_of(g, [7])  # day 7 is observed: a backtest day
    model = fc.MSTLForecaster(history_days=7).fit(g, rows_of(g, range(7)))
    before = model.predict(g, target)
    d = (g["ts"] - g["ts"].min()).dt.days.to_numpy()
    later = g.copy()
    later.loc[d >= 7, ["y", "y_filled"]] = 9999.0  # the target day itself and tomorrow
    np.testing.assert_array_equal(model.predict(later, target), before)
    earlier = g.copy()
    earlier.loc[d == 6, "y_filled"] = 9999.0
    assert not np.array_equal(model.predict(earlier, target), before)
    with pytest.raises(ValueError, match="next day"):
        fc.MSTLForecaster(10)


# ---- values --------------------------------------------------------------------------------------
def test_seasonal_naive_by_hand(grid, tomorrow):
    y = grid["y_filled"].to_numpy()
    day, week = fc.SeasonalNaive(DAY), fc.SeasonalNaive(fc.WEEK, lead=10)
    t = tomorrow[:5]
    np.testing.assert_array_equal(day.predict(grid, t), y[t - DAY])
    np.testing.assert_array_equal(week.predict(grid, t), y[t - fc.WEEK])
    assert day.name == "seasonal_naive_day" and week.name == "seasonal_naive_week"
    first_day = rows_of(grid, [0])[:3]  # nothing a day earlier: 0, not another room's value
    np.testing.assert_array_equal(day.predict(grid, first_day), [0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="cannot forecast at lead"):
        fc.SeasonalNaive(DAY, lead=2 * DAY)


def test_gradient_boosting_beats_the_weekly_naive_after_a_level_shift():
    g = make_grid(3, 10, seed=2, shift_day=6)
    test = rows_of(g, [9])
    model = fc.GradientBoostingForecaster(DAY, **FAST_GBM).fit(g, rows_of(g, range(9)))
    actual = g["y"].to_numpy()[test]
    gbm = forecast_metrics(actual, model.predict(g, test))["mae"]
    week = forecast_metrics(actual, fc.SeasonalNaive(fc.WEEK, DAY).predict(g, test))["mae"]
    assert gbm < 0.6 * week, (gbm, week)
    assert model.fit_summary_["trees"] > 1 and "y_same_minute_mean" in model.feature_names_


def test_gradient_boosting_trains_on_rooms_younger_than_a_week():
    """Four days of history: the weekly lag has no value in any training row. scikit-learn's
    binning fails on such a column, so the model drops it and forecasts from the rest."""
    g = make_grid(2, 4, seed=1)
    model = fc.GradientBoostingForecaster(DAY, **FAST_GBM).fit(g, rows_of(g, range(1, 3)))
    used = dict(zip(model.feature_names_, model.used_, strict=True))
    assert not used["y_lag_10080"] and used["y_lag_1440"]
    forecast = model.predict(g, rows_of(g, [3]))
    assert np.isfinite(forecast).all() and (forecast >= 0).all() and forecast.max() > 0


def test_gradient_boosting_never_forecasts_past_twice_what_it_learned_from():
    """A Poisson booster predicts exp(raw): on the 200-room bench a feature far outside its
    training range sent forecasts to millions. They are capped at twice the largest target."""
    g = make_grid(2, 9, seed=4)
    train = rows_of(g, range(8))
    model = fc.GradientBoostingForecaster(DAY, **FAST_GBM).fit(g, train)
    wild = g.copy()
    for column in ("natural_total", "online_users", "y_filled"):
        wild[column] = wild[column] * 1e6
    forecast = model.predict(wild, rows_of(g, [8]))
    # (the cap is twice the largest target of the rows it sampled to learn from)
    assert 0 < model.cap_ <= 2 * np.nanmax(g["y"].to_numpy()[train])
    assert forecast.max() <= model.cap_


def test_mstl_forecasts_a_daily_sine_better_than_the_mean():
    g = make_grid(1, 8, seed=3, always_live=True, noise=False, levels=(100.0,), weekend=1.0)
    test = rows_of(g, [7])
    train = rows_of(g, range(7))
    actual = g["y"].to_numpy()[test]
    mstl = fc.MSTLForecaster(history_days=7).predict(g, test)
    mean = np.full(len(test), np.nanmean(g["y"].to_numpy()[train]))
    assert forecast_metrics(actual, mstl)["mae"] < 0.2 * forecast_metrics(actual, mean)["mae"]


def test_lstm_and_gbm_forecasts_are_finite_non_negative_and_beat_the_mean(grid, models):
    test = rows_of(grid, [9])
    actual = grid["y"].to_numpy()[test]
    mean_mae = forecast_metrics(actual, np.full(len(test), actual.mean()))["mae"]
    for name, model in models.items():
        p = model.predict(grid, test)
        assert p.shape == test.shape and p.dtype == np.float64
        assert np.isfinite(p).all() and (p >= 0).all(), name
        assert forecast_metrics(actual, p)["mae"] < mean_mae, name
    assert models["lstm_multi_10"].name == "lstm_multivariate"
    assert models["lstm_uni_1440"].fit_summary_["epochs_run"] >= 1


def test_pickling_round_trip_gives_identical_forecasts(grid, models, tomorrow):
    for name, model in models.items():
        again = pickle.loads(pickle.dumps(model))
        np.testing.assert_array_equal(
            again.predict(grid, tomorrow), model.predict(grid, tomorrow), err_msg=name
        )


def test_rooms_with_nothing_to_learn_still_get_forecasts():
    g = make_grid(2, 3, seed=4, levels=(0.0,))  # two rooms that were never live
    train, test = rows_of(g, range(3)), rows_of(g, [3], known=False)
    for model in (
        fc.GradientBoostingForecaster(DAY, **FAST_GBM),
        fc.LSTMForecaster(DAY, **TINY_LSTM),
        fc.MSTLForecaster(),
    ):
        p = model.fit(g, train).predict(g, test)
        np.testing.assert_array_equal(p, np.zeros(len(test)))
    few = fc.GradientBoostingForecaster(10, **FAST_GBM).fit(g, train[:5])
    assert few.fit_summary_["fallback"] == "naive"
    np.testing.assert_array_equal(few.predict(g, test), np.zeros(len(test)))


def test_make_forecaster_names():
    for name in fc.MODEL_NAMES:
        lead = DAY if name == "mstl" else 10
        assert fc.make_forecaster(name, lead).name == name
    with pytest.raises(ValueError, match="unknown forecaster"):
        fc.make_forecaster("prophet", DAY)


def test_same_minute_medians_by_hand():
    """One value a day per room (day 2 of room a a spike of 100): the median of the same
    minute over the last 7/14/28 days a lead may read, NaN-aware, never across rooms."""
    days = 5
    day = np.repeat(np.arange(days), DAY).astype(np.float64)
    a = np.where(day == 2, 100.0, day)
    y = np.concatenate([a, 1000 + day])  # room b's values are never room a's medians
    starts = np.repeat([0, days * DAY], days * DAY)
    t = np.array([4 * DAY + 7, 0 + 5, days * DAY + DAY + 3])  # a's day 4, a's day 0, b's day 1
    got = fc.same_minute_medians(y, t, DAY, starts)
    np.testing.assert_array_equal(got[0], [2.0, 2.0, 2.0])  # median(3, 100, 1, 0)
    assert np.isnan(got[1]).all()  # no earlier day
    np.testing.assert_array_equal(got[2], [1000.0] * 3)
    np.testing.assert_array_equal(fc.same_minute_medians(y, t[:1], 10, starts)[0], [2.0] * 3)
    # a lead over a day skips the days it may not read: days 2, 1, 0
    np.testing.assert_array_equal(
        fc.same_minute_medians(y, t[:1], DAY + 1, starts, days=(2, 7)), [[50.5, 1.0]]
    )


def test_a_champion_fitted_before_the_medians_still_forecasts(grid, tomorrow, monkeypatch):
    """Last night's champion was pickled with the features of its day: a gradient boosting
    model picks its features by name, an LSTM without ``profile_days`` reads no medians."""
    train = rows_of(grid, range(10))
    with monkeypatch.context() as m:
        m.setattr(fc, "PROFILE", ())
        m.setattr(fc, "same_minute_medians", lambda y, rows, *a, **k: np.empty((0, len(rows))).T)
        old = fc.GradientBoostingForecaster(DAY, **FAST_GBM).fit(grid, train)
        then = old.predict(grid, tomorrow)
    assert not set(fc.PROFILE) & set(old.feature_names_)
    np.testing.assert_array_equal(old.predict(grid, tomorrow), then)
    old.feature_names_ = [*old.feature_names_[:-1], "a_feature_no_longer_made"]
    with pytest.raises(fc.TrainingError, match="a_feature_no_longer_made"):
        old.predict(grid, tomorrow)

    lstm = fc.LSTMForecaster(DAY, multivariate=True, profile_days=(), **TINY_LSTM)
    lstm.fit(grid, train)
    del lstm.profile_days  # as unpickled from before the attribute existed
    assert len(lstm.channels) == 1 + len(EXOG) + len(fc.CALENDAR)
    assert np.isfinite(lstm.predict(grid, tomorrow)).all()


def test_mstl_in_a_process_pool_forecasts_as_in_process(monkeypatch):
    g = make_grid(2, 4, seed=5)
    test = rows_of(g, [3, 4], known=False)
    alone = fc.MSTLForecaster(history_days=3).predict(g, test)
    monkeypatch.setattr(fc, "POOL_MIN_ROOM_DAYS", 1)
    pooled = fc.MSTLForecaster(history_days=3, n_jobs=2).predict(g, test)
    np.testing.assert_allclose(pooled, alone, rtol=1e-9)
    assert alone.max() > 0


def test_lstm_losses():
    assert fc.LSTMForecaster(DAY).loss == "median"
    with pytest.raises(ValueError, match="loss must be one of median, mse"):
        fc.LSTMForecaster(DAY, loss="mae")


def test_room_starts_are_computed_once_per_grid():
    g = small_grid()
    starts = fc.room_starts(g)
    assert fc.room_starts(g) is starts  # kept: every fit and predict of a night asks
    other = g.iloc[6:].reset_index(drop=True)  # room b alone: its own starts
    np.testing.assert_array_equal(fc.room_starts(other), [0] * 6)
    shorter = small_grid().iloc[:-1]
    np.testing.assert_array_equal(fc.room_starts(shorter), [0] * 6 + [6] * 5)
