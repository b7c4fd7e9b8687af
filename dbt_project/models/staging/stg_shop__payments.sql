-- Current version of each payment, with its local date. Grain: payment_id.
with current_versions as (
    select *
    from {{ source('raw', 'payments') }}
    qualify row_number() over (partition by payment_id order by _load_seq desc) = 1
)

select
    payment_id,
    order_id,
    paid_at,
    {{ local_date('paid_at') }} as paid_date,
    amount as paid_amount
from current_versions
