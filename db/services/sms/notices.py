"""Notices to borrowers about their own loan: payment received, loan closed.

Queued in the caller's transaction (the bot's record_payment), so a payment that rolls
back sends nothing. Plain GSM-7 text ("INR 1500.00", never "₹"): one non-GSM character
turns the whole SMS into UCS-2 and cuts a segment from 160 to 70 characters.
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy.orm import Session

from db.agency import Agency
from db.models import Loan, MessageKind
from db.money import format_money
from db.services.errors import InvalidInput, NotFound
from db.services.sms import outbox
from db.services.sms.outbox import MessageInfo
from db.sms_text import segments

# Said after the receipt number: a NO back marks the payment disputed (receipts.py).
DENY_HINT = "If you did not pay this, reply NO."


def notice_text(
    *,
    loan_number: str,
    amount: Decimal,
    outstanding: Decimal,
    closed: bool,
    agency: Agency,
    receipt: str | None = None,
) -> str:
    """The notice's words: payment received with the balance, or the loan closed.

    With a receipt number, the number and DENY_HINT, within one segment: the balance (or
    the thanks) is left out when the whole would not fit.
    """
    if receipt is not None:
        return _with_receipt(loan_number, amount, outstanding, closed, agency, receipt)
    paid = format_money(amount, agency, plain=True)
    if closed:
        return (
            f"Payment of {paid} received. Loan {loan_number} is fully paid and closed. "
            f"Thank you. - {agency.name}"
        )
    balance = format_money(outstanding, agency, plain=True)
    return f"Payment of {paid} received for loan {loan_number}; balance {balance}. - {agency.name}"


def _with_receipt(
    loan_number: str,
    amount: Decimal,
    outstanding: Decimal,
    closed: bool,
    agency: Agency,
    receipt: str,
) -> str:
    paid = format_money(amount, agency, plain=True)
    head = f"{paid} received for loan {loan_number}, receipt {receipt}"
    tail = f" {DENY_HINT} - {agency.name}"
    if closed:
        extra = " Loan fully paid and closed. Thank you."
    else:
        extra = f"; balance {format_money(outstanding, agency, plain=True)}."
    for middle in (extra, "." if not closed else " Loan closed.", "."):
        text = head + middle + tail
        if segments(text) == 1:
            return text
    return text


def payment_notice(
    session: Session,
    *,
    loan_id: int,
    payment_id: int,
    amount: Decimal,
    outstanding: Decimal,
    closed: bool,
    agency: Agency,
    notify_payment: bool,
    notify_closed: bool,
    receipt: str | None = None,
) -> MessageInfo | None:
    """Queue the payment (or loan closed) notice once; None when off, opted out or queued."""
    if not isinstance(amount, Decimal) or amount <= 0:
        raise InvalidInput("A payment notice needs a positive amount.", code="notice_amount")
    # A closing payment says "closed" when that notice is on, else it is an ordinary one.
    as_closed = closed and notify_closed
    if not (as_closed or notify_payment):
        return None
    loan = session.get(Loan, loan_id)
    if loan is None:
        raise NotFound(f"No loan {loan_id} found.", code="loan_not_found")
    borrower = loan.borrower
    if borrower.opted_out_at is not None:
        return None
    body = notice_text(
        loan_number=loan.loan_number,
        amount=amount,
        outstanding=outstanding,
        closed=as_closed,
        agency=agency,
        receipt=receipt,
    )
    key = f"notice:closed:{loan_id}" if as_closed else f"notice:pay:{payment_id}"
    return outbox.queue_message(
        session,
        to=borrower.phone,
        body=body,
        kind=MessageKind.NOTICE,
        idempotency_key=key,
        borrower_id=borrower.id,
        loan_id=loan.id,
    )
