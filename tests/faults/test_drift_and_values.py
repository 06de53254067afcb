"""Schema drift and hostile values, for every registered source and every pipeline that reads
it (the fault suite of the issue "Faults, bad input and secrets"; broken files are in
test_bad_deliveries.py).

The cases come from the registries: a source's TableSpecs say which columns are keys, text,
numbers or timestamps, and its expectation suites which columns hold a closed set of values
(``expect_column_values_to_be_in_set``) or a bounded number (``..._to_be_between``). A new
source or pipeline is held to them without new test code; a case whose column a table lacks
(a timestamp fault on a table without timestamps) is not generated for it. Each JSONL table of
only scalar columns is also delivered as CSV (``<table>.csv`` cases), so that the CSV reader
meets the same faults before a CSV source is registered.

Each case breaks one file of the night D2 (one line of it, or every line for a column that
drifts), the night before (D1) being loaded, and declares what users get (``OUTCOMES``):

- refused: ingest fails in one line naming the file and the column; every raw table is as D1
  left it;
- rejected: exactly that line goes to ``ops.rejected_lines`` with a one-line reason naming the
  column (or saying that the line does not parse); the rest of the file loads as in a clean D2;
- kept: the file loads as in a clean D2, with the value stored exactly as delivered (a new
  key is kept in ``_extra_keys``, and validation warns naming it);
- quarantined: loaded as delivered, then set aside by validation in
  ``quarantine.<source>_<table>`` under the suite's rule, while the delivery passes.

Validation costs a few seconds of Great Expectations per run, so what depends on it is checked
on one hostile night per source: every fault that does not refuse the delivery, each on its
own lines of the same D2, ingested, validated, staged and turned into features by every
pipeline reading the source. Its features must hold nothing hostile: no NaN or infinity, no
timestamp outside 1970-2100, no nested JSON as text, and no value that the source's suites
rule out in a column of the same name.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from test_bad_deliveries import D1, D2, SEED, raw_state

from mlcore import pipelines, steps
from mlcore.config import Settings
from mlcore.ingest import PLAUSIBLE_TIMESTAMPS, IngestError, ingest_delivery
from mlcore.lake import LocalLake, raw_prefix
from mlcore.sources import SOURCES, TableSpec
from mlcore.validate import Rule, load_suite, rule_sql, suite_rules, with_declared_columns
from mlcore.warehouse import connect

FLOATS = {"double", "float", "real", "float4", "float8"}
INTEGERS = {"tinyint", "smallint", "integer", "int", "int4", "bigint", "int8", "hugeint"}
NEW_KEY = "added_column"
UNICODE = "Zoë Ørsted ✓ 東京 🎵 \u200fשלום\u200e e\u0301 \u200bİı ß"
# Each fault of the hostile night takes every STRIDE-th of the lines it may edit (at least one):
# ~1% of a file per fault, so that the night as a whole stays under the bad-row limit.
STRIDE = 80


def _rules(source: str) -> dict[str, list[Rule]]:
    spec = SOURCES[source]
    return {
        t.name: suite_rules(with_declared_columns(load_suite(source, t.name), t))
        for t in spec.tables
    }


RULES = {name: _rules(name) for name in SOURCES}


# ---- what a fault breaks -------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    column: str
    rule: str | None = None  # the suite rule that the broken value breaks (quarantined faults)
    values: tuple = ()  # only lines holding one of these values are broken (closed sets)


def _scalar_text(typ: str) -> bool:
    return typ.lower() in ("varchar", "text", "string")


def _first(table: TableSpec, keep: Callable[[str, str], bool]) -> Target | None:
    found = [c for c, t in table.columns.items() if keep(c, t.lower())]
    return Target(found[0]) if found else None


def non_key(table, rules):
    if table.format == "csv" and not table.csv_header:
        return None  # a header-less CSV has no names to drift
    return _first(table, lambda c, t: c not in table.key)


def any_table(table, rules):
    return Target(next(iter(table.columns)))


def number(table, rules):
    return _first(table, lambda c, t: t in FLOATS | INTEGERS or t.startswith("decimal"))


def floating(table, rules):
    return _first(table, lambda c, t: t in FLOATS)


def timestamp(table, rules):
    return _first(table, lambda c, t: t.startswith("timestamp"))


def text(table, rules):
    """The first free text column (not a closed set) that is not a key, else the first."""
    closed = {r.kwargs.get("column") for r in rules if r.type.endswith("to_be_in_set")}
    free = [c for c, t in table.columns.items() if _scalar_text(t) and c not in closed]
    found = [c for c in free if c not in table.key] + free
    return Target(found[0]) if found else None


def text_id(table, rules):
    """The first text column of the key, else the first text column."""
    return _first(table, lambda c, t: _scalar_text(t) and c in table.key) or text(table, rules)


def nested_text(table, rules):
    # A CSV cell is text whatever it holds: nesting is a JSON fault.
    return _first(table, lambda c, t: _scalar_text(t)) if table.format == "jsonl" else None


def closed_set(table, rules):
    for r in rules:
        if r.type == "expect_column_values_to_be_in_set" and r.row_level:
            values = tuple(v for v in r.kwargs["value_set"] if isinstance(v, str) and v)
            if values and r.severity == "critical":
                return Target(r.kwargs["column"], r.name, values)
    return None


def bounded_below(table, rules):
    for r in rules:
        low = r.kwargs.get("min_value")
        between = r.type == "expect_column_values_to_be_between" and r.row_level
        if between and low is not None and low >= 0 and r.severity == "critical":
            return Target(r.kwargs["column"], r.name)
    return None


# ---- the faults ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Fault:
    name: str
    outcome: str  # see OUTCOMES
    target: Callable[[TableSpec, list[Rule]], Target | None]
    # One line broken: (the value delivered, its line, its raw table) -> the hostile value.
    value: Callable[[Any, int, str], Any] | None = None
    # Every line broken: (record, column) -> record.
    every_line: Callable[[dict, str], dict] | None = None
    reason: str = ""  # what a rejected line's reason says besides the column
    csv: tuple[str, str] | None = None  # (outcome, reason) where a CSV file differs

    def expected(self, table: TableSpec) -> tuple[str, str]:
        if table.format == "csv" and self.csv:
            return self.csv
        return self.outcome, self.reason


OUTCOMES = ("refused", "rejected", "kept", "quarantined")
LO, HI = PLAUSIBLE_TIMESTAMPS
OUTSIDE = f"is outside {LO} to {HI}"
READER_REASONS = ("malformed JSON", "INVALID ENCODING")


def _renamed(record, column):
    return {(f"{column}_v2" if k == column else k): v for k, v in record.items()}


def _dropped(record, column):
    return {k: v for k, v in record.items() if k != column}


def _added(record, column):
    return {**record, NEW_KEY: "surprise"}


FAULTS = (
    # schema drift
    Fault("renamed_column", "refused", non_key, every_line=_renamed),
    Fault("missing_column", "refused", non_key, every_line=_dropped),
    # a CSV is read by position: a column more shifts nothing safely, so it is refused too
    Fault("new_column", "kept", any_table, every_line=_added, csv=("refused", "")),
    Fault("text_in_number", "rejected", number, lambda v, n, t: "twelve", reason="cannot read"),
    Fault(
        "nested_json",
        "rejected",
        nested_text,
        lambda v, n, t: {"id": v, "tags": [1, 2]},
        reason="nested JSON",
    ),
    Fault("other_case", "quarantined", closed_set, lambda v, n, t: v.swapcase()),
    Fault("misspelt", "quarantined", closed_set, lambda v, n, t: v + v[-1]),
    # values
    Fault("nan", "rejected", floating, lambda v, n, t: math.nan, reason="not a finite number"),
    Fault(
        "infinity", "rejected", floating, lambda v, n, t: -math.inf, reason="not a finite number"
    ),
    Fault(
        "year_9999", "rejected", timestamp, lambda v, n, t: "9999-12-31T23:59:59", reason=OUTSIDE
    ),
    Fault(
        "before_1970", "rejected", timestamp, lambda v, n, t: "1969-12-31T23:59:59", reason=OUTSIDE
    ),
    Fault("negative_count", "quarantined", bounded_below, lambda v, n, t: -1),
    Fault("huge_string", "kept", text, lambda v, n, t: f"{n} " + "huge " * 200_000),
    Fault("unicode", "kept", text, lambda v, n, t: f"{UNICODE} {n}"),
    # an escaped lone surrogate is not JSON; as raw bytes in a CSV it is not UTF-8
    Fault(
        "lone_surrogate",
        "rejected",
        text,
        lambda v, n, t: f"x\ud800 {n}",
        reason="malformed JSON",
        csv=("rejected", "INVALID ENCODING"),
    ),
    Fault("sql_id", "kept", text_id, lambda v, n, t: f"'; drop table {t}; -- {n}"),
)
assert {f.outcome for f in FAULTS} <= set(OUTCOMES)
QUARANTINED = {f.name for f in FAULTS if f.outcome == "quarantined"}


def csv_rendition(table: TableSpec) -> TableSpec | None:
    """The table delivered as CSV instead of JSONL (when its columns are all scalars): no CSV
    source is registered yet, and the CSV reader must meet the same faults the same way."""
    if table.format != "jsonl" or any(t.endswith("[]") for t in table.columns.values()):
        return None
    return dataclasses.replace(table, format="csv", file=table.file.removesuffix(".jsonl") + ".csv")


def _cases():
    for source, spec in sorted(SOURCES.items()):
        # A partitioned table (douyin_live's room=<id>/*.csv) has no one file to break here:
        # its files go through the same reader (these cases, on the other sources' CSVs), and
        # its own faults are tests/unit/test_ingest_partitions.py and test_douyin_live_source.py.
        for registered in (t for t in spec.tables if not t.partition_key):
            for table, shown in ((registered, ""), (csv_rendition(registered), ".csv")):
                for fault in FAULTS if table else ():
                    if fault.target(table, RULES[source][table.name]) is not None:
                        name = f"{source}-{table.name}{shown}-{fault.name}"
                        yield pytest.param(source, table.name, table.format, fault, id=name)


CASES = list(_cases())


# ---- reading and writing the records of a delivered file -----------------------------------
def _read(path: Path, table: TableSpec) -> tuple[list, list]:
    """(lines as written, records): JSONL lines as bytes and objects (None where a line is no
    JSON object); CSV rows as lists of cells and dicts by header (None for the header), keyed
    by the declared column a header name stands for (``csv_columns``: userId -> user_id)."""
    if table.format == "jsonl":
        lines = path.read_bytes().split(b"\n")
        records = []
        for line in lines:
            try:
                obj = json.loads(line) if line.strip() else None
            except ValueError:
                obj = None
            records.append(obj if isinstance(obj, dict) else None)
        return lines, records
    limit = csv.field_size_limit(1 << 30)  # a huge_string fault is a megabyte in one cell
    try:
        # (a lone_surrogate fault is written with surrogatepass: read it back the same way)
        text = io.StringIO(path.read_bytes().decode("utf-8", "surrogatepass"), newline="")
        rows = list(csv.reader(text, delimiter=table.csv_delimiter))
    finally:
        csv.field_size_limit(limit)
    if not table.csv_header:
        names = list(table.columns)
        return rows, [
            dict(zip(names, r, strict=False)) if len(r) == len(names) else None for r in rows
        ]
    declared = dict(zip(table.csv_columns, table.columns, strict=False))
    header = [declared.get(name, name) for name in rows[0]]
    records = [None] + [
        dict(zip(header, r, strict=True)) if len(r) == len(header) else None for r in rows[1:]
    ]
    return rows, records


def _jsonl_line(record: dict) -> bytes:
    try:  # as UTF-8, so that unicode is delivered as bytes, not escapes
        return json.dumps(record, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate can only be written as an escape
        return json.dumps(record).encode("ascii")


def _csv_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict | list):
        return json.dumps(value)
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _write(path: Path, table: TableSpec, lines: list, records: list, edited: set[int]) -> None:
    """Write the file back: the ``edited`` records (0-based) from their dicts, the rest as
    they were delivered, byte for byte."""
    if table.format == "jsonl":
        out = [_jsonl_line(records[i]) if i in edited else line for i, line in enumerate(lines)]
        path.write_bytes(b"\n".join(out))
        return
    rows = list(lines)
    for i in edited:
        rows[i] = [_csv_cell(v) for v in records[i].values()]
    if table.csv_header and edited:
        first = min(edited)
        # the header as the edited records have it, in the file's own names
        named = dict(zip(table.columns, table.csv_columns, strict=False))
        rows[0] = [named.get(column, column) for column in records[first]]
    buf = io.StringIO(newline="")
    csv.writer(buf, delimiter=table.csv_delimiter, lineterminator="\n").writerows(rows)
    path.write_bytes(buf.getvalue().encode("utf-8", "surrogatepass"))


def _line_number(index: int) -> int:
    """The line (1-based, as ingest numbers it) of record ``index`` of _read's list (a CSV
    header is record 0 and line 1, as in ingest)."""
    return index + 1


def break_file(
    path: Path,
    table: TableSpec,
    raw_table: str,
    fault: Fault,
    target: Target,
    *,
    avoid: frozenset[int] = frozenset(),
    slot: int | None = None,
    taken: set[int] | None = None,
) -> dict[int, Any]:
    """Break the delivered ``path`` with ``fault``; returns {line: the value now there}.

    A one-line fault breaks a line whose every declared value is present (and, for a closed
    set, one of the set), outside ``avoid`` (the lines that break a rule of the suite as
    delivered), so that the fault is all that is wrong with it: the first such line from the
    middle of the file, or (``slot`` given: the hostile night) every STRIDE-th such line from
    the ``slot``-th on, outside the lines ``taken`` by other faults (updated).
    """
    lines, records = _read(path, table)
    if fault.every_line is not None:
        edited = {i for i, r in enumerate(records) if r is not None}
        for i in edited:
            records[i] = fault.every_line(records[i], target.column)
        _write(path, table, lines, records, edited)
        return {_line_number(i): None for i in edited}
    skip = avoid | (taken or set())
    fitting = [
        i
        for i, r in enumerate(records)
        if r is not None
        and _line_number(i) not in skip
        and all(r.get(c) not in (None, "") for c in table.columns)
        and (not target.values or r[target.column] in target.values)
    ]
    assert fitting, f"{path.name}: no line fit for {fault.name}"
    if slot is None:
        middle = len(records) // 2
        chosen = [next((i for i in fitting if i >= middle), fitting[-1])]
    else:
        chosen = fitting[slot::STRIDE] or fitting[-1:]
        if fault.name == "huge_string":
            chosen = chosen[:2]  # a megabyte each
    broken = {}
    for i in chosen:
        value = fault.value(records[i][target.column], _line_number(i), raw_table)
        records[i][target.column] = value
        broken[_line_number(i)] = value
    if taken is not None:
        taken.update(broken)
    _write(path, table, lines, records, set(chosen))
    return broken


def flagged_lines(con, source_name: str, table_name: str, ds) -> frozenset[int]:
    """The lines of the ``ds`` rows of a raw table that break a row-level rule of its suite
    (every row of a group of duplicates, not only the surplus), found with validation's own
    SQL for the rules (no Great Expectations run)."""
    params: dict[str, Any] = {"ds": ds}
    rules = [r for r in RULES[source_name][table_name] if r.row_level]
    if not rules:
        return frozenset()
    bad = " or ".join(f"({rule_sql(r, params).unexpected})" for r in rules)
    raw = SOURCES[source_name].raw_table(table_name)
    rows = con.execute(
        f"select _line from (select _line, {bad} as bad from {raw} where ds = $ds) where bad",
        params,
    ).fetchall()
    return frozenset(line for (line,) in rows)


# ---- the nights ----------------------------------------------------------------------------
def _render_csv(jsonl: Path, csv_path: Path, table: TableSpec) -> None:
    _, records = _read(jsonl, dataclasses.replace(table, format="jsonl"))
    rows = [list(table.columns)] + [
        [_csv_cell(r.get(c)) for c in table.columns] for r in records if r is not None
    ]
    buf = io.StringIO(newline="")
    csv.writer(buf, delimiter=table.csv_delimiter, lineterminator="\n").writerows(rows)
    csv_path.write_text(buf.getvalue())


def _spec(source_name: str, table_name: str, fmt: str):
    """(the source to ingest, the table): the registered source, or for a CSV rendition a
    source of that one table."""
    source = SOURCES[source_name]
    table = source.table(table_name)
    if fmt == table.format:
        return source, table
    table = csv_rendition(table)
    return dataclasses.replace(source, tables=(table,)), table


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """(root, clean, flagged). Under root, a lake with every source's two small test nights
    and a warehouse with every D1 loaded, for each world (:func:`_world`): ``delivered`` (the
    files as each source delivers them) and ``csv`` (the CSV renditions of JSONL tables).
    clean: the clean D2 loads, {(world, source): {table: (rows, rejected)}}; flagged:
    {source: {table: lines of the clean D2 that break a row-level rule}}."""
    root = tmp_path_factory.mktemp("drift")
    lake = LocalLake(root / "delivered" / "lake")
    clean, flagged = {}, {}
    con_d1 = connect(root / "delivered" / "d1.duckdb")
    con_clean = connect(root / "clean.duckdb")
    csv_d1 = connect(root / "csv" / "d1.duckdb")
    for name, source in SOURCES.items():
        for ds in (D1, D2):
            source.load_synth()(lake.root, ds, seed=SEED, **source.test_nights[1])
        clean["delivered", name] = _loads(ingest_delivery(con_clean, lake, source, D2))
        flagged[name] = {t.name: flagged_lines(con_clean, name, t.name, D2) for t in source.tables}
        ingest_delivery(con_d1, lake, source, D1)
        clean["csv", name] = {}
        for table in filter(None, map(csv_rendition, source.tables)):
            one, _ = _spec(name, table.name, "csv")
            csv_lake = LocalLake(root / "csv" / "lake")
            for ds in (D1, D2):
                jsonl = lake.path(f"{raw_prefix(name, ds)}/{source.table(table.name).file}")
                folder = csv_lake.path(raw_prefix(name, ds))
                folder.mkdir(parents=True, exist_ok=True)
                _render_csv(jsonl, folder / table.file, table)
            ingest_delivery(csv_d1, csv_lake, one, D1)
            clean["csv", name].update(_loads(ingest_delivery(con_clean, csv_lake, one, D2)))
    for con in (con_d1, con_clean, csv_d1):
        con.close()
    return root, clean, flagged


def _world(source_name: str, table_name: str, fmt: str) -> str:
    """``delivered`` for a case on the table as its source delivers it, ``csv`` for one on the
    CSV rendition of a JSONL table."""
    return "delivered" if fmt == SOURCES[source_name].table(table_name).format else "csv"


def _copy(world, folder: Path, where: str = "delivered") -> LocalLake:
    root = world[0]
    shutil.copytree(root / where / "lake", folder / "lake")
    shutil.copyfile(root / where / "d1.duckdb", folder / "w.duckdb")
    return LocalLake(folder / "lake")


def _loads(report) -> dict:
    return {t: (x.rows, x.rejected) for t, x in report.tables.items()}


def _one_line(message: str) -> bool:
    return "\n" not in message and message.isprintable()


@pytest.mark.parametrize("source_name, table_name, fmt, fault", CASES)
def test_drift_or_hostile_value(world, tmp_path, source_name, table_name, fmt, fault):
    source, table = _spec(source_name, table_name, fmt)
    where = _world(source_name, table_name, fmt)
    lake = _copy(world, tmp_path, where)
    with connect(tmp_path / "w.duckdb") as con:
        _check_case(con, lake, source, table, where, fault, world)


def _check_case(con, lake, source, table, where, fault, world) -> None:
    source_name, table_name = source.name, table.name
    raw_table = source.raw_table(table_name)
    target = fault.target(table, RULES[source_name][table_name])
    clean = world[1][where, source_name]
    before = raw_state(con, source)
    # (a CSV rendition holds only the JSON objects: its line numbers are its own)
    avoid = world[2][source_name][table_name] if where == "delivered" else frozenset()
    path = lake.path(f"{raw_prefix(source_name, D2)}/{table.file}")
    broken = break_file(path, table, raw_table, fault, target, avoid=avoid)
    outcome, reason = fault.expected(table)

    if outcome == "refused":
        with pytest.raises(IngestError) as failed:
            ingest_delivery(con, lake, source, D2)
        message = str(failed.value)
        assert _one_line(message), message
        named = NEW_KEY if fault.every_line is _added else target.column
        assert table.file in message and repr(named) in message, message
        if fault.every_line is _renamed:
            assert repr(f"{target.column}_v2") in message, message  # the new name too
        assert raw_state(con, source) == before  # nothing of D2 loaded, D1 intact
        return

    # The other files are as delivered: loading this table's alone saves a second a case.
    loads = _loads(ingest_delivery(con, lake, dataclasses.replace(source, tables=(table,)), D2))
    (line,) = broken if fault.value else (None,)
    if outcome == "rejected":
        rows, rejected = clean[table_name]
        assert loads[table_name] == (rows - 1, rejected + 1)
        found = con.execute(
            "select reason from ops.rejected_lines "
            "where source = ? and table_name = ? and ds = ? and line = ?",
            [source_name, table_name, D2, line],
        ).fetchall()
        assert len(found) == 1, found
        why = found[0][0]
        assert reason in why and _one_line(why), why
        if reason not in READER_REASONS:  # a line that cannot be read has no columns yet
            assert why.startswith(f"{target.column}: "), why
        return

    # kept, or quarantined by validation (test_the_hostile_night): loaded as delivered
    assert loads[table_name] == clean[table_name]
    if fault.every_line is _added:
        extra = con.execute(
            f"select count(*) filter (where list_contains(_extra_keys, '{NEW_KEY}')), count(*) "
            f"from {raw_table} where ds = ?",
            [D2],
        ).fetchone()
        assert extra == (loads[table_name][0],) * 2
        return
    stored = con.execute(
        f'select "{target.column}" from {raw_table} where ds = ? and _line = ?', [D2, line]
    ).fetchall()
    assert stored == [(broken[line],)]


# ---- the hostile night: every fault that does not refuse, validated, staged, featurised ----
def _pipelines_reading(source: str) -> list[str]:
    return sorted(pipelines.readers(source))


@pytest.fixture(scope="module")
def hostile_nights(world, tmp_path_factory):
    """{source: what one night with every non-refusing fault of the source did}, made once
    per source on demand: the lines each fault broke, the validation summary (or its
    failure), and the warehouse after staging and every reading pipeline's features."""
    made = {}

    def night(source_name: str) -> dict:
        if source_name not in made:
            made[source_name] = _hostile_night(
                world, tmp_path_factory.mktemp(source_name), source_name
            )
        return made[source_name]

    return night


def _hostile_night(world, folder: Path, source_name: str) -> dict:
    source = SOURCES[source_name]
    lake = _copy(world, folder)
    broken = {}
    for table in source.tables:
        path = lake.path(f"{raw_prefix(source_name, D2)}/{table.file}")
        taken: set[int] = set()
        slot = 0
        # one-line faults first (they pick complete lines), then those on every line
        for fault in sorted(FAULTS, key=lambda f: f.every_line is not None):
            target = fault.target(table, RULES[source_name][table.name])
            if target is None or fault.expected(table)[0] == "refused":
                continue
            lines = break_file(
                path,
                table,
                source.raw_table(table.name),
                fault,
                target,
                avoid=world[2][source_name][table.name],
                slot=slot,
                taken=taken,
            )
            broken[table.name, fault.name] = (target, lines)
            slot += 1
    settings = Settings(lake=str(folder / "lake"), warehouse=folder / "w.duckdb")
    ds = D2.isoformat()
    # every source of the pipelines reading this one must be staged for the night
    sources = sorted({s for p in _pipelines_reading(source_name) for s in pipelines.get(p).sources})
    result = {"broken": broken, "warehouse": folder / "w.duckdb", "validation": {}, "error": None}
    try:
        for name in sorted(set(sources) | {source_name}):
            steps.ingest(name, ds, settings)
            result["validation"][name] = steps.validate(name, ds, settings)
            steps.stage(name, ds, settings)
        for pipeline in _pipelines_reading(source_name):
            steps.build_features(pipeline, ds, settings)
    except Exception as e:  # noqa: BLE001 - the tests say what failed
        result["error"] = f"{type(e).__name__}: {e}"
    return result


VALIDATED_CASES = [
    pytest.param(source, table, fault, id=p.id)
    for p in CASES
    for source, table, fmt, fault in [p.values]
    if fmt == SOURCES[source].table(table).format
    and fault.expected(SOURCES[source].table(table))[0] in ("kept", "quarantined")
]


@pytest.mark.parametrize("source_name, table_name, fault", VALIDATED_CASES)
def test_the_hostile_night(world, hostile_nights, source_name, table_name, fault):
    night = hostile_nights(source_name)
    assert night["error"] is None, night["error"]
    target, lines = night["broken"][table_name, fault.name]
    summary = night["validation"][source_name]["tables"][table_name]
    quarantine = f"quarantine.{source_name}_{table_name}"
    with connect(night["warehouse"], read_only=True) as con:
        held = {
            line: rule
            for line, rule in con.execute(
                f"select _line, _rule from {quarantine} where ds = ?", [D2]
            ).fetchall()
        }
    # A rule referencing another table of the source (meta.references) sets aside the rows
    # whose key that table's faults took away (an id made -1 there, or its line rejected):
    # those rows are explained by the night too.
    raw_table = SOURCES[source_name].raw_table(table_name)
    referencing = {
        r.name
        for r in RULES[source_name][table_name]
        if r.references is not None and r.references[0] != raw_table
    }
    explained = {n for n, rule in held.items() if rule in referencing}
    outcome, _ = fault.expected(SOURCES[source_name].table(table_name))
    if outcome == "quarantined":
        # every broken line set aside under the fault's rule (the lines broke no rule before)
        assert {n: held.get(n) for n in lines} == dict.fromkeys(lines, target.rule)
        # and nothing else beyond what the clean night quarantines: the lines the other
        # faults of the night set aside, and the clean night's (a subset of the lines that
        # break a rule as delivered)
        others = {
            n
            for (t, f), (_, broken) in night["broken"].items()
            if t == table_name and f != fault.name and f in QUARANTINED
            for n in broken
        }
        assert set(held) - set(lines) - others - explained <= world[2][source_name][table_name]
        return
    if fault.every_line is None:
        kept = set(lines) & (set(held) - explained)
        assert not kept, "a value kept as delivered is not quarantined"
    else:
        assert any(NEW_KEY in w and "keys outside the schema" in w for w in summary["warnings"]), (
            summary["warnings"]
        )


def _finite_check(col: str, typ: str) -> str | None:
    t = typ.lower()
    if t in FLOATS:
        return f"not isfinite({col})"
    if t.endswith("[]") and t[:-2] in FLOATS:
        return f"list_bool_or(list_transform({col}, x -> not isfinite(x)))"
    if t.startswith("timestamp") or t == "date":
        return f"({col} < timestamp '{LO}' or {col} >= timestamp '{HI}')"
    if t == "varchar":
        return f"(json_valid({col}) and json_type({col}) in ('OBJECT', 'ARRAY'))"
    return None


def _ruled_out(rule: Rule, col: str) -> str | None:
    """SQL true where a features column named like the rule's column breaks it."""
    kw = rule.kwargs
    if rule.type == "expect_column_values_to_be_between":
        # a bound of the delivery ({"$PARAMETER": ...}) is the delivery's, not the features'
        kw = {k: v for k, v in kw.items() if not isinstance(v, dict)}
        parts = []
        if kw.get("min_value") is not None:
            parts.append(f"{col} {'<=' if kw.get('strict_min') else '<'} {kw['min_value']!r}")
        if kw.get("max_value") is not None:
            parts.append(f"{col} {'>=' if kw.get('strict_max') else '>'} {kw['max_value']!r}")
        return " or ".join(parts) or None
    if rule.type == "expect_column_values_to_be_in_set":
        values = ", ".join("'" + str(v).replace("'", "''") + "'" for v in kw["value_set"])
        return f"{col} not in ({values})"
    return None


FEATURE_CASES = [
    pytest.param(source, pipeline, id=f"{source}-{pipeline}")
    for source in sorted(SOURCES)
    if not any(t.partition_key for t in SOURCES[source].tables)  # no one file to break (above)
    for pipeline in _pipelines_reading(source)
]


@pytest.mark.parametrize("source_name, pipeline", FEATURE_CASES)
def test_features_hold_nothing_hostile(hostile_nights, source_name, pipeline):
    night = hostile_nights(source_name)
    assert night["error"] is None, night["error"]
    ruled = [
        (r, r.kwargs["column"])
        for rules in RULES[source_name].values()
        for r in rules
        if r.severity == "critical" and "column" in r.kwargs and _ruled_out(r, "x")
    ]
    found = {}
    with connect(night["warehouse"], read_only=True) as con:
        for table in pipelines.get(pipeline).feature_exports.values():
            columns = con.execute(f"describe {table}").fetchall()
            assert con.execute(f"select count(*) from {table}").fetchone()[0] > 0, table
            for col, typ, *_ in columns:
                checks = [_finite_check(f'"{col}"', typ)]
                checks += [_ruled_out(r, f'"{col}"') for r, c in ruled if c == col]
                for check in filter(None, checks):
                    n = con.execute(f"select count(*) from {table} where {check}").fetchone()[0]
                    if n:
                        found[f"{table}.{col}: {check}"] = n
    assert not found, found


# ---- names ---------------------------------------------------------------------------------
HOSTILE_DS = [
    "../2024-01-31",
    "2024-01-31/../../x",
    "2024-01-31'; drop table raw.x; --",
    "$(touch pwned)",
    "2024-01-31`id`",
    "2024-01-31\n",
    "2024-01-31 ",
    "20240131",
    "2024-02-30",
]
HOSTILE_NAMES = ["../pozytywka", "..", "x'; drop table raw.x; --", "$(touch pwned)", "a\nb", ""]


def test_hostile_ds_values_and_names_are_refused_in_one_line(tmp_path):
    settings = Settings(lake=str(tmp_path / "lake"), warehouse=tmp_path / "w.duckdb")
    source, pipeline = sorted(SOURCES)[0], sorted(pipelines.PIPELINES)[0]
    calls = [
        (step, name, ds)
        for ds in HOSTILE_DS
        for step, name in (
            (steps.ingest, source),
            (steps.validate, source),
            (steps.stage, source),
            (steps.build_features, pipeline),
            (steps.train, pipeline),
            (steps.gate, pipeline),
            (steps.publish, pipeline),
        )
    ]
    calls += [
        (step, name, D2.isoformat())
        for name in HOSTILE_NAMES
        for step in (steps.ingest, steps.validate, steps.stage)  # sources
        + (steps.build_features, steps.train, steps.publish)  # pipelines
    ]
    _refused(calls, settings)
    made = [p.name for p in tmp_path.rglob("*")]
    assert not [p for p in made if p not in ("w.duckdb", "w.duckdb.wal")], made


def test_gate_refuses_a_hostile_pipeline_name(tmp_path):
    settings = Settings(lake=str(tmp_path / "lake"), warehouse=tmp_path / "w.duckdb")
    _refused([(steps.gate, name, D2.isoformat()) for name in HOSTILE_NAMES], settings)


def _refused(calls, settings) -> None:
    """Each (step, name, ds) call fails in one line: a ds that is not YYYY-MM-DD, or a name
    that no source or pipeline has."""
    for step, name, ds in calls:
        with pytest.raises((ValueError, KeyError)) as refused:
            step(name, ds, settings)
        message = str(refused.value)
        assert _one_line(message), (step.__name__, name, ds, message)
        assert "ds must be a date like" in message or "unknown" in message, message


@pytest.mark.parametrize("source_name", sorted(SOURCES))
def test_hostile_file_names_in_a_delivery_are_ignored_with_a_warning(
    world, tmp_path, caplog, source_name
):
    source = SOURCES[source_name]
    lake = _copy(world, tmp_path)
    names = [f"..{source.tables[0].file}", "it's.jsonl", "$(touch pwned).jsonl", "a;b|c&.csv"]
    for name in names:
        lake.path(f"{raw_prefix(source_name, D2)}/{name}").write_bytes(b'{"x": 1}\n')
    with connect(tmp_path / "w.duckdb") as con, caplog.at_level(logging.WARNING):
        assert _loads(ingest_delivery(con, lake, source, D2)) == world[1]["delivered", source_name]
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(all(repr(n) in w for n in names) for w in warned), warned
