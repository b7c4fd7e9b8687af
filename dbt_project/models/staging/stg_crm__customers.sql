-- Current version of each CRM customer (latest load wins), creation time as a local date.
-- Grain: customer_id.
with current_versions as (
    select *
    from {{ source('raw', 'customers') }}
    qualify row_number() over (partition by customer_id order by _load_seq desc) = 1
)

select
    customer_id,
    name,
    customer_type,
    industry,
    region,
    province,
    city,
    employees,
    email,
    phone,
    owner_rep_id,
    source_channel,
    is_key_account,
    created_at,
    {{ local_date('created_at') }} as created_date
from current_versions
