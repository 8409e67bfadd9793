"""Staff services: invites, access requests, approvals, roles, states, lookups; db.security."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from db import clock
from db.models import AuditEvent, Invite, Role, Staff, StaffSession, StaffState
from db.security import (
    check_password_rules,
    hash_code,
    hash_password,
    new_invite_code,
    verify_password,
)
from db.services.audit.write import AuditAction
from db.services.errors import AccessDenied, AuthError, Conflict, InvalidInput, NotFound
from db.services.staff import members as svc
from tests.factories import actor, make_staff

PASSWORD = "correct horse battery"
_CODE_CHARS = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def _audits(session, action: AuditAction, **where) -> list[AuditEvent]:
    stmt = select(AuditEvent).where(AuditEvent.action == action.value)
    for key, value in where.items():
        stmt = stmt.where(getattr(AuditEvent, key) == value)
    return list(session.scalars(stmt))


def _redeem(session, code: str, tg: int, **kw):
    args = {"chat_id": tg, "name": "New Person", "username": None, "password": PASSWORD}
    return svc.redeem_invite(session, code=code, telegram_user_id=tg, **(args | kw))


# --- db.security -------------------------------------------------------------------------


def test_invite_codes_are_deep_link_safe_and_distinct():
    codes = {new_invite_code() for _ in range(200)}
    assert len(codes) == 200
    assert all(_CODE_CHARS.match(c) and len(c) == 16 for c in codes)
    code = next(iter(codes))
    assert hash_code(code) == hashlib.sha256(code.encode()).hexdigest() == hash_code(code)


@pytest.mark.parametrize(
    ("password", "code"),
    [
        ("short7!", "password_short"),
        ("x" * 129, "password_long"),
        ("aaaaaaaaaa", "password_common"),
        ("Password123", "password_common"),
        ("tab\there-is-bad", "password_control"),
    ],
)
def test_password_rules_refuse_with_a_specific_sentence(password, code):
    with pytest.raises(InvalidInput) as err:
        check_password_rules(password)
    assert err.value.code == code and err.value.message.endswith(".")


def test_argon2_hash_verifies_only_the_right_password():
    hashed = hash_password(PASSWORD)
    assert hashed.startswith("$argon2") and PASSWORD not in hashed
    assert verify_password(PASSWORD, hashed)
    assert not verify_password(PASSWORD + "x", hashed)
    assert not verify_password(PASSWORD, "not-a-hash")
    assert not verify_password(PASSWORD, None)
    check_password_rules(PASSWORD)  # accepted: no exception


# --- invites -----------------------------------------------------------------------------


def test_invite_stores_only_the_hash_and_is_audited(session):
    invite = svc.create_invite(session, actor=None, role=Role.MANAGER)
    assert _CODE_CHARS.match(invite.code)
    row = session.get(Invite, invite.invite_id)
    assert row.code_hash == hash_code(invite.code)
    stored = [str(getattr(row, c.key)) for c in Invite.__table__.columns]
    assert not any(invite.code in value for value in stored)
    lifetime = invite.expires_at - clock.utcnow()
    assert timedelta(hours=72) - timedelta(seconds=5) < lifetime <= timedelta(hours=72)
    (event,) = _audits(session, AuditAction.INVITE_CREATED, target_id=str(row.id))
    assert event.staff_id is None and invite.code not in str(event.details)
    assert svc.check_invite(session, code=invite.code) == Role.MANAGER


def test_only_admins_may_invite(session):
    manager = make_staff(session, role=Role.MANAGER)
    with pytest.raises(AccessDenied):
        svc.create_invite(session, actor=actor(manager), role=Role.AGENT)
    admin = make_staff(session, role=Role.ADMIN)
    invite = svc.create_invite(session, actor=actor(admin), role=Role.AGENT, valid_hours=1)
    assert session.get(Invite, invite.invite_id).created_by_id == admin.id
    with pytest.raises(InvalidInput):
        svc.create_invite(session, actor=None, role=Role.AGENT, valid_hours=0)


def test_redeem_applies_the_role_logs_in_and_is_single_use(session):
    invite = svc.create_invite(session, actor=None, role=Role.ADMIN)
    result = _redeem(session, invite.code, 5551, name="  Asha   Rao ", username="@asha_r")
    assert result.staff.role == Role.ADMIN and result.staff.state == StaffState.ACTIVE
    assert result.staff.name == "Asha Rao" and result.staff.username == "asha_r"
    assert result.staff.has_password and result.staff.last_login_at is not None
    assert session.get(StaffSession, result.session_id).ended_at is None
    assert svc.current_actor(session, telegram_user_id=5551).role == Role.ADMIN
    row = session.get(Invite, invite.invite_id)
    assert row.used_by_id == result.staff.id and row.used_at is not None
    assert len(_audits(session, AuditAction.INVITE_REDEEMED, staff_id=result.staff.id)) == 1

    with pytest.raises(AuthError) as err:
        svc.check_invite(session, code=invite.code)
    assert err.value.code == "invite_used"
    with pytest.raises(AuthError) as err:
        _redeem(session, invite.code, 5552)
    assert err.value.code == "invite_used" and err.value.params["commit"] is True
    assert _audits(session, AuditAction.INVITE_REFUSED, telegram_user_id=5552)
    assert svc.get_staff(session, telegram_user_id=5552) is None


def test_invite_expires(session):
    invite = svc.create_invite(session, actor=None, role=Role.AGENT, valid_hours=2)
    clock.advance(timedelta(hours=2, seconds=1))
    with pytest.raises(AuthError) as err:
        svc.check_invite(session, code=invite.code)
    assert err.value.code == "invite_expired"
    with pytest.raises(AuthError) as err:
        _redeem(session, invite.code, 5553)
    assert err.value.code == "invite_expired"


@pytest.mark.parametrize("code", ["", "nope", "a" * 65, "../../etc", "código"])
def test_unknown_or_malformed_codes_are_invalid(session, code):
    with pytest.raises(AuthError) as err:
        svc.check_invite(session, code=code)
    assert err.value.code == "invite_invalid"


def test_claim_is_conditional_so_a_concurrent_redeem_loses(session):
    invite = svc.create_invite(session, actor=None, role=Role.AGENT)
    row = session.get(Invite, invite.invite_id)
    # Another transaction used it after this one read it: the ORM object is stale.
    session.execute(
        update(Invite.__table__)
        .where(Invite.__table__.c.id == row.id)
        .values(used_at=clock.utcnow())
    )
    with pytest.raises(AuthError) as err:
        svc._claim(session, row)
    assert err.value.code == "invite_used"


def test_redeem_refusals_leave_the_invite_usable(session):
    invite = svc.create_invite(session, actor=None, role=Role.AGENT)
    with pytest.raises(InvalidInput):
        _redeem(session, invite.code, 5554, password="short")
    staff = make_staff(session, telegram_user_id=5555)
    with pytest.raises(Conflict):
        _redeem(session, invite.code, staff.telegram_user_id)
    gone = make_staff(session, state=StaffState.DISABLED)
    with pytest.raises(AccessDenied):
        _redeem(session, invite.code, gone.telegram_user_id)
    assert svc.check_invite(session, code=invite.code) == Role.AGENT


def test_invite_reactivates_a_rejected_request(session):
    info = svc.request_access(session, telegram_user_id=5556, chat_id=1, name="Ravi", username=None)
    admin = make_staff(session, role=Role.ADMIN)
    svc.decide_access(session, actor=actor(admin), staff_id=info.id, approve=False)
    invite = svc.create_invite(session, actor=actor(admin), role=Role.MANAGER)
    result = _redeem(session, invite.code, 5556, name="Ravi K")
    assert result.staff.id == info.id and result.staff.state == StaffState.ACTIVE
    assert result.staff.role == Role.MANAGER and result.staff.name == "Ravi K"


# --- access requests ---------------------------------------------------------------------


def test_request_approve_set_password_flow(session):
    admin = make_staff(session, role=Role.ADMIN)
    first = svc.request_access(
        session, telegram_user_id=5560, chat_id=77, name="Meena", username="meena"
    )
    again = svc.request_access(
        session, telegram_user_id=5560, chat_id=77, name="Meena", username="meena"
    )
    assert first.id == again.id and first.state == StaffState.PENDING
    assert len(_audits(session, AuditAction.ACCESS_REQUESTED, telegram_user_id=5560)) == 1
    assert first.id in [s.id for s in svc.list_requests(session, actor=actor(admin))]
    with pytest.raises(AuthError) as err:
        svc.current_actor(session, telegram_user_id=5560)
    assert err.value.code == "pending"

    decided = svc.decide_access(
        session, actor=actor(admin), staff_id=first.id, approve=True, role=Role.MANAGER
    )
    assert decided.state == StaffState.ACTIVE and decided.role == Role.MANAGER
    assert not decided.has_password
    assert _audits(session, AuditAction.STAFF_APPROVED, staff_id=admin.id, target_id=str(first.id))
    with pytest.raises(AuthError) as err:
        svc.current_actor(session, telegram_user_id=5560)
    assert err.value.code == "no_password"

    with pytest.raises(InvalidInput):
        svc.set_password(session, telegram_user_id=5560, password="12345678")
    result = svc.set_password(session, telegram_user_id=5560, password=PASSWORD)
    assert result.staff.has_password
    assert svc.current_actor(session, telegram_user_id=5560).staff_id == first.id
    assert _audits(session, AuditAction.PASSWORD_SET, staff_id=first.id)
    with pytest.raises(Conflict):
        svc.set_password(session, telegram_user_id=5560, password=PASSWORD + "!")
    with pytest.raises(Conflict):
        svc.decide_access(session, actor=actor(admin), staff_id=first.id, approve=False)
    with pytest.raises(Conflict):
        svc.request_access(session, telegram_user_id=5560, chat_id=77, name="M", username=None)


def test_reject_and_what_a_rejected_user_gets(session):
    admin = make_staff(session, role=Role.ADMIN)
    info = svc.request_access(
        session, telegram_user_id=5561, chat_id=None, name="🙂", username=None
    )
    assert info.name == "User 5561"  # no letters in the Telegram name: a stand-in
    rejected = svc.decide_access(session, actor=actor(admin), staff_id=info.id, approve=False)
    assert rejected.state == StaffState.REJECTED
    assert _audits(session, AuditAction.STAFF_REJECTED, target_id=str(info.id))
    with pytest.raises(AccessDenied):
        svc.request_access(session, telegram_user_id=5561, chat_id=None, name="X Y", username=None)
    with pytest.raises(AuthError) as err:
        svc.set_password(session, telegram_user_id=5561, password=PASSWORD)
    assert err.value.code == "not_staff"
    assert info.id not in [r.id for r in svc.list_requests(session, actor=actor(admin))]


def test_only_admins_decide_and_see_requests(session):
    manager = make_staff(session, role=Role.MANAGER)
    pending = make_staff(session, state=StaffState.PENDING)
    with pytest.raises(AccessDenied):
        svc.decide_access(session, actor=actor(manager), staff_id=pending.id, approve=True)
    with pytest.raises(AccessDenied):
        svc.list_requests(session, actor=actor(manager))
    assert session.get(Staff, pending.id).state == StaffState.PENDING
    admin = make_staff(session, role=Role.ADMIN)
    with pytest.raises(NotFound):
        svc.decide_access(session, actor=actor(admin), staff_id=10**9, approve=True)


# --- states and roles --------------------------------------------------------------------


def test_disable_ends_sessions_and_enable_needs_a_new_login(session):
    admin = make_staff(session, role=Role.ADMIN)
    agent = make_staff(session)
    agent.password_hash = hash_password(PASSWORD)
    svc.login(session, telegram_user_id=agent.telegram_user_id, password=PASSWORD)
    off = svc.set_state(session, actor=actor(admin), staff_id=agent.id, enabled=False)
    assert off.state == StaffState.DISABLED
    open_count = session.scalar(
        select(func.count())
        .select_from(StaffSession)
        .where(StaffSession.staff_id == agent.id, StaffSession.ended_at.is_(None))
    )
    assert open_count == 0
    for call in (svc.current_actor, lambda s, **kw: svc.login(s, password=PASSWORD, **kw)):
        with pytest.raises(AuthError) as err:
            call(session, telegram_user_id=agent.telegram_user_id)
        assert err.value.code == "disabled"
    assert _audits(session, AuditAction.STAFF_DISABLED, target_id=str(agent.id))

    on = svc.set_state(session, actor=actor(admin), staff_id=agent.id, enabled=True)
    assert on.state == StaffState.ACTIVE
    assert _audits(session, AuditAction.STAFF_ENABLED, target_id=str(agent.id))
    with pytest.raises(AuthError) as err:
        svc.current_actor(session, telegram_user_id=agent.telegram_user_id)
    assert err.value.code == "no_session"


def test_admin_cannot_disable_self_and_others_cannot_disable(session):
    admin = make_staff(session, role=Role.ADMIN)
    with pytest.raises(Conflict) as err:
        svc.set_state(session, actor=actor(admin), staff_id=admin.id, enabled=False)
    assert err.value.code == "self"
    manager = make_staff(session, role=Role.MANAGER)
    with pytest.raises(AccessDenied):
        svc.set_state(session, actor=actor(manager), staff_id=admin.id, enabled=False)
    assert session.get(Staff, admin.id).state == StaffState.ACTIVE


def test_last_active_admin_cannot_be_demoted(session):
    me = make_staff(session, role=Role.ADMIN)
    if [a.id for a in svc.admins(session)] != [me.id]:
        pytest.skip("another test's committed admin is visible in this shared database")
    with pytest.raises(Conflict) as err:
        svc.change_role(session, actor=actor(me), staff_id=me.id, role=Role.AGENT)
    assert err.value.code == "last_admin"
    other = make_staff(session, role=Role.AGENT)
    promoted = svc.change_role(session, actor=actor(me), staff_id=other.id, role=Role.ADMIN)
    assert promoted.role == Role.ADMIN
    demoted = svc.change_role(session, actor=actor(me), staff_id=me.id, role=Role.MANAGER)
    assert demoted.role == Role.MANAGER
    (event,) = _audits(session, AuditAction.ROLE_CHANGED, target_id=str(me.id))
    assert event.details == {"before": "admin", "after": "manager"}
    assert [a.id for a in svc.admins(session)] == [other.id]


def test_role_changes_are_admin_only(session):
    manager = make_staff(session, role=Role.MANAGER)
    agent = make_staff(session)
    with pytest.raises(AccessDenied):
        svc.change_role(session, actor=actor(manager), staff_id=agent.id, role=Role.MANAGER)
    assert session.get(Staff, agent.id).role == Role.AGENT


# --- lists and lookups -------------------------------------------------------------------


def test_list_staff_by_role(session):
    admin = make_staff(session, role=Role.ADMIN)
    manager = make_staff(session, role=Role.MANAGER)
    pending = make_staff(session, state=StaffState.PENDING)
    disabled = make_staff(session, state=StaffState.DISABLED)
    ids = {s.id for s in svc.list_staff(session, actor=actor(admin))}
    assert {admin.id, manager.id, disabled.id} <= ids and pending.id not in ids
    with_pending = {s.id for s in svc.list_staff(session, actor=actor(admin), include_pending=True)}
    assert pending.id in with_pending
    seen_by_manager = {s.id for s in svc.list_staff(session, actor=actor(manager))}
    assert admin.id in seen_by_manager and disabled.id not in seen_by_manager
    with pytest.raises(AccessDenied):
        svc.list_staff(session, actor=actor(make_staff(session)))


def test_find_staff_by_number_username_and_name(session):
    manager = make_staff(session, role=Role.MANAGER)
    ravi = make_staff(session, name="Ravi")
    ravi_k = make_staff(session, name="Ravi Kumar Zq")
    ravi_k.username = "RaviK"
    make_staff(session, name="Ravindra Zq")
    me = actor(manager)
    assert svc.find_staff(session, actor=me, text=str(ravi_k.id)).id == ravi_k.id
    assert svc.find_staff(session, actor=me, text="@ravik").id == ravi_k.id
    assert svc.find_staff(session, actor=me, text="RAVI").id == ravi.id  # exact name wins
    assert svc.find_staff(session, actor=me, text="ravi kum").id == ravi_k.id
    with pytest.raises(NotFound):
        svc.find_staff(session, actor=me, text="@nobody_here_zz")
    with pytest.raises(AccessDenied):
        svc.find_staff(session, actor=actor(make_staff(session)), text="ravi")


def test_find_staff_ambiguous_prefix(session):
    manager = make_staff(session, role=Role.MANAGER)
    make_staff(session, name="Qwzx Anil")
    make_staff(session, name="Qwzx Arun")
    with pytest.raises(InvalidInput) as err:
        svc.find_staff(session, actor=actor(manager), text="qwzx a")
    assert err.value.code == "staff_ambiguous" and "Qwzx Anil" in err.value.message
