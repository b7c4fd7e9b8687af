"""Source readers: landing files (CSV, JSONL, Parquet) and database frames → text chunks.

Grain: one chunk of at most `chunk_rows` source rows, with canonical column names (header
aliases applied), values still as text, the 1-based `row_number` and the row as read
(`raw_record`). Rows broken at parse level (field count, NUL bytes, broken JSON lines) come back
in `rejected`; sources that cannot be read as their format at all raise `SourceError`
(contract.md §1). Consumer: `crm.ingest.loader`, which validates each chunk (`validate`).

Why streaming: landing files can be large exports; memory stays bounded by the chunk size.
"""

from __future__ import annotations

import codecs
import csv
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from crm.ingest.aliases import Aliases, HeaderMap, resolve_headers
from crm.ingest.csv_arrow import is_plain_csv, plain_csv_columns
from crm.ingest.errors import SourceError
from crm.schemas import Entity

REJECTED_COLUMNS = ("row_number", "raw_record", "reason", "rule", "column")
NUL = "\x00"
# The csv module refuses fields above 128 KiB by default; a 1 MB note field is legitimate.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


@dataclass
class RawChunk:
    frame: pd.DataFrame  # canonical columns as str/None, row_number (Int64), raw_record (str)
    rejected: pd.DataFrame  # row_number, raw_record, reason, rule, column
    warnings: list[str] = field(default_factory=list)


class _ChunkBuilder:
    """Collects accepted and parse-rejected rows until a chunk is full."""

    def __init__(self, columns: list[str]) -> None:
        self.columns = columns
        self._reset()

    def _reset(self) -> None:
        self.values: dict[str, list[Any]] = {name: [] for name in self.columns}
        self.row_numbers: list[int | None] = []
        self.raw_records: list[str] = []
        self.rejected: list[dict[str, Any]] = []

    def __len__(self) -> int:
        return len(self.row_numbers) + len(self.rejected)

    def add(self, row_number: int | None, values: dict[str, Any], raw_record: str) -> None:
        for name in self.columns:
            self.values[name].append(values.get(name))
        self.row_numbers.append(row_number)
        self.raw_records.append(raw_record)

    def add_columns(
        self, row_numbers: list[int | None], values: dict[str, list[Any]], raw_records: list[str]
    ) -> None:
        """Append many clean rows at once: what `add` does row by row, per column."""
        count = len(row_numbers)
        for name in self.columns:
            column = values.get(name)
            self.values[name].extend(column if column is not None else [None] * count)
        self.row_numbers.extend(row_numbers)
        self.raw_records.extend(raw_records)

    def reject(
        self, row_number: int | None, raw_record: str, reason: str, rule: str, column: str | None
    ) -> None:
        self.rejected.append(
            {
                "row_number": row_number,
                "raw_record": raw_record,
                "reason": reason,
                "rule": rule,
                "column": column,
            }
        )

    def flush(self, warnings: list[str]) -> RawChunk:
        frame = pd.DataFrame({name: self.values[name] for name in self.columns}, dtype=object)
        frame["row_number"] = pd.array(self.row_numbers, dtype="Int64")
        frame["raw_record"] = pd.Series(self.raw_records, dtype=object)
        rejected = pd.DataFrame(self.rejected, columns=list(REJECTED_COLUMNS), dtype=object)
        rejected["row_number"] = rejected["row_number"].astype("Int64")
        chunk = RawChunk(frame=frame, rejected=rejected, warnings=list(warnings))
        self._reset()
        return chunk


# Text batches (all-text Parquet, SQLite through Arrow) hold this many chunks' worth of rows.
# Why: each batch the fast lane types costs a fixed lookup of its possible orphans in the parent
# table, whatever the batch size (~1 s per batch against 10M orders); 5 × 100k rows cut the
# payments load at 1M customers by ~90 s. The memory of a batch stays small (text columns).
TEXT_BATCH_CHUNKS = 5


@dataclass
class TextBatch:
    """Source rows whose every value is text (or null), kept as Arrow columns.

    What the fast lane (`crm.ingest.fastlane`) types without leaving DuckDB; `take` turns the
    rows it cannot vouch for into an ordinary chunk for the exact validator. `names` are the
    source's own column names (unique), `texts` their values, `row_numbers` the 1-based data
    row (files) or the running position (database rows, whose row_number is not shown).
    `raw_records`: each row's record as read (a JSONL line), where raw_record must be that text;
    without it raw_record is built as JSON of the named values, as the row-wise readers do.
    """

    names: list[str]
    texts: list[pa.Array]
    header: HeaderMap
    row_numbers: np.ndarray
    warnings: list[str] = field(default_factory=list)
    raw_records: pa.Array | None = None

    def __len__(self) -> int:
        return len(self.row_numbers)

    def take(self, positions: np.ndarray) -> RawChunk:
        """The rows at `positions` as the row-wise readers would chunk them (NUL → rejected)."""
        index = pa.array(positions, type=pa.int64())
        texts = [text.take(index).to_pylist() for text in self.texts]
        row_numbers = self.row_numbers[positions].tolist()
        raw_records = None if self.raw_records is None else self.raw_records.take(index).to_pylist()
        return _text_chunk(
            self.names, texts, self.header, row_numbers, self.warnings, raw_records=raw_records
        )


def _text_chunk(
    names: list[str],
    texts: list[list[str | None]],
    header: HeaderMap,
    row_numbers: list[int | None],
    warnings: list[str],
    *,
    raw_records: list[str] | None = None,
) -> RawChunk:
    """Text columns (all of one length) → RawChunk: canonical values, raw_record, NUL rows.

    `raw_records`: the rows' records as read, taken as their raw_record (else JSON of `names`)."""
    builder = _ChunkBuilder(header.canonical_columns)
    rows = len(row_numbers)
    named = _named_positions(names, skip_blank=False)
    # a record dict keeps the last of repeated names: values are read through it
    values = {canonical: texts[named[names[pos]]] for pos, canonical in header.positions}
    nul = _nul_rows(list(values.values()), rows)
    if nul.any():
        for i in np.flatnonzero(nul).tolist():
            record = {name: texts[pos][i] for pos, name in enumerate(names)}
            row_values = {canonical: column[i] for canonical, column in values.items()}
            raw = _json_text(record) if raw_records is None else raw_records[i]
            _add_record(builder, row_numbers[i], row_values, raw)
        keep = np.flatnonzero(~nul).tolist()
        texts = [[column[i] for i in keep] for column in texts]
        values = {canonical: [column[i] for i in keep] for canonical, column in values.items()}
        row_numbers = [row_numbers[i] for i in keep]
        if raw_records is not None:
            raw_records = [raw_records[i] for i in keep]
    if row_numbers:
        if raw_records is None:
            raw_records = _json_objects(list(named), [texts[i] for i in named.values()])
        builder.add_columns(row_numbers, values, raw_records)
    return builder.flush(list(warnings))


def _empty_chunk(columns: list[str], warning: str) -> RawChunk:
    return _ChunkBuilder(columns).flush([warning])


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _first_nul_column(values: dict[str, Any]) -> str | None:
    for name, value in values.items():
        if isinstance(value, str) and NUL in value:
            return name
    return None


# --- column-wise chunk assembly --------------------------------------------------------------
# Why: building a chunk row by row (a dict and a json.dumps per row) cost ~60 µs per row, most of
# a 50M-row ingest. The helpers below do the same work per column in Arrow and fall back to the
# row-wise path only for the rare rows that need it (NUL bytes, control characters, odd types).

_CONTROL_CHARS = r"[\x00-\x1f]"  # json.dumps escapes these as \n, \t, \u00XX...


def _as_text_array(values: list[Any] | pa.Array) -> pa.Array:
    if isinstance(values, pa.Array):
        if pa.types.is_dictionary(values.type):
            values = values.dictionary_decode()
        return values.cast(pa.string()) if pa.types.is_large_string(values.type) else values
    return pa.array(values, type=pa.string())


def _json_value_texts(values: list[Any] | pa.Array) -> pa.Array:
    """`json.dumps(value, ensure_ascii=False, default=str)` of every value, as an Arrow array.

    Strings are escaped in Arrow (backslash and quote); values with control characters and
    non-string columns go through json.dumps itself, so the text is byte-identical."""
    if isinstance(values, pa.Array) and pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    is_text = not isinstance(values, pa.Array) or (
        pa.types.is_string(values.type) or pa.types.is_large_string(values.type)
    )
    if not is_text:
        return pa.array([_json_text(v) for v in values.to_pylist()], type=pa.string())
    text = _as_text_array(values)
    escaped = pc.replace_substring(pc.replace_substring(text, "\\", "\\\\"), '"', '\\"')
    quoted = pc.fill_null(pc.binary_join_element_wise('"', escaped, '"', ""), "null")
    special = pc.fill_null(pc.match_substring_regex(text, _CONTROL_CHARS), False)
    if pc.any(special).as_py():
        python = text.to_pylist()
        exact = quoted.to_pylist()
        for i in pc.indices_nonzero(special).to_pylist():
            exact[i] = _json_text(python[i])
        return pa.array(exact, type=pa.string())
    return quoted


def _json_objects(keys: list[str], columns: list[list[Any] | pa.Array]) -> list[str]:
    """`json.dumps(dict(zip(keys, row)), ensure_ascii=False, default=str)` for every row."""
    if not keys:
        return []
    parts: list[Any] = []
    for position, (key, column) in enumerate(zip(keys, columns, strict=True)):
        prefix = ("{" if position == 0 else ", ") + _json_text(key) + ": "
        parts += [prefix, _json_value_texts(column)]
    parts.append("}")
    return pc.binary_join_element_wise(*parts, "").to_pylist()


def _nul_rows(columns: list[list[Any] | pa.Array], rows: int) -> np.ndarray:
    """Rows where any of the given text columns holds a NUL byte."""
    found = np.zeros(rows, dtype=bool)
    for column in columns:
        text = _as_text_array(column)
        if pa.types.is_string(text.type):
            found |= pc.fill_null(pc.match_substring(text, NUL), False).to_numpy(
                zero_copy_only=False
            )
    return found


# --- content sniffing --------------------------------------------------------------------------

SAMPLE_BYTES = 64 * 1024
DECODE_BLOCK_BYTES = 1024 * 1024
UTF8_BOM = b"\xef\xbb\xbf"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
# File signatures that mean "this is not text" even when the extension says so.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (an .xlsx workbook? export it as CSV)"),
    (b"\xd0\xcf\x11\xe0", "an old Excel/Office file (export it as CSV)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"PAR1", "a Parquet file"),
)
# Text has almost no control characters; binary data is full of them.
_CONTROL_BYTES = bytes(b for b in range(32) if b not in (9, 10, 12, 13))
BINARY_CONTROL_SHARE = 0.1


def _looks_binary(sample: bytes) -> str | None:
    """What the sample is when it is clearly not text; None for text (a stray NUL is a row issue)."""
    if not sample:
        return None
    lines = sample.splitlines() or [sample]
    if sum(1 for line in lines if b"\x00" in line) * 2 > len(lines):
        return "binary content (NUL bytes throughout)"
    control = sum(1 for byte in sample if byte in _CONTROL_BYTES)
    if control > BINARY_CONTROL_SHARE * len(sample):
        return "binary content, not text"
    return None


def reject_binary(path: Path, display_name: str) -> None:
    """Raise SourceError for a file whose content is not what its text extension promises."""
    with path.open("rb") as handle:
        sample = handle.read(SAMPLE_BYTES)
    if sample.startswith(UTF16_BOMS):
        raise SourceError(
            f"{display_name}: not decodable as UTF-8, GBK or GB18030 (it is UTF-16 text)"
        )
    for signature, what in _SIGNATURES:
        if sample.startswith(signature):
            raise SourceError(f"{display_name}: binary content ({what}), not {path.suffix} text")
    problem = _looks_binary(sample)
    if problem is not None:
        raise SourceError(f"{display_name}: {problem}")


def _decodes(path: Path, encoding: str) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    with path.open("rb") as handle:
        try:
            while block := handle.read(DECODE_BLOCK_BYTES):
                decoder.decode(block)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return False
    return True


def detect_encoding(path: Path, display_name: str) -> str:
    """UTF-8 BOM → utf-8-sig; strict UTF-8 → utf-8; else strict GB18030 (covers GBK).

    Checked over the whole file in blocks, so a bad byte deep in a large export is found before
    any row is loaded.
    """
    reject_binary(path, display_name)
    with path.open("rb") as handle:
        starts_with_bom = handle.read(len(UTF8_BOM)) == UTF8_BOM
    candidates = ("utf-8-sig",) if starts_with_bom else ("utf-8", "gb18030")
    for encoding in candidates:
        if _decodes(path, encoding):
            return encoding
    raise SourceError(f"{display_name}: not decodable as UTF-8, GBK or GB18030")


_DELIMITERS = (",", "\t", ";")


def guess_delimiter(path: Path, encoding: str) -> str:
    """Comma, unless the header line has none and tabs or semicolons instead."""
    with path.open(encoding=encoding, newline="") as handle:
        first_line = handle.readline()
    counts = {d: first_line.count(d) for d in _DELIMITERS}
    if counts[","]:
        return ","
    best = max(_DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


# --- CSV -------------------------------------------------------------------------------------


def _is_blank(row: list[str]) -> bool:
    return not any(map(str.strip, row))


def _field_count_problem(row: list[str], header: HeaderMap) -> str | None:
    """Too few fields for the named columns, or non-empty fields beyond the header.

    Excel pads rows with empty trailing cells; those are tolerated, values are not.
    """
    if len(row) < header.named_width:
        return f"row has {len(row)} fields, expected {header.named_width}"
    if len(row) > header.width and not _is_blank(row[header.width :]):
        return f"row has {len(row)} fields, expected {header.named_width}"
    return None


def _csv_rows(path: Path, display_name: str, encoding: str, delimiter: str) -> Iterator[list[str]]:
    with path.open(encoding=encoding, newline="") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        try:
            yield from reader
        except csv.Error as exc:
            raise SourceError(
                f"{display_name}: not readable as CSV near data row {reader.line_num - 1} ({exc})"
            ) from None


def _read_csv(
    path: Path, entity: Entity, aliases: Aliases, display_name: str, chunk_rows: int
) -> Iterator[RawChunk | TextBatch]:
    encoding = detect_encoding(path, display_name)
    delimiter = guess_delimiter(path, encoding)
    rows = _csv_rows(path, display_name, encoding, delimiter)
    leading_blank_rows = 0
    header_row = None
    for row in rows:
        if not _is_blank(row):
            header_row = row
            break
        leading_blank_rows += 1
    if header_row is None:
        yield _empty_chunk([], f"{display_name}: file is empty; 0 rows loaded")
        return
    header = resolve_headers(header_row, entity, aliases, display_name)
    builder = _ChunkBuilder(header.canonical_columns)
    warnings = list(header.warnings)
    batched = _csv_batchable(header)
    if batched:
        chunk_rows *= TEXT_BATCH_CHUNKS
        if leading_blank_rows == 0 and is_plain_csv(path, delimiter, header.width):
            rows.close()
            yield from _plain_csv_batches(
                path, encoding, delimiter, header, chunk_rows, warnings, display_name
            )
            return
    data_rows = 0
    pending: list[tuple[int, list[str]]] = []
    for row_number, row in enumerate(rows, start=1):
        if _is_blank(row):
            continue
        data_rows += 1
        pending.append((row_number, row))
        if len(pending) >= chunk_rows:
            if batched:
                yield from _csv_text_batch(builder, pending, header, warnings)
            else:
                _add_csv_rows(builder, pending, header)
                yield builder.flush(warnings)
            pending = []
            warnings = []
    if batched and pending:
        yield from _csv_text_batch(builder, pending, header, warnings)
        warnings = []
    else:
        _add_csv_rows(builder, pending, header)
    if data_rows == 0:
        warnings.append(f"{display_name}: file has a header but no data rows; 0 rows loaded")
    if len(builder) or warnings:
        yield builder.flush(warnings)


def _csv_batch(
    header: HeaderMap, texts: list[pa.Array], row_numbers: np.ndarray, warnings: list[str]
) -> TextBatch:
    return TextBatch(list(header.headers), texts, header, row_numbers, warnings)


def _plain_csv_batches(
    path: Path,
    encoding: str,
    delimiter: str,
    header: HeaderMap,
    batch_rows: int,
    warnings: list[str],
    display_name: str,
) -> Iterator[RawChunk | TextBatch]:
    """A plain file (`crm.ingest.csv_arrow`) as the text batches the row-wise path would make
    of it: the same values, row numbers, blank rows skipped, the header's warnings first."""
    data_rows = 0
    for texts, row_numbers in plain_csv_columns(
        path, encoding, delimiter, header.width, batch_rows
    ):
        if len(row_numbers):
            data_rows += len(row_numbers)
            yield _csv_batch(header, texts, row_numbers, warnings)
            warnings = []
    if data_rows == 0:
        warnings.append(f"{display_name}: file has a header but no data rows; 0 rows loaded")
    if warnings:
        yield _ChunkBuilder(header.canonical_columns).flush(warnings)


def _csv_batchable(header: HeaderMap) -> bool:
    """Rows of a header whose names are all present and distinct go to the fast lane as text
    batches (a raw_record then holds every column, as the row-wise path would); other headers
    (blank or repeated names) keep the row-wise path, which drops or merges those cells."""
    return len(set(header.headers)) == header.width and all(name.strip() for name in header.headers)


def _csv_text_batch(
    builder: _ChunkBuilder,
    numbered_rows: list[tuple[int, list[str]]],
    header: HeaderMap,
    warnings: list[str],
) -> Iterator[RawChunk | TextBatch]:
    """Rows of the header's shape (Excel's empty trailing cells padded or cut) as one text
    batch; rows with a field-count problem or a NUL byte as an ordinary chunk that rejects them
    exactly as the row-wise path words it (naming the file's own column)."""
    width = header.width
    shaped: list[list[str | None]] = []
    numbers: list[int] = []
    for row_number, row in numbered_rows:
        if len(row) != width:
            if _field_count_problem(row, header) is not None:
                _add_csv_row(builder, row_number, row, header)
                continue
            row = row[:width] + [None] * (width - len(row))
        shaped.append(row)
        numbers.append(row_number)
    if shaped:
        texts = [pa.array(column, type=pa.string()) for column in zip(*shaped, strict=True)]
        row_numbers = np.asarray(numbers, dtype=np.int64)
        nul = _nul_rows(texts, len(shaped))
        if nul.any():
            for i in np.flatnonzero(nul).tolist():
                _add_csv_row(builder, numbers[i], shaped[i], header)
            keep = pa.array(~nul)
            texts = [text.filter(keep) for text in texts]
            row_numbers = row_numbers[~nul]
        if len(row_numbers):
            yield _csv_batch(header, texts, row_numbers, warnings)
            warnings = []
    if len(builder) or warnings:
        yield builder.flush(warnings)


def _named_positions(names: list[str], *, skip_blank: bool) -> dict[str, int]:
    """Name → position as a dict built from the row would hold it (a repeated name keeps its
    first place and its last value)."""
    named: dict[str, int] = {}
    for position, name in enumerate(names):
        if not skip_blank or name.strip():
            named[name] = position
    return named


def _add_csv_rows(
    builder: _ChunkBuilder, numbered_rows: list[tuple[int, list[str]]], header: HeaderMap
) -> None:
    """`_add_csv_row` for a batch: rows of the right shape without NUL bytes go column-wise."""
    width = header.width
    shaped: list[tuple[int, list[str]]] = []
    odd: set[int] = set()
    for row_number, row in numbered_rows:
        if len(row) == width:
            shaped.append((row_number, row))
        elif _field_count_problem(row, header) is None:
            shaped.append((row_number, row[:width] + [None] * (width - len(row))))
        else:
            odd.add(row_number)
    if shaped and width:
        named = _named_positions(header.headers, skip_blank=True)
        columns = list(zip(*(row for _, row in shaped), strict=True))
        nul = _nul_rows([columns[i] for i in named.values()], len(shaped))
        if nul.any():
            odd.update(number for (number, _), bad in zip(shaped, nul, strict=True) if bad)
            clean = [pair for pair, bad in zip(shaped, nul, strict=True) if not bad]
            columns = list(zip(*(row for _, row in clean), strict=True)) if clean else []
            shaped = clean
        if shaped:
            builder.add_columns(
                [number for number, _ in shaped],
                {canonical: columns[pos] for pos, canonical in header.positions},
                _json_objects(list(named), [columns[i] for i in named.values()]),
            )
    if odd:
        for row_number, row in numbered_rows:
            if row_number in odd:
                _add_csv_row(builder, row_number, row, header)


def _add_csv_row(
    builder: _ChunkBuilder, row_number: int, row: list[str], header: HeaderMap
) -> None:
    problem = _field_count_problem(row, header)
    if problem is not None:
        builder.reject(
            row_number, _json_text(row), f"{problem} (rule: field_count)", "field_count", None
        )
        return
    raw_record = _json_text(header.original_record(row))
    values = {
        canonical: row[pos] if pos < len(row) else None for pos, canonical in header.positions
    }
    nul_column = _first_nul_column(header.original_record(row))
    if nul_column is not None:
        reason = f"{nul_column}: value contains a NUL byte (rule: nul)"
        builder.reject(row_number, raw_record, reason, "nul", header.canonical_for(nul_column))
        return
    builder.add(row_number, values, raw_record)


# --- JSONL -----------------------------------------------------------------------------------


# Distinct key orders remembered per file: a log whose objects have arbitrary keys takes
# `_add_json_object` for the orders beyond this many instead of growing the cache.
MAX_JSON_LAYOUTS = 1024


class _JsonKeys:
    """Per-file cache of JSON key → canonical column, warning once per unknown key."""

    def __init__(self, entity: Entity, aliases: Aliases, display_name: str) -> None:
        self.entity = entity
        self.aliases = aliases
        self.display_name = display_name
        self.mapping: dict[str, str | None] = {}
        self.seen: set[str] = set()
        self.warnings: list[str] = []
        self.layouts: dict[tuple[str, ...], tuple[str | None, ...] | None] = {}

    def canonical(self, key: str) -> str | None:
        if key not in self.mapping:
            header = resolve_headers(
                [key], self.entity, self.aliases, self.display_name, strict=False
            )
            self.mapping[key] = header.canonical_columns[0] if header.positions else None
            self.warnings.extend(header.warnings)
        return self.mapping[key]

    def take_warnings(self) -> list[str]:
        taken, self.warnings = self.warnings, []
        return taken

    def layout(self, keys: tuple[str, ...]) -> tuple[str | None, ...] | None:
        """The column of each of `keys` (None: an unknown key, ignored) for an object with
        exactly these keys in this order, or None when the object must take
        `_add_json_object`: a key not resolved yet (resolving it there warns in line order),
        or two keys naming one column (where the first non-null value wins)."""
        if keys in self.layouts:
            return self.layouts[keys]
        if any(key not in self.mapping for key in keys):
            return None
        columns = tuple(self.mapping[key] for key in keys)
        named = [column for column in columns if column is not None]
        layout = columns if len(named) == len(set(named)) else None
        if len(self.layouts) < MAX_JSON_LAYOUTS:
            self.layouts[keys] = layout
        return layout


def _json_scalar(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


def _parse_json_line(line: bytes) -> tuple[dict[str, Any] | None, str, str | None]:
    """(object or None, text as read, problem) for one JSONL line."""
    try:
        text = line.decode("utf-8-sig").rstrip("\r\n")
    except UnicodeDecodeError:
        return None, line.decode("utf-8", errors="replace").rstrip("\r\n"), "line is not UTF-8 text"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, text, f"line is not valid JSON ({exc.msg} at column {exc.colno})"
    if not isinstance(value, dict):
        return None, text, f"line is a JSON {type(value).__name__}, not an object"
    return value, text, None


def _add_json_object(
    builder: _ChunkBuilder, line_number: int, obj: dict[str, Any], text: str, keys: _JsonKeys
) -> None:
    values: dict[str, Any] = {}
    for key, value in obj.items():
        canonical = keys.canonical(str(key))
        if canonical is None:
            continue
        if isinstance(value, dict | list):
            reason = f"{key}: {_json_text(value)[:60]} is not a single value (rule: type)"
            builder.reject(line_number, text, reason, "type", canonical)
            return
        if values.get(canonical) is None:
            values[canonical] = _json_scalar(value)
    nul_column = _first_nul_column(values)
    if nul_column is not None:
        reason = f"{nul_column}: value contains a NUL byte (rule: nul)"
        builder.reject(line_number, text, reason, "nul", nul_column)
        return
    builder.add(line_number, values, text)


def _check_json_required(keys: _JsonKeys, entity: Entity, display_name: str) -> None:
    """A required column no object of the first chunk has is a missing column, not bad rows."""
    present = {c for c in keys.mapping.values() if c is not None}
    missing = [name for name in entity.required if name not in present]
    if missing:
        found = ", ".join(keys.mapping) or "no keys"
        raise SourceError(
            f"{display_name}: required column '{missing[0]}' is missing (found: {found})"
        )


class _JsonRows(_ChunkBuilder):
    """Collects one chunk of JSONL rows: the objects as text columns for the fast lane (each
    line kept as its raw_record), the lines rejected while reading as an ordinary chunk.

    A `_ChunkBuilder` (`add`, `reject`), so `_add_json_object` decides every row exactly as
    before; only where the accepted rows go differs. Why: the exact validator costs ~10 µs a
    row, while the fast lane types canonical rows in DuckDB and still sends every unusual row
    to the exact validator (a 500k-line log: 24.5 → 17.9 s, `benchmarks/bench_jsonl.py`; most of
    the rest is this reader's per-line Python)."""

    def __init__(self, entity: Entity) -> None:
        super().__init__(list(entity.column_names))
        self.header = HeaderMap(
            headers=self.columns, positions=list(enumerate(self.columns)), warnings=[]
        )

    def _reset(self) -> None:
        super()._reset()
        self._plans: dict[tuple[str | None, ...], tuple[list, list]] = {}

    def _plan(self, layout: tuple[str | None, ...]) -> tuple[list, list]:
        """For objects of `layout`: the append of each key's column list (a no-op for unknown
        keys), and those of the columns such objects lack. Bound to this chunk's lists."""
        appends = [_ignore if column is None else self.values[column].append for column in layout]
        missing = [self.values[name].append for name in self.columns if name not in layout]
        plan = self._plans[layout] = (appends, missing)
        return plan

    def add_object(
        self, line_number: int, obj: dict[str, Any], text: str, layout: tuple[str | None, ...]
    ) -> bool:
        """Add an object whose keys have `layout`, as `_add_json_object` would, when the line
        cannot hold a nested value or a NUL (the text has no `{` after its first character, no
        `[` and no `\\u0000` escape): True. False leaves the line to `_add_json_object`, which
        words the rejection (or accepts a string that merely contains a bracket).

        Values are kept as parsed (str, None, numbers, booleans) and turned into text per
        column when the batch is built (`_json_text_column`): the same text `_json_scalar`
        gives, without a Python call per value."""
        if text.find("{", 1) >= 0 or "[" in text or "\\u0000" in text:
            return False
        appends, missing = self._plans.get(layout) or self._plan(layout)
        for append, value in zip(appends, obj.values(), strict=True):
            append(value)
        for append in missing:
            append(None)
        self.row_numbers.append(line_number)
        self.raw_records.append(text)
        return True

    def flush_batches(self, warnings: list[str]) -> Iterator[RawChunk | TextBatch]:
        """The rejected lines and the warnings as an ordinary chunk (also when it is empty and
        no row follows), then the accepted rows as a text batch."""
        batch = None
        if self.row_numbers:
            batch = TextBatch(
                names=self.columns,
                texts=[_json_text_column(self.values[name]) for name in self.columns],
                header=self.header,
                row_numbers=np.array(self.row_numbers, dtype=np.int64),
                raw_records=pa.array(self.raw_records, type=pa.string()),
            )
            self.values = {name: [] for name in self.columns}
            self.row_numbers, self.raw_records = [], []
            self._plans = {}  # they append to the lists just replaced
        if self.rejected or warnings or batch is None:
            yield self.flush(warnings)  # what is left: the rejected lines
            warnings = []
        if batch is not None:
            batch.warnings = warnings
            yield batch


def _json_text_column(values: list[Any]) -> pa.Array:
    """A column of JSON scalars as text: strings and nulls as they are, numbers and booleans
    as `_json_scalar` writes them (Arrow refuses a list that holds anything but str and None)."""
    try:
        return pa.array(values, type=pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        texts = [
            value if value is None or type(value) is str else _json_scalar(value)
            for value in values
        ]
        return pa.array(texts, type=pa.string())


def _ignore(value: Any) -> None:
    """Where the value of a key that names no column goes."""


def _read_jsonl(
    path: Path, entity: Entity, aliases: Aliases, display_name: str, chunk_rows: int
) -> Iterator[RawChunk | TextBatch]:
    reject_binary(path, display_name)
    keys = _JsonKeys(entity, aliases, display_name)
    rows = _JsonRows(entity)
    objects, data_rows, checked = 0, 0, False
    with path.open("rb") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            data_rows += 1
            obj, text, problem = _parse_json_line(line)
            if problem is not None:
                rows.reject(line_number, text, f"{problem} (rule: parse)", "parse", None)
            else:
                objects += 1
                layout = keys.layout(tuple(obj))
                if layout is None or not rows.add_object(line_number, obj, text, layout):
                    _add_json_object(rows, line_number, obj, text, keys)
            if len(rows) >= chunk_rows:
                if objects and not checked:
                    _check_json_required(keys, entity, display_name)
                    checked = True
                yield from rows.flush_batches(keys.take_warnings())
    if objects and not checked:
        _check_json_required(keys, entity, display_name)
    warnings = keys.take_warnings()
    if data_rows == 0:
        warnings.append(f"{display_name}: file is empty; 0 rows loaded")
    if len(rows) or warnings:
        yield from rows.flush_batches(warnings)


# --- Parquet ---------------------------------------------------------------------------------


def _parquet_type_fits(arrow_type: pa.DataType, column_type: str) -> bool:
    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    t = pa.types
    if t.is_null(arrow_type) or t.is_string(arrow_type) or t.is_large_string(arrow_type):
        return True
    numeric = t.is_integer(arrow_type) or t.is_floating(arrow_type) or t.is_decimal(arrow_type)
    temporal = t.is_timestamp(arrow_type) or t.is_date(arrow_type)
    if column_type in ("decimal", "integer"):
        return numeric
    if column_type == "timestamp":
        return temporal or t.is_integer(arrow_type)  # YYYYMMDD stored as a number
    if column_type == "boolean":
        return t.is_boolean(arrow_type) or t.is_integer(arrow_type)
    return numeric or temporal or t.is_boolean(arrow_type)


_EXPECTED_PARQUET = {
    "decimal": "a number or text",
    "integer": "a number or text",
    "timestamp": "a timestamp, a date or text",
    "boolean": "a boolean, a number or text",
    "text": "text, a number, a date or a boolean",
}


def _check_parquet_types(
    schema: pa.Schema, header: HeaderMap, entity: Entity, display_name: str
) -> None:
    for pos, canonical in header.positions:
        arrow_type = schema.field(pos).type
        column_type = entity.column(canonical).type
        if not _parquet_type_fits(arrow_type, column_type):
            raise SourceError(
                f"{display_name}: column '{schema.field(pos).name}' has Parquet type "
                f"{arrow_type}, expected {_EXPECTED_PARQUET[column_type]}"
            )


def _read_parquet(
    path: Path, entity: Entity, aliases: Aliases, display_name: str, chunk_rows: int
) -> Iterator[RawChunk | TextBatch]:
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise SourceError(f"{display_name}: not a readable Parquet file ({exc})") from None
    schema = parquet.schema_arrow
    header = resolve_headers(list(schema.names), entity, aliases, display_name)
    _check_parquet_types(schema, header, entity, display_name)
    warnings = list(header.warnings)
    builder = _ChunkBuilder(header.canonical_columns)
    next_row = 1
    all_text = len(set(schema.names)) == len(schema.names) and all(
        _is_text_type(schema.field(i).type) for i in range(len(schema.names))
    )
    try:
        batch_rows = chunk_rows * TEXT_BATCH_CHUNKS if all_text else chunk_rows
        for batch in parquet.iter_batches(batch_size=batch_rows):
            if all_text and batch.num_rows:
                # text columns need no conversion: the fast lane types them in DuckDB
                yield TextBatch(
                    names=list(schema.names),
                    texts=[_as_text_array(batch.column(i)) for i in range(batch.num_columns)],
                    header=header,
                    row_numbers=np.arange(next_row, next_row + batch.num_rows, dtype=np.int64),
                    warnings=warnings,
                )
                next_row += batch.num_rows
                warnings = []
                continue
            _add_parquet_batch(builder, batch, header, next_row)
            next_row += batch.num_rows
            yield builder.flush(warnings)
            warnings = []
    except pa.ArrowException as exc:
        raise SourceError(f"{display_name}: Parquet data cannot be read ({exc})") from None
    if next_row == 1:
        yield builder.flush(warnings + [f"{display_name}: file has no rows; 0 rows loaded"])


def _add_parquet_batch(
    builder: _ChunkBuilder, batch: pa.RecordBatch, header: HeaderMap, first_row: int
) -> None:
    """Rows of one Parquet batch: text values per column, raw_record = the row as JSON."""
    texts: dict[str, pa.Array] = {}
    for pos, canonical in header.positions:
        texts[canonical] = pc.cast(_decoded(batch.column(pos)), pa.string())
    nul = _nul_rows(list(texts.values()), batch.num_rows)
    row_numbers = (np.flatnonzero(~nul) + first_row).tolist()
    if nul.any():
        keep = pa.array(~nul)
        for offset in np.flatnonzero(nul).tolist():
            record = batch.slice(offset, 1).to_pylist()[0]
            values = {name: texts[name][offset].as_py() for name in texts}
            _add_record(builder, first_row + offset, values, _json_text(record))
        batch = batch.filter(keep)
        texts = {name: text.filter(keep) for name, text in texts.items()}
    named = _named_positions(list(batch.schema.names), skip_blank=False)
    builder.add_columns(
        row_numbers,
        {name: text.to_pylist() for name, text in texts.items()},
        _json_objects(list(named), [batch.column(i) for i in named.values()]),
    )


def _is_text_type(arrow_type: pa.DataType) -> bool:
    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    return pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)


def _decoded(column: pa.Array) -> pa.Array:
    return column.dictionary_decode() if pa.types.is_dictionary(column.type) else column


def _add_record(
    builder: _ChunkBuilder, row_number: int | None, values: dict[str, Any], raw_record: str
) -> None:
    nul_column = _first_nul_column(values)
    if nul_column is not None:
        reason = f"{nul_column}: value contains a NUL byte (rule: nul)"
        builder.reject(row_number, raw_record, reason, "nul", nul_column)
        return
    builder.add(row_number, values, raw_record)


# --- public API ------------------------------------------------------------------------------

_READERS = {".csv": _read_csv, ".jsonl": _read_jsonl, ".parquet": _read_parquet}


def read_file(
    path: Path,
    entity: Entity,
    aliases: Aliases,
    *,
    display_name: str,
    timezone: str = "Asia/Shanghai",
    chunk_rows: int = 100_000,
) -> Iterator[RawChunk | TextBatch]:
    """Stream one landing file as chunks; raises SourceError when it is unreadable as a whole.

    `display_name` (the path relative to the landing folder) starts every message. `timezone` is
    accepted for the loader's convenience but unused: values stay text, and naive timestamps are
    localised in validation, so a Parquet timestamp keeps its offset (or its absence) as written.
    An empty or header-only file yields one empty chunk carrying the warning.
    """
    del timezone
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise SourceError(
            f"{display_name}: unsupported file type '{path.suffix}' (use .csv, .jsonl or .parquet)"
        )
    if not path.is_file():
        raise SourceError(f"{display_name}: file does not exist")
    if path.stat().st_size == 0:
        yield _empty_chunk([], f"{display_name}: file is empty; 0 rows loaded")
        return
    yield from reader(path, entity, aliases, display_name, chunk_rows)


def _cell_text(value: Any) -> str | None:
    """A database value as the text a CSV export would hold (None stays None)."""
    if value is None or value is pd.NaT or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def normalise_frame(
    df: pd.DataFrame, entity: Entity, aliases: Aliases, *, display_name: str
) -> RawChunk:
    """A database chunk → RawChunk: header matching, text values, raw_record; row_number <NA>."""
    header = resolve_headers([str(c) for c in df.columns], entity, aliases, display_name)
    names = [str(c) for c in df.columns]
    texts = [_cell_texts(df.iloc[:, pos].astype(object).tolist()) for pos in range(df.shape[1])]
    return _text_chunk(names, texts, header, [None] * len(df), header.warnings)


def text_batch(
    names: list[str],
    columns: list[pa.Array] | list[list[str | None]],
    entity: Entity,
    aliases: Aliases,
    *,
    display_name: str,
    first_position: int,
    row_numbers: np.ndarray | None = None,
) -> TextBatch | RawChunk:
    """Database rows already turned into text → a TextBatch for the fast lane (a RawChunk when
    the names repeat, which only the row-wise path resolves the way a record dict would).

    The rows are numbered from `first_position` on, or by `row_numbers` (SQLite rowids, which
    the loader turns into positions in the source order)."""
    if len(set(names)) != len(names):
        columns = [c.to_pylist() if isinstance(c, pa.Array) else c for c in columns]
        frame = pd.DataFrame(dict(enumerate(columns)), dtype=object)
        frame.columns = names
        return normalise_frame(frame, entity, aliases, display_name=display_name)
    header = resolve_headers(names, entity, aliases, display_name)
    rows = len(columns[0]) if columns else 0
    return TextBatch(
        names=names,
        texts=[
            column if isinstance(column, pa.Array) else pa.array(column, type=pa.string())
            for column in columns
        ],
        header=header,
        row_numbers=(
            np.arange(first_position, first_position + rows, dtype=np.int64)
            if row_numbers is None
            else np.asarray(row_numbers, dtype=np.int64)
        ),
        warnings=list(header.warnings),
    )


def _cell_texts(values: list[Any]) -> list[str | None]:
    """`_cell_text` of a whole column; a column already of plain text is returned as is."""
    if all(value is None or type(value) is str for value in values):
        return values
    return [_cell_text(value) for value in values]
