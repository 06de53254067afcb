"""Ingest: declared schemas, lineage, rejected lines with reasons, idempotent reloads."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import logging

import pytest

from mlcore.ingest import MAX_REJECTED_LINE_CHARS, IngestError, ingest_delivery
from mlcore.lake import LocalLake
from mlcore.sources import SourceSpec, TableSpec
from mlcore.warehouse import connect

DS = dt.date(2024, 1, 31)

EVENTS = TableSpec(
    "events",
    "events.jsonl",
    {"ts": "timestamp", "user_id": "integer", "tags": "varchar[]", "ok": "boolean"},
    key=("ts", "user_id"),
    kind="event",
)
ITEMS = TableSpec(
    "items",
    "items.csv",
    {"item_id": "varchar", "price": "double", "qty": "integer"},
    key=("item_id",),
    format="csv",
)
SOURCE = SourceSpec("shop", (EVENTS, ITEMS))


def _deliver(lake: LocalLake, ds: dt.date, events: list[str], items: str) -> None:
    base = f"raw/shop/ds={ds.isoformat()}"
    lake.write_text(f"{base}/events.jsonl", "\n".join(events) + "\n")
    lake.write_text(f"{base}/items.csv", items)


@pytest.fixture
def env(tmp_path):
    lake = LocalLake(tmp_path / "lake")
    con = connect(tmp_path / "w.duckdb")
    yield lake, con
    con.close()


GOOD = json.dumps({"ts": "2024-01-31T10:00:00", "user_id": 1, "tags": ["a"], "ok": True})
HOSTILE = "'); drop table raw.shop_events; --"


def test_bad_lines_are_rejected_with_line_and_reason(env):
    lake, con = env
    events = [
        GOOD,
        "{broken json",
        json.dumps({"ts": "yesterday", "user_id": "x", "tags": [], "ok": True}),
        "[1, 2, 3]",
        "",  # a blank line is not a record and not an error
        json.dumps(
            {
                "ts": "2024-01-31T11:00:00.123456",
                "user_id": 2,
                "tags": None,
                "ok": None,
                "surprise": HOSTILE,
            }
        ),
        "{" + "x" * 10_000,
    ]
    _deliver(lake, DS, events, "item_id,price,qty\nA,1.5,2\nB,oops,1\nC,2.0\n")
    report = ingest_delivery(con, lake, SOURCE, DS)

    assert report.tables["events"].rows == 2
    assert report.tables["events"].rejected == 4
    rejected = con.execute(
        "select line, reason, length(raw_line) from ops.rejected_lines "
        "where table_name = 'events' order by line"
    ).fetchall()
    assert [r[0] for r in rejected] == [2, 3, 4, 7]
    assert rejected[0][1] == "malformed JSON"
    assert "ts: cannot read" in rejected[1][1] and "user_id: cannot read" in rejected[1][1]
    assert rejected[2][1] == "not a JSON object"
    assert rejected[3][2] == MAX_REJECTED_LINE_CHARS

    rows = con.execute(
        "select user_id, _line, _extra_keys, _source_file, ds from raw.shop_events order by _line"
    ).fetchall()
    assert rows[0] == (1, 1, [], "raw/shop/ds=2024-01-31/events.jsonl", DS)
    assert rows[1][:3] == (2, 6, ["surprise"])
    # The hostile value is data, not SQL: the table is still there.
    assert con.execute("select count(*) from raw.shop_events").fetchone()[0] == 2

    assert report.tables["items"].rows == 1
    reasons = dict(
        con.execute(
            "select line, reason from ops.rejected_lines where table_name = 'items'"
        ).fetchall()
    )
    assert "price: cannot read oops as double" in reasons[3]
    assert len(reasons) == 2  # the short row is rejected too


def test_reloading_a_delivery_gives_no_duplicates(env):
    lake, con = env
    _deliver(lake, DS, [GOOD, "{bad"], "item_id,price,qty\nA,1,1\n")
    ingest_delivery(con, lake, SOURCE, DS)
    ingest_delivery(con, lake, SOURCE, DS)
    assert con.execute("select count(*) from raw.shop_events").fetchone()[0] == 1
    assert con.execute("select count(*) from ops.rejected_lines").fetchone()[0] == 1


def test_events_keep_each_ds_and_snapshots_replace(env):
    lake, con = env
    nxt = DS + dt.timedelta(days=1)
    _deliver(lake, DS, [GOOD], "item_id,price,qty\nA,1,1\nB,2,2\n")
    _deliver(lake, nxt, [GOOD, GOOD], "item_id,price,qty\nC,3,3\n")
    ingest_delivery(con, lake, SOURCE, DS)
    ingest_delivery(con, lake, SOURCE, nxt)
    assert con.execute(
        "select ds, count(*) from raw.shop_events group by ds order by ds"
    ).fetchall() == [(DS, 1), (nxt, 2)]
    assert con.execute("select item_id, ds from raw.shop_items").fetchall() == [("C", nxt)]


def test_missing_delivery_and_missing_file_are_clear_errors(env):
    lake, con = env
    with pytest.raises(IngestError, match="no delivery for 2024-01-31"):
        ingest_delivery(con, lake, SOURCE, DS)
    lake.write_text("raw/shop/ds=2024-01-31/events.jsonl", GOOD + "\n")
    with pytest.raises(IngestError, match="has no items.csv"):
        ingest_delivery(con, lake, SOURCE, DS)


def test_values_no_delivery_means_are_rejected_with_their_reason(env):
    """NaN and Infinity in a number column, timestamps in the year 9999 or BC, and nested JSON
    where text is declared: each line is rejected with the column and the value, and the
    rest of the file loads."""
    lake, con = env
    readings = TableSpec(
        "readings",
        "readings.jsonl",
        {"ts": "timestamp", "name": "varchar", "value": "double", "tags": "varchar[]"},
        key=("ts", "name"),
        kind="event",
    )
    source = SourceSpec("meter", (readings, ITEMS))
    good = {"ts": "2024-01-31T10:00:00", "name": "a", "value": 1.5, "tags": ["x"]}
    lines = [
        json.dumps(good),
        json.dumps(good | {"value": float("inf")}),  # Python writes the literal Infinity
        json.dumps(good | {"value": float("nan")}),
        json.dumps(good | {"value": "-Infinity"}),
        json.dumps(good | {"ts": "9999-12-31T00:00:00"}),
        json.dumps(good | {"ts": "0001-01-01 (BC)"}),
        json.dumps(good | {"ts": "1969-12-31T23:59:59"}),
        json.dumps(good | {"name": {"nested": 1}}),
        json.dumps(good | {"name": ["a", "b"]}),
        json.dumps(good | {"ts": "1970-01-01T00:00:00", "value": 0.0, "tags": []}),
    ]
    base = f"raw/meter/ds={DS.isoformat()}"
    lake.write_text(f"{base}/readings.jsonl", "\n".join(lines) + "\n")
    lake.write_text(f"{base}/items.csv", "item_id,price,qty\nA,1.5,2\nB,inf,1\nC,NaN,1\n")
    report = ingest_delivery(con, lake, source, DS)

    assert (report.tables["readings"].rows, report.tables["readings"].rejected) == (2, 8)
    reasons = dict(
        con.execute(
            "select line, reason from ops.rejected_lines where table_name = 'readings'"
        ).fetchall()
    )
    assert reasons == {
        2: "value: inf is not a finite number",
        3: "value: nan is not a finite number",
        4: "value: -inf is not a finite number",
        5: "ts: 9999-12-31 00:00:00 is outside 1970-01-01 to 2100-01-01",
        6: "ts: 0001-01-01 (BC) 00:00:00 is outside 1970-01-01 to 2100-01-01",
        7: "ts: 1969-12-31 23:59:59 is outside 1970-01-01 to 2100-01-01",
        8: 'name: nested JSON {"nested":1} where text is expected',
        9: 'name: nested JSON ["a","b"] where text is expected',
    }
    assert con.execute("select _line from raw.meter_readings order by 1").fetchall() == [
        (1,),
        (10,),
    ]
    items = dict(
        con.execute(
            "select line, reason from ops.rejected_lines where table_name = 'items'"
        ).fetchall()
    )
    assert items == {
        3: "price: inf is not a finite number",
        4: "price: nan is not a finite number",
    }
    assert con.execute("select item_id from raw.meter_items").fetchall() == [("A",)]


def test_lines_the_reader_refuses_are_rejected_and_later_lines_keep_their_numbers(env):
    """A Latin-1 byte, a line over DuckDB's 2 MB limit and a CSV row with too many fields are
    one rejected line each, not a failed file; the rows after them keep their own line."""
    lake, con = env
    base = f"raw/shop/ds={DS.isoformat()}"
    good = GOOD.encode()
    events = b"\n".join(
        [
            good,
            b'{"ts": "2024-01-31T10:00:00", "user_id": 7, "tags": ["caf\xe9"], "ok": true}',
            good.replace(b'"user_id": 1', b'"user_id": 3'),
            json.dumps(
                {"ts": "2024-01-31T10:00:00", "user_id": 4, "tags": ["y" * 3_000_000]}
            ).encode(),
            good.replace(b'"user_id": 1', b'"user_id": 5'),
        ]
    )
    lake.write_bytes(f"{base}/events.jsonl", events + b"\n")
    lake.write_text(f"{base}/items.csv", "item_id,price,qty\nA,1,1\nB,2,2,2\nC,3,3\nD,x,4\nE,5,5\n")
    report = ingest_delivery(con, lake, SOURCE, DS)

    assert con.execute("select user_id, _line from raw.shop_events order by 2").fetchall() == [
        (1, 1),
        (3, 3),
        (5, 5),
    ]
    reasons = dict(
        con.execute(
            "select line, reason from ops.rejected_lines where table_name = 'events'"
        ).fetchall()
    )
    assert sorted(reasons) == [2, 4] and report.tables["events"].rejected == 2
    assert reasons[2].startswith("INVALID ENCODING")
    assert reasons[4].startswith("LINE SIZE OVER MAXIMUM")
    assert con.execute("select item_id, _line from raw.shop_items order by 2").fetchall() == [
        ("A", 2),
        ("C", 4),
        ("E", 6),
    ]
    items = dict(
        con.execute(
            "select line, reason from ops.rejected_lines where table_name = 'items'"
        ).fetchall()
    )
    assert sorted(items) == [3, 5]
    assert items[3].startswith("TOO MANY COLUMNS") and items[5] == "price: cannot read x as double"


def test_gzip_deliveries_and_files_that_cannot_be_read(env, caplog):
    lake, con = env
    base = f"raw/shop/ds={DS.isoformat()}"
    # gzipped under its .gz name: read as gzip
    lake.write_bytes(f"{base}/events.jsonl.gz", gzip.compress((GOOD + "\n").encode()))
    lake.write_text(f"{base}/items.csv", "item_id,price,qty\nA,1,1\n")
    lake.write_text(f"{base}/..events.jsonl", "left over by a copy")
    with caplog.at_level(logging.WARNING, logger="mlcore.ingest"):
        report = ingest_delivery(con, lake, SOURCE, DS)
    assert report.tables["events"].rows == 1
    assert report.tables["events"].source_file == f"{base}/events.jsonl.gz"
    assert "ignored files no table reads: ['..events.jsonl']" in caplog.text
    lake.delete_key(f"{base}/..events.jsonl")

    # gzip bytes under the plain name: read as gzip, with a warning
    lake.delete_key(f"{base}/events.jsonl.gz")
    two = GOOD + "\n" + GOOD.replace('"user_id": 1', '"user_id": 2') + "\n"
    lake.write_bytes(f"{base}/events.jsonl", gzip.compress(two.encode()))
    with caplog.at_level(logging.WARNING, logger="mlcore.ingest"):
        assert ingest_delivery(con, lake, SOURCE, DS).tables["events"].rows == 2
    assert "events.jsonl of delivery 2024-01-31 is gzip-compressed under a plain name" in (
        caplog.text
    )

    # the same file delivered both ways: refused before anything loads
    lake.write_bytes(f"{base}/events.jsonl.gz", gzip.compress(GOOD.encode()))
    with pytest.raises(IngestError, match="holds both events.jsonl and events.jsonl.gz"):
        ingest_delivery(con, lake, SOURCE, DS)
    lake.delete_key(f"{base}/events.jsonl.gz")

    # a .gz name on plain text, and a gzip stream cut short: one line naming the file, and the
    # delivery loaded before stays whole (events were parsed fine, but nothing is replaced)
    lake.write_text(f"{base}/events.jsonl", GOOD + "\n")
    lake.delete_key(f"{base}/items.csv")
    lake.write_text(f"{base}/items.csv.gz", "item_id,price,qty\nZ,1,1\n")
    with pytest.raises(IngestError, match=r"^shop: items.csv.gz of delivery 2024-01-31: named"):
        ingest_delivery(con, lake, SOURCE, DS)
    cut = gzip.compress(("item_id,price,qty\n" + "Z,1,1\n" * 5000).encode())[:60]
    lake.write_bytes(f"{base}/items.csv.gz", cut)
    with pytest.raises(IngestError) as failed:
        ingest_delivery(con, lake, SOURCE, DS)
    message = str(failed.value)
    assert message.startswith("shop: items.csv.gz of delivery 2024-01-31: cannot read the file")
    assert "\n" not in message and message.isprintable()
    assert con.execute("select count(*) from raw.shop_events").fetchone()[0] == 2
    assert con.execute("select item_id from raw.shop_items").fetchall() == [("A",)]


def test_a_file_cut_short_fails_the_delivery_and_loads_nothing(env):
    """The probe's case (issue "Faults, bad input and secrets", 1): a file cut mid-line lost
    its tail, not one bad line; the delivery fails naming it and the last delivery stays."""
    lake, con = env
    base = f"raw/shop/ds={DS.isoformat()}"
    events = [GOOD.replace('"user_id": 1', f'"user_id": {i}') for i in range(1, 41)]
    _deliver(lake, DS, events, "item_id,price,qty\nA,1,1\n")
    ingest_delivery(con, lake, SOURCE, DS)
    whole = "\n".join(events) + "\n"
    lake.write_text(f"{base}/events.jsonl", whole[: len(whole) // 2])
    with pytest.raises(IngestError) as failed:
        ingest_delivery(con, lake, SOURCE, DS)
    message = str(failed.value)
    assert message.startswith("shop: events.jsonl of delivery 2024-01-31: the file ends in the")
    assert "malformed JSON" in message and "looks cut short" in message
    assert con.execute("select count(*) from raw.shop_events").fetchone()[0] == 40
    # a last line without its newline that parses is a whole file
    lake.write_text(f"{base}/events.jsonl", "\n".join(events[:3]))
    assert ingest_delivery(con, lake, SOURCE, DS).tables["events"].rows == 3
    # and so is a CSV whose last row lacks only the newline; one cut inside a row is not
    lake.write_text(f"{base}/items.csv", "item_id,price,qty\nA,1,1\nB,2")
    with pytest.raises(IngestError, match="items.csv of delivery 2024-01-31: the file ends in"):
        ingest_delivery(con, lake, SOURCE, DS)
