"""Great Expectations on DuckDB: the one fix GX 1.24 needs, kept in one place.

Two things make GX's SQL execution work on the warehouse:

1. **Buffered results.** GX's ``SqlAlchemyExecutionEngine.execute_query`` runs a query inside
   ``with engine.connect()`` and returns the cursor result, which its callers fetch *after* the
   connection is closed. Closing a SQLAlchemy connection rolls back its implicit transaction, and
   duckdb-engine runs that ROLLBACK on the very DuckDB connection that holds the unread result,
   which throws the result away: every metric then fails with "list index out of range" (GX
   issues #10738, #11579). :func:`install` makes ``execute_query`` fetch the rows while the
   connection is still open. GX only ever asks for bounded results here: metric bundles are one
   row, and with the SUMMARY result format unexpected values are fetched with ``LIMIT 20``.
2. **The caller's database, not a second one.** DuckDB allows one writer per file, so GX cannot
   open the warehouse file again while the validating task holds it. :func:`add_datasource`
   hands GX cursors of the caller's own connection (``con.cursor()`` is a new connection to the
   same database instance): GX reads exactly what the task has committed, with no lock fight and
   no checkpoint.

Use query assets (``select * from raw.t where ...``), not table assets: SQLAlchemy 2.1's
PostgreSQL column reflection, which duckdb-engine inherits, queries ``pg_collation`` that DuckDB
lacks, and GX's fallback for table assets then drops the schema name. For a query asset GX reads
the column names from the query's own result description, which DuckDB streams lazily (cheap).

``tests/unit/test_gx_duckdb_fix.py`` fails when a GX or duckdb-engine upgrade changes either
behaviour, so that this module can be deleted the day it is no longer needed.
"""

from __future__ import annotations

import duckdb
from great_expectations.execution_engine.sqlalchemy_execution_engine import (
    SqlAlchemyExecutionEngine,
)

# The unpatched method, kept for the tests and for uninstall().
ORIGINAL_EXECUTE_QUERY = SqlAlchemyExecutionEngine.execute_query


def _buffered_execute_query(self: SqlAlchemyExecutionEngine, query):
    """GX's execute_query, but the rows are read before the connection is closed."""
    with self.get_connection() as connection:
        result = self._execute_query_with_recovery(connection, query)
        # freeze() reads every row now; calling the frozen result gives back a Result with
        # the same fetchall/fetchmany/fetchone/scalar API the callers use.
        return result.freeze()() if result.returns_rows else result


def install() -> None:
    """Patch GX's SQL execution engine for duckdb-engine (idempotent, process-wide).

    The patched method works for every SQL dialect (buffering a bounded result is harmless),
    so installing it cannot break another GX datasource in the same process.
    """
    SqlAlchemyExecutionEngine.execute_query = _buffered_execute_query


def uninstall() -> None:
    """Restore GX's own ``execute_query`` (for the tests that prove the fix is still needed)."""
    SqlAlchemyExecutionEngine.execute_query = ORIGINAL_EXECUTE_QUERY


def is_installed() -> bool:
    return SqlAlchemyExecutionEngine.execute_query is _buffered_execute_query


def add_datasource(context, name: str, con: duckdb.DuckDBPyConnection):
    """Add a GX SQL datasource that runs its queries on ``con``'s database.

    Each SQLAlchemy connection GX opens is a cursor of ``con``: same database, same committed
    data, its own transaction. The URL only picks duckdb-engine's dialect; no file is opened.
    """
    from duckdb_engine import ConnectionWrapper

    def creator() -> ConnectionWrapper:
        return ConnectionWrapper(con.cursor())

    install()
    return context.data_sources.add_sql(
        name=name, connection_string="duckdb:///:memory:", kwargs={"creator": creator}
    )


def close_datasource(datasource) -> None:
    """Close the cursors GX holds on the caller's connection (its own and its engine's)."""
    datasource.get_execution_engine().close()
    datasource.get_engine().dispose()
