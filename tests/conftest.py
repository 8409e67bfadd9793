"""Test harness: one database per run, migrated once with alembic; each test rolled back.

SQLite (a file in a temporary folder) by default; PostgreSQL when TEST_DATABASE_URL is set.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, delete
from sqlalchemy.orm import Session, sessionmaker

from db import clock
from db.config import Settings, load_settings
from db.migrate import upgrade
from db.models import Base, Role
from db.session import make_engine, make_session_factory
from scheduler.sandbox import CallbackTiming, TwilioSandbox
from tests.factories import SMS_NOW, make_staff


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        return load_settings(database_url=url).database_url
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    eng = make_engine(database_url)
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session inside a transaction that is rolled back after the test."""
    conn = engine.connect()
    trans = conn.begin()
    sess = Session(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)
    try:
        yield sess
    finally:
        sess.close()
        trans.rollback()
        conn.close()


@pytest.fixture
def committed(engine: Engine) -> Iterator[sessionmaker[Session]]:
    """For tests whose code commits in other threads or tasks: real commits, emptied after."""
    factory = make_session_factory(engine)
    try:
        yield factory
    finally:
        with engine.begin() as conn:
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(delete(table))


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Settings for tests: the test database, nothing read from a developer's .env."""
    return Settings(_env_file=None, database_url=database_url)


@pytest.fixture(autouse=True)
def _real_clock() -> Iterator[None]:
    clock.reset()
    yield
    clock.reset()


# -- the Twilio sandbox: each module that uses it starts its own `sandbox` (with its own seed) --


@pytest.fixture
def sb(sandbox: TwilioSandbox) -> TwilioSandbox:
    """The module's Twilio sandbox, as new: no messages, latency, faults or inbound URL."""
    sandbox.reset()
    sandbox.latency = 0.0
    sandbox.callback_timing = CallbackTiming()
    sandbox.failure_profile = None
    sandbox.inbound_url = None
    return sandbox


@pytest.fixture
def at_now() -> None:
    """The shared clock (ours and the sandbox's) reads SMS_NOW."""
    clock.advance(SMS_NOW - clock.utcnow())


# -- people and "today" for service tests (a test module may define its own instead) -------


@pytest.fixture
def today():
    """Today in the agency's default zone."""
    return clock.today(ZoneInfo("Asia/Kolkata"))


@pytest.fixture
def agent(session: Session):
    return make_staff(session, role=Role.AGENT)


@pytest.fixture
def agent_a(agent):
    return agent


@pytest.fixture
def agent_b(session: Session):
    return make_staff(session, role=Role.AGENT)


@pytest.fixture
def manager(session: Session):
    return make_staff(session, role=Role.MANAGER)


@pytest.fixture
def admin(session: Session):
    return make_staff(session, role=Role.ADMIN)
