-- marts.ab_report: realised skip rates per A/B arm, once the sessions after a scoring day arrive.
-- Grain: one row per scoring day (the 7 days before $ds whose next day has plays) × arm.
-- Key: (ds, score_ds, arm).
create or replace temp table publish_ab_report as
with assignments as (
    select ds as score_ds, user_id, arm, model_version
    from marts.ab_assignments
    where ds between $ds::date - 7 and $ds::date - 1
),

next_day_plays as (
    select
        assignments.score_ds,
        assignments.arm,
        assignments.model_version,
        plays.user_id,
        plays.track_id,
        plays.label_skipped
    from staging.music_skip_plays as plays
    inner join assignments
        on plays.user_id = assignments.user_id
        and plays.timestamp::date = assignments.score_ds + 1
),

with_scores as (
    select next_day_plays.*, scores.p_skip
    from next_day_plays
    left join marts.skip_scores as scores
        on scores.ds = next_day_plays.score_ds
        and scores.user_id = next_day_plays.user_id
        and scores.track_id = next_day_plays.track_id
),

final as (
    select
        $ds::date as ds,
        score_ds,
        arm,
        any_value(model_version) as model_version,
        count(distinct user_id) as users,
        count(*) as plays,
        sum(label_skipped) as skips,
        avg(label_skipped) as realised_skip_rate,
        count(p_skip) as scored_plays,
        avg(p_skip) as predicted_skip_rate
    from with_scores
    group by score_ds, arm
)

select * from final
