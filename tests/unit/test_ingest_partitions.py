"""Partitioned deliveries (``TableSpec.partition_key``): every file of every ``<key>=<value>/``
folder of the delivery, its column from the folder's name, lineage per file, pandas's unnamed
index column, hostile folder names, reloads and CRLF exports."""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import logging

import pytest
from conftest import shared_data

from mlcore.ingest import IngestError, ingest_delivery
from mlcore.lake import LocalLake
from mlcore.sources import SourceSpec, TableSpec
from mlcore.sources.douyin_live import SAMPLE_FILE
from mlcore.sources.douyin_live import SOURCE as DOUYIN
from mlcore.warehouse import connect, table_exists

DS = dt.date(2024, 1, 31)
BASE = f"raw/live/ds={DS.isoformat()}"

# One room's minutes, exported by pandas: an unnamed index column first (the layout may have it).
MINUTES = TableSpec(
    "minutes",
    "*.csv",
    {"ts": "timestamp", "n": "integer", "note": "varchar", "room_id": "varchar"},
    key=("room_id", "ts"),
    kind="event",
    format="csv",
    csv_columns=("ts", "n", "note"),
    csv_pandas_index=True,
    partition_key="room",
    partition_column="room_id",
)
LIVE = SourceSpec("live", (MINUTES,))
NO_INDEX = SourceSpec("live", (dataclasses.replace(MINUTES, csv_pandas_index=False),))


@pytest.fixture
def env(tmp_path):
    lake = LocalLake(tmp_path / "lake")
    con = connect(tmp_path / "w.duckdb")
    yield lake, con
    con.close()


def _deliver(lake, files: dict[str, bytes], base: str = BASE) -> None:
    for name, data in files.items():
        lake.write_bytes(f"{base}/{name}", data)


def _csv(*rows: str, header: str = ",ts,n,note", eol: str = "\n") -> bytes:
    return eol.join((header, *rows, "")).encode()


def _loaded(con) -> list[tuple]:
    return con.execute(
        "select room_id, _source_file, _line, ts, n, note from raw.live_minutes order by all"
    ).fetchall()


def _rejected(con) -> list[tuple]:
    return con.execute(
        "select source_file, line, reason from ops.rejected_lines order by all"
    ).fetchall()


def _ts(hh_mm: str) -> dt.datetime:
    return dt.datetime.fromisoformat(f"{DS.isoformat()} {hh_mm}")


A = f"{BASE}/room=r1/a.csv"
B = f"{BASE}/room=r1/b.csv.gz"
C = f"{BASE}/room=r2/export-2024-01-31.csv"
# Two rooms, three files: one plain and one gzipped in r1 (the second with a value that does not
# cast and a line with a field too many), one of any other *.csv name in r2.
ROOMS = {
    "room=r1/a.csv": _csv("0,2024-01-31 10:00:00,1,a", "1,2024-01-31 10:01:00,2,b"),
    "room=r1/b.csv.gz": gzip.compress(
        _csv(
            "0,2024-01-31 10:02:00,3,c",
            "1,2024-01-31 10:03:00,x,d",
            "2,2024-01-31 10:04:00,4,e,extra",
            "3,2024-01-31 10:05:00,5,f",
        )
    ),
    "room=r2/export-2024-01-31.csv": _csv("0,2024-01-31 11:00:00,7,g"),
}
ROOMS_LOADED = [
    ("r1", A, 2, _ts("10:00"), 1, "a"),
    ("r1", A, 3, _ts("10:01"), 2, "b"),
    ("r1", B, 2, _ts("10:02"), 3, "c"),
    ("r1", B, 5, _ts("10:05"), 5, "f"),
    ("r2", C, 2, _ts("11:00"), 7, "g"),
]


# ---- every file of every folder ------------------------------------------------------------------
def test_every_file_of_every_room_folder_loads_with_its_own_lineage(env):
    lake, con = env
    _deliver(lake, ROOMS)
    report = ingest_delivery(con, lake, LIVE, DS)

    # room_id from the folder, _source_file naming each file, _line the file's own line
    assert _loaded(con) == ROOMS_LOADED
    load = report.tables["minutes"]
    assert (load.rows, load.rejected) == (5, 2)
    assert load.source_file == f"{BASE}/room=*/ (3 files)"
    # counted per file: the bad lines of the second file of r1 carry its key and true lines
    per_file = con.execute(
        "select _source_file, count(*) from raw.live_minutes group by all order by all"
    ).fetchall()
    assert per_file == [(A, 2), (B, 2), (C, 1)]
    rejected = _rejected(con)
    assert [(f, line) for f, line, _ in rejected] == [(B, 3), (B, 4)]
    assert rejected[0][2] == "n: cannot read x as integer"
    assert "TOO MANY COLUMNS" in rejected[1][2]


def test_a_file_that_does_not_match_the_glob_is_ignored_and_logged(env, caplog):
    lake, con = env
    _deliver(lake, {**ROOMS, "room=r1/readme.txt": b"notes", "room=r2/a.csv.tmp": b"partial"})
    with caplog.at_level(logging.WARNING, logger="mlcore.ingest"):
        ingest_delivery(con, lake, LIVE, DS)
    assert _loaded(con) == ROOMS_LOADED
    assert "room=r1/readme.txt" in caplog.text and "room=r2/a.csv.tmp" in caplog.text


# ---- pandas's unnamed index column ---------------------------------------------------------------
@pytest.mark.parametrize("index", ["", "Unnamed: 0"], ids=["empty", "unnamed"])
def test_the_pandas_index_column_is_skipped_and_changes_nothing(env, tmp_path, index):
    lake, con = env
    rows = ("2024-01-31 10:00:00,1,a", '2024-01-31 10:01:00,2,"b, c"')
    _deliver(
        lake,
        {
            "room=r1/a.csv": _csv(
                *(f"{i},{r}" for i, r in enumerate(rows)), header=f"{index},ts,n,note"
            )
        },
    )
    ingest_delivery(con, lake, LIVE, DS)
    with_index = _loaded(con)

    # the same table without the index column loads the same values, on the same lines
    plain_lake = LocalLake(tmp_path / "plain")
    plain_con = connect(tmp_path / "plain.duckdb")
    _deliver(plain_lake, {"room=r1/a.csv": _csv(*rows, header="ts,n,note")})
    ingest_delivery(plain_con, plain_lake, LIVE, DS)
    assert _loaded(plain_con) == with_index
    plain_con.close()
    assert [r[3:] for r in with_index] == [(_ts("10:00"), 1, "a"), (_ts("10:01"), 2, "b, c")]
    assert _rejected(con) == []


@pytest.mark.parametrize("index", ["", "Unnamed: 0"], ids=["empty", "unnamed"])
def test_an_index_column_is_refused_where_the_layout_has_none(env, index):
    lake, con = env
    _deliver(
        lake, {"room=r1/a.csv": _csv("0,2024-01-31 10:00:00,1,a", header=f"{index},ts,n,note")}
    )
    with pytest.raises(
        IngestError, match=rf"room=r1/a.csv .*the header has '{index}' outside the schema"
    ):
        ingest_delivery(con, lake, NO_INDEX, DS)
    assert not table_exists(con, "raw.live_minutes")


def test_a_layout_without_index_reads_a_file_without_one(env):
    lake, con = env
    _deliver(lake, {"room=r1/a.csv": _csv("2024-01-31 10:00:00,1,a", header="ts,n,note")})
    ingest_delivery(con, lake, NO_INDEX, DS)
    assert [r[0:3] for r in _loaded(con)] == [("r1", A, 2)]


# ---- folders -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "folder",
    ["room=a b", "room=a'b", 'room=a"b', "room=", "room=1'; drop table raw.live_minutes; --"],
)
def test_a_hostile_folder_name_is_refused_naming_it_and_nothing_loads(env, folder):
    lake, con = env
    _deliver(lake, {**ROOMS, f"{folder}/a.csv": _csv("0,2024-01-31 10:00:00,1,a")})
    with pytest.raises(IngestError, match="is not room=") as exc:
        ingest_delivery(con, lake, LIVE, DS)
    assert repr(folder) in str(exc.value)
    assert not table_exists(con, "raw.live_minutes")
    assert _rejected(con) == []


@pytest.mark.parametrize("folder", ["room=..", "room=../x", "room=."])
def test_a_path_like_folder_name_is_refused(env, folder):
    lake, con = env
    _deliver(lake, {**ROOMS, f"{folder}/a.csv": _csv("0,2024-01-31 10:00:00,1,a")})
    with pytest.raises(IngestError, match="is not room="):
        ingest_delivery(con, lake, LIVE, DS)


def test_files_outside_the_room_folders_are_ignored_and_logged(env, caplog):
    lake, con = env
    stray = {
        "top.csv": _csv("0,2024-01-31 12:00:00,9,top"),
        "shop=s1/a.csv": _csv("0,2024-01-31 12:00:00,9,shop"),
    }
    _deliver(lake, {**ROOMS, **stray})
    with caplog.at_level(logging.WARNING, logger="mlcore.ingest"):
        ingest_delivery(con, lake, LIVE, DS)
    assert _loaded(con) == ROOMS_LOADED
    assert "ignored files" in caplog.text
    assert "top.csv" in caplog.text and "shop=s1/a.csv" in caplog.text


def test_a_delivery_without_any_room_folder_says_what_it_lacks(env):
    lake, con = env
    _deliver(lake, {"a.csv": _csv("0,2024-01-31 12:00:00,9,top"), "shop=s1/a.csv": b",ts,n,note\n"})
    with pytest.raises(IngestError, match=r"delivery 2024-01-31 has no room=<value>/\*\.csv"):
        ingest_delivery(con, lake, LIVE, DS)
    assert not table_exists(con, "raw.live_minutes")


def test_the_same_export_plain_and_gzipped_in_one_folder_is_refused(env):
    lake, con = env
    data = _csv("0,2024-01-31 10:00:00,1,a")
    _deliver(lake, {"room=r1/a.csv": data, "room=r1/a.csv.gz": gzip.compress(data)})
    with pytest.raises(IngestError, match="deliver one"):
        ingest_delivery(con, lake, LIVE, DS)


# ---- reloads -------------------------------------------------------------------------------------
def test_loading_a_delivery_again_replaces_it(env):
    lake, con = env
    _deliver(lake, ROOMS)
    ingest_delivery(con, lake, LIVE, DS)
    first, first_rejected = _loaded(con), _rejected(con)
    ingest_delivery(con, lake, LIVE, DS)
    assert _loaded(con) == first == ROOMS_LOADED
    assert _rejected(con) == first_rejected
    # the delivery redone without r2's file: its rows go with it
    lake.delete_key(C)
    ingest_delivery(con, lake, LIVE, DS)
    assert _loaded(con) == ROOMS_LOADED[:4]


def test_an_unreadable_file_fails_the_delivery_and_keeps_the_previous_load(env):
    lake, con = env
    _deliver(lake, ROOMS)
    ingest_delivery(con, lake, LIVE, DS)
    before, rejected = _loaded(con), _rejected(con)

    # redelivered: r1's first file changed, and r2 gained a gzip cut short
    whole = gzip.compress(_csv(*(f"{i},2024-01-31 11:{i:02d}:00,{i},z" for i in range(50))))
    _deliver(
        lake,
        {
            "room=r1/a.csv": _csv("0,2024-01-31 10:00:00,100,changed"),
            "room=r2/b.csv.gz": whole[:-20],
        },
    )
    with pytest.raises(IngestError, match=r"room=r2/b.csv.gz of delivery 2024-01-31: cannot read"):
        ingest_delivery(con, lake, LIVE, DS)
    assert _loaded(con) == before
    assert _rejected(con) == rejected


# ---- CRLF line ends ------------------------------------------------------------------------------
def test_crlf_line_ends_load_without_rejects_or_carriage_returns(env):
    lake, con = env
    crlf = {
        "room=r1/a.csv": _csv(
            "0,2024-01-31 10:00:00,1,a", '1,2024-01-31 10:01:00,2,"b, c"', eol="\r\n"
        ),
        "room=r1/b.csv.gz": gzip.compress(_csv("0,2024-01-31 10:02:00,3,", eol="\r\n")),
    }
    _deliver(lake, crlf)
    report = ingest_delivery(con, lake, LIVE, DS)
    assert (report.tables["minutes"].rows, report.tables["minutes"].rejected) == (3, 0)
    assert _loaded(con) == [
        ("r1", A, 2, _ts("10:00"), 1, "a"),
        ("r1", A, 3, _ts("10:01"), 2, "b, c"),
        ("r1", B, 2, _ts("10:02"), 3, None),
    ]


DICT = "{'直播推荐': 1, '其他': 2}"
EXPORT_HEADER = (
    ",natural_flow_trend_index,pay_flow_trend_index,UV_VALUE,COMMENT_CNT,date_time,INCR_FANS_CNT,"
    "LEAVE_UCNT,FANS_CLUB_UCNT,PAY_ORDER_GMV,ONLINE_USER_CNT,WATCH_UCNT,PAY_CNT,PAY_UCNT"
)


def test_douyin_live_reads_a_crlf_export_of_any_name_in_its_room_folder(env):
    lake, con = env
    row = f'0,"{DICT}","{{}}",0.0,9,2019-12-02 08:13:00,0.0,10.0,0.0,0.0,11,19.0,0.0,3'
    data = _csv(row, header=EXPORT_HEADER, eol="\r\n")
    base = "raw/douyin_live/ds=2019-12-02"
    _deliver(lake, {"room=7123/part-1.csv.gz": gzip.compress(data)}, base=base)
    report = ingest_delivery(con, lake, DOUYIN, dt.date(2019, 12, 2))
    assert (report.tables["metrics"].rows, report.tables["metrics"].rejected) == (1, 0)
    got = con.execute(
        "select room_id, natural_flow_trend_index, pay_flow_trend_index, date_time, watch_ucnt, "
        "pay_ucnt, _source_file, _line from raw.douyin_live_metrics"
    ).fetchall()
    assert got == [
        (
            "7123",
            DICT,
            "{}",
            dt.datetime(2019, 12, 2, 8, 13),
            19.0,
            3.0,
            f"{base}/room=7123/part-1.csv.gz",
            2,
        )
    ]


def test_the_real_export_loads_whole(env):
    """The real sample (pandas's export, CRLF line ends) in a room folder: every line loads."""
    lake, con = env
    path = shared_data("douyin-live", SAMPLE_FILE)
    ds = dt.date(2019, 12, 2)
    DOUYIN.load_sample()(lake, ds, path.parents[1])
    report = ingest_delivery(con, lake, DOUYIN, ds)
    assert (report.tables["metrics"].rows, report.tables["metrics"].rejected) == (696, 0)
    rows, rooms, carriage_returns, counted = con.execute(
        r"""
        select count(*), list(distinct room_id),
               count(*) filter (where contains(natural_flow_trend_index || pay_flow_trend_index
                                               || room_id || _source_file, chr(13))),
               count(pay_ucnt)
        from raw.douyin_live_metrics
        """
    ).fetchone()
    assert (rows, rooms, carriage_returns, counted) == (696, ["sample"], 0, 696)
    assert _rejected(con) == []
