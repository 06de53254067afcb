-- staging.music_skip_track_attributes: what the model knows about a track before anyone plays
-- it: the catalogue's columns, imputed, and the genres of its artist. Shared by the play
-- features (03) and the candidate features (04) so that both impute the same way.
-- Grain: one row per track of the catalogue. Key: track_id (unique, not null).
-- Imputation (never null afterwards): numbers missing from the catalogue -> the catalogue's
-- median; key -> -1 ("no key detected", the catalogue's own convention); explicit -> 0;
-- an artist missing from the artist snapshot -> artist_genres [] (so genre overlap 0).
create or replace table staging.music_skip_track_attributes as
with tracks as (
    select * from staging.pozytywka_tracks
),

artists as (
    select artist_id, genres from staging.pozytywka_artists
),

medians as (
    -- one row: a cross join with it below adds columns, never rows
    select
        median(popularity) as popularity,
        median(duration_ms) as duration_ms,
        median(release_year) as release_year,
        median(danceability) as danceability,
        median(energy) as energy,
        median(loudness) as loudness,
        median(speechiness) as speechiness,
        median(acousticness) as acousticness,
        median(instrumentalness) as instrumentalness,
        median(liveness) as liveness,
        median(valence) as valence,
        median(tempo) as tempo
    from tracks
),

final as (
    select
        tracks.track_id,
        tracks.artist_id,
        coalesce(artists.genres, []::varchar[]) as artist_genres,
        cast(coalesce(tracks.popularity, round(medians.popularity)) as integer) as popularity,
        cast(coalesce(tracks.duration_ms, round(medians.duration_ms)) as integer) as duration_ms,
        cast(coalesce(tracks.explicit, 0) as integer) as explicit,
        cast(coalesce(tracks.release_year, round(medians.release_year)) as integer)
            as release_year,
        cast(coalesce(tracks.key, -1) as integer) as key,
        coalesce(tracks.danceability, medians.danceability) as danceability,
        coalesce(tracks.energy, medians.energy) as energy,
        coalesce(tracks.loudness, medians.loudness) as loudness,
        coalesce(tracks.speechiness, medians.speechiness) as speechiness,
        coalesce(tracks.acousticness, medians.acousticness) as acousticness,
        coalesce(tracks.instrumentalness, medians.instrumentalness) as instrumentalness,
        coalesce(tracks.liveness, medians.liveness) as liveness,
        coalesce(tracks.valence, medians.valence) as valence,
        coalesce(tracks.tempo, medians.tempo) as tempo
    from tracks
    left join artists on tracks.artist_id = artists.artist_id
    cross join medians
)

select * from final
