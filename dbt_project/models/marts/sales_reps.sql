-- Current version of each sales rep: who receives churn alerts and who is in cc (domain.md §5).
-- Grain: rep_id. Consumers: crm.alerts routing, BI.
select
    rep_id,
    name,
    email,
    manager_email,
    team,
    active
from {{ ref('stg_crm__sales_reps') }}
