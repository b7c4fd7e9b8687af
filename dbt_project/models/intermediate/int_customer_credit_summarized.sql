-- Credit measures of domain.md §3.4 per customer over its billed orders:
-- collection_ratio = sum(collected) / sum(amount) (1 when nothing was owed), max_paid_days.
-- Grain: customer_id (customers with a billed order). Consumer: customer_profile.
select
    customer_id,
    count(*) as billed_orders,
    sum(amount) as billed_amount,
    sum(collected_amount) as collected_amount,
    case
        when sum(amount) = 0 then 1.0
        else cast(sum(collected_amount) as double) / cast(sum(amount) as double)
    end as collection_ratio,
    max(paid_days) as max_paid_days
from {{ ref('int_orders_billed') }}
group by customer_id
