{#- domain.md §3.8: the trimmed source region when given; otherwise the region whose province name
    prefixes the province (so 省/市/自治区/壮族自治区 suffixes match); otherwise the unknown label.
    Longer province names are tried first so that a name never loses to a shorter prefix of it. -#}
{% macro derive_region(region_column, province_column) -%}
    {%- set crm = var('crm') -%}
    {%- set prefixes = [] -%}
    {%- for region, provinces in crm['regions'].items() -%}
        {%- for province in provinces -%}
            {%- do prefixes.append({'province': province, 'region': region, 'length': province | length}) -%}
        {%- endfor -%}
    {%- endfor -%}
    case
        when nullif(trim({{ region_column }}), '') is not null then trim({{ region_column }})
        {%- for prefix in prefixes | sort(attribute='length', reverse=true) %}
        when starts_with(trim({{ province_column }}), {{ sql_string(prefix['province']) }})
            then {{ sql_string(prefix['region']) }}
        {%- endfor %}
        else {{ sql_string(crm['unknown_label']) }}
    end
{%- endmacro %}

{#- industry: trimmed, the unknown label when empty (domain.md §3.8). -#}
{% macro trimmed_or_unknown(column) -%}
    coalesce(nullif(trim({{ column }}), ''), {{ sql_string(var('crm')['unknown_label']) }})
{%- endmacro %}

{% macro sql_string(value) -%}
    '{{ value | replace("'", "''") }}'
{%- endmacro %}

{#- `column in (...)` from a list var; an empty list matches nothing instead of breaking SQL. -#}
{% macro sql_in_list(column, values) -%}
    {%- if values | length == 0 -%}
        false
    {%- else -%}
        {{ column }} in (
            {%- for value in values -%}
            {{ sql_string(value) }}{{ ", " if not loop.last }}
            {%- endfor -%}
        )
    {%- endif -%}
{%- endmacro %}
