-- The floor: every measure of marts.customer_profile (domain.md §1 and the classifier inputs of
-- docs/interfaces.md) in one hand-written DuckDB statement over the raw tables, without dbt,
-- Dagster or Python. `make bench` times it on the warehouse a full run left behind and reports
-- pipeline / floor: what the layers cost on top of the irreducible SQL work.
-- {{as_of}} is replaced by the benchmark's as_of; the time zone is the default Asia/Shanghai.
create or replace temp table floor_profile as
with
current_customers as (
    select * from raw.customers
    qualify row_number() over (partition by customer_id order by _load_seq desc) = 1
),
customers as (
    select customer_id, name, customer_type, industry, region, province, city, owner_rep_id
    from current_customers
    where cast(timezone('Asia/Shanghai', created_at at time zone 'UTC') as date)
        <= date '{{as_of}}'
),
orders as (
    select
        customer_id,
        amount,
        discount_amount,
        order_date,
        date '{{as_of}}' - order_date as days_ago,
        order_id
    from (
        select *, cast(timezone('Asia/Shanghai', ordered_at at time zone 'UTC') as date) as order_date
        from raw.orders
        qualify row_number() over (partition by order_id order by _load_seq desc) = 1
    )
    where status = 'completed' and order_date <= date '{{as_of}}'
),
order_measures as (
    select
        customer_id,
        min(order_date) as first_order_date,
        max(order_date) as last_order_date,
        count(*) as orders_total,
        count(*) filter (where days_ago < 90) as orders_90d,
        count(*) filter (where days_ago < 365) as orders_365d,
        sum(amount) as revenue_total,
        coalesce(sum(amount) filter (where days_ago < 90), 0) as revenue_90d,
        coalesce(sum(amount) filter (where days_ago < 365), 0) as revenue_365d,
        count(*) filter (where days_ago >= 90 and days_ago < 455) as orders_prior_year,
        coalesce(sum(amount) filter (where days_ago >= 90 and days_ago < 455), 0)
            as revenue_prior_year,
        count(*) filter (where days_ago < 365 and discount_amount > 0) as discounted_365d
    from orders
    group by customer_id
),
purchase_dates as (
    select
        customer_id,
        order_date,
        order_date - lag(order_date) over (partition by customer_id order by order_date) as gap,
        row_number() over (partition by customer_id order by order_date desc) as recency_rank
    from (select distinct customer_id, order_date from orders)
),
cadence as (
    select
        customer_id,
        count(*) as purchase_days,
        case when count(*) >= 3 then quantile_cont(cast(gap as double), 0.5) end
            as median_gap_days,
        max(order_date) filter (where recency_rank = 2) as prev_order_date,
        case when count(*) >= 4
            then quantile_cont(cast(gap as double), 0.5) filter (where recency_rank > 1)
        end as median_gap_before_last_days
    from purchase_dates
    group by customer_id
),
payments as (
    select order_id, paid_at, amount
    from raw.payments
    qualify row_number() over (partition by payment_id order by _load_seq desc) = 1
),
billed as (
    select order_id, customer_id, order_date, amount, days_ago
    from orders
    where days_ago >= 30 and days_ago < 730
),
paid_by_date as (
    select
        p.order_id,
        b.amount as order_amount,
        cast(timezone('Asia/Shanghai', p.paid_at at time zone 'UTC') as date) as paid_date,
        sum(p.amount) as paid
    from payments as p
    join billed as b using (order_id)
    where cast(timezone('Asia/Shanghai', p.paid_at at time zone 'UTC') as date)
        <= date '{{as_of}}'
    group by all
),
settled as (
    select
        order_id,
        max(to_date) as paid_total,
        min(paid_date) filter (where to_date >= order_amount) as settled_date
    from (
        select *, sum(paid) over (partition by order_id order by paid_date) as to_date
        from paid_by_date
    )
    group by order_id
),
credit as (
    select
        b.customer_id,
        count(*) as billed_orders,
        sum(least(b.amount, coalesce(s.paid_total, 0))) / nullif(sum(b.amount), 0)
            as collection_ratio,
        max(case
            when b.amount <= 0 then 0
            when s.settled_date is null then b.days_ago
            else greatest(0, s.settled_date - b.order_date)
        end) as max_paid_days
    from billed as b
    left join settled as s using (order_id)
    group by b.customer_id
),
interactions as (
    select
        resolved_customer_id as customer_id,
        occurred_at,
        occurred_date,
        date '{{as_of}}' - occurred_date as days_ago,
        channel,
        direction,
        kind,
        satisfaction,
        nps,
        _load_seq
    from (
        select *,
            cast(timezone('Asia/Shanghai', occurred_at at time zone 'UTC') as date) as occurred_date
        from raw.interactions
        qualify row_number() over (partition by interaction_id order by _load_seq desc) = 1
    )
    where occurred_date <= date '{{as_of}}'
),
interaction_measures as (
    select
        customer_id,
        count(*) filter (where days_ago < 90) as interactions_90d,
        count(*) filter (where days_ago < 90 and direction = 'inbound') as inbound_90d,
        count(*) filter (where days_ago < 90 and direction = 'outbound') as outbound_90d,
        count(*) filter (where days_ago < 90 and kind = 'complaint') as complaints_90d,
        avg(satisfaction) filter (where days_ago < 90) as avg_satisfaction_90d,
        arg_max(nps, (occurred_at, _load_seq)) filter (where nps is not null) as latest_nps,
        max(occurred_date) filter (where direction = 'outbound') as last_outbound_date,
        count(*) filter (
            where direction = 'outbound' and days_ago < 365 and channel in ('visit', 'meeting')
        ) as outbound_visits_365d,
        count(distinct case
            when days_ago < 90 then 1 when days_ago < 180 then 2
            when days_ago < 270 then 3 when days_ago < 365 then 4
        end) filter (where direction = 'outbound') as outbound_quarters_365d,
        count(*) filter (where direction = 'inbound' and days_ago < 365) as inbound_365d
    from interactions
    group by customer_id
),
outbound_dates as (
    select distinct customer_id, occurred_date from interactions where direction = 'outbound'
),
followed_up as (
    select o.customer_id, count(*) as followed_up_orders_365d
    from (select customer_id, order_date from orders where days_ago < 365) as o
    asof join outbound_dates as d
        on o.customer_id = d.customer_id and o.order_date <= d.occurred_date
    where d.occurred_date - o.order_date <= 14
    group by o.customer_id
)
select
    c.*,
    om.first_order_date,
    om.last_order_date,
    coalesce(om.orders_total, 0) as orders_total,
    coalesce(om.orders_90d, 0) as orders_90d,
    coalesce(om.orders_365d, 0) as orders_365d,
    coalesce(om.revenue_total, 0) as revenue_total,
    coalesce(om.revenue_90d, 0) as revenue_90d,
    coalesce(om.revenue_365d, 0) as revenue_365d,
    om.revenue_total / om.orders_total as avg_order_value,
    date '{{as_of}}' - om.last_order_date as recency_days,
    date '{{as_of}}' - om.first_order_date as tenure_days,
    coalesce(cd.purchase_days, 0) as purchase_days,
    cd.median_gap_days,
    cd.prev_order_date,
    cd.median_gap_before_last_days,
    coalesce(om.orders_prior_year, 0) as orders_prior_year,
    coalesce(om.revenue_prior_year, 0) as revenue_prior_year,
    om.discounted_365d / nullif(om.orders_365d, 0) as discount_order_share_365d,
    cr.billed_orders,
    cr.collection_ratio,
    cr.max_paid_days,
    im.* exclude (customer_id),
    coalesce(fu.followed_up_orders_365d, 0) as followed_up_orders_365d
from customers as c
left join order_measures as om using (customer_id)
left join cadence as cd using (customer_id)
left join credit as cr using (customer_id)
left join interaction_measures as im using (customer_id)
left join followed_up as fu using (customer_id);

select count(*), sum(orders_total), sum(interactions_90d), sum(billed_orders) from floor_profile;
