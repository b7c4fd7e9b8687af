-- One row per customer that exists on as_of: identity, every measure of domain.md §1 and the
-- inputs the Python classifiers need (lifecycle, BG/NBD, credit, relationship; see
-- docs/interfaces.md). Each fact was aggregated once per customer upstream; here they are joined.
-- Prospects get 0 counts and sums and null buyer-only fields (domain.md §0); likewise a
-- customer without billed orders has billed_* = 0 and null collection_ratio / max_paid_days.
-- Grain: customer_id. Consumers: crm.segments, crm.lifecycle, crm.churn, BI.
select
    customers.customer_id,
    customers.name,
    customers.customer_type,
    customers.industry,
    customers.region,
    customers.province,
    customers.city,
    customers.owner_rep_id,
    customers.email,
    customers.phone,
    customers.source_channel,
    customers.is_key_account_flag,
    customers.created_date,
    {{ as_of_date() }} as as_of,

    orders.first_order_date,
    orders.last_order_date,
    coalesce(orders.orders_total, 0) as orders_total,
    coalesce(orders.orders_90d, 0) as orders_90d,
    coalesce(orders.orders_365d, 0) as orders_365d,
    cast(coalesce(orders.revenue_total, 0) as decimal(18, 2)) as revenue_total,
    cast(coalesce(orders.revenue_90d, 0) as decimal(18, 2)) as revenue_90d,
    cast(coalesce(orders.revenue_365d, 0) as decimal(18, 2)) as revenue_365d,
    -- exact, rounded half-up to the cent: DECIMAL / BIGINT is a DOUBLE in DuckDB, which would
    -- round half-cents from a binary approximation (821.345 → 821.34)
    cast(
        cast((cast(orders.revenue_total * 100 as bigint) * 2 + orders.orders_total)
            // (2 * orders.orders_total) as decimal(18, 0)) * 0.01
        as decimal(18, 2)
    ) as avg_order_value,
    {{ days_since('orders.last_order_date') }} as recency_days,
    {{ days_since('orders.first_order_date') }} as tenure_days,
    coalesce(cadence.purchase_days, 0) as purchase_days,
    cadence.median_gap_days,
    coalesce(orders.orders_prior_year, 0) as orders_prior_year,
    cast(coalesce(orders.revenue_prior_year, 0) as decimal(18, 2)) as revenue_prior_year,
    cast(orders.discounted_orders_365d as double)
        / nullif(orders.orders_365d, 0) as discount_order_share_365d,

    coalesce(interactions.interactions_90d, 0) as interactions_90d,
    coalesce(interactions.inbound_90d, 0) as inbound_90d,
    coalesce(interactions.outbound_90d, 0) as outbound_90d,
    coalesce(interactions.complaints_90d, 0) as complaints_90d,
    interactions.avg_satisfaction_90d,
    interactions.latest_nps,
    interactions.last_outbound_date,

    cadence.prev_order_date,
    cadence.last_gap_days,
    cadence.median_gap_before_last_days,
    cadence.purchase_days - 1 as bgnbd_x,
    orders.last_order_date - orders.first_order_date as bgnbd_t_x,
    {{ days_since('orders.first_order_date') }} as bgnbd_T,

    coalesce(credit.billed_orders, 0) as billed_orders,
    cast(coalesce(credit.billed_amount, 0) as decimal(18, 2)) as billed_amount,
    cast(coalesce(credit.collected_amount, 0) as decimal(18, 2)) as collected_amount,
    credit.collection_ratio,
    credit.max_paid_days,

    coalesce(interactions.outbound_visits_365d, 0) as outbound_visits_365d,
    coalesce(interactions.outbound_quarters_365d, 0) as outbound_quarters_365d,
    coalesce(interactions.followed_up_orders_365d, 0) as followed_up_orders_365d,
    coalesce(interactions.inbound_365d, 0) as inbound_365d,
    {{ days_since('interactions.last_outbound_date') }} as last_outbound_days
from {{ ref('int_customers_enriched') }} as customers
left join {{ ref('int_customer_orders_summarized') }} as orders
    on orders.customer_id = customers.customer_id
left join {{ ref('int_customer_cadence_summarized') }} as cadence
    on cadence.customer_id = customers.customer_id
left join {{ ref('int_customer_credit_summarized') }} as credit
    on credit.customer_id = customers.customer_id
left join {{ ref('int_customer_interactions_summarized') }} as interactions
    on interactions.customer_id = customers.customer_id
