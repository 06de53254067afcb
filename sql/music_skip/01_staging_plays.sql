-- staging.music_skip_plays: every PLAY event with its label and its place in the session.
-- Grain: one row per PLAY. Keys: session_id × position_in_session (unique, not null) and
-- session_id × timestamp × track_id (unique). user_id and track_id may be null here (the
-- features keep only plays of a known user and track).
--
-- The label (README of the pozytywka data): a play is skipped when a SKIP event for the same
-- track follows it in the same session before the next PLAY. How events are ordered:
--   * by timestamp; on a tie, SKIP, LIKE and events of unknown type first, then ADVERTISEMENT
--     and BUY_PREMIUM, then PLAY. A SKIP stamped with the same instant as a PLAY ends the play
--     before it (in the v1 delivery nearly every SKIP shares its timestamp with the next PLAY
--     or ad, and never names that PLAY's track), so it labels the previous play, not the new
--     one; a SKIP before the first PLAY labels nothing.
--   * Two PLAYs at the same instant are ordered by track_id (arbitrary but repeatable).
--   * A SKIP without a track matches no play; a SKIP of another track than the current play's
--     labels nothing; an event of unknown type (event_type null) is neither a PLAY nor a SKIP.
--   * A PLAY without a track still counts as a play: it ends the previous play's window and
--     takes a position, and its label is 0 (no SKIP can name its track).
-- Context, all from before the play starts: position_in_session (1-based among PLAYs),
-- ad_before (an ADVERTISEMENT since the previous PLAY, or since the session's start for the
-- first one), like_before (a LIKE since the previous PLAY: the listener liked the track
-- before this one), prev_skipped (label of the session's previous play; 0 for the first),
-- session_prior_skips (skips among the session's earlier plays), secs_since_prev_event
-- (seconds since the session's previous event of any type; -1 for its first event),
-- prev_played_share (seconds from the previous PLAY to this one over the previous track's
-- duration, capped at 2: near 1 when it was heard in full; -1 for the first play or when the
-- previous track is unknown).
create or replace table staging.music_skip_plays as
with events as (
    select * from staging.pozytywka_events
),

ordered as (
    -- play_no = PLAYs so far in the session, this event included: the events after the k-th
    -- PLAY and before the next one carry play_no = k; those before the first PLAY carry 0.
    select
        session_id,
        "timestamp",
        event_type,
        track_id,
        user_id,
        ds,
        count(*) filter (where event_type = 'PLAY') over (
            partition by session_id
            order by
                "timestamp",
                case event_type when 'PLAY' then 2 when 'ADVERTISEMENT' then 1
                    when 'BUY_PREMIUM' then 1 else 0 end,
                event_type,
                track_id
            rows between unbounded preceding and current row
        ) as play_no
    from events
),

plays as (
    select
        session_id,
        play_no as position_in_session,
        "timestamp",
        user_id,
        track_id,
        ds
    from ordered
    where event_type = 'PLAY'
),

skips as (
    select distinct session_id, play_no as position_in_session, track_id
    from ordered
    where event_type = 'SKIP' and track_id is not null and play_no > 0
),

ads as (
    -- an ad after the k-th PLAY is "before" the (k+1)-th
    select distinct session_id, play_no + 1 as position_in_session
    from ordered
    where event_type = 'ADVERTISEMENT'
),

likes as (
    select distinct session_id, play_no + 1 as position_in_session
    from ordered
    where event_type = 'LIKE' and play_no > 0
),

previous_event as (
    -- the latest event of the session strictly before each PLAY's instant (a window, not a
    -- self-join: sessions of hundreds of events stay linear)
    select session_id, position_in_session, prev_event_at
    from (
        select
            session_id,
            event_type,
            play_no as position_in_session,
            max("timestamp") over (
                partition by session_id order by "timestamp"
                range between unbounded preceding and interval 1 microsecond preceding
            ) as prev_event_at
        from ordered
    )
    where event_type = 'PLAY'
),

durations as (
    select track_id as prev_track_id, duration_ms as prev_duration_ms
    from staging.pozytywka_tracks
    where duration_ms > 0
),

labelled as (
    select
        plays.*,
        case when skips.track_id is not null then 1 else 0 end as label_skipped,
        case when ads.session_id is not null then 1 else 0 end as ad_before,
        case when likes.session_id is not null then 1 else 0 end as like_before,
        previous_event.prev_event_at
    from plays
    left join skips using (session_id, position_in_session, track_id)
    left join ads using (session_id, position_in_session)
    left join likes using (session_id, position_in_session)
    left join previous_event using (session_id, position_in_session)
),

with_previous as (
    select
        *,
        lag(label_skipped) over in_session as prev_label,
        lag("timestamp") over in_session as prev_play_at,
        lag(track_id) over in_session as prev_track_id,
        coalesce(sum(label_skipped) over session_before, 0) as session_prior_skips
    from labelled
    window
        in_session as (partition by session_id order by position_in_session),
        session_before as (
            partition by session_id order by position_in_session
            rows between unbounded preceding and 1 preceding
        )
),

final as (
    select
        session_id,
        position_in_session,
        "timestamp",
        user_id,
        track_id,
        label_skipped,
        ad_before,
        like_before,
        coalesce(prev_label, 0) as prev_skipped,
        cast(session_prior_skips as bigint) as session_prior_skips,
        coalesce(epoch("timestamp" - prev_event_at), -1.0) as secs_since_prev_event,
        case
            -- least() skips nulls: without this, no previous play would read as capped (2)
            when prev_play_at is null or prev_duration_ms is null then -1.0
            else least(epoch("timestamp" - prev_play_at) * 1000.0 / prev_duration_ms, 2.0)
        end as prev_played_share,
        ds
    from with_previous
    left join durations using (prev_track_id)
)

select * from final
