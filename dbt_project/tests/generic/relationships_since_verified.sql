{#- dbt's `relationships`, on the rows staged since the last passing build (macros/verified.sql):
    parents never leave the warehouse, so older rows keep their parent. Without a watermark it
    is exactly `relationships`. -#}
{% test relationships_since_verified(model, column_name, to, field) %}
select child.{{ column_name }} as from_field
from {{ model }} as child
where child.{{ column_name }} is not null
  and {{ rows_since_verified(model, 'child') }}
  and not exists (
      select 1 from {{ to }} as parent where parent.{{ field }} = child.{{ column_name }}
  )
{% endtest %}
