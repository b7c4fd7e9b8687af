{{ config(
    materialized='incremental',
    unique_key='order_id',
    incremental_strategy='delete+insert',
    on_schema_change='fail',
) }}

-- Incremental (10M orders at 1M customers): each run merges only the ids with a newer loaded
-- version (macros/incremental.sql); `dbt build --full-refresh` gives the same rows.
-- Current version of each order (a later status replaces the earlier one), with its local date.
-- Grain: order_id.
with current_versions as (
    select *
    from ({{ versions_to_merge(source('raw', 'orders'), 'order_id') }}) as candidates
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
    product_category,
    _load_seq as load_seq,
    {{ sql_string(var('timezone')) }} as local_timezone
from current_versions
