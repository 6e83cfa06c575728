"""The durable inbox (docs/architecture.md, "The durable inbox"), pass by pass with ``process_due()`` on the real
dispatcher, flows.yaml and SQLite store, with a clock under the test's control.

A signed batch of 2,000 events through the whole app, on Redis: tests/e2e/test_inbox.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from gateway.app import STORE
from gateway.conversation import Status
from gateway.dispatcher import Dispatcher
from gateway.flowset import FlowSet
from gateway.ids import entry_id_of_key, inbound_key
from gateway.inbox import Inbox, inbound_from_dict, inbound_to_dict, sender_key
from gateway.keyed import KeyedHash
from gateway.messages import Attachment, ChannelName, Inbound
from gateway.metrics import Metrics
from gateway.store import Author, InboxItem, Store, open_store
from tests.conftest import ROOT, SECRET_KEY, Clock
from tests.e2e.channel_support import eventually
from tests.loop_gaps import longest_hold

Client = TestClient[web.Request, web.Application]


KEYED = KeyedHash("inbox-test-secret")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await open_store(f"sqlite:///{tmp_path}/gateway.sqlite3")
    yield opened
    await opened.close()


@pytest.fixture
def inbox(store: Store, clock: Clock) -> Inbox:
    flows = FlowSet(ROOT / "flows.yaml")
    flows.reload()
    dispatcher = Dispatcher(store, flows, clock=clock)
    return Inbox(store, dispatcher, Metrics(), KEYED, clock=clock, batch=2, base_delay=1.0, max_attempts=3)


def message(sender: str, number: int, text: str = "Bonjour") -> Inbound:
    return Inbound(ChannelName.MESSENGER, sender, f"{sender}-{number}", text)


async def said(store: Store, sender: str) -> list[str]:
    conversation = await store.find_active_conversation(ChannelName.MESSENGER, sender)
    if conversation is None:
        return []
    return [e.text for e in await store.transcript(conversation.id) if e.author is Author.USER]


async def test_a_large_batch_is_stored_then_processed_in_order_per_sender(store: Store, inbox: Inbox) -> None:
    await inbox.handle([message("zoe", 0, "Bonjour"), message("sam", 0, "Salut"), message("zoe", 1, "Non")])
    assert await said(store, "zoe") == [] and await said(store, "sam") == []  # stored, acknowledged, not yet done
    assert await inbox.process_due() == 2  # the oldest of each sender
    assert await said(store, "zoe") == ["Bonjour"] and await said(store, "sam") == ["Salut"]
    assert await inbox.process_due() == 1
    assert await inbox.process_due() == 0
    assert await said(store, "zoe") == ["Bonjour", "Non"]


async def test_a_later_message_waits_behind_its_senders_inbox(store: Store, inbox: Inbox) -> None:
    await inbox.handle([message("zoe", 0, "Bonjour"), message("zoe", 1, "Non"), message("sam", 0, "Salut")])
    await inbox.handle([message("zoe", 2, "Français")])  # small: inline, but zoe has messages waiting
    assert await said(store, "zoe") == []
    await inbox.handle([message("lea", 0, "Coucou")])  # nothing waiting for lea: processed inline at once
    assert await said(store, "lea") == ["Coucou"]
    while await inbox.process_due():
        pass
    assert await said(store, "zoe") == ["Bonjour", "Non", "Français"]


async def test_under_overload_a_webhook_is_stored_acknowledged_and_processed_after(store: Store, clock: Clock) -> None:
    flows = FlowSet(ROOT / "flows.yaml")
    flows.reload()
    metrics = Metrics()
    inbox = Inbox(store, Dispatcher(store, flows, clock=clock), metrics, KEYED, clock=clock, inline_max=1)
    first = asyncio.create_task(inbox.handle([message("lea", 0, "Coucou")]))
    await asyncio.sleep(0)  # one turn of the loop: lea's webhook is being processed inline (at its first await)
    await inbox.handle([message("zoe", 0, "Bonjour")])  # the inline capacity is taken: stored, acknowledged
    assert await said(store, "zoe") == []
    assert await store.inbox_waiting(sender_key(KEYED, message("zoe", 0))) == 1
    await first
    assert await said(store, "lea") == ["Coucou"]
    await inbox.handle([message("zoe", 1, "Non")])  # capacity free again, but zoe has a message waiting: behind it
    assert await said(store, "zoe") == []
    while await inbox.process_due():
        pass
    assert await said(store, "zoe") == ["Bonjour", "Non"]  # in order, once each
    exposition = metrics.exposition().decode()
    assert 'gateway_inbox_deferred_total{reason="busy"} 1.0' in exposition
    assert 'gateway_inbox_deferred_total{reason="behind"} 1.0' in exposition


async def test_with_no_inline_capacity_every_webhook_goes_through_the_inbox(store: Store, clock: Clock) -> None:
    flows = FlowSet(ROOT / "flows.yaml")
    flows.reload()
    inbox = Inbox(store, Dispatcher(store, flows, clock=clock), Metrics(), KEYED, clock=clock, inline_max=0)
    await inbox.handle([message("lea", 0, "Coucou")])
    assert await said(store, "lea") == []
    assert await inbox.process_due() == 1
    assert await said(store, "lea") == ["Coucou"]


async def test_a_busy_process_still_processes_words_of_danger_at_once(store: Store, clock: Clock) -> None:
    """The process busy (here: no inline capacity at all): an ordinary webhook goes to the inbox, one whose words the
    keywords read as a risk is processed now (before: it waited in the inbox while the webhooks after it that found
    the process no longer busy went first); one whose sender has messages waiting still goes behind them."""
    flows = FlowSet(ROOT / "flows.yaml")
    flows.reload()
    metrics = Metrics()
    inbox = Inbox(store, Dispatcher(store, flows, clock=clock), metrics, KEYED, clock=clock, inline_max=0)
    await inbox.handle([message("lea", 0, "Coucou")])
    await inbox.handle([message("zoe", 0, "je vais me tuer ce soir")])
    assert await said(store, "lea") == []  # in the inbox
    assert await said(store, "zoe") == ["je vais me tuer ce soir"]  # processed now
    [conversation] = await store.conversations_by_status(Status.QUEUED)
    assert conversation.flag is not None and conversation.priority.value == "urgent"
    await inbox.handle([message("lea", 1, "je vais me tuer")])  # lea has a message waiting: behind it, in order
    assert await said(store, "lea") == []
    while await inbox.process_due():
        pass
    assert await said(store, "lea") == ["Coucou", "je vais me tuer"]
    assert 'gateway_inbox_deferred_total{reason="busy"} 1.0' in metrics.exposition().decode()


async def test_an_item_failing_on_a_bug_is_set_aside_and_the_sender_goes_on(
    store: Store, inbox: Inbox, clock: Clock
) -> None:
    unreadable = InboxItem("in:broken", sender_key(KEYED, message("zoe", 0)), {"from": "a newer version"}, clock())
    await store.inbox_put([unreadable])
    await inbox.accept([message("zoe", 1, "Bonjour")])
    for _ in range(3):  # max_attempts: retried with backoff, then set aside
        assert await inbox.process_due() == 1
        assert await said(store, "zoe") == []
        clock.advance(seconds=10)
    assert await inbox.process_due() == 1  # the sender's next message is no longer held
    assert await said(store, "zoe") == ["Bonjour"]
    assert await store.inbox_waiting(sender_key(KEYED, message("zoe", 0))) == 0


async def test_an_items_log_lines_name_the_keyed_form_of_its_entry_never_its_key(
    store: Store, inbox: Inbox, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """An item's id is its message's de-duplication key, which holds the provider's message id in clear (a
    Twilio SID leads to the young person's number in Twilio's console). Until 2026-12-07 the inbox's lines named it:
    the retries' WARNING and the setting aside's ERROR held ``in:whatsapp:SM…``. Now the keyed form of the entry id
    the message gets (``KeyedHash.logged_id``, what ``gateway log-id`` prints), nothing computable from the SID."""
    caplog.set_level(logging.INFO, logger="gateway.inbox")
    key = "in:whatsapp:SM0123456789abcdef0123456789abcdef"
    await store.inbox_put([InboxItem(key, "k", {"from": "a newer version"}, clock())])
    for _ in range(3):  # max_attempts: two retries, then set aside
        assert await inbox.process_due() == 1
        clock.advance(seconds=10)
    lines = [r.getMessage() for r in caplog.records if r.name == "gateway.inbox"]
    assert len(lines) == 3 and "set aside" in lines[-1]
    named = KEYED.logged_id(entry_id_of_key(key))
    assert all(line.startswith(f"inbox: {named} ") for line in lines)
    assert not any(plain in line for line in lines for plain in ("SM0123456789", key, entry_id_of_key(key)))


async def test_a_retry_waits_its_backoff(store: Store, inbox: Inbox, clock: Clock) -> None:
    await store.inbox_put([InboxItem("in:broken", "k", {"from": "a newer version"}, clock())])
    assert await inbox.process_due() == 1
    clock.advance(seconds=0.9)
    assert await inbox.process_due() == 0  # 1 s after the first failure
    clock.advance(seconds=0.2)
    assert await inbox.process_due() == 1
    clock.advance(seconds=1.9)
    assert await inbox.process_due() == 0  # then 2 s


async def test_a_risky_message_retried_goes_before_the_ordinary_ones_due_before_its_retry(
    store: Store, clock: Clock
) -> None:
    """A risky message stays urgent when it is retried: another instance holds it when the worker takes it (it is
    retried after its backoff), and the ordinary messages of the backlog, due before the retry, wait for it once it is
    due again (until 2026-12-05 the retry put it behind every one of them: a young person in danger answered after
    the whole backlog). Never before its retry's time, nor twice."""
    flows = FlowSet(ROOT / "flows.yaml")
    flows.reload()
    dispatcher = Dispatcher(store, flows, clock=clock, claim_seconds=0.2)  # "processed elsewhere" after 0.2 s
    inbox = Inbox(store, dispatcher, Metrics(), KEYED, clock=clock, inline_max=0, concurrency=2, base_delay=1.0)
    danger = message("zoe", 0, "je vais me tuer ce soir")
    await inbox.accept([message(f"o{n}", 0) for n in range(6)] + [danger], "busy")  # in the inbox (a peak)
    await store.claim(inbound_key(danger), "another-instance", 60)  # another instance at it (or so it seems)
    assert await inbox.process_due() == 2  # the risky message first, refused; one ordinary message
    assert await said(store, "zoe") == []
    await store.release(inbound_key(danger), "another-instance")  # that instance gave it up: due after the backoff
    clock.advance(seconds=0.5)
    assert await inbox.process_due() == 2 and await said(store, "zoe") == []  # its backoff holds
    clock.advance(seconds=1)
    assert await inbox.process_due() == 2
    assert await said(store, "zoe") == ["je vais me tuer ce soir"]  # before the three ordinary ones still waiting
    while await inbox.process_due():
        pass
    assert all([await said(store, f"o{n}") == ["Bonjour"] for n in range(6)])  # every one once
    assert await said(store, "zoe") == ["je vais me tuer ce soir"]


# In the running app: set aside, kept, counted, logged and shown by /readyz. The failing item is put straight into
# the store, as a newer gateway sharing it would (a channel this version does not know).


async def test_an_inbound_message_failing_again_and_again_is_set_aside_and_kept(
    client: Client, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    store = client.app[STORE]
    later = Inbound(ChannelName.WEBCHAT, "session-token-1", "m2", "bonjour")
    key = sender_key(KEYED, later)
    newer = {"channel": "carrier-pigeon", "sender": "session-token-1", "message_id": "m1", "text": "coucou"}
    await store.inbox_put([InboxItem("from-a-newer-version", key, newer, clock()),
                           InboxItem("m2", key, inbound_to_dict(later), clock())])  # fmt: skip

    async def set_aside() -> bool:
        clock.advance(seconds=61)  # past any backoff: the worker tries again at its next poll
        return await store.inbox_set_aside_count() == 1

    await eventually(set_aside)

    async def next_one_processed() -> bool:
        conversation = await store.find_active_conversation(ChannelName.WEBCHAT, "session-token-1")
        return (
            conversation is not None
            and not await store.inbox_waiting(key)
            and any(e.author is Author.USER and e.text == "bonjour" for e in await store.transcript(conversation.id))
        )

    await eventually(next_one_processed)  # the sender's next message was not held behind it
    assert await store.inbox_set_aside_count() == 1  # still kept
    named = KeyedHash(SECRET_KEY).logged_id(entry_id_of_key("from-a-newer-version"))  # ``gateway log-id``'s form
    logged = [r.getMessage() for r in caplog.records if named in r.getMessage()]
    assert any("set aside after 10 attempts" in line and "kept" in line for line in logged)
    assert "from-a-newer-version" not in caplog.text
    assert "coucou" not in caplog.text  # never the message's text
    ready = await client.get("/readyz")
    assert (await ready.json())["inbox_set_aside"] == 1
    assert "gateway_inbox_set_aside 1.0" in await (await client.get("/metrics")).text()


def test_the_inbox_orders_by_a_keyed_hash_of_the_identity_never_a_plain_digest() -> None:
    """A plain SHA-256 of a phone number is reversed by trying every number; a keyed hash needs the secret key."""
    import hashlib

    inbound = message("+33612345678", 0)
    plain = hashlib.sha256(f"{inbound.channel.value}\n{inbound.sender}".encode()).hexdigest()[:32]
    assert sender_key(KEYED, inbound) != plain
    assert sender_key(KEYED, inbound) != sender_key(KeyedHash("another-secret"), inbound)
    assert sender_key(KEYED, inbound) == sender_key(KEYED, message("+33612345678", 1))  # one key per person


def test_an_edit_keeps_what_it_is_through_the_inbox_and_an_ordinary_message_its_stored_form() -> None:
    """An edited message (``Inbound.edited``) deferred to the inbox is still an edit when processed (never the
    answer to the bot's question); an ordinary one is stored as before edits were read (an instance of the version
    before reads it)."""
    edit = Inbound(ChannelName.TELEGRAM, "424242", "8", text="je vais me tuer", edited=True)
    ordinary = Inbound(ChannelName.TELEGRAM, "424242", "9", text="bonjour")
    assert inbound_from_dict(inbound_to_dict(edit)) == edit
    assert "edited" not in inbound_to_dict(ordinary) and inbound_from_dict(inbound_to_dict(ordinary)) == ordinary


def test_a_messages_own_date_goes_through_the_inbox() -> None:
    """A Telegram message deferred to the inbox keeps when it was written (``Inbound.sent_at``): taken late, it is
    dated then, not when processed (``gateway.dispatcher.written_at``); an undated one is stored as before."""
    written = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
    dated = Inbound(ChannelName.TELEGRAM, "424242", "10", text="bonjour", sent_at=written)
    assert inbound_from_dict(inbound_to_dict(dated)) == dated
    assert "sent_at" not in inbound_to_dict(Inbound(ChannelName.TELEGRAM, "424242", "11", text="bonjour"))


def test_the_conversation_a_message_was_written_in_goes_through_the_inbox_and_a_providers_is_stored_as_before() -> None:
    """``Inbound.written_in`` (a web chat page's conversation: erased meanwhile, nothing is opened for the message)
    is kept through the inbox; a provider's message, which names none, is stored without the field (an instance of
    the version before reads it, and the inbox's items stay as small)."""
    written = Inbound(ChannelName.WEBCHAT, "session", "t1", text="bonjour", written_in="0IvLSnf8J8Zs36OGMyfVSw")
    assert inbound_from_dict(inbound_to_dict(written)) == written
    assert "written_in" not in inbound_to_dict(Inbound(ChannelName.MESSENGER, "4242", "m1", text="bonjour"))


def test_a_standby_message_keeps_what_it_is_through_the_inbox() -> None:
    """A message on a thread another app owns (Messenger's ``standby``) deferred to the inbox is still one when
    processed: the bot never answers it over the thread's owner."""
    standby = Inbound(ChannelName.MESSENGER, "7012345678901234", "m.sb", text="bonjour", standby=True)
    ordinary = Inbound(ChannelName.MESSENGER, "7012345678901234", "m.or", text="bonjour")
    assert inbound_from_dict(inbound_to_dict(standby)) == standby
    assert "standby" not in inbound_to_dict(ordinary) and inbound_from_dict(inbound_to_dict(ordinary)) == ordinary


async def test_a_batch_of_2000_is_read_for_risks_with_the_loop_turning(store: Store, inbox: Inbox) -> None:
    """Each message of a large batch is read for a risk (the flow's keywords, ~0.4 ms each) before it is stored: a
    Messenger batch of 2,000 was read in one block, which held the event loop 0.8 s on a loaded 2-core machine until
    2026-12-06 (no webhook, web chat or console answered). Now a part at a time; every message is still read (the
    risky one is due first)."""
    texts = [f"bonjour je voudrais parler à quelqu'un de ce qui m'arrive au collège {n}" for n in range(1999)]
    batch = [message(f"s{n % 300}", n, text) for n, text in enumerate([*texts, "je veux mourir"])]
    taken, longest, took = await longest_hold(inbox.handle(batch))
    assert taken == 2000
    [first] = await store.inbox_due(inbox.clock(), 1)  # the risky message's sender ahead of the 299 others
    assert inbound_from_dict(first.payload).sender == "s199"
    assert longest < took / 2, (longest, took)


async def test_a_batch_of_2000_photos_is_stored_with_the_loop_turning(store: Store, inbox: Inbox) -> None:
    """A batch of 2,000 messages without words (photos: nothing for the keywords to read) was still turned into
    inbox items in one block (``dataclasses.asdict`` of each message, ~40 µs): 0.1 s of the loop until 2026-12-06.
    Now a part at a time, every message stored."""
    photo = (Attachment("image", "https://scontent.xx.fbcdn.net/v/photo.jpg", "image/jpeg"),)
    batch = [Inbound(ChannelName.MESSENGER, f"s{n % 300}", f"s-{n}", "", attachments=photo) for n in range(2000)]
    taken, longest, took = await longest_hold(inbox.handle(batch))
    assert taken == 2000 and len(await store.inbox_due(inbox.clock(), 400)) == 300
    # a third, not a half: the store's commit (SQLite's thread, the loop free) is a good part of the whole; in one
    # block the hold was 0.53-0.72 of it, in parts 0.15-0.24 (the store's sealing of the items, one block)
    assert longest < took / 3, (longest, took)
