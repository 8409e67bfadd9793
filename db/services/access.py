"""Who may do what: the one place the rules live, so no adapter can forget them."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Select

from db.models import Loan, Role, Staff, StaffState
from db.services.errors import AccessDenied, NotFound

_RANK = {Role.AGENT: 0, Role.MANAGER: 1, Role.ADMIN: 2}


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
        return self.role in (Role.MANAGER, Role.ADMIN)

    def at_least(self, role: Role) -> bool:
        return _RANK[self.role] >= _RANK[role]


def require_role(actor: Actor, role: Role, what: str) -> None:
    """Refuse unless actor has at least role."""
    if not actor.at_least(role):
        who = "admins" if role is Role.ADMIN else f"{role.value}s and admins"
        raise AccessDenied(f"Only {who} may {what}.", code="role", role=role)


def scope_loans(stmt: Select, actor: Actor) -> Select:
    """Restrict a SELECT over Loan to the loans actor may see."""
    if actor.sees_all_loans:
        return stmt
    return stmt.where(Loan.agent_id == actor.staff_id)


def check_loan(actor: Actor, loan: Loan | None, number: str = "") -> Loan:
    """The loan if actor may see it; otherwise the same NotFound as a missing loan."""
    if loan is None or not (actor.sees_all_loans or loan.agent_id == actor.staff_id):
        raise NotFound(f"No loan {number} found.".replace("  ", " "), code="loan_not_found")
    return loan
