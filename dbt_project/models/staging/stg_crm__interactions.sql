{{ config(
    materialized='incremental',
    unique_key='interaction_id',
    incremental_strategy='delete+insert',
    on_schema_change='fail',
) }}

-- Incremental (10M+ rows at 1M customers): each run merges only the ids with a newer loaded
-- version (macros/incremental.sql), so reruns skip the full dedupe; `dbt build --full-refresh`
-- gives the same rows.
-- Current version of each interaction, attributed to the customer ingest resolved (by id, email
-- or phone), with its local date. `load_seq` is kept: it breaks latest_nps ties ("the later row").
-- Grain: interaction_id.
with current_versions as (
    select *
    from ({{ versions_to_merge(source('raw', 'interactions'), 'interaction_id') }}) as candidates
    qualify row_number() over (partition by interaction_id order by _load_seq desc) = 1
)

select
    interaction_id,
    resolved_customer_id as customer_id,
    match_method,
    occurred_at,
    {{ local_date('occurred_at') }} as occurred_date,
    channel,
    direction,
    kind,
    rep_id,
    satisfaction,
    nps,
    _load_seq as load_seq,
    {{ sql_string(var('timezone')) }} as local_timezone
from current_versions
