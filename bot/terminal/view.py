"""How the demo's terminal chat looks: bot messages, numbered buttons, SMS lines, notes.

rich does the colours; when stdout is not a terminal rich writes plain text, so a scripted
run's transcript reads the same without escape codes.
"""

from __future__ import annotations

from typing import IO

from rich.console import Console
from rich.text import Text

from db.config import Settings
from db.sample.demo import DemoAgency, DemoPerson

SMS_STYLES = {
    "queued": "cyan",
    "sending": "blue",
    "sent": "yellow",
    "delivered": "green",
    "undelivered": "red",
    "failed": "bold red",
    "suppressed": "magenta",
    "canceled": "bright_black",
    "summary": "cyan",
}
BOT = "Vasooli"

HELP = """\
Type what you would type in Telegram (/help shows the bot's own commands).
  <number>              press that button of the bot's newest message
  :tap <label>          press the newest button with that label
  :text <text>          send text as it is (e.g. a number that is not a button)
  :as <who>             be someone else: {people}
  :sms <phone> <text>   a borrower texts the agency (STOP, START, HELP, BAL, or anything)
  :clock +2d            move the clock (+Nh, +Nd, +Nw), then run the daily job and planner
  :wait <seconds>       just watch;  :wait-sms  until the SMS have settled;
  :wait-bot             until the bot writes here (a relayed SMS, a job's message)
  :help                 this list;  :quit  stop the demo (Ctrl-C works too)
  {{invite}} in what you type is the newest invite code the bot showed."""


class View:
    """Writes the chat to a console (stdout unless out is given)."""

    def __init__(self, out: IO[str] | None = None) -> None:
        # soft_wrap: never cut long lines at 80 columns when writing to a file or pipe.
        self.console = Console(file=out, highlight=False, soft_wrap=True, emoji=False)
        self.prompt_open = False  # the cursor sits after a prompt: start a new line first

    @property
    def is_terminal(self) -> bool:
        return self.console.is_terminal

    def print(self, text: Text | str, style: str = "") -> None:
        if self.prompt_open:
            self.console.print()
            self.prompt_open = False
        self.console.print(text if isinstance(text, Text) else Text(text, style=style))

    def you(self, label: str, line: str) -> None:
        """What the user typed, for transcripts (a terminal shows it already)."""
        self.print(Text.assemble((f"{label} › ", "bold"), line))

    def prompt(self, label: str) -> None:
        """Ask for the next line (terminals only): who you are now, then what you type."""
        if self.is_terminal and not self.prompt_open:
            self.console.print(Text(f"{label} › ", style="bold"), end="")
            self.console.file.flush()
            self.prompt_open = True

    def bot(self, message: dict, numbered: bool, edited: bool = False) -> None:
        """A bot message (sent or edited), its file if any, and its inline keyboard."""
        head = f"{BOT} (edited #{message['message_id']})" if edited else BOT
        body = message["text"] or ""
        lines = body.splitlines() or [""]
        self.print(Text.assemble((f"{head} › ", "bold green"), lines[0]))
        for line in lines[1:]:
            self.print("   " + line)
        for kind in ("photo", "document"):
            if message.get(kind):
                self.print(f"   [{kind} saved to {message[kind]}]", "italic")
        self.keyboard(message.get("reply_markup"), numbered)

    def keyboard(self, markup: dict | None, numbered: bool) -> None:
        """Inline buttons row by row; callback buttons numbered when they can be pressed."""
        number = 0
        for row in (markup or {}).get("inline_keyboard") or []:
            cells = []
            for button in row:
                if "callback_data" in button:
                    number += 1
                    key = f"[{number}]" if numbered else "[·]"
                    cells.append(f"{key} {button.get('text', '')}")
                elif "url" in button:
                    cells.append(f"[link] {button.get('text', '')} → {button['url']}")
                else:
                    cells.append(f"[·] {button.get('text', '')}")
            if cells:
                self.print(Text("   " + "   ".join(cells), style="bold cyan"))

    def toast(self, text: str, alert: bool) -> None:
        """A callback answer the bot showed (a small pop-up in Telegram)."""
        self.print(f"   ({'alert' if alert else 'pop-up'}: {text})", "italic yellow")

    def sms(self, line: str, style: str) -> None:
        self.print(line, SMS_STYLES.get(style, ""))

    def note(self, text: str, style: str = "dim") -> None:
        self.print(text, style)


def label(person: DemoPerson) -> str:
    role = person.role.value if person.role else "new here"
    return f"{person.name} ({role})"


def banner_lines(
    agency: DemoAgency,
    settings: Settings,
    *,
    db_path: str,
    log_path: str,
    files_dir: str,
    seconds: float,
    me: DemoPerson,
) -> list[str]:
    """What the demo says first: where things are, who is who, what is not as in production."""
    origin = "seeded just now" if agency.seeded else f"reused from {db_path} (--fresh starts over)"
    staff = "; ".join(f"{p.key}: {p.name} ({p.password})" for p in agency.people)
    return [
        f"Vasooli demo: {settings.agency_name}, {agency.loans} loans, {origin}.",
        "Local sandboxes of Telegram and Twilio run in this process: no accounts, no network. "
        "The bot, worker and web app are the real ones.",
        f"Demo settings: SMS_ALLOWED_HOURS={settings.sms_allowed_hours} (so SMS go out at any "
        f"hour; production default 08:00-19:00), dispatch every "
        f"{settings.dispatch_interval_seconds:g} s, sessions never time out.",
        f"Staff (password for /login): {staff}.",
        f"Logs: {log_path}   Photos and documents from the bot: {files_dir}",
        f"Ready in {seconds:.1f} s. You are {label(me)}. :help lists the demo's commands, "
        "/help the bot's; Ctrl-C stops.",
    ]
