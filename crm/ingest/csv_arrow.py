"""Plain CSV files read by Arrow's C++ parser instead of Python's `csv` module.

Why: Python's `csv.reader` plus building columns from its rows costs ~12 µs per row of a
14-column export (a 1M-row customer export: ~11 s, one core, holding the GIL the loader also
needs); Arrow's streaming reader, with the scan below, reads it in ~1.4 s
(`benchmarks/bench_csv.py`).

Only *plain* files take this path: no quote character, no NUL byte, no bare carriage return, no
empty line, and every line (the header's too) with exactly as many delimiters as the header. For
such a file every line is one record and a field is exactly the text between delimiters, so both
parsers read the same values, and the 1-based data row number is the line number after the
header. Whether a file is plain is decided before a row is read, by a byte scan of the whole file
in blocks (bounded memory); any other file keeps the row-wise reader, which words each field-count
or NUL problem per row. The scan works on bytes for UTF-8 and GB18030 alike: neither encoding
uses the bytes of `,` `;` TAB `"` CR LF or NUL inside a multi-byte character.

Consumer: `crm.ingest.readers._read_csv`, which wraps the columns as text batches.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

SCAN_BLOCK_BYTES = 16 * 1024 * 1024
ARROW_BLOCK_BYTES = 8 * 1024 * 1024
# Arrow refuses a row longer than its block; a longer line (a pasted document in a note?) sends
# the file to the row-wise reader, which has no such limit.
LONGEST_PLAIN_LINE_BYTES = 1024 * 1024


@cache
def _blank_cell_pattern() -> str:
    """Python's str.strip() removes exactly the characters whose str.isspace() is true; a row
    whose every cell is made of them is blank for the row-wise reader (skipped, but counted).
    The same set as an RE2 class, so the blank test here is the same test (built on first use:
    the scan of every code point takes ~60 ms)."""
    spaces = "".join(
        f"\\x{{{code:04x}}}" for code in range(sys.maxunicode + 1) if chr(code).isspace()
    )
    return f"^[{spaces}]*$"


def _plain_lines(buffer: bytes, delimiter: int, delimiters_per_line: int) -> bool:
    """Whether `buffer` (whole lines, each ending in LF) holds only plain lines."""
    if b'"' in buffer or b"\x00" in buffer or buffer.count(b"\r") != buffer.count(b"\r\n"):
        return False
    data = np.frombuffer(buffer, dtype=np.uint8)
    ends = np.flatnonzero(data == 10)
    starts = np.concatenate(([0], ends[:-1] + 1))
    content = ends - starts - (data[np.maximum(ends - 1, 0)] == 13)
    if (content <= 0).any() or (content > LONGEST_PLAIN_LINE_BYTES).any():
        return False
    delimiter_at = np.flatnonzero(data == delimiter)
    per_line = np.diff(np.searchsorted(delimiter_at, np.concatenate(([0], ends + 1))))
    return bool((per_line == delimiters_per_line).all())


def is_plain_csv(path: Path, delimiter: str, width: int) -> bool:
    """True when every line of the file is one record of `width` unquoted fields (see above),
    none longer than LONGEST_PLAIN_LINE_BYTES."""
    code = ord(delimiter)
    with path.open("rb") as handle:
        carry = b""
        while block := handle.read(SCAN_BLOCK_BYTES):
            buffer = carry + block
            last = buffer.rfind(b"\n")
            if last < 0:
                if len(buffer) > LONGEST_PLAIN_LINE_BYTES:
                    return False
                carry = buffer  # a line longer than the block read: read on
                continue
            if not _plain_lines(buffer[: last + 1], code, width - 1):
                return False
            carry = buffer[last + 1 :]
    # the last line without a line end is a record too
    return not carry or _plain_lines(carry + b"\n", code, width - 1)


def _blank_rows(columns: list[pa.Array]) -> np.ndarray:
    """Rows whose every cell is blank; each column is tested only on the rows still blank (the
    first column, usually an id, rules out almost every row)."""
    blank = np.ones(len(columns[0]), dtype=bool)
    for column in columns:
        candidates = np.flatnonzero(blank)
        if not len(candidates):
            break
        cells = column.take(pa.array(candidates))
        matched = pc.match_substring_regex(cells, _blank_cell_pattern())
        blank[candidates[~matched.to_numpy(zero_copy_only=False)]] = False
    return blank


def plain_csv_columns(
    path: Path, encoding: str, delimiter: str, width: int, batch_rows: int
) -> Iterator[tuple[list[pa.Array], np.ndarray]]:
    """The data rows of a plain CSV file (header line skipped) as `width` string columns.

    Yields one item per `batch_rows` lines read: the columns of the rows that are not blank and
    their 1-based data row numbers (a blank row is dropped, its number is not reused)."""
    with path.open("rb") as handle:
        handle.readline()
        if not handle.read(1):
            return  # the header alone: Arrow cannot skip a line that does not end
    names = [f"c{i}" for i in range(width)]
    reader = pa_csv.open_csv(
        path,
        read_options=pa_csv.ReadOptions(
            column_names=names,
            skip_rows=1,  # the header, after a UTF-8 BOM (Arrow drops a BOM itself)
            encoding="utf8" if encoding in ("utf-8", "utf-8-sig") else encoding,
            block_size=ARROW_BLOCK_BYTES,
            use_threads=True,
        ),
        parse_options=pa_csv.ParseOptions(
            delimiter=delimiter,
            quote_char=False,
            escape_char=False,
            double_quote=False,
            newlines_in_values=False,
            ignore_empty_lines=False,
        ),
        convert_options=pa_csv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()),
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )
    pending: list[pa.RecordBatch] = []
    held = 0
    first_row = 1

    def emit(rows: int) -> tuple[list[pa.Array], np.ndarray]:
        nonlocal pending, held, first_row
        held_rows = pa.Table.from_batches(pending, schema=reader.schema)
        table, rest = held_rows.slice(0, rows), held_rows.slice(rows)
        pending, held = rest.to_batches(), len(rest)
        columns = [table.column(i).combine_chunks() for i in range(width)]
        numbers = np.arange(first_row, first_row + rows, dtype=np.int64)
        first_row += rows
        blank = _blank_rows(columns)
        if blank.any():
            keep = pa.array(~blank)
            columns = [column.filter(keep) for column in columns]
            numbers = numbers[~blank]
        return columns, numbers

    for batch in reader:
        pending.append(batch)
        held += batch.num_rows
        while held >= batch_rows:
            yield emit(batch_rows)
    if held:
        yield emit(held)
