"""/broadcast end to end over HTTP (preview, send, progress edited in place, final report),
/broadcasts and its Cancel, and the progress-message service the bot's job reads."""

from __future__ import annotations

import random
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from bot import texts
from bot.keyboards import CB, data
from db import clock, sms_text
from db.agency import agency_of
from db.models import (
    BorrowerTag,
    Broadcast,
    BroadcastState,
    InboundMessage,
    Message,
    Role,
    Staff,
    Suppression,
)
from db.models import MessageStatus as S
from db.money import format_money
from db.services.access import Actor
from db.services.broadcasts import compose as bc
from db.services.broadcasts import tracking
from db.services.broadcasts.audiences import audience_words_if_anyone
from db.services.broadcasts.compose import Audience, AudienceKind
from db.services.broadcasts.progress_message import (
    clear_progress_message,
    progress_reports,
    set_progress_message,
    start_broadcast,
    tracked_broadcasts,
)
from db.services.errors import AccessDenied, InvalidInput, NotFound
from db.services.sms.relays import inbound_loan_ids
from tests.bot_harness import BotHarness, Person
from tests.bot_helpers import button, until
from tests.factories import actor, make_borrower, make_loan, make_staff

WIDE = "00:00-23:59"  # every hour allowed: queued messages may go at once
SLOW = 15.0  # the progress job edits every 3 s: allow a few rounds
GSM = "Dear {name}, {amount_due} on loan {loan_number} is overdue. Please pay. {opt_out}"
HINDI = "नमस्ते {name}, ऋण {loan_number} पर {amount_due} बकाया है। {opt_out}"


def _phone() -> str:
    return f"+9197{random.randrange(10**8):08d}"


def _loan(
    h: BotHarness,
    agent: Person,
    *,
    days_late: int,
    name: str | None = None,
    opted_out: bool = False,
    suppressed: str | None = None,
    tag: str | None = None,
) -> dict:
    """A committed one-installment loan of agent's, due days_late days ago."""

    def make(s):
        b = make_borrower(
            s, name=name, phone=_phone(), opted_out_at=clock.utcnow() if opted_out else None
        )
        if suppressed:
            s.add(Suppression(phone=b.phone, reason="carrier", error_code=suppressed))
        if tag:
            s.add(BorrowerTag(borrower_id=b.id, tag=tag))
        loan = make_loan(
            s,
            agent=s.get(Staff, agent.staff_id),
            borrower=b,
            first_due=clock.utcnow().date() - timedelta(days=days_late),
            loan_number=f"BC-{uuid.uuid4().hex[:8].upper()}",
        )
        return {"loan_id": loan.id, "borrower_id": b.id, "number": loan.loan_number}

    return h.db(make)


async def _tap(h: BotHarness, who: Person, message: dict, label: str, **wait) -> dict:
    """Press the button labelled label; the bot's next message or edit in who's chat."""
    mark = h.sandbox.mark()
    await h.press(who, message, button(message, label))
    return await h.wait(who, after=mark, **wait)


def _admin_actor(who: Person) -> Actor:
    return Actor(staff_id=who.staff_id, role=Role.ADMIN, name=who.name)


def _set_status(
    h: BotHarness, borrower_id: int, status: S, code: str | None = None, reason: str | None = None
) -> None:
    """The borrower's message as the worker leaves it (reason: its words for a failure)."""
    now = clock.utcnow()
    h.db(
        lambda s: s.execute(
            update(Message)
            .where(Message.borrower_id == borrower_id)
            .values(
                status=status, error_code=code, failure_reason=reason, sent_at=now, updated_at=now
            )
        )
    )


def _preview(h: BotHarness, admin: Person, template: str) -> bc.Preview:
    return h.db(
        bc.preview_broadcast,
        actor=_admin_actor(admin),
        audience=Audience(AudienceKind.OVERDUE),
        template=template,
        today=clock.today(h.settings.tz),
        settings=h.settings,
    )


def _expected(preview: bc.Preview, words: str) -> str:
    return texts.bc_preview(
        words,
        preview.recipients,
        preview.sendable,
        preview.suppressed_by_reason,
        preview.sample,
        preview.encoding,
        preview.segments_per_message,
        preview.total_segments,
    )


e2e = pytest.mark.e2e


@e2e
async def test_overdue_broadcast_preview_send_progress_and_final_report(settings, committed):
    async with BotHarness(settings, committed, sms_allowed_hours=WIDE) as h:
        admin, agent = h.make_staff(Role.ADMIN), h.make_staff(Role.AGENT)
        asha = _loan(h, agent, days_late=5, name="Asha <Rao> & Co")
        ravi = _loan(h, agent, days_late=40, name="Ravi Kumar")
        _loan(h, agent, days_late=3, opted_out=True)
        _loan(h, agent, days_late=10, suppressed="30005")
        _loan(h, agent, days_late=-5)  # not overdue: not in the audience

        ask = await h.say(admin, "/broadcast")
        assert ask["source"] == texts.BC_ASK_AUDIENCE
        prompt = await _tap(h, admin, ask, "Overdue")
        assert prompt["message_id"] == ask["message_id"]  # the question is edited in place
        words = "borrowers with an overdue loan"
        assert prompt["source"] == texts.bc_ask_text(words)
        for name in texts.BC_PLACEHOLDERS:
            assert "{" + name + "}" in prompt["text"]

        long = await h.say(admin, "x" * 2000)
        assert "1 to 1600 characters; this one has 2000" in long["text"]
        assert texts.BC_TEXT_AGAIN in long["text"]
        blank = await h.say(admin, "   ")
        assert "this one has 0" in blank["text"]
        unknown = await h.say(admin, "Dear {nmae}, please pay.")
        assert "Unknown placeholder {nmae}" in unknown["text"]

        shown = await h.say(admin, GSM)
        expected = _preview(h, admin, GSM)
        assert (expected.recipients, expected.sendable, expected.encoding) == (4, 2, "GSM-7")
        assert expected.suppressed_by_reason == {
            "opted out": 1,
            "suppressed number (carrier 30005)": 1,
        }
        assert shown["source"] == _expected(expected, words)
        assert "Asha &lt;Rao&gt; &amp; Co" in shown["source"]  # the sample is escaped

        await _tap(h, admin, shown, "Edit text", contains="Send the text")
        hindi = await h.say(admin, HINDI)
        expected = _preview(h, admin, HINDI)
        assert expected.encoding == "UCS-2"
        assert expected.total_segments == sum(
            sms_text.segments(
                sms_text.render(HINDI, {"name": n, "amount_due": a, "loan_number": num})
            )
            for n, a, num in _filled(h, (asha, ravi))
        )
        assert hindi["source"] == _expected(expected, words)

        progress = await _tap(h, admin, hindi, "Send to 2", contains="Broadcast #")
        assert progress["message_id"] == hindi["message_id"] and progress["buttons"] == []
        b = h.db(lambda s: s.scalars(select(Broadcast).order_by(Broadcast.id.desc())).first())
        assert (b.progress_chat_id, b.progress_message_id) == (admin.chat_id, hindi["message_id"])
        statuses = h.db(
            lambda s: sorted(
                s.scalars(select(Message.status).where(Message.broadcast_id == b.id)).all()
            )
        )
        assert statuses == [S.QUEUED, S.QUEUED, S.SUPPRESSED, S.SUPPRESSED]
        assert "Queued 2 · Sending 0 · Sent 0" in progress["text"]
        assert "Suppressed 2" in progress["text"]

        same = {"predicate": lambda m: m["message_id"] == hindi["message_id"], "timeout": SLOW}
        _set_status(h, asha["borrower_id"], S.DELIVERED)
        _set_status(h, ravi["borrower_id"], S.SENT)
        mark = h.sandbox.mark()
        moving = await h.wait(admin, after=mark, contains="Delivered 1", **same)
        assert "Sent 1" in moving["text"] and "Queued 0" in moving["text"]
        await h.silence(admin, 3.5)  # nothing changed: no edit ("message is not modified")

        _set_status(
            h,
            ravi["borrower_id"],
            S.FAILED,
            "30003",
            "unreachable handset (switched off or out of coverage)",
        )
        final = await h.wait(admin, after=h.sandbox.mark(), contains="finished", **same)
        assert "Delivered: 1 (50.0% of those with a final report)" in final["text"]
        assert (
            "unreachable handset (switched off or out of coverage): 1 (code 30003)"
            in (final["text"])
        )
        after = await until(
            lambda: h.db(
                lambda s: (
                    s.get(Broadcast, b.id)
                    if s.get(Broadcast, b.id).progress_message_id is None
                    else None
                )
            )
        )
        assert after.state == BroadcastState.DONE  # the job stopped tracking it
        await h.silence(admin, 3.5)  # the final report is not edited again


def _filled(h: BotHarness, loans: tuple[dict, ...]) -> list[tuple[str, str, str]]:
    """(name, amount due, loan number) of each loan as a broadcast fills them in."""
    today = clock.today(h.settings.tz)
    rows = []
    for chunk in h.db(
        lambda s: list(
            bc.audience_recipients(s, audience=Audience(AudienceKind.OVERDUE), today=today)
        )
    ):
        rows += [r for r in chunk if r.loan_id in {ln["loan_id"] for ln in loans}]
    return [
        (r.name, format_money(r.amount_due, agency_of(h.settings), plain=True), r.loan_number)
        for r in rows
    ]


@e2e
async def test_audience_steps_empty_audience_and_refusals(settings, committed):
    async with BotHarness(settings, committed, sms_allowed_hours=WIDE) as h:
        admin = h.make_staff(Role.ADMIN)
        agent = h.make_staff(Role.AGENT, name="Field <Agent>")
        tag = f"ward-{random.randrange(10**6)}"
        _loan(h, agent, days_late=45, tag=tag)

        refused = await h.say(agent, "/broadcast")
        assert refused["text"] == "Only admins may broadcast."
        await h.silence(agent, 0.3)

        ask = await h.say(admin, "/broadcast")
        stale = await h.press(admin, ask, data(CB.BC_AUDIENCE, "overdue", "deadbeef"), force=True)
        assert stale["text"] == texts.OLD_BUTTON
        ask_tag = await _tap(h, admin, ask, "A tag")
        assert ask_tag["source"] == texts.BC_ASK_TAG
        nobody = await h.say(admin, "no-such-tag-" + uuid.uuid4().hex[:8])
        assert nobody["source"] == texts.BC_NOBODY and nobody["buttons"]

        buckets = await _tap(h, admin, nobody, "A days-past-due bucket")
        assert buckets["source"] == texts.BC_ASK_BUCKET
        prompt = await _tap(h, admin, buckets, "31-60 days")
        assert prompt["source"] == texts.bc_ask_text("borrowers 31-60 days past due")

        ask = await h.say(admin, "/broadcast")
        assert ask["source"] == texts.BC_ASK_AUDIENCE
        assert (await h.say(admin, "typed instead of a button"))["text"] == texts.USE_BUTTONS
        agents = await _tap(h, admin, ask, "One agent's borrowers")
        prompt = await _tap(h, admin, agents, "Field <Agent>")
        assert prompt["source"] == texts.bc_ask_text("borrowers of Field <Agent>")
        assert "borrowers of Field &lt;Agent&gt;" in prompt["source"]

        ask = await h.say(admin, "/broadcast")
        await _tap(h, admin, ask, "A tag")
        prompt = await h.say(admin, tag.upper())
        assert prompt["source"] == texts.bc_ask_text(f"borrowers tagged {tag}")
        preview = await h.say(admin, "Hello {name}. {opt_out}")
        assert "Recipients: 1" in preview["text"]
        await h.restart()  # the form survives a restart of the bot (persistent)
        gone = await _tap(h, admin, preview, "Cancel")
        assert gone["source"] == texts.BC_CANCELLED
        assert h.db(lambda s: s.scalars(select(Broadcast)).all()) == []


@e2e
async def test_cancel_from_broadcasts_list(settings, committed):
    async with BotHarness(settings, committed, sms_allowed_hours=WIDE) as h:
        admin = h.make_staff(Role.ADMIN)
        agent = h.make_staff(Role.AGENT, name="Mohan")
        for days in (1, 2, 3):
            _loan(h, agent, days_late=days)
        info = h.db(
            bc.create_broadcast,
            actor=_admin_actor(admin),
            audience=Audience(AudienceKind.AGENT, agent_id=agent.staff_id),
            template="Hello {name}. {opt_out}",
            today=clock.today(h.settings.tz),
            settings=h.settings,
        )

        assert (await h.say(agent, "/broadcasts"))["text"] == ("Only admins may list broadcasts.")
        forged = await h.press(agent, 1, data(CB.BC_CANCEL_YES, info.id), force=True)
        assert forged["text"] == "Only admins may cancel a broadcast."
        await h.silence(agent, 0.3)

        listing = await h.say(admin, "/broadcasts")
        assert (
            f"#{info.id} · sending" in listing["text"]
            and "to borrowers of Mohan" in (listing["text"])
        )
        assert "3 message(s): 3 waiting" in listing["text"]
        confirm = await _tap(h, admin, listing, f"Cancel #{info.id}")
        assert confirm["message_id"] == listing["message_id"]
        assert confirm["source"] == texts.bc_cancel_confirm(info.id, "borrowers of Mohan", 3)
        back = await _tap(h, admin, confirm, texts.BC_BTN_BACK)
        assert back["text"] == listing["text"]
        confirm = await _tap(h, admin, back, f"Cancel #{info.id}")
        done = await _tap(h, admin, confirm, texts.BC_BTN_CANCEL_YES)
        assert done["text"].startswith(texts.bc_canceled(info.id, 3))
        assert f"#{info.id} · canceled" in done["text"] and done["buttons"] == []

        statuses = h.db(
            lambda s: s.scalars(select(Message.status).where(Message.broadcast_id == info.id)).all()
        )
        assert statuses == [S.CANCELED] * 3
        again = await h.press(admin, done, data(CB.BC_CANCEL_YES, info.id), force=True)
        assert "already canceled" in again["text"]


# --- the progress-message service (rolled back) --------------------------------------------


def _broadcast(session, admin_actor, agent) -> int:
    info = bc.create_broadcast(
        session,
        actor=admin_actor,
        audience=Audience(AudienceKind.AGENT, agent_id=agent.id),
        template="Hi {name}",
        today=clock.utcnow().date(),
        settings=_wide_settings(),
    )
    return info.id


def _wide_settings():
    from db.config import Settings

    return Settings(_env_file=None, sms_allowed_hours=WIDE, agency_timezone="UTC")


def test_progress_message_is_set_tracked_and_cleared(session):
    admin = actor(make_staff(session, role=Role.ADMIN))
    agent = make_staff(session, role=Role.AGENT, name="Lata")
    make_loan(session, agent=agent)
    bid = _broadcast(session, admin, agent)
    assert tracked_broadcasts(session, broadcast_id=bid) == []

    set_progress_message(session, broadcast_id=bid, chat_id=-1001, message_id=42)
    [t] = tracked_broadcasts(session, broadcast_id=bid)
    assert (t.chat_id, t.message_id, t.state) == (-1001, 42, BroadcastState.QUEUED)
    assert t.audience == "borrowers of Lata"
    assert clear_progress_message(session, broadcast_id=bid) is True
    assert clear_progress_message(session, broadcast_id=bid) is False
    assert tracked_broadcasts(session, broadcast_id=bid) == []


def test_progress_message_refuses_bad_ids(session):
    with pytest.raises(NotFound):
        set_progress_message(session, broadcast_id=10**9, chat_id=1, message_id=1)
    for chat_id, message_id in ((1, 0), (1, -5), (2**63, 1), (True, 1)):
        with pytest.raises(InvalidInput):
            set_progress_message(session, broadcast_id=1, chat_id=chat_id, message_id=message_id)
    with pytest.raises(InvalidInput):
        tracked_broadcasts(session, limit=0)


def test_inbound_loan_ids_maps_stored_messages(session):
    agent = make_staff(session)
    loan = make_loan(session, agent=agent)
    row = InboundMessage(from_phone="+919800000001", body="hi", loan_id=loan.id)
    loose = InboundMessage(from_phone="+919800000002", body="who?")
    session.add_all([row, loose])
    session.flush()
    assert inbound_loan_ids(session, inbound_ids=[row.id, loose.id]) == {row.id: loan.id}
    assert inbound_loan_ids(session, inbound_ids=[]) == {}


def test_start_broadcast_points_it_at_its_message_and_reports_progress(session):
    admin = actor(make_staff(session, role=Role.ADMIN))
    agent = make_staff(session, role=Role.AGENT, name="Lata")
    make_loan(session, agent=agent)
    report = start_broadcast(
        session,
        actor=admin,
        audience=Audience(AudienceKind.AGENT, agent_id=agent.id),
        template="Hi {name}",
        today=clock.utcnow().date(),
        settings=_wide_settings(),
        chat_id=-1001,
        message_id=7,
    )
    bid = report.tracked.broadcast_id
    assert (report.tracked.chat_id, report.tracked.message_id) == (-1001, 7)
    assert report.tracked.audience == "borrowers of Lata"
    assert (report.progress.total, report.progress.counts["queued"], report.failures) == (1, 1, [])
    [again] = progress_reports(session, broadcast_id=bid)
    assert again == report


def test_broadcast_lines_and_cancel_and_count(session):
    admin = actor(make_staff(session, role=Role.ADMIN))
    agent = make_staff(session, role=Role.AGENT, name="Lata")
    make_loan(session, agent=agent)
    make_loan(session, agent=agent)
    bid = _broadcast(session, admin, agent)
    line = next(
        x for x in tracking.broadcast_lines(session, actor=admin, limit=50) if x.info.id == bid
    )
    assert (line.audience, line.progress.counts["queued"]) == ("borrowers of Lata", 2)
    assert tracking.cancel_and_count(session, actor=admin, broadcast_id=bid) == 2
    with pytest.raises(AccessDenied):
        tracking.broadcast_lines(session, actor=actor(agent), limit=10)


def test_audience_words_if_anyone(session):
    agent = make_staff(session, role=Role.AGENT, name="Lata")
    nobody = make_staff(session, role=Role.AGENT, name="Ravi")
    make_loan(session, agent=agent)
    today = clock.utcnow().date()
    words = audience_words_if_anyone(
        session, audience=Audience(AudienceKind.AGENT, agent_id=agent.id), today=today
    )
    assert words == "borrowers of Lata"
    empty = Audience(AudienceKind.AGENT, agent_id=nobody.id)
    assert audience_words_if_anyone(session, audience=empty, today=today) is None
