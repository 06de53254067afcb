"""Run a pipeline's SQL models: ``sql/<pipeline>/NN_name.sql``, in file order, parameters bound.

Each file holds one model (a ``create or replace table ... as`` statement, possibly with a few
helper statements). Files are split into statements by DuckDB's own parser, so a ``;`` inside a
string or a comment never cuts a statement in two. Parameters such as ``ds`` are written
``$ds`` in the SQL and bound at execution time, never formatted into the text: each statement
receives exactly the parameters it names (DuckDB refuses extra ones), and a statement that
names a parameter the caller did not give fails with the file's name before anything runs.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import duckdb

from mlcore.warehouse import SQL_ROOT, ident

logger = logging.getLogger(__name__)

_FILE_NAME = re.compile(r"^\d{2}_[a-z0-9_]+\.sql$")
# The table a statement creates: `create [or replace] [temp] table [if not exists] name ...`.
_CREATES = re.compile(
    r"^\s*create\s+(?:or\s+replace\s+)?(?:temp(?:orary)?\s+)?table\s+(?:if\s+not\s+exists\s+)?"
    r"([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)?)\b",
    re.IGNORECASE,
)
_LINE_COMMENT = re.compile(r"--[^\n]*")
_BLOCK_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)


class SqlRunError(RuntimeError):
    """A pipeline's SQL could not run; the message names the file that failed and why."""


def sql_files(pipeline: str, root: Path = SQL_ROOT) -> list[Path]:
    """The model files of ``pipeline`` (``<root>/<pipeline>/NN_name.sql``), in run order.

    A ``.sql`` file that does not follow the ``NN_name.sql`` pattern is an error rather than a
    silently skipped model.
    """
    folder = Path(root) / pipeline
    if not folder.is_dir():
        raise SqlRunError(f"no SQL folder for pipeline {pipeline!r}: {folder}")
    files = sorted(folder.glob("*.sql"))
    misnamed = [p.name for p in files if not _FILE_NAME.match(p.name)]
    if misnamed:
        raise SqlRunError(
            f"{folder}: SQL files must be named NN_name.sql (two digits, lower case): "
            + ", ".join(misnamed)
        )
    if not files:
        raise SqlRunError(f"no NN_name.sql files in {folder}")
    return files


def created_table(statement_sql: str) -> str | None:
    """The (schema-qualified) table a statement creates, or None when it creates none."""
    text = _LINE_COMMENT.sub("", _BLOCK_COMMENT.sub("", statement_sql))
    m = _CREATES.match(text)
    return m.group(1).lower() if m else None


def _statements(path: Path, label: str) -> list:
    try:
        statements = duckdb.extract_statements(path.read_text())
    except duckdb.Error as exc:
        raise SqlRunError(f"{label}: cannot parse: {exc}") from exc
    if not statements:
        raise SqlRunError(f"{label}: no SQL statement in the file")
    return statements


def _bind(statement, params: Mapping[str, Any], label: str) -> dict[str, Any]:
    names = set(statement.named_parameters)
    missing = sorted(names - set(params))
    if missing:
        raise SqlRunError(
            f"{label}: parameter(s) {', '.join('$' + n for n in missing)} not given "
            f"(given: {', '.join(sorted(params)) or 'none'})"
        )
    return {name: params[name] for name in names}


def run_sql_dir(
    con: duckdb.DuckDBPyConnection,
    pipeline: str,
    params: Mapping[str, Any],
    *,
    root: Path = SQL_ROOT,
    log: logging.Logger | None = None,
) -> list[dict]:
    """Run every model of ``pipeline`` on ``con``, in file order, with ``params`` bound.

    Returns one dict per file: ``name`` (the file name), ``seconds``, ``table`` (the last table
    the file created, or None) and ``rows`` (its row count, or None). Raises SqlRunError naming
    the file at the first failure; the files before it have run, those after it have not.
    """
    log = log or logger
    params = dict(params)
    files = sql_files(pipeline, root)
    # Parse and check every file before running any, so that a typo in the last model does not
    # leave the first ones rebuilt and the rest stale.
    plan = []
    for path in files:
        label = f"{pipeline}/{path.name}"
        statements = _statements(path, label)
        plan.append((path, label, [(s, _bind(s, params, label)) for s in statements]))

    report = []
    for path, label, statements in plan:
        started = time.perf_counter()
        table = None
        for statement, bound in statements:
            try:
                if bound:
                    con.execute(statement, bound)
                else:
                    con.execute(statement)
                # DuckDB 2.0 keeps an unread result open on the connection (a CTAS returns
                # its row count) and refuses other work until it is finished.
                con.complete()
            except duckdb.Error as exc:
                raise SqlRunError(f"{label} failed: {exc}") from exc
            table = created_table(statement.query) or table
        rows = None
        if table is not None:
            rows = con.execute(f"select count(*) from {ident(table)}").fetchall()[0][0]
        seconds = round(time.perf_counter() - started, 3)
        log.info("sql %s: %s rows in %s (%.2f s)", label, rows, table, seconds)
        report.append({"name": path.name, "seconds": seconds, "table": table, "rows": rows})
    return report
