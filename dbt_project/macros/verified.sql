{#- Rows of an incremental staging model that its data tests must read this run.

    Why: a whole-table test over 30M staged interactions costs ~10 s a run although a new day
    changes 40k rows. The staging models hold one row per id with the raw `_load_seq` of that
    version (`load_seq`), and raw is append-only, so after a build whose tests all passed, only
    the rows staged since can break uniqueness or a reference: rows with `load_seq` above the
    verified watermark, without one, or released from the orphan table (they keep their older
    `_load_seq`; meta.released_rows lists them — `_load_seq` comes from one sequence, so no
    entity filter is needed).

    The watermark comes from Dagster (the run value `verified_since` = `{"<model>": N}`, see
    macros/run_vars.sql), which records it after a build whose tests passed and drops it
    whenever the whole table must be read again (quality/verified.py: first build, changed dbt
    code, deleted or back-dated raw rows, forced run). Without it — `dbt build` by hand, a
    model not listed — the tests read every row. Consumers: tests/generic/*_since_verified.sql. -#}
{% macro verified_watermark(model) -%}
    {{- return(run_var('verified_since', {}).get(model.identifier)) -}}
{%- endmacro %}

{% macro rows_since_verified(model, alias=none) -%}
    {%- set since = verified_watermark(model) -%}
    {%- set column = (alias ~ '.' if alias else '') ~ 'load_seq' -%}
    {%- if since is none -%}
        true
    {%- else -%}
        ({{ column }} > {{ since | int }} or {{ column }} is null or {{ column }} in (
            select load_seq from {{ model.database }}.meta.released_rows
        ))
    {%- endif -%}
{%- endmacro %}
