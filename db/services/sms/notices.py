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


def notice_text(
    *,
    loan_number: str,
    amount: Decimal,
    outstanding: Decimal,
    closed: bool,
    agency: Agency,
) -> str:
    """The notice's words: payment received with the balance, or the loan closed."""
    paid = format_money(amount, agency, plain=True)
    if closed:
        return (
            f"Payment of {paid} received. Loan {loan_number} is fully paid and closed. "
            f"Thank you. - {agency.name}"
        )
    balance = format_money(outstanding, agency, plain=True)
    return f"Payment of {paid} received for loan {loan_number}; balance {balance}. - {agency.name}"


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
