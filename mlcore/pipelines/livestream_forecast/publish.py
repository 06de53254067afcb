"""livestream_forecast's published table, the served model's backtest, and a figure per room.

The gate chose the model serving tonight; this stages its forecast of tomorrow for
``marts.livestream_forecast``, keeps its next-day backtest as
``predictions/livestream_forecast/ds=…/backtest.parquet`` (room_id, ts, y, yhat, yhat_p10,
yhat_p90: anyone can recompute its scores) and draws one PNG per room under
``reports/livestream_forecast/ds=…/`` (the last days of actuals, the backtest with its band,
tomorrow with its band), with an ``index.html`` that shows them all.
"""

from __future__ import annotations

import html
import logging

import pandas as pd

from mlcore import plots
from mlcore.contract import PublishContext
from mlcore.lake import features_prefix, predictions_prefix, reports_prefix
from mlcore.pipelines.livestream_forecast import LivestreamForecastSettings
from mlcore.sqlrun import run_sql_dir
from mlcore.training import write_parquet

log = logging.getLogger(__name__)

PIPELINE = "livestream_forecast"
SLOT = "lstm_multivariate"  # the one published model slot
BACKTEST_FILE = "backtest_models.parquet"  # every model's next-day backtest (the trainer's)
FORECAST_FILE = "forecast.parquet"
SERVED_BACKTEST_FILE = "backtest.parquet"  # the served model's, as the contract names it


def publish(ctx: PublishContext) -> dict[str, str]:
    """Stage tomorrow's rows of the model serving the slot; keep its backtest; draw the rooms."""
    serving = ctx.serving.get(SLOT)
    if serving is None:
        raise RuntimeError(f"{PIPELINE}: no serving model for {SLOT}; run the gate first")
    settings = ctx.pipeline_settings or LivestreamForecastSettings()
    with ctx.lake.local_dir(predictions_prefix(PIPELINE, ctx.ds)) as local:
        paths = {name: local / name for name in (FORECAST_FILE, BACKTEST_FILE)}
        missing = [name for name, path in paths.items() if not path.exists()]
        if missing:
            raise RuntimeError(
                f"{PIPELINE}: no {', '.join(missing)} for {ctx.ds}; run the trainer first"
            )
        run_sql_dir(
            ctx.con,
            f"{PIPELINE}/publish",
            {
                "ds": ctx.ds,
                "forecast_path": str(paths[FORECAST_FILE]),
                "model_name": serving.model_name,
                "model_version": serving.version,
            },
        )
        backtest = _served_backtest(pd.read_parquet(paths[BACKTEST_FILE]), serving)
    rows = ctx.con.execute("select count(*) from publish_livestream_forecast").fetchone()[0]
    if not rows:
        raise RuntimeError(
            f"{PIPELINE}: {serving.model_name} {serving.version} has no forecast for the day "
            f"after {ctx.ds}: the trainer did not score the model the gate chose"
        )
    write_parquet(
        ctx.lake, f"{predictions_prefix(PIPELINE, ctx.ds)}/{SERVED_BACKTEST_FILE}", backtest
    )
    tomorrow = ctx.con.execute("select * from publish_livestream_forecast").df()
    index = _draw_rooms(ctx, serving, backtest, tomorrow, settings.plot_days)
    log.info(
        "publishing %s %s: %d rows; figures at %s", serving.model_name, serving.version, rows, index
    )
    return {"livestream_forecast": "select * from publish_livestream_forecast"}


def _served_backtest(frame: pd.DataFrame, serving) -> pd.DataFrame:
    """The serving model's rows of the next-day backtest (every model the gate may choose was
    backtested tonight, a champion of another version included)."""
    mine = (frame["model_name"] == serving.model_name) & (frame["model_version"] == serving.version)
    return frame.loc[mine, ["room_id", "ts", "y", "yhat", "yhat_p10", "yhat_p90"]].reset_index(
        drop=True
    )


def _history(ctx: PublishContext, start: pd.Timestamp) -> pd.DataFrame:
    """The rooms' actuals from ``start`` to the backtest (from tonight's exported grid)."""
    import pyarrow.dataset as pads

    with ctx.lake.local_dir(f"{features_prefix(PIPELINE, ctx.ds)}/minutes") as folder:
        table = pads.dataset(str(folder), format="parquet").to_table(
            columns=["room_id", "ts", "y"], filter=pads.field("ts") >= start.to_pydatetime()
        )
    return table.to_pandas()


def _draw_rooms(ctx, serving, backtest: pd.DataFrame, tomorrow: pd.DataFrame, days: int) -> str:
    """One PNG per room and an index page; returns the index's URL."""
    prefix = reports_prefix(PIPELINE, f"ds={ctx.ds.isoformat()}")
    ctx.lake.delete_prefix(prefix)  # a rerun draws exactly tonight's rooms
    start = pd.Timestamp(backtest["ts"].min() if len(backtest) else tomorrow["ts"].min())
    history = _history(ctx, start - pd.Timedelta(days=days))
    history = history[history["ts"] < start]
    names = []
    for room, future in tomorrow.groupby("room_id", sort=True):
        past = backtest[backtest["room_id"] == room].rename(
            columns={"yhat_p10": "lower", "yhat_p90": "upper"}
        )
        ahead = future.rename(columns={"yhat_p10": "lower", "yhat_p90": "upper"})
        png = plots.series_forecast_png(
            history[history["room_id"] == room],
            past,
            ahead,
            title=f"room {room}: {serving.model_name} {serving.version} ({serving.status})",
            ylabel="viewers entering per minute",
        )
        name = f"room={room}.png"
        ctx.lake.write_bytes(f"{prefix}/{name}", png)
        names.append(name)
    page = "\n".join(
        f'<h3>{html.escape(n[5:-4])}</h3><img src="{html.escape(n)}" width="1200">' for n in names
    )
    title = f"{PIPELINE} {ctx.ds}: {serving.model_name} {serving.version} ({serving.status})"
    ctx.lake.write_bytes(
        f"{prefix}/index.html",
        f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<h1>{html.escape(title)}</h1>\n{page}\n".encode(),
    )
    return ctx.lake.url(f"{prefix}/index.html")
