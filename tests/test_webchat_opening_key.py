"""A page that never got its ``session`` frame opens no second conversation (issue 8; found by the chaos soak:
seed 46 left 4 conversations whose pages never learnt their token). Without a token, chat.js sends an opening key
it drew once with every ``hello``; the server remembers which conversation that key opened (a keyed hash of it,
10 minutes, ``Store.keep_opening``), so the same key resumes that conversation, on SQLite and Redis, through the
real server. Before, each such ``hello`` started a new conversation (the first tests fail on that code)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient

from gateway.app import SETTINGS, STORE
from gateway.conversation import Conversation, Status
from gateway.settings import Settings
from tests.conftest import AppFactory
from tests.store.conftest import redis_url, store_url  # noqa: F401  (an empty store: SQLite, the session's Redis)
from tests.test_webchat import WALK_TO_QUEUE, receive_until, say

KEY = "k3Y-drawn_once-by-the-page-0123"
Client = TestClient[Any, Any]
both_stores = pytest.mark.parametrize(
    "store_url", ["sqlite", pytest.param("redis", marks=pytest.mark.redis)], indirect=True
)


@pytest.fixture
async def chat(make_client: AppFactory, settings: Settings, store_url: str) -> Client:  # noqa: F811
    """The app on an empty store of the test's parameter."""
    return await make_client(settings.replace(store=store_url))


async def first_hello(client: Client, key: str = KEY) -> dict[str, Any]:
    """A page without a token: its hello with its opening key, and the session frame it gets."""
    async with client.ws_connect("/chat/ws") as page:
        await page.send_json({"type": "hello", "token": None, "opening": key, "language": "fr"})
        frames = await receive_until(page, lambda f: f["type"] == "session")
    return frames[-1]


async def in_the_bot(client: Client) -> list[Conversation]:
    return await client.app[STORE].conversations_by_status(Status.BOT)


async def until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + 10
    while not await condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.02)


@both_stores
async def test_a_page_cut_off_right_after_its_hello_resumes_the_conversation_it_opened(chat: Client) -> None:
    client = chat
    async with client.ws_connect("/chat/ws") as cut:  # the page is killed with its hello sent: it reads nothing
        await cut.send_json({"type": "hello", "token": None, "opening": KEY, "language": "fr"})
    await until(lambda: _count(client, 1), "the server never opened the first hello's conversation")
    [opened] = await in_the_bot(client)
    session = await first_hello(client)  # the page, loaded again, never learnt the token: its key only
    assert [c.id for c in await in_the_bot(client)] == [opened.id], "a second conversation was opened"
    assert session["token"] == opened.sender
    greetings = [e for e in session["history"] if e["author"] == "bot"]
    assert greetings and len({e["id"] for e in greetings}) == len(greetings)
    assert (await first_hello(client))["token"] == opened.sender  # as often as the page needs it


async def _count(client: Client, expected: int) -> bool:
    return len(await in_the_bot(client)) >= expected


@both_stores
async def test_two_sockets_of_one_page_at_once_open_one_conversation(chat: Client) -> None:
    client = chat
    sessions = await asyncio.gather(*(first_hello(client) for _ in range(3)))
    assert len({s["token"] for s in sessions}) == 1
    assert len(await in_the_bot(client)) == 1


async def test_a_new_key_opens_a_new_conversation_and_a_token_comes_before_a_key(
    make_client: AppFactory, settings: Settings
) -> None:
    client = await make_client(settings)
    first = await first_hello(client)
    other = await first_hello(client, KEY.replace("0123", "4567"))  # "Nouvelle conversation" without a token
    assert other["token"] != first["token"]
    async with client.ws_connect("/chat/ws") as page:  # a page with its token: the key plays no part
        await page.send_json({"type": "hello", "token": other["token"], "opening": KEY, "language": "fr"})
        session = (await receive_until(page, lambda f: f["type"] == "session"))[-1]
    assert session["token"] == other["token"]
    assert len(await in_the_bot(client)) == 2


@both_stores
async def test_the_key_of_an_erased_conversation_opens_a_new_one_and_is_never_stored(chat: Client) -> None:
    client = chat
    store = client.app[STORE]
    first = await first_hello(client)
    [opened] = await in_the_bot(client)
    assert await store.erase_conversation(opened.id) > 0
    again = await first_hello(client)
    [new] = await in_the_bot(client)
    assert again["token"] != first["token"] and new.id != opened.id and new.sender == again["token"]
    assert KEY not in await everything_stored(client.app[SETTINGS].store)


async def everything_stored(url: str) -> str:
    """Every row of the SQLite file, or every Redis key and string value, as one text."""
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
            tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            return repr([list(db.execute(f"SELECT * FROM {table}")) for table in tables])
    client = aioredis.Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter()]
        values = [await client.get(key) if await client.type(key) == b"string" else b"" for key in keys]
        return repr(keys + values)
    finally:
        await client.aclose()


async def test_a_queued_page_cut_off_before_its_token_keeps_its_place(
    make_client: AppFactory, settings: Settings
) -> None:
    """The page got its session, then lost its storage's token before keeping it (killed): its next hello
    with the key finds its conversation, still queued with its messages."""
    client = await make_client(settings)
    async with client.ws_connect("/chat/ws") as page:
        await page.send_json({"type": "hello", "token": None, "opening": KEY, "language": "fr"})
        await receive_until(page, lambda f: f["type"] == "session")
        for number, answer in enumerate(WALK_TO_QUEUE):
            await say(page, f"m{number}", answer)
    async with client.ws_connect("/chat/ws") as page:
        await page.send_json({"type": "hello", "token": None, "opening": KEY, "language": "fr"})
        session = (await receive_until(page, lambda f: f["type"] == "session"))[-1]
    assert session["status"] == "queued" and session["position"] == 1
    assert [e["text"] for e in session["history"] if e["author"] == "user"] == WALK_TO_QUEUE
