"""End-to-end over HTTP: invites, access requests, login, lockout, sessions, guards."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot import texts
from bot.__main__ import main, serve
from bot.keyboards import CB, data
from db import clock
from db.models import AuditEvent, BotState, Role, StaffState
from db.services.audit.write import AuditAction
from db.services.staff import members as staff_service
from tests.bot_harness import BotHarness

pytestmark = pytest.mark.e2e

STAFF_MENU = ["help", "login"]  # in every staff menu; "start" only in the public one


def _invite_code(message: dict) -> str:
    match = re.search(r"start=([A-Za-z0-9_-]+)", message["text"])
    assert match, message["text"]
    return match.group(1)


async def _send_password(h: BotHarness, who, password: str, contains: str | None = None):
    sent = h.send(who, password)
    reply = await h.wait(who, contains=contains)
    assert h.deleted(who, sent["message_id"]), "the password message was not deleted"
    assert password not in reply["text"]
    return sent, reply


async def test_invite_start_password_makes_active_staff_with_menu(settings, committed):
    async with BotHarness(settings, committed) as h:
        admin = h.make_staff(Role.ADMIN)
        invite = await h.say(admin, "/invite agent")
        assert f"https://t.me/{h.app.bot.username}?start=" in invite["text"]
        code = _invite_code(invite)
        asha = h.person("Asha", username="asha_k")
        ask = await h.say(asha, f"/start {code}")
        assert "agent" in ask["text"] and "password" in ask["text"]

        _, again = await _send_password(h, asha, "short", contains="Please send another")
        assert "at least 8 characters" in again["text"]

        _, welcome = await _send_password(h, asha, "a good long secret", contains="Welcome")
        assert "Asha" in welcome["text"] and "agent" in welcome["text"]
        calls = [(n, p) for n, p in h.sandbox.calls() if str(p.get("chat_id")) == str(asha.user_id)]
        names = [n for n, p in calls if n in ("deleteMessage", "sendMessage")]
        assert names[-2:] == ["deleteMessage", "sendMessage"], "delete first, then answer"

        info = h.db(staff_service.get_staff, telegram_user_id=asha.user_id)
        assert info.state == StaffState.ACTIVE and info.role == Role.AGENT and info.has_password
        assert {"help", "logout", "cancel"} <= set(h.menu(asha))
        assert "invite" not in h.menu(asha)
        assert h.default_menu() == ["start", "login", "help"]

        used = await h.say(h.person("Late"), f"/start {code}")
        assert "already been used" in used["text"]


async def test_bad_invite_code_is_refused(settings, committed):
    async with BotHarness(settings, committed) as h:
        reply = await h.say(h.person("Guess"), "/start NotARealCode123")
        assert reply["text"] == "That invite code is not valid."


async def test_access_request_approved_then_first_password(settings, committed):
    async with BotHarness(settings, committed) as h:
        first, second = h.make_staff(Role.ADMIN), h.make_staff(Role.ADMIN)
        ravi = h.person("Ravi")
        assert (await h.say(ravi, "/start"))["text"] == texts.REQUEST_SENT
        note1 = await h.wait(first, contains="Access request")
        note2 = await h.wait(second, contains="Access request")
        info = h.db(staff_service.get_staff, telegram_user_id=ravi.user_id)
        assert info.state == StaffState.PENDING
        assert (await h.say(ravi, "/start"))["text"] == texts.PENDING

        mark = h.sandbox.mark()
        await h.press(first, note1, data(CB.ACCESS_APPROVE, info.id))
        edited = await h.wait(first, contains="approved")
        assert edited["buttons"] == []
        assert (await h.wait(ravi, after=mark))["text"] == texts.ACCESS_APPROVED
        late = await h.press(second, note2, data(CB.ACCESS_APPROVE, info.id))
        assert late["text"] == texts.ALREADY_DECIDED

        ask = await h.say(ravi, "/login")
        assert ask["text"] == texts.NEW_PASSWORD_ASK
        _, welcome = await _send_password(h, ravi, "ravi's own secret", contains="Welcome")
        assert "agent" in welcome["text"]
        assert "logout" in h.menu(ravi)


async def test_lockout_after_five_wrong_passwords_then_expiry(settings, committed):
    async with BotHarness(settings, committed) as h:
        agent = h.make_staff(Role.AGENT, logged_in=False)
        assert (await h.say(agent, "/login"))["text"] == texts.LOGIN_ASK_PASSWORD
        for left in (4, 3, 2, 1):
            _, reply = await _send_password(h, agent, f"wrong guess {left}")
            assert reply["text"] == texts.wrong_password(left)
        _, locked = await _send_password(h, agent, "wrong guess 0")
        assert locked["text"] == texts.locked(15)

        await h.say(agent, "/login")
        _, still = await _send_password(h, agent, agent.password)
        assert "try again in 15 minutes" in still["text"]
        clock.advance(timedelta(minutes=5))
        await h.say(agent, "/login")
        _, less = await _send_password(h, agent, agent.password)
        assert "try again in 10 minutes" in less["text"]

        clock.advance(timedelta(minutes=11))
        await h.say(agent, "/login")
        _, ok = await _send_password(h, agent, agent.password)
        assert ok["text"] == texts.logged_in(agent.name)
        failed = h.db(
            lambda s: s.scalar(
                select(func.count())
                .select_from(AuditEvent)
                .where(
                    AuditEvent.staff_id == agent.staff_id,
                    AuditEvent.action.in_([AuditAction.LOGIN_FAILED, AuditAction.LOGIN_LOCKED]),
                )
            )
        )
        assert failed == 7  # five wrong, two while locked: the refusals were committed


async def test_expired_session_asks_for_login_and_replays_nothing(settings, committed):
    async with BotHarness(settings, committed) as h:
        admin = h.make_staff(Role.ADMIN)
        assert "Invite for a new" in (await h.say(admin, "/invite agent"))["text"]
        clock.advance(timedelta(minutes=h.settings.session_idle_minutes + 1))
        assert (await h.say(admin, "/invite agent"))["text"] == texts.SESSION_EXPIRED
        assert (await h.say(admin, "/invite agent"))["text"] == texts.PLEASE_LOGIN
        await h.say(admin, "/login")
        _, ok = await _send_password(h, admin, admin.password)
        assert ok["text"] == texts.logged_in(admin.name)
        await h.silence(admin)
        assert "Invite for a new" in (await h.say(admin, "/invite manager"))["text"]


async def test_logout_ends_the_session_and_resets_the_menu(settings, committed):
    async with BotHarness(settings, committed) as h:
        agent = h.make_staff(Role.AGENT)
        await h.say(agent, "/login")  # already logged in: no password asked
        assert h.sandbox.last(agent.chat_id)["text"] == texts.already_logged_in(agent.name)
        assert (await h.say(agent, "/logout"))["text"] == texts.LOGGED_OUT
        assert h.menu(agent) == []
        assert (await h.say(agent, "/requests"))["text"] == texts.PLEASE_LOGIN


async def test_unknown_user_gets_one_sentence_and_no_data(settings, committed):
    async with BotHarness(settings, committed) as h:
        h.make_staff(Role.ADMIN, name="Secret Admin")
        stranger = h.person("Mallory")
        for command in ("/staff", "/audit", "/requests", "/invite admin", "/logout"):
            reply = await h.say(stranger, command)
            assert reply["text"] == texts.NOT_STAFF, command
            await h.silence(stranger, 0.2)
        assert (await h.say(stranger, "/login"))["text"] == texts.NOT_STAFF
        assert (await h.say(stranger, "/frobnicate"))["text"] == texts.UNKNOWN_COMMAND
        assert (await h.say(stranger, "x" * 4096))["text"] == texts.UNKNOWN_TEXT
        answer = await h.press(stranger, 1, "acc:ok:1", force=True)
        assert answer["text"] == texts.NOT_STAFF
        assert h.db(staff_service.get_staff, telegram_user_id=stranger.user_id) is None


async def test_group_chats_are_refused_once(settings, committed):
    async with BotHarness(settings, committed) as h:
        admin = h.make_staff(Role.ADMIN)
        h.sandbox.group(-1001234, "Field team")
        h.send(admin, "/help", chat_id=-1001234)
        reply = await h.sandbox.wait_for_async(-1001234)
        assert reply["text"] == texts.PRIVATE_ONLY
        h.send(admin, "/invite agent", chat_id=-1001234)
        h.send(admin, "/staff", chat_id=-1001234)
        with pytest.raises(TimeoutError):
            await h.sandbox.wait_for_async(-1001234, timeout=0.5)
        assert len(h.sandbox.sent(-1001234)) == 1


async def test_rate_limit_asks_to_slow_down_once(settings, committed):
    async with BotHarness(settings, committed, bot_commands_per_minute=3) as h:
        user = h.person("Quick")
        for _ in range(3):
            assert "To get in" in (await h.say(user, "/help"))["text"]
        assert (await h.say(user, "/help"))["text"] == texts.SLOW_DOWN
        h.send(user, "/help")
        await h.silence(user)
        other = h.person("Calm")
        assert "To get in" in (await h.say(other, "/help"))["text"]


async def test_help_differs_by_role(settings, committed):
    async with BotHarness(settings, committed) as h:
        anonymous = (await h.say(h.person("Nobody"), "/help"))["text"]
        agent = (await h.say(h.make_staff(Role.AGENT), "/help"))["text"]
        admin = (await h.say(h.make_staff(Role.ADMIN), "/help"))["text"]
        assert "/start" in anonymous and "/invite" not in anonymous and "/logout" not in anonymous
        assert "/logout" in agent and "/invite" not in agent
        assert "/invite" in admin and "/audit" in admin and "/logout" in admin


async def test_html_in_a_name_is_shown_escaped(settings, committed):
    async with BotHarness(settings, committed) as h:
        admin = h.make_staff(Role.ADMIN)
        evil = h.person("<b>x</b><script>", username="evil_one")
        assert (await h.say(evil, "/start"))["text"] == texts.REQUEST_SENT
        note = await h.wait(admin, contains="Access request")
        assert "<b>x</b><script>" in note["text"]
        assert "&lt;b&gt;x&lt;/b&gt;&lt;script&gt;" in note["source"]


async def test_restart_in_the_middle_of_register_resumes(settings, committed):
    async with BotHarness(settings, committed) as h:
        invite = h.db(staff_service.create_invite, actor=None, role=Role.MANAGER)
        neha = h.person("Neha")
        ask = await h.say(neha, f"/start {invite.code}")
        assert "manager" in ask["text"]
        await h.restart()
        key = f"[{neha.user_id}, {neha.user_id}]"
        row = h.db(lambda s: s.get(BotState, ("conv:register", key)))
        assert row is not None and row.data == {"state": 1}  # the state is in the database
        _, welcome = await _send_password(h, neha, "survives restarts", contains="Welcome")
        assert "manager" in welcome["text"]
        info = h.db(staff_service.get_staff, telegram_user_id=neha.user_id)
        assert info.state == StaffState.ACTIVE and info.role == Role.MANAGER


async def test_error_handler_answers_politely(settings, committed):
    async with BotHarness(settings, committed) as h:
        user = h.person("Unlucky")
        h.sandbox.fail_next("sendMessage", 500, "Internal Server Error")
        reply = await h.say(user, "/help")
        assert reply["text"] == texts.ERROR
        assert "Traceback" not in reply["text"]


async def test_cancel_leaves_the_password_prompt(settings, committed):
    async with BotHarness(settings, committed) as h:
        agent = h.make_staff(Role.AGENT, logged_in=False)
        await h.say(agent, "/login")
        assert (await h.say(agent, "/cancel"))["text"] == texts.CANCELLED
        sent = h.send(agent, agent.password)
        # Outside the step the password is still recognised: deleted, with a warning.
        assert (await h.wait(agent))["text"] == texts.PASSWORD_OUTSIDE_STEP
        assert h.deleted(agent, sent["message_id"])
        await h.silence(agent)
        assert (await h.say(agent, "/cancel"))["text"] == texts.NOTHING_TO_CANCEL


async def test_serve_runs_the_bot_in_a_shared_loop_until_cancelled(settings, committed):
    async with BotHarness(settings, committed) as h:
        await h._stop_app()  # serve() takes over the sandbox below
        task = asyncio.create_task(serve(h.settings))
        visitor = h.person("Visitor")
        assert "To get in" in (await h.say(visitor, "/help", timeout=10))["text"]
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, "TELEGRAM_BOT_TOKEN"),
        (
            {"TELEGRAM_BOT_TOKEN": "1:x", "TELEGRAM_WEBHOOK_URL": "https://x.example/tg"},
            "TELEGRAM_WEBHOOK_SECRET",
        ),
        ({"TELEGRAM_BOT_TOKEN": "1:x", "PORT": "eighty"}, "PORT"),
        # Telegram posts only to https; plain http is for a self-hosted Bot API server.
        (
            {
                "TELEGRAM_BOT_TOKEN": "1:x",
                "TELEGRAM_WEBHOOK_URL": "http://x.example/tg",
                "TELEGRAM_WEBHOOK_SECRET": "s3cret",
            },
            "TELEGRAM_WEBHOOK_URL",
        ),
    ],
)
def test_main_stops_with_one_line_for_bad_settings(env, named, monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)  # no developer .env
    for name in (
        "TELEGRAM_BOT_TOKEN",
        "TELEGRAM_WEBHOOK_URL",
        "TELEGRAM_WEBHOOK_SECRET",
        "PORT",
        "TELEGRAM_API_BASE_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as stop:
        main()
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert named in err and len(err.splitlines()) == 1 and "Traceback" not in err


async def test_the_start_message_is_deleted_and_the_code_never_stored(settings, committed):
    async with BotHarness(settings, committed) as h:
        invite = h.db(staff_service.create_invite, actor=None, role=Role.AGENT)
        ravi = h.person("Ravi")
        sent = h.send(ravi, f"/start {invite.code}")
        await h.wait(ravi, contains="password")
        assert h.deleted(ravi, sent["message_id"]), "the code stays in the chat"
        await h.restart()  # flushes user_data and conversations to the database
        rows = h.db(lambda s: [(r.namespace, r.key, r.data) for r in s.scalars(select(BotState))])
        assert any("register.invite_hash" in repr(row) for row in rows)  # user_data is stored
        assert not any(invite.code in repr(row) for row in rows)
        _, welcome = await _send_password(h, ravi, "a good long secret", contains="Welcome")
        assert "agent" in welcome["text"]


async def test_a_password_typed_into_a_search_is_deleted_not_echoed(settings, committed):
    async with BotHarness(settings, committed) as h:
        agent = h.make_staff(Role.AGENT)
        await h.say(agent, "/find", contains="")
        sent = h.send(agent, agent.password)
        answer = await h.wait(agent)
        assert answer["text"] == texts.PASSWORD_OUTSIDE_STEP
        assert h.deleted(agent, sent["message_id"])
        await h.silence(agent)
        assert not any(agent.password in m["text"] for m in h.sandbox.sent(agent.user_id))
        # Other text of a password's length is left alone.
        other = h.send(agent, "not my password")
        assert (await h.wait(agent))["text"] != texts.PASSWORD_OUTSIDE_STEP
        assert not h.deleted(agent, other["message_id"])
