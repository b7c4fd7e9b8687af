{#- Date helpers of domain.md §0: every timestamp becomes its local date in var('timezone'), and
    "days ago" is as_of minus that date in whole days. -#}

{% macro as_of_date() -%}
    cast({{ sql_string(var('as_of')) }} as date)
{%- endmacro %}

{#- Raw timestamps are naive UTC: mark them as UTC, then read the wall clock in the business's
    time zone (DuckDB's built-in ICU), independent of the session TimeZone setting. -#}
{% macro local_date(utc_timestamp) -%}
    cast(timezone({{ sql_string(var('timezone')) }}, {{ utc_timestamp }} at time zone 'UTC') as date)
{%- endmacro %}

{% macro days_since(local_date_column) -%}
    ({{ as_of_date() }} - {{ local_date_column }})
{%- endmacro %}
