-- staging.pozytywka_users: the listeners, renamed and cast; no personal data (name, city and
-- street stay in raw: no model needs them).
-- Grain: one row per user. Key: user_id (unique, not null).
-- Source: raw.pozytywka_users (a snapshot) minus its quarantined rows.
-- Cleaning: favourite_genres become a sorted list of distinct genres, [] when null;
-- premium_user null -> false; when an id repeats, the newest delivery's first line wins.
create or replace table staging.pozytywka_users as
with source as (
    select *
    from raw.pozytywka_users
    anti join quarantine.pozytywka_users using (ds, _source_file, _line)
),

renamed as (
    select
        user_id,
        coalesce(list_sort(list_distinct(favourite_genres)), []::varchar[]) as favourite_genres,
        coalesce(premium_user, false) as premium,
        ds,
        _source_file,
        _line
    from source
),

final as (
    select user_id, favourite_genres, premium
    from renamed
    where user_id is not null
    qualify row_number() over (
        partition by user_id order by ds desc, _source_file, _line
    ) = 1
)

select * from final
