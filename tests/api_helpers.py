"""For the JSON API's tests: the app as `vasooli web` mounts it, a small agency, keys."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from sqlalchemy.orm import Session, sessionmaker

from cli.miniapp import web_app
from db import clock
from db.config import Settings
from db.models import Role
from db.services.staff.api_keys import ApiScope, create_api_key
from tests.factories import actor, make_borrower, make_loan, make_staff


@dataclass
class Agency:
    admin_id: int
    manager_id: int
    agent_a_id: int
    agent_b_id: int
    loan_a: str  # agent A's loan
    loan_b: str  # agent B's loan
    borrower_a_id: int
    borrower_b_id: int


def make_agency(factory: sessionmaker[Session]) -> Agency:
    with factory() as session:
        admin = make_staff(session, role=Role.ADMIN, name="Arun Admin")
        manager = make_staff(session, role=Role.MANAGER, name="Meera Manager")
        agent_a = make_staff(session, role=Role.AGENT, name="Asha Agent")
        agent_b = make_staff(session, role=Role.AGENT, name="Bala Agent")
        due = clock.utcnow().date() + timedelta(days=10)
        ba = make_borrower(session, name="Ravi Kumar")
        bb = make_borrower(session, name="Sita Devi")
        la = make_loan(
            session, agent=agent_a, borrower=ba, principal=Decimal("5000.00"), first_due=due
        )
        lb = make_loan(
            session, agent=agent_b, borrower=bb, principal=Decimal("7000.00"), first_due=due
        )
        out = Agency(
            admin.id,
            manager.id,
            agent_a.id,
            agent_b.id,
            la.loan_number,
            lb.loan_number,
            ba.id,
            bb.id,
        )
        session.commit()
    return out


def new_key(
    factory: sessionmaker[Session],
    admin_id: int,
    *scopes: ApiScope,
    for_staff: int | None = None,
) -> tuple[int, str]:
    """(key id, token) of a key made by the admin, acting as for_staff (default: the admin)."""
    with factory() as session:
        from db.models import Staff

        made = create_api_key(
            session,
            actor=actor(session.get_one(Staff, admin_id)),
            name="test key",
            scopes=scopes or (ApiScope.READ,),
            for_staff=None if for_staff is None else str(for_staff),
        )
        session.commit()
    return made.info.id, made.token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def api_settings(database_url: str, **overrides: object) -> Settings:
    """Settings `vasooli web` accepts (Twilio's token and the public URL are required)."""
    return Settings(
        _env_file=None,
        database_url=database_url,
        public_base_url="https://vasooli.example",
        twilio_auth_token="test-twilio-token",
        **overrides,
    )


def api_app(settings: Settings, factory: sessionmaker[Session]):
    """The whole web app `vasooli web` serves (the API is at /api/v1)."""
    return web_app(settings, factory)
