"""An erasure cut short on Redis (the gateway's connection reset in the middle, as an instance dying or a network
blip) is finished by sending it again, from the console or ``gateway erase``: every conversation of the person,
the gate's notices to them go, the de-duplication marks of their messages are kept unlinked (a redelivery stays a
duplicate: ``erasure.DELIVERED_AGAIN``), another young person's stay, and the audit log has one ``erase`` line.

Until branch rev_erasure the eraser went through the person's conversations oldest first and forgot the marks and
the gate's notices only at the end: a supervisor erasing from an earlier conversation, cut after it, got 503, then
404 "Cette conversation n'existe pas." when sending it again, while the later conversation (with the identity), the
notice and the earlier conversation's marks stayed; nothing was audited. And a Redis erasure cut just before a
record's deletion had already taken it out of the creation index: the record (sealed, with the identity and the
answers) stayed, listed nowhere, so erasing the person again never found it (``nothing_left_of_the_person`` reads
each record by id).

Real cuts: the real gateway's store goes through ``tests/cutting_proxy.py``, which resets its Redis connection before
the chosen command (the commands before it ran); the supervisor sends "Effacer" again through the real app.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import pytest

from gateway.app import SUPERVISOR
from gateway.cli_privacy import _erase
from gateway.conversation import Status
from gateway.dispatcher import Dispatcher
from gateway.erasure import EPOCH, FAR, Eraser
from gateway.errors import StoreError
from gateway.ids import inbound_key, seen_digest
from gateway.keyed import KeyedHash
from gateway.messages import ChannelName, Inbound
from gateway.settings import Settings
from gateway.store import OutboxItem, Store, open_store
from gateway.store import redis_keys as K
from gateway.testing import store_keys
from tests.conftest import AppFactory, Clock, add_listener, login
from tests.console.test_handback_crash import instance, redis_store
from tests.cutting_proxy import cutting_proxy
from tests.store.conftest import redis_url

__all__ = ["redis_store", "redis_url"]  # fixtures used below

CHAT, OTHER = "70707070", "80808080"
WORDS = "ma mère ne sait pas que je vais mal"
DEL = b"\r\nDEL\r\n"


def message(sender: str, number: int, text: str) -> Inbound:
    return Inbound(ChannelName.TELEGRAM, sender, f"upd-{sender}-{number}", text)


async def person_with_two_conversations(store: Store, clock: Clock, settings: Settings) -> tuple[str, str, list[str]]:
    """A young person on Telegram with an earlier conversation (ended) and a later one (in the bot), a notice of the
    gate to them, and another young person: the earlier's id, the later's, and the marks of the person's messages."""
    dispatcher, _ = instance(store, clock)
    for number, text in enumerate(["bonjour", WORDS]):
        assert await dispatcher.handle_inbound(message(CHAT, number, text))
    [earlier] = await store.list_conversations(EPOCH, FAR)
    earlier.status, earlier.closed_at = Status.CLOSED, clock()
    await store.save_conversation(earlier)
    clock.advance(days=2)
    assert await dispatcher.handle_inbound(message(CHAT, 10, WORDS))  # the same person, again
    assert await dispatcher.handle_inbound(message(OTHER, 1, "un autre jeune"))
    later = await store.find_active_conversation(ChannelName.TELEGRAM, CHAT)
    assert later is not None and later.id != earlier.id
    key = KeyedHash(settings.secret_key.get_secret_value()).sender("telegram", CHAT)
    await store.outbox_put(OutboxItem("n-gate", "notice-" + key, {"recipient": CHAT, "text": "limité"}, clock()))
    marks = [seen_digest(inbound_key(message(CHAT, n, ""))) for n in (0, 1, 10)]
    assert set(marks) <= set(await store.seen_keys())
    return earlier.id, later.id, marks


async def nothing_left_of_the_person(store: Store, settings: Settings, marks: list[str], *ids: str) -> None:
    for conversation_id in ids:  # the records themselves, not only the indexes
        assert await store.get_conversation(conversation_id) is None, conversation_id
    left = await store.list_conversations(EPOCH, FAR)
    assert [c.sender for c in left] == [OTHER], [c.sender for c in left]  # the other young person's stays
    # their messages' marks kept (``erasure.DELIVERED_AGAIN``: Telegram's redelivery stays a duplicate), unlinked
    assert set(marks) <= set(await store.seen_keys())
    assert not [i for i in ids if await store.marks_of(i)]
    key = KeyedHash(settings.secret_key.get_secret_value()).sender("telegram", CHAT)
    assert await store.outbox_get("notice-" + key, "n-gate") is None  # the gate's notice to them too


def cuts(earlier: str, later: str) -> dict[str, tuple[bytes, ...]]:
    """Where the erasure is cut: as the later conversation's lock is taken, before the deletion of
    either record (its content deleted before it), before the gate's notice to the person is erased."""
    return {
        "later": (K.lock(later).encode(),),
        "later-record": (DEL, K.conversation(later).encode()),
        "earlier-record": (DEL, K.conversation(earlier).encode()),
        "notice": (b"notice-",),
    }


@pytest.mark.redis
@pytest.mark.parametrize("cut", ["later", "later-record", "earlier-record", "notice"])
async def test_an_erasure_from_an_earlier_conversation_cut_short_is_finished_by_sending_it_again(
    redis_store: Store, redis_url: str, clock: Clock, settings: Settings, make_client: AppFactory, cut: str
) -> None:
    """Sam, a supervisor, erases the person from their earlier conversation (the console's "Effacer"); the gateway's
    Redis connection is reset at ``cut``: 503. Sam sends it again from the same page: 200, nothing of the person
    left, the other young person's conversation kept, one ``erase`` line by Sam. Before: 404 when cut after the
    earlier conversation was erased (``later``, ``notice``), the later conversation, the notice and the marks left,
    no audit line."""
    earlier, later, marks = await person_with_two_conversations(redis_store, clock, settings)
    async with cutting_proxy(redis_url) as proxy:
        client = await make_client(settings.replace(store=proxy.url), worker_poll_seconds=3600)
        await client.app[SUPERVISOR].stop()
        await add_listener(client, "sam", supervisor=True)
        await login(client, "sam")
        proxy.cut_before(*cuts(earlier, later)[cut])
        first = await client.post(f"/api/conversations/{earlier}/erase", json={"confirm": True})
        assert proxy.cut == 1
        assert first.status == 503, await first.text()
        clock.advance(seconds=10)  # a lock whose release was lost lapses
        again = await client.post(f"/api/conversations/{earlier}/erase", json={"confirm": True})
        assert again.status == 200, await again.text()

    await nothing_left_of_the_person(redis_store, settings, marks, earlier, later)
    lines = [(e.actor, e.action) for e in await redis_store.audit_log() if e.action == "erase"]
    assert lines == [("sam", "erase")], lines


@pytest.mark.redis
@pytest.mark.parametrize("cut", ["later", "earlier-record", "notice"])
async def test_gateway_erase_cut_short_is_finished_by_running_it_again(
    redis_store: Store, redis_url: str, clock: Clock, settings: Settings, cut: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """``gateway erase --conversation <earlier>`` dies at ``cut`` (a StoreError); run again with the same id, it
    finishes: nothing of the person left, one ``erase`` line. Before: ``no conversation`` (exit 1) when cut after
    the earlier conversation was erased, the later one with the identity left."""
    earlier, later, marks = await person_with_two_conversations(redis_store, clock, settings)
    args = argparse.Namespace(conversation=earlier, channel=None, identity=None, again=None)
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("GATEWAY_FLOWS", settings.flows)
    monkeypatch.setenv("GATEWAY_SECRET_KEY", settings.secret_key.get_secret_value())
    monkeypatch.setenv("GATEWAY_DATA_KEY", settings.data_key.get_secret_value())
    async with cutting_proxy(redis_url) as proxy:
        monkeypatch.setenv("GATEWAY_STORE", proxy.url)
        proxy.cut_before(*cuts(earlier, later)[cut])
        with pytest.raises(StoreError):  # in a thread: the command runs its own event loop, as on the command line
            await asyncio.to_thread(_erase, args)
        assert proxy.cut == 1
        assert await asyncio.to_thread(_erase, args) == 0

    await nothing_left_of_the_person(redis_store, settings, marks, earlier, later)
    lines = [(e.actor, e.action) for e in await redis_store.audit_log() if e.action == "erase"]
    assert lines == [("cli", "erase")], lines


@pytest.mark.redis
@pytest.mark.parametrize("cut", ["later-record", "earlier-record", "notice"])  # "later": the message's own lock
async def test_the_young_persons_confirmed_erasure_cut_short_is_finished_and_told(
    redis_store: Store, redis_url: str, clock: Clock, settings: Settings, cut: str
) -> None:
    """A young person on Telegram with an earlier conversation writes "efface mes données", then "oui"; the gateway's
    Redis connection is reset at ``cut`` during the erasure: the erasure is tried again and finishes (nothing of them
    left, the other young person's kept), and they are told it is done, with where to turn. Until 2026-12-05 the
    message failed (StoreError) after being marked processed with their conversation: Telegram's redelivery was a
    duplicate, their current conversation (with the identity) stayed and they were never told."""
    earlier, later, marks = await person_with_two_conversations(redis_store, clock, settings)
    keyed = KeyedHash(settings.secret_key.get_secret_value())

    def wired(store: Store) -> Dispatcher:
        dispatcher, _ = instance(store, clock)
        eraser = Eraser(store, dispatcher, dispatcher.flows, lambda c, s: keyed.sender(c.value, s), clock=clock)
        dispatcher.eraser = lambda conversation, key: eraser.finish_confirmed(conversation.id, key)  # as the app
        return dispatcher

    assert await wired(redis_store).handle_inbound(message(CHAT, 20, "efface mes données"))
    async with cutting_proxy(redis_url) as proxy:
        through = await open_store(proxy.url, keys=store_keys(redis_url))
        try:
            proxy.cut_before(*cuts(earlier, later)[cut])
            assert await wired(through).handle_inbound(message(CHAT, 21, "oui"))
            assert proxy.cut == 1
        finally:
            await through.close()

    await nothing_left_of_the_person(redis_store, settings, marks, earlier, later)
    told = [str(item.payload) for item in await redis_store.outbox_due(clock(), 50, run=100)]
    assert any("119" in text and "3114" in text for text in told), told  # erasure.done, with where to turn
    assert not await wired(redis_store).handle_inbound(message(CHAT, 21, "oui"))  # a redelivery: a duplicate
    assert await redis_store.erasures_begun() == {}  # done: nothing left for the alert check


@pytest.mark.redis
@pytest.mark.parametrize("cut", ["later-record", "earlier-record", "notice"])
async def test_gateway_erase_by_identity_cut_short_is_finished_by_the_alert_check(
    redis_store: Store, redis_url: str, clock: Clock, settings: Settings, cut: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """``gateway erase --channel telegram --identity <chat>`` dies at ``cut`` (its connection reset): nobody runs it
    again, the next alert check of the server finishes it (listed by the open conversation, erased last: 2026-12-07),
    nothing of the person left, one ``erase`` line by ``cli``, no goodbye. Before: nothing listed, the check did
    nothing, the open conversation (with the identity) left for good."""
    from gateway.alerts import Watch
    from gateway.metrics import Metrics

    earlier, later, marks = await person_with_two_conversations(redis_store, clock, settings)
    args = argparse.Namespace(conversation=None, channel="telegram", identity=CHAT, again=None)
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("GATEWAY_FLOWS", settings.flows)
    monkeypatch.setenv("GATEWAY_SECRET_KEY", settings.secret_key.get_secret_value())
    monkeypatch.setenv("GATEWAY_DATA_KEY", settings.data_key.get_secret_value())
    async with cutting_proxy(redis_url) as proxy:
        monkeypatch.setenv("GATEWAY_STORE", proxy.url)
        proxy.cut_before(*cuts(earlier, later)[cut])
        with pytest.raises(StoreError):  # in a thread: the command runs its own event loop, as on the command line
            await asyncio.to_thread(_erase, args)
        assert proxy.cut == 1

    dispatcher, _ = instance(redis_store, clock)  # the server's alert check, wired as the app wires it
    keyed = KeyedHash(settings.secret_key.get_secret_value())
    eraser = Eraser(redis_store, dispatcher, dispatcher.flows, lambda c, s: keyed.sender(c.value, s), clock=clock)
    watch = Watch(redis_store, Metrics(), clock=clock, outbox_alert_seconds=60,
                  complete_erasure=lambda i, key: eraser.finish_confirmed(i, key, timeout=2.0))  # fmt: skip
    await watch.check()
    await watch.check()

    await nothing_left_of_the_person(redis_store, settings, marks, earlier, later)
    lines = [(e.actor, e.detail) for e in await redis_store.audit_log() if e.action == "erase"]
    assert [actor for actor, _ in lines] == ["cli"] and "gateway erase" in lines[0][1], lines
    told = [str(item.payload) for item in await redis_store.outbox_due(FAR, 50, run=100)]
    assert not [text for text in told if "3114" in text], told  # a supervisor's or the CLI's erasure says nothing
    assert await redis_store.erasures_begun() == {}
