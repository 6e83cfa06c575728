"""The web chat's hello turns are shared between client networks (``WebChatHub.hello_turn``): at most
``HELLOS_PER_NETWORK`` of one network's hellos worked at once, the rest of that network waiting for its own turns
without holding a turn or a place ahead of another network's hello. Until 2026-12-07 (afternoon) one line for all: a
troll's network (up to 64 sockets, ``gateway/connections.py``) held the ``HELLOS_AT_ONCE`` turns and the line ahead of
every young person's hello for as long as the store held its hellos.

The real app on SQLite behind a proxy of its own (``X-Forwarded-For``: each page its client address); its store's
``cancel_timers`` (which a resumed hello alone calls) held by the test, so that hellos stay in progress until let go.
"""

from __future__ import annotations

import asyncio

from gateway import webchat
from gateway.app import STORE, WEBCHAT
from gateway.settings import Settings
from gateway.store import TimerKind
from tests.conftest import AppFactory
from tests.test_webchat import hello, receive_until

TROLL = "198.51.100.7"  # one client network's sockets (each with a token of its own)
SOCKETS = 40  # of the 64 its connections' cap allows: more than the 32 turns
YOUNG = "203.0.113.9"  # a young person's, coming back meanwhile
HELLOS_PER_NETWORK = getattr(webchat, "HELLOS_PER_NETWORK", 4)  # (before 2026-12-07 afternoon: no such bound)


async def test_one_network_filling_the_line_does_not_hold_another_networks_hello(
    make_client: AppFactory, settings: Settings
) -> None:
    """40 sockets of one network resume their conversations while the store holds every hello; then a page of
    another network resumes: its hello is worked (in the store) while the first network's are still held, of which
    ``HELLOS_PER_NETWORK`` in progress and the rest waiting (before: 32 of the first network in progress, 9 waiting,
    the young person's among them until the first network's 40 were let go). Once let go, every page gets its own
    conversation back."""
    client = await make_client(settings.replace(client_address_header="X-Forwarded-For"))
    store, hub = client.app[STORE], client.app[WEBCHAT]

    async def page(address: str):  # type: ignore[no-untyped-def]
        return await client.ws_connect("/chat/ws", headers={"X-Forwarded-For": address})

    before = []
    for n in range(SOCKETS + 1):  # their conversations, opened each from its own address
        ws = await page(f"192.0.2.{n + 1}")
        before.append(await hello(ws))
        await ws.close()
    young_conversation = before[-1]["conversation"]
    cancel = store.cancel_timers
    entered: list[str] = []
    release = asyncio.Event()

    async def held(conversation_id: str, kind: TimerKind | None = None) -> None:
        if kind is TimerKind.WEBCHAT_GONE and not release.is_set():
            entered.append(conversation_id)
            await release.wait()
        await cancel(conversation_id, kind)

    async def until(condition) -> None:  # type: ignore[no-untyped-def]
        while not condition():
            await asyncio.sleep(0.01)

    store.cancel_timers = held  # type: ignore[method-assign]
    pages = []
    try:
        for session in before[:SOCKETS]:
            pages.append(ws := await page(TROLL))
            await ws.send_json({"type": "hello", "token": session["token"],
                                "conversation": session["conversation"], "language": "fr"})  # fmt: skip
        await asyncio.wait_for(until(lambda: len(entered) + hub.hellos_waiting == SOCKETS), 20)
        pages.append(ws := await page(YOUNG))
        await ws.send_json({"type": "hello", "token": before[-1]["token"], "conversation": young_conversation,
                            "language": "fr"})  # fmt: skip
        await asyncio.wait_for(until(lambda: len(entered) + hub.hellos_waiting == SOCKETS + 1), 20)
        troll_in = len([c for c in entered if c != young_conversation])
        assert young_conversation in entered, (
            f"the young person's hello waits behind the other network's: {troll_in} of it in progress,"
            f" {hub.hellos_waiting} waiting"
        )
        assert (troll_in, hub.hellos_waiting) == (HELLOS_PER_NETWORK, SOCKETS - HELLOS_PER_NETWORK)
        exposition = await (await client.get("/metrics")).text()
        assert f"gateway_webchat_hellos_waiting {float(SOCKETS - HELLOS_PER_NETWORK)}" in exposition

        release.set()
        sessions = [(await receive_until(ws, lambda f: f["type"] == "session"))[-1] for ws in pages]
        assert [s["conversation"] for s in sessions] == [s["conversation"] for s in before]
        assert hub.hellos_waiting == 0
    finally:
        release.set()
        store.cancel_timers = cancel  # type: ignore[method-assign]
        for ws in pages:
            await ws.close()
