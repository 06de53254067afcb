"""Publishing: the only way rows reach the tables other teams read.

All of a run's marts partitions are replaced inside one transaction, so a failure publishes
nothing and leaves every earlier partition as it was; the lake copies
(``outputs/<table>/ds=…/part-0.parquet``) are written after the commit, from the committed rows.
"""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
from pathlib import Path

import duckdb

from mlcore.lake import Lake, outputs_prefix
from mlcore.warehouse import replace_rows, transaction

log = logging.getLogger(__name__)


def publish_tables(
    con: duckdb.DuckDBPyConnection,
    lake: Lake,
    ds: dt.date,
    selects: dict[str, str],
    *,
    model_version: str | None = None,
) -> dict:
    """Replace partition ``ds`` of ``marts.<table>`` with each select's rows, atomically.

    ``selects`` maps a table name to a query producing its rows (a ``ds`` column included,
    equal to ``ds``). Returns row counts and the lake location of each table's partition.
    """
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
    return {"tables": counts, "outputs": outputs}
