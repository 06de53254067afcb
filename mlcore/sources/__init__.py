"""Raw sources: declared schemas of the deliveries, typed once, never guessed; and their registry.

A source is what the business drops under ``lake/raw/<source>/ds=YYYY-MM-DD/``. Each of its
tables lands in ``raw.<source>_<table>`` with the declared columns plus lineage columns:
``_source_file``, ``_line`` (1-based line of the record in its file), ``_ingested_at``, ``ds``
(the delivery date) and, for JSONL, ``_extra_keys`` (keys the schema does not declare).

One module per source, ``mlcore/sources/<name>.py``, defines ``SOURCE`` (a :class:`SourceSpec`):
its tables, its synthetic generator and options, its real-sample stager and its demo nights.
Its staging SQL (rename and cast, shared by every pipeline that reads it) is ``sql/<name>/``,
its expectation suites ``expectations/<name>_<table>.json``. Registering a source is one line
in ``REGISTERED`` below. Importing this package is cheap: the generators are named by
reference and imported when used.

A table may be delivered in several layouts (MovieLens ships ``ratings.csv``, ``ratings.dat``
or ``u.data``): its :class:`TableSpec` file is the default layout and ``variants`` lists the
others (:class:`FileVariant`: file name, delimiter, quoting, encoding, the file's own columns
and how each declared column is derived from them). Ingest reads whichever one the delivery
holds; every layout lands in the same ``raw.<source>_<table>``, with the same declared columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlcore.contract import check_name, load_ref, load_registered

# The registered sources, one module each under mlcore/sources/. Adding a source: one line here.
REGISTERED = ("pozytywka", "movielens", "douyin_live")

LINEAGE_COLUMNS = ("_source_file", "_line", "_ingested_at", "ds")


FORMATS = ("jsonl", "csv")
# "utf-8|latin-1": UTF-8 when the file's bytes are valid UTF-8, else Latin-1 (ISO-8859-1).
ENCODINGS = ("utf-8", "latin-1", "utf-8|latin-1")


@dataclass(frozen=True)
class FileVariant:
    """One layout in which a table may be delivered, told apart by its file name.

    - ``file``: the name in the delivery (read plain or gzipped as ``<file>.gz``);
    - ``format``: ``csv`` or ``jsonl`` (a JSONL layout takes no CSV option);
    - ``header``: the first line names the columns; it must be ``columns``, in order;
    - ``delimiter``: between fields, one character or several (``::``);
    - ``quote``: the quote character (doubled inside a quoted field), ``""`` for none: every
      delimiter then splits, and a ``"`` or a ``,`` in a field is plain text;
    - ``encoding``: one of :data:`ENCODINGS`;
    - ``columns``: the file's own columns, in order (default: the table's declared columns);
    - ``derive``: {declared column: SQL expression over the file's columns, all text}; a
      declared column not derived is read from the file column at its own position;
    - ``pandas_index``: the file may begin with the unnamed row index pandas writes (a header
      field that is empty or ``Unnamed: 0``); when the header has it, that column is skipped
      (a file without it reads as usual);
    - ``doc``: which deliveries use the layout (``ml-1m, ml-10m``).

    Every declared column is then cast and checked as for any file (rejected lines, implausible
    values); a derived value that does not cast is a rejected line naming the column.
    """

    file: str
    format: str = "csv"
    header: bool = True
    delimiter: str = ","
    quote: str = '"'
    encoding: str = "utf-8"
    columns: tuple[str, ...] = ()
    derive: dict[str, str] = field(default_factory=dict)
    pandas_index: bool = False
    doc: str = ""

    def __post_init__(self):
        assert self.file and "/" not in self.file, f"a file name, not a path: {self.file!r}"
        assert self.format in FORMATS, self.format
        assert self.encoding in ENCODINGS, f"{self.file}: encoding {self.encoding!r}"
        assert self.delimiter and len(self.quote) <= 1, f"{self.file}: delimiter or quote"
        assert self.quote not in self.delimiter or not self.quote, f"{self.file}: quote"
        if self.format == "jsonl":
            assert not (self.columns or self.derive), f"{self.file}: JSONL keys are declared"
        assert not self.pandas_index or self.header, f"{self.file}: an index needs a header"
        assert len(set(self.columns)) == len(self.columns), f"{self.file}: a column repeats"

    def file_columns(self, declared) -> tuple[str, ...]:
        """The file's columns, in order: ``columns``, or the ``declared`` ones."""
        return tuple(self.columns) or tuple(declared)

    def sources(self, declared, derive: dict[str, str] | None = None) -> dict[str, str]:
        """{declared column: SQL text of its value}: its derivation (the layout's, or one given
        for this file, such as a folder's value), else its file column."""
        file_columns = self.file_columns(declared)
        derive = {**self.derive, **(derive or {})}
        out = {}
        for i, col in enumerate(declared):
            if col in derive:
                out[col] = f"({derive[col]})"
            else:
                out[col] = '"' + file_columns[i].replace('"', '""') + '"'
        return out

    def check(self, declared, given: tuple[str, ...] = ()) -> None:
        """Fail loudly when the layout cannot give every ``declared`` column (``given``: those
        filled from elsewhere, such as a delivery folder's name)."""
        unknown = sorted(set(self.derive) - set(declared))
        assert not unknown, f"{self.file}: derives undeclared columns {unknown}"
        positional = [i for i, c in enumerate(declared) if c not in self.derive and c not in given]
        width = len(self.file_columns(declared))
        assert all(i < width for i in positional), (
            f"{self.file}: {width} columns cannot give declared column {max(positional) + 1}"
        )


@dataclass(frozen=True)
class TableSpec:
    name: str
    file: str  # the default layout's file: ``csv_*`` options below, or JSONL
    columns: dict[str, str]  # column -> DuckDB type
    key: tuple[str, ...]
    kind: str = "snapshot"  # snapshot: each delivery replaces the table; event: keyed by ds
    format: str = "jsonl"  # jsonl | csv
    csv_header: bool = True
    csv_delimiter: str = ","
    # The default layout's own column names (its header), by position, when they are not the
    # declared names (MovieLens writes userId for the declared user_id).
    csv_columns: tuple[str, ...] = ()
    # The default layout may begin with pandas's unnamed index column (FileVariant).
    csv_pandas_index: bool = False
    # Other layouts the table may come in (the delivery holds one of them): FileVariant.
    variants: tuple[FileVariant, ...] = ()
    # Partitioned deliveries: the table's files sit in Hive-style subfolders
    # ``<partition_key>=<value>/`` of the delivery (``room=1234/``), any number of files in
    # each whose names match ``file`` (a glob: ``*.csv``); the folder's value fills the
    # declared varchar column ``partition_column``. Empty: one file at the delivery's top.
    partition_key: str = ""
    partition_column: str = ""

    def __post_init__(self):
        assert self.kind in ("snapshot", "event"), self.kind
        assert self.format in FORMATS, self.format
        files = [layout.file for layout in self.layouts]
        assert len(set(files)) == len(files), f"table {self.name}: a file name repeats: {files}"
        assert bool(self.partition_key) == bool(self.partition_column), (
            f"table {self.name}: partition_key and partition_column go together"
        )
        if self.partition_column:
            check_name(self.partition_key, "partition key")
            assert self.columns.get(self.partition_column) == "varchar", (
                f"table {self.name}: partition column {self.partition_column} must be varchar"
            )
        given = (self.partition_column,) if self.partition_column else ()
        for layout in self.layouts:
            layout.check(self.columns, given)

    @property
    def layouts(self) -> tuple[FileVariant, ...]:
        """Every layout the table may be delivered in, the default (``file``) first."""
        default = FileVariant(
            self.file,
            self.format,
            header=self.csv_header,
            delimiter=self.csv_delimiter,
            columns=self.csv_columns if self.format == "csv" else (),
            pandas_index=self.csv_pandas_index,
            doc="default",
        )
        return (default, *self.variants)

    @property
    def raw_columns(self) -> tuple[str, ...]:
        """Every column of ``raw.<source>_<table>``, in order: declared, then lineage."""
        # CSV tables carry _extra_keys too (always empty), so every raw table looks alike.
        return (*self.columns, "_source_file", "_line", "_extra_keys", "_ingested_at", "ds")


@dataclass(frozen=True)
class Option:
    """A command-line option of a source's generator (``nightshift synth <source> --<name>``)."""

    name: str  # the keyword argument of the generator; --name-with-dashes on the command line
    type: type = int
    default: Any = None
    help: str = ""


@dataclass(frozen=True)
class SourceSpec:
    """A raw source: its tables and the tools that make or stage deliveries of it."""

    name: str
    tables: tuple[TableSpec, ...]
    doc: str = ""
    # Cron of the source's nightly ingest DAG (``ingest_<source>``, a data-interval timetable:
    # the run at 00:00 on D+1 loads ds = D). Pipelines run when their sources' Assets update.
    schedule: str = "@daily"
    # "module:function" writing a synthetic delivery: fn(out, ds, *, seed, **options) returns
    # {file name: rows}; ``synth_options`` are its options (``nightshift synth``, the bench).
    synth: str | None = None
    synth_options: tuple[Option, ...] = ()
    # "module:function" staging the real sample of ../shared/data as a delivery:
    # fn(lake, ds, data_root, **sample_options) returns the lake URLs it wrote.
    sample: str | None = None
    sample_ds: str | None = None  # the date a real sample is delivered as by default
    sample_options: tuple[Option, ...] = ()
    # The demo's two nights: synth options of the first (a history) and of the second night.
    demo_nights: tuple[dict, dict] = ({}, {})
    # Two small nights for the conformance tests (seconds, not minutes, per pipeline).
    test_nights: tuple[dict, dict] = ({}, {})
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        check_name(self.name, "source")

    @property
    def dag_id(self) -> str:
        """The source's ingest-validate-stage DAG (``dags/sources.py``)."""
        return f"ingest_{self.name}"

    def load_synth(self):
        if self.synth is None:
            raise KeyError(f"source {self.name!r} has no synthetic generator")
        return load_ref(self.synth)

    def load_sample(self):
        if self.sample is None:
            raise KeyError(f"source {self.name!r} has no real sample wired")
        return load_ref(self.sample)

    def table(self, name: str) -> TableSpec:
        for t in self.tables:
            if t.name == name:
                return t
        raise KeyError(f"source {self.name!r} has no table {name!r}")

    def raw_table(self, name: str) -> str:
        return f"raw.{self.name}_{self.table(name).name}"


SOURCES: dict[str, SourceSpec] = load_registered(__name__, REGISTERED, "SOURCE")


def get_source(name: str) -> SourceSpec:
    try:
        return SOURCES[name]
    except KeyError:
        raise KeyError(f"unknown source {name!r}; known: {', '.join(sorted(SOURCES))}") from None
