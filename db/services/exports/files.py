"""Writing an export's rows to a file, CSV or XLSX, streaming: a row is written as it comes.

CSV is UTF-8 with a byte-order mark (so Excel reads the rupee sign and names right) and
quoted where needed; XLSX is openpyxl's write-only workbook, which keeps no rows in memory.
Text cells are written as strings in both, never as formulas (see cells.py).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell

from db.services.exports.cells import Cell, cell, csv_text
from db.services.exports.kinds import ExportFormat, Row

Progress = Callable[[int], None]


def _cells(row: Row, places: int) -> list[Cell]:
    return [cell(v, places) for v in row]


def _write_csv(
    path: Path, header: tuple[str, ...], rows: Iterable[list[Cell]], tick: Callable[[], None]
) -> None:
    with path.open("w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        for row in rows:
            writer.writerow([csv_text(c) for c in row])
            tick()


def _write_xlsx(
    path: Path, header: tuple[str, ...], rows: Iterable[list[Cell]], tick: Callable[[], None]
) -> None:
    book = Workbook(write_only=True)
    sheet = book.create_sheet("export")
    sheet.append(list(header))
    for row in rows:
        out: list[Any] = []
        for value in row:
            c = WriteOnlyCell(sheet, value=value)
            if isinstance(value, str):
                c.data_type = "s"  # a string, whatever it starts with: never a formula
            out.append(c)
        sheet.append(out)
        tick()
    book.save(path)


def write_file(
    path: Path,
    *,
    fmt: ExportFormat,
    header: tuple[str, ...],
    rows: Iterable[Row],
    places: int,
    progress: Progress | None = None,
    every: int = 5000,
) -> int:
    """Write header and rows to path in fmt; progress(count) after every `every` rows.

    Returns the number of rows written (the header not counted).
    """
    count = 0

    def tick() -> None:
        nonlocal count
        count += 1
        if progress is not None and count % every == 0:
            progress(count)

    cells = (_cells(row, places) for row in rows)
    writer = _write_csv if fmt is ExportFormat.CSV else _write_xlsx
    writer(path, header, cells, tick)
    return count
