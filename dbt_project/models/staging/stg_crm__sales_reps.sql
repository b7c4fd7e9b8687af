-- Current version of each sales rep (latest load wins). Grain: rep_id.
with current_versions as (
    select *
    from {{ source('raw', 'sales_reps') }}
    qualify row_number() over (partition by rep_id order by _load_seq desc) = 1
)

select
    rep_id,
    name,
    email,
    manager_email,
    team,
    active
from current_versions
