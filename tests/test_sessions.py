"""Logins, lockout, sessions and the command gate (db.services.staff.sessions via staff)."""

from __future__ import annotations

from datetime import timedelta
from functools import cache

import pytest
from sqlalchemy import select

from db import clock
from db.models import AuditEvent, Role, Staff, StaffSession, StaffState
from db.security import hash_password
from db.services.audit.write import AuditAction
from db.services.errors import AuthError
from db.services.staff import members as svc
from tests.factories import make_staff

PASSWORD = "correct horse battery"
WRONG = "incorrect horse battery"


@cache
def _hash() -> str:
    # One real argon2 hash for the module: every login still verifies against it.
    return hash_password(PASSWORD)


def _staff(session, **kw) -> Staff:
    staff = make_staff(session, **kw)
    staff.password_hash = _hash()
    session.flush()
    return staff


def _attempt(session, staff: Staff, password: str) -> AuthError:
    with pytest.raises(AuthError) as err:
        svc.login(session, telegram_user_id=staff.telegram_user_id, password=password)
    return err.value


def _count(session, staff: Staff, action: AuditAction) -> int:
    rows = session.scalars(
        select(AuditEvent).where(
            AuditEvent.action == action.value, AuditEvent.telegram_user_id == staff.telegram_user_id
        )
    )
    return len(list(rows))


def test_login_opens_a_session_and_is_audited(session):
    staff = _staff(session, role=Role.MANAGER)
    result = svc.login(session, telegram_user_id=staff.telegram_user_id, password=PASSWORD)
    assert result.staff.id == staff.id and result.staff.last_login_at is not None
    assert session.get(StaffSession, result.session_id).ended_at is None
    gate = svc.current_actor(session, telegram_user_id=staff.telegram_user_id)
    assert (gate.staff_id, gate.role) == (staff.id, Role.MANAGER)
    assert _count(session, staff, AuditAction.LOGIN) == 1

    again = svc.login(session, telegram_user_id=staff.telegram_user_id, password=PASSWORD)
    assert session.get(StaffSession, result.session_id).ended_at is not None
    assert session.get(StaffSession, again.session_id).ended_at is None


def test_lockout_after_five_failures_and_its_expiry(session):
    staff = _staff(session)
    lefts = [_attempt(session, staff, WRONG) for _ in range(4)]
    assert [e.code for e in lefts] == ["wrong_password"] * 4
    assert [e.params["attempts_left"] for e in lefts] == [4, 3, 2, 1]
    fifth = _attempt(session, staff, WRONG)
    assert fifth.code == "locked" and fifth.params["minutes_left"] == 15
    assert staff.locked_until == fifth.params["until"]
    # While locked even the right password is refused without being checked.
    locked = _attempt(session, staff, PASSWORD)
    assert locked.code == "locked" and 14 <= locked.params["minutes_left"] <= 15
    assert all(e.params["commit"] is True for e in [*lefts, fifth, locked])
    assert _count(session, staff, AuditAction.LOGIN_FAILED) == 5
    assert _count(session, staff, AuditAction.LOGIN_LOCKED) == 1

    clock.advance(timedelta(minutes=15, seconds=1))
    result = svc.login(session, telegram_user_id=staff.telegram_user_id, password=PASSWORD)
    assert result.staff.id == staff.id
    assert staff.failed_logins == 0 and staff.locked_until is None
    assert _count(session, staff, AuditAction.LOGIN) == 1


def test_an_expired_lock_gives_a_fresh_set_of_attempts(session):
    staff = _staff(session)
    for _ in range(5):
        _attempt(session, staff, WRONG)
    clock.advance(timedelta(minutes=16))
    assert _attempt(session, staff, WRONG).params["attempts_left"] == 4


def test_success_resets_the_failure_counter(session):
    staff = _staff(session)
    for _ in range(3):
        _attempt(session, staff, WRONG)
    svc.login(session, telegram_user_id=staff.telegram_user_id, password=PASSWORD)
    assert staff.failed_logins == 0
    errors = [_attempt(session, staff, WRONG) for _ in range(4)]
    assert errors[-1].code == "wrong_password" and errors[-1].params["attempts_left"] == 1


def test_failures_survive_when_the_adapter_commits_on_auth_error(session):
    staff = _staff(session)
    try:
        svc.login(session, telegram_user_id=staff.telegram_user_id, password=WRONG)
    except AuthError as err:  # the adapter's documented handling
        session.commit() if err.params.get("commit") else session.rollback()
    # A later refusal rolls back its own work only; the failure stays recorded.
    session.rollback()
    session.expire_all()
    assert session.get(Staff, staff.id).failed_logins == 1
    assert _count(session, staff, AuditAction.LOGIN_FAILED) == 1
    # Rolling back instead (the mistake the protocol prevents) loses the attempt.
    _attempt(session, staff, WRONG)
    session.rollback()
    session.expire_all()
    assert session.get(Staff, staff.id).failed_logins == 1
    assert _count(session, staff, AuditAction.LOGIN_FAILED) == 1


@pytest.mark.parametrize(
    ("state", "code"),
    [
        (StaffState.PENDING, "pending"),
        (StaffState.DISABLED, "disabled"),
        (StaffState.REJECTED, "not_staff"),
    ],
)
def test_login_refuses_staff_who_are_not_active(session, state, code):
    staff = _staff(session, state=state)
    err = _attempt(session, staff, PASSWORD)
    assert err.code == code and err.params["commit"] is True
    assert _count(session, staff, AuditAction.LOGIN_FAILED) == 1
    assert (
        session.scalars(select(StaffSession).where(StaffSession.staff_id == staff.id)).all() == []
    )


def test_unknown_users_and_users_without_password(session):
    with pytest.raises(AuthError) as err:
        svc.login(session, telegram_user_id=987_654_321_001, password=PASSWORD)
    assert err.value.code == "not_staff"
    (row,) = session.scalars(
        select(AuditEvent).where(AuditEvent.telegram_user_id == 987_654_321_001)
    ).all()
    assert row.action == AuditAction.LOGIN_FAILED.value and row.staff_id is None
    fresh = make_staff(session)
    assert _attempt(session, fresh, PASSWORD).code == "no_password"
    with pytest.raises(AuthError) as err:
        svc.current_actor(session, telegram_user_id=987_654_321_001)
    assert err.value.code == "not_staff"


def test_session_ends_after_idle_time(session):
    staff = _staff(session)
    result = svc.login(session, telegram_user_id=staff.telegram_user_id, password=PASSWORD)
    clock.advance(timedelta(minutes=119))
    svc.current_actor(session, telegram_user_id=staff.telegram_user_id)  # still alive
    clock.advance(timedelta(minutes=121))
    with pytest.raises(AuthError) as err:
        svc.current_actor(session, telegram_user_id=staff.telegram_user_id)
    assert err.value.code == "session_expired" and err.value.params["commit"] is True
    assert session.get(StaffSession, result.session_id).ended_at is not None
    with pytest.raises(AuthError) as err:
        svc.current_actor(session, telegram_user_id=staff.telegram_user_id)
    assert err.value.code == "no_session"


def test_session_ends_at_its_absolute_age_even_when_busy(session):
    staff = _staff(session)
    tg = staff.telegram_user_id
    result = svc.login(session, telegram_user_id=tg, password=PASSWORD)
    for _ in range(3):
        clock.advance(timedelta(minutes=50))
        svc.current_actor(session, telegram_user_id=tg, idle_minutes=60, max_hours=3)
    clock.advance(timedelta(minutes=50))  # 200 minutes in, never idle for an hour
    with pytest.raises(AuthError) as err:
        svc.current_actor(session, telegram_user_id=tg, idle_minutes=60, max_hours=3)
    assert err.value.code == "session_expired" and err.value.params["idle"] is False
    assert session.get(StaffSession, result.session_id).ended_at is not None


def test_last_seen_is_written_at_most_once_a_minute(session):
    staff = _staff(session)
    result = svc.login(session, telegram_user_id=staff.telegram_user_id, password=PASSWORD)
    row = session.get(StaffSession, result.session_id)
    first = row.last_seen_at
    clock.advance(timedelta(seconds=30))
    svc.current_actor(session, telegram_user_id=staff.telegram_user_id)
    assert row.last_seen_at == first
    clock.advance(timedelta(seconds=31))
    svc.current_actor(session, telegram_user_id=staff.telegram_user_id)
    assert row.last_seen_at > first


def test_logout_ends_the_session(session):
    staff = _staff(session)
    result = svc.login(session, telegram_user_id=staff.telegram_user_id, password=PASSWORD)
    svc.logout(session, telegram_user_id=staff.telegram_user_id)
    assert session.get(StaffSession, result.session_id).ended_at is not None
    assert _count(session, staff, AuditAction.LOGOUT) == 1
    with pytest.raises(AuthError) as err:
        svc.current_actor(session, telegram_user_id=staff.telegram_user_id)
    assert err.value.code == "no_session"
