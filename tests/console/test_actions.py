"""Who may do what to a conversation (gateway/console/actions.py): exclusivity, capacity, reply windows, and
refusals that change nothing; on the real dispatcher, flows.yaml and SQLite store, without HTTP.

The same actions through the listener API and the console: tests/console/test_api.py, tests/e2e/test_console*.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from gateway.console.actions import MAX_TEXT, Actions
from gateway.conversation import Status
from gateway.dispatcher import Dispatcher
from gateway.errors import ActionRefused
from gateway.flowset import FlowSet
from gateway.messages import ChannelName, Inbound
from gateway.store import Author, Store, open_store
from tests.conftest import ROOT, Clock

WALK = [("Bonjour", None), ("Non", "no"), ("Français", "fr"), ("j'ai 15 ans", None), ("Pour moi", "me"),
        ("Cyberharcèlement", "cyberharassment"), ("On se moque de moi sur un groupe.", None)]  # fmt: skip


def messenger_window(author: str) -> timedelta:
    return timedelta(days=7) if author == "listener" else timedelta(hours=24)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await open_store(f"sqlite:///{tmp_path}/gateway.sqlite3")
    yield opened
    await opened.close()


@pytest.fixture
def flows() -> FlowSet:
    flows = FlowSet(ROOT / "flows.yaml")
    flows.reload()
    return flows


@pytest.fixture
def dispatcher(store: Store, flows: FlowSet, clock: Clock) -> Dispatcher:
    return Dispatcher(store, flows, clock=clock, reply_windows={ChannelName.MESSENGER: messenger_window})


@pytest.fixture
def actions(dispatcher: Dispatcher, store: Store, flows: FlowSet, clock: Clock) -> Actions:
    return Actions(dispatcher, store, flows, clock=clock)


async def queued(dispatcher: Dispatcher, sender: str) -> str:
    """A young person on Messenger walks the flow to the queue; their conversation's id."""
    for number, (text, payload) in enumerate(WALK):
        await dispatcher.handle_inbound(Inbound(ChannelName.MESSENGER, sender, f"{sender}-{number}", text, payload))
    conversation = await dispatcher.store.find_active_conversation(ChannelName.MESSENGER, sender)
    assert conversation is not None and conversation.status == Status.QUEUED
    return conversation.id


async def refused(code: str, action: object) -> None:
    with pytest.raises(ActionRefused) as caught:
        await action  # type: ignore[misc]
    assert caught.value.code == code


async def outbox_texts(store: Store, conversation_id: str) -> list[str]:
    entries = await store.transcript(conversation_id)
    items = [await store.outbox_get(conversation_id, e.id) for e in entries]
    return [e.text for e, item in zip(entries, items, strict=True) if item is not None]


async def test_two_listeners_taking_at_once_one_gets_it(dispatcher: Dispatcher, actions: Actions) -> None:
    conversation_id = await queued(dispatcher, "zoe")
    outcomes = await asyncio.gather(
        actions.take(conversation_id, "anne", 3), actions.take(conversation_id, "bruno", 3), return_exceptions=True
    )
    winners = [o for o in outcomes if not isinstance(o, BaseException)]
    losers = [o for o in outcomes if isinstance(o, ActionRefused)]
    assert len(winners) == 1 and len(losers) == 1 and losers[0].code == "taken"
    taken = await dispatcher.store.get_conversation(conversation_id)
    assert taken is not None and taken.status == Status.WITH_LISTENER and taken.listener == winners[0].listener


async def test_two_tabs_cannot_both_pass_the_capacity(dispatcher: Dispatcher, actions: Actions) -> None:
    first, second = await queued(dispatcher, "zoe"), await queued(dispatcher, "sam")
    outcomes = await asyncio.gather(actions.take(first, "anne", 1), actions.take(second, "anne", 1),
                                    return_exceptions=True)  # fmt: skip
    assert sorted(type(o).__name__ for o in outcomes) == ["ActionRefused", "Conversation"]
    assert [o.code for o in outcomes if isinstance(o, ActionRefused)] == ["capacity"]
    assert await dispatcher.store.held_by("anne") == 1


async def test_only_the_listener_holding_it_replies_refers_or_hands_back(
    dispatcher: Dispatcher, actions: Actions
) -> None:
    conversation_id = await queued(dispatcher, "zoe")
    await refused("not_yours", actions.reply(conversation_id, "anne", "Bonjour"))  # not taken yet
    await actions.take(conversation_id, "anne", 3)
    await refused("not_yours", actions.reply(conversation_id, "bruno", "Bonjour"))
    await refused("not_yours", actions.refer(conversation_id, "bruno", "3114"))
    await refused("not_yours", actions.hand_back(conversation_id, "bruno"))
    entry = await actions.reply(conversation_id, "anne", "Bonjour, je suis là.")
    assert entry.author is Author.LISTENER
    assert "Bonjour, je suis là." in await outbox_texts(dispatcher.store, conversation_id)


async def test_past_the_reply_window_a_reply_is_refused_and_nothing_is_sent(
    dispatcher: Dispatcher, actions: Actions, clock: Clock
) -> None:
    conversation_id = await queued(dispatcher, "zoe")
    await actions.take(conversation_id, "anne", 3)
    clock.advance(days=6, hours=23)
    conversation = await dispatcher.store.get_conversation(conversation_id)
    assert conversation is not None and actions.window(conversation)["state"] == "closing"
    clock.advance(hours=2)  # the young person's last message was over 7 days ago
    before = await outbox_texts(dispatcher.store, conversation_id)
    await refused("window_closed", actions.reply(conversation_id, "anne", "Tu es toujours là ?"))
    await refused("window_closed", actions.refer(conversation_id, "anne", "3114"))
    assert await outbox_texts(dispatcher.store, conversation_id) == before


async def test_a_note_is_never_sent_to_the_young_person(dispatcher: Dispatcher, actions: Actions) -> None:
    conversation_id = await queued(dispatcher, "zoe")
    entry = await actions.note(conversation_id, "anne", "Semble très isolée.")
    assert entry.author is Author.NOTE
    assert await dispatcher.store.outbox_get(conversation_id, entry.id) is None
    assert "anne: Semble très isolée." not in await outbox_texts(dispatcher.store, conversation_id)


async def test_closing_needs_a_known_outcome_and_happens_once(dispatcher: Dispatcher, actions: Actions) -> None:
    conversation_id = await queued(dispatcher, "zoe")
    await actions.take(conversation_id, "anne", 3)
    await refused("unknown_outcome", actions.close(conversation_id, "anne", "no-such-outcome"))
    closed = await actions.close(conversation_id, "anne", "cyberbullying", notes="Orientée vers e-Enfance.")
    assert (closed.status, closed.outcome) == (Status.CLOSED, "cyberbullying")
    await refused("not_active", actions.close(conversation_id, "anne", "cyberbullying"))
    await refused("not_yours", actions.reply(conversation_id, "anne", "Encore un mot"))
    assert await dispatcher.store.held_by("anne") == 0


async def test_taking_an_ended_conversation_says_it_ended_not_that_a_colleague_took_it(
    dispatcher: Dispatcher, actions: Actions
) -> None:
    """A card clicked as the conversation closes: "no longer active", not "another listener took it" (found by
    ux20: the console told the listener a colleague had it). A colleague's take still says so."""
    conversation_id = await queued(dispatcher, "zoe")
    await actions.take(conversation_id, "anne", 3)
    await refused("taken", actions.take(conversation_id, "bruno", 3))
    await actions.close(conversation_id, "anne", "cyberbullying")
    await refused("not_active", actions.take(conversation_id, "bruno", 3))
    ended = await dispatcher.store.get_conversation(conversation_id)
    assert ended is not None and (ended.status, ended.listener) == (Status.CLOSED, "anne")


async def test_empty_too_long_or_unknown_targets_are_refused(dispatcher: Dispatcher, actions: Actions) -> None:
    conversation_id = await queued(dispatcher, "zoe")
    await actions.take(conversation_id, "anne", 3)
    before = await outbox_texts(dispatcher.store, conversation_id)
    await refused("empty", actions.reply(conversation_id, "anne", "   "))
    await refused("too_long", actions.reply(conversation_id, "anne", "a" * (MAX_TEXT + 1)))
    await refused("unknown_partner", actions.refer(conversation_id, "anne", "nobody"))
    await refused("unknown_queue", actions.transfer(conversation_id, "anne", "nowhere"))
    await refused("not_found", actions.note("no-such-conversation", "anne", "x"))
    assert await outbox_texts(dispatcher.store, conversation_id) == before
