"""Validation beyond GX's built-in expectations, for every source: bounds that depend on the
delivery ({"$PARAMETER": ...}) and references to another table of the same source
(``meta.references``), counted alike by GX and by SQL, quarantined, and checked when a suite
loads."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from mlcore.lake import LocalLake
from mlcore.sources import SourceSpec, TableSpec
from mlcore.validate import (
    Rule,
    delivery_parameters,
    rule_sql,
    sql_counts,
    suite_rules,
    validate_source,
)
from mlcore.warehouse import connect

D = dt.date(2024, 1, 31)
START = int(dt.datetime(2024, 1, 31, tzinfo=dt.UTC).timestamp())
END = START + 86_400

ORDERS = TableSpec(
    "orders",
    "orders.csv",
    {"item_id": "varchar", "placed_at": "bigint"},
    key=("item_id", "placed_at"),
    kind="event",
    format="csv",
)
ITEMS = TableSpec("items", "items.csv", {"item_id": "varchar"}, key=("item_id",), format="csv")
SHOP = SourceSpec("shop", (ORDERS, ITEMS))


def _exp(type_: str, rule: str, severity: str, row_level: bool, meta=None, **kwargs) -> dict:
    return {
        "type": type_,
        "kwargs": kwargs,
        "meta": {"rule": rule, "severity": severity, "row_level": row_level, **(meta or {})},
    }


OUTSIDE_THE_DAY = _exp(
    "expect_column_values_to_be_between",
    "placed_at outside the day",
    "critical",
    True,
    column="placed_at",
    min_value={"$PARAMETER": "ds_start_epoch"},
    max_value={"$PARAMETER": "ds_end_epoch"},
    strict_max=True,
)
UNKNOWN_ITEM = _exp(
    "unexpected_rows_expectation",
    "unknown item",
    "warning",
    True,
    meta={"references": "raw.shop_items.item_id"},
    column="item_id",
)
SUITES = {
    "shop_orders": [OUTSIDE_THE_DAY, UNKNOWN_ITEM],
    "shop_items": [
        _exp("expect_table_row_count_to_be_between", "no rows", "critical", False, min_value=1)
    ],
}


def _raw(con, table: str, rows: list[tuple], columns: str) -> None:
    """raw.shop_<table> with its declared columns and lineage; each row ends with its ds."""
    con.execute(
        f"create or replace table raw.shop_{table} ({columns}, _source_file varchar, "
        "_line bigint, _extra_keys varchar[], _ingested_at timestamp, ds date)"
    )
    for line, row in enumerate(rows, start=1):
        *values, ds = row
        marks = ", ".join("?" for _ in values)
        con.execute(
            f"insert into raw.shop_{table} values ({marks}, ?, ?, [], now()::timestamp, ?)",
            [*values, f"raw/shop/ds={ds}/{table}.csv", line, ds],
        )


@pytest.fixture
def shop(tmp_path):
    """The delivery D: orders of items a, b, c and None, at times in and around the day;
    the items of D are a and b (c is an item of the day before only)."""
    suites = tmp_path / "expectations"
    suites.mkdir()
    for name, expectations in SUITES.items():
        (suites / f"{name}.json").write_text(
            json.dumps({"name": name, "expectations": expectations})
        )
    con = connect(tmp_path / "w.duckdb")
    _raw(
        con,
        "orders",
        [
            ("a", START, D),  # 1 clean
            ("b", END - 1, D),  # 2 clean: the last second of the day
            ("c", START + 60, D),  # 3 an item of another delivery only
            (None, START + 60, D),  # 4 no item: not a reference to check
            ("a", END, D),  # 5 the next day
            ("z", START - 1, D),  # 6 the day before, and an unknown item
            ("z", START - 60, D - dt.timedelta(days=1)),  # another delivery: not read
        ],
        'item_id varchar, "placed_at" bigint',
    )
    _raw(
        con,
        "items",
        [("a", D), ("b", D), ("c", D - dt.timedelta(days=1))],
        "item_id varchar",
    )
    yield con, LocalLake(tmp_path / "lake"), suites
    con.close()


def test_delivery_parameters_and_references_count_alike_in_gx_and_sql(shop):
    con, lake, suites = shop
    report = validate_source(con, lake, SHOP, D, expectations_dir=suites, max_bad_row_share=0.9)
    rules = report.tables["orders"]["rules"]
    assert rules["placed_at outside the day"]["unexpected_count"] == 2
    assert rules["placed_at outside the day"]["sql_unexpected_count"] == 2
    assert rules["unknown item"]["unexpected_count"] == 2  # c (another day's) and z
    assert rules["unknown item"]["sql_unexpected_count"] == 2
    assert rules["unknown item"]["success"] is False
    held = con.execute(
        "select _line, _rule from quarantine.shop_orders where ds = ? order by _line", [D]
    ).fetchall()
    assert held == [
        (3, "unknown item"),
        (5, "placed_at outside the day"),
        (6, "placed_at outside the day"),  # the first rule it breaks
    ]
    assert "unknown item: 2 rows, 2 quarantined" in report.tables["orders"]["warnings"]
    # GX ran the generated query: Data Docs show it
    docs = [k for k in lake.list("reports/data_docs/shop") if "/expectations/" in k]
    assert any("shop_items" in lake.read_text(k) for k in docs)


def test_the_sql_reads_the_delivery_date_from_ds(shop):
    con, _, _ = shop
    rules = suite_rules({"name": "shop_orders", "expectations": SUITES["shop_orders"]})
    assert rules[1].references == ("raw.shop_items", "item_id")
    counts = sql_counts(con, "raw.shop_orders", D, rules)
    assert counts["unexpected"] == {"placed_at outside the day": 2, "unknown item": 2}
    # the day before: items of that delivery (c), times of that day
    counts = sql_counts(con, "raw.shop_orders", D - dt.timedelta(days=1), rules)
    assert counts["unexpected"] == {"placed_at outside the day": 0, "unknown item": 1}
    assert delivery_parameters(D) == {
        "ds_start_epoch": START,
        "ds_end_epoch": END,
        "ds_end_time": dt.datetime.combine(D + dt.timedelta(days=1), dt.time()),
    }


@pytest.mark.parametrize(
    "expectation, error",
    [
        (
            _exp("expect_column_values_to_be_between", "x", "critical", True, column="at",
                 max_value={"$PARAMETER": "tomorrow"}),
            "unknown parameter 'tomorrow'",
        ),
        (
            _exp("expect_column_values_to_be_in_set", "x", "critical", True, column="at",
                 value_set={"$PARAMETER": "ds_end_epoch"}),
            "only stand for min_value or max_value",
        ),
        (
            _exp("unexpected_rows_expectation", "x", "warning", True, column="item_id",
                 meta={"references": "items.item_id"}),
            "raw.<table>.<column>",
        ),
        (
            _exp("expect_column_values_to_not_be_null", "x", "warning", True, column="item_id",
                 meta={"references": "raw.shop_items.item_id"}),
            "unexpected_rows_expectation whose only kwarg is column",
        ),
        (
            _exp("unexpected_rows_expectation", "x", "warning", True,
                 unexpected_rows_query="select * from {batch}"),
            "no SQL translation",
        ),
    ],
)  # fmt: skip
def test_a_suite_that_cannot_say_what_it_means_is_refused(expectation, error):
    with pytest.raises(ValueError, match=error):
        suite_rules({"name": "shop_orders", "expectations": [expectation]})


def test_a_reference_to_another_source_is_refused(shop, tmp_path):
    con, lake, suites = shop
    other = _exp(
        "unexpected_rows_expectation",
        "unknown item",
        "warning",
        True,
        meta={"references": "raw.other_items.item_id"},
        column="item_id",
    )
    (suites / "shop_orders.json").write_text(
        json.dumps({"name": "shop_orders", "expectations": [other]})
    )
    with pytest.raises(ValueError, match="raw.other_items, not a table of source shop"):
        validate_source(con, lake, SHOP, D, expectations_dir=suites)
    assert con.execute("select count(*) from ops.validation_results").fetchone()[0] == 0


def test_a_reference_is_bound_sql():
    rule = Rule("r", "unexpected_rows_expectation", {"column": "item_id"}, "warning", True,
                ("raw.shop_items", "item_id"))  # fmt: skip
    sql = rule_sql(rule, {}).unexpected
    assert "$ds" in sql and "raw.shop_items" in sql and '"item_id" not in' in sql
