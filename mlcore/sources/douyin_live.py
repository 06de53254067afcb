"""douyin_live: per-minute metrics of Douyin e-commerce live rooms, as the platform exports them.

A delivery holds one folder per room, ``raw/douyin_live/ds=YYYY-MM-DD/room=<room_id>/``, with
one or more CSV exports (any ``*.csv`` name, plain or gzipped) of the room's minutes since its
last delivery (the first may hold months; a later one may repeat minutes already delivered:
staging keeps the newest delivery's row). The export is written by pandas:

- an unnamed index column first (the header begins with a comma), skipped;
- ``natural_flow_trend_index`` and ``pay_flow_trend_index``: Python dict literals (single quotes,
  Chinese channel names) of the viewers each traffic channel brought, natural and paid;
- ``date_time`` ``YYYY-MM-DD HH:MM:SS`` (China time, naive), one row per minute while the room
  is live, not sorted, minutes missing, now and then a minute twice;
- counts written as ``19.0`` or ``19``; some rooms' exports carry only WATCH_UCNT (viewers
  entering the room in the minute: what livestream_forecast forecasts) with the rest at zero.

``raw.douyin_live_metrics`` holds the declared columns as text (the dicts) and doubles (the
counts), plus ``room_id`` from the folder. Validation quarantines unparseable dicts, negative
counts, minutes after the delivery day and duplicate minutes; ``sql/douyin_live/`` flattens
the dicts into one column per channel. Real sample: ``../shared/data/douyin-live/predict.csv``
(one live day of one room, 2019-12-02).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from mlcore.sources import Option, SourceSpec, TableSpec

NAME = "douyin_live"
SAMPLE_FILE = "predict.csv"
SAMPLE_ROOM = "sample"  # the sample's room id is not in the file: the folder names it

# The export's header (after pandas's unnamed index), in order.
EXPORT_COLUMNS = (
    "natural_flow_trend_index", "pay_flow_trend_index", "UV_VALUE", "COMMENT_CNT", "date_time",
    "INCR_FANS_CNT", "LEAVE_UCNT", "FANS_CLUB_UCNT", "PAY_ORDER_GMV", "ONLINE_USER_CNT",
    "WATCH_UCNT", "PAY_CNT", "PAY_UCNT",
)  # fmt: skip

# Counts are read as doubles: pandas writes an integer column as 19.0 as soon as one value of
# it was missing, and the same export has both.
METRICS = TableSpec(
    "metrics",
    "*.csv",
    {
        "natural_flow_trend_index": "varchar",
        "pay_flow_trend_index": "varchar",
        "uv_value": "double",
        "comment_cnt": "double",
        "date_time": "timestamp",
        "incr_fans_cnt": "double",
        "leave_ucnt": "double",
        "fans_club_ucnt": "double",
        "pay_order_gmv": "double",
        "online_user_cnt": "double",
        "watch_ucnt": "double",
        "pay_cnt": "double",
        "pay_ucnt": "double",
        "room_id": "varchar",
    },
    key=("room_id", "date_time"),
    kind="event",
    format="csv",
    csv_columns=EXPORT_COLUMNS,
    csv_pandas_index=True,
    partition_key="room",
    partition_column="room_id",
)

SOURCE = SourceSpec(
    name=NAME,
    doc="Douyin live rooms' per-minute metrics (viewers entering, traffic by channel, comments, "
    "orders), one folder per room (`room=<room_id>/*.csv`), as the platform's pandas export "
    "writes them.",
    tables=(METRICS,),
    synth="mlcore.synth.douyin_live:write_delivery",
    synth_options=(
        Option("rooms", int, 20, "live rooms"),
        Option("days", int, 28, "days of minutes up to --ds (the room's history so far)"),
        Option("defects", bool, False, "inject the real exports' quirks"),
    ),
    sample="mlcore.sources.douyin_live:stage_sample",
    sample_ds="2019-12-02",  # the one live day of the sample
    # Eight days of two rooms, then one day: the tests run livestream_forecast with a 3-day
    # backtest after 3 days of training (tests/conftest.py), seconds per step.
    test_nights=(
        {"rooms": 2, "days": 8, "defects": True},
        {"rooms": 2, "days": 1, "defects": True},
    ),
    demo_nights=(
        {"rooms": 8, "days": 35, "defects": True},
        {"rooms": 8, "days": 1, "defects": True},
    ),
)


def stage_sample(lake, ds: dt.date, data: Path) -> list[str]:
    """Put the real day (``data/douyin-live/predict.csv``) in the lake as the delivery ``ds``,
    in the folder of room ``sample``."""
    from mlcore.lake import raw_prefix

    path = Path(data) / "douyin-live" / SAMPLE_FILE
    if not path.exists():
        raise FileNotFoundError(f"douyin_live sample missing: {path}")
    key = f"{raw_prefix(NAME, ds)}/room={SAMPLE_ROOM}/{SAMPLE_FILE}"
    lake.put_file(path, key)
    return [lake.url(key)]
