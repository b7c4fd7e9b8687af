-- Current version of each order (a later status replaces the earlier one), with its local date.
-- Grain: order_id.
with current_versions as (
    select *
    from {{ source('raw', 'orders') }}
    qualify row_number() over (partition by order_id order by _load_seq desc) = 1
)

select
    order_id,
    customer_id,
    ordered_at,
    {{ local_date('ordered_at') }} as order_date,
    amount,
    coalesce(discount_amount, 0) as discount_amount,
    currency,
    status,
    channel,
    product_category
from current_versions
