-- staging.pozytywka_tracks: the track catalogue, renamed and cast.
-- Grain: one row per track. Key: track_id (unique, not null); artist_id -> staging artists
-- (not enforced: the v1 catalogue names artists that the artist delivery lacks).
-- Source: raw.pozytywka_tracks (a snapshot) minus its quarantined rows.
-- Cleaning: release_year from release_date written YYYY, YYYY-MM or YYYY-MM-DD (null for
-- anything else); empty ids become null; when an id repeats, the newest delivery's first
-- line wins.
create or replace table staging.pozytywka_tracks as
with source as (
    select *
    from raw.pozytywka_tracks
    anti join quarantine.pozytywka_tracks using (ds, _source_file, _line)
),

renamed as (
    select
        nullif(trim(id), '') as track_id,
        name as track_name,
        nullif(trim(id_artist), '') as artist_id,
        popularity,
        duration_ms,
        explicit,
        release_date,
        case
            when regexp_full_match(trim(release_date), '\d{4}(-\d{2}(-\d{2})?)?')
                then cast(left(trim(release_date), 4) as integer)
        end as release_year,
        key,
        danceability,
        energy,
        loudness,
        speechiness,
        acousticness,
        instrumentalness,
        liveness,
        valence,
        tempo,
        ds,
        _source_file,
        _line
    from source
),

final as (
    select * exclude (ds, _source_file, _line)
    from renamed
    where track_id is not null
    qualify row_number() over (
        partition by track_id order by ds desc, _source_file, _line
    ) = 1
)

select * from final
