-- Completed orders dated on or before as_of (domain.md §0: cancelled, refunded and pending
-- orders never count; later orders do not count yet), with their age in days.
-- Grain: order_id. Consumers: every order-based measure of the profile.
select
    order_id,
    customer_id,
    order_date,
    amount,
    discount_amount,
    {{ days_since('order_date') }} as days_ago
from {{ ref('stg_shop__orders') }}
where status = 'completed'
  and order_date <= {{ as_of_date() }}
