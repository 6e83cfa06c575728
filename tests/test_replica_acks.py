"""``GATEWAY_REDIS_REPLICA_ACKS``: a message is acknowledged only once its writes reached a replica, so a failover
keeps every message a provider had its 200 for (gateway/store/redis_replicas.py, docs/deployment.md).

Real processes: a primary and its replica (``redis-server``), the replica replicating through a proxy of the test
(tests/losing_proxy.py) whose :meth:`~tests.losing_proxy.LosingProxy.blackhole` stops the replication stream, both
ways, as a replica frozen or cut off does. A SIGSTOP of the replica was tried first: what the primary had sent before
its kill waited in the stopped replica's socket and was read once it went on, so the replica sometimes had the
message after all and the lost message of the setting off did not show every time; the proxy's held bytes never
reach it. The app reaches the primary through another proxy, moved to the promoted replica on the failover (a
virtual IP, which docs/deployment.md says works with a ``redis://`` URL); the promoted replica gets a replica of its
own, as a second replica of a Sentinel deployment follows the new primary.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
import redis

from gateway.app import STORE, create_app
from gateway.messages import ChannelName
from gateway.settings import Settings
from gateway.store import Author
from gateway.store.redis import RedisStore
from gateway.store.redis_replicas import MARK
from gateway.testing import FakeGraphAPI, messenger_body, messenger_message, signed_messenger
from tests.conftest import PASSWORD, add_listener, login
from tests.e2e.channel_support import RunningClock
from tests.losing_proxy import LosingProxy, losing_proxy
from tests.store.conftest import _redis_server, _stop
from tests.test_uploads import photo

pytestmark = pytest.mark.redis

Client = Any
SECRET = "replica-acks-app-secret"
PSID = "7300000000000001"
DEADLINE = 40.0  # every wait on a condition: a busy machine


def _replication(port: int) -> dict[str, str]:
    with redis.Redis(host="127.0.0.1", port=port, socket_timeout=2, decode_responses=True) as client:
        return {key: str(value) for key, value in client.info("replication").items()}


def _command(port: int, *args: str) -> None:
    with redis.Redis(host="127.0.0.1", port=port, socket_timeout=2) as client:
        client.execute_command(*args)


async def until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    try:
        async with asyncio.timeout(DEADLINE):
            while not await condition():
                await asyncio.sleep(0.05)
    except TimeoutError:
        pytest.fail(f"not within {DEADLINE:.0f} s: {what}")


class Servers:
    """A primary, its replica behind :attr:`link` (the replication path), and :attr:`front`, the app's way in."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.processes: list[Any] = []
        self.primary_port = self.replica_port = 0
        self.link: LosingProxy | None = None
        self.front: LosingProxy | None = None

    def server(self, name: str, *options: str) -> int:
        directory = self.directory / name
        directory.mkdir()
        process, port = _redis_server(directory, *options)
        self.processes.append(process)
        return port

    async def in_step(self, replica: int, primary: int) -> bool:
        def offsets() -> tuple[int, int]:
            at_primary = int(_replication(primary)["master_repl_offset"])
            found = _replication(replica)
            linked = found.get("master_link_status") == "up"
            return int(found.get("slave_repl_offset", -1)) if linked else -1, at_primary

        at_replica, at_primary = await asyncio.to_thread(offsets)
        return at_replica >= at_primary

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                _stop(process)


@contextlib.asynccontextmanager
async def servers(directory: Path) -> AsyncIterator[Servers]:
    found = Servers(directory)
    try:
        found.primary_port = found.server("primary")
        async with losing_proxy(f"redis://127.0.0.1:{found.primary_port}/0") as link:
            found.link = link
            link_port = int(link.url.rsplit(":", 1)[1].split("/")[0])
            found.replica_port = await asyncio.to_thread(found.server, "replica", "--replicaof", "127.0.0.1",
                                                         str(link_port))  # fmt: skip
            await until(lambda: found.in_step(found.replica_port, found.primary_port), "the replica in step")
            async with losing_proxy(f"redis://127.0.0.1:{found.primary_port}/0") as front:
                found.front = front
                yield found
    finally:
        await asyncio.to_thread(found.stop)


@pytest.fixture
async def found(tmp_path: Path) -> AsyncIterator[Servers]:
    """The servers, asked for before ``aiohttp_client``: pytest stops the app first, while its Redis still answers
    (stopped after the app, its shutdown against a Redis gone waited the outbox's whole drain: ~10 s a test)."""
    async with servers(tmp_path) as running:
        yield running


def _settings(settings: Settings, graph: FakeGraphAPI, store: str, acks: int) -> Settings:
    return settings.replace(
        store=store, messenger_app_secret=SECRET, messenger_verify_token="verify",
        messenger_page_access_token="page-token", messenger_api_url=graph.url + "/v23.0",
        # the replica is reached through the test's proxy, in the test's own event loop: on a busy machine a replica
        # in step took more than 0.3 s to confirm (the suite under load, 2026-12-05); a stopped one is waited 3 s
        redis_replica_acks=acks, redis_replica_ack_timeout=3.0,
    )  # fmt: skip


async def _post(client: Client, text: str, mid: str, psid: str = PSID) -> int:
    raw, headers = signed_messenger(SECRET, messenger_body([messenger_message(psid, text, mid=mid)]))
    response = await client.post("/webhooks/messenger", data=raw, headers=headers)
    return int(response.status)


async def _said(store: RedisStore, psid: str = PSID) -> Counter[str]:
    found = await store.find_active_conversation(ChannelName.MESSENGER, psid)
    if found is None:
        return Counter()
    return Counter(e.text for e in await store.transcript(found.id) if e.author == Author.USER)


async def _said_once(store: RedisStore, psid: str, text: str) -> bool:
    return (await _said(store, psid))[text] >= 1


@pytest.mark.parametrize("acks", [1, 0], ids=["acks-on", "acks-off"])
async def test_a_message_acknowledged_before_the_primary_dies_is_on_the_promoted_replica(
    found: Servers,
    aiohttp_client: Callable[..., Awaitable[Client]],
    settings: Settings,
    graph: FakeGraphAPI,
    caplog: pytest.LogCaptureFixture,
    acks: int,
) -> None:
    caplog.set_level(logging.INFO)
    assert found.link is not None and found.front is not None
    client = await aiohttp_client(await create_app(_settings(settings, graph, found.front.url, acks),
                                                   clock=RunningClock(), worker_poll_seconds=0.05))  # fmt: skip
    assert await _post(client, "bonjour", "m_1") == 200
    await until(lambda: found.in_step(found.replica_port, found.primary_port), "the first message replicated")

    found.link.blackhole()  # nothing reaches the replica any more, and no acknowledgement comes back from it
    held = await _post(client, "on me fait du chantage", "m_2")
    ready = await client.get("/readyz")
    readiness = (ready.status, (await ready.json())["store"])
    await asyncio.to_thread(found.processes[0].kill)  # kill -9 of the primary: what it did not send is gone
    await asyncio.to_thread(found.processes[0].wait)
    await asyncio.to_thread(_command, found.replica_port, "REPLICAOF", "NO", "ONE")  # the failover
    second = await asyncio.to_thread(found.server, "replica2", "--replicaof", "127.0.0.1", str(found.replica_port))
    await until(lambda: found.in_step(second, found.replica_port), "the new primary's replica in step")
    found.front.point_at(f"redis://127.0.0.1:{found.replica_port}/0")
    found.front.reset_all()

    store = client.app[STORE]
    if acks:
        assert held == 503  # not acknowledged: Meta sends it again, to the new primary
        assert readiness == (503, "replicas_behind")

        async def redelivered() -> bool:
            with contextlib.suppress(OSError):
                return await _post(client, "on me fait du chantage", "m_2") == 200
            return False

        await until(redelivered, "the redelivery acknowledged by the new primary")
        assert await _post(client, "on me fait du chantage", "m_2") == 200  # once more (a provider's retry)
        said = await _said(store)
        assert said["bonjour"] == 1
        assert said["on me fait du chantage"] == 1  # processed once, after the failover
        assert await _post(client, "merci", "m_3") == 200  # the new primary and its replica: messages flow
        logged = "\n".join(r.getMessage() for r in caplog.records)
        assert "alert: acknowledgements held" in logged
        assert PSID not in logged and "chantage" not in logged
        metrics = await (await client.get("/metrics")).text()
        assert 'gateway_replica_acks_total{outcome="behind"}' in metrics
    else:
        assert held == 200  # acknowledged: Meta will never send it again...
        said = await _said(store)
        assert said["bonjour"] == 1
        assert said["on me fait du chantage"] == 0  # ...and the failover lost it: the gap the setting closes


async def test_a_redelivery_after_a_503_is_processed_once_when_the_replica_comes_back(
    found: Servers, aiohttp_client: Callable[..., Awaitable[Client]], settings: Settings, graph: FakeGraphAPI
) -> None:
    assert found.link is not None and found.front is not None
    client = await aiohttp_client(await create_app(_settings(settings, graph, found.front.url, 1),
                                                   clock=RunningClock(), worker_poll_seconds=0.05))  # fmt: skip
    found.link.blackhole()
    assert await _post(client, "je suis harcelé", "m_1") == 503  # on the primary, not on the replica
    found.link.resume()  # the replica catches up: the redelivery finds the message processed already

    async def acknowledged() -> bool:
        return await _post(client, "je suis harcelé", "m_1") == 200

    await until(acknowledged, "the redelivery acknowledged")
    store = client.app[STORE]
    assert (await _said(store))["je suis harcelé"] == 1
    ready = await client.get("/readyz")
    assert ready.status == 200 and (await ready.json())["store"] == "ok"


async def test_with_replicas_in_step_messages_flow_once_each_and_a_round_covers_many(
    found: Servers, aiohttp_client: Callable[..., Awaitable[Client]], settings: Settings, graph: FakeGraphAPI
) -> None:
    assert found.front is not None
    client = await aiohttp_client(await create_app(_settings(settings, graph, found.front.url, 1),
                                                   clock=RunningClock(), worker_poll_seconds=0.05))  # fmt: skip
    senders = [f"74000000000000{n:02d}" for n in range(12)]
    statuses = await asyncio.gather(*(_post(client, f"salut {n}", f"m_{n}", psid)
                                      for n, psid in enumerate(senders)))  # fmt: skip
    assert statuses == [200] * len(senders)
    store = client.app[STORE]
    for n, psid in enumerate(senders):  # acknowledged once in the inbox; recorded by then or just after
        await until(lambda n=n, psid=psid: _said_once(store, psid, f"salut {n}"), f"message {n} recorded")
    for n, psid in enumerate(senders):
        assert (await _said(store, psid))[f"salut {n}"] == 1  # once, not twice
    # concurrent callers share a round: those of one turn of the loop, one round trip to the replica
    metrics = await (await client.get("/metrics")).text()
    before = _counter(metrics, "gateway_replica_rounds_total")
    await asyncio.gather(*(store.replicated() for _ in range(50)))
    after = _counter(await (await client.get("/metrics")).text(), "gateway_replica_rounds_total")
    assert after - before == 1


def _counter(metrics: str, name: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


async def _first_session(client: Client, hello: dict[str, Any]) -> dict[str, Any] | None:
    """The page's session frame for ``hello``; None when the socket closed first (1013: the page tries again)."""
    async with client.ws_connect("/chat/ws") as ws:
        await ws.send_json(hello)
        while True:
            message = await ws.receive(timeout=DEADLINE)
            if message.type != aiohttp.WSMsgType.TEXT:
                return None
            frame = json.loads(message.data)
            if frame["type"] == "session":
                return cast(dict[str, Any], frame)


@pytest.mark.parametrize("acks", [1, 0], ids=["acks-on", "acks-off"])
async def test_a_web_chat_page_is_never_told_its_conversation_ended_after_a_failover_lost_it(
    found: Servers,
    aiohttp_client: Callable[..., Awaitable[Client]],
    settings: Settings,
    graph: FakeGraphAPI,
    acks: int,
) -> None:
    """A young person's page opens its conversation while the replica lags; the primary dies, the replica is
    promoted. The page must not be told "closed" (an erased conversation's answer, ``ChatSession._show_gone``) for a
    conversation nobody ended: with ``GATEWAY_REDIS_REPLICA_ACKS`` the session frame naming a conversation waits for
    the replicas, as an ack does. Until 2026-12-07 it did not: the page learnt an id the new primary never had, and
    its reconnection was answered "closed", nothing opened (silenced). Without the setting (``acks-off``, the
    default) the session frame does not wait and the failover loses the conversation: the hello naming it finds no
    erasure's marker (``KeyedHash.erased_conversation``) and opens a conversation that works, the page's words taken
    in it; until 2026-12-07 it was answered "closed" as after an erasure (the gap docs/webchat-protocol.md named)."""
    assert found.link is not None and found.front is not None
    client = await aiohttp_client(await create_app(_settings(settings, graph, found.front.url, acks),
                                                   clock=RunningClock(), worker_poll_seconds=0.05))  # fmt: skip
    found.link.blackhole()  # the replica lags: nothing reaches it
    opening = "opening-key-of-the-page-0001"
    first = await _first_session(client, {"type": "hello", "opening": opening, "language": "fr"})
    await asyncio.to_thread(found.processes[0].kill)  # kill -9 of the primary
    await asyncio.to_thread(found.processes[0].wait)
    await asyncio.to_thread(_command, found.replica_port, "REPLICAOF", "NO", "ONE")  # the failover
    second = await asyncio.to_thread(found.server, "replica2", "--replicaof", "127.0.0.1", str(found.replica_port))
    await until(lambda: found.in_step(second, found.replica_port), "the new primary's replica in step")
    found.front.point_at(f"redis://127.0.0.1:{found.replica_port}/0")
    found.front.reset_all()

    # the page comes back as chat.js does: its token and conversation when it had its session, else its key
    again = (
        {"type": "hello", "opening": opening, "language": "fr"}
        if first is None
        else {"type": "hello", "token": first["token"], "conversation": first["conversation"], "language": "fr"}
    )
    back: dict[str, Any] | None = None

    async def answered() -> bool:
        nonlocal back
        with contextlib.suppress(OSError, aiohttp.ClientError):
            back = await _first_session(client, again)
        return back is not None

    await until(answered, "the page's session after the failover")
    assert back is not None and back["status"] != "closed", (first, back)  # acks-off before: 'closed'
    if not acks:
        assert first is not None and back["conversation"] != first["conversation"]  # lost: a new one
    async with client.ws_connect("/chat/ws") as ws:  # the page's words waiting in its box: taken
        await ws.send_json({"type": "hello", "token": back["token"], "conversation": back["conversation"],
                            "language": "fr"})  # fmt: skip
        await ws.send_json({"type": "message", "id": "m1", "text": "tu es là ?"})
        async with asyncio.timeout(DEADLINE):
            while (frame := await ws.receive_json())["type"] != "ack" and frame["type"] != "error":
                pass
    assert frame == {"type": "ack", "id": "m1"}, frame
    said = [e.text for e in await client.app[STORE].transcript(back["conversation"]) if e.author == Author.USER]
    assert said == ["tu es là ?"]


async def test_a_web_chat_image_is_answered_201_only_once_the_replicas_have_it(
    found: Servers, aiohttp_client: Callable[..., Awaitable[Client]], settings: Settings, graph: FakeGraphAPI
) -> None:
    """``POST /chat/upload``'s 201 is the image's acknowledgement (the page shows it sent and forgets it): with
    ``GATEWAY_REDIS_REPLICA_ACKS`` it waits for the replicas as the ``ack`` of a text does; behind, 503 (the page
    sends it again under the same id: processed once). Until 2026-12-07 the 201 did not wait: a failover then could
    lose an image the page had shown as sent."""
    assert found.link is not None and found.front is not None
    client = await aiohttp_client(await create_app(_settings(settings, graph, found.front.url, 1),
                                                   clock=RunningClock(), worker_poll_seconds=0.05))  # fmt: skip
    session = await _first_session(client, {"type": "hello", "opening": "opening-key-of-the-page-0002",
                                            "language": "fr"})  # fmt: skip
    assert session is not None
    headers = {"X-Chat-Token": session["token"], "X-Upload-Id": "u1"}
    found.link.blackhole()  # the replica lags: nothing reaches it
    held = await client.post("/chat/upload", data=photo(), headers=headers)
    assert held.status == 503, await held.text()
    found.link.resume()  # the replica catches up: the page's retry, same id, finds the image processed already

    async def acknowledged() -> bool:
        return (await client.post("/chat/upload", data=photo(), headers=headers)).status == 201

    await until(acknowledged, "the image's retry acknowledged")
    entries = await client.app[STORE].transcript(session["conversation"])
    assert len([e for e in entries if e.attachments]) == 1  # once, not twice


def _commands(port: int) -> set[str]:
    """The commands the server ran since its last ``CONFIG RESETSTAT`` (``INFO commandstats``), by name."""
    with redis.Redis(host="127.0.0.1", port=port, socket_timeout=2, decode_responses=True) as client:
        return {name.removeprefix("cmdstat_") for name in client.info("commandstats")}


@pytest.mark.parametrize("acks", [1, 0], ids=["acks-on", "acks-off"])
async def test_a_console_write_is_answered_only_once_the_replicas_have_it(
    found: Servers,
    aiohttp_client: Callable[..., Awaitable[Client]],
    settings: Settings,
    graph: FakeGraphAPI,
    caplog: pytest.LogCaptureFixture,
    acks: int,
) -> None:
    """A console write's success (a note, an erasure, a login...) is its acknowledgement: with
    ``GATEWAY_REDIS_REPLICA_ACKS`` it waits for the replicas as a webhook's 200 does; behind, 503 ``unavailable`` with
    ``Retry-After``, counted in ``gateway_replica_acks_total``, the action made on the primary. Until 2026-12-07 nothing
    under gateway/console/ waited: a supervisor's erasure answered 200 while the replica lagged, and a failover then
    lost it (bench/README.md, seed 101). Without the setting, nothing waits: no ``WAIT`` is sent at all."""
    caplog.set_level(logging.INFO)
    assert found.link is not None and found.front is not None
    client = await aiohttp_client(await create_app(_settings(settings, graph, found.front.url, acks),
                                                   clock=RunningClock(), worker_poll_seconds=0.05))  # fmt: skip
    assert await _post(client, "bonjour", "m_1") == 200
    store = client.app[STORE]
    conversation = await store.find_active_conversation(ChannelName.MESSENGER, PSID)
    assert conversation is not None
    await add_listener(client, "sam", supervisor=True)
    await login(client, "sam")
    await until(lambda: found.in_step(found.replica_port, found.primary_port), "the replica in step")
    await asyncio.to_thread(_command, found.primary_port, "CONFIG", "RESETSTAT")

    found.link.blackhole()  # the replica lags: nothing reaches it
    notes = f"/api/conversations/{conversation.id}/notes"
    note = {"text": "rappeler demain", "id": "note-1"}
    held = await client.post(notes, json=note)
    if not acks:
        assert held.status == 201, await held.text()  # answered at once...
        assert "wait" not in await asyncio.to_thread(_commands, found.primary_port)  # ...with no round of WAIT
        return
    assert held.status == 503, await held.text()  # before 2026-12-07: 201, and lost by a failover
    assert held.headers["Retry-After"]
    assert await held.json() == {"error": "unavailable", "message": "try again shortly"}
    assert "wait" in await asyncio.to_thread(_commands, found.primary_port)  # what the setting off never sends
    erase = f"/api/conversations/{conversation.id}/erase"
    erased = await client.post(erase, json={"confirm": True})
    assert erased.status == 503, await erased.text()  # the soak's erasure: made on the primary, not answered 200
    again = await client.post("/api/session", json={"name": "sam", "password": PASSWORD})
    assert again.status == 503, await again.text()  # a login's session too
    metrics = await (await client.get("/metrics")).text()
    assert 'gateway_replica_acks_total{outcome="behind"}' in metrics
    found.link.resume()  # the replica catches up

    async def answered(path: str, body: dict[str, Any], status: int) -> bool:
        return (await client.post(path, json=body)).status == status

    await until(lambda: answered("/api/session", {"name": "sam", "password": PASSWORD}, 200), "the login's retry")
    await until(lambda: answered(erase, {"confirm": True}, 404), "the erasure's retry: made already, nothing left")
    assert await store.get_conversation(conversation.id) is None
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert PSID not in logged and "bonjour" not in logged and "rappeler" not in logged


async def test_a_console_note_sent_again_after_a_503_is_recorded_once(
    found: Servers, aiohttp_client: Callable[..., Awaitable[Client]], settings: Settings, graph: FakeGraphAPI
) -> None:
    """The console sends a note again under its id after a 503: made on the primary already, the retry is answered
    with it (201), recorded once."""
    assert found.link is not None and found.front is not None
    client = await aiohttp_client(await create_app(_settings(settings, graph, found.front.url, 1),
                                                   clock=RunningClock(), worker_poll_seconds=0.05))  # fmt: skip
    assert await _post(client, "bonjour", "m_1") == 200
    store = client.app[STORE]
    conversation = await store.find_active_conversation(ChannelName.MESSENGER, PSID)
    assert conversation is not None
    await add_listener(client, "sam", supervisor=True)
    await login(client, "sam")
    found.link.blackhole()
    notes, note = f"/api/conversations/{conversation.id}/notes", {"text": "rappeler demain", "id": "note-1"}
    assert (await client.post(notes, json=note)).status == 503
    found.link.resume()

    async def recorded() -> bool:
        return (await client.post(notes, json=note)).status == 201

    await until(recorded, "the note's retry acknowledged")
    written = [e for e in await store.transcript(conversation.id) if e.author == Author.NOTE]
    assert [e.text for e in written] == ["sam: rappeler demain"]  # once, not twice
    found.link.blackhole()  # a logout while the replica lags: 503, and the cookie removed all the same
    out = await client.delete("/api/session")
    assert out.status == 503, await out.text()
    assert out.cookies["hg_session"].value == "" and out.cookies["hg_session"]["max-age"] == "0"


PARTNER_KEY = "p" * 30


@pytest.mark.parametrize("acks", [1, 0], ids=["acks-on", "acks-off"])
async def test_a_quick_exit_and_a_referral_link_are_answered_only_once_the_replicas_have_them(
    found: Servers, aiohttp_client: Callable[..., Awaitable[Client]], settings: Settings, graph: FakeGraphAPI,
    acks: int,
) -> None:  # fmt: skip
    """``POST /chat/leave`` (the quick exit) and ``POST /chat/referral`` (a partner's link exchanged for its
    conversation) answer their success only once the replicas have what they wrote, as a web chat message's ``ack``
    does; behind, 503 with ``Retry-After``, the write made on the primary, its retry answered the same. Until
    2026-12-07 both answered at once (204, 200): a failover then brought back the conversation the young person had
    left, or lost the link's exchange. Without the setting, nothing waits: no ``WAIT`` is sent."""
    assert found.link is not None and found.front is not None
    configured = _settings(settings, graph, found.front.url, acks).replace(partner_keys=f"116006={PARTNER_KEY}")
    client = await aiohttp_client(await create_app(configured, clock=RunningClock(), worker_poll_seconds=0.05))
    store = client.app[STORE]
    session = await _first_session(client, {"type": "hello", "opening": "opening-key-of-the-page-0003",
                                            "language": "fr"})  # fmt: skip
    assert session is not None
    created = await client.post("/api/partners/116006/referrals", json={"summary": "Jeune de 15 ans, harcelée."},
                                headers={"Authorization": "Bearer " + PARTNER_KEY})  # fmt: skip
    assert created.status == 201, await created.text()
    exchange = {"code": (await created.json())["link"].split("#", 1)[1], "key": "page-key-of-the-referral-0001"}
    await until(lambda: found.in_step(found.replica_port, found.primary_port), "the replica in step")
    await asyncio.to_thread(_command, found.primary_port, "CONFIG", "RESETSTAT")

    found.link.blackhole()  # the replica lags: nothing reaches it
    left = await client.post("/chat/leave", json={"token": session["token"]})
    claimed = await client.post("/chat/referral", json=exchange)
    if not acks:
        assert (left.status, claimed.status) == (204, 200)  # answered at once...
        assert "wait" not in await asyncio.to_thread(_commands, found.primary_port)  # ...with no round of WAIT
        return
    assert left.status == 503, await left.text()  # before 2026-12-07: 204, and undone by a failover
    assert left.headers["Retry-After"]
    assert claimed.status == 503, await claimed.text()  # before 2026-12-07: 200, and lost by a failover
    assert claimed.headers["Retry-After"]
    assert await store.find_active_conversation(ChannelName.WEBCHAT, session["token"]) is None  # made on the primary
    found.link.resume()  # the replica catches up: the retries are answered what the first requests made

    async def answered(path: str, body: dict[str, Any], status: int) -> bool:
        return (await client.post(path, json=body)).status == status

    await until(lambda: answered("/chat/leave", {"token": session["token"]}, 204), "the quick exit's retry")
    await until(lambda: answered("/chat/referral", exchange, 200), "the link's retry by the same page")


async def test_a_console_write_whose_replicas_round_fails_is_answered_503_and_a_logout_still_removes_its_cookie(
    found: Servers, aiohttp_client: Callable[..., Awaitable[Client]], settings: Settings, graph: FakeGraphAPI,
) -> None:  # fmt: skip
    """The console middleware's ``StoreError`` branch: the logout made on the primary, the round of ``WAIT`` that
    follows loses its connection (cut with an RST once Redis answered: a network blip), so nobody knows whether the
    replicas have it. Answered 503 ``unavailable`` with ``Retry-After``, counted as the store's failure, and the cookie
    removed all the same (the session is gone on the primary); the ``_errors`` middleware's own 503, which such a
    failure would reach without the branch, carries no cookie: the page kept a cookie for a session ended."""
    assert found.front is not None
    client = await aiohttp_client(await create_app(_settings(settings, graph, found.front.url, 1),
                                                   clock=RunningClock(), worker_poll_seconds=0.05))  # fmt: skip
    await add_listener(client, "sam", supervisor=True)
    await login(client, "sam")
    found.front.lose(MARK.encode(), b"WAIT")  # the next round of WAIT: run by Redis, its answer never comes back
    out = await client.delete("/api/session")
    assert found.front.lost == 1  # the round's connection was cut, not another command's
    assert out.status == 503, await out.text()
    assert out.headers["Retry-After"]
    assert await out.json() == {"error": "unavailable", "message": "try again shortly"}
    assert "hg_session" in out.cookies, out.headers  # without the branch: no Set-Cookie at all
    assert out.cookies["hg_session"].value == "" and out.cookies["hg_session"]["max-age"] == "0"
    metrics = await (await client.get("/metrics")).text()
    assert 'gateway_store_failures_total{error="ConnectionError",part="http"}' in metrics, metrics
    assert (await client.get("/api/me")).status == 401  # the session ended on the primary: the cookie is gone


async def test_a_partner_referral_sent_again_after_a_503_under_its_idempotency_key_queues_one_conversation(
    found: Servers, aiohttp_client: Callable[..., Awaitable[Client]], settings: Settings, graph: FakeGraphAPI
) -> None:
    """A partner's referral answered 503 while the replica lags (made on the primary) and sent again under the same
    ``Idempotency-Key`` once it caught up: 200 with the first one's link, one conversation waiting. Until 2026-12-07
    the route took no such key: the retry was answered 201 and a second conversation waited, the first one's link
    never given (docs/deployment.md)."""
    assert found.link is not None and found.front is not None
    configured = _settings(settings, graph, found.front.url, 1).replace(partner_keys=f"116006={PARTNER_KEY}")
    client = await aiohttp_client(await create_app(configured, clock=RunningClock(), worker_poll_seconds=0.05))
    path, body = "/api/partners/116006/referrals", {"summary": "Jeune de 15 ans, harcelée."}
    headers = {"Authorization": "Bearer " + PARTNER_KEY, "Idempotency-Key": "9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d"}
    found.link.blackhole()  # the replica lags: nothing reaches it
    held = await client.post(path, json=body, headers=headers)
    assert held.status == 503, await held.text()
    found.link.resume()
    answers: list[tuple[int, dict[str, Any]]] = []

    async def answered() -> bool:
        response = await client.post(path, json=body, headers=headers)
        answers.append((response.status, await response.json()))
        return response.status != 503

    await until(answered, "the referral's retry answered")
    status, answer = answers[-1]
    assert status == 200, answers  # before 2026-12-07: 201, a second conversation
    store = client.app[STORE]
    (waiting,) = await store.waiting()  # one conversation, the one the link opens
    conversation = await store.get_conversation(waiting.conversation_id)
    assert conversation is not None and conversation.pseudonym == answer["pseudonym"]
    exchanged = await client.post("/chat/referral", json={"code": answer["link"].split("#", 1)[1],
                                                          "key": "page-key-of-the-referral-0002"})  # fmt: skip
    assert exchanged.status == 200, await exchanged.text()
