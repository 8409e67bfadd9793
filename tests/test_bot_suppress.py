"""/unsuppress and the Lift buttons of /deliveries, end to end against the sandbox Bot API."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import select

from bot import texts
from bot.keyboards import CB, data
from db.models import AuditEvent, Role, Suppression, SuppressionKind
from db.services.sms import suppressions
from tests.bot_harness import BotHarness
from tests.bot_helpers import button

pytestmark = pytest.mark.e2e


def _phone() -> tuple[str, str]:
    """A random Indian mobile: (E.164, as an agent might type it)."""
    digits = f"98{random.randrange(10**8):08d}"
    return f"+91{digits}", f"+91 {digits[:5]} {digits[5:]}"


def _suppress(
    h: BotHarness,
    phone: str,
    kind=SuppressionKind.PERMANENT,
    reason: str = "unknown number (not in service)",
) -> None:
    h.db(suppressions.suppress, phone=phone, kind=kind, reason=reason, error_code="30005")


def _suppressed(h: BotHarness, phone: str) -> bool:
    return h.db(lambda s: s.get(Suppression, phone) is not None)


def _lift_audits(h: BotHarness, phone: str) -> list[tuple[int | None, dict]]:
    return h.db(
        lambda s: [
            (a.staff_id, a.details)
            for a in s.scalars(
                select(AuditEvent).where(
                    AuditEvent.action == "suppression_lifted", AuditEvent.target_id == phone
                )
            )
        ]
    )


async def test_unsuppress_asks_then_lifts_with_the_reason_audited(settings, committed):
    async with BotHarness(settings, committed) as h:
        admin = h.make_staff(Role.ADMIN)
        phone, typed = _phone()
        _suppress(h, phone, reason="unknown <number>")

        ask = await h.say(admin, f"/unsuppress {typed} new SIM & same number")
        assert f"Lift the suppression of {phone}?" in ask["text"]
        assert "unknown <number>" in ask["text"] and "&lt;number&gt;" in ask["source"]
        assert _suppressed(h, phone)  # nothing changes before the confirmation

        mark = h.sandbox.mark()
        await h.press(admin, ask, button(ask, texts.SUP_BTN_YES))
        done = await h.wait(admin, after=mark)
        assert done["text"] == f"✅ {phone} is no longer suppressed: SMS will go to it again."
        assert not _suppressed(h, phone)
        [(staff_id, details)] = _lift_audits(h, phone)
        assert staff_id == admin.staff_id
        assert (details["via"], details["reason"]) == ("admin", "new SIM & same number")
        [lift] = h.db(suppressions.lift_history, phone=phone)
        assert (lift.via, lift.lifted_by_id) == ("admin", admin.staff_id)

        again = await h.press(admin, ask, button(ask, texts.SUP_BTN_YES), force=True)
        assert again["text"] == f"{phone} is not suppressed."  # a second tap changes nothing
        assert len(_lift_audits(h, phone)) == 1


async def test_cancel_keeps_the_suppression(settings, committed):
    async with BotHarness(settings, committed) as h:
        admin = h.make_staff(Role.ADMIN)
        phone, _ = _phone()
        _suppress(h, phone)
        ask = await h.say(admin, f"/unsuppress {phone}")
        mark = h.sandbox.mark()
        await h.press(admin, ask, button(ask, texts.SUP_BTN_NO))
        kept = await h.wait(admin, after=mark)
        assert kept["text"] == f"Nothing changed: {phone} stays suppressed."
        assert _suppressed(h, phone) and _lift_audits(h, phone) == []


async def test_non_admins_bad_phones_and_opt_outs_are_refused(settings, committed):
    async with BotHarness(settings, committed) as h:
        admin, manager = h.make_staff(Role.ADMIN), h.make_staff(Role.MANAGER)
        phone, _ = _phone()
        stopped, _ = _phone()
        _suppress(h, phone)
        _suppress(h, stopped, kind=SuppressionKind.OPT_OUT, reason="unsubscribed")

        refused = await h.say(manager, f"/unsuppress {phone}")
        assert refused["text"] == "Only admins may lift suppressions."
        forged = await h.press(manager, refused, data(CB.SUP_YES, phone[1:]), force=True)
        assert forged["text"] == "Only admins may lift suppressions."
        assert _suppressed(h, phone)

        assert (await h.say(admin, "/unsuppress"))["text"] == texts.UNSUPPRESS_USAGE
        bad = await h.say(admin, "/unsuppress 12ab")
        assert bad["text"] == "That is not a phone number. Send digits, e.g. 98765 43210."
        unknown, _ = _phone()
        assert (await h.say(admin, f"/unsuppress {unknown}"))["text"] == (
            f"{unknown} is not suppressed."
        )

        ask = await h.say(admin, f"/unsuppress {stopped}")
        answer = await h.press(admin, ask, button(ask, texts.SUP_BTN_YES))
        assert answer["text"] == (
            f"{stopped} opted out; only the borrower can undo that by texting START."
        )
        assert _suppressed(h, stopped) and _suppressed(h, phone)
        junk = await h.press(admin, ask, "sup:yes:+91abc", force=True)
        assert junk["text"] == texts.BAD_BUTTON


async def test_deliveries_lists_suppressed_numbers_with_a_lift_button(settings, committed):
    async with BotHarness(settings, committed) as h:
        admin = h.make_staff(Role.ADMIN)
        dead, _ = _phone()
        stopped, _ = _phone()
        _suppress(h, dead, reason="landline or unreachable carrier")
        _suppress(h, stopped, kind=SuppressionKind.OPT_OUT, reason="unsubscribed")

        report = await h.say(admin, "/deliveries")
        assert "Suppressed numbers" in report["text"]
        assert f"{dead}: landline or unreachable carrier" in report["text"]
        labels = [b["text"] for b in report["buttons"]]
        assert texts.sup_btn_lift(dead) in labels
        assert texts.sup_btn_lift(stopped) not in labels  # only the borrower's START lifts it

        mark = h.sandbox.mark()
        await h.press(admin, report, button(report, texts.sup_btn_lift(dead)))
        ask = await h.wait(admin, after=mark)
        assert f"Lift the suppression of {dead}?" in ask["text"]
        mark = h.sandbox.mark()
        await h.press(admin, ask, button(ask, texts.SUP_BTN_YES))
        await h.wait(admin, after=mark, contains="no longer suppressed")
        assert not _suppressed(h, dead)
        [(staff_id, details)] = _lift_audits(h, dead)
        assert staff_id == admin.staff_id and details["reason"] is None


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("+91 98765 43210 new SIM", ("+919876543210", "new SIM")),
        ("9876543210", ("+919876543210", "")),
        ("+919876543210 2 SIMs now", ("+919876543210", "2 SIMs now")),
        ("98765 43210", ("+919876543210", "")),
    ],
)
def test_the_phone_is_read_before_the_reason(typed, expected) -> None:
    from bot.handlers.suppress import split_phone

    assert split_phone(typed, "IN") == expected
