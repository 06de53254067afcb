-- marts.livestream_forecast: tomorrow's viewers per room and minute, from the model serving.
-- Grain: one row per room × minute of $ds + 1, for $ds. Key: (ds, room_id, ts).
-- The trainer wrote the forecasts of every model that may serve (forecast.parquet), each with
-- its 80% interval calibrated on its own backtest; the gate chose $model_name $model_version.
create or replace temp table publish_livestream_forecast as
with forecasts as (
    select * from read_parquet($forecast_path)
),

final as (
    select
        $ds::date as ds,
        room_id,
        ts,
        yhat,
        yhat_p10,
        yhat_p90,
        model_name,
        model_version
    from forecasts
    where model_name = $model_name and model_version = $model_version
)

select * from final
