{#- dbt's `unique`, reading only what can break it since the last passing build
    (macros/verified.sql): the ids of the rows staged since, counted over the whole model.
    Without a watermark it is exactly `unique`. -#}
{% test unique_since_verified(model, column_name) %}
select {{ column_name }} as unique_field, count(*) as n_records
from {{ model }}
where {{ column_name }} is not null
  and {{ column_name }} in (
      select {{ column_name }} from {{ model }} where {{ rows_since_verified(model) }}
  )
group by {{ column_name }}
having count(*) > 1
{% endtest %}
