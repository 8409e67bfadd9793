"""How a value becomes an exported cell: plain decimals, ISO dates, no formulas.

A spreadsheet runs a cell that starts with = + - @ (and, in some programs, a tab or a
carriage return) as a formula, so a borrower named "=HYPERLINK(...)" could act on the
machine of whoever opens the export. OWASP's advice for CSV injection: put an apostrophe in
front of such a cell. The XLSX writer writes every text as a string cell, and gets the
same apostrophe, so the file reads the same in both formats.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import Enum

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

Cell = str | int | Decimal | None


def neutralise(text: str) -> str:
    """text with a leading apostrophe when a spreadsheet would read it as a formula."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def cell(value: object, places: int = 2) -> Cell:
    """A value as it is exported: money as a plain decimal of the currency's places, dates
    and times in ISO 8601, enums by their value, text neutralised; None stays empty."""
    if value is None or isinstance(value, bool | int):
        return value if not isinstance(value, bool) else ("yes" if value else "no")
    if isinstance(value, Decimal):
        return value.quantize(Decimal(1).scaleb(-places))
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return neutralise(str(value.value))
    return neutralise(str(value))


def csv_text(value: Cell) -> str:
    """A cell as CSV text (a negative amount is a number, written as one: -12.50)."""
    return "" if value is None else str(value)
