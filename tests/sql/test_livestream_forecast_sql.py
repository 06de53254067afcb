"""The SQL of livestream_forecast (sql/livestream_forecast/): the minute grid and gap report.

``staging.douyin_live_metrics`` is built by hand with the columns sql/douyin_live/ produces
(the real columns, every metric 0 but WATCH_UCNT unless a test says otherwise), so these tests
need neither ingest nor validation. ``ref.calendar`` comes from the holidays library.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from mlcore import calendars
from mlcore.pipelines.livestream_forecast.features import GAP_COLUMNS, MINUTE_COLUMNS
from mlcore.sqlrun import run_sql_dir
from mlcore.warehouse import connect

# National Day 2019: Oct 1-7 off, Sunday Sep 29 and Saturday Oct 12 worked.
DS = dt.date(2019, 10, 2)
STAGED = (
    "room_id varchar, ts timestamp, watch_ucnt double, online_users double, leave_ucnt double, "
    "comment_cnt double, incr_fans double, fans_club double, pay_order_gmv double, "
    "pay_cnt double, pay_ucnt double, uv_value double, natural_total double, "
    "nat_short_video double, nat_mall_recommend double, nat_live_recommend double, "
    "nat_search double, nat_profile_shop double, nat_other double, nat_toutiao_xigua double, "
    "nat_activity_page double, nat_follow double, paid_total double, paid_qianchuan_pc double, "
    "paid_other_ads double, paid_qianchuan_brand double, paid_brand_ads double, "
    "paid_suixintui double, ds date"
)


def staged(con, minutes: list[tuple[str, str, float]]) -> None:
    """staging.douyin_live_metrics with (room, 'YYYY-MM-DD HH:MM', WATCH_UCNT) rows."""
    con.execute(f"create or replace table staging.douyin_live_metrics ({STAGED})")
    frame = pd.DataFrame(minutes, columns=["room_id", "ts", "watch_ucnt"])
    frame["ts"] = pd.to_datetime(frame["ts"])
    frame["natural_total"] = frame["watch_ucnt"] * 0.5
    frame["ds"] = DS
    con.register("given", frame)
    con.execute("insert into staging.douyin_live_metrics by name select * from given")
    con.unregister("given")
    zeros = [c.split()[0] for c in STAGED.split(", ") if c.endswith(" double")]
    zeros = [c for c in zeros if c not in ("watch_ucnt", "natural_total")]
    con.execute("update staging.douyin_live_metrics set " + ", ".join(f"{c} = 0" for c in zeros))


@pytest.fixture
def con(tmp_path):
    c = connect(tmp_path / "w.duckdb")
    calendars.refresh(c, ["CN"], DS.year + 1)
    return c


def grid(con, minutes) -> pd.DataFrame:
    staged(con, minutes)
    run_sql_dir(con, "livestream_forecast", {"ds": DS})
    return con.execute("select * from features.livestream_minutes order by room_id, ts").df()


def test_every_minute_from_the_first_day_through_tomorrow_once(con):
    frame = grid(
        con,
        [
            ("a", "2019-09-30 20:00", 5.0),
            ("a", "2019-10-02 20:00", 7.0),
            ("b", "2019-10-02 09:00", 1.0),
        ],
    )
    assert tuple(frame.columns) == MINUTE_COLUMNS
    days = frame.groupby("room_id")["day"].nunique().to_dict()
    assert days == {"a": 4, "b": 2}  # a: Sep 30 .. Oct 3; b: Oct 2 .. Oct 3 (tomorrow)
    assert (frame.groupby(["room_id", "day"]).size() == 1440).all()
    assert not frame.duplicated(["room_id", "ts"]).any()
    tomorrow = frame[frame["day"] == pd.Timestamp(DS + dt.timedelta(days=1))]
    assert tomorrow["is_future"].all() and tomorrow["y"].isna().all()
    assert tomorrow["y_filled"].isna().all() and tomorrow["natural_total"].isna().all()
    assert not frame.loc[~frame["is_future"], "y_filled"].isna().any()


def test_sessions_gaps_and_off_air_minutes(con):
    # a session 10:00-10:40 with 10:05-10:07 missing (a gap), then back at 11:30 (over 30
    # minutes later: a new session, off air in between)
    minutes = [("a", f"2019-10-02 10:{m:02d}", float(m)) for m in range(41) if m not in (5, 6, 7)]
    minutes += [("a", "2019-10-02 11:30", 3.0), ("a", "2019-10-02 11:31", 4.0)]
    frame = grid(con, minutes).set_index("ts")
    at = frame.loc
    assert at["2019-10-02 10:04", "y"] == 4.0 and at["2019-10-02 10:04", "observed"]
    gap = at["2019-10-02 10:05":"2019-10-02 10:07"]
    assert gap["live"].all() and gap["imputed"].all() and gap["y"].isna().all()
    assert (gap["y_filled"] == 4.0).all()  # the last delivered value carried over the gap
    off = at["2019-10-02 10:41":"2019-10-02 11:29"]
    assert not off["live"].any() and (off["y"] == 0).all() and (off["y_filled"] == 0).all()
    assert at["2019-10-02 09:59", "y"] == 0.0 and not at["2019-10-02 09:59", "live"]
    gaps = con.execute("select * from features.livestream_gaps").df()
    assert tuple(gaps.columns) == GAP_COLUMNS
    row = gaps.iloc[0]
    assert (row["live_minutes"], row["delivered_minutes"], row["missing_minutes"]) == (43, 40, 3)
    assert (row["longest_gap_minutes"], row["sessions"]) == (3, 2)


def test_lags_and_trailing_stats_read_only_the_past_of_the_same_room(con):
    minutes = [
        ("a", f"2019-10-01 {h:02d}:{m:02d}", float(h * 60 + m))
        for h in range(24)
        for m in range(60)
    ]
    minutes += [
        ("a", f"2019-10-02 {h:02d}:{m:02d}", 10_000.0 + h * 60 + m)
        for h in range(24)
        for m in range(60)
    ]
    minutes += [("b", "2019-10-02 00:00", 99.0)]
    frame = grid(con, minutes)
    a = frame[frame["room_id"] == "a"].set_index("ts")
    row = a.loc["2019-10-02 12:00"]
    assert row["y"] == 10_720.0
    assert row["y_lag_1"] == 10_719.0 and row["y_lag_60"] == 10_660.0
    assert row["y_lag_1440"] == 720.0  # the same minute yesterday
    assert pd.isna(row["y_lag_10080"])  # a week before the room's first day
    assert row["y_mean_60"] == pytest.approx(sum(10_660.0 + i for i in range(60)) / 60)
    # tomorrow's lag of a day is today's value: known when tomorrow is forecast
    assert a.loc["2019-10-03 12:00", "y_lag_1440"] == 10_720.0
    b = frame[frame["room_id"] == "b"].set_index("ts")
    assert pd.isna(b.loc["2019-10-02 00:00", "y_lag_1"])  # no row of room a leaks into b


def test_calendar_of_china_tomorrow_included(con):
    frame = grid(con, [("a", "2019-09-28 20:00", 1.0)])
    by_day = frame.groupby("day")[
        ["is_holiday", "is_workday_shift", "is_weekend", "weekday"]
    ].first()
    assert by_day.loc["2019-10-01", "is_holiday"] == 1  # National Day
    assert by_day.loc["2019-10-03", "is_holiday"] == 1  # tomorrow, known ahead
    sunday = by_day.loc["2019-09-29"]  # worked to pay for the bridge
    assert sunday["weekday"] == 6 and sunday["is_workday_shift"] == 1 and sunday["is_weekend"] == 0
    saturday = by_day.loc["2019-09-28"]
    assert saturday["is_weekend"] == 1 and saturday["is_holiday"] == 0
    parts = frame.set_index("ts")["part_of_day"]
    assert parts["2019-10-02 05:59"] == 0 and parts["2019-10-02 06:00"] == 1
    assert parts["2019-10-02 12:00"] == 2 and parts["2019-10-02 23:59"] == 4
