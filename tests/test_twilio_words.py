"""The worker's plain words for Twilio's error codes and its own transient failures."""

from __future__ import annotations

from scheduler.twilio_words import classify, describe, words


def test_error_codes_in_plain_words():
    assert describe("21610") == "the borrower replied STOP (unsubscribed)"
    assert describe("30006") == "landline or unreachable carrier"
    assert describe("12345") == "Twilio error 12345"
    assert describe(None) == "no error code recorded"
    for code in ("21211", "21408", "21614", "30003", "30004", "30005", "30007", "30008", "20429"):
        assert not describe(code).startswith("Twilio error")
    assert classify("30003", "timeout error: x") == "30003"
    assert classify(None, "timeout error: TimeoutError: ") == "timeout"
    assert classify(None, "network error: ClientOSError: reset") == "network"
    assert classify(None, "Unable to create record") == "http"
    assert classify(None, "worker stopped before the send finished") == "none"


def test_words_the_worker_records():
    assert words("30005") == "unknown number (not in service)"
    assert words(None, "network error: ClientOSError: reset") == (
        "could not reach Twilio (retried, then gave up)"
    )
    assert words(None, "something else") == "no error code recorded"
