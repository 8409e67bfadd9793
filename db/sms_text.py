"""SMS texts: reminder templates, placeholder rendering, GSM-7 / UCS-2 segment counting.

Pure functions, shared by the bot (previews, broadcast templates) and the worker.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from datetime import date
from enum import StrEnum

from db.services.errors import InvalidInput


class Encoding(StrEnum):
    GSM7 = "GSM-7"
    UCS2 = "UCS-2"


PLACEHOLDERS = frozenset(
    {"name", "amount_due", "outstanding", "due_date", "loan_number", "agency", "opt_out"}
)
OPT_OUT_LINE = "Reply STOP to opt out."

# Plain ASCII on purpose (amounts as db.money.format_money(..., plain=True) writes them,
# e.g. INR 1500.00): one non-GSM character (₹, a curly quote) makes the whole text UCS-2
# and cuts a segment from 160 to 70 characters, i.e. more than doubles the cost.
BEFORE_DUE = (
    "Dear {name}, your payment of {amount_due} for loan {loan_number} is due on "
    "{due_date}. - {agency}. {opt_out}"
)
ON_THE_DAY = (
    "Dear {name}, your payment of {amount_due} for loan {loan_number} is due today "
    "({due_date}). - {agency}. {opt_out}"
)
OVERDUE = (
    "Dear {name}, {amount_due} for loan {loan_number} was due on {due_date} and is "
    "overdue. Total outstanding {outstanding}. - {agency}. {opt_out}"
)

# GSM 03.38 basic character set (the escape 0x1B is not a character of its own).
_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# The extension table: each character costs two septets (escape + code).
_GSM_EXTENDED = frozenset("\f^{}\\[~]|€")

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_SINGLE = {Encoding.GSM7: 160, Encoding.UCS2: 70}
# Concatenated parts carry a 6-byte header, leaving 153 septets or 67 UTF-16 units.
_MULTI = {Encoding.GSM7: 153, Encoding.UCS2: 67}


def rule_name(days: int) -> str:
    """The rule's name for a day offset, e.g. due-3, due+0, due+7 (stored in message.rule)."""
    return f"due{days:+d}"


def template_for(days: int) -> str:
    """The reminder template for a rule: before the due date, on the day, or overdue."""
    if days < 0:
        return BEFORE_DUE
    return ON_THE_DAY if days == 0 else OVERDUE


def sms_date(day: date) -> str:
    """A date for an SMS, the same in every locale, e.g. 05 Mar 2025."""
    return f"{day.day:02d} {_MONTHS[day.month - 1]} {day.year}"


def _fields(template: str) -> list[str]:
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError:
        raise InvalidInput(
            "The template has a stray { or }. Write placeholders like {name}.",
            code="template_braces",
        ) from None
    names = []
    for _text, field, spec, conversion in parsed:
        if field is None:
            continue
        if spec or conversion or field not in PLACEHOLDERS:
            shown = field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
            raise InvalidInput(
                f"Unknown placeholder {{{shown}}}. Use: "
                + ", ".join("{" + p + "}" for p in sorted(PLACEHOLDERS))
                + ".",
                code="template_placeholder",
                placeholder=shown,
            )
        names.append(field)
    return names


def check_template(template: str) -> None:
    """Raise InvalidInput naming an unknown placeholder or unbalanced braces."""
    if not template or not template.strip():
        raise InvalidInput("The message is empty.", code="template_empty")
    _fields(template)


def render(template: str, values: Mapping[str, object]) -> str:
    """The template with its placeholders filled; {opt_out} defaults to the opt-out line."""
    _fields(template)
    filled = dict.fromkeys(PLACEHOLDERS, "") | {"opt_out": OPT_OUT_LINE}
    filled |= {k: str(v) for k, v in values.items() if k in PLACEHOLDERS and v is not None}
    return template.format_map(filled).strip()


def encoding(text: str) -> Encoding:
    """GSM-7 when every character is in the GSM 03.38 basic or extension table, else UCS-2."""
    if all(ch in _GSM_BASIC or ch in _GSM_EXTENDED for ch in text):
        return Encoding.GSM7
    return Encoding.UCS2


def _units(text: str, enc: Encoding) -> list[int]:
    if enc is Encoding.GSM7:
        return [2 if ch in _GSM_EXTENDED else 1 for ch in text]
    # UTF-16 code units: characters beyond the BMP (emoji) take a surrogate pair.
    return [2 if ord(ch) > 0xFFFF else 1 for ch in text]


def segments(text: str) -> int:
    """How many SMS parts the text is sent as (0 for an empty text)."""
    if not text:
        return 0
    enc = encoding(text)
    units = _units(text, enc)
    if sum(units) <= _SINGLE[enc]:
        return 1
    # An escape pair or a surrogate pair is never split across two parts.
    parts, used, room = 1, 0, _MULTI[enc]
    for size in units:
        if used + size > room:
            parts, used = parts + 1, 0
        used += size
    return parts
