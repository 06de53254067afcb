"""Validation: every rule type counted by GX and by SQL alike, quarantine, failures, results.

Most tests use a one-table toy source with its own suite (each rule type once, defects placed
by hand), so that every count below can be checked by reading the rows.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from mlcore.lake import LocalLake
from mlcore.sources import SourceSpec, TableSpec
from mlcore.sources.pozytywka import POZYTYWKA
from mlcore.validate import (
    EXPECTATIONS_ROOT,
    Rule,
    ValidationFailed,
    condition_sql,
    load_suite,
    rule_sql,
    suite_rules,
    validate_source,
    with_declared_columns,
)
from mlcore.warehouse import connect

D = dt.date(2024, 1, 31)
LINEAGE = {
    "_source_file": "varchar",
    "_line": "bigint",
    "_extra_keys": "varchar[]",
    "_ingested_at": "timestamp",
    "ds": "date",
}

# ---- a toy source: one event table, one rule of each kind ---------------------------------------
EVENTS = TableSpec(
    "events",
    "events.jsonl",
    {"id": "varchar", "user_id": "integer", "kind": "varchar", "amount": "double"}
    | {"a": "varchar", "b": "varchar"},
    key=("id",),
    kind="event",
)
TOY = SourceSpec("toy", (EVENTS,))


def _exp(type_: str, rule: str, severity: str, row_level: bool, **kwargs) -> dict:
    meta = {"rule": rule, "severity": severity, "row_level": row_level}
    return {"type": type_, "kwargs": kwargs, "meta": meta, "severity": severity}


def _in(col: str, values: list) -> dict:
    return {"type": "comparison", "column": {"name": col}, "operator": "IN", "parameter": values}


TOY_SUITE = {
    "name": "toy_events",
    "expectations": [
        _exp("expect_table_row_count_to_be_between", "no rows", "critical", False, min_value=1),
        _exp(
            "expect_table_columns_to_match_set",
            "columns differ from the contract",
            "critical",
            False,
            column_set=[*EVENTS.columns, *LINEAGE],
            exact_match=True,
        ),
        _exp(
            "expect_column_values_to_not_be_null",
            "null user_id",
            "critical",
            True,
            column="user_id",
        ),
        _exp(
            "expect_column_values_to_be_in_set",
            "unknown kind",
            "critical",
            True,
            column="kind",
            value_set=["X", "Y"],
        ),
        _exp(
            "expect_column_values_to_not_be_in_set",
            "id -1",
            "critical",
            True,
            column="id",
            value_set=["-1"],
        ),
        _exp(
            "expect_column_values_to_be_between",
            "amount outside 0..10",
            "critical",
            True,
            column="amount",
            min_value=0,
            max_value=10,
        ),
        _exp(
            "expect_column_values_to_be_unique",
            "duplicate id",
            "critical",
            True,
            column="id",
            row_condition={
                "type": "comparison",
                "column": {"name": "id"},
                "operator": "!=",
                "parameter": "-1",
            },
        ),
        _exp(
            "expect_compound_columns_to_be_unique",
            "duplicate (a, b)",
            "warning",
            True,
            column_list=["a", "b"],
        ),
        _exp(
            "expect_column_values_to_not_be_in_set",
            "empty b on X",
            "critical",
            True,
            column="b",
            value_set=[""],
            row_condition=_in("kind", ["X"]),
        ),
        _exp("expect_column_values_to_not_be_null", "null a", "warning", False, column="a"),
        _exp(
            "expect_column_value_lengths_to_equal",
            "keys outside the schema",
            "warning",
            False,
            column="_extra_keys",
            value=0,
        ),
    ],
}

# (id, user_id, kind, amount, a, b, extra keys); the comment says which rules each row breaks.
TOY_ROWS = [
    ("id1", 1, "X", 1.0, "a1", "b1", []),  # 1 clean; first of id1 and of (a1, b1)
    ("id1", 2, "Y", 2.0, "a1", "b1", []),  # 2 duplicate id (surplus), duplicate (a, b)
    ("-1", 3, "X", 3.0, "a2", "b2", []),  # 3 id -1
    ("-1", None, "Z", 20.0, "a2", "b2", []),  # 4 null user_id, kind, id -1, amount, (a, b)
    ("id5", 5, "X", None, "a3", "", []),  # 5 empty b on X
    ("id6", 6, "Y", 5.0, "a3", "", []),  # 6 "" is fine on Y; duplicate (a, b) surplus
    ("id7", 7, None, -1.0, None, None, []),  # 7 amount; null a (warning); nulls skip the rest
    ("id8", 8, "X", 1.0, "a4", None, []),  # 8 clean: a null key part is never a duplicate
    ("id9", 9, "Y", 1.0, "a4", None, ["zz"]),  # 9 a key outside the schema (warning)
]
# GX's unexpected_count per rule (uniqueness: every row of a duplicated group).
TOY_UNEXPECTED = {
    "null user_id": 1,
    "unknown kind": 1,
    "id -1": 2,
    "amount outside 0..10": 2,
    "duplicate id": 2,
    "duplicate (a, b)": 6,
    "empty b on X": 1,
    "null a": 1,
    "keys outside the schema": 1,
}
# One quarantine row per offending row, labelled with the first rule it broke (suite order).
TOY_QUARANTINE = {
    2: ("duplicate id", "critical"),
    3: ("id -1", "critical"),
    4: ("null user_id", "critical"),
    5: ("empty b on X", "critical"),
    6: ("duplicate (a, b)", "warning"),
    7: ("amount outside 0..10", "critical"),
}


def create_raw(con, source: SourceSpec, table: str, rows: list[tuple], *, ds=D, drop=()) -> None:
    """``raw.<source>_<table>`` with the contract's columns, filled from tuples.

    Each tuple holds the declared columns in order (less ``drop``), then the extra keys; a
    trailing date overrides the delivery date ``ds``.
    """
    spec = source.table(table)
    names = [c for c in spec.columns if c not in drop]
    columns = {c: t for c, t in {**spec.columns, **LINEAGE}.items() if c not in drop}
    ddl = ", ".join(f'"{c}" {t}' for c, t in columns.items())
    con.execute(f"create or replace table raw.{source.name}_{table} ({ddl})")
    values = []
    for line, row in enumerate(rows, start=1):
        declared = dict(zip(names, row[: len(names)], strict=True))
        rest = row[len(names) :]
        lineage = {
            "_source_file": f"raw/{source.name}/ds={ds}/{spec.file}",
            "_line": line,
            "_extra_keys": rest[0] if rest else [],
            "_ingested_at": dt.datetime(2024, 2, 1, 3, 0),
            "ds": rest[1] if len(rest) > 1 else ds,
        }
        record = declared | lineage
        values.append([record[c] for c in columns])
    if values:
        marks = ", ".join("?" for _ in columns)
        con.executemany(f"insert into raw.{source.name}_{table} values ({marks})", values)


@pytest.fixture
def env(tmp_path):
    con = connect(tmp_path / "w.duckdb")
    yield con, LocalLake(tmp_path / "lake"), tmp_path
    con.close()


@pytest.fixture
def toy(env):
    """The toy warehouse with TOY_ROWS for D, plus an older partition full of defects."""
    con, lake, tmp = env
    suites = tmp / "expectations"
    suites.mkdir()
    (suites / "toy_events.json").write_text(json.dumps(TOY_SUITE))
    older = [("id1", None, "Z", 99.0, "a1", "b1", [], D - dt.timedelta(days=1))] * 3
    create_raw(con, TOY, "events", TOY_ROWS + older)
    return con, lake, suites


def _validate(con, lake, suites, **kw):
    return validate_source(con, lake, TOY, D, expectations_dir=suites, **kw)


def _quarantine(con) -> dict[int, tuple[str, str]]:
    rows = con.execute(
        "select _line, _rule, _severity from quarantine.toy_events where ds = ? order by _line",
        [D],
    ).fetchall()
    return {line: (rule, sev) for line, rule, sev in rows}


# ---- rules and their SQL ------------------------------------------------------------------------
def test_every_rule_type_counts_the_same_in_gx_and_sql(toy):
    con, lake, suites = toy
    report = _validate(con, lake, suites, max_bad_row_share=0.9)
    rules = report.tables["events"]["rules"]
    gx = {name: r["unexpected_count"] for name, r in rules.items() if name in TOY_UNEXPECTED}
    sql = {name: r["sql_unexpected_count"] for name, r in rules.items() if name in TOY_UNEXPECTED}
    assert gx == TOY_UNEXPECTED
    assert sql == TOY_UNEXPECTED
    assert rules["duplicate id"]["surplus"] == 1
    assert rules["duplicate (a, b)"]["surplus"] == 3
    assert report.tables["events"]["rows"] == len(TOY_ROWS)  # the older partition is not read


def test_quarantine_keeps_first_occurrences_and_labels_the_first_rule(toy):
    con, lake, suites = toy
    report = _validate(con, lake, suites, max_bad_row_share=0.9)
    assert _quarantine(con) == TOY_QUARANTINE
    assert report.tables["events"]["quarantined"] == len(TOY_QUARANTINE)
    # The quarantine holds the raw columns too, ready for staging's anti join.
    row = con.execute("select id, amount from quarantine.toy_events where _line = 4").fetchone()
    assert row == ("-1", 20.0)


def test_validating_twice_gives_the_same_quarantine_and_results(toy):
    con, lake, suites = toy
    first = _validate(con, lake, suites, max_bad_row_share=0.9)
    snapshot = con.execute("select * from quarantine.toy_events order by _line").fetchall()
    second = _validate(con, lake, suites, max_bad_row_share=0.9)
    assert con.execute("select * from quarantine.toy_events order by _line").fetchall() == snapshot
    runs = con.execute("select distinct run_id from ops.validation_results").fetchall()
    assert runs == [(second.run_id,)] and first.run_id != second.run_id


def test_results_rows_are_written_for_every_expectation(toy):
    con, lake, suites = toy
    report = _validate(con, lake, suites, max_bad_row_share=0.9)
    rows = con.execute(
        "select expectation, column_name, severity, success, unexpected_count, details "
        "from ops.validation_results where source = 'toy' and table_name = 'events' and ds = ?",
        [D],
    ).fetchall()
    assert len(rows) == len(TOY_SUITE["expectations"])
    by_rule = {json.loads(r[5])["rule"]: r for r in rows}
    assert by_rule["duplicate (a, b)"][:5] == (
        "expect_compound_columns_to_be_unique",
        "a,b",
        "warning",
        False,
        6,
    )
    assert json.loads(by_rule["duplicate (a, b)"][5])["quarantined"] == 3
    assert by_rule["no rows"][3] is True
    # Data Docs: GX's site, copied to the lake.
    assert report.data_docs_key == "reports/data_docs/toy/ds=2024-01-31/index.html"
    assert "toy_events" in lake.read_text(report.data_docs_key)
    assert any("/validations/toy_events/" in k for k in lake.list("reports/data_docs/toy"))


# ---- failures -----------------------------------------------------------------------------------
def test_too_many_bad_rows_fail_after_quarantine_and_results_are_written(toy):
    con, lake, suites = toy
    with pytest.raises(ValidationFailed) as failed:
        _validate(con, lake, suites)  # 5 of 9 rows break critical rules > 25%
    message = str(failed.value)
    assert message == (
        "raw.toy_events: 56% of rows break critical rules (id -1: 2, amount outside 0..10: 2, "
        "null user_id: 1, unknown kind: 1, duplicate id: 1, empty b on X: 1) > 25% allowed; "
        "keys outside the schema: 'zz' in 1 row (a renamed column?)"
    )
    assert _quarantine(con) == TOY_QUARANTINE  # ops can see why
    n = con.execute("select count(*) from ops.validation_results").fetchone()[0]
    assert n == len(TOY_SUITE["expectations"])
    assert failed.value.report.data_docs_key is not None


def _reject_lines(con, n: int, *, ds=D) -> None:
    """``n`` lines of the toy delivery of ``ds`` that ingest kept aside, as ingest records them."""
    con.executemany(
        "insert into ops.rejected_lines values ('toy', 'events', ?, 'f', ?, 'bad', 'x', now())",
        [[ds, line] for line in range(100, 100 + n)],
    )


def test_lines_rejected_at_ingest_count_against_the_bad_row_share(toy):
    con, lake, suites = toy
    # 5 of the 9 loaded rows break critical rules (56%): with 0.6 allowed, the rows pass...
    report = _validate(con, lake, suites, max_bad_row_share=0.6)
    assert report.tables["events"]["rejected_lines"] == 0
    # ...but not once 3 more lines of the delivery were rejected at ingest: 8 of 12 lines
    _reject_lines(con, 3)
    _reject_lines(con, 50, ds=D - dt.timedelta(days=1))  # another delivery's: not counted
    with pytest.raises(ValidationFailed) as failed:
        _validate(con, lake, suites, max_bad_row_share=0.6)
    assert str(failed.value) == (
        "raw.toy_events: 67% of lines were rejected at ingest or break critical rules "
        "(rejected at ingest: 3, id -1: 2, amount outside 0..10: 2, null user_id: 1, "
        "unknown kind: 1, duplicate id: 1, empty b on X: 1) > 60% allowed; "
        "keys outside the schema: 'zz' in 1 row (a renamed column?)"
    )
    assert failed.value.report.tables["events"]["rejected_lines"] == 3


def test_empty_delivery_fails(env):
    con, lake, tmp = env
    suites = tmp / "expectations"
    suites.mkdir()
    (suites / "toy_events.json").write_text(json.dumps(TOY_SUITE))
    older = [("id1", 1, "X", 1.0, "a", "b", [], D - dt.timedelta(days=1))]
    create_raw(con, TOY, "events", older)  # nothing for D
    with pytest.raises(ValidationFailed, match=r"^raw\.toy_events: no rows \(0 rows\)$"):
        _validate(con, lake, suites)
    assert con.execute("select count(*) from quarantine.toy_events").fetchone() == (0,)
    failed = con.execute("select details from ops.validation_results where not success").fetchall()
    assert [json.loads(d)["rule"] for (d,) in failed] == ["no rows"]


def test_missing_column_fails_with_its_name(env):
    con, lake, tmp = env
    suites = tmp / "expectations"
    suites.mkdir()
    (suites / "toy_events.json").write_text(json.dumps(TOY_SUITE))
    rows = [TOY_ROWS[i] for i in (0, 1, 5, 7, 8)]  # one bad row in five: under 25%
    create_raw(con, TOY, "events", [row[:3] + row[4:] for row in rows], drop=["amount"])
    with pytest.raises(ValidationFailed) as failed:
        _validate(con, lake, suites)
    assert str(failed.value) == (
        "raw.toy_events: columns differ from the contract (missing: amount)"
    )
    # The other row-level rules still ran: line 2 repeats id1.
    assert _quarantine(con) == {2: ("duplicate id", "critical")}


def test_missing_raw_table_fails(env):
    con, lake, tmp = env
    suites = tmp / "expectations"
    suites.mkdir()
    (suites / "toy_events.json").write_text(json.dumps(TOY_SUITE))
    with pytest.raises(ValidationFailed) as failed:
        _validate(con, lake, suites)
    assert str(failed.value) == "raw.toy_events: table missing (was the delivery ingested?)"
    assert con.execute("select count(*) from ops.validation_results").fetchone() == (1,)


# ---- the pozytywka suites -----------------------------------------------------------------------
def test_pozytywka_suites_match_the_declared_schemas():
    import great_expectations as gx

    for spec in POZYTYWKA.tables:
        written = load_suite("pozytywka", spec.name)
        # The column set is not written twice: it comes from the declared schema.
        assert not any("column_set" in e.get("kwargs", {}) for e in written["expectations"]), (
            "leave column_set out of the suite: it is generated from the declared schema"
        )
        suite = with_declared_columns(written, spec)
        assert suite["name"] == f"pozytywka_{spec.name}"
        rules = suite_rules(suite)  # meta checked, row-level rules translatable
        gx.ExpectationSuite(**suite)  # GX reads it
        by_type = {r.type: r for r in rules}
        assert by_type["expect_table_row_count_to_be_between"].severity == "critical"
        column_set = by_type["expect_table_columns_to_match_set"].kwargs["column_set"]
        assert column_set == [*spec.columns, *LINEAGE]
        for rule in rules:
            assert set(rule.columns) <= set(column_set), rule
    assert sorted(p.name for p in EXPECTATIONS_ROOT.glob("pozytywka_*.json")) == sorted(
        f"pozytywka_{t.name}.json" for t in POZYTYWKA.tables
    )


def _pozytywka_clean(con) -> None:
    create_raw(con, POZYTYWKA, "artists", [("a1", "Artist", ["pop"]), ("a2", "Band", None)])
    audio = (0.5, 0.5, -5.0, 0.1, 0.1, 0.0, 0.1, 0.5, 120.0)
    create_raw(
        con,
        POZYTYWKA,
        "tracks",
        [
            ("t1", "Song", 50, 200000, 0, "a1", "2020", 5, *audio),
            ("t2", "Other", 0, 1, 1, "a2", "2020-01-02", 1, *audio),
        ],
    )
    create_raw(con, POZYTYWKA, "users", [(101, "Ala", "Kraków", "ul. X 1", ["pop"], True)])
    ts = dt.datetime(2024, 1, 30, 12)
    create_raw(
        con,
        POZYTYWKA,
        "sessions",
        [
            (ts, 101, "t1", "PLAY", 1),
            (ts, 101, "", "ADVERTISEMENT", 1),  # ads and purchases carry no track: fine
            (ts, 101, "", "BUY_PREMIUM", 1),
            (ts, 101, "t1", "SKIP", 1),
        ],
    )
    create_raw(con, POZYTYWKA, "track_storage", [("t1", "FAST", 0.01), ("t2", "SLOW", 0.0)])


def test_a_clean_pozytywka_delivery_passes(env):
    con, lake, _ = env
    _pozytywka_clean(con)
    report = validate_source(con, lake, POZYTYWKA, D)
    assert report.ok
    assert {t: e["quarantined"] for t, e in report.tables.items()} == dict.fromkeys(
        ("artists", "tracks", "users", "sessions", "track_storage"), 0
    )
    assert report.tables["artists"]["warnings"] == ["null genres: 1 row"]
    expected = sum(len(load_suite("pozytywka", t.name)["expectations"]) for t in POZYTYWKA.tables)
    assert con.execute("select count(*) from ops.validation_results").fetchone() == (expected,)
    for t in POZYTYWKA.tables:  # the contract: quarantine tables exist after validation
        assert con.execute(f"select count(*) from quarantine.pozytywka_{t.name}").fetchone() == (0,)
    assert report.summary()["tables"]["sessions"]["rows"] == 4


def test_a_play_without_a_track_is_caught(env):
    con, lake, _ = env
    _pozytywka_clean(con)
    ts = dt.datetime(2024, 1, 30, 12)
    rows = [(ts, 101, "t1", "PLAY", 1)] * 9 + [(ts, 101, "", "LIKE", 1)]
    create_raw(con, POZYTYWKA, "sessions", rows)
    report = validate_source(con, lake, POZYTYWKA, D)
    assert report.tables["sessions"]["warnings"] == [
        "empty track_id on a PLAY, SKIP or LIKE: 1 row, 1 quarantined"
    ]


# ---- pure helpers -------------------------------------------------------------------------------
def test_row_conditions_translate_to_bound_sql():
    params: dict = {}
    cond = {
        "type": "and",
        "conditions": [
            {"type": "nullity", "column": {"name": "a"}, "is_null": False},
            {
                "type": "comparison",
                "column": {"name": "k"},
                "operator": "NOT_IN",
                "parameter": ["x", "y"],
            },
            {"type": "comparison", "column": {"name": "n"}, "operator": ">=", "parameter": 3},
        ],
    }
    sql = condition_sql(cond, params)
    assert sql == '("a" is not null) and (not ("k" in ($p0, $p1))) and ("n" >= $p2)'
    assert params == {"p0": "x", "p1": "y", "p2": 3}


def test_hostile_values_are_bound_not_formatted():
    params: dict = {}
    rule = Rule(
        "x",
        "expect_column_values_to_be_in_set",
        {"column": "c", "value_set": ["'); drop table raw.t; --"]},
        "critical",
        True,
    )
    sql = rule_sql(rule, params)
    assert "drop" not in sql.unexpected and list(params.values()) == ["'); drop table raw.t; --"]


@pytest.mark.parametrize(
    ("meta", "error"),
    [
        ({"severity": "critical", "row_level": True}, "meta.rule"),
        ({"rule": "r", "severity": "fatal", "row_level": True}, "meta.severity"),
        ({"rule": "r", "severity": "critical"}, "meta.row_level"),
    ],
)
def test_suite_metadata_is_checked(meta, error):
    suite = {
        "name": "s",
        "expectations": [
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "c"}, "meta": meta}
        ],
    }
    with pytest.raises(ValueError, match=error):
        suite_rules(suite)


def test_a_row_level_rule_without_sql_is_refused():
    suite = {
        "name": "s",
        "expectations": [
            {
                "type": "expect_column_values_to_match_like_pattern",
                "kwargs": {"column": "c", "like_pattern": "x%"},
                "meta": {"rule": "r", "severity": "warning", "row_level": True},
            }
        ],
    }
    with pytest.raises(ValueError, match="no SQL translation"):
        suite_rules(suite)


def test_suite_path_is_under_the_repo():
    repo = Path(__file__).resolve().parents[2]
    assert repo / "expectations" == EXPECTATIONS_ROOT


def test_a_suite_listing_other_columns_than_the_declared_schema_fails_loudly():
    spec = POZYTYWKA.table("users")
    suite = load_suite("pozytywka", "users")
    for e in suite["expectations"]:
        if e["type"] == "expect_table_columns_to_match_set":
            e["kwargs"]["column_set"] = ["user_id", "ds"]
    with pytest.raises(ValueError, match="differs from the declared schema"):
        with_declared_columns(suite, spec)


def test_a_delivery_that_lost_lines_at_ingest_fails_with_their_share(env):
    """The probe's case (issue "Faults, bad input and secrets", 1): 40% of the session lines
    carry ``user_id: "bad"``. Ingest rejects them; the rows that did load are clean, and
    validation must still fail, naming the rejected lines."""
    from mlcore.ingest import ingest_delivery
    from mlcore.synth.pozytywka import write_delivery

    con, lake, _ = env
    write_delivery(lake.root, D, users=20, days=3, seed=1)
    ingest_delivery(con, lake, POZYTYWKA, D)
    assert validate_source(con, lake, POZYTYWKA, D).ok  # the clean delivery passes

    sessions = Path(lake.path(f"raw/pozytywka/ds={D}/sessions.jsonl"))
    lines = sessions.read_text().splitlines()
    bad = set(range(0, len(lines), 5)) | set(range(1, len(lines), 5))  # 40% of the lines
    for i in bad:
        event = json.loads(lines[i])
        event["user_id"] = "bad"
        lines[i] = json.dumps(event)
    sessions.write_text("\n".join(lines) + "\n")
    loaded = ingest_delivery(con, lake, POZYTYWKA, D)
    assert loaded.tables["sessions"].rejected == len(bad)
    with pytest.raises(ValidationFailed) as failed:
        validate_source(con, lake, POZYTYWKA, D)
    message = str(failed.value)
    assert message.startswith("raw.pozytywka_sessions: 4") and "% of lines were rejected" in message
    assert f"(rejected at ingest: {len(bad)}" in message


def test_a_renamed_column_is_named_when_the_delivery_fails(env):
    """The probe's case (issue "Faults, bad input and secrets", 7): sessions with ``userId``
    instead of ``user_id`` fail on null user ids; the message names the new key. (Renamed in
    every line but one: a key that no line has is refused at ingest, tests/faults.)"""
    from mlcore.ingest import ingest_delivery
    from mlcore.synth.pozytywka import write_delivery

    con, lake, _ = env
    write_delivery(lake.root, D, users=20, days=3, seed=1)
    sessions = Path(lake.path(f"raw/pozytywka/ds={D}/sessions.jsonl"))
    events = [json.loads(line) for line in sessions.read_text().splitlines()]
    for event in events[1:]:
        event["userId"] = event.pop("user_id")
    sessions.write_text("".join(json.dumps(e) + "\n" for e in events))
    ingest_delivery(con, lake, POZYTYWKA, D)
    with pytest.raises(ValidationFailed) as failed:
        validate_source(con, lake, POZYTYWKA, D)
    message = str(failed.value)
    assert "null user_id" in message
    renamed = len(events) - 1
    assert f"keys outside the schema: 'userId' in {renamed} rows (a renamed column?)" in message
