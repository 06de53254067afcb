"""The DuckDB warehouse: schemas raw, staging, features, marts, ops and quarantine.

DuckDB allows one writer per file, so the Airflow tasks that write share a pool of one slot;
readers (the UI board, `nightshift metrics`) open it read-only.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb

log = logging.getLogger(__name__)

SQL_ROOT = Path(__file__).resolve().parent.parent / "sql"
SCHEMAS = ("raw", "staging", "features", "marts", "ops", "quarantine", "ref")
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


# How long opening the warehouse waits for another process's lock (DuckDB allows one writer,
# and no reader beside it) before it fails with the holder's name.
DEFAULT_LOCK_WAIT_SECONDS = 60.0
_LOCK_POLL_SECONDS = 0.5


def connect(
    path: str | Path,
    *,
    read_only: bool = False,
    memory_limit: str | None = None,
    lock_wait: float = DEFAULT_LOCK_WAIT_SECONDS,
) -> duckdb.DuckDBPyConnection:
    """Open the warehouse file, creating it, its schemas and the ops tables when writable.

    ``memory_limit`` (e.g. "6GB") bounds DuckDB's memory; bigger work spills to ``<file>.tmp``.
    While another process holds the file (a writer at work, or `nightshift metrics` reading),
    wait up to ``lock_wait`` seconds for it, then fail with a WarehouseError naming the holder.
    """
    config = {"memory_limit": memory_limit} if memory_limit else {}
    path = Path(path)
    if read_only and not path.exists():
        raise WarehouseError(f"no warehouse at {path}: run a pipeline first")
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + lock_wait
    waiting = False
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only, config=config)
            break
        except duckdb.IOException as exc:
            holder = _lock_holder(str(exc))
            if holder is None:
                raise WarehouseError(f"cannot open {path}: {str(exc).splitlines()[0]}") from exc
            if time.monotonic() >= deadline:
                raise WarehouseError(
                    f"{path} is held by another process ({holder}); waited {lock_wait:.0f} s "
                    "for it (NIGHTSHIFT_WAREHOUSE_LOCK_WAIT): retry when it is done"
                ) from None
            if not waiting:
                log.warning(
                    "the warehouse %s is held by %s: waiting up to %.0f s", path, holder, lock_wait
                )
                waiting = True
            time.sleep(_LOCK_POLL_SECONDS)
    if waiting:
        log.info("the warehouse %s is free: opened", path)
    if not read_only:
        con.execute((SQL_ROOT / "_platform" / "00_schemas_and_ops.sql").read_text())
    return con


def _lock_holder(message: str) -> str | None:
    """The process holding a DuckDB file lock, from the error's text; None for other errors."""
    if "Could not set lock" not in message:
        return None
    _, _, held = message.partition("Conflicting lock is held in ")
    return held.split(". See also", 1)[0].strip() or "another process"


@contextlib.contextmanager
def open_warehouse(
    path: str | Path,
    *,
    read_only: bool = False,
    memory_limit: str | None = None,
    lock_wait: float = DEFAULT_LOCK_WAIT_SECONDS,
) -> Iterator:
    con = connect(path, read_only=read_only, memory_limit=memory_limit, lock_wait=lock_wait)
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
