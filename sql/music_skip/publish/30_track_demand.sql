-- Expected demand per track for the cache plan (input to the budgeted storage assignment).
-- Grain: one row per track of the catalogue snapshot. Key: track_id.
-- Expected plays tomorrow = the track's average daily plays over the last 30 days; the share
-- played in full comes from today's skip scores of the track, else its recent skip rate, else
-- the overall recent skip rate.
create or replace temp table publish_track_demand as
with tracks as (
    select * from features.music_skip_tracks
),

scored as (
    select track_id, avg(p_skip) as p_skip_scored
    from publish_skip_scores
    group by track_id
),

overall as (
    select coalesce(sum(plays_30d - full_plays_30d) / nullif(sum(plays_30d), 0), 0.34) as rate
    from tracks
),

final as (
    select
        tracks.track_id,
        tracks.storage_class,
        tracks.daily_cost,
        tracks.duration_ms,
        tracks.plays_30d / 30.0 as expected_plays,
        1 - coalesce(scored.p_skip_scored, tracks.skip_rate_30d, overall.rate) as p_full
    from tracks
    cross join overall
    left join scored on tracks.track_id = scored.track_id
)

select * from final
