-- marts.skip_scores: the probability that the user skips the track, from the user's arm's model.
-- Grain: one row per user × candidate track for $ds. Key: (ds, user_id, track_id).
create or replace temp table publish_skip_scores as
with scores as (
    select * from read_parquet($scores_path)
),

final as (
    select
        $ds::date as ds,
        scores.user_id,
        scores.track_id,
        scores.p_skip,
        scores.model_version,
        publish_ab_assignments.arm
    from scores
    inner join publish_ab_assignments
        on scores.user_id = publish_ab_assignments.user_id
        and scores.model_name = publish_ab_assignments.model_name
        and scores.model_version = publish_ab_assignments.model_version
)

select * from final
