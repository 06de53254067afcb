-- marts.movie_i2i: the movies most like each movie, from the model serving tonight.
-- Grain: one row per movie × similar movie for $ds. Key: (ds, movie_id, rank).
-- Only movies with enough training ratings have a list and appear in lists (the trainer's
-- min_movie_ratings); a movie is never listed as like itself.
create or replace temp table publish_movie_i2i as
with scores as (
    select * from read_parquet($i2i_path)
),

final as (
    select
        $ds::date as ds,
        movie_id,
        rank::integer as rank,
        similar_movie_id,
        score,
        model_name,
        model_version
    from scores
    where model_name = $model_name and model_version = $model_version
)

select * from final
