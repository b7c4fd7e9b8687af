-- A view: it has one consumer, so writing its rows to disk would only cost time.
{{ config(materialized='view') }}

-- Interactions matched to a customer (ingest's resolved_customer_id) and dated on or before
-- as_of (domain.md §0), with their age in days.
-- Grain: interaction_id. Consumer: int_customer_interactions_summarized.
select
    interaction_id,
    customer_id,
    occurred_at,
    occurred_date,
    channel,
    direction,
    kind,
    satisfaction,
    nps,
    load_seq,
    {{ days_since('occurred_date') }} as days_ago
from {{ ref('stg_crm__interactions') }}
where occurred_date <= {{ as_of_date() }}
