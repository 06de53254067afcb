-- staging.pozytywka_artists: the artist catalogue, renamed and cast.
-- Grain: one row per artist. Key: artist_id (unique, not null).
-- Source: raw.pozytywka_artists (a snapshot: one delivery) minus its quarantined rows.
-- Cleaning: genres become a sorted list of distinct genres, [] when null; the id -1 (the v1
-- delivery's marker for an unknown artist) and empty ids name no artist and are left out
-- (validation counts them); when an id repeats, the newest delivery's first line wins.
create or replace table staging.pozytywka_artists as
with source as (
    select *
    from raw.pozytywka_artists
    anti join quarantine.pozytywka_artists using (ds, _source_file, _line)
),

renamed as (
    select
        trim(id) as artist_id,
        name as artist_name,
        coalesce(list_sort(list_distinct(genres)), []::varchar[]) as genres,
        ds,
        _source_file,
        _line
    from source
),

final as (
    select artist_id, artist_name, genres
    from renamed
    where artist_id is not null and artist_id not in ('', '-1')
    qualify row_number() over (
        partition by artist_id order by ds desc, _source_file, _line
    ) = 1
)

select * from final
