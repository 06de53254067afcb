"""livestream_forecast training: every model backtested on the last 7 days, then tomorrow.

``train(run)`` is what ``nightshift train livestream_forecast --ds D`` runs (through the core's
run skeleton, :mod:`mlcore.runs`); it reads and writes the lake only:

1. read the minute grid (``features/livestream_forecast/ds=D/minutes/``: every room × minute
   from its history through D + 1, tomorrow's ``y`` empty) and keep the rooms with enough
   history (``min_train_days`` before the backtest); the others are listed with the reason;
2. for each lead (10 minutes, the study's horizon; 1440, the published next day) fit every
   model on the targets before the backtest window (the last ``backtest_days`` days up to D)
   and forecast every known minute of the window: a rolling-origin backtest, each minute
   forecast from what was known ``lead`` minutes before (the next-day origin for 1440). The
   models: the slot ``lstm_multivariate``, and ``lstm_univariate`` (the study's),
   ``gradient_boosting`` on lags, statsforecast's ``mstl`` (next day only) and the seasonal
   naive forecasts of a day (the naive bar) and a week ago;
3. calibrate each model's 80% interval on its own backtest errors (split conformal, per room):
   each backtest day's band from the other days' errors (an honest coverage), tomorrow's
   from all seven; score every model's next-day backtest (MAE, RMSE, sMAPE, MASE against
   each room's in-sample seasonal naive, R², coverage) into ``backtest_models.parquet`` and
   the 10-minute one into ``backtest_10min.parquet``;
4. forecast tomorrow with every model that may serve (``forecast.parquet``), the champion of
   another version included.

Tomorrow is forecast by the same fitted models the backtest judged (fitted on the days before
the window), so the reported errors and intervals are those of the model that publishes; the
models read the latest minutes as inputs, so they follow a room's level without a refit.
The version is ``<ds>-<10 hex of sha256(data fingerprint + params)>``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from mlcore import training
from mlcore.evaluation import compute
from mlcore.intervals import ConformalInterval, leave_one_day_out
from mlcore.manifest import (
    ChampionEntry,
    Evaluation,
    GateRule,
    ModelEntry,
    RunManifest,
    ScoredModel,
)
from mlcore.metrics import seasonal_naive_scale
from mlcore.pipelines.livestream_forecast import LivestreamForecastSettings
from mlcore.pipelines.livestream_forecast.features import GAP_COLUMNS, MINUTE_COLUMNS
from mlcore.runs import TrainingRun, check_columns
from mlcore.training import TrainingError

log = logging.getLogger(__name__)

PIPELINE = "livestream_forecast"
SLOT = "lstm_multivariate"
BASELINES = (
    "seasonal_naive_day",
    "seasonal_naive_week",
    "mstl",
    "gradient_boosting",
    "lstm_univariate",
)
# The published model must have the lowest next-day MAE of the run: the gate publishes the
# best model; when a baseline wins it serves (degraded, with the reason); when nothing beats
# yesterday's same minute, that seasonal naive forecast itself serves and the run says so.
GATE = GateRule(
    metric="mae",
    greater_is_better=False,
    must_beat=list(BASELINES),
    naive="seasonal_naive_day",
    naive_may_serve=True,
)
SHORT_LEAD = 10  # the study's horizon, judged every night, never published
DAY = 1440
COLUMNS = {
    "series": "room_id",
    "time": "ts",
    "actual": "y",
    "forecast": "yhat",
    "lower": "yhat_p10",
    "upper": "yhat_p90",
    "model": "model",
    "scale": "scale",
}


@dataclass(frozen=True)
class TrainParams:
    """Everything that shapes the models; all of it goes into the version hash."""

    window: int = 100  # the study's window of minutes
    lstm_units: int = 32
    lstm_batch_size: int = 512
    # The median of log1p(y) (pinball 0.5), which the MAE rewards: 0.75× the daily naive's
    # next-day MAE on 40 synthetic rooms, against 0.78-0.80× for the study's MSE.
    lstm_loss: str = "median"
    # Squared error: its trees average targets, so a forecast stays near counts it has seen.
    # A Poisson booster (exp of a sum) sent minutes of small rooms to thousands on the 200-room
    # bench even capped at twice the largest count (MAE 24.6 against 13.5 for the naive, RMSE
    # 485); on 40 rooms squared error scored 0.83× the naive's MAE, Poisson 0.85×. An
    # absolute-error booster starts from the median minute, 0 (most minutes are off air), and
    # never leaves it (MAE 22.9 against 3.5 for Poisson, 7.4 naive, on 60 rooms).
    gbm_loss: str = "squared_error"
    gbm_max_rows: int = 500_000
    # 14 days: the daily season only (a weekly one needs three weeks and costs 0.9 s a room
    # and day against 0.2 s: 25 minutes a night at 200 rooms instead of 5).
    mstl_history_days: int = 14


# ---- step 1: read and choose the rooms ----------------------------------------------------------
def _read(run: TrainingRun) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    folder = run.features("minutes/")
    shards = sorted(folder.glob("part-*.parquet"))
    if not shards:
        raise TrainingError(f"{folder.name}: no minute shards; run the features step")
    check_columns(shards[0], MINUTE_COLUMNS)
    gaps_path = run.features("gaps.parquet")
    check_columns(gaps_path, GAP_COLUMNS)
    fingerprint = training.data_fingerprint([*shards, gaps_path])
    table = pads.dataset([str(s) for s in shards], format="parquet").to_table(
        columns=list(MINUTE_COLUMNS)
    )
    # Counts fit float32 exactly (below 2**24): half the memory of a 60-day grid of 200 rooms.
    table = table.cast(
        pa.schema(
            [f.with_type(pa.float32()) if pa.types.is_float64(f.type) else f for f in table.schema]
        )
    )
    grid = table.to_pandas()
    grid["day"] = pd.to_datetime(grid["day"])
    grid = grid.sort_values(["room_id", "ts"], kind="stable", ignore_index=True)
    gaps = pq.read_table(gaps_path, columns=list(GAP_COLUMNS)).to_pandas()
    return grid, gaps, fingerprint


def _rooms(
    grid: pd.DataFrame, backtest_start: dt.date, settings: LivestreamForecastSettings
) -> tuple[list[str], dict[str, str]]:
    """(the rooms forecast, {room: why not} for the others)."""
    first = grid.groupby("room_id", sort=True)["day"].min()
    kept, skipped = [], {}
    for room, day in first.items():
        days = (backtest_start - pd.Timestamp(day).date()).days
        if days < settings.min_train_days:
            skipped[str(room)] = (
                f"{max(days, 0)} day(s) of history before the {settings.backtest_days}-day "
                f"backtest, {settings.min_train_days} needed"
            )
        else:
            kept.append(str(room))
    return kept, skipped


# ---- step 2: the models -----------------------------------------------------------------------
def _models(
    lead: int, params: TrainParams, settings: LivestreamForecastSettings, seed: int
) -> dict:
    from mlcore.models import forecast as fc

    lstm = {
        "units": params.lstm_units,
        "epochs": settings.lstm_epochs,
        "batch_size": params.lstm_batch_size,
        "loss": params.lstm_loss,
        "max_windows": settings.lstm_max_windows,
        "seed": seed,
    }
    models = {
        "seasonal_naive_day": fc.SeasonalNaive(DAY, lead=lead),
        "seasonal_naive_week": fc.SeasonalNaive(7 * DAY, lead=lead),
        "gradient_boosting": fc.GradientBoostingForecaster(
            lead, loss=params.gbm_loss, max_rows=params.gbm_max_rows, seed=seed
        ),
        "lstm_univariate": fc.LSTMForecaster(lead, params.window, False, **lstm),
        "lstm_multivariate": fc.LSTMForecaster(lead, params.window, True, **lstm),
    }
    if lead == DAY:  # a local statistical model refits per origin: next day only
        models["mstl"] = fc.MSTLForecaster(
            DAY, history_days=params.mstl_history_days, n_jobs=training.cpu_count()
        )
    return models


def _scales(grid: pd.DataFrame, train_rows: np.ndarray) -> pd.Series:
    """Each room's in-sample seasonal-naive MAE (season one day) over its training rows: the
    MASE denominator."""
    past = grid.iloc[train_rows]
    out = {}
    for room, part in past.groupby("room_id", sort=True):
        history = part["y_filled"].to_numpy(dtype=np.float64)
        out[room] = seasonal_naive_scale(history, DAY) if len(history) > DAY else np.nan
    return pd.Series(out, name="scale", dtype=np.float64)


def _bounds(frame: pd.DataFrame, coverage: float) -> pd.DataFrame:
    """Each backtest row's interval from the other days' errors of the same model."""
    out = []
    for _, part in frame.groupby("model", sort=True):
        lower, upper = leave_one_day_out(
            part["y"].to_numpy(np.float64),
            part["yhat"].to_numpy(np.float64),
            part["ts"].dt.date.to_numpy(),
            groups=part["room_id"].to_numpy(),
            coverage=coverage,
        )
        out.append(part.assign(yhat_p10=lower, yhat_p90=upper))
    return pd.concat(out, ignore_index=True)


def _backtest(
    run: TrainingRun,
    lead: int,
    models: dict,
    grid: pd.DataFrame,
    rows: np.ndarray,
    scales: pd.Series,
    coverage: float,
    labels: dict[str, tuple[str, str]],
) -> pd.DataFrame:
    """Every model's forecast of every backtest row, with its interval and the room's scale.

    ``labels``: {model: (model_name, model_version)} as the evaluation rows name them.
    """
    frames = []
    base = grid.iloc[rows][["room_id", "ts", "y"]].reset_index(drop=True)
    base["y"] = base["y"].astype(np.float64)
    for name, model in models.items():
        with run.timed(f"backtest_{name}{_suffix(lead)}"):
            yhat = model.predict(grid, rows)
        model_name, model_version = labels[name]
        frames.append(
            base.assign(model=name, model_name=model_name, model_version=model_version, yhat=yhat)
        )
    frame = pd.concat(frames, ignore_index=True)
    frame = _bounds(frame, coverage)
    frame["scale"] = frame["room_id"].map(scales).to_numpy(np.float64)
    return frame


def _suffix(lead: int) -> str:
    """Timings of the published horizon are plain (``fit_mstl_seconds``); the 10-minute
    horizon's carry ``_10min``."""
    return "" if lead == DAY else f"_{lead}min"


def _evaluation(key: str) -> Evaluation:
    return Evaluation(key=key, columns=dict(COLUMNS))


# ---- step 4: tomorrow -------------------------------------------------------------------------
def _tomorrow(
    run: TrainingRun,
    models: dict,
    grid: pd.DataFrame,
    future: np.ndarray,
    backtest: pd.DataFrame,
    coverage: float,
    labels: dict[str, tuple[str, str]],
) -> pd.DataFrame:
    """Tomorrow's forecast of every model, with the interval calibrated on all its backtest."""
    base = grid.iloc[future][["room_id", "ts"]].reset_index(drop=True)
    frames = []
    for name, model in models.items():
        with run.timed(f"forecast_{name}"):
            yhat = model.predict(grid, future)
        past = backtest[backtest["model"] == name]
        band = ConformalInterval(coverage).fit(
            past["y"].to_numpy(np.float64),
            past["yhat"].to_numpy(np.float64),
            groups=past["room_id"].to_numpy(),
            days=past["ts"].dt.date.to_numpy(),
        )
        lower, upper = band.interval(yhat, groups=base["room_id"].to_numpy())
        model_name, model_version = labels[name]
        frames.append(
            base.assign(
                yhat=yhat,
                yhat_p10=lower,
                yhat_p90=upper,
                model_name=model_name,
                model_version=model_version,
            )
        )
    return pd.concat(frames, ignore_index=True)


def _targets(metrics: dict, short: dict, backtest: pd.DataFrame) -> dict:
    """The issue's targets, read off tonight's numbers (reported, not gated)."""
    naive = metrics["seasonal_naive_day"]["mae"]
    best = min(
        (m for m in metrics if not m.startswith("champion_")), key=lambda m: metrics[m]["mae"]
    )
    # Off-air minutes (0 forecast, 0 actual) are always inside the band: the coverage of the
    # minutes where something happened is the one to read against 80%.
    rows = backtest[(backtest["model"] == best) & ((backtest["y"] > 0) | (backtest["yhat"] > 0))]
    inside = (rows["y"] >= rows["yhat_p10"]) & (rows["y"] <= rows["yhat_p90"])
    return {
        "best_model": best,
        "best_mae_vs_seasonal_naive": metrics[best]["mae"] / naive if naive else None,
        "best_coverage": metrics[best]["coverage"],
        "best_coverage_active_minutes": float(inside.mean()) if len(rows) else None,
        "lstm_multivariate_mae_vs_gradient_boosting": (
            metrics[SLOT]["mae"] / metrics["gradient_boosting"]["mae"]
            if metrics["gradient_boosting"]["mae"]
            else None
        ),
        "lstm_multivariate_mae_vs_gradient_boosting_10min": (
            short[SLOT]["mae"] / short["gradient_boosting"]["mae"]
            if short["gradient_boosting"]["mae"]
            else None
        ),
    }


def train(run: TrainingRun, params: TrainParams | None = None) -> RunManifest:
    """Backtest, calibrate and forecast; return the manifest (the core writes it). Raises
    TrainingError, with a one-line reason, when no room has the history a forecast needs."""
    params = params or TrainParams()
    settings = run.pipeline_settings or LivestreamForecastSettings()
    seed = run.seed
    ds = dt.date.fromisoformat(run.ds)
    backtest_start = ds - dt.timedelta(days=settings.backtest_days - 1)

    with run.timed("read"):
        grid, gaps, fingerprint = _read(run)
    rooms, skipped = _rooms(grid, backtest_start, settings)
    if not rooms:
        shown = "; ".join(f"room {r}: {why}" for r, why in sorted(skipped.items())[:5])
        raise TrainingError(f"no room can be forecast for the day after {ds}: {shown}")
    if skipped:
        log.warning("rooms not forecast: %s", skipped)
        grid = grid[grid["room_id"].isin(rooms)].reset_index(drop=True)
    run_params = {
        "pipeline": PIPELINE,
        "seed": seed,
        **dataclasses.asdict(params),
        **{f"setting_{k}": v for k, v in dataclasses.asdict(settings).items()},
    }
    version = run.version(fingerprint, run_params)

    day = grid["day"].to_numpy()
    start = np.datetime64(backtest_start)
    known = grid["y"].notna().to_numpy() & ~grid["is_future"].to_numpy(dtype=bool)
    train_rows = np.flatnonzero(known & (day < start))
    backtest_rows = np.flatnonzero(known & (day >= start))
    future_rows = np.flatnonzero(grid["is_future"].to_numpy(dtype=bool))
    log.info(
        "%s %s: version %s; %d rooms (%d skipped), %d training minutes, %d backtest minutes",
        PIPELINE,
        ds,
        version,
        len(rooms),
        len(skipped),
        len(train_rows),
        len(backtest_rows),
    )
    scales = _scales(grid, train_rows)

    fitted, fits, metrics_by_lead, frames = {}, {}, {}, {}
    for lead in (SHORT_LEAD, DAY):
        models = _models(lead, params, settings, seed)
        for name, model in models.items():
            with run.timed(f"fit_{name}{_suffix(lead)}"):
                model.fit(grid, train_rows)
            fits[(name, lead)] = getattr(model, "fit_summary_", {})
            log.info("fitted %s at lead %d", name, lead)
        labels = {name: (name, version) for name in models}
        if lead == DAY:
            champions = run.champions([SLOT], version, list(MINUTE_COLUMNS))
            for slot, scorer in champions.items():
                models[f"champion_{slot}"] = scorer.model
                labels[f"champion_{slot}"] = (slot, scorer.version)
        rows = backtest_rows
        if lead == SHORT_LEAD and len(rows) > settings.short_horizon_rows:
            rng = np.random.default_rng(seed)
            rows = np.sort(rng.choice(rows, settings.short_horizon_rows, replace=False))
        with run.timed(f"backtest{_suffix(lead)}"):
            frame = _backtest(run, lead, models, grid, rows, scales, settings.coverage, labels)
        frames[lead] = frame
        metrics_by_lead[lead] = compute("forecast", _evaluation(""), frame)
        fitted[lead] = (models, labels)
    metrics, short = metrics_by_lead[DAY], metrics_by_lead[SHORT_LEAD]
    log.info("next-day MAE: %s", {n: round(m["mae"], 3) for n, m in metrics.items()})

    backtest_key = training.write_parquet(
        run.lake, run.predictions_key("backtest_models.parquet"), frames[DAY]
    )
    training.write_parquet(
        run.lake, run.predictions_key("backtest_10min.parquet"), frames[SHORT_LEAD]
    )
    models, labels = fitted[DAY]
    with run.timed("forecast"):
        tomorrow = _tomorrow(run, models, grid, future_rows, frames[DAY], settings.coverage, labels)
    forecast_key = training.write_parquet(
        run.lake, run.predictions_key("forecast.parquet"), tomorrow
    )

    artifacts = {
        name: training.save_pickle(run.lake, run.model_key(version, f"{name}.pkl"), model)
        for name, model in models.items()
        if not name.startswith("champion_")
    }

    def entry(name: str) -> ModelEntry:
        return ModelEntry(
            metrics=metrics[name],
            artifact=artifacts[name],
            inputs=list(MINUTE_COLUMNS),
            fit={"next_day": fits[(name, DAY)], "10min": fits.get((name, SHORT_LEAD), {})},
            extra={"metrics_10min": short.get(name)},
        )

    champions = {
        name[len("champion_") :]: ChampionEntry(labels[name][1], metrics[name])
        for name in models
        if name.startswith("champion_")
    }
    return RunManifest(
        pipeline=PIPELINE,
        kind="forecast",
        version=version,
        ds=run.ds,
        data_fingerprint=fingerprint,
        params=run_params,
        gate=GATE,
        models={SLOT: entry(SLOT)},
        baselines={name: entry(name) for name in BASELINES},
        champions=champions,
        scored=[ScoredModel(*pair) for pair in sorted({labels[name] for name in models})],
        scores_key=forecast_key,
        evaluation=_evaluation(backtest_key),
        counts={
            "input_rows": len(grid),
            "train_rows": len(train_rows),
            "evaluation_rows": len(frames[DAY]),
            "scored_rows": len(tomorrow),
            "rooms": len(rooms),
            "rooms_skipped": len(skipped),
            "missing_minutes": int(gaps["missing_minutes"].sum()),
        },
        split_time=str(backtest_start),
        extra={
            "horizons": {"10min": short},
            "rooms_skipped": skipped,
            "targets": _targets(metrics, short, frames[DAY]),
        },
    )
