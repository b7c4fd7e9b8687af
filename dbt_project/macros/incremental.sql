{#- Rows of a raw (append-only, full-history) table that can change a current-versions model:
    on a full build every row; on an incremental build only the rows newer than the version the
    model holds for their id.

    Which rows are looked at: those loaded after the newest version the model holds (`_load_seq`
    above its watermark; raw tables are appended in load order, so DuckDB skips the older row
    groups) plus the orphans released since (meta.released_rows, written by ingest). Why the
    second list: an orphan that finds its parent is moved into the raw table with its ORIGINAL
    (older) _load_seq, so a watermark alone would miss it. Each of those rows is then compared
    with the version held for its id, so a released row older than the held version changes
    nothing. Late-arriving rows (old event dates) need no time window because the filter is on
    load order, not event time.

    A change of var('timezone') re-reads everything (the models store local dates), and so does
    a model without a watermark: both take the per-id path over every raw row. (Unit tests have
    no `this`: they take the full path.) Consumers: the staging models of the large facts. -#}
{% macro versions_to_merge(source_relation, id_column) -%}
    {%- if this is not none and is_incremental() -%}
        {%- set timezone = sql_string(var('timezone')) -%}
        {%- set watermark = none -%}
        {%- if execute -%}
            {%- set state = run_query(
                "select max(load_seq), coalesce(bool_or(local_timezone <> " ~ timezone ~ "), false)"
                ~ " from " ~ this
            ) -%}
            {%- if not state.columns[1][0] -%}
                {%- set watermark = state.columns[0][0] -%}
            {%- endif -%}
        {%- endif %}
    {%- if watermark is not none %}
    with candidate_rows as (
        select * from {{ source_relation }} where _load_seq > {{ watermark }}
        union all
        select * from {{ source_relation }}
        where _load_seq <= {{ watermark }}
          and _load_seq in (
              select load_seq from {{ this.database }}.meta.released_rows
              where entity = {{ sql_string(source_relation.identifier) }}
          )
    )
    select candidate_rows.*
    from candidate_rows
    left join (
        select {{ id_column }}, load_seq from {{ this }}
        where {{ id_column }} in (select {{ id_column }} from candidate_rows)
    ) as held
        on held.{{ id_column }} = candidate_rows.{{ id_column }}
    where held.{{ id_column }} is null
        or candidate_rows._load_seq > held.load_seq
    {%- else %}
    select source_rows.*
    from {{ source_relation }} as source_rows
    left join {{ this }} as held
        on held.{{ id_column }} = source_rows.{{ id_column }}
    where held.{{ id_column }} is null
        or source_rows._load_seq > held.load_seq
        or held.local_timezone <> {{ timezone }}
    {%- endif %}
    {%- else %}
    select source_rows.*
    from {{ source_relation }} as source_rows
    {%- endif %}
{%- endmacro %}
