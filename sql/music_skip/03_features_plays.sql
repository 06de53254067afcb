-- features.music_skip_plays: the training rows: every play of a known user and a known track,
-- its label and the features of mlcore.pipelines.music_skip.features.FEATURES (never null).
-- Grain: one row per PLAY of a user and a track that are in staging. Keys:
-- session_id × timestamp × track_id (unique, not null); session_id × position_in_session.
-- No leakage: every feature is known when the play starts. The user's and the track's prior
-- plays and skip rates count plays strictly earlier in time (a play at the same instant is
-- not "before"); prev_skipped and ad_before come from before the PLAY event (01); nothing
-- from during the play (LIKE, SKIP) or after it enters a feature.
-- Skip rates are smoothed: (skips + 5 × 0.34) / (plays + 5), a prior worth 5 plays at a
-- constant 0.34 (the service's long-run skip rate; a constant, so that no future play leaks
-- through a "global" rate). The same prior is used by the candidate features (04).
-- genre_overlap = how many of the user's (distinct) favourite genres the artist has;
-- genre_overlap_share = that / the number of favourite genres (0 when the user has none).
-- hour and weekday of the play in UTC; weekday 0 = Monday … 6 = Sunday.
create or replace table features.music_skip_plays as
with plays as (
    select
        session_id,
        position_in_session,
        "timestamp",
        user_id,
        track_id,
        label_skipped,
        ad_before,
        prev_skipped
    from staging.music_skip_plays
),

users as (
    select * from staging.pozytywka_users
),

tracks as (
    select * from staging.music_skip_track_attributes
),

known_plays as (
    select *
    from plays
    semi join users using (user_id)
    semi join tracks using (track_id)
),

history as (
    -- on the narrow rows, before the wide attributes join: window sorts move fewer bytes
    select
        *,
        count(*) over user_before as user_prior_plays,
        coalesce(sum(label_skipped) over user_before, 0) as user_prior_skips,
        count(*) over track_before as track_prior_plays,
        coalesce(sum(label_skipped) over track_before, 0) as track_prior_skips
    from known_plays
    window
        user_before as (
            partition by user_id order by "timestamp"
            range between unbounded preceding and interval 1 microsecond preceding
        ),
        track_before as (
            partition by track_id order by "timestamp"
            range between unbounded preceding and interval 1 microsecond preceding
        )
),

with_attributes as (
    select
        history.*,
        users.favourite_genres,
        users.premium,
        tracks.* exclude (track_id)
    from history
    inner join users on history.user_id = users.user_id
    inner join tracks on history.track_id = tracks.track_id
),

final as (
    select
        session_id,
        user_id,
        track_id,
        "timestamp",
        cast(label_skipped as integer) as label_skipped,
        cast(user_prior_plays as bigint) as user_prior_plays,
        cast((user_prior_skips + 5 * 0.34) / (user_prior_plays + 5.0) as double)
            as user_prior_skip_rate,
        cast(len(list_intersect(favourite_genres, artist_genres)) as bigint) as genre_overlap,
        cast(
            case
                when len(favourite_genres) = 0 then 0.0
                else len(list_intersect(favourite_genres, artist_genres)) / len(favourite_genres)
            end as double
        ) as genre_overlap_share,
        popularity as track_popularity,
        cast(track_prior_plays as bigint) as track_prior_plays,
        cast((track_prior_skips + 5 * 0.34) / (track_prior_plays + 5.0) as double)
            as track_prior_skip_rate,
        duration_ms,
        explicit,
        release_year,
        danceability,
        energy,
        key,
        loudness,
        speechiness,
        acousticness,
        instrumentalness,
        liveness,
        valence,
        tempo,
        cast(hour("timestamp") as integer) as hour,
        cast(isodow("timestamp") - 1 as integer) as weekday,
        cast(premium as integer) as premium,
        cast(ad_before as integer) as ad_before,
        cast(position_in_session as bigint) as position_in_session,
        cast(prev_skipped as integer) as prev_skipped
    from with_attributes
)

select * from final
