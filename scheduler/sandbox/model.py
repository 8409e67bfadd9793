"""What the Twilio sandbox knows, without any I/O: messages, Twilio's errors, segments, paging.

`scheduler.sandbox` serves this over HTTP; keeping the rules here keeps them testable and
keeps the server module about HTTP.
"""

from __future__ import annotations

import math
import random
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from email.utils import format_datetime
from urllib.parse import urlencode

from db import clock

API_VERSION = "2010-04-01"
MAX_BODY_CHARS = 1600  # Twilio refuses longer bodies with 21617
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
# An alphanumeric sender ID: 1-11 characters, letters required (Twilio's rule).
_SENDER_ID = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

# Twilio's REST errors: code -> (HTTP status, message). Messages are Twilio's wording;
# {to}/{from_}/{path} are filled from the request.
ERRORS: dict[int, tuple[int, str]] = {
    20001: (400, "Invalid parameter: {param}"),
    20003: (401, "Authenticate"),
    20404: (404, "The requested resource {path} was not found"),
    20429: (429, "Too Many Requests"),
    20500: (500, "Internal Server Error"),
    20503: (503, "Service Unavailable"),
    21211: (400, "Invalid 'To' Phone Number: {to}"),
    21212: (400, "Invalid From Number (caller ID): {from_}"),
    21408: (
        400,
        "Permission to send an SMS has not been enabled for the region indicated by the "
        "'To' number: {to}",
    ),
    21602: (400, "Message body is required."),
    21603: (400, "A 'From' phone number is required."),
    21604: (400, "A 'To' phone number is required."),
    21609: (400, "Invalid StatusCallback url: {url}"),
    21610: (400, "Attempt to send to unsubscribed recipient"),
    21614: (400, "To number: {to}, is not a mobile number"),
    21617: (400, "The concatenated message body exceeds the 1600 character limit."),
}
# Delivery errors, reported in callbacks and on the Message resource, never as HTTP errors.
DELIVERY_ERRORS: dict[int, str] = {
    30003: "Unreachable destination handset",
    30005: "Unknown destination handset",
    30006: "Landline or unreachable carrier",
    30007: "Message filtered",
    30008: "Unknown error",
}
# Twilio's default opt-out handling: these keywords (whole body) unsubscribe / resubscribe.
OPT_OUT_KEYWORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
OPT_IN_KEYWORDS = frozenset({"START", "YES", "UNSTOP"})
OUTCOMES = ("delivered", "undelivered", "failed", "sent", "queued")

_GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENDED = set("^{}\\[~]|€\f")  # each costs two septets (escape + char)


def is_e164(number: str) -> bool:
    return bool(_E164.match(number))


def is_sender(value: str) -> bool:
    """A From Twilio would take: an E.164 number or an alphanumeric sender ID."""
    return is_e164(value) or bool(_SENDER_ID.match(value))


def count_segments(body: str) -> int:
    """SMS segments as Twilio bills them: GSM-7 160/153 septets, else UCS-2 70/67 units."""
    if all(ch in _GSM7_BASIC or ch in _GSM7_EXTENDED for ch in body):
        septets = sum(2 if ch in _GSM7_EXTENDED else 1 for ch in body)
        return 1 if septets <= 160 else math.ceil(septets / 153)
    units = len(body.encode("utf-16-le")) // 2  # characters outside the BMP take two
    return 1 if units <= 70 else math.ceil(units / 67)


def new_sid(prefix: str) -> str:
    """A Twilio-shaped SID (two letters + 32 hex), unique across sandboxes and runs."""
    return prefix + uuid.uuid4().hex


def rfc2822(moment: datetime | None) -> str | None:
    """Twilio's date format on resources: 'Thu, 24 Aug 2023 05:01:45 +0000'."""
    if moment is None:
        return None
    return format_datetime(moment.astimezone(UTC).replace(microsecond=0))


def error_payload(
    code: int, *, http_status: int | None = None, message: str | None = None, **fill: str
) -> tuple[int, dict[str, object]]:
    """(HTTP status, JSON body) of a Twilio REST error, in Twilio's exact shape."""
    default_status, template = ERRORS.get(code, (http_status or 400, "Error {code}"))
    status = http_status or default_status
    if message is None:
        values = {"to": "", "from_": "", "path": "", "url": "", "param": "", "code": str(code)}
        message = template.format(**{**values, **fill})
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return status, body


def parse_date_filter(value: str, *, upper: bool) -> datetime:
    """A DateSent filter value: 'YYYY-MM-DD' (a whole day) or 'YYYY-MM-DDTHH:MM:SSZ'.

    Raises ValueError on anything else (the API answers 400 20001)."""
    if _ISO_DATE.match(value):
        day = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
        return datetime.combine(day.date(), time.max, UTC) if upper else day
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


@dataclass
class Message:
    """One Message resource, outbound (created through the API) or inbound (send_inbound)."""

    sid: str
    account_sid: str
    to: str
    from_: str | None
    body: str
    status: str
    direction: str = "outbound-api"
    messaging_service_sid: str | None = None
    status_callback: str | None = None
    num_segments: int = 1
    date_created: datetime = field(default_factory=clock.utcnow)
    date_updated: datetime = field(default_factory=clock.utcnow)
    date_sent: datetime | None = None
    error_code: int | None = None
    error_message: str | None = None
    seq: int = 0

    @property
    def uri(self) -> str:
        return f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{self.sid}.json"

    def resource(self) -> dict[str, object]:
        """The JSON Twilio returns for this message (numbers as strings, like Twilio)."""
        base = self.uri.removesuffix(".json")
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": self.body,
            "date_created": rfc2822(self.date_created),
            "date_sent": rfc2822(self.date_sent),
            "date_updated": rfc2822(self.date_updated),
            "direction": self.direction,
            "error_code": self.error_code,
            "error_message": self.error_message,
            "from": self.from_,
            "messaging_service_sid": self.messaging_service_sid,
            "num_media": "0",
            "num_segments": str(self.num_segments),
            "price": None,
            "price_unit": "USD",
            "sid": self.sid,
            "status": self.status,
            "subresource_uris": {
                "media": f"{base}/Media.json",
                "feedback": f"{base}/Feedback.json",
            },
            "to": self.to,
            "uri": self.uri,
        }


@dataclass(frozen=True)
class Delivery:
    """What the carrier does with a message to a number: see OUTCOMES."""

    outcome: str = "delivered"
    error_code: int | None = None

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"unknown delivery outcome {self.outcome!r}; use one of {OUTCOMES}")
        if self.outcome in ("undelivered", "failed") and self.error_code is None:
            default = 30003 if self.outcome == "undelivered" else 30008
            object.__setattr__(self, "error_code", default)


@dataclass(frozen=True)
class Rejection:
    """The API refuses messages to a number: HTTP status and Twilio code."""

    code: int
    http_status: int = 400
    message: str | None = None


@dataclass(frozen=True)
class FailureProfile:
    """For the demo: a seeded share of numbers that fail the way real ones do.

    Each number's fate depends only on (seed, number), so it does not change with the
    order in which messages are sent.
    """

    share: float = 0.08
    # (kind, code, weight): kind "undelivered"/"failed" is a delivery outcome,
    # "rejected" an API error at creation.
    outcomes: tuple[tuple[str, int, float], ...] = (
        ("undelivered", 30003, 3.0),
        ("undelivered", 30006, 2.0),
        ("undelivered", 30005, 1.0),
        ("rejected", 21610, 1.0),
        ("rejected", 21614, 1.0),
    )

    def fate(self, seed: int, number: str) -> Delivery | Rejection | None:
        rng = random.Random(f"{seed}:{number}")
        if rng.random() >= self.share:
            return None
        kind, code, _ = rng.choices(self.outcomes, weights=[w for *_, w in self.outcomes])[0]
        return Rejection(code) if kind == "rejected" else Delivery(kind, code)


@dataclass(frozen=True)
class CallbackTiming:
    """When status changes (and their callbacks) happen after a message is created.

    The default is instant and in order, for tests. `realistic()` is for the demo.
    `hold=True` keeps every message queued until `TwilioSandbox.flush_callbacks()`.
    """

    sent_delay: tuple[float, float] = (0.0, 0.0)  # seconds from creation, uniform range
    final_delay: tuple[float, float] = (0.0, 0.0)  # seconds from "sent"
    duplicate_rate: float = 0.0  # share of callbacks posted twice
    out_of_order_rate: float = 0.0  # share of messages whose last two callbacks swap
    hold: bool = False

    @classmethod
    def realistic(cls) -> CallbackTiming:
        return cls(
            sent_delay=(0.2, 1.5),
            final_delay=(1.0, 6.0),
            duplicate_rate=0.03,
            out_of_order_rate=0.05,
        )


@dataclass(frozen=True)
class CallFaults:
    """Random faults on a share of API calls, for fault tests (seeded by the sandbox).

    On create, a fault may strike after the message was accepted (`created_share` of them):
    the client sees the error or the timeout, Twilio has the message. 429 never creates:
    Twilio refused the request. Callback lateness and duplicates are CallbackTiming's.
    """

    rate_limited: float = 0.0  # share of calls answered 429 (with Retry-After)
    server_error: float = 0.0  # share answered 500
    timeout: float = 0.0  # share that hang past the client's timeout
    created_share: float = 0.5  # of 500s and timeouts on create: the message exists anyway
    on: tuple[str, ...] = ("create", "list")
    retry_after: float = 1.0

    def draw(self, operation: str, rng: random.Random) -> Scripted | None:
        """The fault for one call, or None."""
        if operation not in self.on:
            return None
        roll = rng.random()
        created = operation == "create" and rng.random() < self.created_share
        if roll < self.rate_limited:
            return Scripted("error", 429, 20429, retry_after=self.retry_after, on=operation)
        roll -= self.rate_limited
        if roll < self.server_error:
            return Scripted("error", 500, 20500, created=created, on=operation)
        if roll - self.server_error < self.timeout:
            return Scripted("timeout", created=created, on=operation)
        return None


@dataclass(frozen=True)
class Scripted:
    """One scripted answer to the next matching API call (see TwilioSandbox.script)."""

    kind: str  # "error", "timeout" or "disconnect"
    http_status: int | None = None
    code: int | None = None
    message: str | None = None
    retry_after: float | None = None
    created: bool = False  # the message is created anyway; the client just never learns it
    on: str = "create"  # "create", "fetch", "list" or "any"

    def matches(self, operation: str) -> bool:
        return self.on in ("any", operation)


@dataclass(frozen=True)
class Step:
    """One timed action of a message's life: a status change or a callback post."""

    at: float
    status: str
    error_code: int | None
    post: bool  # False: change the status; True: post the callback for that status


def plan_life(
    delivery: Delivery, *, via_service: bool, timing: CallbackTiming, rng: random.Random
) -> list[Step]:
    """The timed steps from 'queued' to the final status, callbacks included, in run order."""
    t_sent = rng.uniform(*timing.sent_delay)
    t_final = t_sent + rng.uniform(*timing.final_delay)
    changes: list[tuple[float, str, int | None]] = []
    if via_service:
        changes.append((0.0, "queued", None))  # Messaging Services also report "queued"
    if delivery.outcome == "failed":
        changes.append((t_sent, "failed", delivery.error_code))
    elif delivery.outcome != "queued":
        changes.append((t_sent, "sent", None))
        if delivery.outcome in ("delivered", "undelivered"):
            changes.append((t_final, delivery.outcome, delivery.error_code))
    posts = [Step(at, status, code, post=True) for at, status, code in changes]
    if len(posts) >= 2 and rng.random() < timing.out_of_order_rate:
        a, b = posts[-2], posts[-1]  # same times, statuses swapped: the later news comes first
        posts[-2:] = [
            Step(a.at, b.status, b.error_code, True),
            Step(b.at, a.status, a.error_code, True),
        ]
    for post in list(posts):
        if rng.random() < timing.duplicate_rate:
            posts.append(
                Step(
                    post.at + rng.uniform(0.0, 0.5) * (t_final - t_sent),
                    post.status,
                    post.error_code,
                    True,
                )
            )
    steps = [Step(at, status, code, post=False) for at, status, code in changes] + posts
    # Stable sort: at equal times a status change runs before its callback, in plan order.
    return sorted(steps, key=lambda s: s.at)


def page_of(
    messages: list[Message],
    *,
    path: str,
    filters: dict[str, str],
    page_size: int,
    page: int,
    token: str | None,
) -> dict[str, object]:
    """Twilio's list envelope: newest first, PageSize/Page/PageToken, next_page_uri."""
    ordered = sorted(messages, key=lambda m: (m.date_created, m.seq), reverse=True)
    start = page * page_size
    if token and token.startswith("PA"):
        sids = [m.sid for m in ordered]
        after = token[2:]
        start = sids.index(after) + 1 if after in sids else start
    chunk = ordered[start : start + page_size]

    def uri(page_no: int, page_token: str | None = None) -> str:
        query = {**filters, "PageSize": str(page_size), "Page": str(page_no)}
        if page_token:
            query["PageToken"] = page_token
        return f"{path}?{urlencode(query)}"

    has_more = start + page_size < len(ordered)
    return {
        "first_page_uri": uri(0),
        "end": start + len(chunk) - 1 if chunk else start,
        "previous_page_uri": uri(page - 1) if page > 0 else None,
        "messages": [m.resource() for m in chunk],
        "uri": uri(page, token),
        "page_size": page_size,
        "start": start,
        "next_page_uri": uri(page + 1, "PA" + chunk[-1].sid) if has_more and chunk else None,
        "page": page,
    }


def in_window(message: Message, after: datetime | None, before: datetime | None) -> bool:
    """Twilio's DateSent filters: on date_sent only, so a message still queued or accepted
    (no date_sent yet) is left out of any date-filtered list, as at Twilio."""
    if after is None and before is None:
        return True
    if message.date_sent is None:
        return False
    # Twilio's dates have whole seconds; compare at that precision, bounds inclusive.
    moment = message.date_sent.replace(microsecond=0)
    if after is not None and moment < after.replace(microsecond=0):
        return False
    return not (before is not None and moment > before)
