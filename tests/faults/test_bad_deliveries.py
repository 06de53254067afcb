"""Bad deliveries, for every registered source: one file of a small synthetic delivery broken
one way at a time (the fault suite of the issue "Faults, bad input and secrets").

The cases come from the registry: a new source is held to them without new test code. For
each, the night before (D1) is loaded first; the broken night (D2) must either load what a
clean D2 loads (the fault is harmless: a BOM, CRLF line ends, gzip), load it with exactly the
broken line rejected (a Latin-1 byte), or fail with one line naming the file and leave every
raw table exactly as D1 left it (a file cut short, a corrupt gzip stream, a missing file, one
delivered twice). An empty file loads nothing and fails validation.
"""

from __future__ import annotations

import datetime as dt
import gzip
import shutil

import pytest

from mlcore.ingest import IngestError, ingest_delivery
from mlcore.lake import LocalLake, raw_prefix
from mlcore.sources import SOURCES
from mlcore.validate import ValidationFailed, validate_source
from mlcore.warehouse import connect

# The conformance tests' two small nights (each source's test_nights).
D1 = dt.date(2024, 1, 30)
D2 = D1 + dt.timedelta(days=1)
SEED = 3


def _middle_line_start(data: bytes) -> int:
    """The offset of the first byte of the line in the middle of ``data``."""
    return data.index(b"\n", len(data) // 2) + 1


def cut_short(path):
    data = path.read_bytes()
    path.write_bytes(data[: _middle_line_start(data) + 1])  # one byte into a line


def gzip_under_plain_name(path):
    path.write_bytes(gzip.compress(path.read_bytes()))


def corrupt_gzip(path):
    path.with_name(path.name + ".gz").write_bytes(gzip.compress(path.read_bytes())[:40])
    path.unlink()


def missing(path):
    path.unlink()


def delivered_twice(path):
    path.with_name(path.name + ".gz").write_bytes(gzip.compress(path.read_bytes()))


def bom(path):
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())


def crlf(path):
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))


def latin1_byte(path):
    data = path.read_bytes()
    at = _middle_line_start(data)
    path.write_bytes(data[:at] + data[at:].replace(b"\n", b"\xe9\n", 1))


def empty(path):
    path.write_bytes(b"")


# fault -> what the delivery must do
FAULTS = {
    cut_short: "refused",
    corrupt_gzip: "refused",
    missing: "refused",
    delivered_twice: "refused",
    gzip_under_plain_name: "as clean",
    bom: "as clean",
    crlf: "as clean",
    latin1_byte: "one line rejected",
    empty: "fails validation",
}
# A partitioned table (douyin_live's room=<id>/*.csv) has no one file to break: each of its
# files goes through the same reader as these; its own faults (a corrupt gzip among many
# files, a file plain and gzipped, hostile folder names, CRLF) are in
# tests/unit/test_ingest_partitions.py.
CASES = [
    pytest.param(source, table.name, fault, id=f"{source}-{table.name}-{fault.__name__}")
    for source, spec in sorted(SOURCES.items())
    for table in spec.tables
    if not table.partition_key
    for fault in FAULTS
]


@pytest.fixture(scope="module")
def deliveries(tmp_path_factory):
    """{source: (folder, the clean D2's loads by table)}: the folder holds the lake with D1
    and a clean D2 (each source's small test night), and a warehouse with D1 loaded."""
    out = {}
    for name, source in SOURCES.items():
        root = tmp_path_factory.mktemp(f"faults-{name}")
        lake = LocalLake(root / "lake")
        for ds in (D1, D2):
            source.load_synth()(lake.root, ds, seed=SEED, **source.test_nights[1])
        con = connect(root / "clean.duckdb")
        report = ingest_delivery(con, lake, source, D2)
        con.close()
        con = connect(root / "d1.duckdb")
        ingest_delivery(con, lake, source, D1)
        con.close()
        out[name] = (root, {t: (x.rows, x.rejected) for t, x in report.tables.items()})
    return out


def raw_state(con, source) -> dict:
    """Every raw table of ``source`` and its rejected lines, as rows (the file's lineage too)."""
    state = {
        t.name: con.execute(
            f"select * exclude (_ingested_at) from {source.raw_table(t.name)} order by all"
        ).fetchall()
        for t in source.tables
    }
    state["rejected"] = con.execute(
        "select * exclude (rejected_at) from ops.rejected_lines where source = ? order by all",
        [source.name],
    ).fetchall()
    return state


@pytest.mark.parametrize("source_name, table, fault", CASES)
def test_a_broken_file(deliveries, tmp_path, source_name, table, fault):
    source = SOURCES[source_name]
    pristine, clean = deliveries[source_name]
    shutil.copytree(pristine / "lake", tmp_path / "lake")
    shutil.copyfile(pristine / "d1.duckdb", tmp_path / "w.duckdb")
    lake = LocalLake(tmp_path / "lake")
    con = connect(tmp_path / "w.duckdb")
    before = raw_state(con, source)
    assert any(before[t.name] for t in source.tables), "D1 is loaded"

    file = source.table(table).file
    fault(lake.path(f"{raw_prefix(source_name, D2)}/{file}"))
    expected = FAULTS[fault]
    if expected == "refused":
        with pytest.raises(IngestError) as failed:
            ingest_delivery(con, lake, source, D2)
        message = str(failed.value)
        assert file in message and "\n" not in message and message.isprintable(), message
        assert raw_state(con, source) == before  # nothing of D2 loaded, D1 intact
        return
    loads = {
        t: (x.rows, x.rejected) for t, x in ingest_delivery(con, lake, source, D2).tables.items()
    }
    if expected == "as clean":
        assert loads == clean
    elif expected == "one line rejected":
        rows, rejected = clean[table]
        assert loads[table] == (rows - 1, rejected + 1)
        reasons = con.execute(
            "select reason from ops.rejected_lines where source = ? and table_name = ? "
            "and ds = ? and reason like 'INVALID ENCODING%'",
            [source_name, table, D2],
        ).fetchall()
        assert len(reasons) == 1
    else:  # an empty file: nothing to load, and validation says so
        assert loads[table] == (0, 0)
        with pytest.raises(ValidationFailed, match=source.raw_table(table).split(".")[1]):
            validate_source(con, lake, source, D2)
    con.close()


@pytest.mark.parametrize("source_name", sorted(SOURCES))
@pytest.mark.parametrize("folder", ["empty", "absent"])
def test_an_empty_or_absent_delivery_is_refused_in_one_line(
    deliveries, tmp_path, source_name, folder
):
    source = SOURCES[source_name]
    pristine, _ = deliveries[source_name]
    shutil.copytree(pristine / "lake", tmp_path / "lake")
    shutil.copyfile(pristine / "d1.duckdb", tmp_path / "w.duckdb")
    lake = LocalLake(tmp_path / "lake")
    day = lake.path(raw_prefix(source_name, D2))
    shutil.rmtree(day)
    if folder == "empty":
        day.mkdir()
    con = connect(tmp_path / "w.duckdb")
    before = raw_state(con, source)
    with pytest.raises(IngestError) as failed:
        ingest_delivery(con, lake, source, D2)
    message = str(failed.value)
    assert str(D2) in message and "\n" not in message, message
    assert raw_state(con, source) == before
    con.close()
