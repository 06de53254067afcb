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
-- The artist's, and the user's per genre, skip rates: the same rule and the same prior, over
-- the artist's plays and over the user's plays of tracks sharing a genre with this one
-- (summed over the track's genres). user_recent_skip_rate = the user's last 5 earlier plays,
-- (skips + 2 × 0.34) / (plays + 2). user_prior_sessions = the user's sessions that started
-- before this one; user_tenure_days = days since the user's first play.
-- taste_<f> (for danceability, valence, energy, acousticness, speechiness, duration_ms):
-- |f - the mean f of the user's earlier plays heard in full| - |f - that of the skipped ones|;
-- above 0 when the track is nearer to what the user skips (0 until the user has both).
-- genre_overlap = how many of the user's (distinct) favourite genres the artist has;
-- genre_overlap_share = that / the number of favourite genres (0 when the user has none).
-- hour and weekday of the play in UTC; weekday 0 = Monday … 6 = Sunday.
-- taste_gap: the taste formula above, shared with the candidates (04, same connection).
create or replace temp macro taste_gap(x, full_sum, full_count, skipped_sum, skipped_count) as
    cast(
        case
            when full_count = 0 or skipped_count = 0 then 0.0
            else abs(x - full_sum / full_count) - abs(x - skipped_sum / skipped_count)
        end as double
    );

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
        like_before,
        prev_skipped,
        session_prior_skips,
        secs_since_prev_event,
        prev_played_share
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

known_plays_with_track as (
    -- micro_<f>: the feature in millionths, as an integer: the taste sums below add
    -- integers, exactly and in any order, so a re-run gives the same bits (a float sum's
    -- last bits depend on the order DuckDB's threads add in)
    select
        known_plays.*,
        tracks.artist_id,
        tracks.artist_genres,
        tracks.danceability,
        cast(round(tracks.danceability * 1e6) as bigint) as micro_danceability,
        tracks.valence,
        cast(round(tracks.valence * 1e6) as bigint) as micro_valence,
        tracks.energy,
        cast(round(tracks.energy * 1e6) as bigint) as micro_energy,
        tracks.acousticness,
        cast(round(tracks.acousticness * 1e6) as bigint) as micro_acousticness,
        tracks.speechiness,
        cast(round(tracks.speechiness * 1e6) as bigint) as micro_speechiness,
        tracks.duration_ms,
        cast(round(tracks.duration_ms * 1e6) as bigint) as micro_duration_ms
    from known_plays
    inner join tracks using (track_id)
),

history as (
    -- on the narrow rows, before the wide attributes join: window sorts move fewer bytes
    select
        * exclude (
            artist_genres,
            danceability,
            valence,
            energy,
            acousticness,
            speechiness,
            duration_ms,
            micro_danceability,
            micro_valence,
            micro_energy,
            micro_acousticness,
            micro_speechiness,
            micro_duration_ms
        ),
        count(*) over user_before as user_prior_plays,
        coalesce(sum(label_skipped) over user_before, 0) as user_prior_skips,
        count(*) over track_before as track_prior_plays,
        coalesce(sum(label_skipped) over track_before, 0) as track_prior_skips,
        count(*) over artist_before as artist_prior_plays,
        coalesce(sum(label_skipped) over artist_before, 0) as artist_prior_skips,
        count(*) over user_last_5 as user_recent_plays,
        coalesce(sum(label_skipped) over user_last_5, 0) as user_recent_skips,
        min("timestamp") over (partition by user_id) as user_first_play_at,
        coalesce(sum(label_skipped) over user_before, 0) as skipped_count,
        count(*) over user_before - coalesce(sum(label_skipped) over user_before, 0)
            as full_count,
        coalesce(sum(micro_danceability * (1 - label_skipped)) over user_before, 0)
            / 1e6 as full_danceability_sum,
        coalesce(sum(micro_danceability * label_skipped) over user_before, 0)
            / 1e6 as skipped_danceability_sum,
        coalesce(sum(micro_valence * (1 - label_skipped)) over user_before, 0)
            / 1e6 as full_valence_sum,
        coalesce(sum(micro_valence * label_skipped) over user_before, 0)
            / 1e6 as skipped_valence_sum,
        coalesce(sum(micro_energy * (1 - label_skipped)) over user_before, 0)
            / 1e6 as full_energy_sum,
        coalesce(sum(micro_energy * label_skipped) over user_before, 0)
            / 1e6 as skipped_energy_sum,
        coalesce(sum(micro_acousticness * (1 - label_skipped)) over user_before, 0)
            / 1e6 as full_acousticness_sum,
        coalesce(sum(micro_acousticness * label_skipped) over user_before, 0)
            / 1e6 as skipped_acousticness_sum,
        coalesce(sum(micro_speechiness * (1 - label_skipped)) over user_before, 0)
            / 1e6 as full_speechiness_sum,
        coalesce(sum(micro_speechiness * label_skipped) over user_before, 0)
            / 1e6 as skipped_speechiness_sum,
        coalesce(sum(micro_duration_ms * (1 - label_skipped)) over user_before, 0)
            / 1e6 as full_duration_ms_sum,
        coalesce(sum(micro_duration_ms * label_skipped) over user_before, 0)
            / 1e6 as skipped_duration_ms_sum
    from known_plays_with_track
    window
        user_before as (
            partition by user_id order by "timestamp"
            range between unbounded preceding and interval 1 microsecond preceding
        ),
        track_before as (
            partition by track_id order by "timestamp"
            range between unbounded preceding and interval 1 microsecond preceding
        ),
        artist_before as (
            partition by artist_id order by "timestamp"
            range between unbounded preceding and interval 1 microsecond preceding
        ),
        -- rows, not time: plays of one user at one instant are in different sessions, rare
        user_last_5 as (
            partition by user_id order by "timestamp", session_id, position_in_session
            rows between 5 preceding and 1 preceding
        )
),

user_genre_plays as (
    select session_id, position_in_session, user_id, "timestamp", label_skipped, genre
    from known_plays_with_track, unnest(artist_genres) as g(genre)
),

user_genre_history as (
    -- per play: the user's earlier plays in each of the track's genres, summed over them
    select
        session_id,
        position_in_session,
        sum(prior_plays) as user_genre_prior_plays,
        sum(prior_skips) as user_genre_prior_skips
    from (
        select
            session_id,
            position_in_session,
            count(*) over user_genre_before as prior_plays,
            coalesce(sum(label_skipped) over user_genre_before, 0) as prior_skips
        from user_genre_plays
        window user_genre_before as (
            partition by user_id, genre order by "timestamp"
            range between unbounded preceding and interval 1 microsecond preceding
        )
    )
    group by all
),

sessions as (
    select
        user_id,
        session_id,
        count(*) over (
            partition by user_id order by min("timestamp"), session_id
            rows between unbounded preceding and 1 preceding
        ) as user_prior_sessions
    from known_plays
    group by user_id, session_id
),

with_attributes as (
    select
        history.* exclude (artist_id),
        coalesce(user_genre_history.user_genre_prior_plays, 0) as user_genre_prior_plays,
        coalesce(user_genre_history.user_genre_prior_skips, 0) as user_genre_prior_skips,
        sessions.user_prior_sessions,
        users.favourite_genres,
        users.premium,
        tracks.* exclude (track_id)
    from history
    inner join users on history.user_id = users.user_id
    inner join tracks on history.track_id = tracks.track_id
    inner join sessions on history.session_id = sessions.session_id
    left join user_genre_history
        on history.session_id = user_genre_history.session_id
        and history.position_in_session = user_genre_history.position_in_session
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
        cast(prev_skipped as integer) as prev_skipped,
        cast(like_before as integer) as like_before,
        cast(session_prior_skips as bigint) as session_prior_skips,
        cast(secs_since_prev_event as double) as secs_since_prev_event,
        cast(prev_played_share as double) as prev_played_share,
        cast((artist_prior_skips + 5 * 0.34) / (artist_prior_plays + 5.0) as double)
            as artist_prior_skip_rate,
        cast((user_genre_prior_skips + 5 * 0.34) / (user_genre_prior_plays + 5.0) as double)
            as user_genre_prior_skip_rate,
        cast((user_recent_skips + 2 * 0.34) / (user_recent_plays + 2.0) as double)
            as user_recent_skip_rate,
        cast(user_prior_sessions as bigint) as user_prior_sessions,
        cast(epoch("timestamp" - user_first_play_at) / 86400.0 as double) as user_tenure_days,
        taste_gap(
            danceability, full_danceability_sum, full_count, skipped_danceability_sum, skipped_count
        )
            as taste_danceability,
        taste_gap(valence, full_valence_sum, full_count, skipped_valence_sum, skipped_count)
            as taste_valence,
        taste_gap(energy, full_energy_sum, full_count, skipped_energy_sum, skipped_count)
            as taste_energy,
        taste_gap(
            acousticness, full_acousticness_sum, full_count, skipped_acousticness_sum, skipped_count
        )
            as taste_acousticness,
        taste_gap(
            speechiness, full_speechiness_sum, full_count, skipped_speechiness_sum, skipped_count
        )
            as taste_speechiness,
        taste_gap(
            duration_ms, full_duration_ms_sum, full_count, skipped_duration_ms_sum, skipped_count
        )
            as taste_duration_ms
    from with_attributes
)

select * from final
