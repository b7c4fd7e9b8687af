"""Source ingestion: readers (CSV/JSONL/Parquet/database frames), aliases and row validation.

Pure Python/pandas, no Dagster: `readers` turns a source into text chunks with canonical column
names, `validate` types them and splits off rejected rows; the loader (`loader.py`) orchestrates
dedupe, orphans and the quality tables.
"""

from crm.ingest.aliases import Aliases, load_aliases
from crm.ingest.errors import AliasesError, SourceError
from crm.ingest.readers import RawChunk, normalise_frame, read_file
from crm.ingest.validate import ValidationContext, validate_chunk

__all__ = [
    "Aliases",
    "AliasesError",
    "RawChunk",
    "SourceError",
    "ValidationContext",
    "load_aliases",
    "normalise_frame",
    "read_file",
    "validate_chunk",
]
