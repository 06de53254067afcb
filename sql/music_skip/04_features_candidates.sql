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
-- smoothed as in 03: (skips + 5 × 0.34) / (plays + 5); so are the artist's, the user's per
-- genre, the last 5 plays' and the taste features, as 03 would compute them (its taste_gap macro) for a play at
-- $ds + 1 day 00:00 (tests/sql check that the two agree). The moment is typical, the start
-- of a new session: hour = the user's most common play hour (ties: the earliest), weekday =
-- that of $ds + 1 day (0 = Monday), position_in_session = 1, ad_before = 0, like_before = 0,
-- prev_skipped = 0, session_prior_skips = 0, secs_since_prev_event = -1, prev_played_share = -1.
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
    -- taste sums in integer millionths, as in 03: exact, so the same in any summing order
    select
        plays.user_id,
        count(*) as prior_plays,
        sum(plays.label_skipped) as prior_skips,
        count(distinct plays.session_id) as prior_sessions,
        min(plays."timestamp") as first_play_at,
        sum(plays.label_skipped) as skipped_count,
        count(*) - sum(plays.label_skipped) as full_count,
        sum(cast(round(tracks.danceability * 1e6) as bigint) * (1 - plays.label_skipped)) / 1e6
            as full_danceability_sum,
        sum(cast(round(tracks.danceability * 1e6) as bigint) * plays.label_skipped) / 1e6
            as skipped_danceability_sum,
        sum(cast(round(tracks.valence * 1e6) as bigint) * (1 - plays.label_skipped)) / 1e6
            as full_valence_sum,
        sum(cast(round(tracks.valence * 1e6) as bigint) * plays.label_skipped) / 1e6
            as skipped_valence_sum,
        sum(cast(round(tracks.energy * 1e6) as bigint) * (1 - plays.label_skipped)) / 1e6
            as full_energy_sum,
        sum(cast(round(tracks.energy * 1e6) as bigint) * plays.label_skipped) / 1e6
            as skipped_energy_sum,
        sum(cast(round(tracks.acousticness * 1e6) as bigint) * (1 - plays.label_skipped)) / 1e6
            as full_acousticness_sum,
        sum(cast(round(tracks.acousticness * 1e6) as bigint) * plays.label_skipped) / 1e6
            as skipped_acousticness_sum,
        sum(cast(round(tracks.speechiness * 1e6) as bigint) * (1 - plays.label_skipped)) / 1e6
            as full_speechiness_sum,
        sum(cast(round(tracks.speechiness * 1e6) as bigint) * plays.label_skipped) / 1e6
            as skipped_speechiness_sum,
        sum(cast(round(tracks.duration_ms * 1e6) as bigint) * (1 - plays.label_skipped)) / 1e6
            as full_duration_ms_sum,
        sum(cast(round(tracks.duration_ms * 1e6) as bigint) * plays.label_skipped) / 1e6
            as skipped_duration_ms_sum
    from plays
    inner join tracks on plays.track_id = tracks.track_id
    group by plays.user_id
),

user_recent as (
    select user_id, count(*) as recent_plays, sum(label_skipped) as recent_skips
    from (
        select user_id, label_skipped
        from plays
        qualify row_number() over (
            partition by user_id
            order by "timestamp" desc, session_id desc, position_in_session desc
        ) <= 5
    )
    group by user_id
),

artist_history as (
    select tracks.artist_id, count(*) as prior_plays, sum(plays.label_skipped) as prior_skips
    from plays
    inner join tracks on plays.track_id = tracks.track_id
    group by tracks.artist_id
),

user_genre_counts as (
    select plays.user_id, g.genre, count(*) as prior_plays, sum(plays.label_skipped) as prior_skips
    from plays
    inner join tracks on plays.track_id = tracks.track_id,
        unnest(tracks.artist_genres) as g(genre)
    group by all
),

pair_genre_history as (
    -- per pair: the user's plays in each of the candidate's genres, summed over them
    select
        pairs.user_id,
        pairs.track_id,
        sum(user_genre_counts.prior_plays) as prior_plays,
        sum(user_genre_counts.prior_skips) as prior_skips
    from pairs
    inner join tracks on pairs.track_id = tracks.track_id,
        unnest(tracks.artist_genres) as g(genre)
    inner join user_genre_counts
        on user_genre_counts.user_id = pairs.user_id and user_genre_counts.genre = g.genre
    group by all
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
        0 as prev_skipped,
        0 as like_before,
        cast(0 as bigint) as session_prior_skips,
        cast(-1 as double) as secs_since_prev_event,
        cast(-1 as double) as prev_played_share,
        cast(
            (coalesce(artist_history.prior_skips, 0) + 5 * 0.34)
            / (coalesce(artist_history.prior_plays, 0) + 5.0) as double
        ) as artist_prior_skip_rate,
        cast(
            (coalesce(pair_genre_history.prior_skips, 0) + 5 * 0.34)
            / (coalesce(pair_genre_history.prior_plays, 0) + 5.0) as double
        ) as user_genre_prior_skip_rate,
        cast(
            (coalesce(user_recent.recent_skips, 0) + 2 * 0.34)
            / (coalesce(user_recent.recent_plays, 0) + 2.0) as double
        ) as user_recent_skip_rate,
        cast(coalesce(user_history.prior_sessions, 0) as bigint) as user_prior_sessions,
        cast(
            coalesce(
                epoch(cast(cast($ds as date) + 1 as timestamp) - user_history.first_play_at)
                / 86400.0,
                0.0
            )
            as double
        ) as user_tenure_days,
        taste_gap(
            tracks.danceability,
            user_history.full_danceability_sum,
            coalesce(user_history.full_count, 0),
            user_history.skipped_danceability_sum,
            coalesce(user_history.skipped_count, 0)
        ) as taste_danceability,
        taste_gap(
            tracks.valence,
            user_history.full_valence_sum,
            coalesce(user_history.full_count, 0),
            user_history.skipped_valence_sum,
            coalesce(user_history.skipped_count, 0)
        ) as taste_valence,
        taste_gap(
            tracks.energy,
            user_history.full_energy_sum,
            coalesce(user_history.full_count, 0),
            user_history.skipped_energy_sum,
            coalesce(user_history.skipped_count, 0)
        ) as taste_energy,
        taste_gap(
            tracks.acousticness,
            user_history.full_acousticness_sum,
            coalesce(user_history.full_count, 0),
            user_history.skipped_acousticness_sum,
            coalesce(user_history.skipped_count, 0)
        ) as taste_acousticness,
        taste_gap(
            tracks.speechiness,
            user_history.full_speechiness_sum,
            coalesce(user_history.full_count, 0),
            user_history.skipped_speechiness_sum,
            coalesce(user_history.skipped_count, 0)
        ) as taste_speechiness,
        taste_gap(
            tracks.duration_ms,
            user_history.full_duration_ms_sum,
            coalesce(user_history.full_count, 0),
            user_history.skipped_duration_ms_sum,
            coalesce(user_history.skipped_count, 0)
        ) as taste_duration_ms
    from pairs
    inner join users on pairs.user_id = users.user_id
    inner join tracks on pairs.track_id = tracks.track_id
    inner join user_hours on pairs.user_id = user_hours.user_id
    left join user_history on pairs.user_id = user_history.user_id
    left join track_history on pairs.track_id = track_history.track_id
    left join artist_history on tracks.artist_id = artist_history.artist_id
    left join user_recent on pairs.user_id = user_recent.user_id
    left join pair_genre_history
        on pairs.user_id = pair_genre_history.user_id
        and pairs.track_id = pair_genre_history.track_id
)

select * from final
