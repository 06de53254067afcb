-- marts.ab_assignments: which model serves each user today.
-- Grain: one row per user with scores for $ds. Key: (ds, user_id).
-- The arm comes from a stable hash of the user id (md5, not DuckDB's hash(), which may change
-- between versions), so a user stays in the same arm night after night. The arm's slot
-- (mlp_<arm>) is served by the model the gate chose for it (temp table serving: slot,
-- model_name, model_version): its champion, or on a degraded night the run's fallback.
create or replace temp table publish_ab_assignments as
with scored_users as (
    select distinct user_id from read_parquet($scores_path)
),

arms as (
    select
        user_id,
        case when ('0x' || left(md5('music_skip-ab-v1:' || user_id::varchar), 8))::bigint % 2 = 0
            then 'simple' else 'advanced' end as arm
    from scored_users
),

final as (
    select
        $ds::date as ds,
        arms.user_id,
        arms.arm,
        serving.model_name,
        serving.model_version
    from arms
    inner join serving on serving.slot = 'mlp_' || arms.arm
)

select * from final
