{{ config(materialized='view') }}
-- A view: its one consumer (customer_profile) reads it once, and as a table it rewrote 1M
-- customers with their text columns every day (~2 s at 1M customers). Its tests hold by
-- construction (a filter of stg_crm__customers, region and industry defaulted): tagged
-- `structural`; the profile's own tests check the same columns daily.
-- Customers that exist on as_of (created on or before it, domain.md §0), with region derived
-- from the province and industry defaulted (§3.8). Grain: customer_id. Consumer: customer_profile.
select
    customer_id,
    name,
    customer_type,
    {{ trimmed_or_unknown('industry') }} as industry,
    {{ derive_region('region', 'province') }} as region,
    province,
    city,
    owner_rep_id,
    email,
    phone,
    source_channel,
    coalesce(is_key_account, false) as is_key_account_flag,
    created_date
from {{ ref('stg_crm__customers') }}
where created_date <= {{ as_of_date() }}
