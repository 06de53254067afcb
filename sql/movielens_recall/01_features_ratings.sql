-- features.movielens_ratings: every rating up to $ds, split the way the original LFM project
-- split it, with its label.
-- Grain: one row per user × movie (the latest rating wins: staging keeps one). Key: user_id,
-- movie_id (unique, not null).
-- Source: staging.movielens_ratings (every delivery with ds <= $ds, deduplicated) and
-- staging.movielens_movies (ratings of a movie not in the catalogue are left out: the
-- validation counted and quarantined them; this keeps a late catalogue from breaking i2i).
-- The original's choices, kept:
--   * users with more than 2000 ratings are left out (loaders and bots more than viewers);
--   * per user, the last two ratings by time are the test set ("test"), the rest "train";
--     ties in time go by movie_id, so the split is the same on every run. A user with fewer
--     than 3 ratings keeps them all in train (nothing would be left to learn from);
--   * a rating of 4 or more is a positive (label 1), below 4 a negative (label 0).
create or replace table features.movielens_ratings as
with ratings as (
    select user_id, movie_id, rating, rated_at
    from staging.movielens_ratings
    semi join staging.movielens_movies using (movie_id)
),

activity as (
    select user_id, count(*) as user_ratings
    from ratings
    group by user_id
),

kept as (
    select ratings.*, activity.user_ratings
    from ratings
    inner join activity using (user_id)
    where activity.user_ratings <= 2000
),

ordered as (
    select
        *,
        row_number() over (
            partition by user_id order by rated_at desc, movie_id desc
        ) as recency
    from kept
),

final as (
    select
        user_id,
        movie_id,
        rating,
        rated_at,
        (rating >= 4)::tinyint as label,
        case when recency <= 2 and user_ratings >= 3 then 'test' else 'train' end as split
    from ordered
)

select * from final
