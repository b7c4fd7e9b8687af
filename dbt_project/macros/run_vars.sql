{#- Values that change every run — `as_of` and the verified watermarks (`verified_since`) — and
    where dbt finds them: in `--vars` when given there (a run by hand, the unit tests' overrides),
    otherwise, while executing, in the JSON object of the environment variable CRM_DBT_RUN_VARS,
    which the Dagster dbt step sets for its dbt process (assets/dbt.py).

    Why not `--vars` from Dagster as well: dbt parses the whole project again whenever any var
    differs from the previous invocation's (~2.7 s of every daily run), and as_of differs every
    day. Read only while executing (`execute` is false while dbt parses), a run value leaves the
    parsed project as it was, so dbt's partial parsing reuses it; the SQL is still compiled with
    the run's literal values. The vars that do belong to the parse (`timezone`, `crm` rules) stay
    in `--vars`: when they change, dbt parses again, as it should. -#}
{% macro run_var(name, default=none) -%}
    {%- set given = var(name, none) -%}
    {%- if given is not none -%}
        {{- return(given) -}}
    {%- endif -%}
    {%- if execute -%}
        {%- set run_vars = fromjson(env_var('CRM_DBT_RUN_VARS', '{}')) -%}
        {%- if run_vars is not mapping -%}
            {{- exceptions.raise_compiler_error(
                'CRM_DBT_RUN_VARS must hold a JSON object, got: ' ~ env_var('CRM_DBT_RUN_VARS')
            ) -}}
        {%- endif -%}
        {%- if run_vars.get(name) is not none -%}
            {{- return(run_vars[name]) -}}
        {%- endif -%}
    {%- endif -%}
    {{- return(default) -}}
{%- endmacro %}
