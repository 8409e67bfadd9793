"""Loans as HTML text: the card, list and search lines, history pages, the /new summary.

Pure functions over the services' frozen views, built from texts.py sentences; every value
that came from a person or the database is escaped here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from bot import paging, texts
from bot.texts import esc
from db.agency import Agency
from db.models import Frequency, InterestMethod, LoanState
from db.money import build_schedule, format_money
from db.services.loans.history import HistoryItem
from db.services.loans.snapshots import LoanSummary, LoanView
from db.services.reports import WorkItem
from db.services.risk import Risk

LABEL_MAX = 60  # button labels: plain text, kept short enough for a phone screen
NOTE_MAX = 200  # a contact note or history line shown in full would crowd the card out
LINE_MAX = 300
NAME_MAX = 60  # a person's name inside a list line


def day(value: date) -> str:
    """A calendar date as 05 Mar 2026 (no day/month order to misread)."""
    return f"{value:%d %b %Y}"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- the card ------------------------------------------------------------------------------


def _plan(view: LoanView) -> str:
    if view.installments_count == 1:
        plan = texts.CARD_PLAN_SINGLE
    else:
        plan = texts.CARD_PLAN_INSTALLMENTS.format(
            count=view.installments_count, frequency=view.frequency.value
        )
    if view.interest_method is InterestMethod.NONE:
        return plan
    rate = texts.CARD_INTEREST.format(
        method=view.interest_method.value, rate=f"{view.interest_rate.normalize():f}"
    )
    return f"{plan} · {rate}"


def _who_lines(view: LoanView) -> list[str]:
    name = texts.CARD_BORROWER.format(name=esc(view.borrower_name))
    lines = [name + (texts.CARD_OPTED_OUT if view.borrower_opted_out else "")]
    lines.append(texts.CARD_PHONE.format(phone=esc(view.borrower_phone)))
    if view.borrower_address:
        lines.append(texts.CARD_ADDRESS.format(address=esc(view.borrower_address)))
    return lines


def _money_lines(view: LoanView, agency: Agency) -> list[str]:
    lines = [
        texts.CARD_AMOUNT.format(principal=format_money(view.principal, agency), plan=_plan(view))
    ]
    if view.amount_payable != view.principal:
        lines.append(texts.CARD_PAYABLE.format(payable=format_money(view.amount_payable, agency)))
    if view.fees_charged:
        lines.append(texts.CARD_FEES.format(fees=format_money(view.fees_charged, agency)))
    lines.append(
        texts.CARD_PAID.format(
            paid=format_money(view.amount_paid, agency),
            done=view.installments_paid,
            count=view.installments_count,
        )
    )
    lines.append(texts.CARD_OUTSTANDING.format(outstanding=format_money(view.outstanding, agency)))
    return lines


def _due_lines(view: LoanView, agency: Agency) -> list[str]:
    if view.next_due_date is None:
        return [texts.CARD_NEXT_DUE.format(date=texts.CARD_NOT_DUE, amount="-")]
    lines = [
        texts.CARD_NEXT_DUE.format(
            date=day(view.next_due_date), amount=format_money(view.next_due_amount, agency)
        )
    ]
    if view.days_past_due > 0:
        lines.append(
            texts.CARD_PAST_DUE.format(
                days=view.days_past_due, amount=format_money(view.overdue_amount, agency)
            )
        )
    return lines


def _activity_lines(view: LoanView, agency: Agency) -> list[str]:
    lines = []
    if (p := view.open_promise) is not None:
        lines.append(
            texts.CARD_PROMISE.format(
                amount=format_money(p.amount, agency),
                date=day(p.promised_date),
                by=esc(p.made_by or "-"),
            )
        )
    if (c := view.last_contact) is not None:
        what = f"{c.channel.value}: {c.outcome.value.replace('_', ' ')}"
        if c.note:
            what += f" ({_cut(c.note, NOTE_MAX)})"
        at = texts.local_time(c.created_at, agency.zone)
        lines.append(texts.CARD_CONTACT.format(what=esc(what), at=at, by=esc(c.staff_name or "-")))
    lines.append(texts.CARD_AGENT.format(agent=esc(view.agent_name or texts.CARD_UNASSIGNED)))
    if (h := view.hold) is not None:
        at = texts.local_time(h.opened_at, agency.zone)
        until = day(h.until) if h.until else None
        lines.append(texts.hold_line(h.kind.value, _cut(h.note, NOTE_MAX), at, until))
    if view.state_reason:
        lines.append(texts.CARD_REASON.format(reason=esc(view.state_reason)))
    if view.archived_at is not None:
        lines.append(
            texts.CARD_ARCHIVED.format(
                at=texts.local_time(view.archived_at, agency.zone),
                reason=esc(view.archive_reason or "-"),
            )
        )
    return lines


def card(
    view: LoanView, agency: Agency, note: str | None = None, scored: Risk | None = None
) -> str:
    """A loan's card; note (plain text) goes on top, in italics; scored: its risk line."""
    head = [f"<i>{esc(note)}</i>", ""] if note else []
    title = texts.CARD_TITLE.format(
        number=esc(view.loan_number), state=texts.CARD_STATES[view.state.value]
    )
    state_lines = _due_lines(view, agency) if view.state is LoanState.ACTIVE else []
    body = [
        *_who_lines(view),
        "",
        *_money_lines(view, agency),
        *state_lines,
        *_activity_lines(view, agency),
        *([texts.risk_line(scored.score, scored.parts, scored.eligible)] if scored else []),
    ]
    return "\n".join([*head, title, *body])


# --- lists ----------------------------------------------------------------------------------


def loan_label(loan: LoanSummary, agency: Agency) -> str:
    """A loan's button label (plain text): number, borrower, outstanding, days late."""
    late = f" · {loan.days_past_due}d late" if loan.days_past_due > 0 else ""
    head = f"{loan.loan_number} · {format_money(loan.outstanding, agency)}{late} · "
    return head + _cut(loan.borrower_name, max(LABEL_MAX - len(head), 8))


def loan_buttons(loans: list[LoanSummary], agency: Agency) -> list[tuple[int, str]]:
    """(id, label) for keyboards that open cards."""
    return [(loan.id, loan_label(loan, agency)) for loan in loans]


def list_title(filter_label: str, page: int, sees_all: bool) -> str:
    """The head of a /list page."""
    title = texts.LIST_TITLE_ALL if sees_all else texts.LIST_TITLE_MINE
    return title.format(filter=esc(filter_label), page=page)


def find_title(query: str, offset: int, count: int) -> str:
    """The head of a /find page."""
    return texts.FIND_TITLE.format(
        query=esc(_cut(query, 40)), first=offset + 1, last=offset + count
    )


def today_text(items: list[WorkItem], agency: Agency) -> str:
    """/today: one numbered line per loan with why it is on the list."""
    if not items:
        return texts.TODAY_EMPTY
    lines = [texts.TODAY_TITLE.format(count=len(items))]
    for n, item in enumerate(items, 1):
        loan = item.loan
        lines.append(
            texts.TODAY_LINE.format(
                n=n,
                number=esc(loan.loan_number),
                name=esc(_cut(loan.borrower_name, 40)),
                reason=esc(item.reason),
                outstanding=format_money(loan.outstanding, agency),
            )
        )
    return "\n".join(lines)


def history_page(
    number: str, items: list[HistoryItem], page: int, agency: Agency
) -> tuple[str, int]:
    """One page of a loan's history, newest first (page 1 is the newest), and how many of
    items it shows: as many as fit in one message (long notes and names take room)."""
    if not items and page == 1:
        return texts.HISTORY_EMPTY, 0
    head = texts.HISTORY_TITLE.format(number=esc(number), page=page)
    lines = []
    for item in items:
        by = f" · {esc(paging.cut(item.staff_name, NAME_MAX))}" if item.staff_name else ""
        lines.append(
            texts.HISTORY_LINE.format(
                at=texts.local_time(item.at, agency.zone),
                summary=esc(paging.cut(item.summary, LINE_MAX)),
                by=by,
            )
        )
    shown = paging.fit(lines, head=head)
    return "\n".join([head, *lines[:shown]]), shown


def history_text(number: str, items: list[HistoryItem], page: int, agency: Agency) -> str:
    """The text of history_page()."""
    return history_page(number, items, page, agency)[0]


# --- /new -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Draft:
    """What /new collected, as the summary shows it."""

    name: str
    existing: bool
    phone: str
    address: str | None
    principal: Decimal
    count: int
    frequency: Frequency
    first_due: date
    method: InterestMethod
    rate: Decimal
    number: str | None


def _repayment(draft: Draft, agency: Agency) -> tuple[str, Decimal]:
    schedule = build_schedule(
        principal=draft.principal,
        count=draft.count,
        frequency=draft.frequency,
        first_due=draft.first_due,
        method=draft.method,
        annual_rate=draft.rate,
        minor_units=agency.minor_units,
    )
    total = sum((s.amount for s in schedule), Decimal(0))
    if draft.count == 1:
        plan = texts.NEW_SCHEDULE_SINGLE.format(
            amount=format_money(total, agency), date=day(draft.first_due)
        )
    else:
        plan = texts.NEW_SCHEDULE.format(
            count=draft.count,
            frequency=draft.frequency.value,
            first=format_money(schedule[0].amount, agency),
            date=day(draft.first_due),
        )
    return plan, total


def new_summary(draft: Draft, agency: Agency) -> str:
    """The summary /new shows above Confirm / Cancel."""
    plan, total = _repayment(draft, agency)
    interest = texts.NEW_NO_INTEREST
    if draft.method is not InterestMethod.NONE:
        interest = texts.CARD_INTEREST.format(
            method=draft.method.value, rate=f"{draft.rate.normalize():f}"
        )
    return texts.NEW_SUMMARY.format(
        name=esc(draft.name),
        existing=texts.NEW_EXISTING_MARK if draft.existing else "",
        phone=esc(draft.phone),
        address=esc(draft.address or texts.NEW_NO_ADDRESS),
        principal=format_money(draft.principal, agency),
        plan=plan,
        interest=interest,
        total=format_money(total, agency),
        number=esc(draft.number or texts.NEW_NUMBER_AUTO),
    )
