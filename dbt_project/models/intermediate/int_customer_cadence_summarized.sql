{%- set min_dates = var('crm')['profile']['median_gap_min_purchase_days'] -%}
-- Buying rhythm per customer from its purchase dates (domain.md §1 and the lifecycle inputs of
-- §2): purchase_days, the median gap (linear interpolation of the two middle gaps when even),
-- the last two purchase dates and the median gap of the dates before the last one (won_back).
-- A median needs at least median_gap_min_purchase_days dates, else null.
-- Grain: customer_id (buyers only). Consumer: customer_profile.
select
    customer_id,
    count(*) as purchase_days,
    case
        when count(*) >= {{ min_dates }}
            then quantile_cont(cast(gap_days as double), 0.5)
    end as median_gap_days,
    max(purchase_date) filter (where recency_rank = 2) as prev_order_date,
    max(gap_days) filter (where recency_rank = 1) as last_gap_days,
    case
        when count(*) - 1 >= {{ min_dates }}
            then quantile_cont(cast(gap_days as double), 0.5) filter (where recency_rank > 1)
    end as median_gap_before_last_days
from {{ ref('int_purchase_dates_collapsed') }}
group by customer_id
