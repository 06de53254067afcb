-- staging.pozytywka_track_storage: where each track is kept today and what it costs.
-- Grain: one row per track. Key: track_id (unique, not null).
-- Source: raw.pozytywka_track_storage (a snapshot) minus its quarantined rows.
-- Cleaning: storage_class trimmed and upper-cased ("" -> null); when a track repeats, the
-- newest delivery's first line wins.
create or replace table staging.pozytywka_track_storage as
with source as (
    select *
    from raw.pozytywka_track_storage
    anti join quarantine.pozytywka_track_storage using (ds, _source_file, _line)
),

renamed as (
    select
        nullif(trim(track_id), '') as track_id,
        nullif(upper(trim(storage_class)), '') as storage_class,
        daily_cost,
        ds,
        _source_file,
        _line
    from source
),

final as (
    select track_id, storage_class, daily_cost
    from renamed
    where track_id is not null
    qualify row_number() over (
        partition by track_id order by ds desc, _source_file, _line
    ) = 1
)

select * from final
