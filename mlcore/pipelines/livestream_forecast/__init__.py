"""livestream_forecast: tomorrow's viewers per minute for every Douyin live room, with an 80%
interval ops can trust.

The Douyin live-room study forecast WATCH_UCNT (viewers entering the room each minute) with
a univariate LSTM over 100 minutes and a multivariate one. Here both run every night for
every room beside seasonal naive, statsforecast's MSTL and gradient boosting on lags; a
rolling-origin backtest over the last 7 days judges them at the study's 10-minute horizon
and at the next-day horizon that is published, and calibrates each model's interval on its
own backtest errors (split conformal). The work is in ``sql/livestream_forecast/`` (the
minute grid, calendar, lags), ``train`` and ``publish``. Docs:
``docs/pipelines/livestream_forecast.md``. Cheap to import.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlcore.contract import Pipeline, TableSchema


@dataclass(frozen=True)
class LivestreamForecastSettings:
    """``NIGHTSHIFT_LIVESTREAM_FORECAST_*``: the settings of this pipeline alone."""

    # Days of the rolling-origin backtest (each a next-day origin), ending on ds.
    backtest_days: int = 7
    # Days of history before the backtest a room needs to be forecast (the models learn on
    # them; the weekly lag needs a week).
    min_train_days: int = 7
    # The nominal coverage of the published interval (yhat_p10 .. yhat_p90).
    coverage: float = 0.8
    # Days of actuals drawn before the backtest in each room's figure.
    plot_days: int = 3
    # The LSTMs' training budget: windows drawn from the training minutes (seeded) and epochs
    # (early stopping may end sooner). An LSTM over 100 minutes costs about 0.4 ms a window
    # and epoch on one of the 2 cores, so these bound its share of the nightly 20 minutes.
    lstm_max_windows: int = 40_000
    lstm_epochs: int = 4
    # The 10-minute horizon (the study's, judged every night, never published) is scored on a
    # seeded sample of at most this many backtest minutes, the same minutes for every model.
    short_horizon_rows: int = 100_000


PIPELINE = Pipeline(
    name="livestream_forecast",
    kind="forecast",
    sources=("douyin_live",),
    tables=(
        TableSchema(
            "livestream_forecast",
            grain="one row per room × minute of the day after ds",
            key=("ds", "room_id", "ts"),
            columns={
                "ds": "date",
                "room_id": "varchar",
                "ts": "timestamp",
                "yhat": "double",
                "yhat_p10": "double",
                "yhat_p90": "double",
                "model_name": "varchar",
                "model_version": "varchar",
            },
            doc="viewers entering each room in each minute of tomorrow (China time), with the "
            "80% interval calibrated on the model's own backtest",
        ),
    ),
    feature_exports={
        "minutes/": "features.livestream_minutes",
        "gaps.parquet": "features.livestream_gaps",
    },
    trainer="mlcore.pipelines.livestream_forecast.train:train",
    publisher="mlcore.pipelines.livestream_forecast.publish:publish",
    settings="mlcore.pipelines.livestream_forecast:LivestreamForecastSettings",
    summary="Douyin live rooms: tomorrow's viewers per minute with an 80% interval; LSTMs "
    "(univariate and multivariate) against seasonal naive, MSTL and gradient boosting.",
    tags=("douyin", "forecast"),
    docs="docs/pipelines/livestream_forecast.md",
    calendars=("CN",),
)
