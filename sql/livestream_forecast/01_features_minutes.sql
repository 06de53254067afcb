-- features.livestream_minutes: every room's minute grid, from its history to tomorrow.
-- Grain: one row per room and minute, every minute of every day from the room's first
-- delivered day (at most 62 days before $ds: nine weeks, enough for weekly lags
-- and a week of backtest) through $ds + 1 ("tomorrow", the day
-- forecast). Key: room_id × ts (unique, not null).
-- Source: staging.douyin_live_metrics (one row per delivered live minute), ref.calendar (CN).
-- Definitions:
--   * a session: delivered minutes no more than 30 minutes apart; the room is `live` from a
--     session's first minute to its last. Outside sessions the room is off air: y = 0;
--   * y: WATCH_UCNT (viewers entering in the minute); NULL on a live minute the export lacks
--     (a gap) and on tomorrow; y_filled: the gaps filled with the last delivered value (model
--     inputs only, never a target); exogenous counts: 0 off air and in gaps, NULL tomorrow;
--   * the calendar is known ahead, tomorrow included: minute of day, weekday (0 = Monday),
--     China's days off and working weekends (the holidays library) and shopping festivals;
--     part_of_day 0 night (0-6h), 1 morning (6-11h), 2 noon (11-14h), 3 afternoon (14-18h),
--     4 evening (18-24h);
--   * lags and trailing statistics of y_filled within the room: y_lag_k is k minutes
--     earlier; y_mean_60 / y_std_60 / y_mean_1440 summarise the 60 / 1440 minutes before.
create or replace table features.livestream_minutes as
with delivered as (
    select *
    from staging.douyin_live_metrics
    where ts >= ($ds - 400)::timestamp
),

rooms as (
    select
        room_id,
        greatest(min(ts)::date, $ds - 62) as first_day
    from delivered
    group by room_id
    -- a room with nothing in the last 62 days is not forecast (listed in livestream_gaps)
    having max(ts)::date > $ds - 62
),

stepped as (
    select
        room_id,
        ts,
        case
            when lag(ts) over (partition by room_id order by ts) >= ts - interval 30 minute
                then 0
            else 1
        end as starts_session
    from delivered
),

numbered as (
    select room_id, ts, sum(starts_session) over (partition by room_id order by ts) as session
    from stepped
),

sessions as (
    select room_id, session, min(ts) as started, max(ts) as ended
    from numbered
    group by room_id, session
),

grid as (
    select room_id, unnest(generate_series(
        first_day::timestamp, ($ds + 2)::timestamp - interval 1 minute, interval 1 minute
    )) as ts
    from rooms
),

calendar as (
    select
        day,
        bool_or(kind = 'holiday') as is_holiday,
        bool_or(kind = 'workday_shift') as is_workday_shift,
        bool_or(kind = 'festival') as is_festival
    from ref.calendar
    where country = 'CN'
    group by day
),

joined as (
    select
        g.room_id,
        g.ts,
        g.ts::date as day,
        g.ts::date > $ds as is_future,
        case when g.ts::date > $ds then null else s.room_id is not null end as live,
        d.room_id is not null as observed,
        d.* exclude (room_id, ts, ds)
    from grid g
    left join sessions s
        on g.room_id = s.room_id and g.ts between s.started and s.ended
    left join delivered d
        on g.room_id = d.room_id and g.ts = d.ts
),

valued as (
    select
        * exclude (watch_ucnt),
        live and not observed as imputed,
        case
            when is_future then null
            when observed then watch_ucnt
            when not live then 0.0
        end as y
    from joined
),

filled as (
    select
        * exclude (y_raw_last),
        case when not is_future then coalesce(y, y_raw_last) end as y_filled
    from (
        select
            *,
            last_value(y ignore nulls) over (
                partition by room_id order by ts rows between unbounded preceding and current row
            ) as y_raw_last
        from valued
    )
),

final as (
    select
        f.room_id,
        f.ts,
        f.day,
        f.is_future,
        f.live,
        f.observed,
        f.imputed,
        f.y,
        coalesce(f.y_filled, case when not f.is_future then 0.0 end) as y_filled,
        (hour(f.ts) * 60 + minute(f.ts))::integer as minute_of_day,
        hour(f.ts)::integer as hour,
        (isodow(f.ts) - 1)::integer as weekday,
        (isodow(f.ts) >= 6 and not coalesce(c.is_workday_shift, false))::integer as is_weekend,
        coalesce(c.is_holiday, false)::integer as is_holiday,
        coalesce(c.is_workday_shift, false)::integer as is_workday_shift,
        coalesce(c.is_festival, false)::integer as is_festival,
        case
            when hour(f.ts) < 6 then 0
            when hour(f.ts) < 11 then 1
            when hour(f.ts) < 14 then 2
            when hour(f.ts) < 18 then 3
            else 4
        end as part_of_day,
        case when not f.is_future then coalesce(f.natural_total, 0) end as natural_total,
        case when not f.is_future then coalesce(f.paid_total, 0) end as paid_total,
        case when not f.is_future then coalesce(f.nat_short_video, 0) end as nat_short_video,
        case when not f.is_future then coalesce(f.nat_mall_recommend, 0) end as nat_mall_recommend,
        case when not f.is_future then coalesce(f.nat_live_recommend, 0) end as nat_live_recommend,
        case when not f.is_future then coalesce(f.nat_search, 0) end as nat_search,
        case when not f.is_future then coalesce(f.nat_profile_shop, 0) end as nat_profile_shop,
        case when not f.is_future then coalesce(f.nat_other, 0) end as nat_other,
        case when not f.is_future then coalesce(f.nat_toutiao_xigua, 0) end as nat_toutiao_xigua,
        case when not f.is_future then coalesce(f.nat_activity_page, 0) end as nat_activity_page,
        case when not f.is_future then coalesce(f.nat_follow, 0) end as nat_follow,
        case when not f.is_future then coalesce(f.paid_qianchuan_pc, 0) end as paid_qianchuan_pc,
        case when not f.is_future then coalesce(f.paid_other_ads, 0) end as paid_other_ads,
        case when not f.is_future then coalesce(f.paid_qianchuan_brand, 0) end
            as paid_qianchuan_brand,
        case when not f.is_future then coalesce(f.paid_brand_ads, 0) end as paid_brand_ads,
        case when not f.is_future then coalesce(f.paid_suixintui, 0) end as paid_suixintui,
        case when not f.is_future then coalesce(f.online_users, 0) end as online_users,
        case when not f.is_future then coalesce(f.leave_ucnt, 0) end as leave_ucnt,
        case when not f.is_future then coalesce(f.comment_cnt, 0) end as comment_cnt,
        case when not f.is_future then coalesce(f.incr_fans, 0) end as incr_fans,
        case when not f.is_future then coalesce(f.fans_club, 0) end as fans_club,
        case when not f.is_future then coalesce(f.pay_order_gmv, 0) end as pay_order_gmv,
        case when not f.is_future then coalesce(f.pay_cnt, 0) end as pay_cnt,
        case when not f.is_future then coalesce(f.pay_ucnt, 0) end as pay_ucnt,
        case when not f.is_future then coalesce(f.uv_value, 0) end as uv_value
    from filled f
    left join calendar c on f.day = c.day
),

lagged as (
    select
        *,
        lag(y_filled, 1) over w as y_lag_1,
        lag(y_filled, 5) over w as y_lag_5,
        lag(y_filled, 10) over w as y_lag_10,
        lag(y_filled, 60) over w as y_lag_60,
        lag(y_filled, 1440) over w as y_lag_1440,
        lag(y_filled, 10080) over w as y_lag_10080,
        avg(y_filled) over (w rows between 60 preceding and 1 preceding) as y_mean_60,
        stddev_samp(y_filled) over (w rows between 60 preceding and 1 preceding) as y_std_60,
        avg(y_filled) over (w rows between 1440 preceding and 1 preceding) as y_mean_1440
    from final
    window w as (partition by room_id order by ts)
)

select * from lagged
order by room_id, ts
