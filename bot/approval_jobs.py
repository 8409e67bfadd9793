"""The approval job: approvers' cards out, decided cards edited, requesters told, reminders.

The services record what is due (db/services/approvals/cards.py); this job sends it, the
way replies are relayed (bot/jobs.py): a card goes to an approver only while they have a
live session (held until they log in), and is marked sent with its chat and message ids so
that, once someone decides, every other card can be edited to say who decided. A refused
send (bot blocked, chat gone) or edit is logged and marked done: the request stays in
/approvals for everyone, so nothing is lost by giving up on one chat.
"""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal

from telegram.error import BadRequest, Forbidden, TelegramError

from bot import keyboards, texts
from bot.context import Context, agency_of, db, settings_of
from db import clock
from db.money import format_money
from db.services.approvals import cards
from db.services.approvals.requests import ApprovalView

log = logging.getLogger(__name__)

APPROVALS_EVERY = 5.0  # seconds
LOCK = "jobs.approval_lock"  # bot_data: one run at a time (the job, or after a decision)


def card_text(context: Context, view: ApprovalView, outstanding, record) -> str:
    """An approval card's text from a request, the loan's outstanding and a track record."""
    agency, p = agency_of(context), view.payload

    def money(value) -> str:
        # The payload keeps amounts as strings (JSON): read back exactly as Decimal.
        return format_money(Decimal(str(value)), agency) if value is not None else texts.EDIT_EMPTY

    change = {
        "outstanding": money(outstanding if outstanding is not None else p.get("outstanding")),
        "amount": money(p.get("amount")),
        "from_": p.get("from", ""),
        "to": p.get("to", ""),
    }
    shown = None
    if record is not None:
        shown = (record.agent_name, record.loans, record.on_time_percent, record.broken_promises)
    return texts.approval_card(
        view.id,
        view.kind.value,
        view.loan_number or "",
        view.borrower_name or "",
        change,
        view.requested_by,
        view.note,
        shown,
    )


def _lock(context: Context) -> asyncio.Lock:
    return context.bot_data.setdefault(LOCK, asyncio.Lock())


async def approvals_job(context: Context) -> None:
    """Send due cards, settle decided ones, tell requesters, remind old requests."""
    async with _lock(context):
        await _send_cards(context)
        await _settle_cards(context)
        await _tell_outcomes(context)
        await _remind(context)


async def after_decision(context: Context) -> None:
    """Right after a decision in the chat: the other cards and the requester, now."""
    async with _lock(context):
        await _settle_cards(context)
        await _tell_outcomes(context)


def _session_limits(context: Context) -> dict[str, int]:
    s = settings_of(context)
    return {"idle_minutes": s.session_idle_minutes, "max_hours": s.session_max_hours}


async def _send_cards(context: Context) -> None:
    today = clock.today(settings_of(context).tz)
    due = await db(context, cards.cards_to_send, today=today, **_session_limits(context))
    for card in due:
        text = card_text(context, card.approval, card.outstanding, card.record)
        try:
            sent = await context.bot.send_message(
                card.chat_id, text, reply_markup=keyboards.approval_decision(card.approval.id)
            )
        except (Forbidden, BadRequest) as exc:
            log.warning("approval card %s refused by chat %s: %s", card.card_id, card.chat_id, exc)
            await db(context, cards.mark_card_settled, card_id=card.card_id)
            continue
        except TelegramError as exc:
            log.info("approval card %s waits for the network: %s", card.card_id, exc)
            return
        await db(
            context,
            cards.mark_card_sent,
            card_id=card.card_id,
            chat_id=card.chat_id,
            message_id=sent.message_id,
        )


async def _settle_cards(context: Context) -> None:
    for card in await db(context, cards.cards_to_settle):
        view = card.approval
        who = view.decided_by if view.decided_by else view.requested_by
        text = texts.approval_decided(
            card_text(context, view, None, None), view.state.value, who, view.reason
        )
        try:
            await context.bot.edit_message_text(
                text, chat_id=card.chat_id, message_id=card.message_id, reply_markup=None
            )
        except BadRequest as exc:
            if "not modified" not in exc.message.lower():
                log.info("approval card %s could not be edited: %s", card.card_id, exc)
        except Forbidden as exc:
            log.info("approval card %s could not be edited: %s", card.card_id, exc)
        except TelegramError as exc:
            log.info("approval card %s waits for the network: %s", card.card_id, exc)
            return
        await db(context, cards.mark_card_settled, card_id=card.card_id)


async def _tell_outcomes(context: Context) -> None:
    for told in await db(context, cards.outcomes_to_tell, **_session_limits(context)):
        view = told.approval
        text = texts.approval_outcome(
            view.id,
            view.kind.value,
            view.loan_number or "",
            view.state.value,
            view.decided_by or "",
            view.reason,
        )
        try:
            await context.bot.send_message(told.chat_id, text)
        except (Forbidden, BadRequest) as exc:
            log.warning("could not tell the requester of approval %s: %s", view.id, exc)
        except TelegramError as exc:
            log.info("the outcome of approval %s waits for the network: %s", view.id, exc)
            return
        await db(context, cards.mark_told, approval_id=view.id)


async def _remind(context: Context) -> None:
    settings = settings_of(context)
    due = await db(
        context,
        cards.due_reminders,
        hours=settings.approval_remind_hours,
        **_session_limits(context),
    )
    for view, chats in due:
        since = texts.local_time(view.created_at, settings.tz)
        text = texts.approval_reminder(view.id, view.kind.value, view.loan_number or "", since)
        for chat_id in chats:
            try:
                await context.bot.send_message(
                    chat_id, text, reply_markup=keyboards.approval_decision(view.id)
                )
            except TelegramError as exc:
                log.info("approval reminder %s not sent to %s: %s", view.id, chat_id, exc)
