-- marts.movie_u2i: the top movies for each user, from the model serving tonight.
-- Grain: one row per user × recommended movie for $ds. Key: (ds, user_id, rank).
-- The trainer wrote the lists of every model that may serve (u2i.parquet); the gate chose
-- $model_name $model_version. Already-rated movies were excluded when the lists were drawn.
create or replace temp table publish_movie_u2i as
with scores as (
    select * from read_parquet($u2i_path)
),

final as (
    select
        $ds::date as ds,
        user_id,
        rank::integer as rank,
        movie_id,
        score,
        model_name,
        model_version
    from scores
    where model_name = $model_name and model_version = $model_version
)

select * from final
