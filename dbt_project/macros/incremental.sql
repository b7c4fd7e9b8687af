{#- Rows of a raw (append-only, full-history) table that can change a current-versions model:
    on a full build every row; on an incremental build only the rows newer than the version the
    model holds for their id. Why per id and not a global `_load_seq` watermark: an orphan that
    finds its parent is moved into the raw table with its ORIGINAL (older) _load_seq, so a
    watermark would miss it; late-arriving rows (old event dates) need no time window because the
    filter is on load order, not event time. A change of var('timezone') re-reads everything,
    since the models store local dates. (Unit tests have no `this`: they
    take the full path.) Consumers: the staging models of the large facts. -#}
{% macro versions_to_merge(source_relation, id_column) -%}
    select source_rows.*
    from {{ source_relation }} as source_rows
    {%- if this is not none and is_incremental() %}
    left join {{ this }} as held
        on held.{{ id_column }} = source_rows.{{ id_column }}
    where held.{{ id_column }} is null
        or source_rows._load_seq > held.load_seq
        or held.local_timezone <> {{ sql_string(var('timezone')) }}
    {%- endif %}
{%- endmacro %}
