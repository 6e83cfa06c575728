"""A hello waiting its turn (``WebChatHub.hello_turn``) whose page's connection is gone by the time the turn comes is
not worked: nothing opened, greeted or resumed for a socket nobody reads. Until 2026-12-07 it was worked in full,
turns being never timed out: during a herd (the pages of a dead instance coming back), a page whose hello waited
longer than it waits without a frame (``sockets.SILENT_FACTOR`` keepalives: its socket hears nothing while its hello
waits) connects again and says hello again, and the hello it left behind was still worked, a new conversation opened
and greeted for a token-less one: the herd's work doubled when the instance is the busiest.

The real app on SQLite, served as ``gateway serve`` serves it (a handler is not cancelled when its client goes
away: ``tests/test_socket_faults.py``'s ``ServedAsInProduction``); every turn held by the test through ``hello_turn``
itself; the page's connection reset while its hello waits; then, every turn taken again by the test (all hellos in
progress finished), the store is read.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp.test_utils import TestClient

from gateway.app import STORE, WEBCHAT, create_app
from gateway.conversation import Status
from gateway.settings import Settings
from gateway.webchat import HELLOS_AT_ONCE
from tests.conftest import Clock
from tests.test_socket_faults import RawChat, ServedAsInProduction


async def test_a_hello_whose_connection_closed_while_it_waited_its_turn_opens_nothing(
    settings: Settings, clock: Clock
) -> None:
    app = await create_app(settings, clock=clock, worker_poll_seconds=0.05)
    async with TestClient(ServedAsInProduction(app)) as client:
        await _hello_of_a_page_gone(client)


async def _hello_of_a_page_gone(client: TestClient) -> None:  # type: ignore[type-arg]
    store, hub = client.app[STORE], client.app[WEBCHAT]
    server = client.server.runner.server
    assert server is not None
    async with contextlib.AsyncExitStack() as turns:
        for n in range(HELLOS_AT_ONCE):  # every turn taken (a network each: its share is 4): the next hello waits
            await turns.enter_async_context(hub.hello_turn(f"198.51.100.{n}"))
        page = await RawChat.connect(client)
        page.send({"type": "hello", "token": None, "opening": "k" * 32, "language": "fr"})
        while hub.hellos_waiting < 1:
            await asyncio.sleep(0.01)
        page.reset()  # the page's connection cut (a phone changing networks, a page giving up to connect again)
        while any(handler.transport is not None for handler in server.connections):  # the server saw it go
            await asyncio.sleep(0.01)
    while hub.hellos_waiting:  # its turn given
        await asyncio.sleep(0.01)
    async with contextlib.AsyncExitStack() as turns:  # every turn taken again: the hello is done
        for n in range(HELLOS_AT_ONCE):
            await turns.enter_async_context(hub.hello_turn(f"198.51.100.{n}"))
    opened = await store.conversations_by_status(Status.BOT)
    assert opened == [], f"{len(opened)} conversation(s) opened for a page whose connection was gone"
