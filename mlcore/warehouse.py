"""The DuckDB warehouse: schemas raw, staging, features, marts, ops and quarantine.

DuckDB allows one writer per file, so the Airflow tasks that write share a pool of one slot;
readers (the UI board, `nightshift metrics`) open it read-only.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path

import duckdb

SQL_ROOT = Path(__file__).resolve().parent.parent / "sql"
SCHEMAS = ("raw", "staging", "features", "marts", "ops", "quarantine")
_IDENT = re.compile(r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$")


class WarehouseError(RuntimeError):
    """The warehouse cannot do what was asked (bad name, locked file, missing table)."""


def ident(name: str) -> str:
    """Check a (schema-qualified) table name before it is written into SQL text.

    Table names cannot be bound as parameters, so they must come from our own code, and this
    guard turns a hostile or mistyped name into a clear error instead of an injection.
    """
    if not _IDENT.match(name):
        raise WarehouseError(f"not a valid table name: {name!r}")
    return name


def connect(
    path: str | Path, *, read_only: bool = False, memory_limit: str | None = None
) -> duckdb.DuckDBPyConnection:
    """Open the warehouse file, creating it, its schemas and the ops tables when writable.

    ``memory_limit`` (e.g. "6GB") bounds DuckDB's memory; bigger work spills to ``<file>.tmp``.
    """
    config = {"memory_limit": memory_limit} if memory_limit else {}
    path = Path(path)
    if read_only:
        if not path.exists():
            raise WarehouseError(f"no warehouse at {path}: run a pipeline first")
        return duckdb.connect(str(path), read_only=True, config=config)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(str(path), config=config)
    except duckdb.IOException as exc:
        raise WarehouseError(f"cannot open {path} for writing (another writer?): {exc}") from exc
    con.execute((SQL_ROOT / "_platform" / "00_schemas_and_ops.sql").read_text())
    return con


@contextlib.contextmanager
def open_warehouse(
    path: str | Path, *, read_only: bool = False, memory_limit: str | None = None
) -> Iterator:
    con = connect(path, read_only=read_only, memory_limit=memory_limit)
    try:
        yield con
    finally:
        con.close()


def table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    schema, _, name = ident(table).rpartition(".")
    row = con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema or "main", name],
    ).fetchone()
    return bool(row[0])


@contextlib.contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator:
    """Commit what the block did, or roll all of it back if it raises."""
    con.execute("begin transaction")
    try:
        yield con
    except BaseException:
        con.execute("rollback")
        raise
    con.execute("commit")


def replace_rows(
    con: duckdb.DuckDBPyConnection, table: str, ds: dt.date, select_sql: str, params=None
) -> int:
    """Inside the caller's transaction: make partition ``ds`` of ``table`` the select's rows.

    The select must produce the table's columns, ``ds`` among them; the table is created from
    it when missing. Returns the partition's row count.
    """
    table = ident(table)
    if not table_exists(con, table):
        con.execute(f"create table {table} as select * from ({select_sql}) limit 0", params)
    con.execute(f"delete from {table} where ds = ?", [ds])
    con.execute(f"insert into {table} by name select * from ({select_sql})", params)
    return con.execute(f"select count(*) from {table} where ds = ?", [ds]).fetchall()[0][0]


def replace_partition(
    con: duckdb.DuckDBPyConnection, table: str, ds: dt.date, select_sql: str, params=None
) -> int:
    """Replace the ``ds`` partition of ``table`` with the rows of ``select_sql``, atomically.

    Delete and insert run in one transaction: readers see yesterday's rows or today's, never a
    mix, and a failure leaves the partition as it was.
    """
    with transaction(con):
        return replace_rows(con, table, ds, select_sql, params)
