-- staging.movielens_ratings: every rating delivered up to $ds, once per user and movie.
-- Grain: one row per (user, movie). Key: user_id × movie_id (unique, not null).
-- Source: raw.movielens_ratings partitions with ds <= $ds, minus their quarantined rows (ids
-- -1, ratings off the 0.5-5 scale, timestamps before 1995 or after their delivery day,
-- movies absent from their delivery's catalogue).
-- Cleaning:
--   * rated_at: the unix seconds as a naive UTC timestamp. Rows validation quarantines for
--     their values (ids below 1 or null, ratings off the scale, seconds outside 1970-2100)
--     are left out here too: a night staged without validation cannot pass them on;
--   * a user who rated a movie more than once (again later, or the same line delivered
--     twice): the latest rated_at wins, ties by the newest delivery, then the last line;
--   * ds is the delivery the kept rating came from.
create or replace table staging.movielens_ratings as
with source as (
    select *
    from raw.movielens_ratings
    anti join quarantine.movielens_ratings using (ds, _source_file, _line)
    where ds <= $ds
),

renamed as (
    select
        user_id,
        movie_id,
        rating,
        make_timestamp("timestamp" * 1000000) as rated_at,
        ds,
        _source_file,
        _line
    from source
    where user_id >= 1 and movie_id >= 1 and rating between 0.5 and 5
        and "timestamp" >= 0 and "timestamp" < 4102444800
),

final as (
    select user_id, movie_id, rating, rated_at, ds
    from renamed
    qualify row_number() over (
        partition by user_id, movie_id
        order by rated_at desc, ds desc, _source_file desc, _line desc
    ) = 1
)

select * from final
