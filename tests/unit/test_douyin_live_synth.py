"""The synthetic Douyin live-room generator: the real export's format, minutes that continue
from one delivery to the next, the structure a forecaster faces (sessions, weekends, festivals)
and the real export's quirks on request."""

from __future__ import annotations

import ast
import datetime as dt
from pathlib import Path

import holidays
import numpy as np
import pandas as pd
import pytest
from conftest import shared_data

from mlcore.synth.douyin_live import NATURAL, PAID, SOURCE, write_delivery

COUNTS = (
    "UV_VALUE", "COMMENT_CNT", "INCR_FANS_CNT", "LEAVE_UCNT", "FANS_CLUB_UCNT", "PAY_ORDER_GMV",
    "ONLINE_USER_CNT", "WATCH_UCNT", "PAY_CNT", "PAY_UCNT",
)  # fmt: skip
HEADER = (
    ",natural_flow_trend_index,pay_flow_trend_index,UV_VALUE,COMMENT_CNT,date_time,INCR_FANS_CNT,"
    "LEAVE_UCNT,FANS_CLUB_UCNT,PAY_ORDER_GMV,ONLINE_USER_CNT,WATCH_UCNT,PAY_CNT,PAY_UCNT"
)
# Four ordinary weeks of March 2026 (no holiday in China between the Spring Festival and Qingming).
CLEAN = {"seed": 1, "rooms": 8, "days": 28}
CLEAN_DS = dt.date(2026, 3, 29)


def _folder(root: Path, ds: dt.date | str) -> Path:
    return Path(root) / "raw" / SOURCE / f"ds={ds}"


def _read(root: Path, ds: dt.date | str, counts: dict[str, int]) -> dict[str, pd.DataFrame]:
    """Each file as pandas reads it, the dicts kept as text."""
    return {
        name: pd.read_csv(_folder(root, ds) / name, index_col=0, dtype={1: str, 2: str})
        for name in counts
    }


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    root = tmp_path_factory.mktemp("douyin-clean")
    counts = write_delivery(root, CLEAN_DS, **CLEAN)
    return root, counts, _read(root, CLEAN_DS, counts)


@pytest.fixture(scope="module")
def with_defects(tmp_path_factory):
    """The same small delivery clean and with defects."""
    root = tmp_path_factory.mktemp("douyin-defects")
    ds, options = dt.date(2019, 12, 3), {"seed": 5, "rooms": 6, "days": 7}
    clean = write_delivery(root / "clean", ds, **options)
    dirty = write_delivery(root / "dirty", ds, **options, defects=True)
    return (
        ds,
        _read(root / "clean", ds, clean),
        _read(root / "dirty", ds, dirty),
        {name: (_folder(root / "dirty", ds) / name).read_text(encoding="utf-8") for name in dirty},
    )


def _dicts(column: pd.Series) -> list[dict]:
    return [ast.literal_eval(text) for text in column]


def _session_starts(df: pd.DataFrame) -> pd.Series:
    """Times at which a session begins: a row whose minute before is not in the file."""
    t = pd.to_datetime(df.date_time).sort_values()
    return t[t.diff() != pd.Timedelta(minutes=1)]


def test_layout_and_header(clean):
    root, counts, frames = clean
    assert len(counts) == CLEAN["rooms"]
    for name in counts:
        room_id = name.split("/")[0].removeprefix("room=")
        assert len(room_id) == 19 and room_id.isdigit()
        assert name == f"room={room_id}/live_metrics_{room_id}_{CLEAN_DS}.csv"
        raw = (_folder(root, CLEAN_DS) / name).read_bytes()
        assert raw.decode("utf-8").split("\n", 1)[0] == HEADER
        assert b"\r" not in raw and raw.endswith(b"\n")
        assert raw.count(b"\n") == counts[name] + 1
    assert len({name.split("/")[0] for name in counts}) == CLEAN["rooms"]


def test_header_is_the_real_one():
    sample = shared_data("douyin-live", "predict.csv")
    with open(sample, encoding="utf-8", newline="") as f:
        assert f.readline().rstrip("\r\n") == HEADER


def test_number_formats_follow_the_sample(clean):
    root, counts, _ = clean
    name = next(iter(counts))
    lines = (_folder(root, CLEAN_DS) / name).read_text(encoding="utf-8").splitlines()[1:200]
    for line in lines:
        before, natural, between, paid, after = line.split('"')
        assert between == "," and before.endswith(",") and before[:-1].isdigit()
        fields = after.lstrip(",").split(",")
        (uv, comment, when, fans, leave, club, gmv, online, watch, pay, payers) = fields
        dt.datetime.strptime(when, "%Y-%m-%d %H:%M:%S")
        assert comment.isdigit() and online.isdigit()
        for text in (uv, fans, leave, club, gmv, watch, pay, payers):
            assert text.endswith(".0") and text[:-2].isdigit()


def test_dicts_parse_with_real_keys_and_totals(clean):
    _, _, frames = clean
    for df in frames.values():
        head = df.head(300)
        natural, paid = _dicts(head.natural_flow_trend_index), _dicts(head.pay_flow_trend_index)
        for n, p in zip(natural, paid, strict=True):
            assert tuple(n) == NATURAL and tuple(p) == PAID
            assert n["全部自然流量"] == sum(v for k, v in n.items() if k != "全部自然流量")
            assert p["全部付费流量"] == sum(v for k, v in p.items() if k != "全部付费流量")
            assert all(isinstance(v, int) and v >= 0 for v in [*n.values(), *p.values()])
        totals = [n["全部自然流量"] + p["全部付费流量"] for n, p in zip(natural, paid, strict=True)]
        if sum(totals):  # the channels bring about the viewers entering, not exactly them
            assert 0.7 < sum(totals) / head.WATCH_UCNT.sum() < 1.3


def test_clean_counts_are_nonnegative_integers_one_row_per_minute(clean):
    _, _, frames = clean
    for df in frames.values():
        values = df[list(COUNTS)].to_numpy()
        assert (values >= 0).all() and (values == np.round(values)).all()
        assert df.index.tolist() == list(range(len(df)))
        assert df.date_time.is_monotonic_increasing and df.date_time.is_unique
        t = pd.to_datetime(df.date_time)
        assert t.min() >= pd.Timestamp(CLEAN_DS - dt.timedelta(days=CLEAN["days"] - 1))
        assert t.max() < pd.Timestamp(CLEAN_DS + dt.timedelta(days=1))
        assert (t.dt.second == 0).all()
        payers = df.PAY_UCNT.to_numpy()
        assert (payers <= df.PAY_CNT.to_numpy()).all()
        online = df.ONLINE_USER_CNT.to_numpy()
        uv = np.where(online > 0, df.PAY_ORDER_GMV.to_numpy() // np.maximum(online, 1), 0)
        assert (df.UV_VALUE.to_numpy() == uv).all()


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    options = {"rooms": 3, "days": 2, "defects": True}
    a = write_delivery(tmp_path / "a", "2026-05-02", seed=7, **options)
    b = write_delivery(tmp_path / "b", "2026-05-02", seed=7, **options)
    c = write_delivery(tmp_path / "c", "2026-05-02", seed=8, **options)
    assert a == b and set(a) != set(c)
    for name in a:
        first = (_folder(tmp_path / "a", "2026-05-02") / name).read_bytes()
        assert first == (_folder(tmp_path / "b", "2026-05-02") / name).read_bytes()


def test_next_delivery_continues_the_history(tmp_path):
    day = dt.date(2019, 11, 30)
    later = write_delivery(tmp_path / "later", day + dt.timedelta(days=2), seed=2, rooms=5, days=3)
    alone = write_delivery(tmp_path / "alone", day, seed=2, rooms=5, days=1)
    assert [n.split("/")[0] for n in later] == [n.split("/")[0] for n in alone]
    later_frames = _read(tmp_path / "later", day + dt.timedelta(days=2), later)
    alone_frames = _read(tmp_path / "alone", day, alone)
    rows = 0
    for (_, a), (_, b) in zip(later_frames.items(), alone_frames.items(), strict=True):
        a = a[a.date_time.str.startswith(day.isoformat())].reset_index(drop=True)
        pd.testing.assert_frame_equal(a, b)
        rows += len(b)
    assert rows > 0


def test_sessions_start_at_different_times(clean):
    _, _, frames = clean
    varied = 0
    for df in frames.values():
        starts = _session_starts(df)
        starts = starts[starts.dt.hour > 0]  # not a late session running past midnight
        if len(starts) >= 5:
            minutes = starts.dt.hour * 60 + starts.dt.minute
            varied += minutes.nunique() >= 3 and minutes.std() > 5
            assert starts.dt.date.nunique() >= 5  # live on many days, not all in one
    assert varied >= len(frames) - 1


def test_rooms_differ_in_size_and_schedule(clean):
    _, counts, frames = clean
    means = sorted(df.WATCH_UCNT.mean() for df in frames.values())
    assert means[-1] > 4 * means[0]
    rows_per_day = sorted(n / CLEAN["days"] for n in counts.values())
    assert rows_per_day[-1] > 2 * rows_per_day[0]
    live_days = [pd.to_datetime(df.date_time).dt.date.nunique() for df in frames.values()]
    assert min(live_days) < CLEAN["days"]  # some days skipped


def test_weekends_differ_from_working_days(clean):
    _, _, frames = clean
    calendar = holidays.China(years=CLEAN_DS.year)
    differ = 0
    for df in frames.values():
        daily = df.groupby(df.date_time.str[:10]).WATCH_UCNT.mean()
        off = np.array([not calendar.is_working_day(dt.date.fromisoformat(d)) for d in daily.index])
        differ += abs(np.log(daily[off].median() / daily[~off].median())) > 0.1
    assert differ > len(frames) / 2


def test_singles_day_beats_the_ordinary_days_after_it(tmp_path):
    ds = dt.date(2025, 11, 25)
    counts = write_delivery(tmp_path, ds, seed=4, rooms=6, days=16)
    higher = live = 0
    for df in _read(tmp_path, ds, counts).values():
        daily = df.groupby(df.date_time.str[:10]).WATCH_UCNT.mean()
        if "2025-11-11" in daily:
            live += 1
            higher += daily["2025-11-11"] > daily[daily.index >= "2025-11-13"].median()
    assert live >= 5 and higher >= live - 1


def test_some_rooms_export_watch_ucnt_only(clean):
    _, _, frames = clean
    kinds = []
    for df in frames.values():
        others = df[[c for c in COUNTS if c != "WATCH_UCNT"]].to_numpy()
        dicts = _dicts(df.natural_flow_trend_index.head(50)) + _dicts(
            df.pay_flow_trend_index.head(50)
        )
        only = not others.any() and not any(any(d.values()) for d in dicts)
        kinds.append(only)
        assert df.WATCH_UCNT.sum() > 0
    assert 1 <= sum(kinds) <= len(kinds) / 2


def test_defects_out_of_order_repeated_and_missing_minutes(with_defects):
    _, clean, dirty, _ = with_defects
    assert clean.keys() == dirty.keys()
    unsorted = repeated = missing = 0
    for name, df in dirty.items():
        assert df.index.tolist() == list(range(len(df)))  # 0..n-1 down the file, as pandas
        unsorted += not df.date_time.is_monotonic_increasing
        repeated += df.date_time.duplicated().sum()
        missing += len(set(clean[name].date_time) - set(df.date_time))
        assert set(df.date_time) <= set(clean[name].date_time)  # no minute out of the sessions
    assert unsorted >= 1 and repeated >= 1 and missing >= 1


def test_defects_leave_a_few_rows_to_quarantine(with_defects):
    _, _, dirty, _ = with_defects
    negative = broken = 0
    for df in dirty.values():
        negative += int((df[list(COUNTS)] < 0).any(axis=1).sum())
        for column in ("natural_flow_trend_index", "pay_flow_trend_index"):
            cut = df[column][~df[column].str.endswith("}")]
            for text in cut:
                with pytest.raises(SyntaxError):
                    ast.literal_eval(text)
            broken += len(cut)
    assert 1 <= negative <= 5 and 1 <= broken <= 5


def test_defective_rows_keep_the_clean_values(with_defects):
    _, clean, dirty, _ = with_defects
    for name, df in dirty.items():
        ok = df.drop_duplicates("date_time", keep="first")
        ok = ok[(ok[list(COUNTS)] >= 0).all(axis=1)]
        ok = ok[ok.natural_flow_trend_index.str.endswith("}")]
        merged = ok.merge(clean[name], on="date_time", suffixes=("", "_clean"))
        assert len(merged) == len(ok)
        for column in COUNTS:  # a repeated minute may carry other values; its first copy not
            same = merged[column] == merged[f"{column}_clean"]
            assert same.mean() > 0.99


def test_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError):
        write_delivery(tmp_path, "2026-01-01", rooms=0)
    with pytest.raises(ValueError):
        write_delivery(tmp_path, "2026-01-01", days=0)
    with pytest.raises(ValueError):
        write_delivery(tmp_path, "2026-01-01", seed=-1)
