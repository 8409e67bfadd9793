"""/apikey new, list and revoke through the real bot, against the sandbox Bot API."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from bot import texts
from db.models import ApiKey, AuditEvent, Role
from db.services.staff.api_keys import token_hash
from tests.api_helpers import api_app, api_settings, bearer
from tests.bot_harness import BotHarness
from tests.bot_helpers import button

pytestmark = pytest.mark.e2e


def _token(message: dict) -> str:
    [token] = re.findall(r"vsk_[A-Za-z0-9_-]{43}", message["text"])
    return token


async def test_an_admin_makes_lists_and_revokes_a_key(settings, committed, database_url):
    async with BotHarness(settings, committed) as h:
        admin = h.make_staff(Role.ADMIN)
        made = await h.say(admin, "/apikey new <ledger> read payments:write")
        token = _token(made)
        assert f"<code>{token}</code>" in made["source"]
        assert "&lt;ledger&gt;" in made["source"]  # the name is escaped
        key = h.db(lambda s: s.scalars(select(ApiKey)).one())
        assert key.token_hash == token_hash(token) and token not in key.prefix + key.token_hash
        assert (key.scopes, key.staff_id) == ("read payments:write", admin.staff_id)

        listed = await h.say(admin, "/apikey list")
        assert "<ledger>" in listed["text"] and key.prefix in listed["text"]
        assert token not in listed["text"]

        with TestClient(api_app(api_settings(database_url), committed)) as api:
            assert api.get("/api/v1/loans", headers=bearer(token)).status_code == 200

            ask = await h.say(admin, f"/apikey revoke {key.id}")
            assert ask["text"].startswith(f"Revoke API key {key.id}")
            assert h.db(lambda s: s.get(ApiKey, key.id).revoked_at) is None  # not yet
            mark = h.sandbox.mark()
            await h.press(admin, ask, button(ask, texts.APIKEY_BTN_REVOKE))
            done = await h.wait(admin, after=mark)
            assert done["text"] == f"🛑 API key {key.id} <ledger> is revoked."
            refused = api.get("/api/v1/loans", headers=bearer(token))
            assert refused.status_code == 401
            assert refused.json()["code"] == "api_key"

        actions = h.db(
            lambda s: list(
                s.scalars(select(AuditEvent.action).where(AuditEvent.target_type == "api_key"))
            )
        )
        assert {"api_key_created", "api_key_revoked"} <= set(actions)
        assert (await h.say(admin, "/apikey list"))["source"] == texts.APIKEY_NONE


async def test_keep_it_changes_nothing_and_others_may_not(settings, committed):
    async with BotHarness(settings, committed) as h:
        admin = h.make_staff(Role.ADMIN)
        manager = h.make_staff(Role.MANAGER)
        await h.say(admin, "/apikey new crm")
        key = h.db(lambda s: s.scalars(select(ApiKey)).one())
        assert key.scopes == "read"  # the default
        ask = await h.say(admin, f"/apikey revoke {key.id}")
        mark = h.sandbox.mark()
        await h.press(admin, ask, button(ask, texts.APIKEY_BTN_KEEP))
        kept = await h.wait(admin, after=mark)
        assert kept["text"] == texts.apikey_kept(key.id)
        assert h.db(lambda s: s.get(ApiKey, key.id).revoked_at) is None

        refused = await h.say(manager, "/apikey new mine")
        assert refused["text"] == "Only admins may create API keys."
        bad = await h.say(admin, "/apikey new crm everything")
        assert bad["text"].startswith("Unknown scope everything")
        usage = await h.say(admin, "/apikey")
        assert "/apikey new" in usage["text"]


async def test_a_key_for_an_agent_acts_as_the_agent(settings, committed):
    async with BotHarness(settings, committed) as h:
        admin = h.make_staff(Role.ADMIN)
        agent = h.make_staff(Role.AGENT)
        made = await h.say(admin, f"/apikey new field-app for:{agent.staff_id}")
        assert "(agent)" in made["text"]
        key = h.db(lambda s: s.scalars(select(ApiKey)).one())
        assert (key.staff_id, key.created_by_id) == (agent.staff_id, admin.staff_id)
