"""Young people behind a shared address (a school's wifi, a foster home, a mobile carrier's CGNAT) are not one
client, and a troll rotating through his own IPv6 /64 is (``gateway/networks.py``, ``Gate.new_chat``).

Every test drives the real app (aiohttp test server, the web chat websocket, the real store: SQLite and Redis).
The client's address is the last hop of ``X-Forwarded-For`` (``GATEWAY_CLIENT_ADDRESS_HEADER``), as behind the
reverse proxy of a deployment. A bad network setting stops the start-up, named: ``tests/test_ratelimit.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from gateway.app import STORE
from gateway.conversation import Priority, Status
from gateway.settings import Settings
from tests.conftest import AppFactory
from tests.store.conftest import STORES, on_store, redis_url  # noqa: F401  (redis_url: the session's server)
from tests.test_security import (
    DANGER,
    is_notice,
    keeps_the_emergency_numbers,
    metric,
    open_chat,
    refused,
    send_message,
)

Client = TestClient[web.Request, web.Application]
SCHOOL = "198.51.100.7"  # one public IPv4 address in front of a class


@pytest.fixture(params=STORES)
def where(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """The settings on SQLite, or on the session's Redis (emptied), with the address taken from X-Forwarded-For."""
    return on_store(request, settings.replace(client_address_header="X-Forwarded-For"))


@pytest.fixture
async def sockets() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as stack:
        yield stack


async def chat_from(client: Client, stack: AsyncExitStack, address: str) -> tuple[Any, dict[str, Any]]:
    """A web chat socket from ``address`` (kept open until the test ends) and its hello's answer."""
    ws = await stack.enter_async_context(client.ws_connect("/chat/ws", headers={"X-Forwarded-For": address}))
    return ws, await open_chat(ws)


async def opened(client: Client, stack: AsyncExitStack, *addresses: str) -> list[bool]:
    """For each address in turn, whether its hello opened a session (else: the calm notice)."""
    answers = [(await chat_from(client, stack, address))[1] for address in addresses]
    assert all(a["type"] == "session" or keeps_the_emergency_numbers(a["entry"]["text"]) for a in answers)
    return [a["type"] == "session" for a in answers]


async def test_five_pupils_behind_one_address_all_get_a_session(
    make_client: AppFactory, where: Settings, sockets: AsyncExitStack
) -> None:
    """Measured before: the fourth pupil of a class behind the school's address got only the notice."""
    client = await make_client(where)
    assert await opened(client, sockets, *[SCHOOL] * 5) == [True] * 5
    assert len(await client.app[STORE].conversations_by_status(Status.BOT)) == 5


async def test_the_cap_still_refuses_beyond_the_default(
    make_client: AppFactory, where: Settings, sockets: AsyncExitStack
) -> None:
    client = await make_client(where)
    cap = where.max_waiting_per_client
    assert await opened(client, sockets, *[SCHOOL] * (cap + 2)) == [True] * cap + [False] * 2
    assert await metric(client, "gateway_refused", reason="client_full") == 2


async def test_ipv6_addresses_of_one_64_are_one_client_and_two_64s_two(
    make_client: AppFactory, where: Settings, sockets: AsyncExitStack
) -> None:
    """A troll rotating through his /64 is one client: for the cap and for the rate of new chats."""
    client = await make_client(where.replace(max_waiting_per_client=1))
    assert await opened(client, sockets, "2001:db8:1:2::1", "2001:db8:1:2:ffff::9", "2001:db8:1:3::1") == [
        True, False, True,
    ]  # fmt: skip
    rated = await make_client(where.replace(max_waiting_per_client=50, limit_chats_per_address="1/hour"))
    assert await opened(rated, sockets, "2001:db8:7:2::1", "2001:db8:7:2::2", "2001:db8:7:3::1") == [True, False, True]
    assert await metric(rated, "gateway_rate_limited", limit="chats_per_address") == 1


async def test_an_ipv4_mapped_address_counts_as_its_ipv4_address(
    make_client: AppFactory, where: Settings, sockets: AsyncExitStack
) -> None:
    client = await make_client(where.replace(max_waiting_per_client=1))
    assert await opened(client, sockets, "::ffff:" + SCHOOL, SCHOOL, "203.0.113.9") == [True, False, True]


async def test_a_declared_shared_network_gets_its_own_cap(
    make_client: AppFactory, where: Settings, sockets: AsyncExitStack
) -> None:
    client = await make_client(where.replace(
        max_waiting_per_client=1, shared_networks="198.51.100.0/28, 2001:db8:5::/48", max_waiting_per_shared_network=3,
    ))  # fmt: skip
    assert await opened(client, sockets, *[SCHOOL] * 4) == [True, True, True, False]
    assert await opened(client, sockets, "2001:db8:5:1::1", "2001:db8:5:1::1") == [True, True]
    assert await opened(client, sockets, "203.0.113.9", "203.0.113.9") == [True, False]  # not declared: the usual cap


async def test_a_risky_first_message_from_a_full_network_opens_the_chat_with_its_flag(
    make_client: AppFactory, where: Settings, sockets: AsyncExitStack
) -> None:
    """Escalate, never silence: the cap delays a young person, never sends away one who writes they are in danger."""
    client = await make_client(where.replace(max_waiting_per_client=1, limit_risky_chats_per_network="1/hour"))
    assert await opened(client, sockets, SCHOOL) == [True]
    ws, answer = await chat_from(client, sockets, SCHOOL)
    assert is_notice(answer)
    frames = await send_message(ws, "m1", DANGER)
    assert frames[-1] == {"type": "ack", "id": "m1"} and any(f["type"] == "session" for f in frames)
    waiting = await client.app[STORE].waiting()
    assert [(w.priority, w.flag.risk if w.flag else None) for w in waiting] == [(Priority.URGENT, "suicide")]
    assert await metric(client, "gateway_refusal_overridden", reason="client_full", source="keywords") == 1
    calm, answer = await chat_from(client, sockets, SCHOOL)  # a message that reads no risk: the notice again
    assert is_notice(answer) and refused((await send_message(calm, "m2", "bonjour"))[-1])
    again, answer = await chat_from(client, sockets, SCHOOL)  # beyond GATEWAY_LIMIT_RISKY_CHATS_PER_NETWORK
    assert is_notice(answer) and refused((await send_message(again, "m3", DANGER))[-1])
    assert len(await client.app[STORE].waiting()) == 1
    assert await metric(client, "gateway_rate_limited", limit="risky_chats_per_network") == 1


async def test_an_unparsable_forwarded_address_is_a_client_of_its_own(
    make_client: AppFactory, settings: Settings, sockets: AsyncExitStack
) -> None:
    client = await make_client(settings.replace(client_address_header="X-Forwarded-For", max_waiting_per_client=1))
    assert await opened(client, sockets, "not an address", "not an address", "unknown") == [True, False, True]


async def test_messages_held_by_a_full_network_do_not_use_up_the_rates_so_a_freed_place_opens(
    make_client: AppFactory, where: Settings, sockets: AsyncExitStack
) -> None:
    """A pupil behind a full school network who keeps writing ("allo ?", "y a qqn ?") while the notice shows must get
    the next free place: the refused tries count against no rate (before: each consumed the browser's 6 chats an
    hour and the network's 30, so the pupil stayed refused for the hour after a place was freed)."""
    client = await make_client(where.replace(
        max_waiting_per_client=1, limit_chats_per_browser="3/hour", limit_chats_per_address="4/hour",
    ))  # fmt: skip
    first, answer = await chat_from(client, sockets, SCHOOL)
    assert answer["type"] == "session"
    held, answer = await chat_from(client, sockets, SCHOOL)
    assert is_notice(answer)
    for i in range(6):  # more tries than either rate allows
        assert refused((await send_message(held, f"h{i}", "allo ? y a quelqu'un ?"))[-1])
    for limit in ("chats_per_browser", "chats_per_address"):
        assert await metric(client, "gateway_rate_limited", limit=limit) == 0
    await send_message(first, "f1", "stop")  # the first pupil leaves: the place is free
    store = client.app[STORE]
    assert not await store.conversations_by_status(Status.BOT)
    frames = await send_message(held, "h6", "bonjour")
    assert frames[-1] == {"type": "ack", "id": "h6"} and any(f["type"] == "session" for f in frames)
    assert len(await store.conversations_by_status(Status.BOT)) == 1
