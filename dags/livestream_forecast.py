"""livestream_forecast: tomorrow's viewers per minute for every live room (docs: the docstring)."""

from airflow.sdk import dag
from nightshift_airflow import tasks
from nightshift_airflow.assets import source_asset
from nightshift_airflow.defaults import DEFAULT_ARGS, START_DATE, TAGS

from mlcore.pipelines import get

PIPELINE = get("livestream_forecast")


@dag(
    dag_id=PIPELINE.name,
    # when every source it reads has staged the night's delivery (ingest_<source> DAGs)
    schedule=[source_asset(source) for source in PIPELINE.sources],
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=[*TAGS, *PIPELINE.tags],
)
def livestream_forecast():
    """
    ### Live-stream traffic: tomorrow's viewers per minute, per room

    Every night, once `ingest_douyin_live` has loaded, checked and staged the delivery `ds`
    (`staging.douyin_live_metrics`; its Asset `nightshift.raw.douyin_live` starts this DAG
    with that `ds`): build every room's minute grid (sessions, gaps filled for the inputs,
    China's calendar from the holidays library, lags of 1/5/10/60 minutes, a day and a week,
    trailing statistics), backtest every model on the last 7 days (each minute forecast 10
    minutes ahead, as the study did, and a day ahead, as published): the multivariate LSTM
    (`lstm_multivariate`, the slot), the study's univariate LSTM, gradient boosting on lags,
    statsforecast's MSTL and seasonal naive (a day and a week ago). Each model's 80% interval
    is calibrated on its own backtest errors. The gate publishes the model with the lowest
    next-day MAE; when a baseline wins it serves and the run is marked degraded with the
    reason (`ops.model_runs`, `ops.serving`); when nothing beats yesterday's same minute,
    that seasonal naive forecast serves and the run says why.

    **Input**: `staging.douyin_live_metrics` (from
    `lake/raw/douyin_live/ds=…/room=<room_id>/*.csv`, the platform's pandas export).

    **Outputs** (`marts.<table>` partition `ds`, `lake/outputs/<table>/ds=…/`, and an Asset
    `nightshift.marts.<table>`):

    | table | one row per | columns (besides `ds`) |
    |---|---|---|
    | `livestream_forecast` | room × minute of `ds` + 1 | room_id, ts, yhat, yhat_p10/p90, model |

    (`model`: model_name and model_version of the model that served.) The served model's
    backtest is at `lake/predictions/livestream_forecast/ds=…/backtest.parquet` (room_id, ts,
    y, yhat, yhat_p10, yhat_p90), and a figure per room (recent actuals, the backtest,
    tomorrow with its band) at `lake/reports/livestream_forecast/ds=…/index.html`. Rooms
    with less than a week of history before the backtest are not forecast; the run lists
    them with the reason, and fails in one line when no room can be forecast.

    **Rerun a day**: clear the run of that `ds` in the UI (every task is idempotent for its
    `ds`), or `nightshift run livestream_forecast --ds YYYY-MM-DD` on a laptop (it runs
    `ingest_douyin_live` for that day first).
    """
    features = tasks.build_features(PIPELINE.name)
    train = tasks.train_model(PIPELINE.name)
    gate = tasks.gate_model(PIPELINE.name)
    publish = tasks.publish_outputs(PIPELINE.name)

    features >> train >> gate >> publish


livestream_forecast()
