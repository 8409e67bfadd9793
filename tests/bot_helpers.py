"""What the bot's end-to-end tests share: committed loans, buttons by label, cards, counts."""

from __future__ import annotations

import asyncio
import random
import secrets
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import func, select

from db import clock
from db.models import Loan, Role, Staff
from db.services.access import Actor
from db.services.collection import payments
from tests import factories
from tests.bot_harness import BotHarness, Person

BORROWER = "Asha & Sons <Kirana>"  # HTML-special: the sandbox refuses unescaped text


@dataclass(frozen=True)
class LoanRef:
    id: int
    number: str


def loan_number() -> str:
    """A random loan number, so parallel runs on one database never clash."""
    return "T-" + secrets.token_hex(4).upper()


def new_loan(h: BotHarness, owner: Person, principal: str = "10000.00", **terms) -> LoanRef:
    """A loan of owner's (committed), with a random number and phone: PostgreSQL is shared."""

    def make(session) -> LoanRef:
        phone = f"+9198{random.randrange(10**8):08d}"
        borrower = factories.make_borrower(session, name=BORROWER, phone=phone)
        loan = factories.make_loan(
            session,
            agent=session.get(Staff, owner.staff_id),
            borrower=borrower,
            principal=Decimal(principal),
            loan_number=f"T{secrets.token_hex(4).upper()}",
            **terms,
        )
        return LoanRef(loan.id, loan.loan_number)

    return h.db(make)


def actor_of(person: Person) -> Actor:
    return Actor(staff_id=person.staff_id, role=person.role, name=person.name)


def pay_directly(h: BotHarness, who: Person, loan: LoanRef, amount: str) -> None:
    """A payment recorded by the service itself (committed), as if from another device."""
    h.db(
        payments.record_payment,
        actor=actor_of(who),
        loan_number=loan.number,
        amount=Decimal(amount),
        today=clock.today(h.settings.tz),
    )


def button(message: dict, label: str) -> str:
    """The callback data of the message's button whose label contains label."""
    found = [b["callback_data"] for b in message["buttons"] if label in b["text"]]
    assert found, f"no {label!r} button in {[b['text'] for b in message['buttons']]}"
    return found[0]


async def tap(h: BotHarness, who: Person, message: dict, label: str, **wait) -> dict:
    """Press the button whose label contains label; the bot's next message (h.wait(**wait))."""
    await h.press(who, message, button(message, label))
    return await h.wait(who, **wait)


def is_card(message: dict) -> bool:
    return "Outstanding" in message["text"] and bool(message["buttons"])


async def open_card(h: BotHarness, who: Person, loan: LoanRef) -> dict:
    card = await h.say(who, f"/loan {loan.number}")
    assert is_card(card), card["text"]
    return card


async def agent_card(h: BotHarness) -> tuple[Person, LoanRef, dict]:
    """A new agent, a loan of theirs and its card as the agent sees it."""
    agent = h.make_staff(Role.AGENT)
    loan = new_loan(h, agent)
    return agent, loan, await open_card(h, agent, loan)


def count(h: BotHarness, model, *where) -> int:
    return h.db(lambda s: s.scalar(select(func.count()).select_from(model).where(*where)))


def paid_total(h: BotHarness, loan: LoanRef) -> Decimal:
    return h.db(lambda s: s.get(Loan, loan.id).amount_paid)


async def until(probe, timeout: float = 5.0):
    """Poll probe() until it returns something truthy; that value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (found := probe()):
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.05)
    return found
