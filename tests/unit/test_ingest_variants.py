"""Tables delivered in one of several layouts (``TableSpec.variants``), for any source: the
layout picked by the file name, its own delimiter, quoting, encoding, columns and derived
columns, and the same checks as for any file."""

from __future__ import annotations

import datetime as dt
import gzip

import pytest

from mlcore.ingest import IngestError, ingest_delivery
from mlcore.lake import LocalLake
from mlcore.sources import FileVariant, SourceSpec, TableSpec
from mlcore.warehouse import connect

DS = dt.date(2024, 1, 31)
PRICES = TableSpec(
    "prices",
    "prices.csv",
    {"sku": "varchar", "price": "double", "label": "varchar"},
    key=("sku",),
    format="csv",
    csv_columns=("SKU", "Price", "Label"),
    variants=(
        # a semicolon file with a header of its own, decimal commas, the label in two parts
        FileVariant(
            "prices_eu.txt",
            delimiter=";",
            columns=("code", "euros", "brand", "name"),
            derive={"price": "replace(euros, ',', '.')", "label": "brand || ' ' || name"},
            doc="the European feed",
        ),
        # no header, no quoting, `::` between fields, Latin-1 or UTF-8
        FileVariant(
            "prices.dat",
            header=False,
            delimiter="::",
            quote="",
            encoding="utf-8|latin-1",
        ),
        FileVariant("prices.jsonl", format="jsonl"),
    ),
)
SHOP = SourceSpec("shop", (PRICES,))


@pytest.fixture
def env(tmp_path):
    lake = LocalLake(tmp_path / "lake")
    con = connect(tmp_path / "w.duckdb")
    yield lake, con
    con.close()


def _deliver(lake, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        lake.write_bytes(f"raw/shop/ds={DS.isoformat()}/{name}", data)


def _loaded(con) -> list[tuple]:
    return con.execute(
        "select sku, price, label, _source_file, _line from raw.shop_prices order by _line"
    ).fetchall()


def test_the_default_layout_reads_its_own_header_names(env):
    lake, con = env
    _deliver(lake, {"prices.csv": b'SKU,Price,Label\nA1,1.5,"Tea, green"\n'})
    ingest_delivery(con, lake, SHOP, DS)
    assert _loaded(con) == [("A1", 1.5, "Tea, green", "raw/shop/ds=2024-01-31/prices.csv", 2)]


def test_a_variant_with_derived_columns(env):
    lake, con = env
    _deliver(lake, {"prices_eu.txt": "code;euros;brand;name\nB2;2,5;Ça;va\nB3;x;a;b\n".encode()})
    report = ingest_delivery(con, lake, SHOP, DS)
    assert report.tables["prices"].source_file.endswith("/prices_eu.txt")
    assert _loaded(con) == [("B2", 2.5, "Ça va", "raw/shop/ds=2024-01-31/prices_eu.txt", 2)]
    # a derived value that does not cast is a rejected line naming the declared column
    reasons = con.execute("select line, reason from ops.rejected_lines").fetchall()
    assert reasons == [(3, "price: cannot read x as double")]


def test_a_variant_header_that_drifted_names_its_own_columns(env):
    lake, con = env
    _deliver(lake, {"prices_eu.txt": b"code;euro;brand;name\nB2;2,5;a;b\n"})
    with pytest.raises(IngestError, match=r"prices_eu.txt .*lacks the declared column 'euros'"):
        ingest_delivery(con, lake, SHOP, DS)


@pytest.mark.parametrize("encoding", ["utf-8", "latin-1"])
def test_a_file_in_utf8_or_latin1_is_read_as_what_it_is(env, encoding):
    lake, con = env
    text = 'C1::2.5::Crème "brûlée", 1 kg\nC2::3::plain\n'
    _deliver(lake, {"prices.dat.gz": gzip.compress(text.encode(encoding))})
    report = ingest_delivery(con, lake, SHOP, DS)
    assert (report.tables["prices"].rows, report.tables["prices"].rejected) == (2, 0)
    assert [r[2] for r in _loaded(con)] == ['Crème "brûlée", 1 kg', "plain"]


def test_a_jsonl_variant(env):
    lake, con = env
    _deliver(lake, {"prices.jsonl": b'{"sku": "D4", "price": 4, "label": "x", "more": 1}\n'})
    ingest_delivery(con, lake, SHOP, DS)
    assert _loaded(con) == [("D4", 4.0, "x", "raw/shop/ds=2024-01-31/prices.jsonl", 1)]


def test_two_layouts_at_once_are_refused_naming_both(env):
    lake, con = env
    _deliver(lake, {"prices.csv": b"SKU,Price,Label\n", "prices.dat": b"C1::2::x\n"})
    with pytest.raises(IngestError, match=r"holds both prices.csv and prices.dat \(layouts of"):
        ingest_delivery(con, lake, SHOP, DS)


@pytest.mark.parametrize(
    "variant, error",
    [
        (FileVariant("x.csv", derive={"colour": "1"}), "derives undeclared columns"),
        (FileVariant("x.csv", columns=("a", "b")), "2 columns cannot give declared column 3"),
        (FileVariant("prices.csv"), "a file name repeats"),
    ],
)
def test_a_layout_that_cannot_give_the_declared_columns_is_refused(variant, error):
    with pytest.raises(AssertionError, match=error):
        TableSpec("t", "prices.csv", dict(PRICES.columns), key=("sku",), variants=(variant,))


@pytest.mark.parametrize(
    "kwargs",
    [{"encoding": "cp1252"}, {"format": "xml"}, {"format": "jsonl", "columns": ("a",)}],
)
def test_a_layout_with_unknown_options_is_refused(kwargs):
    with pytest.raises(AssertionError):
        FileVariant("x.csv", **kwargs)
