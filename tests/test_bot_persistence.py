"""DbPersistence: conversations and user/chat/bot data survive a new instance (a restart)."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from enum import IntEnum

import pytest
from sqlalchemy import select

from bot.persistence import CONV, USER, DbPersistence
from db import clock
from db.models import BotState
from db.services import bot_state

# Ids of this module only, so rows of other tests on a shared database never interfere.
U1, U2, CHAT = 9_100_000_001, 9_100_000_002, -9_100_000_003


class Step(IntEnum):
    ASK = 1
    CONFIRM = 2


def _row(factory, namespace: str, key: str) -> BotState | None:
    with factory() as session:
        return session.scalars(
            select(BotState).where(BotState.namespace == namespace, BotState.key == key)
        ).one_or_none()


async def test_user_chat_and_bot_data_round_trip(committed):
    store = DbPersistence(committed)
    await store.update_user_data(U1, {"loan.amount": "1500.50", "loan.step": 2, "ok": True})
    await store.update_chat_data(CHAT, {"told": True})
    await store.update_bot_data({"version": 3, "names": ["a", "b"]})

    fresh = DbPersistence(committed)
    assert (await fresh.get_user_data())[U1] == {
        "loan.amount": "1500.50",
        "loan.step": 2,
        "ok": True,
    }
    assert (await fresh.get_chat_data())[CHAT] == {"told": True}
    assert await fresh.get_bot_data() == {"version": 3, "names": ["a", "b"]}
    assert await fresh.get_callback_data() is None


async def test_conversation_states_round_trip_and_end(committed):
    store = DbPersistence(committed)
    await store.update_conversation("add_loan", (U1, U1), Step.CONFIRM)
    await store.update_conversation("add_loan", (U2, U2), Step.ASK)
    await store.update_conversation("other", (U1, U1), 7)

    convs = await DbPersistence(committed).get_conversations("add_loan")
    assert convs[(U1, U1)] == Step.CONFIRM and convs[(U2, U2)] == Step.ASK
    assert isinstance(next(iter(convs)), tuple)
    assert _row(committed, CONV + "add_loan", json.dumps([U1, U1])).data == {"state": 2}

    await store.update_conversation("add_loan", (U1, U1), None)  # the conversation ended
    convs = await DbPersistence(committed).get_conversations("add_loan")
    assert (U1, U1) not in convs and (U2, U2) in convs
    assert (await DbPersistence(committed).get_conversations("other"))[(U1, U1)] == 7


async def test_empty_or_dropped_data_deletes_the_row(committed):
    store = DbPersistence(committed)
    await store.update_user_data(U1, {"x": 1})
    await store.update_user_data(U2, {"y": 2})
    await store.update_user_data(U1, {})
    await store.drop_user_data(U2)
    await store.update_chat_data(CHAT, {"z": 3})
    await store.drop_chat_data(CHAT)
    assert _row(committed, USER, str(U1)) is None
    assert _row(committed, USER, str(U2)) is None
    assert CHAT not in await DbPersistence(committed).get_chat_data()


async def test_non_json_data_is_refused_and_the_old_value_kept(committed):
    store = DbPersistence(committed)
    await store.update_user_data(U1, {"amount": "10.00"})
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        await store.update_user_data(U1, {"amount": Decimal("10.00")})
    with pytest.raises(TypeError, match="user_data"):
        await store.update_user_data(U1, {"when": clock.utcnow()})
    assert (await DbPersistence(committed).get_user_data())[U1] == {"amount": "10.00"}


async def test_unchanged_data_is_not_rewritten(committed):
    store = DbPersistence(committed)
    await store.update_user_data(U1, {"a": 1})
    first = _row(committed, USER, str(U1)).updated_at
    clock.advance(timedelta(hours=1))
    await store.update_user_data(U1, {"a": 1})
    assert _row(committed, USER, str(U1)).updated_at == first
    await store.update_user_data(U1, {"a": 2})
    assert _row(committed, USER, str(U1)).updated_at > first


async def test_flush_and_refresh_change_nothing(committed):
    store = DbPersistence(committed, store_bot_data=False)
    assert store.store_data.bot_data is False and store.store_data.callback_data is False
    await store.update_user_data(U1, {"k": "v"})
    data = {"k": "v"}
    await store.refresh_user_data(U1, data)
    await store.flush()
    assert data == {"k": "v"}
    assert (await DbPersistence(committed).get_user_data())[U1] == {"k": "v"}


def test_bot_state_service_reads_writes_and_deletes_documents(session):
    namespace = "test:bot_state"
    bot_state.write_state(session, namespace=namespace, key="1", data={"a": 1})
    bot_state.write_state(session, namespace=namespace, key="2", data={"b": [2]})
    bot_state.write_state(session, namespace=namespace, key="1", data={"a": 3})
    session.flush()
    assert bot_state.read_state(session, namespace=namespace) == {"1": {"a": 3}, "2": {"b": [2]}}
    bot_state.write_state(session, namespace=namespace, key="2", data=None)
    assert bot_state.read_state(session, namespace=namespace) == {"1": {"a": 3}}
    assert bot_state.read_state(session, namespace="test:none") == {}
