"""The web chat works a bounded number of hellos at once (``webchat.HELLOS_AT_ONCE``), the others waiting their turn,
never refused: when one instance of two dies, its ~1,000 pages reconnect to the survivor within a second, and until
2026-12-07 the survivor worked them all at once, so that the messages of the pages already on it waited behind the
herd's store calls (bench/pages.py ``--kill --talk-rate``: reply p50 7 → 108 ms, p99 23 → 579 ms while 1,000 pages
came back).

The real app on SQLite behind a proxy of its own (each page its client address); its store's ``cancel_timers`` (which
a hello alone calls, through ``leaving.returned``) held by the test, so that hellos stay in progress until it lets
them go.
"""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.app import STORE, WEBCHAT
from gateway.settings import Settings
from gateway.store import TimerKind
from gateway.webchat import HELLOS_AT_ONCE
from tests.conftest import AppFactory
from tests.test_webchat import hello, receive_until, say

MORE = 5  # hellos beyond the bound


def address(n: int) -> str:
    """The client address of the herd's ``n``-th page: each its own network, as young people's pages are (one
    network's hellos have a share of the turns of their own, ``tests/test_webchat_hellos_fair.py``; until 2026-12-07
    afternoon this test's pages were all one declared shared network's)."""
    return f"192.0.2.{n + 1}"


async def test_hellos_beyond_the_bound_wait_their_turn_and_messages_of_connected_pages_go_on(
    make_client: AppFactory, settings: Settings
) -> None:
    """``HELLOS_AT_ONCE + 5`` pages come back (a hello with their token and conversation, as after an instance's
    death) while every hello is held in the store: ``HELLOS_AT_ONCE`` are in progress, the 5 others wait (before: all
    of them in progress at once); a page already in session says a message meanwhile and gets its ack and its reply;
    once the store lets the hellos go, every page gets its session, its own conversation (none refused, none lost)."""
    client = await make_client(settings.replace(client_address_header="X-Forwarded-For"))  # each page its address
    store, hub = client.app[STORE], client.app[WEBCHAT]
    before = []
    for _ in range(HELLOS_AT_ONCE + MORE):  # the killed instance's pages, in session before it died
        async with client.ws_connect("/chat/ws", headers={"X-Forwarded-For": address(len(before))}) as page:
            before.append(await hello(page))
    cancel = store.cancel_timers
    entered, release = 0, asyncio.Event()

    async def held(conversation_id: str, kind: TimerKind | None = None) -> None:
        nonlocal entered
        if kind is TimerKind.WEBCHAT_GONE and not release.is_set():
            entered += 1
            await release.wait()
        await cancel(conversation_id, kind)

    async with client.ws_connect("/chat/ws") as connected:
        await hello(connected)  # in session before the herd
        store.cancel_timers = held  # type: ignore[method-assign]
        pages = [
            await client.ws_connect("/chat/ws", headers={"X-Forwarded-For": address(n)})
            for n in range(HELLOS_AT_ONCE + MORE)
        ]
        try:
            for page, session in zip(pages, before, strict=True):
                await page.send_json({"type": "hello", "token": session["token"],
                                      "conversation": session["conversation"], "language": "fr"})  # fmt: skip
            while entered + getattr(hub, "hellos_waiting", 0) < len(pages):  # each in progress (held) or waiting
                await asyncio.sleep(0.01)
            assert entered == HELLOS_AT_ONCE, f"{entered} hellos in progress at once"
            assert hub.hellos_waiting == MORE

            frames: list[dict[str, Any]] = []
            await say(connected, "m1", "Oui, maintenant", frames)  # acknowledged while the herd is held
            if not any(f["type"] == "entry" and f["entry"]["author"] == "bot" for f in frames):  # and answered
                await receive_until(connected, lambda f: f["type"] == "entry" and f["entry"]["author"] == "bot")
            assert (entered, hub.hellos_waiting) == (HELLOS_AT_ONCE, MORE)

            release.set()
            sessions = [(await receive_until(page, lambda f: f["type"] == "session"))[-1] for page in pages]
            assert [s["conversation"] for s in sessions] == [s["conversation"] for s in before]
            assert hub.hellos_waiting == 0
        finally:
            release.set()
            store.cancel_timers = cancel  # type: ignore[method-assign]
            for page in pages:
                await page.close()
