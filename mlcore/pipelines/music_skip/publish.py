"""music_skip's published tables: skip scores, A/B assignments and report, the cache plan."""

from __future__ import annotations

import logging

import duckdb
import pandas as pd

from mlcore.contract import PublishContext
from mlcore.lake import predictions_prefix
from mlcore.sqlrun import run_sql_dir

log = logging.getLogger(__name__)

ARM_MODELS = {"simple": "mlp_simple", "advanced": "mlp_advanced"}
STORAGE_CLASSES = ("SLOW", "MEDIUM", "FAST")
# A track earns FAST storage only if it is expected to be played in full at least this often a
# day: below that, the faster class costs more than the few plays it would speed up.
FAST_MIN_FULL_PLAYS = 1.0
# Daily cost per millisecond of audio in the v1 delivery (daily_cost / duration_ms, exact there).
V1_RATES = {"SLOW": 5e-8, "MEDIUM": 1e-7, "FAST": 5e-7}


def storage_rates(con: duckdb.DuckDBPyConnection) -> dict[str, float]:
    """Daily cost per millisecond of audio for each storage class, read off today's snapshot.

    In the Pozytywka data a track's daily cost is its duration times its class's rate; the
    rates are measured rather than hard-coded so a price change flows through.
    """
    rows = con.execute(
        "select storage_class, median(daily_cost / duration_ms) from features.music_skip_tracks "
        "where duration_ms > 0 and daily_cost is not null group by storage_class"
    ).fetchall()
    rates = {cls: rate for cls, rate in rows if cls in STORAGE_CLASSES and rate}
    for cls in STORAGE_CLASSES:
        if cls not in rates:
            # A small catalogue may have no track in a class: fall back to the v1 price list.
            log.warning(
                "cache plan: no %s track to price from; using %.2e per ms", cls, V1_RATES[cls]
            )
            rates[cls] = V1_RATES[cls]
    return rates


def plan_cache(demand: pd.DataFrame, rates: dict[str, float], budget: float | None) -> pd.DataFrame:
    """Assign each track a storage class, the most demanded first, within a daily budget.

    Every track costs at least its SLOW price; the budget left above that buys upgrades in
    order of expected full plays: FAST for tracks played in full at least FAST_MIN_FULL_PLAYS
    times a day when it still fits, else MEDIUM when that fits, else SLOW.
    """
    plan = demand.copy()
    plan["expected_full_plays"] = plan["expected_plays"] * plan["p_full"]
    plan = plan.sort_values(["expected_full_plays", "track_id"], ascending=[False, True])
    cost = {c: plan["duration_ms"].to_numpy() * rates[c] for c in STORAGE_CLASSES}
    if budget is None:
        budget = float(plan["daily_cost"].sum())
    spare = budget - float(cost["SLOW"].sum())
    chosen = []
    for i, full_plays in enumerate(plan["expected_full_plays"].to_numpy()):
        extra_fast = cost["FAST"][i] - cost["SLOW"][i]
        extra_medium = cost["MEDIUM"][i] - cost["SLOW"][i]
        if full_plays >= FAST_MIN_FULL_PLAYS and extra_fast <= spare:
            chosen.append("FAST")
            spare -= extra_fast
        elif full_plays > 0 and extra_medium <= spare:
            chosen.append("MEDIUM")
            spare -= extra_medium
        else:
            chosen.append("SLOW")
    plan["recommended_storage_class"] = chosen
    plan["recommended_daily_cost"] = [
        cost[c][i] for i, c in enumerate(plan["recommended_storage_class"])
    ]
    plan["daily_cost_change"] = plan["recommended_daily_cost"] - plan["daily_cost"]
    return plan


def publish(ctx: PublishContext) -> dict[str, str]:
    """Stage today's rows of every music_skip table; return {table: query} for publish_tables.

    Each arm's slot (``mlp_simple``, ``mlp_advanced``) is served by the model the gate chose
    (``ctx.serving``): its champion, or on a degraded night the run's best fallback model.
    """
    con = ctx.con
    missing = [m for m in ARM_MODELS.values() if m not in ctx.serving]
    if missing:
        raise RuntimeError(f"music_skip: no serving model for {missing}; run the gate first")
    con.execute(
        "create or replace temp table serving "
        "(slot varchar, model_name varchar, model_version varchar)"
    )
    con.executemany(
        "insert into serving values (?, ?, ?)",
        [(slot, s.model_name, s.version) for slot, s in sorted(ctx.serving.items())],
    )
    with ctx.lake.local_dir(predictions_prefix("music_skip", ctx.ds)) as local:
        scores_path = local / "scores.parquet"
        if not scores_path.exists():
            raise RuntimeError(f"music_skip: no scores for {ctx.ds}; run the trainer first")
        run_sql_dir(con, "music_skip/publish", {"ds": ctx.ds, "scores_path": str(scores_path)})

    demand = con.execute("select * from publish_track_demand").df()
    budget = ctx.pipeline_settings.cache_budget if ctx.pipeline_settings else None
    plan = plan_cache(demand, storage_rates(con), budget)
    plan.insert(0, "ds", ctx.ds)
    con.register("cache_plan_df", plan)
    con.execute(
        "create or replace temp table publish_cache_plan as select ds::date as ds, track_id, "
        "expected_full_plays, p_full, storage_class, recommended_storage_class, daily_cost, "
        "recommended_daily_cost, daily_cost_change from cache_plan_df"
    )
    con.unregister("cache_plan_df")
    log.info(
        "cache plan: %s tracks, daily cost change %.4f",
        len(plan),
        float(plan["daily_cost_change"].sum()),
    )
    return {
        "skip_scores": "select * from publish_skip_scores",
        "ab_assignments": "select * from publish_ab_assignments",
        "cache_plan": "select * from publish_cache_plan",
        "ab_report": "select * from publish_ab_report",
    }
