{%- set profile = var('crm')['profile'] -%}
{%- set relationship = var('crm')['relationship'] -%}
{%- set bounds = relationship['quarter_bounds_days'] -%}
-- Interaction measures of domain.md §1 and the relationship inputs of §3.5 per customer, in one
-- pass over interactions (conditional aggregation), plus the completed orders of the window that
-- were followed up: for each order the first outbound interaction on or after its date (ASOF
-- join, no per-customer range join), counted when it came within accountable_follow_up_days.
-- Grain: customer_id (customers with an interaction). Consumer: customer_profile.
-- `not materialized`: the CTE has two readers, and DuckDB would otherwise write all 30M rows
-- (every column) to a temporary table first: 30 s instead of 14 s at 1M customers.
with interactions as not materialized (
    select
        customer_id,
        occurred_at,
        occurred_date,
        channel,
        direction,
        kind,
        satisfaction,
        nps,
        load_seq,
        days_ago,
        case
            {%- for lower in bounds[:-1] %}
            when days_ago >= {{ lower }} and days_ago < {{ bounds[loop.index] }} then {{ loop.index }}
            {%- endfor %}
        end as relationship_quarter
    from {{ ref('int_interactions_matched') }}
),

-- Only outbound dates inside the window can follow up a window order (the follow-up is on or
-- after the order's date, which is inside the window): 1/3 of all outbound rows at 1M
-- customers. Not made distinct: the ASOF join finds one nearest date per order whether a date
-- repeats or not, and the distinct (7.6M rows → 7.3M at 1M customers) cost ~2 s of CPU.
outbound_dates as (
    select customer_id, occurred_date
    from interactions
    where direction = 'outbound'
      and days_ago < {{ relationship['window_days'] }}
),

window_orders as (
    select order_id, customer_id, order_date
    from {{ ref('int_orders_completed') }}
    where days_ago < {{ relationship['window_days'] }}
),

followed_up_orders as (
    select
        window_orders.customer_id,
        count(*) as followed_up_orders_365d
    from window_orders
    asof inner join outbound_dates
        on window_orders.customer_id = outbound_dates.customer_id
        and window_orders.order_date <= outbound_dates.occurred_date
    where outbound_dates.occurred_date - window_orders.order_date
        <= {{ relationship['accountable_follow_up_days'] }}
    group by window_orders.customer_id
),

interaction_measures as (
    select
        customer_id,
        count(*) filter (where days_ago < {{ profile['recent_days'] }}) as interactions_90d,
        count(*) filter (
            where days_ago < {{ profile['recent_days'] }} and direction = 'inbound'
        ) as inbound_90d,
        count(*) filter (
            where days_ago < {{ profile['recent_days'] }} and direction = 'outbound'
        ) as outbound_90d,
        count(*) filter (
            where days_ago < {{ profile['recent_days'] }} and kind = 'complaint'
        ) as complaints_90d,
        avg(satisfaction) filter (
            where days_ago < {{ profile['recent_days'] }}
        ) as avg_satisfaction_90d,
        -- most recent interaction with an NPS: later timestamp, then the later-loaded row
        -- (load_seq is unique: one raw row each, the order every staging model relies on)
        arg_max(nps, (occurred_at, load_seq)) filter (
            where nps is not null
        ) as latest_nps,
        max(occurred_date) filter (where direction = 'outbound') as last_outbound_date,
        count(*) filter (
            where direction = 'outbound'
              and days_ago < {{ relationship['window_days'] }}
              and {{ sql_in_list('channel', relationship['partner_channels']) }}
        ) as outbound_visits_365d,
        -- distinct quarters as bits of one integer (crm/rules.py allows at most 64): the same
        -- count as count(distinct relationship_quarter), without a hash set per customer (−3 s at 1M)
        coalesce(cast(bit_count(bit_or(1::ubigint << (relationship_quarter - 1)) filter (
            where direction = 'outbound' and relationship_quarter is not null
        )) as bigint), 0) as outbound_quarters_365d,
        count(*) filter (
            where direction = 'inbound' and days_ago < {{ relationship['window_days'] }}
        ) as inbound_365d
    from interactions
    group by customer_id
)

select
    interaction_measures.*,
    coalesce(followed_up_orders.followed_up_orders_365d, 0) as followed_up_orders_365d
from interaction_measures
left join followed_up_orders
    on followed_up_orders.customer_id = interaction_measures.customer_id
