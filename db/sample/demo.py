"""The demo agency: sample data seeded once, staff with known passwords, already logged in.

For `vasooli demo` only, never for a real database: the passwords are printed on screen.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from db import clock
from db.agency import agency_of
from db.config import Settings
from db.migrate import upgrade
from db.models import Loan, Role, Staff, StaffSession, StaffState
from db.sample.seed import seed
from db.sample.shapes import STAFF_TELEGRAM_BASE
from db.security import hash_password, verify_password
from db.services.audit.write import AuditAction, audit
from db.services.staff.sessions import as_actor, load_staff, start_session

log = logging.getLogger(__name__)

DEMO_BORROWERS = 300
DEMO_LOANS = 400
DEMO_AGENTS = 3
DEMO_SEED = 7
# Known on purpose: the banner shows them so `/login` can be tried in the demo.
DEMO_PASSWORDS = {
    Role.ADMIN: "admin-demo-pass",
    Role.MANAGER: "manager-demo-pass",
    Role.AGENT: "agent-demo-pass",
}


@dataclass(frozen=True)
class DemoPerson:
    """A seeded staff member the terminal chat can play."""

    key: str  # what `:as` takes: admin, manager, agent, agent2, agent3
    role: Role | None  # None: a Telegram user who is not staff (yet)
    name: str
    telegram_user_id: int
    password: str


@dataclass(frozen=True)
class DemoAgency:
    """What prepare_demo found or made."""

    people: tuple[DemoPerson, ...]
    seeded: bool  # True when the sample data was added just now
    loans: int


def prepare_demo(engine: Engine, settings: Settings) -> DemoAgency:
    """Migrate, seed the sample agency once, and log every demo staff member in."""
    upgrade(engine)
    with Session(engine) as session, session.begin():
        admin_id = STAFF_TELEGRAM_BASE + 1
        fresh = session.scalar(select(Staff.id).where(Staff.telegram_user_id == admin_id)) is None
        if fresh:
            report = seed(
                session,
                borrowers=DEMO_BORROWERS,
                loans=DEMO_LOANS,
                seed=DEMO_SEED,
                agents=DEMO_AGENTS,
                today=clock.today(settings.tz),
                agency=agency_of(settings),
            )
            log.info("demo: seeded %s loans for %s borrowers", report.loans, report.borrowers)
        people = _people(session)
        hashes: dict[str, str] = {}  # argon2 is slow on purpose: once per demo password
        for person in people:
            _log_in(session, person, hashes)
        loans = _count_loans(session)
    return DemoAgency(people=people, seeded=fresh, loans=loans)


def _people(session: Session) -> tuple[DemoPerson, ...]:
    ids = [STAFF_TELEGRAM_BASE + n for n in range(1, 3 + DEMO_AGENTS)]
    rows = session.scalars(
        select(Staff).where(Staff.telegram_user_id.in_(ids)).order_by(Staff.telegram_user_id)
    ).all()
    people, agents = [], 0
    for staff in rows:
        key = staff.role.value
        if staff.role is Role.AGENT:
            agents += 1
            key = "agent" if agents == 1 else f"agent{agents}"
        people.append(
            DemoPerson(
                key, staff.role, staff.name, staff.telegram_user_id, DEMO_PASSWORDS[staff.role]
            )
        )
    return tuple(people)


def _log_in(session: Session, person: DemoPerson, hashes: dict[str, str]) -> None:
    """Give the person their demo password and an open session, unless they have both."""
    staff = load_staff(session, person.telegram_user_id)
    assert staff is not None  # _people() found them
    # Seeded staff have no chat yet; the bot writes to them there (relays, requests).
    staff.telegram_chat_id = staff.telegram_chat_id or staff.telegram_user_id
    if staff.state is not StaffState.ACTIVE:
        return  # disabled in an earlier run: the demo shows that as it is
    has_session = (
        session.scalar(
            select(StaffSession.id)
            .where(StaffSession.staff_id == staff.id, StaffSession.ended_at.is_(None))
            .limit(1)
        )
        is not None
    )
    if has_session and staff.password_hash is not None:
        return
    if staff.password_hash is None or not verify_password(person.password, staff.password_hash):
        if person.password not in hashes:
            hashes[person.password] = hash_password(person.password)
        staff.password_hash = hashes[person.password]
        audit(
            session,
            actor=as_actor(staff),
            action=AuditAction.PASSWORD_SET,
            target_type="staff",
            target_id=staff.id,
            details={"demo": True},
        )
    start_session(session, staff, details={"demo": True})


def _count_loans(session: Session) -> int:
    return session.scalar(select(func.count(Loan.id))) or 0
