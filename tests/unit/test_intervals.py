"""Conformal prediction intervals (mlcore.intervals): by hand, calibration, honesty, bounds."""

from __future__ import annotations

import numpy as np
import pytest

from mlcore.intervals import ConformalInterval, conformal_quantile, fit_power, leave_one_day_out

ONE_BAND = {"power": 0.0, "level_edges": (), "min_count": 1, "min_days": 1}


def test_conformal_quantile_by_hand():
    nine = np.arange(1.0, 10.0)
    assert conformal_quantile(nine, 0.9) == 9.0  # ceil(10 · 0.9) = 9th smallest
    assert conformal_quantile(nine, 0.8) == 8.0  # ceil(10 · 0.8) = 8
    assert conformal_quantile([4.0, 1.0, 3.0, 2.0], 0.5) == 3.0  # ceil(5 · 0.5) = 3rd, not 2.5
    assert conformal_quantile([1.0, 2.0], 0.9) == 2.0  # ceil(2.7) = 3 > n: the largest
    with pytest.raises(ValueError, match="no scores"):
        conformal_quantile([], 0.5)


def test_interval_by_hand():
    # Nine residuals -3..5 around a forecast of 10. At 80%: upper = the ceil(10 · 0.9) = 9th
    # smallest (5), lower = the floor(10 · 0.1) = 1st (-3). At 60%: the 8th (4) and 2nd (-2).
    actual = 10.0 + np.arange(-3.0, 6.0)
    forecast = np.full(9, 10.0)
    lo, hi = ConformalInterval(0.8, **ONE_BAND).fit(actual, forecast).interval([10.0, 20.0])
    np.testing.assert_allclose(lo, [7.0, 17.0])
    np.testing.assert_allclose(hi, [15.0, 25.0])
    lo, hi = ConformalInterval(0.6, **ONE_BAND).fit(actual, forecast).interval([10.0])
    np.testing.assert_allclose([lo[0], hi[0]], [8.0, 14.0])
    # Normalised by sqrt(f + 1): residuals scored at f = 3 (scale 2) widen 3× at f = 35.
    model = ConformalInterval(0.8, **{**ONE_BAND, "power": 0.5})
    lo, hi = model.fit(3.0 + 2 * np.arange(-3.0, 6.0), np.full(9, 3.0)).interval([35.0])
    np.testing.assert_allclose([lo[0], hi[0]], [35.0 - 3 * 6, 35.0 + 5 * 6])


def simulate(kind: str, rng, days: int = 6) -> tuple[np.ndarray, ...]:
    """Rooms at 2, 20, 200 and 2,000 viewers a minute (two each), live 8 hours a day with a
    daily shape, a forecast with a 10% model error, Poisson or negative binomial counts."""
    minute = np.arange(1440)
    live = ((minute >= 480) & (minute < 720)) | ((minute >= 1140) & (minute < 1380))
    shape = 1 + 0.6 * np.sin(2 * np.pi * minute / 1440)
    parts = []
    for level in (2, 20, 200, 2000):
        for room in range(2):
            for day in range(days):
                mu = np.where(live, level * shape, 0.0)
                forecast = mu * rng.lognormal(0, 0.1, 1440)
                if kind == "poisson":
                    actual = rng.poisson(mu)
                else:  # negative binomial, size 5: variance mu + mu² / 5
                    actual = rng.poisson(rng.gamma(5.0, np.maximum(mu, 1e-12) / 5.0))
                parts.append(
                    (actual, forecast, np.full(1440, f"{level}-{room}"), np.full(1440, day))
                    + (np.full(1440, level), live)
                )
    return tuple(np.concatenate(cols) for cols in zip(*parts, strict=True))


@pytest.mark.parametrize("kind", ["poisson", "negative_binomial"])
def test_coverage_is_near_nominal_at_every_level_out_of_sample(kind):
    rng = np.random.default_rng(0 if kind == "poisson" else 1)
    actual, forecast, room, day, level, live = simulate(kind, rng)
    lo, hi = leave_one_day_out(actual, forecast, day, room, coverage=0.8)
    inside = (actual >= lo) & (actual <= hi)
    for lvl in (2, 20, 200, 2000):
        rows = live & (level == lvl)
        assert 0.75 <= inside[rows].mean() <= 0.85, (lvl, inside[rows].mean())
    assert inside[~live].all()  # offline: forecast 0, actual 0
    busy, quiet = live & (level == 2000), live & (level == 2)
    assert (hi - lo)[busy].mean() > 50 * (hi - lo)[quiet].mean()  # widths follow the level


def test_fitted_power_is_higher_for_overdispersed_counts():
    rng = np.random.default_rng(2)
    p_poisson = fit_power(*simulate("poisson", rng, days=2)[:2])
    p_nb = fit_power(*simulate("negative_binomial", rng, days=2)[:2])
    assert 0.4 < p_poisson < p_nb <= 1.0
    assert fit_power(np.ones(10), np.ones(10)) == 0.5  # too few live rows: the default


def test_leave_one_day_out_never_uses_the_days_own_residuals():
    # Day 0 errs by ±50, days 1-3 by ~±1: calibrated on the other days, day 0's interval is
    # narrow and misses; had day 0's residuals (a quarter of all) been used, it would be ±50.
    rng = np.random.default_rng(3)
    day = np.repeat([0, 1, 2, 3], 400)
    forecast = np.full(day.size, 100.0)
    actual = forecast + rng.normal(0, 1, day.size)
    actual[day == 0] = 100.0 + 50.0 * rng.choice([-1.0, 1.0], 400)
    lo, hi = leave_one_day_out(actual, forecast, day)
    on_day0 = day == 0
    assert ((actual >= lo) & (actual <= hi))[on_day0].mean() == 0.0
    assert (hi - lo)[on_day0].max() < 10
    in_sample_lo, in_sample_hi = ConformalInterval().fit(actual, forecast).interval([100.0])
    assert in_sample_hi[0] - in_sample_lo[0] > 90  # what a leaky version would have given
    # Days 1-3 see day 0's wild residuals in their calibration: wider than day 0's own.
    assert (hi - lo)[day == 1].mean() > (hi - lo)[on_day0].mean()
    with pytest.raises(ValueError, match="at least two days"):
        leave_one_day_out(actual[on_day0], forecast[on_day0], day[on_day0])


def test_bounds_are_ordered_non_negative_and_hold_the_forecast():
    rng = np.random.default_rng(4)
    forecast = rng.uniform(0, 50, 2000)
    actual = forecast + rng.uniform(5, 20, 2000)  # the model always forecasts too low
    model = ConformalInterval(min_count=10).fit(actual, forecast)
    f = np.r_[forecast[:500], 0.0, -3.0, 1e6]
    lo, hi = model.interval(f)
    point = np.maximum(f, 0.0)
    assert (lo >= 0).all() and (lo <= point).all() and (point <= hi).all()
    assert lo.dtype == np.float64 and hi.shape == f.shape
    assert np.isfinite(hi).all()


def test_groups_fall_back_to_pooled_quantiles():
    rng = np.random.default_rng(5)
    groups = np.r_[np.full(1000, "busy"), np.full(5, "new")]
    forecast = np.full(groups.size, 30.0)
    actual = forecast + rng.normal(0, 3, groups.size)
    model = ConformalInterval(min_count=50).fit(actual, forecast, groups, np.arange(groups.size))
    lo, hi = model.interval([30.0, 30.0, 30.0], ["busy", "new", "never seen"])
    assert model.n_fallback_ == 2
    assert lo[1] == lo[2] and hi[1] == hi[2]  # both from the pooled band
    # A group's quantiles need min_days distinct days: one day of residuals is not enough.
    one_day = ConformalInterval(min_count=50, min_days=2).fit(
        actual, forecast, groups, np.zeros(groups.size)
    )
    one_day.interval([30.0], ["busy"])
    assert one_day.n_fallback_ == 1


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="coverage"):
        ConformalInterval(1.2)
    with pytest.raises(ValueError, match="power"):
        ConformalInterval(power="sqrt")
    with pytest.raises(ValueError, match="level_edges"):
        ConformalInterval(level_edges=(10, 1))
    with pytest.raises(ValueError, match="actual holds 1 NaN"):
        ConformalInterval().fit([1.0, np.nan], [1.0, 2.0])
    with pytest.raises(ValueError, match="actual has 1 rows"):
        ConformalInterval().fit([1.0], [1.0, 2.0])
    with pytest.raises(RuntimeError, match="before fit"):
        ConformalInterval().interval([1.0])
