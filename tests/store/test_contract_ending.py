"""A young person's message racing the end of their conversation (SQLite, Redis, Cluster): it was sent while a
listener closed the conversation, so it reaches a conversation that has ended. It is neither lost nor recorded in
the ended one: it opens the young person's next conversation, where the bot answers it, once.

The race is made exact with a second instance (dispatcher) whose model reads the message slowly: the message is
claimed (on Redis, the sender's address read along names the conversation still open), the model holds it while
the listener closes the conversation on the first instance, then the message goes on to the lock."""

from __future__ import annotations

import asyncio
import threading

from gateway.console.actions import Actions
from gateway.conversation import Status
from gateway.dispatcher import Dispatcher
from gateway.flowset import FlowSet
from gateway.messages import ChannelName, Inbound
from gateway.store import Author, Store
from gateway.understanding import Model, Reader
from tests.conftest import ROOT, Clock
from tests.console.test_actions import queued
from tests.understanding.test_reader import SHIPPED, Recording, started

SENDER = "psid-ending"


async def test_a_message_racing_the_end_of_its_conversation_opens_the_next_one_once(store: Store, clock: Clock) -> None:
    flows = FlowSet(ROOT / "flows.yaml")
    flows.reload()
    first = Dispatcher(store, flows, clock=clock)  # the listener's instance
    gate = threading.Event()
    model = Recording(gate)  # the first message it reads waits for the gate
    reader = await started(Reader(lambda: Model(model, SHIPPED.classifier), timeout=60))
    second = Dispatcher(store, flows, clock=clock, reader=reader)  # the instance the message reaches
    actions = Actions(first, store, flows, clock=clock)
    try:
        ending = await queued(first, SENDER)
        await actions.take(ending, "alice", capacity=3)
        racing = Inbound(ChannelName.MESSENGER, SENDER, "mid-racing", "merci, vous êtes encore là ?")
        processing = asyncio.create_task(second.handle_inbound(racing))
        async with asyncio.timeout(30):
            while not model.started.is_set():  # claimed, being read
                await asyncio.sleep(0.01)
        closed = await actions.close(ending, "alice", "cyberbullying")
        gate.set()
        assert await processing  # processed, not taken for a duplicate

        assert closed.status is Status.CLOSED
        next_one = await store.find_active_conversation(ChannelName.MESSENGER, SENDER)
        assert next_one is not None and next_one.id != ending
        assert "merci, vous êtes encore là ?" not in [e.text for e in await store.transcript(ending)]
        entries = await store.transcript(next_one.id)
        assert [e.text for e in entries if e.author is Author.USER] == ["merci, vous êtes encore là ?"]
        assert [e for e in entries if e.author is Author.BOT], "the bot answers in the next conversation"
        assert not await first.handle_inbound(racing)  # the provider's redelivery: a duplicate, on either instance
        assert not await second.handle_inbound(racing)
        assert await store.transcript(next_one.id) == entries  # nothing recorded or answered twice
    finally:
        gate.set()
        reader.close()
