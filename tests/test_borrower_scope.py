"""Issue 9 item 1 and item 13 (relay): borrowers scoped like loans, replies routed to the
loan they concern, and replies held while that loan's agent is not logged in."""

from __future__ import annotations

import random
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bot import texts
from db import clock
from db.agency import Agency
from db.models import (
    Borrower,
    InboundMessage,
    Loan,
    Message,
    MessageKind,
    MessageStatus,
    Role,
    Staff,
    StaffSession,
    StaffState,
)
from db.services.access import PHONE_UNAVAILABLE, borrower_in_scope, scope_borrowers
from db.services.errors import AccessDenied
from db.services.loans import add as loans
from db.services.loans.add import EditableField
from db.services.sms import inbound
from db.services.sms.relays import (
    HOLD_HOURS,
    REPLY_WINDOW_DAYS,
    deliverable_relays,
    relay_batch,
)
from db.services.staff.sessions import open_session
from tests.bot_harness import BotHarness
from tests.bot_helpers import actor_of, until
from tests.factories import actor, make_borrower, make_loan, make_staff

TODAY = clock.utcnow().date()


def _phone() -> str:
    return f"+9196{random.randrange(10**8):08d}"


def _number() -> str:
    return f"SC-{uuid.uuid4().hex[:8].upper()}"


def _borrower(session: Session, name: str = "Meena Rao", address: str = "12 Hill Road"):
    return make_borrower(session, name=name, phone=_phone(), address=address)


def _loan(session: Session, agent, borrower, **terms) -> Loan:
    return make_loan(session, agent=agent, borrower=borrower, loan_number=_number(), **terms)


def _add(session: Session, who, phone: str) -> None:
    loans.add_loan(
        session,
        actor=actor(who),
        phone=phone,
        name="Someone Else",
        address="Far",
        principal=Decimal(500),
        first_due=TODAY + timedelta(days=5),
        today=TODAY,
    )


def _edit_phone(session: Session, who, loan: Loan) -> None:
    loans.edit_loan(
        session,
        actor=actor(who),
        loan_number=loan.loan_number,
        field=EditableField.BORROWER_PHONE,
        value=_phone(),
        expected_version=None,
        today=TODAY,
    )


# --- lookups and edits -----------------------------------------------------------------------


def test_another_agents_borrower_is_not_shown_nor_used(session, agent_a, agent_b, manager):
    borrower = _borrower(session)
    _loan(session, agent_a, borrower)
    with pytest.raises(AccessDenied) as refused:
        loans.find_borrower(session, phone=borrower.phone, region="IN", actor=actor(agent_b))
    assert refused.value.code == "phone_unavailable"
    assert refused.value.message == PHONE_UNAVAILABLE == texts.NEW_PHONE_UNAVAILABLE
    assert not {"Meena", "Hill", "1"} & set(refused.value.message.replace(";", " ").split())
    with pytest.raises(AccessDenied):
        _add(session, agent_b, borrower.phone)
    counts = session.execute(
        select(func.count(Loan.id), func.count(func.distinct(Borrower.id)))
        .join(Borrower)
        .where(Borrower.phone == borrower.phone)
    ).one()
    assert tuple(counts) == (1, 1)  # nothing attached, no second borrower
    mine = loans.find_borrower(session, phone=borrower.phone, region="IN", actor=actor(agent_a))
    seen = loans.find_borrower(session, phone=borrower.phone, region="IN", actor=actor(manager))
    assert mine.name == seen.name == "Meena Rao" and seen.loans_count == 1
    _add(session, manager, borrower.phone)  # a manager may add to any borrower
    assert session.scalar(select(func.count(Loan.id)).where(Loan.borrower_id == borrower.id)) == 2


def test_a_shared_borrower_is_edited_by_managers_only(session, agent_a, agent_b, manager):
    borrower = _borrower(session)
    mine, theirs = _loan(session, agent_a, borrower), _loan(session, agent_b, borrower)
    old = borrower.phone
    for who, loan in ((agent_a, mine), (agent_b, theirs)):
        with pytest.raises(AccessDenied) as refused:
            _edit_phone(session, who, loan)
        assert refused.value.code == "borrower_shared"
        assert not borrower_in_scope(session, actor=actor(who), borrower_id=borrower.id)
    session.refresh(borrower)
    assert borrower.phone == old
    # The agent still works their own loan: only the borrower's details are the manager's.
    loans.edit_loan(
        session,
        actor=actor(agent_a),
        loan_number=mine.loan_number,
        field=EditableField.NEXT_DUE_DATE,
        value="+20",
        expected_version=None,
        today=TODAY,
    )
    _edit_phone(session, manager, theirs)
    session.refresh(borrower)
    assert borrower.phone != old


def test_an_agent_edits_a_borrower_wholly_theirs(session, agent_a):
    borrower = _borrower(session)
    loan = _loan(session, agent_a, borrower)
    _edit_phone(session, agent_a, loan)
    session.refresh(borrower)
    assert borrower_in_scope(session, actor=actor(agent_a), borrower_id=borrower.id)


def test_scope_borrowers_lists_only_wholly_own_borrowers(session, agent_a, agent_b, admin):
    own, shared, other, orphan, empty = (_borrower(session) for _ in range(5))
    _loan(session, agent_a, own)
    _loan(session, agent_a, shared)
    _loan(session, agent_b, shared)
    _loan(session, agent_b, other)
    _loan(session, None, orphan)
    ids = {own.id, shared.id, other.id, orphan.id, empty.id}
    stmt = select(Borrower.id).where(Borrower.id.in_(ids))

    def seen(who) -> set[int]:
        return set(session.scalars(scope_borrowers(stmt, actor(who))))

    assert seen(agent_a) == {own.id}
    assert seen(agent_b) == {other.id}
    assert seen(admin) == ids  # managers and admins see every borrower


# --- which loan a reply concerns ---------------------------------------------------------


def _sent(session: Session, loan: Loan, *, days_ago: float, to: str | None = None) -> None:
    at = clock.utcnow() - timedelta(days=days_ago)
    session.add(
        Message(
            to_phone=to or loan.borrower.phone,
            body="Reminder",
            kind=MessageKind.REMINDER,
            loan_id=loan.id,
            borrower_id=loan.borrower_id,
            idempotency_key=uuid.uuid4().hex,
            status=MessageStatus.DELIVERED,
            send_after=at,
            created_at=at,
            sent_at=at,
        )
    )
    session.flush()


def _reply(session: Session, borrower: Borrower, body: str = "I paid yesterday"):
    return inbound.handle_inbound(
        session,
        provider_sid=f"SM{uuid.uuid4().hex}",
        from_phone=borrower.phone,
        body=body,
        agency=Agency(name="Agency"),
        today=TODAY,
    )


def test_a_reply_goes_to_the_agent_of_the_loan_last_texted(session, agent_a, agent_b):
    borrower = _borrower(session)
    overdue = _loan(session, agent_a, borrower, first_due=TODAY - timedelta(days=30))
    texted = _loan(session, agent_b, borrower)
    _loan(session, agent_a, borrower)  # the newest loan, added by agent A
    _sent(session, overdue, days_ago=3)
    _sent(session, texted, days_ago=1)
    result = _reply(session, borrower)
    assert session.get(InboundMessage, result.inbound_id).loan_id == texted.id
    assert (result.relay.agent_id, result.relay.loan_number) == (agent_b.id, texted.loan_number)


def test_old_texts_and_texts_to_an_old_number_do_not_count(session, agent_a, agent_b):
    borrower = _borrower(session)
    overdue = _loan(session, agent_a, borrower, first_due=TODAY - timedelta(days=3))
    texted = _loan(session, agent_b, borrower)
    _sent(session, texted, days_ago=REPLY_WINDOW_DAYS + 1)
    _sent(session, texted, days_ago=1, to=_phone())  # before a phone correction
    result = _reply(session, borrower)
    assert result.relay.agent_id == agent_a.id and result.relay.loan_number == overdue.loan_number


def test_without_texts_or_arrears_the_loan_due_soonest(session, agent_a, agent_b):
    borrower = _borrower(session)
    soon = _loan(session, agent_a, borrower, first_due=TODAY + timedelta(days=3))
    later = _loan(session, agent_b, borrower, first_due=TODAY + timedelta(days=40))
    later.created_at = clock.utcnow() + timedelta(seconds=5)  # newest: no longer what decides
    session.flush()
    result = _reply(session, borrower)
    assert result.relay.loan_number == soon.loan_number and result.relay.agent_id == agent_a.id


# --- held while the agent is away ----------------------------------------------------------


def _pending_for(session: Session, who, **kw) -> set[int]:
    return {
        r.inbound_id for r in deliverable_relays(session, limit=500, **kw) if r.agent_id == who.id
    }


def test_a_reply_waits_for_its_agent_to_log_in(session, agent_a):
    borrower = _borrower(session)
    _loan(session, agent_a, borrower)
    inbound_id = _reply(session, borrower).inbound_id
    assert inbound_id not in _pending_for(session, agent_a)  # never logged in: held
    login = open_session(session, agent_a)
    assert inbound_id in _pending_for(session, agent_a)
    assert inbound_id in {
        r.inbound_id for r in deliverable_relays(session, limit=500, staff_id=agent_a.id)
    }
    row = session.get(StaffSession, login.session_id)
    row.last_seen_at = clock.utcnow() - timedelta(minutes=121)  # idle past the limit
    session.flush()
    assert inbound_id not in _pending_for(session, agent_a, idle_minutes=120)
    assert inbound_id in _pending_for(session, agent_a, idle_minutes=180)


def test_a_reply_held_a_day_goes_to_a_manager(session, agent_a, manager):
    session.execute(update(StaffSession).values(ended_at=clock.utcnow()))
    borrower = _borrower(session)
    _loan(session, agent_a, borrower)
    open_session(session, manager)
    inbound_id = _reply(session, borrower).inbound_id
    assert inbound_id not in {r.inbound_id for r in deliverable_relays(session, limit=500)}
    row = session.get(InboundMessage, inbound_id)
    row.received_at = clock.utcnow() - timedelta(hours=HOLD_HOURS, minutes=1)
    session.flush()
    assert inbound_id in _pending_for(session, manager)
    open_session(session, agent_a)  # back in time after all: their own agent has it
    assert inbound_id in _pending_for(session, agent_a)


def test_a_disabled_agents_reply_goes_to_their_approving_manager(session, agent_a):
    # Only this test's managers are logged in (rolled back with the test).
    session.execute(update(StaffSession).values(ended_at=clock.utcnow()))
    first, approver = make_staff(session, role=Role.MANAGER), make_staff(session, role=Role.ADMIN)
    agent_a.decided_by_id = approver.id
    borrower = _borrower(session)
    _loan(session, agent_a, borrower)
    open_session(session, agent_a)
    agent_a.state = StaffState.DISABLED
    session.flush()
    inbound_id = _reply(session, borrower).inbound_id
    everyone = {r.inbound_id: r.agent_id for r in deliverable_relays(session, limit=500)}
    assert inbound_id not in everyone  # no manager logged in: held
    open_session(session, first)
    everyone = {r.inbound_id: r.agent_id for r in deliverable_relays(session, limit=500)}
    assert everyone[inbound_id] == first.id
    open_session(session, approver)
    everyone = {r.inbound_id: r.agent_id for r in deliverable_relays(session, limit=500)}
    assert everyone[inbound_id] == approver.id


# --- through the bot ---------------------------------------------------------------------


def _bot_loan(h: BotHarness, owner, phone: str) -> None:
    h.db(
        loans.add_loan,
        actor=actor_of(owner),
        phone=phone,
        name="Meena Rao",
        address="12 Hill Road",
        principal=Decimal(900),
        first_due=TODAY + timedelta(days=9),
        today=TODAY,
    )


async def test_new_with_another_agents_phone_answers_neutrally(settings, committed):
    async with BotHarness(settings, committed) as h:
        owner, agent = h.make_staff(Role.AGENT), h.make_staff(Role.AGENT)
        phone = _phone()
        _bot_loan(h, owner, phone)
        await h.say(agent, "/new")
        answer = await h.say(agent, phone)
        assert answer["text"].startswith(texts.NEW_PHONE_UNAVAILABLE)
        assert answer["text"].endswith(texts.NEW_ASK_PHONE)  # another number may be typed
        said = " ".join(m["text"] for m in h.sandbox.sent(agent.chat_id))
        assert "Meena" not in said and "Hill" not in said and "loan(s)" not in said
        await h.say(agent, "/cancel")

        def count(session):
            n_loans = session.scalar(
                select(func.count(Loan.id)).where(Loan.agent_id == agent.staff_id)
            )
            n_borrowers = session.scalar(
                select(func.count(Borrower.id)).where(Borrower.phone == phone)
            )
            return n_loans, n_borrowers

        assert h.db(count) == (0, 1)


async def test_a_held_reply_is_delivered_at_login(settings, committed):
    async with BotHarness(settings, committed) as h:
        agent = h.make_staff(Role.AGENT, logged_in=False)
        phone = _phone()
        _bot_loan(h, agent, phone)
        result = h.db(
            inbound.handle_inbound,
            provider_sid=f"SM{uuid.uuid4().hex}",
            from_phone=phone,
            body="Please come on Sunday",
            agency=Agency(name="Agency"),
            today=TODAY,
        )
        await h.silence(agent, 6)  # more than a relay run: held, not sent to a logged-out chat
        assert h.db(lambda s: s.get(InboundMessage, result.inbound_id).relayed_at) is None
        await h.say(agent, "/login")
        h.send(agent, agent.password)
        relay = await h.wait(agent, contains="Please come on Sunday")
        assert relay["text"].startswith("💬 Meena Rao")
        assert await until(
            lambda: h.db(lambda s: s.get(InboundMessage, result.inbound_id).relayed_at)
        )


async def test_edit_of_a_shared_borrowers_phone_is_refused_in_the_bot(settings, committed):
    from tests.bot_helpers import new_loan, tap

    async with BotHarness(settings, committed) as h:
        agent, other = h.make_staff(Role.AGENT), h.make_staff(Role.AGENT)
        mine = new_loan(h, agent)

        def share(session) -> str:
            loan = session.get(Loan, mine.id)
            make_loan(
                session,
                agent=session.get(Staff, other.staff_id),
                borrower=loan.borrower,
                loan_number=_number(),
            )
            return loan.borrower.phone

        old = h.db(share)
        fields = await h.say(agent, f"/edit {mine.number}")
        await tap(h, agent, fields, "Phone", contains="Phone now")
        answer = await h.say(agent, _phone())
        assert answer["text"] == "Only a manager can change this borrower's details."
        assert h.db(lambda s: s.get(Loan, mine.id).borrower.phone) == old


_BATCH = {"limit": 500, "idle_minutes": 120, "max_hours": 168}


def test_relay_batch_gives_each_deliverable_reply_its_loan(session, agent_a):
    borrower = _borrower(session)
    loan = _loan(session, agent_a, borrower)
    inbound_id = _reply(session, borrower).inbound_id
    assert inbound_id not in {r.inbound_id for r in relay_batch(session, **_BATCH).relays}
    open_session(session, agent_a)
    batch = relay_batch(session, staff_id=agent_a.id, **_BATCH)
    assert [r.inbound_id for r in batch.relays] == [inbound_id]
    assert batch.loan_ids == {inbound_id: loan.id}
