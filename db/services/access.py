"""Who may do what: the one place the rules live, so no adapter can forget them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, ScalarSelect, Select, SQLColumnExpression, exists, or_, select
from sqlalchemy.orm import Session

from db.models import ApprovalKind, Borrower, HoldKind, Loan, LoanHold, Role, Staff, StaffState
from db.services.errors import AccessDenied, NotFound

_RANK = {Role.AGENT: 0, Role.MANAGER: 1, Role.ADMIN: 2}
# Finance has no rank: it reads everything an admin reads (require_reader, sees_all_loans,
# archived loans) and changes nothing (require_role and refuse_read_only refuse it).
_READ_ONLY = frozenset({Role.FINANCE})

# Loans that are not archived: every list, search, reminder, report and job filters on it.
LIVE_LOAN = Loan.archived_at.is_(None)

# The holds that pause collection: an open dispute, or hardship until its day.
PAUSING = (HoldKind.DISPUTE, HoldKind.HARDSHIP)


def _open_hold(
    loan_id: SQLColumnExpression[int | None], today: date, kinds: tuple[HoldKind, ...] = PAUSING
) -> list[ColumnElement[bool]]:
    return [
        LoanHold.loan_id == loan_id,
        LoanHold.kind.in_(kinds),
        LoanHold.resolved_at.is_(None),
        or_(LoanHold.until.is_(None), LoanHold.until > today),
    ]


def on_hold(
    today: date,
    loan_id: SQLColumnExpression[int | None] | None = None,
    kinds: tuple[HoldKind, ...] = PAUSING,
) -> ColumnElement[bool]:
    """EXISTS an open dispute or hardship pause on the loan: no reminders, no late fees."""
    return exists().where(*_open_hold(Loan.id if loan_id is None else loan_id, today, kinds))


def hold_kind(loan_id: SQLColumnExpression[int | None], today: date) -> ScalarSelect[Any]:
    """The kind of the loan's open pausing hold (NULL when none), for a column of a SELECT."""
    return select(LoanHold.kind).where(*_open_hold(loan_id, today)).limit(1).scalar_subquery()


@dataclass(frozen=True)
class Actor:
    """The staff member acting, as the services need to know them."""

    staff_id: int
    role: Role
    name: str = ""

    @classmethod
    def of(cls, staff: Staff) -> Actor:
        if staff.state != StaffState.ACTIVE:
            raise AccessDenied("Your account is not active.", code="inactive")
        return cls(staff_id=staff.id, role=staff.role, name=staff.name)

    @property
    def sees_all_loans(self) -> bool:
        return self.role in (Role.MANAGER, Role.ADMIN, Role.FINANCE)

    @property
    def read_only(self) -> bool:
        """True for a role that reads and never changes anything (finance)."""
        return self.role in _READ_ONLY

    @property
    def sees_archived(self) -> bool:
        return self.role in (Role.ADMIN, Role.FINANCE)

    def at_least(self, role: Role) -> bool:
        """Rank for changes: a read-only role reaches none (see may_read for reading)."""
        return self.role in _RANK and _RANK[self.role] >= _RANK[role]

    def may_read(self, role: Role) -> bool:
        """What role may read, a read-only role reads too (finance reads what admins read)."""
        return self.read_only or self.at_least(role)


def _only(role: Role, what: str, *, readers: bool = False) -> AccessDenied:
    who = "admins" if role is Role.ADMIN else f"{role.value}s and admins"
    if readers:
        who = "admins and finance" if role is Role.ADMIN else f"{role.value}s, admins and finance"
    return AccessDenied(f"Only {who} may {what}.", code="role", role=role)


# A SELECT of any columns: scoping keeps its type.
SelectT = TypeVar("SelectT", bound=Select[Any])


def require_role(actor: Actor, role: Role, what: str) -> None:
    """Refuse unless actor has at least role (a change: finance never passes)."""
    if not actor.at_least(role):
        raise _only(role, what)


def require_reader(actor: Actor, role: Role, what: str) -> None:
    """Refuse a reading unless actor has at least role or reads everything (finance)."""
    if not actor.may_read(role):
        raise _only(role, what, readers=True)


def refuse_read_only(actor: Actor, what: str = "change anything") -> None:
    """Every change refuses a read-only role (finance), whatever the loan or record."""
    if actor.read_only:
        raise AccessDenied(
            f"Only agents, managers and admins may {what}; finance reads only.", code="read_only"
        )


def scope_loans(stmt: SelectT, actor: Actor) -> SelectT:
    """Restrict a SELECT over Loan to the loans actor may see."""
    if actor.sees_all_loans:
        return stmt
    return stmt.where(Loan.agent_id == actor.staff_id)


def scope_live_loans(stmt: SelectT, actor: Actor) -> SelectT:
    """scope_loans, and archived loans left out (the lists and searches of every role)."""
    return scope_loans(stmt, actor).where(LIVE_LOAN)


def check_loan(actor: Actor, loan: Loan | None, number: str = "") -> Loan:
    """The loan if actor may see it; otherwise the same NotFound as a missing loan.

    An archived loan is seen by admins only (its card and history; they may restore it),
    and by finance, which reads what admins read.
    """
    if loan is not None and loan.archived_at is not None and not actor.sees_archived:
        loan = None
    if loan is None or not (actor.sees_all_loans or loan.agent_id == actor.staff_id):
        raise NotFound(f"No loan {number} found.".replace("  ", " "), code="loan_not_found")
    return loan


# --- borrowers: scoped like loans -------------------------------------------------------
# An agent sees and changes a borrower only when every loan of that borrower is theirs: a
# borrower shared with another agent (or held by nobody) is the managers' to change, and
# a borrower with no loan at all (its creator is not recorded) is theirs too.

PHONE_UNAVAILABLE = "This phone number cannot be used here; ask your manager."


def _foreign_loan(borrower_id: SQLColumnExpression[int] | int, actor: Actor) -> ColumnElement[bool]:
    """EXISTS a loan of the borrower that is not actor's (or held by nobody)."""
    return exists().where(
        Loan.borrower_id == borrower_id,
        or_(Loan.agent_id.is_(None), Loan.agent_id != actor.staff_id),
    )


def scope_borrowers(stmt: SelectT, actor: Actor) -> SelectT:
    """Restrict a SELECT over Borrower to the borrowers actor may see and change."""
    if actor.sees_all_loans:
        return stmt
    own = exists().where(Loan.borrower_id == Borrower.id, Loan.agent_id == actor.staff_id)
    return stmt.where(own, ~_foreign_loan(Borrower.id, actor))


def borrower_in_scope(session: Session, *, actor: Actor, borrower_id: int) -> bool:
    """True when actor may see and change this borrower (see the comment above)."""
    stmt = scope_borrowers(select(Borrower.id).where(Borrower.id == borrower_id), actor)
    return session.scalar(stmt) is not None


def check_borrower(session: Session, *, actor: Actor, borrower_id: int) -> None:
    """Refuse, with the neutral answer that names nobody, a borrower out of actor's scope."""
    if not borrower_in_scope(session, actor=actor, borrower_id=borrower_id):
        raise AccessDenied(PHONE_UNAVAILABLE, code="phone_unavailable")


def check_borrower_editable(session: Session, *, actor: Actor, borrower_id: int) -> None:
    """An agent changes a borrower's name, phone or address only when the borrower is
    wholly theirs: otherwise the change would redirect another agent's SMS."""
    if not borrower_in_scope(session, actor=actor, borrower_id=borrower_id):
        raise AccessDenied(
            "Only a manager can change this borrower's details.", code="borrower_shared"
        )


# --- approvals: who may decide a request (four eyes) -------------------------------------
# Managers and admins decide every kind; a write-off of more than the agency's limit
# (APPROVAL_WRITE_OFF_ADMIN_ABOVE) is the admins' alone. Nobody decides their own request,
# whatever their role: an admin's write-off waits for another manager or admin.

DEFAULT_WRITE_OFF_ADMIN_ABOVE = Decimal("100000")


def approver_role(
    kind: ApprovalKind,
    *,
    amount: Decimal = Decimal("0"),
    write_off_admin_above: Decimal = DEFAULT_WRITE_OFF_ADMIN_ABOVE,
) -> Role:
    """The least role that may decide a request of this kind for this amount."""
    if kind is ApprovalKind.WRITE_OFF and amount > write_off_admin_above:
        return Role.ADMIN
    return Role.MANAGER


def check_approver(actor: Actor, *, least: Role, requested_by_id: int) -> None:
    """Refuse a decision by the requester themself or by a role below least."""
    if actor.staff_id == requested_by_id:
        raise AccessDenied(
            "You cannot decide your own request; another manager or admin must.",
            code="own_request",
        )
    require_role(actor, least, "decide this request")
