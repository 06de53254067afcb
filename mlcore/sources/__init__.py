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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlcore.contract import check_name, load_ref, load_registered

# The registered sources, one module each under mlcore/sources/. Adding a source: one line here.
REGISTERED = ("pozytywka",)

LINEAGE_COLUMNS = ("_source_file", "_line", "_ingested_at", "ds")


@dataclass(frozen=True)
class TableSpec:
    name: str
    file: str
    columns: dict[str, str]  # column -> DuckDB type
    key: tuple[str, ...]
    kind: str = "snapshot"  # snapshot: each delivery replaces the table; event: keyed by ds
    format: str = "jsonl"  # jsonl | csv
    csv_header: bool = True
    csv_delimiter: str = ","

    def __post_init__(self):
        assert self.kind in ("snapshot", "event"), self.kind
        assert self.format in ("jsonl", "csv"), self.format

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
