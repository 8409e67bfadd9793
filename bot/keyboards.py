"""Inline keyboards and their callback data.

Callback data is a plain string "<prefix><field>:<field>..." (max 64 bytes, Telegram's
limit); arbitrary callback data is off, so nothing but strings round-trips. Each prefix is
a member of CB; a handler registers with pattern(CB.X) and reads its fields with
parse_ids()/parse_fields(), which return None for a forged or malformed payload (answer
it with texts.BAD_BUTTON and change nothing). Add your prefixes and keyboards under a
section header of your own.
"""

from __future__ import annotations

import re
from enum import StrEnum

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from db.models import LoanState, Role
from db.services.loans.snapshots import LoanView

MAX_DATA = 64
_FIELD = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


class CB(StrEnum):
    """Callback-data prefixes; each ends with ':' and is unique, none prefixes another."""

    # access requests (register notifies admins; admin.py decides)
    ACCESS_APPROVE = "acc:ok:"
    ACCESS_REJECT = "acc:no:"
    # staff management (/staff)
    STAFF_SHOW = "stf:show:"
    STAFF_LIST = "stf:list:"
    STAFF_DISABLE = "stf:off:"
    STAFF_ENABLE = "stf:on:"
    STAFF_ROLE = "stf:role:"
    # loans: card buttons carry <loan_id>:<card version>; LOAN_CARD carries <loan_id> only
    LOAN_CARD = "ln:card:"
    LOAN_PAY = "ln:pay:"
    LOAN_PROMISE = "ln:prm:"
    LOAN_CONTACT = "ln:ctc:"
    LOAN_EDIT = "ln:edt:"
    LOAN_HISTORY = "ln:his:"
    LOAN_REMIND = "ln:rem:"
    LOAN_CLOSE = "ln:cls:"
    LOAN_WRITE_OFF = "ln:wof:"
    LOAN_ASSIGN = "ln:asg:"
    LOAN_DELETE = "ln:del:"  # archives (issue 9: loans are never deleted)
    LOAN_RESTORE = "ln:rst:"
    LOAN_DISPUTE = "ln:dsp:"
    LOAN_HARDSHIP = "ln:hrd:"
    LOAN_RESOLVE = "ln:rsv:"
    # loan lookup pages (handlers/loans.py): search results, history pages, /list pages
    LOAN_FIND_PAGE = "lnf:"
    LOAN_HISTORY_PAGE = "lnh:"
    LOAN_LIST_PAGE = "lnl:"
    # /new (conversations/add_loan.py): <step>:<value>:<form token>
    NEW_LOAN = "nl:"
    # loan actions (conversations/payment, promise, contact, edit_loan, close_loan)
    PAY_CONFIRM = "pay:ok:"
    CONTACT_CHANNEL = "ctc:ch:"
    CONTACT_OUTCOME = "ctc:out:"
    CONTACT_SKIP = "ctc:skip:"
    EDIT_FIELD = "edt:f:"
    EDIT_CONFIRM = "edt:ok:"
    CLOSE_CONFIRM = "cls:ok:"
    WRITE_OFF_CONFIRM = "wof:ok:"
    ASSIGN_TO = "asg:to:"
    ARCHIVE_CONFIRM = "arc:ok:"
    RESTORE_CONFIRM = "rst:ok:"
    HOLD_CONFIRM = "hold:ok:"
    RESOLVE_OUTCOME = "rsv:out:"
    ACTION_CANCEL = "act:no:"
    # SMS (conversations/broadcast.py: <field>:<form token>; handlers/sms.py: <broadcast id>)
    BC_AUDIENCE = "bc:aud:"
    BC_BUCKET = "bc:bkt:"
    BC_AGENT = "bc:agt:"
    BC_SEND = "bc:ok:"
    BC_EDIT = "bc:edit:"
    BC_ABORT = "bc:no:"
    BC_CANCEL = "bc:cancel:"
    BC_CANCEL_YES = "bc:cxl:"
    BC_LIST = "bc:list:"
    # suppressed numbers (handlers/suppress.py): <phone digits, E.164 without +>
    SUP_LIFT = "sup:lift:"
    SUP_YES = "sup:yes:"
    SUP_NO = "sup:no:"
    # /export (handlers/exports.py): <kind>; <kind>:<period>; <kind>:<period>:<format>
    EXPORT_KIND = "exp:k:"
    EXPORT_PERIOD = "exp:p:"
    EXPORT_RUN = "exp:f:"
    # /statement and the card's Statement button (handlers/statements.py): <loan id>
    STATEMENT = "stm:"
    # approvals (handlers/approvals.py): <approval id>; the page button: <page>
    APPROVAL_OK = "apv:ok:"
    APPROVAL_NO = "apv:no:"
    APPROVAL_SHOW = "apv:show:"
    APPROVAL_WITHDRAW = "apv:wd:"
    APPROVAL_PAGE = "apv:pg:"
    # API keys (handlers/api_keys.py): <key id>
    API_KEY_REVOKE = "key:rv:"
    API_KEY_KEEP = "key:keep:"


def pattern(prefix: CB) -> str:
    """A CallbackQueryHandler pattern matching one prefix."""
    return "^" + re.escape(prefix.value)


def data(prefix: CB, *fields: object) -> str:
    """Callback data for prefix and fields (each a short id-like token)."""
    parts = [str(f) for f in fields]
    if not all(_FIELD.match(p) for p in parts):
        raise ValueError(f"callback fields must be short tokens: {parts!r}")
    text = prefix.value + ":".join(parts)
    if len(text.encode()) > MAX_DATA:
        raise ValueError(f"callback data longer than {MAX_DATA} bytes: {text!r}")
    return text


def parse_fields(raw: str | None, prefix: CB, count: int) -> list[str] | None:
    """The count fields after prefix, or None when the payload is not well-formed."""
    if not raw or len(raw.encode()) > MAX_DATA or not raw.startswith(prefix.value):
        return None
    parts = raw[len(prefix.value) :].split(":")
    if len(parts) != count or not all(_FIELD.match(p) for p in parts):
        return None
    return parts


def parse_ids(raw: str | None, prefix: CB, count: int = 1) -> list[int] | None:
    """The count positive integer fields after prefix, or None when malformed."""
    parts = parse_fields(raw, prefix, count)
    if parts is None or not all(p.isascii() and p.isdigit() and len(p) <= 18 for p in parts):
        return None
    ids = [int(p) for p in parts]
    return ids if all(i > 0 for i in ids) else None


def parse_role(raw: str | None, prefix: CB) -> tuple[int, Role] | None:
    """(staff id, role) from "<prefix><id>:<role>", or None when malformed."""
    parts = parse_fields(raw, prefix, 2)
    if parts is None or not (parts[0].isdigit() and len(parts[0]) <= 18):
        return None
    try:
        return int(parts[0]), Role(parts[1])
    except ValueError:
        return None


def _button(text: str, prefix: CB, *fields: object) -> InlineKeyboardButton:
    return InlineKeyboardButton(text, callback_data=data(prefix, *fields))


# --- access requests ---------------------------------------------------------------------


def access_decision(staff_id: int) -> InlineKeyboardMarkup:
    """Approve / Reject under an access request."""
    return InlineKeyboardMarkup(
        [
            [
                _button("✅ Approve", CB.ACCESS_APPROVE, staff_id),
                _button("❌ Reject", CB.ACCESS_REJECT, staff_id),
            ]
        ]
    )


# --- staff management ----------------------------------------------------------------------


def staff_list(rows: list[tuple[int, str]]) -> InlineKeyboardMarkup:
    """One button per staff member (id, label) opening their card."""
    return InlineKeyboardMarkup([[_button(label, CB.STAFF_SHOW, sid)] for sid, label in rows])


def staff_actions(staff_id: int, role: Role, active: bool) -> InlineKeyboardMarkup:
    """Disable/Enable, the other roles, and back to the list."""
    toggle = (
        _button("🚫 Disable", CB.STAFF_DISABLE, staff_id)
        if active
        else _button("✅ Enable", CB.STAFF_ENABLE, staff_id)
    )
    roles = [
        _button(f"Make {r.value}", CB.STAFF_ROLE, staff_id, r.value) for r in Role if r != role
    ]
    back = _button("« Staff list", CB.STAFF_LIST, 0)
    return InlineKeyboardMarkup([[toggle], roles, [back]])


# --- loans: card and lookup (handlers/loans.py, conversations/add_loan.py) ----------------


def _loan_ids(view: LoanView) -> tuple[int, int]:
    return view.id, view.version


def loan_card(view: LoanView, role: Role) -> InlineKeyboardMarkup:
    """The card's buttons: every action on an active loan; History (and Archive) otherwise.

    An archived loan (only admins and finance see one) has History and Restore. Finance,
    which changes nothing, gets History and Statement only; every card has Statement.
    """
    ids = _loan_ids(view)
    rows: list[list[InlineKeyboardButton]] = []
    statement = _button("🧾 Statement", CB.STATEMENT, view.id)
    if view.archived_at is not None or role is Role.FINANCE:
        rows.append([_button("📜 History", CB.LOAN_HISTORY, *ids), statement])
        if role is Role.ADMIN:
            rows.append([_button("♻️ Restore", CB.LOAN_RESTORE, *ids)])
        return InlineKeyboardMarkup(rows)
    if view.state is LoanState.ACTIVE:
        rows += [
            [
                _button("💰 Pay", CB.LOAN_PAY, *ids),
                _button("🤝 Promise", CB.LOAN_PROMISE, *ids),
                _button("📞 Contact", CB.LOAN_CONTACT, *ids),
            ],
            [
                _button("✏️ Edit", CB.LOAN_EDIT, *ids),
                _button("📜 History", CB.LOAN_HISTORY, *ids),
                _button("🔔 Remind now", CB.LOAN_REMIND, *ids),
            ],
            [_button("✅ Close", CB.LOAN_CLOSE, *ids), *_hold_row(view, role)],
            [statement],
        ]
        if role in (Role.MANAGER, Role.ADMIN):
            rows.append(
                [
                    _button("✖️ Write off", CB.LOAN_WRITE_OFF, *ids),
                    _button("👤 Reassign", CB.LOAN_ASSIGN, *ids),
                ]
            )
    else:
        rows.append([_button("📜 History", CB.LOAN_HISTORY, *ids), statement])
    if role is Role.ADMIN:
        rows.append([_button("🗄 Archive", CB.LOAN_DELETE, *ids)])
    return InlineKeyboardMarkup(rows)


def _hold_row(view: LoanView, role: Role) -> list[InlineKeyboardButton]:
    """Dispute / Hardship on a loan without an open hold; Resolve (managers) on one with."""
    ids = _loan_ids(view)
    if view.hold is None:
        return [
            _button("⚖️ Dispute", CB.LOAN_DISPUTE, *ids),
            _button("⏸ Hardship", CB.LOAN_HARDSHIP, *ids),
        ]
    if role in (Role.MANAGER, Role.ADMIN):
        return [_button("⚖️ Resolve", CB.LOAN_RESOLVE, *ids)]
    return []


def _card_rows(loans: list[tuple[int, str]]) -> list[list[InlineKeyboardButton]]:
    return [[_button(label, CB.LOAN_CARD, loan_id)] for loan_id, label in loans]


def _nav(back: InlineKeyboardButton | None, more: InlineKeyboardButton | None) -> list:
    row = [b for b in (back, more) if b is not None]
    return [row] if row else []


def search_results(loans: list[tuple[int, str]], page: int, has_more: bool) -> InlineKeyboardMarkup:
    """One button per found loan (id, label), then Back / More (pages count from 1)."""
    back = _button("« Back", CB.LOAN_FIND_PAGE, page - 1) if page > 1 else None
    more = _button("More »", CB.LOAN_FIND_PAGE, page + 1) if has_more else None
    return InlineKeyboardMarkup(_card_rows(loans) + _nav(back, more))


def history_nav(loan_id: int, page: int, has_older: bool) -> InlineKeyboardMarkup:
    """Newer / Older under a history page (page 1 is the newest), and back to the card."""
    newer = _button("« Newer", CB.LOAN_HISTORY_PAGE, loan_id, page - 1) if page > 1 else None
    older = _button("Older »", CB.LOAN_HISTORY_PAGE, loan_id, page + 1) if has_older else None
    card = [_button("📄 Card", CB.LOAN_CARD, loan_id)]
    return InlineKeyboardMarkup([*_nav(newer, older), card])


# (filter value, label) of the /list filter buttons, in the order shown
LIST_FILTERS: list[tuple[str, str]] = [
    ("all", "All"),
    ("overdue", "Overdue"),
    ("due_today", "Due today"),
    ("bucket_1_30", "1-30"),
    ("bucket_31_60", "31-60"),
    ("bucket_61_90", "61-90"),
    ("bucket_90_plus", "90+"),
]
# Admins only: archived loans are in no other list (the service refuses anyone else).
ARCHIVED_FILTER = ("archived", "🗄 Archived")


def loan_list(
    loans: list[tuple[int, str]], current: str, page: int, has_next: bool, archived: bool = False
) -> InlineKeyboardMarkup:
    """A /list page: loan buttons, Prev / Next, then the filters (the current one marked).

    archived: also the Archived filter (admins)."""
    prev = _button("« Prev", CB.LOAN_LIST_PAGE, current, page - 1) if page > 1 else None
    nxt = _button("Next »", CB.LOAN_LIST_PAGE, current, page + 1) if has_next else None
    filters = [
        _button(("• " if value == current else "") + label, CB.LOAN_LIST_PAGE, value, 1)
        for value, label in LIST_FILTERS + ([ARCHIVED_FILTER] if archived else [])
    ]
    rows = [filters[:3], filters[3:7], *([filters[7:]] if archived else [])]
    return InlineKeyboardMarkup(_card_rows(loans) + _nav(prev, nxt) + rows)


def loan_buttons(loans: list[tuple[int, str]]) -> InlineKeyboardMarkup:
    """One button per loan (id, label) opening its card (/today)."""
    return InlineKeyboardMarkup(_card_rows(loans))


def new_loan_choices(token: str, step: str, choices: list[tuple[str, str]]) -> InlineKeyboardMarkup:
    """A /new step's buttons: (value, label) pairs, one row of at most three each."""
    buttons = [_button(label, CB.NEW_LOAN, step, value, token) for value, label in choices]
    return InlineKeyboardMarkup([buttons[i : i + 3] for i in range(0, len(buttons), 3)])


# --- loan actions: confirmations and choices (conversations/payment, promise, contact,
# edit_loan, close_loan). Each carries the loan id first, so a button of another loan's
# conversation is told apart.


def action_confirm(
    prefix: CB, loan_id: int, version: int, label: str, cancel: str
) -> InlineKeyboardMarkup:
    """Confirm (prefix with loan id and version) / Cancel under a summary."""
    return InlineKeyboardMarkup(
        [
            [
                _button(label, prefix, loan_id, version),
                _button(cancel, CB.ACTION_CANCEL, loan_id),
            ]
        ]
    )


def action_choices(
    prefix: CB, loan_id: int, choices: list[tuple[str, str]], per_row: int = 2
) -> InlineKeyboardMarkup:
    """One button per (value, label) choice, per_row to a row."""
    buttons = [_button(label, prefix, loan_id, value) for value, label in choices]
    return InlineKeyboardMarkup([buttons[i : i + per_row] for i in range(0, len(buttons), per_row)])


def action_skip(loan_id: int, label: str) -> InlineKeyboardMarkup:
    """A single Skip under an optional question (the contact's note)."""
    return InlineKeyboardMarkup([[_button(label, CB.CONTACT_SKIP, loan_id)]])


def assign_choices(
    loan_id: int, version: int, people: list[tuple[int, str]]
) -> InlineKeyboardMarkup:
    """One button per staff member (id, label) to give the loan to."""
    return InlineKeyboardMarkup(
        [[_button(label[:60], CB.ASSIGN_TO, loan_id, version, sid)] for sid, label in people]
    )


# --- SMS: /broadcast form, /broadcasts cancel, a relayed SMS (conversations/broadcast.py,
# handlers/sms.py, jobs.py). The form's buttons carry its random token, so a button of an
# older /broadcast does nothing to the current one.


def broadcast_audiences(token: str, choices: list[tuple[str, str]]) -> InlineKeyboardMarkup:
    """One audience button (kind, label) a row, then Cancel."""
    rows = [[_button(label, CB.BC_AUDIENCE, kind, token)] for kind, label in choices]
    return InlineKeyboardMarkup([*rows, [_button("Cancel", CB.BC_ABORT, token)]])


def broadcast_buckets(token: str, labels: list[str]) -> InlineKeyboardMarkup:
    """One button per days-past-due bucket (carrying its index), then Cancel."""
    buttons = [_button(label, CB.BC_BUCKET, i, token) for i, label in enumerate(labels)]
    return InlineKeyboardMarkup([buttons[:2], buttons[2:], [_button("Cancel", CB.BC_ABORT, token)]])


def broadcast_agents(token: str, people: list[tuple[int, str]]) -> InlineKeyboardMarkup:
    """One button per agent (id, label), then Cancel."""
    rows = [[_button(label[:60], CB.BC_AGENT, sid, token)] for sid, label in people]
    return InlineKeyboardMarkup([*rows, [_button("Cancel", CB.BC_ABORT, token)]])


def broadcast_confirm(token: str, send_label: str, edit_label: str) -> InlineKeyboardMarkup:
    """Send / Edit text / Cancel under a preview."""
    return InlineKeyboardMarkup(
        [
            [_button(send_label, CB.BC_SEND, token)],
            [_button(edit_label, CB.BC_EDIT, token), _button("Cancel", CB.BC_ABORT, token)],
        ]
    )


def broadcast_list(cancelable: list[tuple[int, str]]) -> InlineKeyboardMarkup | None:
    """A Cancel button (id, label) per running broadcast; None when none runs."""
    if not cancelable:
        return None
    return InlineKeyboardMarkup([[_button(label, CB.BC_CANCEL, bid)] for bid, label in cancelable])


def broadcast_cancel(broadcast_id: int, yes: str, back: str) -> InlineKeyboardMarkup:
    """Yes, cancel it / Back under the confirmation."""
    return InlineKeyboardMarkup(
        [[_button(yes, CB.BC_CANCEL_YES, broadcast_id), _button(back, CB.BC_LIST, 0)]]
    )


def relay_card(loan_id: int, label: str) -> InlineKeyboardMarkup:
    """Under a relayed SMS: open the loan's card."""
    return InlineKeyboardMarkup([[_button(label, CB.LOAN_CARD, loan_id)]])


# --- suppressed numbers (/deliveries, /unsuppress: handlers/suppress.py) -------------------


def phone_field(phone: str) -> str | None:
    """A phone as a callback field (digits of its E.164 form), None when it is not one."""
    digits = phone.removeprefix("+")
    return digits if phone.startswith("+") and digits.isdigit() and len(digits) <= 15 else None


def suppressed_lift(rows: list[tuple[str, str]]) -> InlineKeyboardMarkup | None:
    """A Lift button (phone, label) per liftable suppressed number; None when none."""
    buttons = [
        [_button(label, CB.SUP_LIFT, field)]
        for phone, label in rows
        if (field := phone_field(phone))
    ]
    return InlineKeyboardMarkup(buttons) if buttons else None


def lift_confirm(phone: str, yes: str, no: str) -> InlineKeyboardMarkup:
    """Yes, lift it / Cancel under the confirmation."""
    field = phone_field(phone)
    return InlineKeyboardMarkup([[_button(yes, CB.SUP_YES, field), _button(no, CB.SUP_NO, field)]])


# --- /export (handlers/exports.py) -----------------------------------------------------------


def export_kinds(kinds: list[tuple[str, str]]) -> InlineKeyboardMarkup:
    """One button per export kind (value, label)."""
    return InlineKeyboardMarkup([[_button(label, CB.EXPORT_KIND, kind)] for kind, label in kinds])


def export_periods(kind: str, periods: list[tuple[str, str]]) -> InlineKeyboardMarkup:
    """The periods of a payments or deliveries export (token, label), two to a row."""
    buttons = [_button(label, CB.EXPORT_PERIOD, kind, token) for token, label in periods]
    return InlineKeyboardMarkup([buttons[i : i + 2] for i in range(0, len(buttons), 2)])


def export_formats(kind: str, period: str, formats: list[tuple[str, str]]) -> InlineKeyboardMarkup:
    """CSV / XLSX for an export of kind over period (a token; "-" for none)."""
    return InlineKeyboardMarkup(
        [[_button(label, CB.EXPORT_RUN, kind, period, fmt) for fmt, label in formats]]
    )


# --- approvals (four eyes) ------------------------------------------------------------------


def approval_decision(approval_id: int) -> InlineKeyboardMarkup:
    """Approve / Reject under an approval card."""
    return InlineKeyboardMarkup(
        [
            [
                _button("✅ Approve", CB.APPROVAL_OK, approval_id),
                _button("❌ Reject", CB.APPROVAL_NO, approval_id),
            ]
        ]
    )


def approval_withdraw(approval_id: int) -> InlineKeyboardMarkup:
    """Withdraw under the requester's own request."""
    return InlineKeyboardMarkup([[_button("↩️ Withdraw", CB.APPROVAL_WITHDRAW, approval_id)]])


def approvals_page(ids: list[int], page: int, has_more: bool) -> InlineKeyboardMarkup:
    """One button per request on the page (its card), then Back / More (pages count from 1)."""
    rows = [
        [_button(f"#{i}", CB.APPROVAL_SHOW, i) for i in ids[k : k + 4]]
        for k in range(0, len(ids), 4)
    ]
    back = _button("« Back", CB.APPROVAL_PAGE, page - 1) if page > 1 else None
    more = _button("More »", CB.APPROVAL_PAGE, page + 1) if has_more else None
    return InlineKeyboardMarkup(rows + _nav(back, more))


# --- API keys (handlers/api_keys.py) -----------------------------------------------------


def api_key_revoke_confirm(key_id: int, yes: str, no: str) -> InlineKeyboardMarkup:
    """Revoke / Keep it under /apikey revoke's question."""
    return InlineKeyboardMarkup(
        [[_button(yes, CB.API_KEY_REVOKE, key_id), _button(no, CB.API_KEY_KEEP, key_id)]]
    )
