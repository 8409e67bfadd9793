"""Every sentence the bot says, and the command list the menus and /help are built from.

Conventions (for everyone adding a conversation):
- Messages are sent with parse_mode HTML (the Application's default), so ANY text that
  came from a user, a borrower or the database (names, notes, codes) goes through esc()
  inside a function here. Constants hold no user text.
- Add your sentences under a section header of your own (# --- name ---), constants for
  fixed sentences and small functions for sentences with values.
- Add your commands to COMMANDS (the menus and /help are made from it).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime, tzinfo

from db.models import Role
from db.services.access import Actor
from db.services.errors import ServiceError


def esc(value: object) -> str:
    """value as text that is safe inside an HTML message."""
    return html.escape(str(value), quote=False)


def local_time(moment: datetime, tz: tzinfo) -> str:
    """A UTC moment shown in the agency's time zone, e.g. 2025-03-01 14:05."""
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M")


def service_error(err: ServiceError) -> str:
    """A service's refusal sentence, escaped (it may quote what the user typed)."""
    return esc(err.message)


# --- commands: the menus (set_menu_for) and /help are built from this list ---------------


@dataclass(frozen=True)
class Command:
    """A bot command: public ones show before login; min_role ones to staff of that rank;
    reads ones to finance too (finance reads everything and changes nothing)."""

    name: str
    description: str
    public: bool = False
    min_role: Role | None = Role.AGENT
    reads: bool = False


COMMANDS: list[Command] = [
    # getting in
    Command("start", "Start, or ask for access", public=True, min_role=None),
    Command("login", "Log in with your password", public=True),
    Command("help", "What I can do for you", public=True, reads=True),
    # loans (loan conversations add their commands here)
    Command("new", "Add a loan"),
    Command("find", "Find loans: /find number, phone or name", reads=True),
    Command("loan", "A loan's card: /loan LN-10234", reads=True),
    Command("history", "A loan's history: /history LN-10234", reads=True),
    Command("list", "Your loans, with filters", reads=True),
    Command("today", "Today's work: due, promised, overdue", reads=True),
    Command("pay", "Record a payment: /pay LN-10234 1500"),
    Command("promise", "Record a promise: /promise LN-10234 1500 tomorrow"),
    Command("contact", "Note a call or visit: /contact LN-10234"),
    Command("edit", "Change a loan or its borrower: /edit LN-10234"),
    Command("close", "Close a paid-off loan: /close LN-10234"),
    Command("stats", "Portfolio figures and a collections chart", reads=True),
    Command(
        "export",
        "Loans, overdue, payments or SMS as CSV / XLSX",
        min_role=Role.MANAGER,
        reads=True,
    ),
    Command("statement", "A loan's account statement (PDF): /statement LN-10234", reads=True),
    Command("approvals", "Requests waiting for a second person's approval"),
    Command("assign", "Give a loan to someone else: /assign LN-10234 Ravi", min_role=Role.MANAGER),
    Command(
        "delete", "Archive a loan (loans are never deleted): /delete LN-10234", min_role=Role.ADMIN
    ),
    Command("archive", "Archive a loan: /archive LN-10234", min_role=Role.ADMIN),
    Command("restore", "Bring an archived loan back: /restore LN-10234", min_role=Role.ADMIN),
    Command("dispute", "Stop collection while a loan is disputed: /dispute LN-10234"),
    Command("hardship", "Pause collection until a date: /hardship LN-10234"),
    Command(
        "resolve",
        "Resolve a dispute, hardship or denied payment: /resolve LN-10234",
        min_role=Role.MANAGER,
    ),
    # staff admin
    Command("invite", "Make an invite: /invite agent|manager|admin|finance", min_role=Role.ADMIN),
    Command("requests", "Pending access requests", min_role=Role.ADMIN, reads=True),
    Command("staff", "Staff list: disable, enable, change role", min_role=Role.ADMIN, reads=True),
    Command("audit", "Latest audit events: /audit [name]", min_role=Role.ADMIN, reads=True),
    Command("invite", "Make an invite: /invite agent|manager|admin", min_role=Role.ADMIN),
    Command("requests", "Pending access requests", min_role=Role.ADMIN),
    Command("staff", "Staff list: disable, enable, change role", min_role=Role.ADMIN),
    Command("audit", "Latest audit events: /audit [name]", min_role=Role.ADMIN),
    Command("apikey", "API keys: /apikey new name [scope…], list, revoke id", min_role=Role.ADMIN),
    # SMS
    Command("remind", "Text a borrower a reminder now: /remind LN-10234"),
    Command("broadcast", "Send an SMS to a group of borrowers", min_role=Role.ADMIN),
    Command(
        "broadcasts", "Recent broadcasts; cancel a running one", min_role=Role.ADMIN, reads=True
    ),
    Command(
        "deliveries", "What became of the SMS: last day and week", min_role=Role.ADMIN, reads=True
    ),
    Command(
        "unsuppress",
        "Text a suppressed number again: /unsuppress phone [reason]",
        min_role=Role.ADMIN,
    ),
    # always last for staff
    Command("cancel", "Stop what you are doing", reads=True),
    Command("logout", "Log out", reads=True),
]


def commands_for(role: Role | None) -> list[Command]:
    """The commands shown to a role (None: someone who is not logged-in staff)."""
    if role is None:
        return [c for c in COMMANDS if c.public]
    rank = Actor(staff_id=0, role=role)
    if rank.read_only:
        return [c for c in COMMANDS if c.reads]
    return [c for c in COMMANDS if c.min_role is not None and rank.at_least(c.min_role)]


def _command_lines(role: Role | None) -> str:
    return "\n".join(f"/{c.name} — {esc(c.description)}" for c in commands_for(role))


# --- general -----------------------------------------------------------------------------

ERROR = "Sorry, something went wrong on my side. Please try again in a moment."
PRIVATE_ONLY = "I only work in private chats. Please write to me directly."
SLOW_DOWN = "You are going a bit fast. Please wait a minute and try again."
# --- edited messages (issue 9 item 10) ---
EDIT_NOT_RERUN = "I don't act on edited messages: please send it again as a new message."
UNKNOWN_COMMAND = "I don't know that command. Send /help to see what I can do."
UNKNOWN_TEXT = "I'm not sure what you mean. Send /help to see what I can do."
CANCELLED = "Cancelled. Nothing was changed."
NOTHING_TO_CANCEL = "There is nothing to cancel."
BAD_BUTTON = "That button is not valid."
OLD_BUTTON = "That button no longer works. Send the command again."
TOO_LATE = "That took too long, so I stopped. Please start again."


def help_text(role: Role | None, agency: str) -> str:
    """/help for a role; None explains how to get in."""
    if role is None:
        return (
            f"<b>{esc(agency)}</b> collection assistant, for the agency's staff.\n\n"
            "To get in, open the invite link an admin sent you, or send /start to ask "
            "for access. Already staff? Send /login.\n\n" + _command_lines(None)
        )
    return f"<b>What you can do</b> ({esc(role.value)}):\n\n" + _command_lines(role)


# --- auth gate (require_staff) ---------------------------------------------------------

NOT_STAFF = "This bot is for the agency's staff only."
PENDING = "Your access request is waiting for an admin's approval."
DISABLED = "Your account is disabled. Please ask an admin."
NO_PASSWORD = "Your access was approved. Send /login to choose your password."
PLEASE_LOGIN = "Please log in first: send /login."
SESSION_EXPIRED = "Your session has ended. Please log in again: send /login."
REJECTED_OR_BLOCKED = "You cannot request access. Please ask an admin for an invite."

# --- register: invites and access requests ------------------------------------------------

INVITE_ASK_PASSWORD = (
    "Welcome! This invite makes you <b>{role}</b>.\n\n"
    "Choose a password (at least 8 characters) and send it to me. "
    "I will delete your message right away."
)
NEW_PASSWORD_ASK = (
    "Please choose a password (at least 8 characters) and send it to me. "
    "I will delete your message right away."
)
PASSWORD_AGAIN = "{reason} Please send another password."
# --- a password sent outside the password step (issue 9 item 13) ---
PASSWORD_OUTSIDE_STEP = (
    "⚠️ That message was your password, so I deleted it. Send your password only when I "
    "ask for it (after /login). If someone else may have seen it, change it."
)
ALREADY_STAFF = "You are already staff here. Send /login if you need to log in."
REQUEST_SENT = "Your request was sent to the admins. I will tell you when they decide."
NO_ADMINS = "Your request is saved, but there is no admin yet to approve it."
WELCOME_BACK = "Welcome back, {name}. Send /help to see what you can do."


def invite_ask_password(role: Role) -> str:
    """Asked after a valid invite code."""
    return INVITE_ASK_PASSWORD.format(role=esc(role.value))


def password_again(reason: str) -> str:
    """Re-prompt after a refused password (reason from the password rules)."""
    return PASSWORD_AGAIN.format(reason=esc(reason))


def welcome(name: str, role: Role) -> str:
    """After redeeming an invite or setting the first password."""
    return (
        f"Welcome, {esc(name)}! You are logged in as <b>{esc(role.value)}</b>.\n"
        "Send /help to see what you can do."
    )


def welcome_back(name: str) -> str:
    """/start by logged-in staff."""
    return WELCOME_BACK.format(name=esc(name))


def access_request_for_admin(name: str, username: str | None, user_id: int) -> str:
    """Sent to every admin when someone asks for access."""
    handle = f" (@{esc(username)})" if username else ""
    return (
        f"<b>Access request</b>\n{esc(name)}{handle}, Telegram id <code>{user_id}</code> "
        "asks for access. Approve as agent, or reject?"
    )


def access_decided_for_admin(name: str, approved: bool, by: str) -> str:
    """The admin's request message once decided."""
    verdict = "approved ✅" if approved else "rejected ❌"
    return f"Access request of {esc(name)}: {verdict} by {esc(by)}."


ALREADY_DECIDED = "This request was already decided."
ACCESS_APPROVED = "Good news: an admin approved your access. Send /login to choose your password."
ACCESS_REJECTED = "Sorry, your access request was not approved."

# --- login / logout -----------------------------------------------------------------------

LOGIN_ASK_PASSWORD = "Send me your password. I will delete your message right away."
LOGGED_IN = "You are logged in, {name}. Send /help to see what you can do."
LOGGED_OUT = "You are logged out. Send /login to come back."
# The chat's menu button that opens the dashboards (the Mini App) for managers and admins.
DASHBOARDS_BUTTON = "Dashboards"
ALREADY_LOGGED_IN = "You are already logged in, {name}."


def logged_in(name: str) -> str:
    """After a successful /login (the interrupted command is not replayed)."""
    return LOGGED_IN.format(name=esc(name))


def already_logged_in(name: str) -> str:
    """/login while a session is open."""
    return ALREADY_LOGGED_IN.format(name=esc(name))


def wrong_password(attempts_left: int) -> str:
    """A wrong password with attempts left before the lock."""
    plural = "s" if attempts_left != 1 else ""
    return f"Wrong password. {attempts_left} attempt{plural} left. Send it again, or /cancel."


def locked(minutes: int) -> str:
    """Too many wrong passwords."""
    plural = "s" if minutes != 1 else ""
    return (
        f"Too many wrong passwords. Your account is locked; try again in {minutes} minute{plural}."
    )


# --- admin: invites, staff, requests, audit -----------------------------------------------

INVITE_USAGE = (
    "Say which role the invite is for: /invite agent, /invite manager, /invite admin or "
    "/invite finance."
)
NO_REQUESTS = "There are no pending access requests."
NO_STAFF = "There is no staff yet."
NO_AUDIT = "No audit events found."
STAFF_LIST_HEADER = "<b>Staff</b> — tap someone to manage them:"


def invite_created(code: str, link: str, role: Role, expires: str) -> str:
    """The new invite for the admin to forward."""
    return (
        f"Invite for a new <b>{esc(role.value)}</b>, valid until {esc(expires)}:\n\n"
        f"{esc(link)}\n\nCode: <code>{esc(code)}</code>\n"
        "Send the link to the person; it works once."
    )


def staff_card(name: str, username: str | None, role: Role, state: str, last_login: str) -> str:
    """One staff member's details above the action buttons."""
    handle = f" (@{esc(username)})" if username else ""
    return (
        f"<b>{esc(name)}</b>{handle}\nRole: {esc(role.value)}\nState: {esc(state)}\n"
        f"Last login: {esc(last_login)}"
    )


def staff_line(name: str, role: Role, state: str) -> str:
    """A button label in the staff list (buttons are plain text, not HTML)."""
    return f"{name} · {role.value} · {state}"[:60]


def request_line(name: str, username: str | None, asked: str) -> str:
    """One pending request in /requests."""
    handle = f" (@{esc(username)})" if username else ""
    return f"{esc(name)}{handle}, asked {esc(asked)}"


def audit_line(at: str, who: str, action: str, target: str) -> str:
    """One audit event in /audit."""
    words = action.replace("_", " ")  # "login_failed" reads as "login failed"
    return f"{esc(at)} · {esc(who)} · <b>{esc(words)}</b> {esc(target)}".rstrip()


def audit_header(count: int, name: str | None) -> str:
    """The head of the /audit answer."""
    scope = f" for {esc(name)}" if name else ""
    return f"<b>Latest {count} audit events{scope}</b>"


# --- loans: card and lookup (/new, /find, /loan, /history, /list, /today) ----------------
# Layout of cards and lists: bot/views.py builds them from these sentences.

LOAN_USAGE = "Send /loan followed by the loan number, e.g. /loan LN-10234."
HISTORY_USAGE = "Send /history followed by the loan number, e.g. /history LN-10234."
FIND_ASK = (
    "What should I look for? Send a loan number, a phone number or the start of a name. "
    "(/cancel to stop)"
)
FIND_OVER = "That search has ended. Send /find again."
LIST_EMPTY = "No loans in this list."
TODAY_EMPTY = "Nothing to chase today: nothing due, no promises due, nothing overdue."
HISTORY_EMPTY = "Nothing has happened on this loan yet."
CARD_UNASSIGNED = "nobody"
CARD_NOT_DUE = "nothing due"

# The card: one line each; values are filled in (and escaped) by bot/views.py.
CARD_TITLE = "<b>Loan {number}</b> · {state}"
CARD_BORROWER = "👤 {name}"
CARD_OPTED_OUT = " (no SMS: opted out)"
CARD_PHONE = "📞 {phone}"
CARD_ADDRESS = "🏠 {address}"
CARD_AMOUNT = "Amount: {principal} · {plan}"
CARD_PAYABLE = "Payable: {payable} (interest included)"
CARD_FEES = "Late fees: {fees}"
CARD_PAID = "Paid: {paid} ({done} of {count} installments)"
CARD_OUTSTANDING = "Outstanding: <b>{outstanding}</b>"
CARD_NEXT_DUE = "Next due: {date} · {amount}"
CARD_PAST_DUE = "⚠️ {days} days past due · {amount} overdue"
CARD_PROMISE = "🤝 Promise: {amount} by {date} (by {by})"
CARD_CONTACT = "Last contact: {what}, {at} (by {by})"
CARD_AGENT = "Agent: {agent}"
CARD_REASON = "Reason: {reason}"
CARD_STATES = {"active": "active", "closed": "closed ✅", "written_off": "written off"}
CARD_PLAN_SINGLE = "one payment"
CARD_PLAN_INSTALLMENTS = "{count} × {frequency}"
CARD_INTEREST = "{method} interest {rate}% a year"

LIST_TITLE_MINE = "<b>Your loans</b> · {filter} · page {page}"
LIST_TITLE_ALL = "<b>All loans</b> · {filter} · page {page}"
FIND_TITLE = "<b>Loans matching “{query}”</b> · {first}–{last}"
FIND_NONE = "No loans match “{query}”. Try a loan number, a phone number or a name."
TODAY_TITLE = "<b>Today</b> · {count} loans to work on:"
TODAY_LINE = "{n}. <b>{number}</b> {name} · {reason} · {outstanding}"
HISTORY_TITLE = "<b>History of {number}</b> · page {page}, newest first"
HISTORY_LINE = "<i>{at}</i> · {summary}{by}"

# /new: prompts, then the summary before Confirm
NEW_ASK_PHONE = "New loan. What is the borrower's phone number? (/cancel to stop)"
NEW_EXISTING = (
    "This number belongs to <b>{name}</b>{address}, with {loans} loan(s) already.\n"
    "Add the new loan for this borrower?"
)
# --- issue 9 item 1: borrower scope ---
# Another agent's borrower: the same neutral answer whoever it is (no name, address, count).
NEW_PHONE_UNAVAILABLE = "This phone number cannot be used here; ask your manager."
NEW_ASK_NAME = "What is the borrower's full name?"
NEW_ASK_ADDRESS = "The borrower's address? Send it, or tap Skip."
NEW_ASK_AMOUNT = "How much is lent (the principal)? e.g. 25000 or 25,000.50"
NEW_ASK_PLAN = "How is it repaid?"
NEW_ASK_COUNT = "How many installments? (2 to 360)"
NEW_ASK_FREQUENCY = "How often is an installment due?"
NEW_ASK_DUE_SINGLE = "When is it due? e.g. 15/08/2026, tomorrow or +30 (days from today)"
NEW_ASK_DUE_FIRST = (
    "When is the first installment due? e.g. 15/08/2026, tomorrow or +30 (days from today)"
)
NEW_ASK_INTEREST = "Interest?"
NEW_ASK_RATE = "The yearly interest rate in percent? e.g. 18 or 12.5"
NEW_ASK_NUMBER = "The loan number? Type one (e.g. LN-10234), or tap Generate."
NEW_USE_BUTTONS = "Please answer with the buttons."
NEW_AGAIN = "{reason}\n{ask}"
NEW_SUMMARY = (
    "<b>Please check the new loan</b>\n"
    "Borrower: {name}{existing}\nPhone: {phone}\nAddress: {address}\n"
    "Amount: {principal}\nRepayment: {plan}\nInterest: {interest}\n"
    "Total to repay: {total}\nLoan number: {number}"
)
NEW_EXISTING_MARK = " (existing borrower)"
NEW_NO_ADDRESS = "—"
NEW_NUMBER_AUTO = "generated when saved"
NEW_SCHEDULE_SINGLE = "{amount} on {date}"
NEW_SCHEDULE = "{count} × {frequency}, {first} first on {date}"
NEW_NO_INTEREST = "none"
NEW_ADDED = "✅ Loan {number} added."
NEW_SUMMARY_DONE = "<b>Saved.</b>"
NEW_USE_BORROWER = [("use", "✅ Use this borrower"), ("no", "Cancel")]
NEW_SKIP = [("skip", "Skip")]
NEW_PLANS = [("single", "Single due date"), ("inst", "Installments")]
NEW_FREQUENCIES = [("daily", "Daily"), ("weekly", "Weekly"), ("monthly", "Monthly")]
NEW_INTEREST = [("none", "None"), ("flat", "Flat"), ("reducing", "Reducing")]
NEW_GENERATE = [("auto", "Generate")]
NEW_CONFIRM = [("yes", "✅ Confirm"), ("no", "Cancel")]


def new_again(reason: str, ask: str) -> str:
    """A refused answer during /new: why (escaped), then the question again."""
    return NEW_AGAIN.format(reason=esc(reason), ask=ask)


def new_existing(name: str, address: str | None, loans: int) -> str:
    """/new found a borrower with the phone typed."""
    where = f", {esc(address)}" if address else ""
    return NEW_EXISTING.format(name=esc(name), address=where, loans=loans)


def new_added(number: str) -> str:
    """After Confirm: the note above the new loan's card (plain text: the card escapes it)."""
    return NEW_ADDED.format(number=number)


def find_none(query: str) -> str:
    """/find found nothing."""
    return FIND_NONE.format(query=esc(query))


# --- loan actions: /pay /promise /contact /edit /close /assign /delete, write-off, /stats -
# (conversations/payment.py, promise.py, contact.py, edit_loan.py, close_loan.py;
# handlers/stats.py). Amounts arrive formatted (format_money); everything else is escaped.

LOAN_CHANGED = "This loan changed since that was shown; here is the current card."
ACTION_SUPERSEDED = (
    "You started something else, so I stopped the earlier step. Please send that again."
)
USE_BUTTONS = "Please answer with the buttons above, or send /cancel."
ACTION_AGAIN = "{reason}\n{ask}"
BTN_CONFIRM = "✅ Confirm"
BTN_CANCEL = "Cancel"
BTN_SKIP = "Skip"
SKIP_WORDS = ("skip", "-")  # typed instead of tapping Skip

PAY_USAGE = (
    "Send /pay with the loan number and the amount, e.g. /pay LN-10234 1500, "
    "or tap Pay on a loan card."
)
PAY_ASK = (
    "Payment on loan <b>{number}</b> ({name}). Outstanding: {outstanding}.\n"
    "How much was paid? (/cancel to stop)"
)
PAY_ASK_AGAIN = "How much was paid? (/cancel to stop)"
PAY_CONFIRM = (
    "<b>Please check the payment</b>\nAmount: {amount}\nLoan: {number}\n"
    "Borrower: {name}\nBalance after: {balance}"
)
PAY_CONFIRM_CLOSES = "\nThis pays the loan off, so it will be closed."
PAY_DONE = "💰 Payment of {amount} recorded. Balance {balance}."
PAY_CLOSED = "\nLoan {number} is paid off and closed."

PROMISE_USAGE = (
    "Send /promise with the loan number, amount and date, e.g. /promise LN-10234 1500 "
    "tomorrow, or tap Promise on a loan card."
)
PROMISE_ASK_AMOUNT = (
    "Promise on loan <b>{number}</b> ({name}). Outstanding: {outstanding}.\n"
    "How much did the borrower promise to pay? (/cancel to stop)"
)
PROMISE_ASK_AMOUNT_AGAIN = "How much did the borrower promise to pay? (/cancel to stop)"
PROMISE_ASK_DATE = "By when? e.g. 15/08/2026, today, tomorrow or +3 (days from today)"
PROMISE_DONE = "🤝 Promise recorded: {amount} by {date}."

CONTACT_USAGE = (
    "Send /contact with the loan number, e.g. /contact LN-10234, or tap Contact on a loan card."
)
CONTACT_ASK_CHANNEL = "Contact with {name} about loan <b>{number}</b>. How did you reach them?"
CONTACT_ASK_OUTCOME = "Contact with {name} by {channel}. What came of it?"
CONTACT_ASK_NOTE = "Contact with {name}: {channel}, {outcome}.\nAdd a short note, or tap Skip."
CONTACT_DONE = "📞 Contact recorded: {channel}, {outcome}."
CONTACT_CHANNELS = {"call": "Call", "visit": "Visit", "sms": "SMS", "other": "Other"}
CONTACT_OUTCOMES = {
    "paid": "Paid",
    "promised": "Promised",
    "no_answer": "No answer",
    "refused": "Refused",
    "wrong_number": "Wrong number",
    "disputed": "Disputed",
}

EDIT_USAGE = "Send /edit with the loan number, e.g. /edit LN-10234, or tap Edit on a loan card."
EDIT_ASK_FIELD = "Edit loan <b>{number}</b> ({name}). What do you want to change?"
EDIT_ASK_VALUE = "{field} now: {current}\nSend the new value{hint}. (/cancel to stop)"
EDIT_CONFIRM = "<b>Please check the change</b> on loan {number}\n{field}: {before} → {after}"
EDIT_DONE = "✏️ Changed {field}: {before} → {after}"
EDIT_EMPTY = "—"
EDIT_REQUESTED = (
    "📨 Request #{id} sent: moving the next due date to {after} needs a manager's approval. "
    "You will be told the outcome."
)
EDIT_FIELDS = {
    "borrower_name": "Borrower name",
    "borrower_phone": "Phone",
    "borrower_address": "Address",
    "next_due_date": "Next due date",
    "principal": "Principal",
}
EDIT_HINTS = {
    "borrower_phone": ", e.g. 98765 43210",
    "next_due_date": ": DD/MM/YYYY, tomorrow or +7 (days from today)",
    "principal": ", e.g. 25000 (only before any payment)",
}

CLOSE_USAGE = "Send /close with the loan number, e.g. /close LN-10234, or tap Close on a card."
CLOSE_CONFIRM = "Close loan <b>{number}</b> ({name})? Nothing is owed on it."
CLOSE_DONE = "✅ Loan {number} is closed."
WRITE_OFF_ASK = (
    "Write off loan <b>{number}</b> ({name}) with {outstanding} outstanding?\n"
    "Send the reason. (/cancel to stop)"
)
WRITE_OFF_CONFIRM = (
    "<b>Write off loan {number}?</b>\nOutstanding: {outstanding}\nReason: {reason}\n"
    "A write-off needs another manager's or admin's approval: this sends them the request."
)
WRITE_OFF_REQUESTED = (
    "📨 Request #{id} sent: writing off loan {number} waits for another manager's or "
    "admin's approval. You will be told the outcome."
)
ASSIGN_USAGE = (
    "Send /assign with the loan number and the agent (name, @username or staff number), "
    "e.g. /assign LN-10234 Ravi, or tap Reassign on a loan card."
)
ASSIGN_ASK = "Give loan <b>{number}</b> (now with {agent}) to whom?"
ASSIGN_MORE = "\nOnly the first {shown} are shown; use /assign for the others."
ASSIGN_NOBODY = "There is no other active agent or manager to give it to."
ASSIGN_UNASSIGNED = "nobody"
ASSIGN_DONE = "👤 Loan {number} is now with {agent}."
# --- archive instead of delete (issue 9 item 8) ---
ARCHIVE_USAGE = "Send /archive (or /delete) with the loan number, e.g. /archive LN-10234."
ARCHIVE_ASK = (
    "🗄 Archive loan <b>{number}</b> ({name})?\nLoans are never deleted: an archived loan keeps "
    "its payments and history, leaves every list and report, and gets no more reminders. "
    "An admin can restore it.\n\nWhy? Send the reason. (/cancel to stop)"
)
ARCHIVE_ASK_AGAIN = "Send the reason again. (/cancel to stop)"
ARCHIVE_CONFIRM = "<b>Archive loan {number}?</b>\nReason: {reason}"
ARCHIVE_DONE = "🗄 Loan {number} is archived."
ARCHIVE_WITHDRAWN = " {count} queued SMS withdrawn."
RESTORE_USAGE = "Send /restore with the loan number, e.g. /restore LN-10234."
RESTORE_ASK = (
    "♻️ Restore loan <b>{number}</b> ({name}), archived: {reason}?\n"
    "Why? Send the reason. (/cancel to stop)"
)
RESTORE_CONFIRM = "<b>Restore loan {number}?</b>\nReason: {reason}"
RESTORE_DONE = "♻️ Loan {number} is back in the book."
RESTORE_NOT_ARCHIVED = "Loan {number} is not archived."
CARD_ARCHIVED = "🗄 <b>Archived</b> {at}: {reason}"
BTN_ARCHIVE = "🗄 Archive"

# --- disputes, hardship pauses, denied payments (issue 11; conversations/holds.py) ---
DISPUTE_USAGE = "Send /dispute with the loan number, e.g. /dispute LN-10234."
DISPUTE_ASK = (
    "⚖️ Dispute loan <b>{number}</b> ({name})?\nNo reminder or late fee goes to the borrower "
    "until a manager resolves it.\n\nWhat does the borrower dispute? (/cancel to stop)"
)
DISPUTE_ASK_AGAIN = "What does the borrower dispute? (/cancel to stop)"
DISPUTE_CONFIRM = "<b>Dispute loan {number}?</b>\nNote: {note}"
DISPUTE_DONE = "⚖️ Loan {number} is disputed: reminders and late fees stop until it is resolved."
HARDSHIP_USAGE = "Send /hardship with the loan number, e.g. /hardship LN-10234."
HARDSHIP_ASK = (
    "⏸ Pause collection on loan <b>{number}</b> ({name}) for hardship?\n"
    "Until which day? (DD/MM/YYYY, YYYY-MM-DD or +N days; /cancel to stop)"
)
HARDSHIP_ASK_UNTIL_AGAIN = "Until which day? (DD/MM/YYYY, YYYY-MM-DD or +N days)"
HARDSHIP_ASK_NOTE = "Why? Send a short note. (/cancel to stop)"
HARDSHIP_CONFIRM = "<b>Pause loan {number} until {until}?</b>\nNote: {note}"
HARDSHIP_DONE = "⏸ Loan {number} is paused: reminders and late fees resume on their own at the end."
HOLD_WITHDRAWN = " {count} queued SMS withdrawn."
HOLD_ALREADY = "Loan {number} is already disputed or paused; a manager can /resolve it."
RESOLVE_USAGE = "Send /resolve with the loan number, e.g. /resolve LN-10234."
RESOLVE_NOTHING = "Loan {number} has no open dispute, hardship pause or denied payment."
RESOLVE_ASK = "⚖️ Loan <b>{number}</b>: {kind}.\nNote: {note}\n\nHow is it resolved?"
RESOLVE_ASK_REASON = "Why? Send the reason; it is kept in the audit. (/cancel to stop)"
RESOLVE_DONE = "✅ Loan {number}: resolved ({outcome})."
RESOLVE_UPHELD_NEXT = " Adjust the loan (/edit) or write it off as needed."
RESOLVE_PAYMENT_NEXT = " Reverse the payment from the loan's history if it never reached you."
HOLD_NAMES = {
    "dispute": "disputed",
    "hardship": "paused for hardship",
    "payment": "the borrower says a payment was not made",
}
RESOLVE_OUTCOMES = {
    "dispute": {"upheld": "👍 Upheld", "rejected": "👎 Rejected: collect"},
    "hardship": {"ended": "▶️ End the pause now"},
    "payment": {"upheld": "↩️ Not paid", "rejected": "✅ Confirmed paid"},
}
CARD_HOLDS = {
    "dispute": "⚖️ <b>Disputed</b> {at}: {note}",
    "hardship": "⏸ <b>Hardship pause</b> until {until}: {note}",
    "payment": "❗ <b>Payment denied</b> by the borrower {at}: {note}",
}
BTN_DISPUTE = "⚖️ Dispute"
BTN_HARDSHIP = "⏸ Hardship"
BTN_RESOLVE = "⚖️ Resolve"
BTN_RESTORE = "♻️ Restore"
BTN_WRITE_OFF = "✖️ Write off"

STATS_TITLE = "<b>Portfolio</b> · {scope} · {date}"
STATS_SCOPE_MINE = "your loans"
STATS_SCOPE_ALL = "all loans"
STATS_BOOK = (
    "Active loans: {loans}\nBorrowed: {borrowed}\nRepaid: {repaid}\n"
    "Outstanding: <b>{outstanding}</b>"
)
STATS_OVERDUE = "Overdue: {loans} loan(s)"
STATS_BUCKET = "  {bucket} days: {loans} · {amount}"
STATS_COLLECTED = "Collected today: {today}\nCollected this month: {month}"
STATS_AGENTS = "<b>Per agent</b> (loans · outstanding · overdue · collected this month)"
STATS_AGENT = "{name}: {loans} · {outstanding} · {overdue} overdue · {month}"
STATS_AGENTS_MORE = "…and {count} more."
STATS_CHART_CAPTION = "Collected per day, last {days} days ({currency})"
STATS_CHART_TITLE = "Collected per day, last {days} days"
CONTACT_ASK_NOTE_AGAIN = "Send the note again, or tap Skip."
EDIT_ASK_AGAIN = "Send the new value again, or /cancel."
# --- due dates moved far by an agent need a reason (issue 9 item 13) ---
EDIT_ASK_REASON = "Send the reason (it is kept in the loan's history), or /cancel."
EDIT_REASON_LINE = "\nReason: {reason}"
WRITE_OFF_ASK_AGAIN = "Send the reason again, or /cancel."


def action_again(reason: str, ask: str) -> str:
    """A refused answer inside a loan action: why (escaped), then the question again."""
    return ACTION_AGAIN.format(reason=esc(reason), ask=ask)


def pay_ask(number: str, name: str, outstanding: str) -> str:
    """The amount question of a payment."""
    return PAY_ASK.format(number=esc(number), name=esc(name), outstanding=outstanding)


def pay_confirm(amount: str, number: str, name: str, balance: str, closes: bool) -> str:
    """The payment summary above Confirm / Cancel."""
    text = PAY_CONFIRM.format(amount=amount, number=esc(number), name=esc(name), balance=balance)
    return text + (PAY_CONFIRM_CLOSES if closes else "")


def pay_done(amount: str, balance: str, number: str, closed: bool) -> str:
    """After a payment was recorded."""
    text = PAY_DONE.format(amount=amount, balance=balance)
    return text + (PAY_CLOSED.format(number=esc(number)) if closed else "")


def promise_ask_amount(number: str, name: str, outstanding: str) -> str:
    """The amount question of a promise."""
    return PROMISE_ASK_AMOUNT.format(number=esc(number), name=esc(name), outstanding=outstanding)


def promise_done(amount: str, date: str) -> str:
    """After a promise was recorded."""
    return PROMISE_DONE.format(amount=amount, date=esc(date))


def contact_ask_channel(number: str, name: str) -> str:
    """The first question of a contact."""
    return CONTACT_ASK_CHANNEL.format(number=esc(number), name=esc(name))


def contact_ask_outcome(name: str, channel: str) -> str:
    """The outcome question of a contact."""
    return CONTACT_ASK_OUTCOME.format(name=esc(name), channel=esc(CONTACT_CHANNELS[channel]))


def contact_ask_note(name: str, channel: str, outcome: str) -> str:
    """The note question of a contact."""
    return CONTACT_ASK_NOTE.format(
        name=esc(name),
        channel=esc(CONTACT_CHANNELS[channel]),
        outcome=esc(CONTACT_OUTCOMES[outcome]),
    )


def contact_done(channel: str, outcome: str) -> str:
    """After a contact was recorded."""
    return CONTACT_DONE.format(
        channel=esc(CONTACT_CHANNELS[channel]), outcome=esc(CONTACT_OUTCOMES[outcome])
    )


def edit_ask_field(number: str, name: str) -> str:
    """Which field to edit."""
    return EDIT_ASK_FIELD.format(number=esc(number), name=esc(name))


def edit_ask_value(field: str, current: str) -> str:
    """The new value of a field, with what it is now."""
    return EDIT_ASK_VALUE.format(
        field=esc(EDIT_FIELDS[field]),
        current=esc(current or EDIT_EMPTY),
        hint=esc(EDIT_HINTS.get(field, "")),
    )


def edit_reason_line(reason: str) -> str:
    """The reason under an edit's before → after, when one was asked."""
    return EDIT_REASON_LINE.format(reason=esc(reason.strip()))


def edit_confirm(number: str, field: str, before: str, after: str) -> str:
    """Before → after above Confirm / Cancel."""
    return EDIT_CONFIRM.format(
        number=esc(number),
        field=esc(EDIT_FIELDS[field]),
        before=esc(before or EDIT_EMPTY),
        after=esc(after or EDIT_EMPTY),
    )


def write_off_requested(approval_id: int, number: str) -> str:
    """A write-off sent for approval."""
    return WRITE_OFF_REQUESTED.format(id=approval_id, number=esc(number))


def edit_requested(approval_id: int, after: str) -> str:
    """An agent's long due-date move, sent for approval instead of made."""
    return EDIT_REQUESTED.format(id=approval_id, after=esc(after))


def edit_done(field: str, before: str, after: str) -> str:
    """After an edit was saved."""
    return EDIT_DONE.format(
        field=esc(EDIT_FIELDS[field]),
        before=esc(before or EDIT_EMPTY),
        after=esc(after or EDIT_EMPTY),
    )


def close_confirm(number: str, name: str) -> str:
    """Close this loan?"""
    return CLOSE_CONFIRM.format(number=esc(number), name=esc(name))


def write_off_ask(number: str, name: str, outstanding: str) -> str:
    """The reason question of a write-off."""
    return WRITE_OFF_ASK.format(number=esc(number), name=esc(name), outstanding=outstanding)


def write_off_confirm(number: str, outstanding: str, reason: str) -> str:
    """The write-off summary above Confirm / Cancel."""
    return WRITE_OFF_CONFIRM.format(number=esc(number), outstanding=outstanding, reason=esc(reason))


def assign_ask(number: str, agent: str | None, more: int) -> str:
    """Whom to give the loan to (more: how many were left off the buttons)."""
    text = ASSIGN_ASK.format(number=esc(number), agent=esc(agent or ASSIGN_UNASSIGNED))
    return text + (ASSIGN_MORE.format(shown=more) if more else "")


def assign_done(number: str, agent: str | None) -> str:
    """After a reassignment."""
    return ASSIGN_DONE.format(number=esc(number), agent=esc(agent or ASSIGN_UNASSIGNED))


def archive_ask(template: str, number: str, name: str, reason: str = "") -> str:
    """ARCHIVE_ASK or RESTORE_ASK: the loan named, the reason asked for."""
    return template.format(number=esc(number), name=esc(name), reason=esc(reason))


def archive_confirm(template: str, number: str, reason: str) -> str:
    """ARCHIVE_CONFIRM or RESTORE_CONFIRM."""
    return template.format(number=esc(number), reason=esc(reason))


def hold_confirm(template: str, number: str, note: str, until: str = "") -> str:
    """DISPUTE_CONFIRM or HARDSHIP_CONFIRM."""
    return template.format(number=esc(number), note=esc(note), until=esc(until))


def hold_line(kind: str, note: str, at: str, until: str | None) -> str:
    """The card's line for an open dispute, hardship pause or denied payment."""
    text = CARD_HOLDS[kind].format(note=esc(note), at=at, until=esc(until or ""))
    return text


def resolve_ask(number: str, kind: str, note: str) -> str:
    """/resolve: what is open, and the outcomes as buttons."""
    return RESOLVE_ASK.format(number=esc(number), kind=HOLD_NAMES[kind], note=esc(note))


RISK_PARTS = {
    "overdue": "days late",
    "late": "late installments",
    "promises": "broken promises",
    "contacts": "unanswered contacts",
    "stake": "amount at stake",
}
RISK_LINE = "📊 Risk {score}/100: {parts}"
RISK_ELIGIBLE = " · ✅ repaid earlier loans on time: eligible for a new one"


def risk_line(score: int, parts: dict[str, int], eligible: bool) -> str:
    """The card's risk score with its parts (db/services/risk.py says how each is counted)."""
    named = [f"{RISK_PARTS[name]} {points}" for name, points in parts.items() if points]
    text = RISK_LINE.format(score=score, parts=", ".join(named) or "nothing against it")
    return text + (RISK_ELIGIBLE if eligible else "")


def loan_done(template: str, number: str) -> str:
    """A one-value result line: CLOSE_DONE, ARCHIVE_DONE or RESTORE_DONE."""
    return template.format(number=esc(number))


def stats_agent(name: str, loans: int, outstanding: str, overdue: int, month: str) -> str:
    """One agent's line in /stats."""
    return STATS_AGENT.format(
        name=esc(name[:40]), loans=loans, outstanding=outstanding, overdue=overdue, month=month
    )


# --- SMS: /broadcast, /broadcasts, /deliveries, /remind, borrowers' replies --------------
# (conversations/broadcast.py, handlers/sms.py, jobs.py). Counts arrive as ints; templates,
# names, tags, audiences and SMS texts are escaped here.

BC_PLACEHOLDERS = (
    "name",
    "amount_due",
    "outstanding",
    "due_date",
    "loan_number",
    "agency",
    "opt_out",
)  # the order the prompt lists them in
BC_ASK_AUDIENCE = "📣 <b>New broadcast</b>. Who should receive it? (/cancel to stop)"
BC_ASK_BUCKET = "Which days-past-due bucket?"
BC_ASK_AGENT = "Whose borrowers?"
BC_NO_AGENTS = "There is no active agent or manager to choose. Choose another audience:"
BC_NOBODY = "Nobody matches that audience. Choose another one:"
BC_ASK_TAG = "Send the tag, e.g. festival or ward-12. (/cancel to stop)"
BC_TAG_AGAIN = "Send the tag again, or /cancel."
BC_TEXT_ONLY = "Please send the message as text, or /cancel."
BC_TEXT_AGAIN = "Send the text again, or /cancel."
BC_EDIT_TEXT = "✏️ Send the new text."
BC_CANCELLED = "Broadcast cancelled. Nothing was sent."
BC_AUDIENCES = [
    ("all_active", "All active borrowers"),
    ("overdue", "Overdue"),
    ("bucket", "A days-past-due bucket"),
    ("agent", "One agent's borrowers"),
    ("tag", "A tag"),
]
BC_BTN_SEND = "✅ Send to {count}"
BC_BTN_EDIT = "✏️ Edit text"
BC_STATES = {"queued": "sending", "done": "finished", "canceled": "canceled"}
BC_WAITING_REPORTS = "waiting for delivery reports"
BC_LIST_TITLE = "<b>Recent broadcasts</b>"
BC_LIST_EMPTY = "No broadcasts yet. Send /broadcast to make one."
BC_BTN_CANCEL = "✖️ Cancel #{id}"
BC_BTN_CANCEL_YES = "Yes, cancel it"
BC_BTN_BACK = "« Back"
BC_CANCEL_CONFIRM = (
    "Cancel broadcast <b>#{id}</b> to {audience}?\n"
    "{queued} message(s) not yet sent will not go; those already sent stay sent."
)
BC_CANCELED = "Broadcast #{id} is canceled: {count} message(s) will not be sent."

DLV_TITLE = "📊 <b>Deliveries</b>"
DLV_NO_RATE = "Delivery rate: no final reports yet"
REMIND_USAGE = (
    "Send /remind with the loan number, e.g. /remind LN-10234, or tap Remind now on a loan card."
)
RELAY_BTN_CARD = "📄 Open the loan"


def bc_ask_text(audience: str) -> str:
    """The text prompt, listing the placeholders."""
    names = " ".join("{" + p + "}" for p in BC_PLACEHOLDERS)
    return (
        f"Message to {esc(audience)}. Send the text.\n"
        f"Placeholders: <code>{esc(names)}</code>\n"
        "{opt_out} adds “Reply STOP to opt out.” Plain letters keep messages cheap (GSM-7); "
        "₹, emoji or Hindi make them UCS-2 (70 characters a part). (/cancel to stop)"
    )


def bc_again(reason: str, ask: str) -> str:
    """A refused answer in /broadcast: why (escaped), then what to send."""
    return f"{esc(reason)}\n{ask}"


def bc_preview(
    audience: str,
    recipients: int,
    sendable: int,
    reasons: dict[str, int],
    sample: str,
    encoding: str,
    per_message: int,
    total_segments: int,
) -> str:
    """The preview above Send / Edit text / Cancel."""
    why = "; ".join(f"{esc(r)}: {n}" for r, n in sorted(reasons.items()))
    lines = [
        f"<b>Broadcast preview</b> · to {esc(audience)}",
        f"Recipients: {recipients}",
        f"Will be sent: {sendable}",
        f"Suppressed: {recipients - sendable}" + (f" ({why})" if why else ""),
        f"Encoding: {esc(encoding)} · {per_message} SMS part(s) per message · "
        f"{total_segments} part(s) in all",
        "Sample, exactly as the first recipient gets it:",
        f"<blockquote>{esc(sample)}</blockquote>",
    ]
    return "\n".join(lines)


def _failed(counts: dict[str, int]) -> int:
    return counts.get("failed", 0) + counts.get("undelivered", 0)


def bc_progress(
    broadcast_id: int, audience: str, state: str, counts: dict[str, int], total: int
) -> str:
    """The progress message, edited in place while the broadcast goes."""
    c = counts.get
    lines = [
        f"📣 <b>Broadcast #{broadcast_id}</b> · {esc(state)}",
        f"To {esc(audience)} · {total} message(s)",
        f"Queued {c('queued', 0)} · Sending {c('sending', 0)} · Sent {c('sent', 0)}",
        f"Delivered {c('delivered', 0)} · Failed {_failed(counts)} · "
        f"Suppressed {c('suppressed', 0)}",
    ]
    if c("canceled", 0):
        lines.append(f"Canceled {c('canceled', 0)}")
    return "\n".join(lines)


def bc_final(
    broadcast_id: int,
    audience: str,
    canceled: bool,
    counts: dict[str, int],
    total: int,
    failures: list[tuple[str | None, int, str]],
) -> str:
    """The final report that replaces the progress message."""
    c = counts.get
    known = c("delivered", 0) + _failed(counts)
    rate = ""
    if known:
        rate = f" ({100 * c('delivered', 0) / known:.1f}% of those with a final report)"
    lines = [
        f"📣 <b>Broadcast #{broadcast_id}</b> · {'canceled' if canceled else 'finished'}",
        f"To {esc(audience)} · {total} message(s)",
        f"Delivered: {c('delivered', 0)}{rate}",
        f"Failed: {c('failed', 0)} · Undelivered: {c('undelivered', 0)}",
        f"Suppressed (never sent): {c('suppressed', 0)} · Canceled: {c('canceled', 0)}",
    ]
    if c("sent", 0):
        lines.append(f"Sent, no report from the carrier: {c('sent', 0)}")
    if failures:
        lines.append("<b>Why messages failed</b>")
        lines += [_failure_line(code, n, words) for code, n, words in failures]
    else:
        lines.append("No message failed.")
    return "\n".join(lines)


def bc_list_line(
    broadcast_id: int, state: str, at: str, audience: str, counts: dict[str, int], total: int
) -> str:
    """One broadcast in /broadcasts."""
    c = counts.get
    return (
        f"<b>#{broadcast_id}</b> · {esc(state)} · {esc(at)} · to {esc(audience)}\n"
        f"   {total} message(s): {c('queued', 0) + c('sending', 0)} waiting, "
        f"{c('sent', 0)} sent, {c('delivered', 0)} delivered, {_failed(counts)} failed, "
        f"{c('suppressed', 0)} suppressed, {c('canceled', 0)} canceled"
    )


def bc_cancel_confirm(broadcast_id: int, audience: str, queued: int) -> str:
    """Are you sure? under the /broadcasts list."""
    return BC_CANCEL_CONFIRM.format(id=broadcast_id, audience=esc(audience), queued=queued)


def bc_canceled(broadcast_id: int, count: int) -> str:
    """Above the list after a cancel."""
    return BC_CANCELED.format(id=broadcast_id, count=count)


def dlv_period(
    title: str,
    total: int,
    totals: dict[str, int],
    rate: str | None,
    by_kind: dict[str, dict[str, int]],
) -> str:
    """One period of /deliveries: totals, rate, then each kind that has messages."""
    t = totals.get
    lines = [
        f"<b>{esc(title)}</b>: {total} message(s)",
        f"Delivered {t('delivered', 0)} · Failed {t('failed', 0)} · "
        f"Undelivered {t('undelivered', 0)} · Waiting {t('queued', 0) + t('sending', 0)} · "
        f"Sent, no report yet {t('sent', 0)} · Suppressed {t('suppressed', 0)} · "
        f"Canceled {t('canceled', 0)}",
        f"Delivery rate: {esc(rate)}%" if rate is not None else DLV_NO_RATE,
    ]
    for kind, counts in by_kind.items():
        shown = ", ".join(f"{esc(s)} {n}" for s, n in counts.items() if n)
        if shown:
            lines.append(f"  {esc(kind)}: {shown}")
    return "\n".join(lines)


def _failure_line(code: str | None, n: int, words: str) -> str:
    """One failure reason and its count; the provider's code, when it gave one, as it came."""
    ref = f" (code {esc(code)})" if code else ""
    return f"• {esc(words)}: {n}{ref}"


def dlv_errors(errors: list[tuple[str | None, int, str]]) -> str:
    """The top error codes of /deliveries, in plain words."""
    if not errors:
        return "<b>Errors (7 days)</b>: none."
    lines = ["<b>Top errors (7 days)</b>"]
    lines += [_failure_line(code, n, words) for code, n, words in errors]
    return "\n".join(lines)


# --- suppressed numbers (/deliveries, /unsuppress) ---

UNSUPPRESS_USAGE = (
    "Send /unsuppress with the phone number and, if you like, why, "
    "e.g. /unsuppress +91 98765 43210 borrower has a new SIM."
)
SUP_BTN_YES = "Yes, lift it"
SUP_BTN_NO = "Cancel"
SUP_KINDS = {
    "permanent": "carrier refused the number",
    "unreachable": "unreachable too many times",
    "opt_out": "opted out (only the borrower's START lifts it)",
}
SUP_LIFT_CANCELED = "Nothing changed: {phone} stays suppressed."


def sup_list(rows: list[tuple[str, str, str, str]], more: bool) -> str:
    """The suppressed numbers under /deliveries: (phone, kind, reason, since)."""
    if not rows:
        return "<b>Suppressed numbers</b>: none."
    lines = ["<b>Suppressed numbers</b> (no SMS goes to these; tap to lift)"]
    lines += [
        f"• {esc(phone)}: {esc(reason)} · {esc(SUP_KINDS.get(kind, kind))} · since {esc(since)}"
        for phone, kind, reason, since in rows
    ]
    if more:
        lines.append("… and more; /unsuppress &lt;phone&gt; lifts any of them.")
    return "\n".join(lines)


def sup_btn_lift(phone: str) -> str:
    return f"Lift {phone}"


def sup_confirm(phone: str, kind: str, reason: str, since: str) -> str:
    """Are you sure? before a suppression is lifted."""
    return (
        f"Lift the suppression of <b>{esc(phone)}</b>?\n"
        f"Suppressed since {esc(since)}: {esc(reason)} ({esc(SUP_KINDS.get(kind, kind))}).\n"
        "SMS will go to this number again; if the carrier refuses it again, it is "
        "suppressed again."
    )


def sup_lifted(phone: str) -> str:
    return f"✅ {esc(phone)} is no longer suppressed: SMS will go to it again."


def sup_lift_canceled(phone: str) -> str:
    return SUP_LIFT_CANCELED.format(phone=esc(phone))


def remind_queued(number: str, waits_until: str | None) -> str:
    """After /remind or Remind now: queued, or queued to wait for the allowed hours."""
    if waits_until is None:
        return f"🔔 Reminder for loan {esc(number)} queued; it goes out within minutes."
    return (
        f"🔔 Reminder for loan {esc(number)} queued; it will go out at {esc(waits_until)} "
        "(SMS go out only in the allowed hours)."
    )


def denial_text(
    borrower: str,
    number: str,
    body: str,
    *,
    receipt: str,
    amount: str,
    paid_at: str,
    recorded_by: str | None,
    agent: str | None,
) -> str:
    """A borrower's NO to a receipt, for a manager: the payment they say they did not make."""
    return DENIAL_TEXT.format(
        borrower=esc(borrower),
        number=esc(number),
        body=esc(body),
        receipt=esc(receipt),
        amount=amount,
        paid_at=paid_at,
        recorded_by=esc(recorded_by or "-"),
        agent=esc(agent or "-"),
    )


DENIAL_TEXT = (
    '❗ <b>Payment denied</b>: {borrower} ({number}) replied "{body}" to receipt '
    "<b>{receipt}</b>.\nPayment: {amount} on {paid_at}, recorded by {recorded_by} "
    "(agent: {agent}).\nCheck that the money reached you, then /resolve {number}."
)


def relay_text(borrower: str, number: str, body: str) -> str:
    """A borrower's SMS passed on to their agent."""
    return f"💬 {esc(borrower)} ({esc(number)}): {esc(body or '(empty message)')}"


# --- /export (handlers/exports.py) -----------------------------------------------------------

EXPORT_CHOOSE = "📤 <b>Export</b>: what would you like?"
EXPORT_KINDS = {
    "loans": "📋 Loans",
    "overdue": "⏰ Overdue, with contacts",
    "payments": "💰 Payments for a period",
    "deliveries": "✉️ SMS deliveries for a period",
}
EXPORT_PERIODS = {"this": "This month", "last": "Last month", "type": "Other dates…"}
EXPORT_FORMATS = {"csv": "CSV", "xlsx": "Excel (XLSX)"}
EXPORT_CHOOSE_PERIOD = "Which period?"
EXPORT_TYPE_DATES = (
    "Send the dates, first and last day, like this:\n"
    "<code>/export {kind} 2026-11-01 2026-11-30</code>"
)
EXPORT_USAGE = (
    "Use /export, or /export loans | overdue | payments | deliveries; payments and "
    "deliveries take two dates: /export payments 2026-11-01 2026-11-30"
)
EXPORT_BAD_DATE = "“{text}” is not a date; write it as 2026-11-30."
EXPORT_TOO_BIG = (
    "That export is too large for Telegram ({size} MB; at most 50). Choose a shorter period."
)


def export_choose_format(kind: str, period: str | None) -> str:
    what = EXPORT_KINDS.get(kind, kind)
    return f"{esc(what)}{f' ({esc(period)})' if period else ''}: which format?"


def export_progress(kind: str, rows: int) -> str:
    return f"⏳ Exporting {esc(EXPORT_KINDS.get(kind, kind))}… {rows:,} rows so far."


def export_done(kind: str, rows: int) -> str:
    return f"✅ {esc(EXPORT_KINDS.get(kind, kind))}: {rows:,} rows."


# --- /statement (handlers/statements.py) ---------------------------------------------------

STATEMENT_USAGE = "Say which loan: /statement LN-10234"


def statement_caption(number: str, generated: str) -> str:
    return f"🧾 Statement of loan {esc(number)}, generated on {esc(generated)}."


# --- approvals (four eyes, issue 11: bot/handlers/approvals.py, bot/approval_jobs.py) --------

APPROVAL_KINDS = {
    "new_loan": "new loan",
    "write_off": "write-off",
    "reversal": "payment reversal",
    "due_date_move": "due-date move",
}
APPROVAL_CARD = (
    "🗳 <b>Approval #{id}: {kind}</b>\n"
    "Loan {number} · {borrower}\n"
    "{change}\n"
    "Asked by {asker}: {note}\n"
    "{record}"
)
APPROVAL_CHANGE = {
    "write_off": "Write off {outstanding} outstanding",
    "reversal": "Reverse a payment of {amount}",
    "due_date_move": "Move the next due date {from_} → {to}",
    "new_loan": "A new loan of {amount}",
}
APPROVAL_RECORD = (
    "Agent {agent}: {loans} loans, {on_time} of installments paid on time, {broken} broken promises"
)
APPROVAL_ON_TIME_NONE = "none due yet"
APPROVAL_DECIDED = {
    "approved": "✅ Approved by {who}.",
    "rejected": "❌ Rejected by {who}: {reason}",
    "withdrawn": "↩️ Withdrawn by {who}.",
}
APPROVAL_OUTCOME = {
    "approved": "✅ Your request #{id} ({kind}, loan {number}) was approved by {who}.",
    "rejected": "❌ Your request #{id} ({kind}, loan {number}) was rejected by {who}: {reason}",
}
APPROVAL_REMINDER = "⏰ Request #{id} ({kind}, loan {number}) has waited since {since}."
APPROVAL_REJECT_ASK = "Why reject request #{id}? Send the reason. (/cancel to stop)"
APPROVAL_REJECT_AGAIN = "Send the reason again, or /cancel."
APPROVALS_NONE = "Nothing is waiting for approval."
APPROVALS_HEAD = "<b>Waiting for approval</b>"
APPROVAL_LINE = "#{id} {kind} · {number} · {borrower} · asked by {asker}, {since}"
APPROVAL_REJECTED_DONE = "❌ Request #{id} rejected; the requester is told why."
APPROVAL_WITHDRAWN_DONE = "↩️ Request #{id} withdrawn."


def approval_kind(kind: str) -> str:
    return APPROVAL_KINDS.get(kind, kind)


def approval_card(
    approval_id: int,
    kind: str,
    number: str,
    borrower: str,
    change: dict[str, str],
    asker: str,
    note: str | None,
    record: tuple[str, int, int | None, int] | None,
) -> str:
    """An approver's card: what is asked, by whom and why, and the agent's track record."""
    facts = {k: esc(v) for k, v in change.items()}
    line = APPROVAL_CHANGE[kind].format(**facts)
    shown = ""
    if record is not None:
        agent, loans, percent, broken = record
        on_time = APPROVAL_ON_TIME_NONE if percent is None else f"{percent}%"
        shown = APPROVAL_RECORD.format(
            agent=esc(agent), loans=loans, on_time=on_time, broken=broken
        )
    return APPROVAL_CARD.format(
        id=approval_id,
        kind=esc(approval_kind(kind)),
        number=esc(number),
        borrower=esc(borrower),
        change=line,
        asker=esc(asker),
        note=esc(note or EDIT_EMPTY),
        record=shown,
    ).rstrip()


def approval_decided(card: str, state: str, who: str, reason: str | None) -> str:
    """A card brought up to date once somebody decided (or the requester withdrew)."""
    done = APPROVAL_DECIDED[state].format(who=esc(who), reason=esc(reason or EDIT_EMPTY))
    return f"{card}\n\n{done}"


def approval_outcome(
    approval_id: int, kind: str, number: str, state: str, who: str, reason: str | None
) -> str:
    """The requester told what became of their request."""
    return APPROVAL_OUTCOME[state].format(
        id=approval_id,
        kind=esc(approval_kind(kind)),
        number=esc(number),
        who=esc(who),
        reason=esc(reason or EDIT_EMPTY),
    )


def approval_reminder(approval_id: int, kind: str, number: str, since: str) -> str:
    return APPROVAL_REMINDER.format(
        id=approval_id, kind=esc(approval_kind(kind)), number=esc(number), since=since
    )


def approval_line(
    approval_id: int, kind: str, number: str, borrower: str, asker: str, since: str
) -> str:
    """One pending request in /approvals."""
    return APPROVAL_LINE.format(
        id=approval_id,
        kind=esc(approval_kind(kind)),
        number=esc(number),
        borrower=esc(borrower),
        asker=esc(asker),
        since=since,
    )


# --- API keys (/apikey) ----------------------------------------------------------------

APIKEY_USAGE = (
    "API keys for the JSON API (/api/v1):\n"
    "/apikey new &lt;name&gt; [scope…] [for:&lt;staff&gt;] — a new key (scopes: {scopes}; "
    "default read; "
    "for: a staff number, @username or name, default you)\n"
    "/apikey list — the keys in use\n"
    "/apikey revoke &lt;id&gt; — stop a key at once"
)
APIKEY_NONE = "No API keys in use. Make one with /apikey new &lt;name&gt; [scope…]."
APIKEY_BTN_REVOKE = "🛑 Revoke"
APIKEY_BTN_KEEP = "Keep it"


def apikey_usage(scopes: list[str]) -> str:
    return APIKEY_USAGE.format(scopes=esc(", ".join(scopes)))


def apikey_created(
    key_id: int, name: str, token: str, scopes: list[str], staff_name: str, role: str
) -> str:
    """The new key, shown once."""
    return (
        f"🔑 API key {key_id} <b>{esc(name)}</b> made. Copy it now: it is shown only this once "
        "and cannot be shown again.\n\n"
        f"<code>{esc(token)}</code>\n\n"
        f"Scopes: {esc(', '.join(scopes))}. It acts as {esc(staff_name)} ({esc(role)}): "
        "it sees only what they may see.\n"
        "Send it as the header <code>Authorization: Bearer &lt;key&gt;</code>. "
        "Delete this message once you have stored the key."
    )


def apikey_line(
    key_id: int, name: str, prefix: str, scopes: list[str], staff_name: str, last_used: str | None
) -> str:
    used = f"last used {esc(last_used)}" if last_used else "never used"
    return (
        f"{key_id}. <b>{esc(name)}</b> <code>{esc(prefix)}…</code> — {esc(', '.join(scopes))}; "
        f"acts as {esc(staff_name)}; {used}"
    )


def apikey_list(lines: list[str]) -> str:
    return "🔑 API keys in use (revoke with /apikey revoke &lt;id&gt;):\n" + "\n".join(lines)


def apikey_confirm(key_id: int, name: str, prefix: str, staff_name: str) -> str:
    return (
        f"Revoke API key {key_id} <b>{esc(name)}</b> (<code>{esc(prefix)}…</code>, acts as "
        f"{esc(staff_name)})? Every system using it is refused from its next call."
    )


def apikey_revoked(key_id: int, name: str) -> str:
    return f"🛑 API key {key_id} <b>{esc(name)}</b> is revoked."


def apikey_kept(key_id: int) -> str:
    return f"API key {key_id} stays in use."
