-- features.livestream_gaps: how complete each room's export is, day by day (the gap report).
-- Grain: one row per room and delivered day up to $ds. Key: room_id × day (unique, not null).
-- Source: features.livestream_minutes (the grid; tomorrow left out).
-- Definitions: live_minutes: minutes inside a session; delivered_minutes: those the export
-- holds; missing_minutes: live minutes it lacks (their y is NULL, their input filled);
-- longest_gap_minutes: the longest run of missing minutes inside a session;
-- sessions: how many times the room went live that day.
create or replace table features.livestream_gaps as
with minutes as (
    select room_id, ts, day, live, observed, imputed
    from features.livestream_minutes
    where not is_future
),

runs as (
    select
        room_id,
        day,
        imputed,
        live,
        ts,
        row_number() over (partition by room_id order by ts)
        - row_number() over (partition by room_id, imputed order by ts) as run_id,
        live and not coalesce(lag(live) over (partition by room_id order by ts), false)
            as starts_session
    from minutes
),

missing_runs as (
    select room_id, day, run_id, count(*) as minutes
    from runs
    where imputed
    group by room_id, day, run_id
),

final as (
    select
        r.room_id,
        r.day,
        count(*) filter (where r.live)::integer as live_minutes,
        count(*) filter (where r.live and not r.imputed)::integer as delivered_minutes,
        count(*) filter (where r.imputed)::integer as missing_minutes,
        coalesce(max(m.minutes), 0)::integer as longest_gap_minutes,
        count(*) filter (where r.starts_session)::integer as sessions
    from runs r
    left join missing_runs m on r.room_id = m.room_id and r.day = m.day and r.run_id = m.run_id
    group by r.room_id, r.day
)

select * from final
order by room_id, day
