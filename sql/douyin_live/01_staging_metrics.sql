-- staging.douyin_live_metrics: every live minute of every room delivered up to $ds, once.
-- Grain: one row per room and minute. Key: room_id × ts (unique, not null).
-- Source: raw.douyin_live_metrics partitions with ds <= $ds, minus their quarantined rows
-- (minutes after their delivery day, negative counts, traffic dicts that do not parse, the
-- second copy of a minute within a delivery).
-- Cleaning:
--   * ts: date_time cut to its minute (the export writes :00 seconds; a stray second would
--     otherwise make a minute of its own);
--   * the two dict columns are flattened into one column per traffic channel (the channel
--     names are Chinese in the export, English here); a channel a dict lacks is 0;
--   * a minute delivered again by a later delivery (exports overlap: a delivery holds the
--     room's minutes since its last one, sometimes more): the newest delivery wins, then the
--     last file and line;
--   * rows validation quarantines for their values are left out here too (negative
--     WATCH_UCNT, minutes after the delivery day), so a night staged without validation
--     cannot pass them on.
create or replace table staging.douyin_live_metrics as
with source as (
    select *
    from raw.douyin_live_metrics
    anti join quarantine.douyin_live_metrics using (ds, _source_file, _line)
    where ds <= $ds
),

-- The value of one channel in a dict literal such as {'直播推荐': 8, '搜索': 0}.
renamed as (
    select
        room_id,
        date_trunc('minute', date_time) as ts,
        watch_ucnt,
        online_user_cnt as online_users,
        leave_ucnt,
        comment_cnt,
        incr_fans_cnt as incr_fans,
        fans_club_ucnt as fans_club,
        pay_order_gmv,
        pay_cnt,
        pay_ucnt,
        uv_value,
        coalesce(try_cast(regexp_extract(natural_flow_trend_index, '''全部自然流量''\s*:\s*(-?[0-9.]+)', 1) as double), 0) as natural_total,
        coalesce(try_cast(regexp_extract(natural_flow_trend_index, '''短视频引流''\s*:\s*(-?[0-9.]+)', 1) as double), 0) as nat_short_video,
        coalesce(try_cast(regexp_extract(natural_flow_trend_index, '''抖音商城推荐''\s*:\s*(-?[0-9.]+)', 1) as double), 0) as nat_mall_recommend,
        coalesce(try_cast(regexp_extract(natural_flow_trend_index, '''直播推荐''\s*:\s*(-?[0-9.]+)', 1) as double), 0) as nat_live_recommend,
        coalesce(try_cast(regexp_extract(natural_flow_trend_index, '''搜索''\s*:\s*(-?[0-9.]+)', 1) as double), 0) as nat_search,
        coalesce(try_cast(regexp_extract(natural_flow_trend_index, '''个人主页&店铺&橱窗''\s*:\s*(-?[0-9.]+)', 1) as double), 0) as nat_profile_shop,
        coalesce(try_cast(regexp_extract(natural_flow_trend_index, '''其他''\s*:\s*(-?[0-9.]+)', 1) as double), 0) as nat_other,
        coalesce(try_cast(regexp_extract(natural_flow_trend_index, '''头条西瓜''\s*:\s*(-?[0-9.]+)', 1) as double), 0) as nat_toutiao_xigua,
        coalesce(try_cast(regexp_extract(natural_flow_trend_index, '''活动页''\s*:\s*(-?[0-9.]+)', 1) as double), 0) as nat_activity_page,
        coalesce(try_cast(regexp_extract(natural_flow_trend_index, '''关注''\s*:\s*(-?[0-9.]+)', 1) as double), 0) as nat_follow,
        coalesce(try_cast(regexp_extract(pay_flow_trend_index, '''全部付费流量''\s*:\s*(-?[0-9.]+)', 1) as double), 0) as paid_total,
        coalesce(try_cast(regexp_extract(pay_flow_trend_index, '''千川PC版''\s*:\s*(-?[0-9.]+)', 1) as double), 0) as paid_qianchuan_pc,
        coalesce(try_cast(regexp_extract(pay_flow_trend_index, '''其他广告''\s*:\s*(-?[0-9.]+)', 1) as double), 0) as paid_other_ads,
        coalesce(try_cast(regexp_extract(pay_flow_trend_index, '''千川品牌广告''\s*:\s*(-?[0-9.]+)', 1) as double), 0) as paid_qianchuan_brand,
        coalesce(try_cast(regexp_extract(pay_flow_trend_index, '''品牌广告''\s*:\s*(-?[0-9.]+)', 1) as double), 0) as paid_brand_ads,
        coalesce(try_cast(regexp_extract(pay_flow_trend_index, '''小店随心推''\s*:\s*(-?[0-9.]+)', 1) as double), 0) as paid_suixintui,
        ds,
        _source_file,
        _line
    from source
    where room_id is not null and date_time is not null
        and watch_ucnt >= 0 and date_time < ds + 1
),

final as (
    select * exclude (_source_file, _line)
    from renamed
    qualify row_number() over (
        partition by room_id, ts order by ds desc, _source_file desc, _line desc
    ) = 1
)

select * from final
