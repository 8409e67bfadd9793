"""The Twilio sandbox, driven by the real twilio client (sync) and raw HTTP."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import parse_qsl

import httpx
import pytest
import requests
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from db import clock
from scheduler.sandbox import CallbackTiming, CallFaults, FailureProfile, TwilioSandbox
from scheduler.sandbox.model import Delivery, Rejection
from scheduler.sandbox.server import ServerThread
from scheduler.sms import BaseUrlHttpClient

pytestmark = pytest.mark.e2e

TO = "+919876500001"
OTHER = "+919876500002"
SID = re.compile(r"^SM[0-9a-f]{32}$")
TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response><Message>Got it</Message></Response>'


@dataclass(frozen=True)
class Hit:
    path: str
    url: str
    params: dict[str, str]
    signature: str
    valid: bool


class Receiver:
    """A tiny web app standing in for `vasooli web`: checks Twilio's signature, records."""

    def __init__(self, auth_token: str) -> None:
        self.validator = RequestValidator(auth_token)
        self.hits: list[Hit] = []
        self.app = Starlette(routes=[Route("/{name}", self.endpoint, methods=["POST"])])

    async def endpoint(self, request: Request) -> Response:
        params = dict(parse_qsl((await request.body()).decode()))
        signature = request.headers.get("X-Twilio-Signature", "")
        url = str(request.url)
        valid = self.validator.validate(url, params, signature)
        self.hits.append(Hit(request.url.path, url, params, signature, valid))
        if request.url.path == "/sms":
            return Response(TWIML, media_type="application/xml")
        return Response(status_code=204)

    def statuses(self, sid: str) -> list[str]:
        return [h.params["MessageStatus"] for h in self.hits if h.params.get("MessageSid") == sid]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[TwilioSandbox]:
    with TwilioSandbox(seed=7) as sb:
        yield sb


@pytest.fixture(scope="module")
def receiver_server(sandbox: TwilioSandbox) -> Iterator[tuple[Receiver, str]]:
    receiver = Receiver(sandbox.auth_token)
    with ServerThread(receiver.app, name="test-receiver") as server:
        yield receiver, server.base_url


@pytest.fixture
def receiver(receiver_server: tuple[Receiver, str]) -> Receiver:
    receiver_server[0].hits.clear()
    return receiver_server[0]


@pytest.fixture
def receiver_url(receiver_server: tuple[Receiver, str]) -> str:
    return receiver_server[1]


def make_client(sb: TwilioSandbox, *, token: str | None = None, timeout: float = 5.0) -> Client:
    http = BaseUrlHttpClient(sb.base_url, timeout=timeout)
    return Client(sb.account_sid, token or sb.auth_token, http_client=http, environment={})


@pytest.fixture
def client(sb: TwilioSandbox) -> Client:
    return make_client(sb)


def post_raw(sb: TwilioSandbox, form: dict[str, str], token: str | None = None) -> httpx.Response:
    return httpx.post(sb.api_url, data=form, auth=(sb.account_sid, token or sb.auth_token))


# --- creating messages ------------------------------------------------------------------


def test_create_returns_a_twilio_message_resource(sb: TwilioSandbox, client: Client) -> None:
    message = client.messages.create(to=TO, from_=sb.phone_number, body="Payment due")

    assert SID.match(message.sid)
    assert message.status == "queued"
    assert message.num_segments == "1"
    assert message.price is None and message.error_code is None
    assert message.date_created is not None
    assert message.uri == f"/2010-04-01/Accounts/{sb.account_sid}/Messages/{message.sid}.json"
    assert [m.sid for m in sb.messages_to(TO)] == [message.sid]


def test_create_over_raw_http_is_201_with_twilio_fields(sb: TwilioSandbox) -> None:
    response = post_raw(sb, {"To": TO, "From": sb.phone_number, "Body": "Hi"})

    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "queued" and body["direction"] == "outbound-api"
    assert re.match(r"^\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} \+0000$", body["date_created"])
    assert body["price"] is None and body["date_sent"] is None
    assert body["account_sid"] == sb.account_sid and body["api_version"] == "2010-04-01"


@pytest.mark.parametrize(
    ("body", "segments"),
    [
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("{" * 80, 1),
        ("{" * 81, 2),  # GSM-7 extension characters cost two septets
        ("क" * 70, 1),
        ("क" * 71, 2),
        ("क" * 134, 2),
        ("क" * 135, 3),
        ("a" * 69 + "₹", 1),
        ("a" * 70 + "₹", 2),  # one non-GSM character makes it UCS-2
    ],
)
def test_segments_follow_gsm7_and_ucs2_limits(
    sb: TwilioSandbox, client: Client, body: str, segments: int
) -> None:
    message = client.messages.create(to=TO, from_=sb.phone_number, body=body)
    assert message.num_segments == str(segments)


def test_wrong_token_is_401_in_twilio_shape(sb: TwilioSandbox) -> None:
    response = post_raw(sb, {"To": TO, "From": sb.phone_number, "Body": "Hi"}, token="wrong")

    assert response.status_code == 401
    assert response.json() == {
        "code": 20003,
        "message": "Authenticate",
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": 401,
    }
    with pytest.raises(TwilioRestException) as raised:
        make_client(sb, token="wrong").messages.create(to=TO, from_=sb.phone_number, body="x")
    assert (raised.value.status, raised.value.code) == (401, 20003)
    assert sb.created_count(TO) == 0


@pytest.mark.parametrize(
    ("form", "code"),
    [
        ({"From": "+15005550006", "Body": "Hi"}, 21604),
        ({"To": TO, "From": "+15005550006"}, 21602),
        ({"To": TO, "Body": "Hi"}, 21603),
        ({"To": "9876500001", "From": "+15005550006", "Body": "Hi"}, 21211),
        ({"To": "+91 98765 00001", "From": "+15005550006", "Body": "Hi"}, 21211),
        ({"To": TO, "From": "+15005550006", "Body": "x" * 1601}, 21617),
    ],
)
def test_validation_answers_like_twilio(sb: TwilioSandbox, form: dict[str, str], code: int) -> None:
    response = post_raw(sb, form)

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == code and body["status"] == 400
    assert body["more_info"] == f"https://www.twilio.com/docs/errors/{code}"
    assert sb.messages == []


@pytest.mark.parametrize("code", [21211, 21614, 21408, 21610])
def test_fail_number_refuses_that_number_only(sb: TwilioSandbox, client: Client, code: int) -> None:
    sb.fail_number(TO, code=code)

    with pytest.raises(TwilioRestException) as raised:
        client.messages.create(to=TO, from_=sb.phone_number, body="Hi")
    assert (raised.value.status, raised.value.code) == (400, code)
    assert client.messages.create(to=OTHER, from_=sb.phone_number, body="Hi").sid
    sb.clear_number(TO)
    assert client.messages.create(to=TO, from_=sb.phone_number, body="Hi").sid
    assert sb.created_count(TO) == 1


def test_scripted_outcomes_come_in_order_then_normal_service(sb: TwilioSandbox) -> None:
    sb.script(http_status=429, code=20429, retry_after=3)
    sb.script(503)
    form = {"To": TO, "From": sb.phone_number, "Body": "Hi"}

    first, second, third = post_raw(sb, form), post_raw(sb, form), post_raw(sb, form)

    assert (first.status_code, first.json()["code"]) == (429, 20429)
    assert first.headers["Retry-After"] == "3"
    assert (second.status_code, second.json()["code"]) == (503, 20503)
    assert third.status_code == 201
    assert sb.created_count(TO) == 1


def test_scripts_for_create_leave_reads_alone(sb: TwilioSandbox, client: Client) -> None:
    sid = client.messages.create(to=TO, from_=sb.phone_number, body="Hi").sid
    sb.script(500)

    assert client.messages(sid).fetch().sid == sid  # not a "create": the script waits
    with pytest.raises(TwilioRestException) as raised:
        client.messages.create(to=TO, from_=sb.phone_number, body="Hi")
    assert raised.value.status == 500


def test_timeout_hangs_past_the_client_timeout(sb: TwilioSandbox) -> None:
    sb.script("timeout")
    with pytest.raises(requests.exceptions.Timeout):
        make_client(sb, timeout=0.3).messages.create(to=TO, from_=sb.phone_number, body="Hi")
    assert sb.created_count(TO) == 0


def test_timeout_after_creation_leaves_the_message_behind(sb: TwilioSandbox) -> None:
    sb.script("timeout", created=True)
    with pytest.raises(requests.exceptions.Timeout):
        make_client(sb, timeout=0.3).messages.create(to=TO, from_=sb.phone_number, body="Hi")
    assert [m.body for m in sb.messages_to(TO)] == ["Hi"]


def test_disconnect_closes_the_connection_without_an_answer(
    sb: TwilioSandbox, client: Client
) -> None:
    sb.script("disconnect")
    with pytest.raises(requests.exceptions.ConnectionError):
        client.messages.create(to=TO, from_=sb.phone_number, body="Hi")
    assert client.messages.create(to=TO, from_=sb.phone_number, body="Hi").sid


# --- reading messages -------------------------------------------------------------------


def test_fetch_and_unknown_sid(sb: TwilioSandbox, client: Client) -> None:
    sid = client.messages.create(to=TO, from_=sb.phone_number, body="Hi").sid
    sb.wait_callbacks()

    fetched = client.messages(sid).fetch()
    assert (fetched.sid, fetched.to, fetched.status) == (sid, TO, "delivered")
    assert fetched.date_sent is not None
    with pytest.raises(TwilioRestException) as raised:
        client.messages("SM" + "0" * 32).fetch()
    assert (raised.value.status, raised.value.code) == (404, 20404)


def test_list_by_to_follows_pages(sb: TwilioSandbox, client: Client) -> None:
    sids = [
        client.messages.create(to=TO, from_=sb.phone_number, body=f"m{i}").sid for i in range(5)
    ]
    client.messages.create(to=OTHER, from_=sb.phone_number, body="other")

    listed = client.messages.list(to=TO, page_size=2)

    assert [m.sid for m in listed] == list(reversed(sids))  # newest first, across 3 pages
    assert sb.request_count("list") == 3
    first_page = httpx.get(
        sb.api_url, params={"To": TO, "PageSize": 2}, auth=(sb.account_sid, sb.auth_token)
    ).json()
    assert first_page["next_page_uri"].startswith(f"/2010-04-01/Accounts/{sb.account_sid}/")
    assert len(first_page["messages"]) == 2


def test_list_by_date_window(sb: TwilioSandbox, client: Client) -> None:
    old = client.messages.create(to=TO, from_=sb.phone_number, body="old").sid
    sb.wait_callbacks()  # sent (date_sent) before the clock moves
    clock.advance(timedelta(days=2))
    new = client.messages.create(to=TO, from_=sb.phone_number, body="new").sid
    now = clock.utcnow()

    recent = client.messages.list(to=TO, date_sent_after=now - timedelta(hours=1))
    older = client.messages.list(to=TO, date_sent_before=now - timedelta(days=1))
    assert [m.sid for m in recent] == [new]
    assert [m.sid for m in older] == [old]


def test_bad_list_parameters_are_400(sb: TwilioSandbox) -> None:
    auth = (sb.account_sid, sb.auth_token)
    assert httpx.get(sb.api_url, params={"PageSize": 0}, auth=auth).json()["code"] == 20001
    assert httpx.get(sb.api_url, params={"DateSent>": "soon"}, auth=auth).status_code == 400


# --- status callbacks -------------------------------------------------------------------


def test_status_callbacks_are_signed_and_in_order(
    sb: TwilioSandbox, client: Client, receiver: Receiver, receiver_url: str
) -> None:
    sid = client.messages.create(
        to=TO, from_=sb.phone_number, body="Hi", status_callback=f"{receiver_url}/status"
    ).sid
    sb.wait_callbacks()

    assert receiver.statuses(sid) == ["sent", "delivered"]
    assert all(hit.valid for hit in receiver.hits)
    params = receiver.hits[-1].params
    assert params["SmsStatus"] == "delivered" and params["To"] == TO
    assert params["AccountSid"] == sb.account_sid and params["ApiVersion"] == "2010-04-01"
    assert "ErrorCode" not in params


def test_tampered_or_wrongly_signed_callbacks_do_not_validate(
    sb: TwilioSandbox, client: Client, receiver: Receiver, receiver_url: str
) -> None:
    client.messages.create(
        to=TO, from_=sb.phone_number, body="Hi", status_callback=f"{receiver_url}/status"
    )
    sb.wait_callbacks()
    genuine = receiver.hits[-1]
    tampered = {**genuine.params, "MessageStatus": "failed"}

    httpx.post(genuine.url, data=tampered, headers={"X-Twilio-Signature": genuine.signature})

    assert receiver.hits[-1].valid is False
    assert not RequestValidator("another-token").validate(
        genuine.url, genuine.params, genuine.signature
    )


@pytest.mark.parametrize(
    ("outcome", "code", "statuses"),
    [
        ("undelivered", 30003, ["sent", "undelivered"]),
        ("undelivered", 30006, ["sent", "undelivered"]),
        ("failed", 30008, ["failed"]),
        ("sent", None, ["sent"]),
    ],
)
def test_delivery_outcome_per_number(
    sb: TwilioSandbox,
    client: Client,
    receiver: Receiver,
    receiver_url: str,
    outcome: str,
    code: int | None,
    statuses: list[str],
) -> None:
    sb.set_delivery(TO, outcome, error_code=code)
    sid = client.messages.create(
        to=TO, from_=sb.phone_number, body="Hi", status_callback=f"{receiver_url}/status"
    ).sid
    sb.wait_callbacks()

    assert receiver.statuses(sid) == statuses
    final = receiver.hits[-1].params
    assert final.get("ErrorCode") == (str(code) if code else None)
    fetched = client.messages(sid).fetch()
    assert (fetched.status, fetched.error_code) == (statuses[-1], code)


def test_messaging_service_is_accepted_then_queued(
    sb: TwilioSandbox, client: Client, receiver: Receiver, receiver_url: str
) -> None:
    service = "MG" + "1" * 32
    message = client.messages.create(
        to=TO, messaging_service_sid=service, body="Hi", status_callback=f"{receiver_url}/status"
    )
    sb.wait_callbacks()

    assert message.status == "accepted"
    assert receiver.statuses(message.sid) == ["queued", "sent", "delivered"]
    assert receiver.hits[-1].params["MessagingServiceSid"] == service


def test_hold_keeps_messages_queued_until_flushed(
    sb: TwilioSandbox, client: Client, receiver: Receiver, receiver_url: str
) -> None:
    sb.callback_timing = CallbackTiming(hold=True)
    sid = client.messages.create(
        to=TO, from_=sb.phone_number, body="Hi", status_callback=f"{receiver_url}/status"
    ).sid
    sb.wait_callbacks()
    assert client.messages(sid).fetch().status == "queued" and receiver.hits == []

    sb.flush_callbacks()
    sb.wait_callbacks()
    assert receiver.statuses(sid) == ["sent", "delivered"]


def test_duplicates_and_out_of_order_when_asked(
    sb: TwilioSandbox, client: Client, receiver: Receiver, receiver_url: str
) -> None:
    sb.callback_timing = CallbackTiming(duplicate_rate=1.0, out_of_order_rate=1.0)
    sid = client.messages.create(
        to=TO, from_=sb.phone_number, body="Hi", status_callback=f"{receiver_url}/status"
    ).sid
    sb.wait_callbacks()

    assert receiver.statuses(sid) == ["delivered", "sent", "delivered", "sent"]
    assert client.messages(sid).fetch().status == "delivered"  # the truth stays in order


def test_callbacks_to_a_dead_url_are_recorded_not_raised(sb: TwilioSandbox, client: Client) -> None:
    client.messages.create(
        to=TO, from_=sb.phone_number, body="Hi", status_callback="http://127.0.0.1:9/status"
    )
    sb.wait_callbacks()
    assert [c.status_code for c in sb.callbacks] == [None, None]
    assert all(c.error for c in sb.callbacks)


# --- inbound SMS ------------------------------------------------------------------------


def test_inbound_sms_is_posted_signed_and_the_answer_returned(
    sb: TwilioSandbox, receiver: Receiver, receiver_url: str
) -> None:
    sb.inbound_url = f"{receiver_url}/sms"

    reply = sb.send_inbound(TO, "BAL")

    assert reply.status_code == 200 and "<Message>Got it</Message>" in reply.body
    assert reply.content_type and reply.content_type.startswith("application/xml")
    hit = receiver.hits[-1]
    assert hit.valid
    assert hit.params["From"] == TO and hit.params["To"] == sb.phone_number
    assert hit.params["Body"] == "BAL" and hit.params["NumMedia"] == "0"
    assert SID.match(hit.params["MessageSid"]) and hit.params["MessageSid"] == reply.message_sid
    assert [m.body for m in sb.inbound_messages] == ["BAL"]


def test_stop_unsubscribes_like_twilio_and_start_undoes_it(
    sb: TwilioSandbox, client: Client, receiver: Receiver, receiver_url: str
) -> None:
    sb.inbound_url = f"{receiver_url}/sms"

    sb.send_inbound(TO, "stop")
    assert receiver.hits[-1].params["OptOutType"] == "STOP"
    with pytest.raises(TwilioRestException) as raised:
        client.messages.create(to=TO, from_=sb.phone_number, body="Hi")
    assert raised.value.code == 21610

    sb.send_inbound(TO, "START")
    assert client.messages.create(to=TO, from_=sb.phone_number, body="Hi").sid


def test_send_inbound_needs_an_inbound_url(sb: TwilioSandbox) -> None:
    with pytest.raises(RuntimeError, match="inbound_url"):
        sb.send_inbound(TO, "hello")


# --- the demo's failure profile ---------------------------------------------------------


def test_failure_profile_is_seeded_per_number() -> None:
    profile = FailureProfile(share=0.3)
    numbers = [f"+9198765{i:05d}" for i in range(300)]

    fates = [profile.fate(1, n) for n in numbers]
    assert fates == [profile.fate(1, n) for n in reversed(numbers)][::-1]
    assert fates != [profile.fate(2, n) for n in numbers]
    failing = [f for f in fates if f is not None]
    assert 0.15 < len(failing) / len(numbers) < 0.45
    assert {type(f) for f in failing} == {Delivery, Rejection}


def test_failure_profile_drives_the_api(sb: TwilioSandbox, client: Client) -> None:
    profile = FailureProfile(share=1.0, outcomes=(("rejected", 21614, 1.0),))
    sb.failure_profile = profile

    with pytest.raises(TwilioRestException) as raised:
        client.messages.create(to=TO, from_=sb.phone_number, body="Hi")
    assert raised.value.code == 21614


# --- counters, latency, lifecycle -------------------------------------------------------


def test_counters_count_requests_and_creations(sb: TwilioSandbox, client: Client) -> None:
    sb.latency = 0.01
    sid = client.messages.create(to=TO, from_=sb.phone_number, body="Hi").sid
    client.messages(sid).fetch()
    client.messages.list(to=TO)

    assert (
        sb.request_count("create"),
        sb.request_count("fetch"),
        sb.request_count("list"),
        sb.request_count(),
    ) == (1, 1, 1, 3)
    assert (sb.created_count(TO), sb.created_count(OTHER)) == (1, 0)


def test_stop_releases_hung_requests_and_leaves_no_threads() -> None:
    before = set(threading.enumerate())
    sandbox = TwilioSandbox(hang_seconds=60).start()
    sandbox.script("timeout")
    failures: list[BaseException] = []

    def call() -> None:
        try:
            make_client(sandbox, timeout=30).messages.create(to=TO, from_="+15005550006", body="Hi")
        except BaseException as exc:
            failures.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    while sandbox.request_count("create") == 0:
        threading.Event().wait(0.01)
    sandbox.stop()
    caller.join(10)

    assert not caller.is_alive()
    assert failures  # the hung request ended with the server, not after 60 s
    assert set(threading.enumerate()) - before == set()


def test_odd_credentials_are_401_not_a_crash(sb: TwilioSandbox) -> None:
    form = {"To": TO, "From": sb.phone_number, "Body": "Hi"}
    odd = httpx.post(sb.api_url, data=form, auth=("AC\u00e9", "t\u00f6ken"))
    garbage = httpx.post(sb.api_url, data=form, headers={"Authorization": "Basic %%%"})
    assert (odd.status_code, garbage.status_code) == (401, 401)


# --- random faults (the fault test's CallFaults) ------------------------------------------


def test_call_faults_answer_429_refused_and_500_after_creating(sb: TwilioSandbox) -> None:
    auth, form = (sb.account_sid, sb.auth_token), {"To": TO, "From": sb.phone_number, "Body": "x"}
    try:
        sb.call_faults = CallFaults(rate_limited=1.0, on=("create",))
        limited = httpx.post(sb.api_url, data=form, auth=auth)
        sb.call_faults = CallFaults(server_error=1.0, created_share=1.0, on=("create",))
        failed = httpx.post(sb.api_url, data=form, auth=auth)
        listed = httpx.get(sb.api_url, params={"To": TO}, auth=auth)  # lists are not faulted
    finally:
        sb.call_faults = None
    assert (limited.status_code, limited.json()["code"]) == (429, 20429)
    assert limited.headers["Retry-After"] == "1"
    assert (failed.status_code, failed.json()["code"]) == (500, 20500)
    assert sb.created_count(TO) == 1  # the 429 created nothing; the 500 came after creating
    assert listed.status_code == 200 and len(listed.json()["messages"]) == 1


def test_date_sent_filters_leave_out_a_message_not_yet_sent(
    sb: TwilioSandbox, client: Client
) -> None:
    sb.callback_timing = CallbackTiming(hold=True)  # accepted/queued: no date_sent yet
    try:
        sid = client.messages.create(to=TO, from_=sb.phone_number, body="held").sid
        by_date = client.messages.list(to=TO, date_sent_after=clock.utcnow() - timedelta(hours=1))
        by_to = client.messages.list(to=TO)
    finally:
        sb.flush_callbacks()
        sb.callback_timing = CallbackTiming()
    assert by_date == [] and [m.sid for m in by_to] == [sid]
    assert by_to[0].date_sent is None
