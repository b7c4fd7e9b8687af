{#- dbt's `unique`, reading only what can break it since the last passing build
    (macros/verified.sql): the ids of the rows staged since, counted over the whole model.
    Without a watermark (first build, forced run, changed code) it is dbt's `unique` itself: the
    filter `id in (<every id>)` would add a semi-join whose hash table holds every id again
    (+0.5-0.7 GiB and +1.3 s on 30M staged interactions, measured alone). -#}
{% test unique_since_verified(model, column_name) %}
select {{ column_name }} as unique_field, count(*) as n_records
from {{ model }}
where {{ column_name }} is not null
{%- if verified_watermark(model) is not none %}
  and {{ column_name }} in (
      select {{ column_name }} from {{ model }} where {{ rows_since_verified(model) }}
  )
{%- endif %}
group by {{ column_name }}
having count(*) > 1
{% endtest %}
