"""A young person held by a listener who left their console (a browser closed, a session expired, a laptop asleep)
goes back to the queue by itself once that listener has had no console open on any instance for
``GATEWAY_HELD_HANDBACK_SECONDS``: at their place and priority, told once that the listener was disconnected, then
their place (the queue's timer, re-armed as by every hand-back). A listener back before then keeps the conversation;
several instances hand it back once and tell it once; 0 turns it off.

The real app (SQLite, or two instances on the session's Redis with a fake Graph API); the alert checks driven by the
test (``app[WATCH].check()``, as the worker runs it every 10 s) on the test's clock.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from gateway.alerts import REPAIR_LOCK_SECONDS
from gateway.app import API, METRICS, STORE, TIMERS, WATCH
from gateway.conversation import Status
from gateway.errors import ConfigError
from gateway.flows.model import DEFAULT_MESSAGES
from gateway.settings import Settings
from gateway.testing import FakeGraphAPI
from tests.conftest import PARIS, AppFactory, Clock, add_listener, login, outbox_drained
from tests.e2e.channel_support import eventually
from tests.redis_messenger import messenger_on_redis, post_message
from tests.store.conftest import redis_url
from tests.test_timers import bot_lines, settled
from tests.test_webchat import WALK_TO_QUEUE, hello, receive_until, say

__all__ = ["messenger_on_redis", "redis_url"]  # fixtures used below

Client = TestClient  # type: ignore[type-arg]
DISCONNECTED = "a été déconnecté·e"  # flows.yaml's listener_disconnected, in French
GRACE = 600.0


def handed_back(client: Client) -> float:
    return client.app[METRICS].registry.get_sample_value("gateway_held_handed_back_total") or 0.0


async def away(*clients: Client, name: str = "anne") -> None:
    """Wait until no instance counts ``name`` at a console any more (their last socket closed)."""
    await eventually(lambda: _all_absent(clients, name))


async def _all_absent(clients: tuple[Client, ...], name: str) -> bool:
    return not any(c.app[API].presence.has(name) for c in clients)


async def whole(*clients: Client) -> None:
    """Wait until each instance has followed the others' presence long enough to know who is at a console."""
    await eventually(lambda: _true(all(c.app[API].presence.complete() for c in clients)))


async def take_with_console_open(client: Client, conversation_id: str) -> None:
    """Anne, her console open (counted present), takes the conversation; then her console closes without a logout."""
    await add_listener(client, "anne")
    await login(client, "anne")
    async with client.ws_connect("/api/events") as console:
        await receive_until(console, lambda f: f["type"] == "hello")
        assert (await client.post(f"/api/conversations/{conversation_id}/take", json={})).status == 200
    await away(client)


async def waiting_on_the_web_chat(client: Client) -> tuple[aiohttp.ClientWebSocketResponse, str]:
    ws = await client.ws_connect("/chat/ws")
    await hello(ws)
    for number, answer in enumerate(WALK_TO_QUEUE):
        await say(ws, f"m{number}", answer)
    [entry] = await client.app[STORE].waiting()
    return ws, entry.conversation_id


async def test_held_by_a_listener_away_too_long_goes_back_to_the_queue_told_once(
    client: Client, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.alerts")
    store, watch = client.app[STORE], client.app[WATCH]
    ws, conversation_id = await waiting_on_the_web_chat(client)
    [before] = await store.waiting()
    await take_with_console_open(client, conversation_id)
    await whole(client)
    await watch.check()  # her absence seen
    clock.advance(seconds=GRACE - 1)
    await watch.check()
    held = await store.get_conversation(conversation_id)
    assert held is not None and held.status == Status.WITH_LISTENER and handed_back(client) == 0
    clock.advance(seconds=1)
    await watch.check()
    await watch.check()  # again: nothing more
    conversation = await store.get_conversation(conversation_id)
    assert conversation is not None and conversation.status == Status.QUEUED and conversation.listener is None
    [entry] = await store.waiting()
    assert (entry.at, entry.priority, entry.queue) == (before.at, before.priority, before.queue)  # its place
    assert handed_back(client) == 1

    def told() -> list[dict[str, Any]]:
        return [f for f in frames if f["type"] == "entry" and DISCONNECTED in f["entry"]["text"]]

    # the frames up to their place told after the hand-back (a "position 1" of the first wait may come before)
    frames: list[dict[str, Any]] = []
    await receive_until(
        ws, lambda f: f["type"] == "entry" and "position 1" in f["entry"]["text"] and told(), frames=frames
    )
    assert len(told()) == 1 and frames.index(told()[0]) < len(frames) - 1  # told, then their place (the timer)
    said = told()[0]["entry"]["text"]  # nobody else at a console: no other listener promised (before, "va te répondre")
    assert "aucun·e autre écoutant·e n'est connecté·e" in said and "va te répondre" not in said
    assert all(number in said for number in ("119", "3114", "17", "112"))
    assert sum(DISCONNECTED in line for line in await bot_lines(client, conversation_id)) == 1
    [line] = [r.getMessage() for r in caplog.records if "handed back" in r.getMessage()]
    assert conversation_id in line and "anne" not in line and "600 s" in line
    [audited] = [e for e in await store.audit_log() if e.action == "hand_back"]  # the supervisors' list says whose
    assert (audited.actor, audited.subject) == ("gateway", conversation_id) and "from anne" in audited.detail
    await ws.close()
    await add_listener(client, "bruno")
    await login(client, "bruno")  # another listener may take them now
    assert (await client.post(f"/api/conversations/{conversation_id}/take", json={})).status == 200


async def test_a_listener_gone_after_the_line_closed_promises_no_other_listener(client: Client, clock: Clock) -> None:
    """Anne took the young person at 22:40 and left her console at 23:05, the line closed since 23:00: handed back,
    they are told the listener was disconnected and that the chat is closed now, then the closed line (when it reopens,
    119, 3114, 17/112); never "another listener will answer you", which nobody could do before 9h. Before, they were
    told exactly that, then, in the next message, that nobody could answer before the reopening."""
    clock.now = datetime(2026, 3, 10, 22, 40, tzinfo=PARIS).astimezone(UTC)  # open until 23:00
    store, watch = client.app[STORE], client.app[WATCH]
    ws, conversation_id = await waiting_on_the_web_chat(client)
    await ws.close()
    await take_with_console_open(client, conversation_id)
    await whole(client)
    clock.now = datetime(2026, 3, 10, 23, 5, tzinfo=PARIS).astimezone(UTC)  # closed now
    await watch.check()  # her absence seen
    clock.advance(seconds=GRACE)
    await watch.check()
    conversation = await store.get_conversation(conversation_id)
    assert conversation is not None and conversation.status == Status.QUEUED
    await client.app[TIMERS].fire_due()  # the queue's timer, armed at the hand-back: the closed line
    await settled(client, conversation_id)
    lines = await bot_lines(client, conversation_id)
    [told] = [line for line in lines if DISCONNECTED in line]
    after = lines[lines.index(told) :]
    assert "autre écoutant·e" not in told and "va te répondre" not in told and "est fermé" in told
    assert "17" in told and "112" in told
    assert len(after) == 2 and "demain à 9h" in after[1] and "119" in after[1] and "3114" in after[1]


async def test_a_listener_gone_while_a_colleague_is_online_promises_another_listener(
    client: Client, clock: Clock
) -> None:
    """Bruno at his console while Anne's closed: the young person she held is told another listener will answer
    (flows.yaml ``listener_disconnected``), the promise someone online can keep."""
    store, watch = client.app[STORE], client.app[WATCH]
    ws, conversation_id = await waiting_on_the_web_chat(client)
    await ws.close()
    await take_with_console_open(client, conversation_id)
    await add_listener(client, "bruno")
    await login(client, "bruno")
    async with client.ws_connect("/api/events") as console:
        await receive_until(console, lambda f: f["type"] == "hello")
        await eventually(lambda: _true(client.app[API].presence.has("bruno")))
        await whole(client)
        await watch.check()  # her absence seen
        clock.advance(seconds=GRACE)
        await watch.check()
        conversation = await store.get_conversation(conversation_id)
        assert conversation is not None and conversation.status == Status.QUEUED
    [told] = [line for line in await bot_lines(client, conversation_id) if DISCONNECTED in line]
    assert "un·e autre écoutant·e du 3018 va te répondre" in told and "aucun·e autre" not in told


async def held_then_away(client: Client) -> str:
    """A web chat conversation Anne took, its young person's page closed, Anne's absence seen by the watch (every
    instance's presence followed): its id."""
    ws, conversation_id = await waiting_on_the_web_chat(client)
    await ws.close()
    await take_with_console_open(client, conversation_id)
    await whole(client)
    await client.app[WATCH].check()
    return conversation_id


async def test_a_listener_back_within_the_grace_keeps_the_conversation(client: Client, clock: Clock) -> None:
    store, watch = client.app[STORE], client.app[WATCH]
    conversation_id = await held_then_away(client)
    clock.advance(seconds=GRACE - 100)
    async with client.ws_connect("/api/events") as console:  # back at her console
        await receive_until(console, lambda f: f["type"] == "hello")
        actions, presence = client.app[API].actions, client.app[API].presence
        assert not await actions.hand_back_absent(conversation_id, "anne", lambda name: not presence.has(name))
        await watch.check()
        clock.advance(seconds=GRACE)
        await watch.check()
    await away(client)
    await watch.check()  # gone again: a new absence, counted from now
    clock.advance(seconds=GRACE - 1)
    await watch.check()
    conversation = await store.get_conversation(conversation_id)
    assert conversation is not None and conversation.status == Status.WITH_LISTENER and conversation.listener == "anne"
    assert handed_back(client) == 0
    assert not any(DISCONNECTED in line for line in await bot_lines(client, conversation_id))


async def test_the_next_check_completes_a_hand_back_cut_after_its_queue_step(client: Client, clock: Clock) -> None:
    """The queue step of a hand-back made alone (on Redis it is its own step, another slot: an instance died right
    after it; tests/console/test_handback_crash.py makes that crash): the app's next check completes it, with no
    grace to wait, and another listener may take the young person."""
    store, watch = client.app[STORE], client.app[WATCH]
    conversation_id = await held_then_away(client)
    await store.requeue(conversation_id)  # what a cut right after the queue step leaves
    await watch.check()
    conversation = await store.get_conversation(conversation_id)
    assert conversation is not None and conversation.status == Status.QUEUED and conversation.listener is None
    assert handed_back(client) == 0  # not an absence's hand-back: a completion
    await add_listener(client, "bruno")
    await login(client, "bruno")
    assert (await client.post(f"/api/conversations/{conversation_id}/take", json={})).status == 200


async def test_a_listener_at_a_console_is_recorded_present_at_each_check(client: Client, clock: Clock) -> None:
    """While Anne's console is open here, each check records her present for every instance (an instance dying
    with her socket open writes no close: the last check's time stands, within 10 s of it); her socket's close
    records when she left."""
    store, watch = client.app[STORE], client.app[WATCH]
    await add_listener(client, "anne")
    await login(client, "anne")
    async with client.ws_connect("/api/events") as console:
        await receive_until(console, lambda f: f["type"] == "hello")
        await watch.check()
        assert await store.last_present(["anne", "bruno"]) == {"anne": clock.now}
        clock.advance(seconds=300)
        await watch.check()
        assert await store.last_present(["anne"]) == {"anne": clock.now}
        clock.advance(seconds=5)
    left = clock.now

    async def closed_recorded() -> bool:  # her socket's close, written as the socket is cleaned up
        return await store.last_present(["anne"]) == {"anne": left}

    await eventually(closed_recorded)


async def test_zero_never_hands_back(make_client: AppFactory, settings: Settings, clock: Clock) -> None:
    client = await make_client(settings.replace(held_handback_seconds=0))
    store, watch = client.app[STORE], client.app[WATCH]
    conversation_id = await held_then_away(client)
    clock.advance(days=2)
    await watch.check()
    conversation = await store.get_conversation(conversation_id)
    assert conversation is not None and conversation.status == Status.WITH_LISTENER
    assert client.app[METRICS].registry.get_sample_value("gateway_held_by_absent_listener") == 1  # the alert stays
    assert handed_back(client) == 0


async def test_an_instance_that_does_not_know_yet_who_is_at_a_console_hands_nothing_back(
    make_client: AppFactory, settings: Settings, clock: Clock
) -> None:
    """Just started, or its events interrupted: a listener at a console on another instance may look absent to it
    until every instance has announced itself again (2.5 presence beats; here 10 × 100 s each)."""
    client = await make_client(settings, worker_poll_seconds=100)
    store, watch = client.app[STORE], client.app[WATCH]
    ws, conversation_id = await waiting_on_the_web_chat(client)
    await ws.close()
    await take_with_console_open(client, conversation_id)
    await watch.check()
    clock.advance(seconds=GRACE)
    await watch.check()
    conversation = await store.get_conversation(conversation_id)
    assert conversation is not None and conversation.status == Status.WITH_LISTENER and handed_back(client) == 0
    assert not client.app[API].presence.complete()


@pytest.mark.redis
async def test_two_instances_hand_back_once_and_tell_once(
    make_client: AppFactory, messenger_on_redis: Settings, graph: FakeGraphAPI, clock: Clock
) -> None:
    """Both instances see Anne away for the grace and check at once: one hands back and tells the young person (one
    message sent to Messenger), the other finds the conversation waiting already."""
    one, two = await make_client(messenger_on_redis), await make_client(messenger_on_redis)
    for number, answer in enumerate(WALK_TO_QUEUE):
        assert await post_message(one, "psid-held", answer, f"mid.{number}") == 200
    store = one.app[STORE]
    [entry] = await eventually(store.waiting)
    await take_with_console_open(two, entry.conversation_id)
    await away(one, two)
    await whole(one, two)
    await asyncio.gather(one.app[WATCH].check(), two.app[WATCH].check())
    clock.advance(seconds=GRACE)
    checks = await asyncio.gather(one.app[WATCH].check(), two.app[WATCH].check(), return_exceptions=True)
    conversation = await store.get_conversation(entry.conversation_id)
    assert conversation is not None and conversation.status == Status.QUEUED
    assert handed_back(one) + handed_back(two) == 1

    def sent(needle: str) -> list[Any]:
        return [r for r in graph.requests if needle in str(r.body)]

    def place_told_after(needle: str) -> bool:
        bodies = [str(r.body) for r in graph.requests]
        told = [i for i, body in enumerate(bodies) if needle in body]
        return bool(told) and any("position 1" in body for body in bodies[told[0] + 1 :])

    # told, then their place: by the queue's timer, at its worker's next poll (up to a second later, longer on a
    # busy machine). Not any "position 1": the first wait's was sent before the take, and the outbox, drained before
    # the timer put its message, was found with one more item to send (failed 1 of 140, and under a CPU burner).
    await eventually(lambda: _true(place_told_after("déconnecté")))
    await outbox_drained(one)
    await outbox_drained(two)
    assert len(sent("déconnecté")) == 1
    assert sum(DISCONNECTED in line for line in await bot_lines(one, entry.conversation_id)) == 1
    assert checks == [None, None]


async def held_on_messenger(one: Client, *others: Client) -> str:
    """A young person on Messenger, taken by Anne with her console open on ``one``, then her console closed; every
    instance's presence followed and each instance's check seeing her away: the conversation's id."""
    for number, answer in enumerate(WALK_TO_QUEUE):
        assert await post_message(one, "psid-held", answer, f"mid.{number}") == 200
    [entry] = await eventually(one.app[STORE].waiting)
    await take_with_console_open(one, entry.conversation_id)
    await away(one, *others)
    await whole(one, *others)
    await asyncio.gather(*(c.app[WATCH].check() for c in (one, *others)))
    return entry.conversation_id


async def still_held(client: Client, conversation_id: str) -> bool:
    conversation = await client.app[STORE].get_conversation(conversation_id)
    assert conversation is not None
    return conversation.status == Status.WITH_LISTENER


@pytest.mark.redis
async def test_the_grace_counts_from_the_last_presence_on_any_instance(
    make_client: AppFactory, messenger_on_redis: Settings, graph: FakeGraphAPI, clock: Clock
) -> None:
    """Anne's console is on instance one; instance two, which never had her socket, sees her away. She comes back
    on one for a moment between two checks (a glance at the console, a flaky connection) and leaves: neither
    instance's check saw her. The grace counts from that moment, on both: not handed back 600 s after the first
    absence, once 600 s after the visit. Before, each instance counted from when its own checks saw her gone, so
    instance two handed her conversation back 300 s after she was last at her console."""
    one, two = await make_client(messenger_on_redis), await make_client(messenger_on_redis)
    conversation_id = await held_on_messenger(one, two)
    clock.advance(seconds=300)
    async with one.ws_connect("/api/events") as console:  # her visit, on one
        await receive_until(console, lambda f: f["type"] == "hello")
        await eventually(lambda: _true(two.app[API].presence.has("anne")))
    await away(one, two)
    visit = clock.now

    async def recorded() -> bool:  # her socket's close, written as the socket is cleaned up
        return await one.app[STORE].last_present(["anne"]) == {"anne": visit}

    await eventually(recorded)
    clock.advance(seconds=GRACE - 300)  # 600 s after the first absence, 300 s after the visit
    await two.app[WATCH].check()
    await one.app[WATCH].check()
    assert await still_held(two, conversation_id) and handed_back(one) + handed_back(two) == 0
    clock.advance(seconds=299)
    await asyncio.gather(one.app[WATCH].check(), two.app[WATCH].check())
    assert await still_held(two, conversation_id)
    clock.advance(seconds=1)
    await asyncio.gather(one.app[WATCH].check(), two.app[WATCH].check())
    assert not await still_held(two, conversation_id) and handed_back(one) + handed_back(two) == 1


@pytest.mark.redis
async def test_an_instance_started_later_counts_the_grace_from_the_last_presence(
    make_client: AppFactory, messenger_on_redis: Settings, graph: FakeGraphAPI, clock: Clock
) -> None:
    """The instances that saw Anne leave are replaced (a rolling deploy, a crash) 500 s into her absence: the new
    one hands her conversation back at 600 s, as they would have. Before, it counted from its own first check, and
    instances replaced more often than the grace never handed it back."""
    one, two = await make_client(messenger_on_redis), await make_client(messenger_on_redis)
    conversation_id = await held_on_messenger(one, two)
    await one.close()
    await two.close()
    clock.advance(seconds=500)
    three = await make_client(messenger_on_redis)
    await whole(three)
    await three.app[WATCH].check()
    assert await still_held(three, conversation_id)
    clock.advance(seconds=GRACE - 500)
    await three.app[WATCH].check()
    assert not await still_held(three, conversation_id) and handed_back(three) == 1


async def _true(value: object) -> bool:
    return bool(value)


def test_the_grace_is_a_setting() -> None:
    assert Settings().held_handback_seconds == GRACE > Settings().held_alert_seconds
    assert Settings.from_env({"GATEWAY_HELD_HANDBACK_SECONDS": "0"}, env_file=None).held_handback_seconds == 0
    assert Settings.from_env({"GATEWAY_HELD_HANDBACK_SECONDS": "900"}, env_file=None).held_handback_seconds == 900
    for bad in ("30", "-1"):
        with pytest.raises(ConfigError, match="GATEWAY_HELD_HANDBACK_SECONDS"):
            Settings.from_env({"GATEWAY_HELD_HANDBACK_SECONDS": bad}, env_file=None)


def test_the_message_has_a_default_french_first() -> None:
    for key in ("listener_disconnected", "listener_disconnected_closed", "listener_disconnected_offline"):
        default = DEFAULT_MESSAGES[key]
        assert list(default) == ["fr", "en"] and all("17" in text and "112" in text for text in default.values())


async def test_the_app_wires_the_checks_repairs_to_wait_two_seconds_for_a_lock_a_listeners_actions_ten(
    client: Client,
) -> None:
    """The check's repairs are bound to the app's ``Actions`` of ``REPAIR_LOCK_SECONDS`` (what each waits for a busy
    conversation's lock is counted in ``tests/test_alerts_busy.py``), the console's to those of 10 s. Before
    2026-12-07 one ``Actions`` for both: every repair waited 10 s."""
    watch = client.app[WATCH]
    for repair in (watch.complete, watch.back_in_line, watch.complete_close, watch.complete_move,
                   watch.complete_take, watch.complete_leaving):  # fmt: skip
        assert repair.__self__.lock_seconds == REPAIR_LOCK_SECONDS == 2.0
    assert client.app[API].actions.lock_seconds == 10.0
