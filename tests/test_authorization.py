"""Issue 9 item 2: the authorization matrix, every action × every role × the expected result.

MATRIX is the one table: every cell runs against the services (through current_actor,
the gate every bot command passes, so a logged-out or expired user is refused as the bot
refuses them), a sample runs through the real bot against the sandbox Bot API, and
docs/security.md carries the same table (test_docs_carry_the_same_table). After changing
MATRIX, regenerate the doc's table with:

    python -m tests.test_authorization

Results: "allowed" (the service did it: each cell's world is set up so that the action
succeeds, so any other refusal fails the cell), "refused" (AccessDenied / AuthError: a
role or session answer), "not found" (the same answer as for a loan that does not exist;
for find, list and stats: the loan is not among the results).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from db import clock
from db.config import Settings
from db.models import (
    ContactChannel,
    ContactOutcome,
    HoldKind,
    HoldOutcome,
    Loan,
    LoanHold,
    Role,
    Staff,
    StaffSession,
    StaffState,
)
from db.services import reports
from db.services.audit import read as auditlog
from db.services.broadcasts import compose as broadcasts
from db.services.broadcasts.audiences import Audience, AudienceKind
from db.services.collection import payments, promises
from db.services.errors import AccessDenied, AuthError, NotFound, ServiceError
from db.services.loans import add as loans
from db.services.loans import archive as loan_archive
from db.services.loans import holds
from db.services.loans.add import EditableField
from db.services.sms import deliveries, reminders
from db.services.staff import invites
from db.services.staff import members as staff_service
from db.services.staff.sessions import current_actor, open_session
from tests.factories import make_borrower, make_loan, make_staff

A, R, N = "allowed", "refused", "not found"
ROLES = [
    "agent, own loan",
    "agent, another's loan",
    "manager",
    "admin",
    "disabled",
    "logged out",
    "expired session",
]
_GATE = [R, R, R]  # disabled, logged out, expired: refused at the gate, whatever the action
_LOAN = [A, N, A, A, *_GATE]  # a loan action: an agent only on their own loans
_MANAGERS = [R, R, A, A, *_GATE]
_ADMINS = [R, R, R, A, *_GATE]

MATRIX: dict[str, list[str]] = {
    "card": _LOAN,
    "find": _LOAN,
    "list": _LOAN,
    "history": _LOAN,
    "pay": _LOAN,
    "promise": _LOAN,
    "contact": _LOAN,
    "edit loan": _LOAN,
    "edit borrower": _LOAN,
    "close": _LOAN,
    "write-off": _MANAGERS,
    "reassign": _MANAGERS,
    "delete (archives)": _ADMINS,
    "restore": _ADMINS,
    "dispute": _LOAN,
    "hardship": _LOAN,
    "resolve": _MANAGERS,
    "remind": _LOAN,
    "broadcast": _ADMINS,
    "deliveries": _ADMINS,
    "audit": _ADMINS,
    "staff": _MANAGERS,
    "invite": _ADMINS,
    "requests": _ADMINS,
    "stats": _LOAN,
}

DOC = Path(__file__).resolve().parent.parent / "docs" / "security.md"
_START, _END = "<!-- authorization-matrix:start -->", "<!-- authorization-matrix:end -->"


def render_matrix() -> str:
    """MATRIX as the Markdown table docs/security.md shows."""
    lines = ["| action | " + " | ".join(ROLES) + " |", "|---" * (len(ROLES) + 1) + "|"]
    lines += [f"| {action} | " + " | ".join(row) + " |" for action, row in MATRIX.items()]
    return "\n".join(lines)


def doc_matrix(text: str) -> str:
    """The table between the markers of docs/security.md."""
    return text.split(_START, 1)[1].split(_END, 1)[0].strip()


def write_doc() -> None:
    """Replace the table in docs/security.md with the one rendered from MATRIX."""
    text = DOC.read_text(encoding="utf-8")
    head, rest = text.split(_START, 1)
    tail = rest.split(_END, 1)[1]
    DOC.write_text(f"{head}{_START}\n{render_matrix()}\n{_END}{tail}", encoding="utf-8")


# --- the world one cell acts on ------------------------------------------------------------


class World:
    """An owner agent with a loan, another agent, a manager, an admin; all logged in."""

    def __init__(self, session: Session, settings: Settings) -> None:
        self.session, self.settings = session, settings
        self.today = clock.utcnow().date()
        self.owner = make_staff(session, role=Role.AGENT)
        self.other = make_staff(session, role=Role.AGENT)
        self.manager = make_staff(session, role=Role.MANAGER)
        self.admin = make_staff(session, role=Role.ADMIN)
        for person in (self.owner, self.other, self.manager, self.admin):
            person.password_hash = "set"  # current_actor needs a password; never checked here
            open_session(session, person)
        phone = f"+9195{uuid.uuid4().int % 10**8:08d}"
        borrower = make_borrower(session, name="Asha Devi", phone=phone)
        self.loan = make_loan(
            session,
            agent=self.owner,
            borrower=borrower,
            loan_number=f"AZ-{uuid.uuid4().hex[:8].upper()}",
        )
        self.number = self.loan.loan_number

    def staff_for(self, role: str) -> Staff:
        """The staff member playing role, put in that state."""
        who = {
            "agent, another's loan": self.other,
            "manager": self.manager,
            "admin": self.admin,
        }.get(role, self.owner)
        if role == "disabled":
            who.state = StaffState.DISABLED
        elif role in ("logged out", "expired session"):
            old = clock.utcnow() - timedelta(days=30)
            values = (
                {"ended_at": clock.utcnow()}
                if role == "logged out"
                else {"last_seen_at": old, "started_at": old}
            )
            self.session.execute(
                update(StaffSession).where(StaffSession.staff_id == who.id).values(**values)
            )
        self.session.flush()
        return who

    def paid_off(self) -> None:
        loan = self.session.get(Loan, self.loan.id)
        loan.amount_paid = loan.amount_payable
        self.session.flush()


def _seen(found: bool) -> None:
    """List-like actions: not seeing the loan is the 'not found' answer."""
    if not found:
        raise NotFound("not in the results", code="loan_not_found")


def _restore(w: World, actor) -> None:
    """Restore the world's loan, archived beforehand (as an admin would have)."""
    w.session.execute(
        update(Loan)
        .where(Loan.id == w.loan.id)
        .values(
            archived_at=clock.utcnow(), archived_by_id=w.admin.id, archive_reason="entered twice"
        )
    )
    w.session.flush()
    loan_archive.restore_loan(
        w.session, actor=actor, loan_number=w.number, reason="paid, not twice"
    )


def _resolve(w: World, actor) -> None:
    """Resolve a dispute the world's agent opened beforehand."""
    w.session.add(
        LoanHold(
            loan_id=w.loan.id,
            kind=HoldKind.DISPUTE,
            note="wrong amount",
            opened_by_id=w.owner.id,
            opened_at=clock.utcnow(),
        )
    )
    w.session.flush()
    holds.resolve_hold(
        w.session,
        actor=actor,
        loan_number=w.number,
        outcome=HoldOutcome.REJECTED,
        reason="checked the receipts",
        today=w.today,
    )


def _act(w: World, action: str, actor) -> None:
    s, n, t, cfg = w.session, w.number, w.today, w.settings
    calls: dict[str, Callable[[], object]] = {
        "card": lambda: loans.get_loan(s, actor=actor, loan_number=n, today=t),
        "find": lambda: _seen(
            any(i.loan_number == n for i in loans.search_loans(s, actor=actor, text=n, today=t)[0])
        ),
        "list": lambda: _seen(
            any(
                i.loan_number == n
                for i in loans.list_loans(s, actor=actor, today=t, limit=100).items
            )
        ),
        "history": lambda: loans.loan_history(s, actor=actor, loan_number=n),
        "pay": lambda: payments.record_payment(
            s, actor=actor, loan_number=n, amount=Decimal(100), today=t
        ),
        "promise": lambda: promises.record_promise(
            s,
            actor=actor,
            loan_number=n,
            amount=Decimal(100),
            promised_date=t + timedelta(days=3),
            today=t,
        ),
        "contact": lambda: promises.record_contact(
            s,
            actor=actor,
            loan_number=n,
            channel=ContactChannel.CALL,
            outcome=ContactOutcome.NO_ANSWER,
            note=None,
        ),
        "edit loan": lambda: loans.edit_loan(
            s,
            actor=actor,
            loan_number=n,
            field=EditableField.NEXT_DUE_DATE,
            value="+25",
            expected_version=None,
            today=t,
        ),
        "edit borrower": lambda: loans.edit_loan(
            s,
            actor=actor,
            loan_number=n,
            field=EditableField.BORROWER_ADDRESS,
            value="7 Temple Street",
            expected_version=None,
            today=t,
        ),
        "close": lambda: (
            w.paid_off(),
            loans.close_loan(s, actor=actor, loan_number=n, expected_version=None, today=t),
        ),
        "write-off": lambda: loans.write_off_loan(
            s, actor=actor, loan_number=n, reason="moved away", expected_version=None, today=t
        ),
        "reassign": lambda: loans.reassign_loan(
            s, actor=actor, loan_number=n, agent_id=w.other.id, today=t
        ),
        "delete (archives)": lambda: loan_archive.archive_loan(
            s, actor=actor, loan_number=n, reason="entered twice"
        ),
        "restore": lambda: _restore(w, actor),
        "dispute": lambda: holds.open_hold(
            s, actor=actor, loan_number=n, kind=HoldKind.DISPUTE, note="wrong amount", today=t
        ),
        "hardship": lambda: holds.open_hold(
            s,
            actor=actor,
            loan_number=n,
            kind=HoldKind.HARDSHIP,
            note="lost his job",
            today=t,
            until=t + timedelta(days=30),
        ),
        "resolve": lambda: _resolve(w, actor),
        "remind": lambda: reminders.queue_reminder_now(
            s, actor=actor, loan_number=n, today=t, settings=cfg
        ),
        "broadcast": lambda: broadcasts.preview_broadcast(
            s,
            actor=actor,
            audience=Audience(AudienceKind.ALL_ACTIVE),
            template="Please pay {outstanding}.",
            today=t,
            settings=cfg,
        ),
        "deliveries": lambda: deliveries.delivery_report(s, actor=actor, now=clock.utcnow()),
        "audit": lambda: auditlog.recent_audit(s, actor=actor),
        "staff": lambda: staff_service.list_staff(s, actor=actor),
        "invite": lambda: invites.create_invite(s, actor=actor, role=Role.AGENT),
        "requests": lambda: staff_service.list_requests(s, actor=actor),
        "stats": lambda: _seen(
            reports.portfolio(
                s, actor=actor, today=t, tz=w.settings.tz, agent_id=w.owner.id
            ).loans_active
            > 0
        ),
    }
    calls[action]()


def outcome(w: World, action: str, role: str) -> str:
    """What happens when role tries action: A, R or N."""
    who = w.staff_for(role)
    try:
        with w.session.begin_nested():  # a refusal leaves nothing behind, as in the bot
            actor = current_actor(w.session, telegram_user_id=who.telegram_user_id)
            _act(w, action, actor)
    except (AccessDenied, AuthError):
        return R
    except NotFound:
        return N
    except ServiceError as err:  # every cell's setup lets the action succeed: a bug
        return f"unexpected {type(err).__name__} {err.code}: {err.message}"
    return A


CELLS = [
    (action, role, expected)
    for action, row in MATRIX.items()
    for role, expected in zip(ROLES, row, strict=True)
]


@pytest.mark.parametrize(
    ("action", "role", "expected"), CELLS, ids=[f"{a}|{r}" for a, r, _ in CELLS]
)
def test_matrix_cell_against_the_services(session, settings, action, role, expected) -> None:
    assert outcome(World(session, settings), action, role) == expected


def test_every_action_and_role_has_a_cell() -> None:
    assert len(MATRIX) == 25 and all(len(row) == len(ROLES) for row in MATRIX.values())
    assert set(MATRIX) == {
        "card",
        "find",
        "list",
        "history",
        "pay",
        "promise",
        "contact",
        "edit loan",
        "edit borrower",
        "close",
        "write-off",
        "reassign",
        "delete (archives)",
        "restore",
        "dispute",
        "hardship",
        "resolve",
        "remind",
        "broadcast",
        "deliveries",
        "audit",
        "staff",
        "invite",
        "requests",
        "stats",
    }


def test_docs_carry_the_same_table() -> None:
    assert doc_matrix(DOC.read_text(encoding="utf-8")) == render_matrix(), (
        "docs/security.md differs from MATRIX: run python -m tests.test_authorization"
    )


if __name__ == "__main__":
    write_doc()
    print(f"wrote the authorization matrix to {DOC}")


# --- a sample of the cells through the real bot ------------------------------------------

BOT_SAMPLE = [  # (action, role, what the user sends; {n} is the loan number)
    ("card", "agent, own loan", "/loan {n}"),
    ("card", "agent, another's loan", "/loan {n}"),
    ("card", "manager", "/loan {n}"),
    ("card", "disabled", "/loan {n}"),
    ("card", "logged out", "/loan {n}"),
    ("card", "expired session", "/loan {n}"),
    ("find", "agent, another's loan", "/find {n}"),
    ("history", "agent, another's loan", "/history {n}"),
    ("pay", "agent, another's loan", "/pay {n} 100"),
    ("remind", "agent, another's loan", "/remind {n}"),
    ("delete (archives)", "manager", "/delete {n}"),
    ("audit", "agent, own loan", "/audit"),
    ("audit", "admin", "/audit"),
    ("staff", "agent, own loan", "/staff"),
    ("invite", "manager", "/invite agent"),
    ("deliveries", "manager", "/deliveries"),
]


def _bot_outcome(text: str, number: str) -> str:
    """How the bot's answer reads: refused, not found (as for a loan that does not exist)
    or allowed."""
    from bot import texts  # the bot's sentences, only for these end-to-end cells

    if f"No loan {number} found" in text or text.startswith(texts.FIND_NONE.split("“")[0]):
        return N
    gate = (texts.PLEASE_LOGIN, texts.SESSION_EXPIRED, texts.DISABLED)
    return R if text in gate or text.startswith("Only ") else A


def _bot_person(h, role: str, owner):
    from tests.bot_harness import Person

    if role == "agent, own loan":
        return owner
    rank = {"manager": Role.MANAGER, "admin": Role.ADMIN}.get(role, Role.AGENT)
    who: Person = h.make_staff(rank, logged_in=role != "logged out")
    if role == "disabled":
        h.db(
            lambda s: s.execute(
                update(Staff).where(Staff.id == who.staff_id).values(state=StaffState.DISABLED)
            )
        )
    elif role == "expired session":
        old = clock.utcnow() - timedelta(days=30)
        h.db(
            lambda s: s.execute(
                update(StaffSession)
                .where(StaffSession.staff_id == who.staff_id)
                .values(last_seen_at=old, started_at=old)
            )
        )
    return who


async def test_a_sample_of_cells_through_the_bot(settings, committed) -> None:
    from tests.bot_harness import BotHarness
    from tests.bot_helpers import new_loan

    async with BotHarness(settings, committed) as h:
        owner = h.make_staff(Role.AGENT)
        seen = {}
        for action, role, command in BOT_SAMPLE:
            loan = new_loan(h, owner)
            who = _bot_person(h, role, owner)
            answer = await h.say(who, command.format(n=loan.number))
            seen[(action, role)] = _bot_outcome(answer["text"], loan.number)
            await h.say(who, "/cancel")  # leave no conversation open for the next cell
        expected = {(a, r): MATRIX[a][ROLES.index(r)] for a, r, _ in BOT_SAMPLE}
        assert seen == expected
