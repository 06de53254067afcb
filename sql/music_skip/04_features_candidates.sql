-- features.music_skip_candidates: the (user, track) pairs to score for $ds: what each active
-- user is likely to meet next, with the play features at typical values (no label).
-- Grain: one row per user × track. Key: user_id × track_id (unique, not null); ds = $ds.
-- Who: users with a play (in features.music_skip_plays) in the 30 days up to $ds, i.e. from
-- $ds - 29 days 00:00 to the end of $ds.
-- Which tracks, per user (bounded: at most 30 + the user's recent distinct tracks):
--   * the 30 most popular tracks (ties: track_id) whose artist shares a genre with the user's
--     favourites. Never a users × tracks cross join: each genre keeps its own top 30 first
--     (a track in the user's top 30 is necessarily in the top 30 of each genre it shares
--     with the user), then each user ranks the union of their genres' lists;
--   * every track the user played in those 30 days.
-- Features: the track's and the user's prior stats count all plays up to the end of $ds and are
-- smoothed as in 03: (skips + 5 × 0.34) / (plays + 5). The moment is typical: hour = the
-- user's most common play hour (ties: the earliest), weekday = that of $ds + 1 day
-- (0 = Monday), position_in_session = 1, ad_before = 0, prev_skipped = 0.
create or replace table features.music_skip_candidates as
with plays as (
    select *
    from features.music_skip_plays
    where "timestamp" < cast($ds as date) + 1
),

users as (
    select * from staging.pozytywka_users
),

tracks as (
    select * from staging.music_skip_track_attributes
),

recent_plays as (
    select user_id, track_id
    from plays
    where "timestamp" >= cast($ds as date) - 29
),

active_users as (
    select distinct user_id from recent_plays
),

genre_tracks as (
    select unnest(artist_genres) as genre, track_id, popularity
    from tracks
),

genre_top as (
    select genre, track_id, popularity
    from genre_tracks
    qualify row_number() over (
        partition by genre order by popularity desc, track_id
    ) <= 30
),

user_genres as (
    select distinct users.user_id, unnest(users.favourite_genres) as genre
    from users
    inner join active_users on users.user_id = active_users.user_id
),

user_top as (
    select user_id, track_id
    from (
        select distinct user_genres.user_id, genre_top.track_id, genre_top.popularity
        from user_genres
        inner join genre_top on user_genres.genre = genre_top.genre
    )
    qualify row_number() over (
        partition by user_id order by popularity desc, track_id
    ) <= 30
),

pairs as (
    select user_id, track_id from user_top
    union
    select user_id, track_id from recent_plays
),

user_history as (
    select user_id, count(*) as prior_plays, sum(label_skipped) as prior_skips
    from plays
    group by user_id
),

track_history as (
    select track_id, count(*) as prior_plays, sum(label_skipped) as prior_skips
    from plays
    group by track_id
),

user_hours as (
    select user_id, hour as usual_hour
    from plays
    group by user_id, hour
    qualify row_number() over (partition by user_id order by count(*) desc, hour) = 1
),

final as (
    select
        cast($ds as date) as ds,
        pairs.user_id,
        pairs.track_id,
        cast(coalesce(user_history.prior_plays, 0) as bigint) as user_prior_plays,
        cast(
            (coalesce(user_history.prior_skips, 0) + 5 * 0.34)
            / (coalesce(user_history.prior_plays, 0) + 5.0) as double
        ) as user_prior_skip_rate,
        cast(len(list_intersect(users.favourite_genres, tracks.artist_genres)) as bigint)
            as genre_overlap,
        cast(
            case
                when len(users.favourite_genres) = 0 then 0.0
                else len(list_intersect(users.favourite_genres, tracks.artist_genres))
                    / len(users.favourite_genres)
            end as double
        ) as genre_overlap_share,
        tracks.popularity as track_popularity,
        cast(coalesce(track_history.prior_plays, 0) as bigint) as track_prior_plays,
        cast(
            (coalesce(track_history.prior_skips, 0) + 5 * 0.34)
            / (coalesce(track_history.prior_plays, 0) + 5.0) as double
        ) as track_prior_skip_rate,
        tracks.duration_ms,
        tracks.explicit,
        tracks.release_year,
        tracks.danceability,
        tracks.energy,
        tracks.key,
        tracks.loudness,
        tracks.speechiness,
        tracks.acousticness,
        tracks.instrumentalness,
        tracks.liveness,
        tracks.valence,
        tracks.tempo,
        cast(user_hours.usual_hour as integer) as hour,
        cast(isodow(cast($ds as date) + 1) - 1 as integer) as weekday,
        cast(users.premium as integer) as premium,
        0 as ad_before,
        cast(1 as bigint) as position_in_session,
        0 as prev_skipped
    from pairs
    inner join users on pairs.user_id = users.user_id
    inner join tracks on pairs.track_id = tracks.track_id
    inner join user_hours on pairs.user_id = user_hours.user_id
    left join user_history on pairs.user_id = user_history.user_id
    left join track_history on pairs.track_id = track_history.track_id
)

select * from final
