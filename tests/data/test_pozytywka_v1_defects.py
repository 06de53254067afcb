"""The real v1 Pozytywka delivery: every documented defect caught, with its exact count.

The counts are those of ../shared/data/README.md (pozytywka section). The delivery passes:
its bad rows are well under the 25% allowed, and they are quarantined or reported.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlcore.ingest import ingest_delivery
from mlcore.lake import LocalLake
from mlcore.sources.pozytywka import POZYTYWKA
from mlcore.validate import ValidationReport, validate_source
from mlcore.warehouse import connect

SAMPLE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "pozytywka"
DS = dt.date(2023, 3, 27)

# {table: {rule: (GX unexpected_count, rows quarantined by the rule)}} for every rule that
# finds something; every other rule must find nothing.
DEFECTS = {
    "artists": {
        "unknown artist id -1": (494, 494),
        "null genres": (544, 0),  # a warning: the artist is real, its genres unknown
        "duplicate name": (28, 0),  # 14 names twice: 14 surplus rows, different artists
    },
    "tracks": {"duplicate (id_artist, name)": (361, 185)},  # 176 pairs, 185 surplus rows
    "users": {
        "null favourite_genres": (5, 0),
        "null premium_user": (1, 0),
        "keys outside the schema": (1, 0),  # the stray "id": -1
    },
    "sessions": {
        "null user_id": (195, 195),
        "null event_type": (167, 167),
        "null track_id": (163, 163),
    },
    "track_storage": {},
}
ROWS = {"artists": 10657, "tracks": 21608, "users": 50, "sessions": 3626, "track_storage": 21608}
# One quarantine row per raw row: sessions rows often break several rules at once.
QUARANTINED = {"artists": 494, "tracks": 185, "users": 0, "sessions": 503, "track_storage": 0}
SESSIONS_BY_FIRST_RULE = {"null user_id": 195, "null event_type": 162, "null track_id": 146}


@pytest.fixture(scope="module")
def validated(tmp_path_factory) -> Iterator[tuple]:
    if not SAMPLE.exists():
        pytest.skip(f"real data sample not available: {SAMPLE} is absent")
    tmp = tmp_path_factory.mktemp("v1")
    lake = LocalLake(tmp / "lake")
    delivery = lake.path(f"raw/pozytywka/ds={DS.isoformat()}")
    delivery.mkdir(parents=True)
    for name in ("artists", "users", "sessions", "track_storage"):
        shutil.copy(SAMPLE / "v1" / f"{name}.jsonl", delivery)
    shutil.copy(SAMPLE / "catalog" / "tracks.jsonl", delivery)  # v1 ships no tracks file

    con = connect(tmp / "w.duckdb")
    ingest_delivery(con, lake, POZYTYWKA, DS)
    report = validate_source(con, lake, POZYTYWKA, DS)  # passes: no ValidationFailed
    yield con, lake, report
    con.close()


def test_the_v1_delivery_passes(validated):
    _, _, report = validated
    assert isinstance(report, ValidationReport) and report.ok
    assert {t: e["rows"] for t, e in report.tables.items()} == ROWS


@pytest.mark.parametrize("table", list(DEFECTS))
def test_every_defect_is_found_with_its_exact_count(validated, table):
    _, _, report = validated
    rules = report.tables[table]["rules"]
    found = {
        name: (r["unexpected_count"] or 0, r["quarantined"])
        for name, r in rules.items()
        if r["unexpected_count"] or r["quarantined"]
    }
    assert found == DEFECTS[table]
    # The SQL that picks out the rows agrees with GX on every rule.
    for name, r in rules.items():
        if r["sql_unexpected_count"] is not None:
            assert r["sql_unexpected_count"] == r["unexpected_count"], name


def test_duplicates_keep_their_first_occurrence(validated):
    _, _, report = validated
    assert report.tables["artists"]["rules"]["duplicate name"]["surplus"] == 14
    assert report.tables["tracks"]["rules"]["duplicate (id_artist, name)"]["surplus"] == 185


def test_quarantine_holds_one_row_per_bad_row(validated):
    con, _, report = validated
    for table, n in QUARANTINED.items():
        assert report.tables[table]["quarantined"] == n
        got = con.execute(
            f"select count(*), count(distinct (_source_file, _line)) "
            f"from quarantine.pozytywka_{table} where ds = ?",
            [DS],
        ).fetchone()
        assert got == (n, n), table
    by_rule = dict(
        con.execute(
            "select _rule, count(*) from quarantine.pozytywka_sessions group by _rule"
        ).fetchall()
    )
    assert by_rule == SESSIONS_BY_FIRST_RULE
    # Ads and premium purchases carry track_id "": not a defect. The few quarantined ones
    # lost their user_id.
    assert con.execute(
        "select distinct _rule from quarantine.pozytywka_sessions where track_id = ''"
        " and event_type in ('ADVERTISEMENT', 'BUY_PREMIUM')"
    ).fetchall() == [("null user_id",)]


def test_results_and_data_docs_are_published(validated):
    con, lake, report = validated
    failed = con.execute(
        "select table_name, count(*) from ops.validation_results "
        "where ds = ? and not success group by 1 order by 1",
        [DS],
    ).fetchall()
    assert failed == [("artists", 3), ("sessions", 3), ("tracks", 1), ("users", 3)]
    assert report.data_docs_key == "reports/data_docs/pozytywka/ds=2023-03-27/index.html"
    assert lake.exists(report.data_docs_key)
