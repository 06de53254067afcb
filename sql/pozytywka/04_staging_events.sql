-- staging.pozytywka_events: the listening events of every delivery up to $ds, once each.
-- Grain: one row per event. Key: session_id × timestamp × event_type × track_id (unique; the
-- last two may be null, and a null counts as one value). session_id and timestamp not null.
-- Source: raw.pozytywka_sessions partitions with ds <= $ds, minus their quarantined rows.
-- Cleaning:
--   * an event delivered more than once (same key in several deliveries, or twice in one) is
--     kept once: the newest delivery's first line wins;
--   * track_id "" (ads and premium purchases carry no track) -> null; event_type trimmed and
--     upper-cased, "" -> null (an event of unknown type stays, and takes no part in labels);
--   * user_id null -> the user of the other events of its session (a session has one user);
--   * an event without session_id or timestamp cannot be placed in a session: left out
--     (validation counts such rows).
create or replace table staging.pozytywka_events as
with source as (
    select *
    from raw.pozytywka_sessions
    anti join quarantine.pozytywka_sessions using (ds, _source_file, _line)
    where ds <= $ds
),

renamed as (
    select
        session_id,
        "timestamp",
        nullif(upper(trim(event_type)), '') as event_type,
        nullif(trim(track_id), '') as track_id,
        user_id,
        ds,
        _source_file,
        _line
    from source
    where session_id is not null and "timestamp" is not null
),

deduplicated as (
    select *
    from renamed
    qualify row_number() over (
        partition by session_id, "timestamp", event_type, track_id
        order by ds desc, _source_file, _line
    ) = 1
),

session_users as (
    select session_id, max(user_id) as session_user_id
    from deduplicated
    group by session_id
),

final as (
    select
        deduplicated.session_id,
        deduplicated."timestamp",
        deduplicated.event_type,
        deduplicated.track_id,
        coalesce(deduplicated.user_id, session_users.session_user_id) as user_id,
        deduplicated.ds,
        deduplicated._source_file,
        deduplicated._line
    from deduplicated
    inner join session_users on deduplicated.session_id = session_users.session_id
)

select * from final
