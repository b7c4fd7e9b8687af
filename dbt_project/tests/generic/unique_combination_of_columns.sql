{#- A compound key holds: no two rows share these columns' values (dbt_utils' test, without the
    package download, which is not possible offline). -#}
{% test unique_combination_of_columns(model, columns) %}
select {{ columns | join(', ') }}, count(*) as rows_with_key
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}
