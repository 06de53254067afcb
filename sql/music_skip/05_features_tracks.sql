-- features.music_skip_tracks: the catalogue with its storage and its last 30 days of plays,
-- for the cache plan.
-- Grain: one row per track of the catalogue snapshot. Key: track_id (unique, not null).
-- Plays: every PLAY of the track (any user, known or not) from $ds - 29 days 00:00 to the end
-- of $ds; full_plays_30d = those not skipped; skip_rate_30d = skipped / plays, null when the
-- track was not played. storage_class is null for a track without a storage row; daily_cost
-- null -> the median cost of its storage class. artist_id and genre (the artist's first genre,
-- null when the artist has none) are what the sequence model embeds for each played track.
create or replace table features.music_skip_tracks as
with tracks as (
    select * from staging.pozytywka_tracks
),

storage as (
    select * from staging.pozytywka_track_storage
),

attributes as (
    select track_id, artist_id, artist_genres[1] as genre
    from staging.music_skip_track_attributes
),

recent_plays as (
    select track_id, label_skipped
    from staging.music_skip_plays
    where
        track_id is not null
        and "timestamp" >= cast($ds as date) - 29
        and "timestamp" < cast($ds as date) + 1
),

track_plays as (
    select
        track_id,
        count(*) as plays_30d,
        count(*) filter (where label_skipped = 0) as full_plays_30d,
        avg(label_skipped) as skip_rate_30d
    from recent_plays
    group by track_id
),

storage_costs as (
    select
        track_id,
        storage_class,
        coalesce(daily_cost, median(daily_cost) over (partition by storage_class)) as daily_cost
    from storage
),

final as (
    select
        tracks.track_id,
        attributes.artist_id,
        attributes.genre,
        storage_costs.storage_class,
        storage_costs.daily_cost,
        tracks.duration_ms,
        tracks.popularity,
        coalesce(track_plays.plays_30d, 0) as plays_30d,
        coalesce(track_plays.full_plays_30d, 0) as full_plays_30d,
        cast(track_plays.skip_rate_30d as double) as skip_rate_30d
    from tracks
    left join attributes on tracks.track_id = attributes.track_id
    left join storage_costs on tracks.track_id = storage_costs.track_id
    left join track_plays on tracks.track_id = track_plays.track_id
)

select * from final
