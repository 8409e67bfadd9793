"""Loans, their payments, promises and messages: the services the bot uses, as JSON."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Header, Query
from starlette.responses import Response

from api import idempotency
from api.deps import Db, LoanWriter, PaymentWriter, PromiseWriter, Reader, Wired
from api.schemas import (
    AllocationOut,
    LoanCreate,
    LoanOut,
    LoanPageOut,
    MessageOut,
    PaymentCreate,
    PaymentLineOut,
    PaymentOut,
    PromiseCreate,
    PromiseOut,
)
from db.services.collection.payments import list_payments, record_payment
from db.services.collection.promises import list_promises, record_promise
from db.services.loans.add import add_loan
from db.services.loans.cards import get_loan
from db.services.loans.search import LoanFilter, list_loans
from db.services.paging import MAX_PAGE
from db.services.sms.loan_messages import loan_messages

router = APIRouter(prefix="/loans", tags=["loans"])


@router.get("", response_model=LoanPageOut, summary="List loans (keyset pages)")
def loans(
    who: Reader,
    session: Db,
    wired: Wired,
    filter: LoanFilter = LoanFilter.ACTIVE,
    agent_id: int | None = None,
    created_from: date | None = None,
    created_to: date | None = None,
    updated_from: date | None = None,
    updated_to: date | None = None,
    after: Annotated[str | None, Query(max_length=200)] = None,
    before: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
    with_total: bool = False,
) -> LoanPageOut:
    """Ordered by next due date (none last), then id; an agent's key lists their own loans."""
    page = list_loans(
        session,
        actor=who.actor,
        today=wired.today(),
        filter=filter,
        agent_id=agent_id,
        created_from=created_from,
        created_to=created_to,
        updated_from=updated_from,
        updated_to=updated_to,
        after=after,
        before=before,
        limit=limit,
        with_total=with_total,
        tz=wired.settings.tz,
    )
    return LoanPageOut.model_validate(page)


@router.get("/{loan_number}", response_model=LoanOut, summary="One loan's card")
def loan(loan_number: str, who: Reader, session: Db, wired: Wired) -> LoanOut:
    view = get_loan(session, actor=who.actor, loan_number=loan_number, today=wired.today())
    return LoanOut.model_validate(view)


@router.post("", response_model=LoanOut, status_code=201, summary="Add a loan")
def create_loan(body: LoanCreate, who: LoanWriter, session: Db, wired: Wired) -> LoanOut:
    """The same rules as the bot's /new: terms checked, MAX_AMOUNT, an agent adds to their
    own portfolio, a borrower out of the caller's scope is refused without naming them."""
    view = add_loan(
        session,
        actor=who.actor,
        **body.model_dump(),
        today=wired.today(),
        max_amount=wired.settings.max_amount,
        agency=wired.agency,
    )
    session.commit()
    return LoanOut.model_validate(view)


@router.get("/{loan_number}/payments", response_model=list[PaymentLineOut])
def payments(
    loan_number: str,
    who: Reader,
    session: Db,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[PaymentLineOut]:
    """The loan's payments and reversals, newest first."""
    found = list_payments(session, actor=who.actor, loan_number=loan_number, limit=limit)
    return [PaymentLineOut.model_validate(p) for p in found]


@router.post(
    "/{loan_number}/payments",
    response_model=PaymentOut,
    status_code=201,
    summary="Record a payment (idempotent)",
)
def pay(
    loan_number: str,
    body: PaymentCreate,
    who: PaymentWriter,
    session: Db,
    wired: Wired,
    idempotency_key: Annotated[str, Header(alias="Idempotency-Key", min_length=1, max_length=200)],
) -> Response:
    """A retry with the same Idempotency-Key and body gets the first answer again and
    records nothing; the same key with another body is refused (422)."""
    fingerprint = idempotency.fingerprint("POST", f"/loans/{loan_number}/payments", body)
    replay = idempotency.replay(session, who, idempotency_key, fingerprint)
    if replay is not None:
        return replay
    result = record_payment(
        session,
        actor=who.actor,
        loan_number=loan_number,
        **body.model_dump(),
        today=wired.today(),
        max_amount=wired.settings.max_amount,
        agency=wired.agency,
    )
    out = PaymentOut(
        payment_id=result.payment_id,
        loan_number=result.loan_number,
        amount=result.amount,
        outstanding=result.outstanding,
        closed=result.closed,
        allocations=[
            AllocationOut(installment=seq, fee=fee, amount=amount)
            for seq, fee, amount in result.allocations
        ],
        loan=LoanOut.model_validate(result.loan),
    )
    return idempotency.commit(session, who, idempotency_key, fingerprint, 201, out)


@router.get("/{loan_number}/promises", response_model=list[PromiseOut])
def promises(loan_number: str, who: Reader, session: Db) -> list[PromiseOut]:
    """The loan's promises to pay, newest first."""
    found = list_promises(session, actor=who.actor, loan_number=loan_number)
    return [PromiseOut.model_validate(p) for p in found]


@router.post("/{loan_number}/promises", response_model=PromiseOut, status_code=201)
def promise(
    loan_number: str, body: PromiseCreate, who: PromiseWriter, session: Db, wired: Wired
) -> PromiseOut:
    """Record a promise to pay; it supersedes the loan's open promise, as in the bot."""
    view = record_promise(
        session,
        actor=who.actor,
        loan_number=loan_number,
        **body.model_dump(),
        today=wired.today(),
        agency=wired.agency,
    )
    session.commit()
    return PromiseOut.model_validate(view)


@router.get("/{loan_number}/messages", response_model=list[MessageOut])
def messages(
    loan_number: str,
    who: Reader,
    session: Db,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
) -> list[MessageOut]:
    """The SMS about this loan, newest first, with their delivery status."""
    found = loan_messages(session, actor=who.actor, loan_number=loan_number, limit=limit)
    return [MessageOut.model_validate(m) for m in found]
