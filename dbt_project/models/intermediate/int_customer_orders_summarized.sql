{%- set profile = var('crm')['profile'] -%}
-- Order measures of domain.md §1 per customer, in one pass over completed orders (conditional
-- aggregation). "Last N days" = 0 <= days_ago < N; prior year = from <= days_ago < to.
-- Grain: customer_id (buyers only). Consumer: customer_profile.
select
    customer_id,
    min(order_date) as first_order_date,
    max(order_date) as last_order_date,
    count(*) as orders_total,
    count(*) filter (where days_ago < {{ profile['recent_days'] }}) as orders_90d,
    count(*) filter (where days_ago < {{ profile['year_days'] }}) as orders_365d,
    sum(amount) as revenue_total,
    coalesce(sum(amount) filter (where days_ago < {{ profile['recent_days'] }}), 0) as revenue_90d,
    coalesce(sum(amount) filter (where days_ago < {{ profile['year_days'] }}), 0) as revenue_365d,
    count(*) filter (
        where days_ago >= {{ profile['prior_year_from_days'] }}
          and days_ago < {{ profile['prior_year_to_days'] }}
    ) as orders_prior_year,
    coalesce(sum(amount) filter (
        where days_ago >= {{ profile['prior_year_from_days'] }}
          and days_ago < {{ profile['prior_year_to_days'] }}
    ), 0) as revenue_prior_year,
    count(*) filter (
        where days_ago < {{ profile['year_days'] }} and discount_amount > 0
    ) as discounted_orders_365d
from {{ ref('int_orders_completed') }}
group by customer_id
