"""Every sentence the Mini App says outside its templates: refusals and what to do next."""

from __future__ import annotations

from bot.miniapp.auth import Refusal

REOPEN = "Close this page and open the dashboards again from the bot's menu button."
LOGIN_FIRST = "Send /login to the bot, then open the dashboards again."

INIT_DATA = {
    Refusal.MISSING: "Open the dashboards from the bot's menu button in Telegram.",
    Refusal.MALFORMED: "Telegram's sign-in data could not be read.",
    Refusal.BAD_HASH: "Telegram's sign-in data did not check out.",
    Refusal.STALE: "Telegram's sign-in data is too old.",
}

NO_PAGE_SESSION = "Your dashboard session has ended."
WRONG_ROLE_HINT = "Ask an admin if you need them."
SIGN_IN_AGAIN = "Sign in again"
