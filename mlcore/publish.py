"""Publishing: the only way rows reach the tables other teams read.

All of a run's marts partitions are replaced inside one transaction, so a failure publishes
nothing and leaves every earlier partition as it was; the lake copies
(``outputs/<table>/ds=…/part-0.parquet``) are written after the commit, from the committed rows.

The lake cannot join that transaction, so a day of lake outputs is marked instead: each
partition gets a ``_SUCCESS`` file (the Hadoop/Spark convention, here with the table's rows and
model version in it) only once EVERY table of the run has its files. The markers of the day are
removed before any file is rewritten, so a run killed half-way leaves no partial day marked
complete; readers of the lake read a partition only when its marker is there (docs/contracts.md),
and the Asset events, sent after publishing, come after the markers.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path

import duckdb

from mlcore.contract import TableSchema
from mlcore.lake import Lake, outputs_prefix
from mlcore.warehouse import replace_rows, table_exists, transaction

log = logging.getLogger(__name__)

SUCCESS_MARKER = "_SUCCESS"


def success_key(table: str, ds: dt.date) -> str:
    """The marker saying the lake partition ``ds`` of ``table`` is complete."""
    return f"{outputs_prefix(table, ds)}/{SUCCESS_MARKER}"


class SchemaMismatch(ValueError):
    """A publish query's columns differ from the table's declared schema."""


def ensure_marts(con: duckdb.DuckDBPyConnection, tables: Sequence[TableSchema]) -> None:
    """Create every declared ``marts.<table>`` that does not exist yet, from its schema.

    Called before the publisher runs, so that a publish query may read earlier partitions
    (an A/B report of past days) on the first night too.
    """
    for t in tables:
        if not table_exists(con, f"marts.{t.name}"):
            con.execute(f"create table marts.{t.name} ({t.ddl()})")


def check_schema(con: duckdb.DuckDBPyConnection, table: TableSchema, select_sql: str) -> None:
    """SchemaMismatch unless ``select_sql`` yields exactly the declared columns and types."""
    described = con.execute(f"describe ({select_sql})").fetchall()
    got = [(name, str(kind).lower()) for name, kind, *_ in described]
    want = [(name, kind.lower()) for name, kind in table.columns.items()]
    if got != want:
        diff = [f"{g[0]} {g[1]}" for g in got if g not in want]
        lacking = [f"{w[0]} {w[1]}" for w in want if w not in got]
        raise SchemaMismatch(
            f"marts.{table.name}: the publish query's columns differ from the declared schema "
            f"(unexpected: {', '.join(diff) or 'none'}; missing: {', '.join(lacking) or 'none'}"
            + ("; same columns, another order" if not diff and not lacking else "")
            + ")"
        )


def publish_tables(
    con: duckdb.DuckDBPyConnection,
    lake: Lake,
    ds: dt.date,
    selects: dict[str, str],
    *,
    tables: Sequence[TableSchema] = (),
    model_version: str | None = None,
) -> dict:
    """Replace partition ``ds`` of ``marts.<table>`` with each select's rows, atomically.

    ``selects`` maps a table name to a query producing its rows (a ``ds`` column included,
    equal to ``ds``). With ``tables`` (the pipeline's declared schemas), every declared table
    must have a select, and each select must produce exactly its declared columns and types.
    Returns row counts and the lake location of each table's partition.
    """
    declared = {t.name: t for t in tables}
    if declared and set(declared) != set(selects):
        raise SchemaMismatch(
            f"the publisher returned tables {sorted(selects)}, the pipeline declares "
            f"{sorted(declared)}"
        )
    for name, select_sql in selects.items():
        if name in declared:
            check_schema(con, declared[name], select_sql)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    counts: dict[str, int] = {}
    with transaction(con):
        for name, select_sql in selects.items():
            bad = con.execute(f"select count(*) from ({select_sql}) where ds <> ?", [ds])
            if bad.fetchall()[0][0]:
                raise ValueError(
                    f"marts.{name}: rows for another ds than {ds} in the publish query"
                )
            counts[name] = replace_rows(con, f"marts.{name}", ds, select_sql)

    # The day is unmarked before any file changes, and marked again once all are written.
    for name in selects:
        lake.delete_key(success_key(name, ds))
    outputs = {}
    for name in selects:
        prefix = outputs_prefix(name, ds)
        with tempfile.TemporaryDirectory(prefix="nightshift-publish-") as tmp:
            path = Path(tmp) / "part-0.parquet"
            # Sorted by every column so the same rows give the same file, run after run.
            con.execute(
                f"copy (select * from marts.{name} where ds = ? order by all) "
                f"to '{path}' (format parquet)",
                [ds],
            )
            lake.replace_prefix(prefix, tmp)
        outputs[name] = lake.url(prefix)
        con.execute(
            "insert into ops.publish_log values (?, ?, ?, ?, ?, ?)",
            [name, ds, counts[name], model_version, outputs[name], now],
        )
        log.info("published marts.%s ds=%s: %s rows, %s", name, ds, counts[name], outputs[name])
    for name in selects:
        marker = {
            "table": name,
            "ds": ds.isoformat(),
            "rows": counts[name],
            "files": ["part-0.parquet"],
            "model_version": model_version,
            "tables_of_the_run": sorted(selects),
        }
        lake.write_text(success_key(name, ds), json.dumps(marker, sort_keys=True) + "\n")
    return {"tables": counts, "outputs": outputs}
