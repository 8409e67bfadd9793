"""/deliveries, /remind and the card's Remind now, and borrowers' SMS relayed to agents,
end to end over HTTP against the sandbox Bot API."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select, update

from bot import texts
from bot.keyboards import CB, data
from db import clock
from db.agency import Agency
from db.models import InboundMessage, Loan, Message, MessageKind, Payment, Role, Staff
from db.models import MessageStatus as S
from db.services.access import Actor
from db.services.collection import payments
from db.services.sms import deliveries, inbound
from tests.bot_harness import BotHarness
from tests.bot_helpers import button, until
from tests.test_bot_broadcast import WIDE, _loan, _phone

pytestmark = pytest.mark.e2e


def _relayed_at(h: BotHarness, inbound_id: int) -> datetime | None:
    return h.db(lambda s: s.get(InboundMessage, inbound_id).relayed_at)


def _sms_from(h: BotHarness, phone: str, body: str) -> int:
    """A borrower's SMS arriving through the web app's service; its inbound id."""
    result = h.db(
        inbound.handle_inbound,
        provider_sid=f"SM{uuid.uuid4().hex}",
        from_phone=phone,
        to_phone="+15005550006",
        body=body,
        agency=Agency(name="Vasooli"),
        today=clock.utcnow().date(),
    )
    return result.inbound_id


def _phone_of(h: BotHarness, loan: dict) -> str:
    return h.db(lambda s: s.get(Loan, loan["loan_id"]).borrower.phone)


# --- relay -----------------------------------------------------------------------------------


async def test_borrower_sms_is_relayed_escaped_with_a_card_button(settings, committed):
    async with BotHarness(settings, committed) as h:
        agent = h.make_staff(Role.AGENT)
        loan = _loan(h, agent, days_late=3, name="Meera <Sharma>")
        inbound_id = _sms_from(h, _phone_of(h, loan), "Paid <b>half</b> & rest Friday")

        relay = await h.wait(agent, contains="💬", timeout=10)
        assert relay["text"] == (
            f"💬 Meera <Sharma> ({loan['number']}): Paid <b>half</b> & rest Friday"
        )
        assert "Meera &lt;Sharma&gt;" in relay["source"]
        assert "&lt;b&gt;half&lt;/b&gt; &amp; rest" in relay["source"]
        assert [b["callback_data"] for b in relay["buttons"]] == [
            data(CB.LOAN_CARD, loan["loan_id"])
        ]
        assert await until(lambda: _relayed_at(h, inbound_id))

        mark = h.sandbox.mark()
        await h.press(agent, relay, data(CB.LOAN_CARD, loan["loan_id"]))
        card = await h.wait(agent, after=mark)
        assert loan["number"] in card["text"] and "Meera <Sharma>" in card["text"]
        await h.silence(agent, 5.5)  # relayed once: the next run sends nothing


async def test_blocked_agent_chat_is_not_marked_relayed_and_is_retried(settings, committed):
    async with BotHarness(settings, committed) as h:
        agent = h.make_staff(Role.AGENT)
        loan = _loan(h, agent, days_late=1, name="Kiran")
        h.sandbox.block(agent.chat_id)
        inbound_id = _sms_from(h, _phone_of(h, loan), "Call me please")

        def tried() -> bool:
            return any(
                str(p.get("chat_id")) == str(agent.chat_id)
                for _, p in h.sandbox.calls("sendMessage")
            )

        assert await until(tried, timeout=10)
        assert _relayed_at(h, inbound_id) is None

        h.sandbox.unblock(agent.chat_id)
        relay = await h.wait(agent, contains="Call me please", timeout=15)
        assert relay["text"] == f"💬 Kiran ({loan['number']}): Call me please"
        assert await until(lambda: _relayed_at(h, inbound_id))


# --- /remind and Remind now ---------------------------------------------------------------


def _reminders(h: BotHarness, loan: dict) -> list[Message]:
    return h.db(
        lambda s: s.scalars(
            select(Message).where(
                Message.loan_id == loan["loan_id"], Message.kind == MessageKind.REMINDER
            )
        ).all()
    )


async def test_remind_queues_once_and_refuses_with_the_reason(settings, committed):
    async with BotHarness(settings, committed, sms_allowed_hours=WIDE) as h:
        agent, other = h.make_staff(Role.AGENT), h.make_staff(Role.AGENT)
        mine = _loan(h, agent, days_late=2)
        theirs = _loan(h, other, days_late=2)
        opted = _loan(h, agent, days_late=2, name="Quiet Person", opted_out=True)
        done = _loan(h, agent, days_late=4)

        assert (await h.say(agent, "/remind"))["text"] == texts.REMIND_USAGE
        queued = await h.say(agent, f"/remind {mine['number'].lower()}")
        assert queued["text"] == texts.remind_queued(mine["number"], None)
        [message] = _reminders(h, mine)
        assert (message.status, message.rule) == (S.QUEUED, "manual")

        twice = await h.say(agent, f"/remind {mine['number']}")
        assert twice["text"] == f"Loan {mine['number']} was already reminded today."
        assert len(_reminders(h, mine)) == 1
        hidden = await h.say(agent, f"/remind {theirs['number']}")
        assert hidden["text"] == f"No loan {theirs['number']} found."
        quiet = await h.say(agent, f"/remind {opted['number']}")
        assert quiet["text"] == (
            "Quiet Person has opted out of SMS (replied STOP); no reminder was queued."
        )
        assert _reminders(h, theirs) == [] and _reminders(h, opted) == []

        card = await h.say(agent, f"/loan {done['number']}")
        pressed = button(card, "Remind now")
        mark = h.sandbox.mark()
        await h.press(agent, card, pressed)
        by_button = await h.wait(agent, after=mark)
        assert by_button["text"] == texts.remind_queued(done["number"], None)
        assert len(_reminders(h, done)) == 1

        h.db(
            lambda s: s.execute(
                update(Loan).where(Loan.id == done["loan_id"]).values(version=Loan.version + 1)
            )
        )
        mark = h.sandbox.mark()
        await h.press(agent, card, pressed)
        fresh = await h.wait(agent, after=mark)
        assert fresh["text"].startswith(texts.LOAN_CHANGED)
        assert len(_reminders(h, done)) == 1


def _closed_window(tz) -> tuple[str, str]:
    """Allowed hours that do not include now in tz, and when they next open as shown."""
    now = clock.utcnow().astimezone(tz)
    if now.hour < 12:
        return "13:00-14:00", "13:00"
    tomorrow = now + timedelta(days=1)
    return "03:00-04:00", f"03:00 on {tomorrow.strftime('%d %b')}"


async def test_remind_outside_allowed_hours_says_when_it_goes(settings, committed):
    window, shown = _closed_window(settings.tz)
    async with BotHarness(settings, committed, sms_allowed_hours=window) as h:
        agent = h.make_staff(Role.AGENT)
        loan = _loan(h, agent, days_late=0)
        reply = await h.say(agent, f"/remind {loan['number']}")
        assert reply["text"] == texts.remind_queued(loan["number"], shown)
        assert "allowed hours" in reply["text"]
        [message] = _reminders(h, loan)
        assert message.send_after > clock.utcnow()


# --- /deliveries ----------------------------------------------------------------------------


# The worker's words for the codes these tests use, as it records them with a failure.
REASONS = {"30007": "filtered by the carrier as spam", "21211": "invalid phone number"}


def _messages(h: BotHarness, rows: list[tuple[MessageKind, S, str | None, int]]) -> None:
    """Outbox rows (kind, status, error code, days ago)."""

    def add(s):
        for kind, status, code, days in rows:
            at = clock.utcnow() - timedelta(days=days, minutes=5)
            s.add(
                Message(
                    to_phone=_phone(),
                    body="x",
                    kind=kind,
                    status=status,
                    error_code=code,
                    failure_reason=REASONS.get(code or ""),
                    idempotency_key=f"t:{uuid.uuid4().hex}",
                    created_at=at,
                    send_after=at,
                    updated_at=at,
                )
            )

    h.db(add)


async def test_deliveries_counts_rate_and_errors_in_words(settings, committed):
    async with BotHarness(settings, committed) as h:
        admin, agent = h.make_staff(Role.ADMIN), h.make_staff(Role.AGENT)
        R, B, N = MessageKind.REMINDER, MessageKind.BROADCAST, MessageKind.NOTICE
        _messages(
            h,
            [
                (R, S.DELIVERED, None, 0),
                (R, S.DELIVERED, None, 0),
                (R, S.DELIVERED, None, 0),
                (R, S.FAILED, "30007", 0),
                (B, S.UNDELIVERED, "30007", 0),
                (N, S.FAILED, "21211", 0),
                (R, S.QUEUED, None, 0),
                (B, S.DELIVERED, None, 3),
                (B, S.SENT, None, 10),
            ],
        )
        assert (await h.say(agent, "/deliveries"))["text"] == (
            "Only admins may read delivery reports."
        )

        reply = await h.say(admin, "/deliveries")
        report = h.db(
            deliveries.delivery_report,
            now=clock.utcnow(),
            actor=Actor(staff_id=admin.staff_id, role=Role.ADMIN),
        )
        assert (report.day.delivery_rate, report.week.delivery_rate) == (50, Decimal("57.1"))
        text = reply["text"]
        assert "Last 24 hours: 7 message(s)" in text and "Last 7 days: 8 message(s)" in text
        assert "Delivery rate: 50.0%" in text and "Delivery rate: 57.1%" in text
        assert "reminder: queued 1, delivered 3, failed 1" in text
        assert "filtered by the carrier as spam: 2 (code 30007)" in text
        assert "invalid phone number: 1 (code 21211)" in text
        assert text.index("code 30007") < text.index("code 21211")  # most common first


# --- a NO to a payment receipt (issue 11) ----------------------------------------------------


async def test_a_no_to_a_receipt_reaches_the_agents_manager_who_reverses_it(settings, committed):
    async with BotHarness(settings, committed) as h:
        agent, manager = h.make_staff(Role.AGENT), h.make_staff(Role.MANAGER)
        h.db(lambda s: setattr(s.get(Staff, agent.staff_id), "decided_by_id", manager.staff_id))
        loan = _loan(h, agent, days_late=3, name="Meera <Sharma>")
        cfg = h.settings.model_copy(update={"notify_payment_received": True})
        paid = h.db(
            payments.pay_and_notify,
            actor=Actor(staff_id=agent.staff_id, role=Role.AGENT, name=agent.name),
            loan_number=loan["number"],
            amount=Decimal("400.00"),
            expected_version=h.db(lambda s: s.get(Loan, loan["loan_id"]).version),
            today=clock.utcnow().date(),
            settings=cfg,
        )
        notice = h.db(
            lambda s: s.scalars(
                select(Message).where(
                    Message.loan_id == loan["loan_id"], Message.kind == MessageKind.NOTICE
                )
            ).one()
        )
        assert f"receipt {paid.receipt_number}" in notice.body and "reply NO" in notice.body
        h.db(  # the worker sent it (its own tests drive Twilio's sandbox)
            lambda s: s.execute(
                update(Message).where(Message.id == notice.id).values(sent_at=clock.utcnow())
            )
        )
        inbound_id = _sms_from(h, _phone_of(h, loan), "NO")

        alert = await h.wait(manager, contains="Payment denied", timeout=10)
        assert paid.receipt_number in alert["text"] and "Meera <Sharma>" in alert["text"]
        assert "₹400.00" in alert["text"] and f"recorded by {agent.name}" in alert["text"]
        assert await until(lambda: _relayed_at(h, inbound_id))
        await h.silence(agent, 1.0)  # never to the agent who recorded it

        choices = await h.say(manager, f"/resolve {loan['number']}", contains="How is it resolved")
        await h.press(manager, choices, button(choices, "Not paid"))
        await h.wait(manager, contains="Send the reason")
        await h.say(manager, "cash never reached the office", contains="resolved (")
        reversed_at = h.db(lambda s: s.get(Payment, paid.payment_id).reversed_at)
        assert reversed_at is not None
