"""A statement as a PDF, drawn with fpdf2 (pure Python).

fpdf2's core fonts (Helvetica) hold Latin-1 only and no rupee sign, and the project ships
no font file: amounts are written as the currency's code and plain digits (INR 1500.00),
as in an SMS (db.money.format_money(plain=True)), and a character outside Latin-1 in a name
or address is written as "?" rather than failing the statement.
"""

from __future__ import annotations

from decimal import Decimal

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from db.agency import Agency
from db.money import format_money
from db.services.statements.data import Statement


def latin(text: str) -> str:
    """text as the core fonts can write it (anything else becomes ?)."""
    return text.encode("latin-1", "replace").decode("latin-1")


class _Page(FPDF):
    def __init__(self, footer_text: str) -> None:
        super().__init__(format="A4")
        self.footer_text = latin(footer_text)
        self.set_auto_page_break(auto=True, margin=15)

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("Helvetica", size=8)
        self.cell(0, 5, f"{self.footer_text} - page {self.page_no()}", align="C")


def _line(pdf: FPDF, text: str, *, size: int = 10, bold: bool = False) -> None:
    pdf.set_font("Helvetica", "B" if bold else "", size)
    pdf.cell(0, size * 0.6, latin(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _table(
    pdf: FPDF, widths: tuple[int, ...], head: tuple[str, ...], rows: list[tuple[object, ...]]
) -> None:
    pdf.set_font("Helvetica", size=9)
    align = ("LEFT",) * 2 + ("RIGHT",) * (len(head) - 2)
    with pdf.table(col_widths=widths, text_align=align, line_height=5) as table:
        for row in [head, *rows]:
            cells = table.row()
            for value in row:
                cells.cell(latin(str(value)))
    pdf.ln(3)


def render_pdf(st: Statement, agency: Agency) -> bytes:
    """The statement as PDF bytes."""

    def money(amount: Decimal) -> str:
        return format_money(amount, agency, plain=True)

    pdf = _Page(f"{agency.name} - statement of loan {st.loan_number}")
    pdf.add_page()
    _line(pdf, agency.name, size=16, bold=True)
    if agency.phone:
        _line(pdf, f"Phone: {agency.phone}")
    _line(pdf, f"Account statement - loan {st.loan_number}", size=13, bold=True)
    _line(pdf, f"Generated on {st.generated_on.isoformat()}")
    pdf.ln(2)
    _line(pdf, "Borrower", bold=True)
    for text in (st.borrower, st.phone, st.address or ""):
        if text:
            _line(pdf, text)
    pdf.ln(2)
    _line(pdf, "Loan", bold=True)
    _line(pdf, f"Principal: {money(st.principal)}; {st.terms}; first due {st.first_due_date}")
    _line(pdf, f"State: {st.state}")
    pdf.ln(2)
    _line(pdf, "Schedule", bold=True)
    schedule: list[tuple[object, ...]] = [
        (
            s.seq,
            s.due_date.isoformat(),
            money(s.amount),
            money(s.fee),
            money(s.paid),
            "paid" if s.settled else "open",
        )
        for s in st.schedule
    ]
    _table(pdf, (8, 25, 32, 28, 32, 15), ("#", "Due", "Amount", "Fee", "Paid", "Status"), schedule)
    _line(pdf, "Account", bold=True)
    account: list[tuple[object, ...]] = [
        (
            m.day.isoformat(),
            m.what,
            money(m.charged) if m.charged else "",
            money(m.paid) if m.paid else "",
            money(m.balance),
        )
        for m in st.movements
    ]
    _table(pdf, (24, 62, 30, 30, 32), ("Date", "What", "Charged", "Paid", "Balance"), account)
    _line(pdf, f"Payable {money(st.payable)} + fees {money(st.fees)} - paid {money(st.paid)}")
    _line(pdf, f"Balance due: {money(st.balance)}", size=12, bold=True)
    return bytes(pdf.output())


def statement_filename(agency: Agency, st: Statement) -> str:
    """e.g. sai-finance-statement-LN-10234-2026-12-07.pdf (safe characters only)."""
    slug = "".join(c if c.isalnum() else "-" for c in agency.name.lower()).strip("-")
    number = "".join(c if c.isalnum() or c == "-" else "-" for c in st.loan_number)
    return f"{slug or 'vasooli'}-statement-{number}-{st.generated_on.isoformat()}.pdf"
