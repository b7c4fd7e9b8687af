{#- Date helpers of domain.md §0: every timestamp becomes its local date in var('timezone'), and
    "days ago" is as_of minus that date in whole days. -#}

{#- as_of is a run value (macros/run_vars.sql). While dbt parses it is not needed (no SQL runs), so
    a fixed date stands in; a run without one stops with the way to give it, instead of
    computing for a date nobody chose. -#}
{% macro as_of_date() -%}
    {%- set as_of = run_var('as_of') -%}
    {%- if as_of is none -%}
        {%- if execute -%}
            {{- exceptions.raise_compiler_error(
                "as_of is not set: pass --vars '{\"as_of\": \"YYYY-MM-DD\", ...}' to dbt "
                ~ "(a Dagster run sets it through CRM_DBT_RUN_VARS)"
            ) -}}
        {%- endif -%}
        {%- set as_of = '1970-01-01' -%}
    {%- endif -%}
    cast({{ sql_string(as_of) }} as date)
{%- endmacro %}

{#- Raw timestamps are naive UTC: mark them as UTC, then read the wall clock in the business's
    time zone (DuckDB's built-in ICU), independent of the session TimeZone setting. -#}
{% macro local_date(utc_timestamp) -%}
    cast(timezone({{ sql_string(var('timezone')) }}, {{ utc_timestamp }} at time zone 'UTC') as date)
{%- endmacro %}

{% macro days_since(local_date_column) -%}
    ({{ as_of_date() }} - {{ local_date_column }})
{%- endmacro %}
