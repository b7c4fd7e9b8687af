"""Plain CSV files read by Arrow (crm.ingest.csv_arrow) give exactly what the row-wise reader gives.

The reference is the row-wise `csv`-module path of `crm.ingest.readers`, which has its own tests
for every parse problem (test_readers, test_bad_inputs); here each file is read both ways and the
chunks must be equal: same values, row numbers, blank rows skipped, warnings, chunk boundaries.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

import crm.ingest.csv_arrow as csv_arrow
import crm.ingest.readers as readers
from crm.ingest.aliases import load_aliases
from crm.schemas import CUSTOMERS

HEADER = "customer_id,name,customer_type,industry,city,email,created_at"
WIDTH = 7


def _read(path: Path, chunk_rows: int = 100_000) -> list:
    return list(
        readers.read_file(
            path, CUSTOMERS, load_aliases(), display_name="f.csv", chunk_rows=chunk_rows
        )
    )


def _read_both(
    path: Path, monkeypatch: pytest.MonkeyPatch, chunk_rows: int = 100_000
) -> tuple[list, list, bool]:
    """(chunks as read now, chunks of the row-wise reader, whether Arrow read the file)."""
    used: list[bool] = []
    plain = readers.is_plain_csv

    def spy(*args):
        used.append(plain(*args))
        return used[-1]

    with monkeypatch.context() as patch:
        patch.setattr(readers, "is_plain_csv", spy)
        now = _read(path, chunk_rows)
    with monkeypatch.context() as patch:
        patch.setattr(readers, "is_plain_csv", lambda *args: False)
        row_wise = _read(path, chunk_rows)
    return now, row_wise, any(used)


def _assert_same(now: list, row_wise: list) -> None:
    assert [type(c).__name__ for c in now] == [type(c).__name__ for c in row_wise]
    for a, b in zip(now, row_wise, strict=True):
        assert a.warnings == b.warnings
        if isinstance(a, readers.TextBatch):
            assert a.names == b.names
            assert np.array_equal(a.row_numbers, b.row_numbers)
            assert [t.to_pylist() for t in a.texts] == [t.to_pylist() for t in b.texts]
            assert all(t.type == u.type for t, u in zip(a.texts, b.texts, strict=True))
        else:
            assert a.frame.equals(b.frame)
            assert a.rejected.equals(b.rejected)


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def _values(chunks: list) -> list[tuple[int, list[str]]]:
    out = []
    for chunk in chunks:
        if isinstance(chunk, readers.TextBatch):
            columns = [t.to_pylist() for t in chunk.texts]
            out += [(int(n), [c[i] for c in columns]) for i, n in enumerate(chunk.row_numbers)]
    return out


def test_plain_export_is_read_by_arrow_with_row_numbers_and_blank_rows_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    text = (
        HEADER + "\r\n"
        "C1,林伟,person,,上海, a@x.cn ,2024-06-14\r\n"
        ",,,,,,\r\n"  # blank: skipped, but it is data row 2
        " ,\u3000,\t, , ,,\r\n"  # blank too (str.strip() whitespace, the ideographic space)
        "C2,上海海纳商贸有限公司,company,零售,上海,,2023-11-07\r\n"
    )
    now, row_wise, arrow = _read_both(_write(tmp_path / "c.csv", text), monkeypatch)
    assert arrow
    _assert_same(now, row_wise)
    assert _values(now) == [
        (1, ["C1", "林伟", "person", "", "上海", " a@x.cn ", "2024-06-14"]),
        (4, ["C2", "上海海纳商贸有限公司", "company", "零售", "上海", "", "2023-11-07"]),
    ]


@pytest.mark.parametrize(
    ("encoding", "delimiter", "line_end", "bom"),
    [
        ("utf-8", ",", "\n", False),
        ("utf-8", ";", "\r\n", True),
        ("gb18030", ",", "\r\n", False),
        ("gb18030", "\t", "\n", False),
    ],
)
def test_encodings_delimiters_and_line_ends_read_the_same(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    encoding: str,
    delimiter: str,
    line_end: str,
    bom: bool,
):
    rows = [HEADER.split(",")] + [
        [
            f"C{i}",
            f"客户{i}号",
            "company",
            "制造业" if i % 3 else "",
            "北京",
            f"c{i}@例子.cn",
            "2025/02/03",
        ]
        for i in range(1, 40)
    ]
    text = line_end.join(delimiter.join(row) for row in rows)  # no line end after the last
    path = tmp_path / "c.csv"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode(encoding))
    now, row_wise, arrow = _read_both(path, monkeypatch, chunk_rows=3)  # batches of 15 rows
    assert arrow
    _assert_same(now, row_wise)
    assert [len(c) for c in now] == [15, 15, 9]
    assert _values(now)[-1] == (
        39,
        ["C39", "客户39号", "company", "", "北京", "c39@例子.cn", "2025/02/03"],
    )


@pytest.mark.parametrize(
    "data",
    [
        "",  # header only
        "\n",  # header, then an empty line (not plain: row-wise)
        ",,,,,,\n  ,,,,,,\n",  # only blank rows
    ],
)
def test_files_without_data_rows_warn_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: str
):
    now, row_wise, _ = _read_both(_write(tmp_path / "c.csv", HEADER + "\n" + data), monkeypatch)
    _assert_same(now, row_wise)
    assert now[-1].warnings == ["f.csv: file has a header but no data rows; 0 rows loaded"]


@pytest.mark.parametrize(
    "text",
    [
        HEADER + '\nC1,"林, 伟",person,,上海,,2024-06-14\n',  # a quoted field
        HEADER + "\nC1,林伟,person,,上海,,d\n\nC2,x,person,,,,d\n",  # an empty line
        HEADER + "\nC1,林\x00伟,person,,上海,,d\n",  # a NUL byte
        HEADER + "\nC1,林伟,person,,上海,,d\rC2,x,person,,,,d\n",  # a bare carriage return
        HEADER + "\nC1,林伟,person,,上海,d\n",  # a field short
        HEADER + "\nC1,林伟,person,,上海,,d,\n",  # an empty cell more (Excel's padding)
        "\n" + HEADER + "\nC1,林伟,person,,上海,,d\n",  # a blank line before the header
        ",,,,,,\n" + HEADER + "\nC1,林伟,person,,上海,,d\n",  # a blank row before it
        HEADER + "\nC1,林伟,person,,上海,,d\nC2,x,person",  # a last line, short, with no end
    ],
)
def test_files_that_are_not_plain_keep_the_row_wise_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str
):
    path = _write(tmp_path / "c.csv", text)
    now, row_wise, arrow = _read_both(path, monkeypatch)
    assert not arrow
    _assert_same(now, row_wise)


def test_scan_across_block_ends_and_overlong_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    line = "C1,林伟,person,,上海,a@x.cn,2024-06-14\n"
    path = _write(tmp_path / "c.csv", HEADER + "\n" + line * 50)
    monkeypatch.setattr(csv_arrow, "SCAN_BLOCK_BYTES", 7)  # every line spans blocks
    assert csv_arrow.is_plain_csv(path, ",", WIDTH)
    broken = _write(tmp_path / "d.csv", HEADER + "\n" + line * 30 + "C2,x\n" + line * 19)
    assert not csv_arrow.is_plain_csv(broken, ",", WIDTH)
    one_column = _write(tmp_path / "e.csv", "customer_id\nC1\n\nC2\n")
    assert not csv_arrow.is_plain_csv(one_column, ",", 1)  # an empty line
    assert csv_arrow.is_plain_csv(_write(tmp_path / "f.csv", "customer_id\nC1\nC2"), ",", 1)
    monkeypatch.setattr(csv_arrow, "LONGEST_PLAIN_LINE_BYTES", 30)
    assert not csv_arrow.is_plain_csv(path, ",", WIDTH)  # lines of 36 bytes are too long
    # and a long line is given up on as soon as it is too long, not held whole first
    long_line = _write(tmp_path / "g.csv", "x" * 5000 + "\n")
    scanned: list[int] = []
    plain_lines = csv_arrow._plain_lines
    monkeypatch.setattr(
        csv_arrow, "_plain_lines", lambda b, *a: scanned.append(len(b)) or plain_lines(b, *a)
    )
    assert not csv_arrow.is_plain_csv(long_line, ",", 1)
    assert max(scanned, default=0) <= 30 + 7 + 1
    monkeypatch.setattr(csv_arrow, "SCAN_BLOCK_BYTES", 16 * 1024 * 1024)
    assert not csv_arrow.is_plain_csv(path, ",", WIDTH)  # found in one block as well


def test_random_files_read_the_same_both_ways(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Random files near the plain/not-plain edge: whichever way each is read, it reads the same."""
    rng = random.Random(20261124)
    cells = ["", " ", "\u3000", "\t", "x", "林伟", "a b", " c ", "；", "\u00a0", "C9", "\x1c"]
    breaking = ['"', "\r", "\x00", 'a"b']  # cells that make a file not plain

    def cell() -> str:
        return rng.choice(breaking) if rng.random() < 0.005 else rng.choice(cells)

    arrow_files = 0
    for n in range(60):
        rows = [HEADER.split(",")]
        for i in range(rng.randint(0, 25)):
            width = WIDTH if rng.random() < 0.97 else rng.choice([WIDTH - 1, WIDTH + 1])
            rows.append(
                [f"C{i}" if rng.random() < 0.8 else cell()] + [cell() for _ in range(width - 1)]
            )
        end = rng.choice(["\n", "\r\n"])
        text = end.join(",".join(row) for row in rows) + rng.choice(["", end])
        encoding = rng.choice(["utf-8", "gb18030"])
        path = _write(tmp_path / f"r{n}.csv", text, encoding)
        now, row_wise, arrow = _read_both(path, monkeypatch, chunk_rows=rng.choice([1, 2, 100]))
        arrow_files += arrow
        _assert_same(now, row_wise)
    assert 15 <= arrow_files < 60  # the comparison is not vacuous: many files took the Arrow path
