"""movielens_recall's published tables: the serving model's u2i and i2i lists."""

from __future__ import annotations

import logging

from mlcore.contract import PublishContext
from mlcore.lake import predictions_prefix
from mlcore.sqlrun import run_sql_dir

log = logging.getLogger(__name__)

SLOT = "lfm_bpr"  # the one published model slot
SCORE_FILES = ("u2i.parquet", "i2i.parquet")


def publish(ctx: PublishContext) -> dict[str, str]:
    """Stage tonight's u2i and i2i rows of the model serving the slot (its champion, or on a
    degraded night the peer the gate chose); return {table: query} for publish_tables."""
    serving = ctx.serving.get(SLOT)
    if serving is None:
        raise RuntimeError(f"movielens_recall: no serving model for {SLOT}; run the gate first")
    with ctx.lake.local_dir(predictions_prefix("movielens_recall", ctx.ds)) as local:
        paths = {name: local / name for name in SCORE_FILES}
        missing = [name for name, path in paths.items() if not path.exists()]
        if missing:
            raise RuntimeError(
                f"movielens_recall: no {', '.join(missing)} for {ctx.ds}; run the trainer first"
            )
        run_sql_dir(
            ctx.con,
            "movielens_recall/publish",
            {
                "ds": ctx.ds,
                "u2i_path": str(paths["u2i.parquet"]),
                "i2i_path": str(paths["i2i.parquet"]),
                "model_name": serving.model_name,
                "model_version": serving.version,
            },
        )
    counts = {
        table: ctx.con.execute(f"select count(*) from publish_{table}").fetchone()[0]
        for table in ("movie_u2i", "movie_i2i")
    }
    if not counts["movie_u2i"]:
        raise RuntimeError(
            f"movielens_recall: {serving.model_name} {serving.version} has no u2i scores for "
            f"{ctx.ds}: the trainer did not score the model the gate chose"
        )
    log.info("publishing %s %s: %s", serving.model_name, serving.version, counts)
    return {table: f"select * from publish_{table}" for table in counts}
