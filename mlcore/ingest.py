"""Load a raw delivery from the lake into ``raw.<source>_<table>``, with lineage and no guessing.

Every file is read by DuckDB against its declared schema (mlcore/sources). A line that
cannot be parsed or cast is not dropped silently: it goes to ``ops.rejected_lines`` with its
file, line number and reason, and the rest of the file loads. A file that drifted from its
schema (a declared key that no line of a JSONL file has, a CSV header that is not the layout's
columns) is refused, naming the columns. Loading the same delivery again replaces what the
first load wrote, so re-runs never duplicate rows.

A table delivered in one of several layouts (``TableSpec.variants``) is read in the layout
whose file the delivery holds (``_source_file`` names it); a delivery holding two layouts of
one table is refused. Files are streamed by DuckDB whatever their size: only a layout that may
be UTF-8 or Latin-1 is first scanned in Python (in chunks) to tell which.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import fnmatch
import gzip
import logging
import re
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from mlcore.lake import Lake, raw_prefix
from mlcore.sources import FileVariant, SourceSpec, TableSpec
from mlcore.warehouse import ident, table_exists, transaction

log = logging.getLogger(__name__)

# Raw lines kept in ops.rejected_lines are cut to this length: enough to see what is wrong,
# not enough for one hostile line to bloat the warehouse.
MAX_REJECTED_LINE_CHARS = 2000


# DuckDB's reject store: lines the CSV reader itself refuses (wrong field count, invalid UTF-8,
# a line over its 2 MB limit) are kept there, with their line in the file, instead of
# aborting the whole file.
_REJECTS = "store_rejects = true, rejects_table = '_read_rejects', rejects_scan = '_read_scans'"


# The name the unnamed index column pandas writes is read under (then dropped).
_PANDAS_INDEX = "_pandas_index"
_PANDAS_INDEX_HEADERS = ("", "Unnamed: 0")


# Values a declared type admits but no delivery means, rejected like a value that does not
# cast: NaN and +-Infinity in a floating-point column (one `daily_cost: Infinity` made a cache
# budget infinite), and timestamps outside these bounds (year 9999, 1 BC: sentinels and typos,
# not events). Dates are not bounded: a birth date before 1970 is real.
PLAUSIBLE_TIMESTAMPS = ("1970-01-01", "2100-01-01")
_FLOAT_TYPES = {"double", "float", "real", "float4", "float8"}


def _implausible(col: str, typ: str, value: str) -> str | None:
    """SQL for why the cast ``value`` of ``col`` is implausible (NULL when it is fine), or None
    when values of type ``typ`` are not checked beyond their cast."""
    t = typ.lower()
    if t in _FLOAT_TYPES:
        return (
            f"case when not isfinite({value}) "
            f"then '{col}: ' || {value}::varchar || ' is not a finite number' end"
        )
    if t == "timestamp":
        lo, hi = PLAUSIBLE_TIMESTAMPS
        return (
            f"case when {value} < timestamp '{lo}' or {value} >= timestamp '{hi}' "
            f"then '{col}: ' || {value}::varchar || ' is outside {lo} to {hi}' end"
        )
    return None


def _checked(col: str, typ: str, cast: str, present: str, shown: str) -> tuple[str, str]:
    """(value, problem) SQL for one declared column.

    ``cast``: the try_cast of the delivered text (NULL when it does not cast); ``present``: the
    delivery holds a non-empty value; ``shown``: that value as text, for the reason. An
    implausible value (:func:`_implausible`) is NULL in the row and a reason, as a value that
    does not cast is.
    """
    problem = (
        f"case when {present} and {cast} is null "
        f"then '{col}: cannot read ' || left({shown}, 60) || ' as {typ}' end"
    )
    check = _implausible(col, typ, cast)
    if check is None:
        return cast, problem
    return f"case when ({check}) is null then {cast} end", f"coalesce({problem}, {check})"


class IngestError(RuntimeError):
    """A delivery cannot be loaded at all (missing file, unreadable format)."""


@dataclass
class TableLoad:
    table: str
    source_file: str
    rows: int
    rejected: int
    seconds: float


@dataclass
class IngestReport:
    source: str
    ds: dt.date
    tables: dict[str, TableLoad] = field(default_factory=dict)

    def summary(self) -> dict:
        return {
            "source": self.source,
            "ds": self.ds.isoformat(),
            "tables": {
                t.table: {"rows": t.rows, "rejected": t.rejected, "seconds": round(t.seconds, 2)}
                for t in self.tables.values()
            },
        }


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _json_path(column: str) -> str:
    # JSON path for a top-level key; keys are our own declared names, quoted for safety.
    return "$." + _quote(column)


def _sql_text(value: str) -> str:
    """A SQL string literal (for names from a source module, never for data)."""
    return "'" + value.replace("'", "''") + "'"


def _jsonl_select(spec: TableSpec) -> str:
    """SQL over ``_lines(line, raw)`` that parses, casts and explains every line.

    DuckDB's own JSON reader would skip or abort on a bad line without saying which one, so
    lines are read as text (with their ordinal) and each declared key is extracted and cast
    with try_cast: a value present in the JSON but not castable makes a reject reason.
    """
    values, problems = [], []
    for col, typ in spec.columns.items():
        path = _json_path(col)
        is_list = typ.endswith("[]")
        extracted = f"json_extract(j, '{path}')" if is_list else f"j ->> '{path}'"
        cast = f"case when _valid then try_cast({extracted} as {typ}) end"
        present = f"_valid and coalesce(json_type(j, '{path}') <> 'NULL', false)"
        shown = f"json_extract(j, '{path}')::varchar"
        value, problem = _checked(col, typ, cast, present, shown)
        if not is_list and typ.lower() == "varchar":
            # An object or a list where text is declared would be kept as its JSON text.
            nested = (
                f"case when _valid and json_type(j, '{path}') in ('OBJECT', 'ARRAY') "
                f"then '{col}: nested JSON ' || left({shown}, 60) || ' where text is expected' end"
            )
            value = f"case when ({nested}) is null then {value} end"
            problem = f"coalesce({nested}, {problem})"
        values.append(f"{value} as {_quote(col)}")
        problems.append(problem)
    declared = ", ".join(f"'{c}'" for c in spec.columns)
    reason = (
        "case when not _parsed then 'malformed JSON' "
        "when not _valid then 'not a JSON object' "
        f"else nullif(concat_ws('; ', {', '.join(problems)}), '') end"
    )
    # One streaming pass: lines are read, parsed and cast without materialising the raw text;
    # only rejected lines keep theirs (cut to MAX_REJECTED_LINE_CHARS) for ops.rejected_lines.
    return f"""
        with lines as (
            -- The unit separator never appears unescaped in valid JSON: one line, one field.
            select ordinality as line, raw
            from read_csv(?, columns = {{'raw': 'varchar'}}, header = false, delim = e'\\x1f',
                          quote = '', escape = '', auto_detect = false, strict_mode = false,
                          null_padding = true, compression = ?, encoding = ?, {_REJECTS})
            with ordinality
        ), parsed as (
            -- json_* functions raise on malformed text, so only valid lines reach them
            select line, raw, case when json_valid(raw) then raw end as j
            from lines
            where raw is not null and trim(raw) <> ''
        ), typed as (
            select *, j is not null as _parsed,
                   coalesce(json_type(j) = 'OBJECT', false) as _valid
            from parsed
        ), keyed as (
            select *, case when _valid then json_keys(j) end as _keys from typed
        ), checked as (
            select line, raw, {reason} as _reason,
                   {", ".join(values)},
                   list_filter(_keys, lambda k: k not in ({declared})) as _extra_keys,
                   -- declared keys the line lacks (NULL when none): a key no line has is a
                   -- column renamed or dropped by the sender (_check_declared_keys)
                   nullif(list_filter([{declared}], lambda k: not list_contains(_keys, k)), [])
                       as _absent_keys
            from keyed
        )
        select * replace (
            case when _reason is not null then left(raw, {MAX_REJECTED_LINE_CHARS}) end as raw
        )
        from checked
    """


def _read_jsonl(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    spec: TableSpec,
    layout: FileVariant,
    parsed: str,
    compression: str,
    encoding: str,
    derive: dict[str, str] | None = None,
    indexed: bool = False,
) -> None:
    if derive:
        raise IngestError(f"{path.name}: JSONL tables cannot be partitioned by folder")
    con.execute(
        f"create or replace temp table {parsed} as {_jsonl_select(spec)}",
        [str(path), compression, encoding],
    )
    _add_reader_rejects(con, parsed)


def _read_csv(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    spec: TableSpec,
    layout: FileVariant,
    parsed: str,
    compression: str,
    encoding: str,
    derive: dict[str, str] | None = None,
    indexed: bool = False,
) -> None:
    """Read a CSV as text against the layout's column count, then cast column by column.

    Rows with the wrong field count are caught by DuckDB's reject store (with their line);
    type problems are found by try_cast, as for JSONL. Each declared column is the layout's
    file column at its position, or its derivation over the file's columns (``derive``: the
    layout's, and this file's own, such as its folder's value). ``indexed``: the file begins
    with pandas's unnamed index column, read and skipped.
    """
    header_lines = 1 if layout.header else 0
    file_columns = layout.file_columns(spec.columns)
    sources = layout.sources(spec.columns, derive)
    if indexed:
        file_columns = (_PANDAS_INDEX, *file_columns)
    cols = "{" + ", ".join(f"{_sql_text(c)}: 'varchar'" for c in file_columns) + "}"
    values, problems = [], []
    for col, typ in spec.columns.items():
        text = sources[col]
        value, problem = _checked(
            col,
            typ,
            f"try_cast({text} as {typ})",
            f"({text} is not null and {text}::varchar <> '')",
            f"{text}::varchar",
        )
        values.append(f"{value} as {_quote(col)}")
        problems.append(problem)
    text_cols = ", ".join(_quote(c) for c in file_columns if c != _PANDAS_INDEX)
    # One streaming pass, as for JSONL; the text of a row is kept only when it is rejected.
    con.execute(
        f"""
        create or replace temp table {parsed} as
        with text as (
            select ordinality + {header_lines} as line, *
            from read_csv($path, columns = {cols}, header = {str(layout.header).lower()},
                          delim = $delim, quote = $quote, escape = $quote,
                          auto_detect = false, compression = $compression,
                          encoding = $encoding, {_REJECTS})
            with ordinality
        ), checked as (
            select line, nullif(concat_ws('; ', {", ".join(problems)}), '') as _reason,
                   {", ".join(values)}, concat_ws($delim, {text_cols}) as raw
            from text
        )
        select * replace (case when _reason is not null then raw end as raw),
               []::varchar[] as _extra_keys
        from checked
        """,
        {
            "path": str(path),
            "delim": layout.delimiter,
            "quote": layout.quote,
            "compression": compression,
            "encoding": encoding,
        },
    )
    _add_reader_rejects(con, parsed)


def _add_reader_rejects(con: duckdb.DuckDBPyConnection, parsed: str) -> None:
    """Give ``parsed`` its true line numbers, and the reader's rejected lines with a reason.

    ``with ordinality`` numbers the rows the reader returned: after a line it refused, every
    later row would be numbered one line too early. Each refused line at file line ``r_i``
    (the i-th refused, in file order) shifts the rows after it by one; a returned row sits
    after it when its provisional number exceeds ``r_i - i``.

    The reader logs a line that lacks several columns once per missing column: each refused
    line is counted once, with its first error.
    """
    try:
        if con.execute("select count(*) from _read_rejects").fetchone()[0] == 0:
            return
        con.execute(
            "create or replace temp table _refused_lines as select * from _read_rejects "
            "qualify row_number() over (partition by line order by column_idx) = 1"
        )
        con.execute(
            f"""
            create or replace temp table {parsed} as
            with refused as (
                -- rows returned before the i-th refused line: its line minus i
                select line - row_number() over (order by line) as before
                from _refused_lines
            ), shift_per_row as (
                -- a returned row numbered above `before` is `shift` lines further down
                select before, sum(n) over (order by before) as shift
                from (select before, count(*) as n from refused group by before)
            )
            select p.* replace (p.line + coalesce(s.shift, 0) as line)
            from {parsed} p asof left join shift_per_row s on p.line > s.before
            """
        )
        con.execute(
            f"insert into {parsed} by name "
            f"select line, left(csv_line, {MAX_REJECTED_LINE_CHARS}) as raw, "
            "error_type || ': ' || error_message as _reason from _refused_lines"
        )
    finally:
        con.execute(
            "drop table if exists _read_rejects; drop table if exists _read_scans; "
            "drop table if exists _refused_lines"
        )


def _compression(path: Path, shown: str) -> str:
    """``gzip`` when the file is gzip-compressed (whatever its name says), else ``none``."""
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    if path.name.endswith(".gz") and not gzipped:
        raise IngestError(f"{shown}: named .gz but not gzip-compressed")
    if gzipped and not path.name.endswith(".gz"):
        log.warning("%s is gzip-compressed under a plain name: read as gzip", shown)
    return "gzip" if gzipped else "none"


def _reader_error(error: duckdb.Error) -> str:
    """The first line of a DuckDB reading error, printable characters only (a gzip or binary
    file would put its bytes in the message)."""
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return "".join(c if c.isprintable() else "?" for c in first)[:200]


def _encoding(path: Path, layout: FileVariant, compression: str) -> str:
    """The encoding to read ``path`` with: the layout's, or for ``utf-8|latin-1`` UTF-8 when
    every byte sequence of the file is valid UTF-8, else Latin-1 (which reads any byte).

    The file is decoded in Python in 1 MB chunks (the small catalogue files that need it).
    """
    if layout.encoding != "utf-8|latin-1":
        return layout.encoding
    decoder = codecs.getincrementaldecoder("utf-8")()
    opener = gzip.open if compression == "gzip" else open
    try:
        with opener(path, "rb") as f:
            while chunk := f.read(1 << 20):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return "latin-1"
    except (OSError, EOFError, zlib.error):
        pass  # the reader says what is wrong with the file
    return "utf-8"


def _parse_file(
    con: duckdb.DuckDBPyConnection,
    spec: TableSpec,
    layout: FileVariant,
    path: Path,
    shown: str,
    parsed: str,
    derive: dict[str, str] | None = None,
) -> None:
    """Parse one delivered file, in its ``layout``, into the temp table ``parsed`` (good rows
    and rejected lines); ``derive``: declared columns this file's place gives (its folder)."""
    compression = _compression(path, shown)
    encoding = _encoding(path, layout, compression)
    indexed = False
    if layout.format == "csv" and layout.header:
        indexed = _check_csv_header(path, spec, layout, shown, compression, encoding)
    reader = _read_jsonl if layout.format == "jsonl" else _read_csv
    con.execute("drop table if exists _read_rejects; drop table if exists _read_scans")
    try:
        reader(con, path, spec, layout, parsed, compression, encoding, derive, indexed)
    except duckdb.Error as e:
        raise IngestError(f"{shown}: cannot read the file: {_reader_error(e)}") from None
    if compression == "none" and not _ends_with_newline(path):
        # A last line without its newline that does not parse is a file cut short (a copy
        # interrupted, a disk full): its rows are missing, not bad, so nothing loads.
        last = con.execute(
            f"select line, _reason from {parsed} order by line desc limit 1"
        ).fetchone()
        if last is not None and last[1] is not None:
            raise IngestError(
                f"{shown}: the file ends in the middle of line {last[0]} ({last[1]}): it looks "
                "cut short; nothing was loaded"
            )
    if layout.format == "jsonl":
        _check_declared_keys(con, parsed, shown)


def _shown_names(names, most: int = 5) -> str:
    """Column names from a delivery, quoted, cut and printable, the first ``most`` of them (a
    header can hold anything)."""
    names = list(names)
    shown = ", ".join(repr(str(n)[:60]) for n in names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def _plural(names, word: str) -> str:
    return word if len(names) == 1 else word + "s"


def _check_declared_keys(con: duckdb.DuckDBPyConnection, parsed: str, shown: str) -> None:
    """Refuse a JSONL file in which no line has one of the declared keys.

    A column renamed or dropped by the sender would otherwise load as NULL in every row:
    rejected by a not-null rule at best, silently empty at worst (a nullable column). Lines
    that lack a key now and then are not drift: their rows hold NULL and validation counts
    them.
    """
    objects = con.execute(f"select count(*) from {parsed} where _extra_keys is not null")
    objects = objects.fetchone()[0]
    if not objects:
        return  # nothing parsed: the reasons of the lines say why
    missing = [
        key
        for key, n in con.execute(
            f"select key, count(*) from (select unnest(_absent_keys) as key from {parsed}) "
            "group by key order by key"
        ).fetchall()
        if n == objects
    ]
    if not missing:
        return
    # Keys outside the schema in most lines are likely the new names.
    extra = con.execute(
        f"""select key, count(*) as n from (select unnest(_extra_keys) as key from {parsed})
            group by key having count(*) * 2 >= ? order by n desc, key limit 3""",
        [objects],
    ).fetchall()
    hint = ""
    if extra:
        found = ", ".join(f"{_shown_names([k])} in {n} lines" for k, n in extra)
        hint = f" (a renamed column? keys outside the schema: {found})"
    raise IngestError(
        f"{shown}: none of its {objects} lines has the declared "
        f"{_plural(missing, 'key')} {_shown_names(missing)}{hint}; "
        "nothing was loaded"
    )


def _header_fields(line: str, layout: FileVariant) -> list[str]:
    """The fields of a header line, split as the layout's reader splits them."""
    if not line:
        return []
    if not layout.quote or len(layout.delimiter) > 1:
        return line.rstrip("\r\n").split(layout.delimiter)
    return next(csv.reader([line], delimiter=layout.delimiter, quotechar=layout.quote), [])


def _check_csv_header(
    path: Path, spec: TableSpec, layout: FileVariant, shown: str, compression: str, encoding: str
) -> bool:
    """Refuse a CSV whose header is not the layout's columns, in order.

    Columns are read by position: a renamed header would load silently, a column more or
    less would put every row in ops.rejected_lines with a field count, and columns in
    another order would load into the wrong columns. The header says which, in one line.
    Returns whether the file begins with pandas's unnamed index column (a layout with
    ``pandas_index`` may have one: a header field that is empty or ``Unnamed: 0``).
    """
    opener = gzip.open if compression == "gzip" else open
    try:
        with opener(path, "rt", encoding=encoding, errors="replace", newline="") as f:
            first = f.readline(1 << 20)  # a header, not a whole file without newlines
        header = _header_fields(first, layout)
    except (OSError, EOFError, zlib.error, csv.Error):
        return False  # the reader says what is wrong with the file
    if not header:
        return False  # an empty file: nothing loads, and validation says so
    header = [h.lstrip("\ufeff").strip() for h in header]
    declared = list(layout.file_columns(spec.columns))
    indexed = layout.pandas_index and header[0] in _PANDAS_INDEX_HEADERS and len(header) > 1
    if indexed:
        header = header[1:]
    if header == declared:
        return indexed
    missing = [c for c in declared if c not in header]
    extra = [h for h in header if h not in declared]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"lacks the declared {_plural(missing, 'column')} {_shown_names(missing)}")
        if extra:
            parts.append(f"has {_shown_names(extra)} outside the schema")
        problem = " and ".join(parts) + (" (a renamed column?)" if missing and extra else "")
    else:
        problem = f"lists the declared columns in another order ({_shown_names(header)})"
    raise IngestError(f"{shown}: the header {problem}; nothing was loaded")


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(0, 2)
        if f.tell() == 0:
            return True
        f.seek(-1, 2)
        return f.read(1) == b"\n"


def _replace_table(
    con: duckdb.DuckDBPyConnection,
    source: SourceSpec,
    spec: TableSpec,
    ds: dt.date,
    parsed: str,
    now: dt.datetime,
) -> tuple[int, int]:
    """Inside the caller's transaction: make ``parsed`` the delivery ``ds`` of the raw table.

    ``parsed`` holds every file of the table, each row with its lake key in ``_file``.
    Returns (rows loaded, lines rejected).
    """
    table = ident(source.raw_table(spec.name))
    cols = ", ".join(_quote(c) for c in spec.columns)
    good = f"""
        select {cols}, _file::varchar as _source_file, line::bigint as _line,
               coalesce(_extra_keys, []::varchar[]) as _extra_keys,
               ?::timestamp as _ingested_at, ?::date as ds
        from {parsed} where _reason is null
    """
    params = [now, ds]
    if not table_exists(con, table):
        con.execute(f"create table {table} as {good} limit 0", params)
    if spec.kind == "snapshot":
        # A snapshot replaces the table: it holds exactly the latest delivery.
        con.execute(f"delete from {table}")
    else:
        con.execute(f"delete from {table} where ds = ?", [ds])
    con.execute(f"insert into {table} by name {good}", params)
    con.execute(
        "delete from ops.rejected_lines where source = ? and table_name = ? and ds = ?",
        [source.name, spec.name, ds],
    )
    con.execute(
        f"""
        insert into ops.rejected_lines
        select ?, ?, ?, _file, line, _reason, left(raw, {MAX_REJECTED_LINE_CHARS}), ?
        from {parsed} where _reason is not null
        """,
        [source.name, spec.name, ds, now],
    )
    rows, rejected = con.execute(
        "select count(*) filter (where _reason is null), "
        f"count(*) filter (where _reason is not null) from {parsed}"
    ).fetchall()[0]
    return rows, rejected


@dataclass(frozen=True)
class DeliveredFile:
    """One file of a table in a delivery: its path under the delivery, its layout, and the
    declared columns its place gives (a partition folder's value)."""

    path: str  # relative to the delivery: "ratings.csv", "room=12/export.csv"
    layout: FileVariant
    derive: dict[str, str] = field(default_factory=dict)


def _ambiguous(names: list[str]) -> str:
    listed = " and ".join([", ".join(names[:-1]), names[-1]])
    return "both " + listed if len(names) == 2 else listed


def _matches(name: str, layout: FileVariant) -> bool:
    """The file ``name`` is in ``layout`` (plain or gzipped); a layout's file may be a glob."""
    return any(fnmatch.fnmatchcase(name, p) for p in (layout.file, f"{layout.file}.gz"))


# A partition folder's value fills a column: plain text only, never SQL or a path (no "..").
_PARTITION_VALUE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


def _partitioned_files(
    source: SourceSpec, spec: TableSpec, ds: dt.date, paths: list[str]
) -> list[DeliveredFile]:
    """The files of a partitioned table: ``<key>=<value>/<file>`` in any of its layouts.

    One folder holds one layout, and a file plain or gzipped, not both (two readings of the
    same data); a folder whose value is not plain text, or a file nested deeper in it, is
    refused, naming it.
    """
    by_folder: dict[str, list[tuple[str, FileVariant]]] = {}
    prefix = f"{spec.partition_key}="
    for path in paths:
        if not path.startswith(prefix):
            continue
        folder, _, name = path.partition("/")
        value = folder[len(prefix) :]
        if not _PARTITION_VALUE.fullmatch(value) or ".." in value:
            raise IngestError(
                f"{source.name}: delivery {ds}: folder {folder[:80]!r} is not "
                f"{spec.partition_key}=<letters, digits, _ . ->"
            )
        base = name.rsplit("/", 1)[-1]
        layout = next((lay for lay in spec.layouts if _matches(base, lay)), None)
        if layout is None:
            continue  # not a file of this table: logged with the other ignored files
        if "/" in name:
            # A data file one folder too deep would silently not load.
            raise IngestError(
                f"{source.name}: delivery {ds}: {path[:120]!r} is nested inside {folder}/: "
                "files sit directly in their folder"
            )
        by_folder.setdefault(value, []).append((path, layout))
    out = []
    for value, found in sorted(by_folder.items()):
        names = [p for p, _ in found]
        if len({layout.file for _, layout in found}) > 1:
            raise IngestError(
                f"{source.name}: delivery {ds} holds {_ambiguous(names)} (layouts of table "
                f"{spec.name}): deliver one"
            )
        doubled = sorted({p for p in names if p.endswith(".gz") and p[:-3] in names})
        if doubled:
            raise IngestError(
                f"{source.name}: delivery {ds} holds both {doubled[0][:-3]} and {doubled[0]}: "
                "deliver one"
            )
        derive = {spec.partition_column: _sql_text(value)}
        out += [DeliveredFile(path, layout, derive) for path, layout in sorted(found)]
    return out


def _delivered_files(
    source: SourceSpec, ds: dt.date, prefix: str, keys: list[str], url
) -> dict[str, list[DeliveredFile]]:
    """{table: its files in the delivery}: one file in one of the table's layouts
    (``TableSpec.layouts``), plain or gzipped (``.gz``); for a partitioned table, the files
    of every ``<key>=<value>/`` folder.

    A missing file, or a table delivered twice (plain and gzipped, or in two layouts), is an
    IngestError, before anything loads; files no table reads are logged and left alone.
    """
    paths = [key[len(prefix) :].lstrip("/") for key in keys]
    present = {p for p in paths if "/" not in p}
    files, missing = {}, []
    for spec in source.tables:
        if spec.partition_key:
            found = _partitioned_files(source, spec, ds, paths)
            if not found:
                missing.append(f"{spec.partition_key}=<value>/{spec.file}")
            else:
                files[spec.name] = found
            continue
        matched = [
            (name, layout)
            for layout in spec.layouts
            for name in (layout.file, f"{layout.file}.gz")
            if name in present
        ]
        if len(matched) > 1:
            names = [name for name, _ in matched]
            listed = _ambiguous(names)
            if len({layout.file for _, layout in matched}) > 1:
                listed += f" (layouts of table {spec.name})"
            raise IngestError(f"{source.name}: delivery {ds} holds {listed}: deliver one")
        if not matched:
            others = [layout.file for layout in spec.variants]
            missing.append(spec.file + (f" (or {', '.join(others)})" if others else ""))
        else:
            files[spec.name] = [DeliveredFile(*matched[0])]
    if missing:
        # Checked before anything loads, so a partial delivery changes nothing.
        raise IngestError(f"{source.name}: delivery {ds} has no {', '.join(missing)} (in {url})")
    read = {f.path for found in files.values() for f in found}
    unexpected = sorted(set(paths) - read)
    if unexpected:
        log.warning(
            "%s: delivery %s: ignored files no table reads: %s",
            source.name,
            ds,
            unexpected[:20],
        )
    return files


def _parse_table(
    con: duckdb.DuckDBPyConnection,
    source: SourceSpec,
    spec: TableSpec,
    ds: dt.date,
    prefix: str,
    local: Path,
    found: list[DeliveredFile],
    parsed: str,
) -> None:
    """Parse every file of one table into ``parsed``, each row with its lake key (``_file``)."""
    part = f'"_parsed_{spec.name}_file"'
    con.execute(f"drop table if exists {parsed}")
    try:
        for i, delivered in enumerate(found):
            shown = f"{source.name}: {delivered.path} of delivery {ds}"
            _parse_file(
                con, spec, delivered.layout, local / delivered.path, shown, part, delivered.derive
            )
            key = f"{prefix}/{delivered.path}"
            if i == 0:
                con.execute(
                    f"create temp table {parsed} as select *, ?::varchar as _file from {part}",
                    [key],
                )
            else:
                con.execute(
                    f"insert into {parsed} by name select *, ?::varchar as _file from {part}", [key]
                )
            if len(found) > 20 and (i + 1) % 50 == 0:
                log.info("%s.%s: parsed %d of %d files", source.name, spec.name, i + 1, len(found))
    finally:
        con.execute(f"drop table if exists {part}")


def ingest_delivery(
    con: duckdb.DuckDBPyConnection, lake: Lake, source: SourceSpec, ds: dt.date
) -> IngestReport:
    """Load every table of ``source``'s delivery for ``ds``, all of them or none.

    Every file is parsed first; then one transaction replaces the delivery in every raw
    table and in ``ops.rejected_lines``. A file that cannot be read at all (a corrupt gzip
    stream, say) fails the delivery with an IngestError naming it, and nothing changes.
    """
    prefix = raw_prefix(source.name, ds)
    keys = lake.list(prefix)
    if not keys:
        raise IngestError(f"{source.name}: no delivery for {ds} at {lake.url(prefix)}")
    files = _delivered_files(source, ds, prefix, keys, lake.url(prefix))
    report = IngestReport(source.name, ds)
    parsed: dict[str, str] = {}
    seconds: dict[str, float] = {}
    with lake.local_dir(prefix) as local:
        try:
            for spec in source.tables:
                started = time.perf_counter()
                parsed[spec.name] = f'"_parsed_{spec.name}"'
                _parse_table(
                    con, source, spec, ds, prefix, Path(local), files[spec.name], parsed[spec.name]
                )
                seconds[spec.name] = time.perf_counter() - started
            now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
            with transaction(con):
                for spec in source.tables:
                    started = time.perf_counter()
                    found = files[spec.name]
                    key = f"{prefix}/{found[0].path}"
                    if len(found) > 1:
                        key = f"{prefix}/{spec.partition_key}=*/ ({len(found)} files)"
                    rows, rejected = _replace_table(con, source, spec, ds, parsed[spec.name], now)
                    took = seconds[spec.name] + time.perf_counter() - started
                    report.tables[spec.name] = TableLoad(spec.name, key, rows, rejected, took)
        finally:
            for table in parsed.values():
                con.execute(f"drop table if exists {table}")
    for load in report.tables.values():
        log.info(
            "ingested %s.%s: %s rows, %s rejected lines, %.1fs",
            source.name,
            load.table,
            load.rows,
            load.rejected,
            load.seconds,
        )
    return report
