"""The douyin_live source end to end up to staging, through the steps (no pipeline): the real
sample, a delivery written by hand with each defect validation quarantines, overlapping
deliveries, and the synthetic generator's delivery with its defects."""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path

import pytest
from conftest import shared_data

from mlcore import steps
from mlcore.config import Settings
from mlcore.lake import LocalLake
from mlcore.sources.douyin_live import EXPORT_COLUMNS, SAMPLE_FILE, SAMPLE_ROOM, SOURCE
from mlcore.warehouse import connect

NAME = SOURCE.name
D = dt.date(2024, 3, 10)
D1 = D + dt.timedelta(days=1)

# The export's channel keys in the real order, with the staging column each one fills
# (sql/douyin_live/01_staging_metrics.sql).
NATURAL = {
    "短视频引流": "nat_short_video",
    "抖音商城推荐": "nat_mall_recommend",
    "直播推荐": "nat_live_recommend",
    "搜索": "nat_search",
    "个人主页&店铺&橱窗": "nat_profile_shop",
    "其他": "nat_other",
    "头条西瓜": "nat_toutiao_xigua",
    "活动页": "nat_activity_page",
    "全部自然流量": "natural_total",
    "关注": "nat_follow",
}
PAID = {
    "千川PC版": "paid_qianchuan_pc",
    "其他广告": "paid_other_ads",
    "千川品牌广告": "paid_qianchuan_brand",
    "全部付费流量": "paid_total",
    "品牌广告": "paid_brand_ads",
    "小店随心推": "paid_suixintui",
}
CHANNELS = {**NATURAL, **PAID}
# A value of its own for every channel: a column read from the wrong key shows.
DISTINCT = {key: float(i + 1) for i, key in enumerate(CHANNELS)}


def _settings(root: Path) -> Settings:
    return Settings(lake=str(root / "lake"), warehouse=root / "w.duckdb")


def _query(settings: Settings, sql: str, params=None) -> list[tuple]:
    con = connect(settings.warehouse, read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def _dict(keys, values: dict[str, float]) -> str:
    """A channel dict as pandas writes it: {'直播推荐': 8, '搜索': 0}."""
    return "{" + ", ".join(f"'{k}': {values[k]:g}" for k in keys if k in values) + "}"


def _line(
    index: int, at: str, watch: float, channels: dict[str, float] | None = None, natural=None
) -> str:
    channels = channels if channels is not None else {"直播推荐": 2, "关注": 3}
    nat = natural if natural is not None else _dict(NATURAL, channels)
    paid = _dict(PAID, channels)
    # UV_VALUE, COMMENT_CNT, date_time, INCR_FANS_CNT, LEAVE_UCNT, FANS_CLUB_UCNT,
    # PAY_ORDER_GMV, ONLINE_USER_CNT, WATCH_UCNT, PAY_CNT, PAY_UCNT
    return f'{index},"{nat}","{paid}",0.0,1,{at},0.0,1.0,0.0,0.0,3,{watch},0.0,0.0'


def _export(lines: list[str]) -> bytes:
    """A room's export: pandas's unnamed index column, CRLF line ends."""
    return "\r\n".join(["," + ",".join(EXPORT_COLUMNS), *lines, ""]).encode()


def _deliver(lake: LocalLake, ds: dt.date, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        lake.write_bytes(f"raw/{NAME}/ds={ds.isoformat()}/{name}", data)


def _staged(settings: Settings) -> dict[tuple[str, dt.datetime], dict]:
    """staging.douyin_live_metrics by (room, minute), each row as a dict."""
    con = connect(settings.warehouse, read_only=True)
    try:
        cur = con.execute("select * from staging.douyin_live_metrics")
        names = [c[0] for c in cur.description]
        rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    finally:
        con.close()
    return {(r["room_id"], r["ts"]): r for r in rows}


def _at(day: dt.date, hh_mm: str) -> dt.datetime:
    return dt.datetime.fromisoformat(f"{day.isoformat()} {hh_mm}")


# ---- the real sample -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    path = shared_data("douyin-live", SAMPLE_FILE)
    settings = _settings(tmp_path_factory.mktemp("douyin-sample"))
    ds = dt.date.fromisoformat(SOURCE.sample_ds)
    SOURCE.load_sample()(LocalLake(settings.lake), ds, path.parents[1])
    day = ds.isoformat()
    done = {
        "ingest": steps.ingest(NAME, day, settings),
        "validate": steps.validate(NAME, day, settings),
        "stage": steps.stage(NAME, day, settings),
    }
    return settings, done


def test_the_real_sample_loads_validates_and_stages_whole(sample):
    settings, done = sample
    assert done["ingest"]["tables"]["metrics"]["rows"] == 696
    assert done["ingest"]["tables"]["metrics"]["rejected"] == 0
    validated = done["validate"]["tables"]["metrics"]
    assert (validated["rows"], validated["quarantined"]) == (696, 0)
    assert (validated["failed_critical"], validated["warnings"]) == ([], [])
    assert done["stage"]["tables"] == {"staging.douyin_live_metrics": 696}
    assert _query(
        settings,
        "select count(*), count(distinct ts), list(distinct room_id), min(ts)::date, "
        "max(ts)::date from staging.douyin_live_metrics",
    ) == [(696, 696, [SAMPLE_ROOM], dt.date(2019, 12, 2), dt.date(2019, 12, 2))]


def test_the_sample_minute_0813_is_flattened_channel_by_channel(sample):
    settings, _ = sample
    row = _staged(settings)[(SAMPLE_ROOM, dt.datetime(2019, 12, 2, 8, 13))]
    # the file's line: {'直播推荐': 1, '个人主页&店铺&橱窗': 1, '其他': 1, '全部自然流量': 7,
    # '关注': 4, every other channel 0}, WATCH_UCNT 19.0, ONLINE_USER_CNT 11
    natural = {"nat_live_recommend": 1, "nat_profile_shop": 1, "nat_other": 1}
    natural |= {"natural_total": 7, "nat_follow": 4}
    for column in CHANNELS.values():
        assert row[column] == natural.get(column, 0), column
    assert (row["watch_ucnt"], row["online_users"], row["leave_ucnt"]) == (19, 11, 10)
    assert row["comment_cnt"] == 9


# ---- a delivery written by hand, with every defect, then an overlapping one ----------------------
ROOM_A, ROOM_B = "7100000000000000001", "6200000000000000002"
OVERLAP = _at(D, "10:05")


def _defective_delivery() -> dict[str, bytes]:
    a = [_line(i, f"{D} 10:{i:02d}:00", 10 + i, DISTINCT) for i in range(12)]
    a.append(_line(12, f"{D} 10:03:00", 99, DISTINCT))  # the minute 10:03 again
    a.append(_line(13, f"{D} 10:12:00", -4, DISTINCT))  # a negative WATCH_UCNT
    b = [_line(i, f"{D} 20:{i:02d}:00", 20 + i) for i in range(12)]
    cut = "{'短视频引流': 0, '抖音商城推荐': 0, '直播推"  # the dict literal cut short
    b.append(_line(12, f"{D} 20:12:00", 7, natural=cut))
    b.append(_line(13, f"{D1} 00:05:00", 7))  # the minute after the delivery day
    return {
        f"room={ROOM_A}/export.csv": _export(a),
        f"room={ROOM_B}/live_metrics.csv.gz": gzip.compress(_export(b)),
    }


EXPECTED_QUARANTINE = {
    (ROOM_A, _at(D, "10:03"), 99.0): "a room's minute delivered twice",
    (ROOM_A, _at(D, "10:12"), -4.0): "negative WATCH_UCNT",
    (ROOM_B, _at(D, "20:12"), 7.0): (
        "natural_flow_trend_index is not a dict literal of channel counts"
    ),
    (ROOM_B, _at(D1, "00:05"), 7.0): "minute after the delivery day",
}


@pytest.fixture(scope="module")
def nights(tmp_path_factory):
    """D (with its defects) through ingest, validate and stage; then D+1, which delivers the
    minute D 10:05 of room A again with another value; then D staged again."""
    settings = _settings(tmp_path_factory.mktemp("douyin-nights"))
    lake = LocalLake(settings.lake)
    done: dict = {}
    _deliver(lake, D, _defective_delivery())
    done["ingest"] = steps.ingest(NAME, D.isoformat(), settings)
    done["validate"] = steps.validate(NAME, D.isoformat(), settings)
    done["stage"] = steps.stage(NAME, D.isoformat(), settings)
    done["quarantine"] = _query(
        settings,
        "select room_id, date_time, watch_ucnt, _rule, _line, _source_file, ds "
        "from quarantine.douyin_live_metrics where ds = ?",
        [D],
    )
    done["results"] = _query(
        settings,
        "select details::json->>'rule', unexpected_count, "
        "(details::json->>'sql_unexpected_count')::bigint from ops.validation_results "
        "where source = ? and ds = ?",
        [NAME, D],
    )
    done["staged_d"] = _staged(settings)

    again = [_line(0, f"{D} 10:05:00", 555, DISTINCT), _line(1, f"{D1} 09:00:00", 8)]
    _deliver(lake, D1, {f"room={ROOM_A}/export.csv": _export(again)})
    steps.ingest(NAME, D1.isoformat(), settings)
    done["validate_d1"] = steps.validate(NAME, D1.isoformat(), settings)
    steps.stage(NAME, D1.isoformat(), settings)
    done["staged_d1"] = _staged(settings)
    steps.stage(NAME, D.isoformat(), settings)
    done["staged_d_again"] = _staged(settings)
    return settings, done


def test_each_defect_is_quarantined_with_its_rule(nights):
    _, done = nights
    ingested = done["ingest"]["tables"]["metrics"]
    assert (ingested["rows"], ingested["rejected"]) == (28, 0)  # every defect loads, as text
    found = {(room, at, watch): rule for room, at, watch, rule, *_ in done["quarantine"]}
    assert found == EXPECTED_QUARANTINE
    # of the minute delivered twice, the second copy (by line) is the one quarantined
    (line,) = [q[4] for q in done["quarantine"] if q[3] == "a room's minute delivered twice"]
    assert line == 14


def test_validation_counts_each_defect(nights):
    _, done = nights
    metrics = done["validate"]["tables"]["metrics"]
    assert (metrics["rows"], metrics["quarantined"], metrics["failed_critical"]) == (28, 4, [])
    assert sorted(metrics["warnings"]) == sorted(
        [
            "minute after the delivery day: 1 row, 1 quarantined",
            "negative WATCH_UCNT: 1 row, 1 quarantined",
            "natural_flow_trend_index is not a dict literal of channel counts: "
            "1 row, 1 quarantined",
            "a room's minute delivered twice: 2 rows (1 surplus), 1 quarantined",
        ]
    )
    # GX and the SQL that picks the quarantined rows agree rule by rule (the regex rule too,
    # which GX runs as a query of its own)
    counts = {rule: (gx, sql) for rule, gx, sql in done["results"] if sql is not None}
    assert all(gx == sql for gx, sql in counts.values()), counts
    assert counts["natural_flow_trend_index is not a dict literal of channel counts"] == (1, 1)
    assert counts["pay_flow_trend_index is not a dict literal of channel counts"] == (0, 0)


def test_the_rest_is_staged_once_per_minute(nights):
    _, done = nights
    assert done["stage"]["tables"] == {"staging.douyin_live_metrics": 24}
    staged = done["staged_d"]
    assert set(staged) == {(ROOM_A, _at(D, f"10:{i:02d}")) for i in range(12)} | {
        (ROOM_B, _at(D, f"20:{i:02d}")) for i in range(12)
    }
    assert staged[(ROOM_A, _at(D, "10:03"))]["watch_ucnt"] == 13  # the first copy
    assert {r["ds"] for r in staged.values()} == {D}


def test_every_channel_fills_its_own_column(nights):
    """其他 (nat_other) is not 其他广告 (paid_other_ads), 品牌广告 (paid_brand_ads) is not
    千川品牌广告 (paid_qianchuan_brand), whatever the order of the keys in the dict."""
    _, done = nights
    row = done["staged_d"][(ROOM_A, _at(D, "10:00"))]
    assert {column: row[column] for column in CHANNELS.values()} == {
        column: DISTINCT[key] for key, column in CHANNELS.items()
    }
    assert (row["nat_other"], row["paid_other_ads"]) == (DISTINCT["其他"], DISTINCT["其他广告"])
    assert (row["paid_brand_ads"], row["paid_qianchuan_brand"]) == (
        DISTINCT["品牌广告"],
        DISTINCT["千川品牌广告"],
    )
    # a channel the dict lacks is 0
    row = done["staged_d"][(ROOM_B, _at(D, "20:00"))]
    assert (row["nat_live_recommend"], row["nat_follow"]) == (2, 3)
    assert all(
        row[c] == 0 for c in CHANNELS.values() if c not in ("nat_live_recommend", "nat_follow")
    )


def test_a_minute_delivered_again_later_takes_the_newest_value(nights):
    _, done = nights
    assert done["validate_d1"]["tables"]["metrics"]["quarantined"] == 0
    as_of_d1 = done["staged_d1"]
    assert as_of_d1[(ROOM_A, OVERLAP)]["watch_ucnt"] == 555
    assert as_of_d1[(ROOM_A, _at(D1, "09:00"))]["watch_ucnt"] == 8
    assert len(as_of_d1) == 25  # D's 24 minutes, one of them replaced, and D+1's one
    # staged again as of D, the later delivery is not seen
    for as_of_d in (done["staged_d"], done["staged_d_again"]):
        assert as_of_d[(ROOM_A, OVERLAP)]["watch_ucnt"] == 15
        assert (ROOM_A, _at(D1, "09:00")) not in as_of_d
    assert done["staged_d_again"] == done["staged_d"]


# ---- the synthetic generator ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    from mlcore.synth.douyin_live import write_delivery

    settings = _settings(tmp_path_factory.mktemp("douyin-synth"))
    counts = write_delivery(settings.lake, D, seed=7, rooms=2, days=2, defects=True)
    day = D.isoformat()
    done = {
        "counts": counts,
        "ingest": steps.ingest(NAME, day, settings),
        "validate": steps.validate(NAME, day, settings),  # raises on a critical failure
        "stage": steps.stage(NAME, day, settings),
    }
    return settings, done


def test_the_synthetic_delivery_with_defects_ingests_validates_and_stages(synthetic):
    settings, done = synthetic
    assert len(done["counts"]) == 2 and all(done["counts"].values())  # two rooms live
    ingested = done["ingest"]["tables"]["metrics"]
    assert (ingested["rows"], ingested["rejected"]) == (sum(done["counts"].values()), 0)
    validated = done["validate"]["tables"]["metrics"]
    assert validated["failed_critical"] == []
    # at least one negative count and one cut dict per delivery (DEFECT_RATES)
    assert validated["quarantined"] >= 2
    rules = {
        r[0] for r in _query(settings, "select distinct _rule from quarantine.douyin_live_metrics")
    }
    assert "natural_flow_trend_index is not a dict literal of channel counts" in rules
    assert any(rule.startswith("negative ") for rule in rules)

    staged = done["stage"]["tables"]["staging.douyin_live_metrics"]
    # every minute of the delivery not quarantined, once per room
    expected = _query(
        settings,
        """
        select count(distinct (room_id, date_trunc('minute', date_time)))
        from raw.douyin_live_metrics
        anti join quarantine.douyin_live_metrics using (ds, _source_file, _line)
        where ds = ?
        """,
        [D],
    )[0][0]
    assert staged == expected > 0
    rooms, minutes, keys, first, last = _query(
        settings,
        "select count(distinct room_id), count(*), count(distinct (room_id, ts)), min(ts), "
        "max(ts) from staging.douyin_live_metrics",
    )[0]
    assert (rooms, minutes, keys) == (2, staged, staged)
    assert first >= _at(D - dt.timedelta(days=1), "00:00") and last < _at(D1, "00:00")
