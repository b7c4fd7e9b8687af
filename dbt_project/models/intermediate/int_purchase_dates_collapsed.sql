-- A view: it has one consumer, so writing its rows to disk would only cost time.
{{ config(materialized='view') }}

-- Purchase dates (domain.md §0): several completed orders on one local day are one purchase
-- date, which cadence and the BG/NBD inputs need. Each date carries the gap to the previous one
-- and its rank from the most recent (1 = last purchase date).
-- Grain: customer_id x purchase_date. Consumer: int_customer_cadence_summarized.
with purchase_dates as (
    select
        customer_id,
        order_date as purchase_date,
        count(*) as orders_on_date
    from {{ ref('int_orders_completed') }}
    group by customer_id, order_date
)

select
    customer_id,
    purchase_date,
    orders_on_date,
    purchase_date - lag(purchase_date) over (
        partition by customer_id order by purchase_date
    ) as gap_days,
    -- the rank from the end, counted on the same ascending order as the gap (dates are unique
    -- per customer): one sort of 8.5M rows instead of two, 5.1 -> 4.0 s for cadence at 1M
    count(*) over (partition by customer_id)
        - row_number() over (partition by customer_id order by purchase_date) + 1 as recency_rank
from purchase_dates
