-- staging.movielens_movies: the movie catalogue, whatever MovieLens layout delivered it.
-- Grain: one row per movie. Key: movie_id (unique, not null).
-- Source: raw.movielens_movies (a snapshot: one delivery) minus its quarantined rows.
-- Cleaning: title trimmed; year from a trailing "(YYYY)" of the title (null when it has
-- none, as for a TV series "(2006–2007)"); genres split on "|" into a list, "(no genres
-- listed)" -> [] (null -> [] too); ds is the snapshot's delivery. When a movie_id repeats,
-- the newest delivery's first line wins.
create or replace table staging.movielens_movies as
with source as (
    select *
    from raw.movielens_movies
    anti join quarantine.movielens_movies using (ds, _source_file, _line)
),

renamed as (
    select
        movie_id,
        trim(title) as title,
        cast(nullif(regexp_extract(trim(title), '\((\d{4})\)$', 1), '') as integer) as year,
        case
            when genres is null or trim(genres) in ('', '(no genres listed)') then []::varchar[]
            else list_filter(string_split(trim(genres), '|'), lambda g: g <> '')
        end as genres,
        ds,
        _source_file,
        _line
    from source
),

final as (
    select movie_id, title, year, genres, ds
    from renamed
    where movie_id is not null
    qualify row_number() over (
        partition by movie_id order by ds desc, _source_file, _line
    ) = 1
)

select * from final
