"""Telegram's initData check, field by field (bot/miniapp/auth.py), without HTTP."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest

from bot.miniapp.auth import (
    InitDataError,
    Refusal,
    data_check_string,
    sign_init_data,
    validate_init_data,
)

TOKEN = "123456:ABC-token"
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
AGE = timedelta(minutes=5)


def signed(**fields: str) -> str:
    fields["hash"] = sign_init_data(fields, TOKEN)
    return urlencode(fields)


def user(uid: object = 42) -> str:
    return json.dumps({"id": uid, "first_name": "Meera"})


def test_the_hash_is_telegrams_recipe():
    fields = {"auth_date": "1", "user": user(), "query_id": "Q", "hash": "ignored"}
    assert (
        data_check_string(fields)
        == 'auth_date=1\nquery_id=Q\nuser={"id": 42, "first_name": "Meera"}'
    )
    secret = hmac.new(b"WebAppData", TOKEN.encode(), hashlib.sha256).digest()
    expected = hmac.new(secret, data_check_string(fields).encode(), hashlib.sha256).hexdigest()
    assert sign_init_data(fields, TOKEN) == expected


def test_a_valid_init_data_names_the_user():
    data = signed(auth_date=str(int(NOW.timestamp()) - 60), user=user(), query_id="Q")
    got = validate_init_data(data, bot_token=TOKEN, now=NOW, max_age=AGE)
    assert (got.telegram_user_id, got.first_name) == (42, "Meera")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ("", Refusal.MISSING),
        ("x" * 5000, Refusal.MALFORMED),
        ("a=1&a=2", Refusal.MALFORMED),
        (signed(auth_date=str(int(NOW.timestamp())), user=user())[:-2] + "00", Refusal.BAD_HASH),
        (signed(auth_date=str(int(NOW.timestamp()) - 301), user=user()), Refusal.STALE),
        (signed(auth_date=str(int(NOW.timestamp()) + 300), user=user()), Refusal.STALE),
        (signed(auth_date="9" * 20, user=user()), Refusal.MALFORMED),
        (signed(auth_date="soon", user=user()), Refusal.MALFORMED),
        (signed(auth_date=str(int(NOW.timestamp()))), Refusal.MALFORMED),  # no user
        (signed(auth_date=str(int(NOW.timestamp())), user=user(2**70)), Refusal.MALFORMED),
        (signed(auth_date=str(int(NOW.timestamp())), user=user("42")), Refusal.MALFORMED),
        (signed(auth_date=str(int(NOW.timestamp())), user="{not json"), Refusal.MALFORMED),
    ],
)
def test_refusals(data, reason):
    with pytest.raises(InitDataError) as err:
        validate_init_data(data, bot_token=TOKEN, now=NOW, max_age=AGE)
    assert err.value.reason is reason


def test_another_bots_token_does_not_verify():
    data = signed(auth_date=str(int(NOW.timestamp())), user=user())
    with pytest.raises(InitDataError) as err:
        validate_init_data(data, bot_token="654321:other", now=NOW, max_age=AGE)
    assert err.value.reason is Refusal.BAD_HASH
