{{ config(
    materialized='incremental',
    unique_key='payment_id',
    incremental_strategy='delete+insert',
    on_schema_change='fail',
) }}

-- Incremental (10M+ rows at 1M customers): each run merges only the ids with a newer loaded
-- version (macros/incremental.sql), so reruns skip the full dedupe; `dbt build --full-refresh`
-- gives the same rows.
-- Current version of each payment, with its local date. Grain: payment_id.
with current_versions as (
    select *
    from ({{ versions_to_merge(source('raw', 'payments'), 'payment_id') }}) as candidates
    qualify row_number() over (partition by payment_id order by _load_seq desc) = 1
)

select
    payment_id,
    order_id,
    paid_at,
    {{ local_date('paid_at') }} as paid_date,
    amount as paid_amount,
    _load_seq as load_seq,
    {{ sql_string(var('timezone')) }} as local_timezone
from current_versions
