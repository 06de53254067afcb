-- features.movielens_movies: the catalogue with what the models and the i2i table need.
-- Grain: one row per movie of the catalogue snapshot. Key: movie_id (unique, not null).
-- Counts are over the training split of features.movielens_ratings only, so that nothing
-- about a held-out rating reaches a model: train_ratings, train_positives (rating >= 4).
-- A movie no one rated is kept with zero counts (it can be recommended by a content-blind
-- model only if it has a vector: in practice it cannot, and the i2i table leaves it out).
create or replace table features.movielens_movies as
with movies as (
    select movie_id, title, year, genres
    from staging.movielens_movies
),

train as (
    select movie_id, count(*) as train_ratings, sum(label)::bigint as train_positives
    from features.movielens_ratings
    where split = 'train'
    group by movie_id
),

final as (
    select
        movies.movie_id,
        movies.title,
        movies.year,
        movies.genres,
        coalesce(train.train_ratings, 0) as train_ratings,
        coalesce(train.train_positives, 0) as train_positives
    from movies
    left join train using (movie_id)
)

select * from final
