"""Messenger's echoes: a page admin answering from Meta's own inbox while the gateway holds the conversation.

Meta sends an ``is_echo`` message event for every message the page sends: the gateway's own replies (its app's
``app_id``) and those a page admin writes in Meta Business Suite's inbox (no ``app_id``, or another app's). The
admin's is recorded in the transcript as the page's, answered outside the gateway (author ``page``), shown to the
listener live, once however often Meta delivers it, never sent again, never read as the young person's words, and
the conversation goes on as it was. The real app (SQLite store, outbox, timers), signed webhooks, the fake Graph API.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.app import STORE, TIMERS
from gateway.conversation import Conversation, Priority, Status
from gateway.ids import echo_entry_id
from gateway.messages import ChannelName, Echo
from gateway.settings import Settings
from gateway.store import Author, Delivery, TimerKind, TranscriptEntry
from gateway.testing import (
    FakeGraphAPI,
    messenger_body,
    messenger_echo,
    messenger_message,
    messenger_postback,
    named_by_provider,
)
from tests.conftest import outbox_drained
from tests.e2e.channel_support import (
    Client,
    GatewayFactory,
    ListenerDesk,
    eventually,
    gateway,
    offline,
    running_clock,
    timer_rearmed,
)
from tests.e2e.test_messenger import (
    PSID,
    SECRET,
    deliver,
    handed_to_listener,
    message,
    messenger_settings,
    texts,
    walk_to_queue,
)
from tests.redis_messenger import messenger_on_redis
from tests.store.conftest import redis_url
from tests.test_webchat import receive_until

__all__ = [
    "gateway",
    "messenger_on_redis",
    "messenger_settings",
    "offline",
    "redis_url",
]  # fixtures used by the tests below

OURS = 1517  # the gateway's app in these tests (messenger_echo's default app_id)
META_INBOX = 263902037430900  # another app: Meta's inbox as some pages' echoes name it
ADMIN = "Bonjour, ici l'équipe de la page : on a bien lu ton message."


def human_inbox(settings: Settings) -> Settings:
    """A page whose Meta automated responses are off: an echo of Meta's inbox app is a page admin's answer."""
    return settings.replace(messenger_app_id=str(OURS), messenger_human_echo_apps=str(META_INBOX))


@pytest.fixture
async def client(gateway: GatewayFactory, messenger_settings: Settings) -> Client:
    return await gateway(human_inbox(messenger_settings))


def echo(text: str, mid: str, app_id: int | None = META_INBOX) -> dict[str, Any]:
    return messenger_body([messenger_echo(PSID, text, mid=mid, app_id=app_id)])


async def idle_close_at(client: Client, conversation_id: str) -> list[datetime]:
    timers = await client.app[STORE].due_timers(datetime(2100, 1, 1, tzinfo=UTC))
    return [t.due_at for t in timers if t.conversation_id == conversation_id and t.kind == TimerKind.IDLE_CLOSE]


async def test_an_admins_answer_from_metas_inbox_shows_live_in_the_listeners_console_once(
    client: Client, graph: FakeGraphAPI, caplog: pytest.LogCaptureFixture
) -> None:
    """Until 2026-12-05 every echo was dropped: the listener never saw that a page admin had answered the young
    person from Meta's inbox (two people answering one young person, maybe contradicting each other), and the
    transcript lacked what was said to them."""
    caplog.set_level(logging.DEBUG)
    desk, conversation_id = await handed_to_listener(client, graph)
    store = client.app[STORE]
    before = await store.get_conversation(conversation_id)
    assert before is not None
    timers_before = await idle_close_at(client, conversation_id)
    sent_before = len(graph.accepted())
    async with client.ws_connect("/api/events") as console:
        await receive_until(console, lambda f: f["type"] == "hello")
        for _ in range(2):  # Meta redelivers: once
            assert await deliver(client, echo(ADMIN, "m_admin_1")) == 200
        frames = await receive_until(console, lambda f: f["type"] == "entry" and f["entry"]["text"] == ADMIN, 2000)
    shown = frames[-1]["entry"]
    assert shown["author"] == "page_human" and frames[-1]["conversation_id"] == conversation_id
    assert not shown.get("flag")
    transcript = (await desk.conversation(conversation_id))["transcript"]
    assert [(e["author"], e["text"]) for e in transcript if e["text"] == ADMIN] == [("page_human", ADMIN)]
    assert ADMIN not in [text for text, _ in await desk.young_persons_words(conversation_id)]
    await outbox_drained(client)
    assert len(graph.accepted()) == sent_before and ADMIN not in texts(graph.accepted())  # never sent again
    after = await store.get_conversation(conversation_id)
    assert after is not None and after.status == Status.WITH_LISTENER
    assert after.last_inbound_at == before.last_inbound_at  # not the young person writing: the windows stay
    assert await idle_close_at(client, conversation_id) == timers_before  # nor the idle timer
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert ADMIN not in logged and PSID not in logged and "m_admin_1" not in logged


async def test_the_gateways_own_echoes_stay_ignored_with_its_app_id_set(
    gateway: GatewayFactory, messenger_settings: Settings, graph: FakeGraphAPI
) -> None:
    """MESSENGER_APP_ID set: an echo naming it is the gateway's own reply; another app's (Meta's inbox) is the
    admin's."""
    client = await gateway(messenger_settings.replace(messenger_app_id=str(OURS)))
    desk, conversation_id = await handed_to_listener(client, graph)
    reply = await desk.reply(conversation_id, "Je suis là.")
    await desk.delivery_of(conversation_id, reply["id"], "sent")
    [kept] = [e.provider_message_id for e in await client.app[STORE].transcript(conversation_id) if e.id == reply["id"]]
    mid = named_by_provider(client.app[STORE], graph.answered)[kept or ""]  # a store may keep its digest (Redis)
    assert await deliver(client, echo("Je suis là.", "m_own_reply", app_id=OURS)) == 200
    assert await deliver(client, echo("Je suis là.", mid, app_id=None)) == 200  # a mid the outbox recorded: ours
    assert await deliver(client, echo(ADMIN, "m_admin_2", app_id=META_INBOX)) == 200

    async def pages() -> list[str]:
        transcript = (await desk.conversation(conversation_id))["transcript"]
        return [e["text"] for e in transcript if e["author"] == "page"]

    assert await eventually(pages) == [ADMIN]
    transcript = (await desk.conversation(conversation_id))["transcript"]
    assert [e["author"] for e in transcript if e["text"] == "Je suis là."] == ["listener"]


async def test_without_an_app_id_set_only_echoes_without_one_are_an_admins(
    gateway: GatewayFactory, messenger_settings: Settings, graph: FakeGraphAPI
) -> None:
    client = await gateway(messenger_settings)
    desk, conversation_id = await handed_to_listener(client, graph)
    assert await deliver(client, echo("une réponse d'une app", "m_app", app_id=META_INBOX)) == 200
    assert await deliver(client, echo(ADMIN, "m_admin_3", app_id=None)) == 200

    async def pages() -> list[str]:
        transcript = (await desk.conversation(conversation_id))["transcript"]
        return [e["text"] for e in transcript if e["author"] == "page"]

    assert await eventually(pages) == [ADMIN]


async def in_bot(client: Client) -> Conversation:
    """The young person's conversation, once it is with the bot and the bot's words are all sent."""

    async def found() -> list[Conversation]:
        return await client.app[STORE].conversations_by_status(Status.BOT)

    [conversation] = await eventually(found)
    await outbox_drained(client)
    return conversation


async def now_waiting(client: Client, conversation_id: str) -> Conversation:
    async def queued() -> Conversation | None:
        current = await client.app[STORE].get_conversation(conversation_id)
        return current if current is not None and current.status == Status.QUEUED else None

    return await eventually(queued)


async def test_an_admins_answer_while_the_bot_asks_ends_the_bots_part_and_hands_off_to_the_listeners(
    client: Client, graph: FakeGraphAPI, caplog: pytest.LogCaptureFixture
) -> None:
    """Until 2026-12-05 the bot went on after a page admin answered from Meta's inbox: the young person got the
    bot's next question (the language, the age…) over the human's words, and no listener saw the conversation
    until the bot's questions were all answered. Now the human's answer ends the bot's part (Meta's Handover
    Protocol): the conversation waits for a listener as the bot's routing hands it off, nothing more said by the
    bot, and risks read in the young person's next words still escalate."""
    caplog.set_level(logging.DEBUG)
    assert await deliver(client, message("Bonjour", mid="m_hello")) == 200
    assert await deliver(client, message("Non", "no", mid="m_no")) == 200  # not in danger: the language comes next
    conversation = await in_bot(client)
    sent = len(graph.accepted())
    # words a young person's message would be flagged for: an admin's are never read for the young person's risk
    admin = "Si tu veux te suicider, appelle le 3114. On est là."
    for _ in range(2):  # Meta redelivers: once
        assert await deliver(client, echo(admin, "m_admin_4")) == 200
    waiting = await now_waiting(client, conversation.id)
    assert waiting.queue == "listeners" and waiting.priority == Priority.NORMAL  # "listeners_open", the line open
    assert waiting.flag is None and waiting.route == "listeners_open"
    await outbox_drained(client)
    assert len(graph.accepted()) == sent  # no question, no place in line over the admin's words

    assert await deliver(client, message("ok merci", mid="m_after")) == 200  # an answer to the human: no bot turn
    desk = ListenerDesk(client)
    await desk.login()
    card = await desk.first_waiting()
    assert card["id"] == conversation.id and card["priority"] == "normal"
    await outbox_drained(client)
    assert len(graph.accepted()) == sent
    assert await deliver(client, message("je veux mourir", mid="m_risk")) == 200  # still escalates, as in any wait

    async def urgent() -> Conversation | None:
        current = await client.app[STORE].get_conversation(conversation.id)
        return current if current is not None and current.priority == Priority.URGENT else None

    await eventually(urgent)
    await outbox_drained(client)
    assert any("3114" in text for text in texts(graph.accepted()[sent:]))
    await desk.take(conversation.id)
    transcript = (await desk.conversation(conversation.id))["transcript"]
    assert [(e["author"], e["text"]) for e in transcript if e["author"] == "page_human"] == [("page_human", admin)]
    assert [text for text, _ in await desk.young_persons_words(conversation.id)][-2:] == ["ok merci", "je veux mourir"]
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert admin not in logged and PSID not in logged and "m_admin_4" not in logged


async def test_an_admins_answer_at_night_waits_for_the_listeners_without_the_closed_line_again(
    client: Client, graph: FakeGraphAPI
) -> None:
    """The line closed: the greeting told the young person so (when it opens, who answers now); the admin's answer
    is not followed by the closed line, and the conversation is not ended: it waits for the listeners' morning."""
    running_clock(client).advance(hours=9, minutes=30)  # 23:30 in Paris
    assert await deliver(client, message("Bonjour", mid="m_night")) == 200
    conversation = await in_bot(client)
    sent = len(graph.accepted())
    assert any("119" in text for text in texts(graph.accepted()))  # the closed line at the greeting
    assert await deliver(client, echo(ADMIN, "m_admin_night")) == 200
    waiting = await now_waiting(client, conversation.id)
    assert waiting.queue == "listeners"
    await outbox_drained(client)
    assert len(graph.accepted()) == sent
    running_clock(client).advance(minutes=20)  # past the queue's reassurance: the bot still says nothing
    await client.app[TIMERS].fire_due()
    await outbox_drained(client)
    assert len(graph.accepted()) == sent
    current = await client.app[STORE].get_conversation(conversation.id)
    assert current is not None and current.status == Status.QUEUED


async def test_a_hand_over_cut_after_the_admins_answer_was_written_is_made_at_its_redelivery(
    client: Client, graph: FakeGraphAPI
) -> None:
    """An instance that died between writing the page's entry and saving the conversation: Meta delivers the echo
    again, the entry is found written, and the hand-over is made then (never left with the bot for ever)."""
    assert await deliver(client, message("Bonjour", mid="m_hello_cut")) == 200
    conversation = await in_bot(client)
    sent = len(graph.accepted())
    store = client.app[STORE]
    written = Echo(ChannelName.MESSENGER, PSID, "m_admin_cut", ADMIN)
    entry = TranscriptEntry(id=echo_entry_id(written), conversation_id=conversation.id, at=conversation.created_at,
                            author=Author.PAGE_HUMAN, text=ADMIN, delivery=Delivery.DELIVERED)  # fmt: skip
    await store.append_transcript(entry)  # what the cut instance wrote
    assert await deliver(client, echo(ADMIN, "m_admin_cut")) == 200
    await now_waiting(client, conversation.id)
    assert [e.text for e in await store.transcript(conversation.id) if e.author == Author.PAGE_HUMAN] == [ADMIN]
    await outbox_drained(client)
    assert len(graph.accepted()) == sent


async def test_an_echo_to_someone_without_an_open_conversation_starts_none(client: Client) -> None:
    assert await deliver(client, echo(ADMIN, "m_admin_5")) == 200
    store = client.app[STORE]
    for status in Status:
        assert await store.conversations_by_status(status) == []


async def test_on_redis_an_admins_answer_is_recorded_once_and_shown(
    gateway: GatewayFactory, messenger_on_redis: Settings, graph: FakeGraphAPI
) -> None:
    """The same on Redis (the store several instances share): the entry written once under the conversation's
    lock, however often Meta delivers the echo."""
    client = await gateway(human_inbox(messenger_on_redis.replace(messenger_app_secret=SECRET)))
    desk, conversation_id = await handed_to_listener(client, graph)
    for _ in range(3):
        assert await deliver(client, echo(ADMIN, "m_admin_redis")) == 200
    transcript = (await desk.conversation(conversation_id))["transcript"]
    assert [(e["author"], e["text"]) for e in transcript if e["text"] == ADMIN] == [("page_human", ADMIN)]
    current = await client.app[STORE].get_conversation(conversation_id)
    assert current is not None and current.status == Status.WITH_LISTENER


async def test_on_redis_an_admins_answer_while_the_bot_asks_hands_off_once(
    gateway: GatewayFactory, messenger_on_redis: Settings, graph: FakeGraphAPI
) -> None:
    client = await gateway(human_inbox(messenger_on_redis.replace(messenger_app_secret=SECRET)))
    assert await deliver(client, message("Bonjour", mid="m_hello_redis")) == 200
    conversation = await in_bot(client)
    sent = len(graph.accepted())
    for _ in range(3):
        assert await deliver(client, echo(ADMIN, "m_admin_bot_redis")) == 200
    await now_waiting(client, conversation.id)
    desk = ListenerDesk(client)
    await desk.login()
    assert [(card["id"], card["page_answered"]) for card in await desk.waiting()] == [(conversation.id, True)]
    store = client.app[STORE]
    assert [e.text for e in await store.transcript(conversation.id) if e.author == Author.PAGE_HUMAN] == [ADMIN]
    await outbox_drained(client)
    assert len(graph.accepted()) == sent


async def test_a_young_person_the_page_answered_is_marked_so_in_the_queue_and_not_counted_unanswered(
    client: Client, graph: FakeGraphAPI
) -> None:
    """A page admin's answer is a human's answer. Until 2026-12-05 nothing in the queue said a waiting young person
    had one (a listener choosing whom to take sees the card only, never the transcript), and one who left before a
    listener took them was counted "parties avant d'être prises en charge" in the supervision figures though a
    human of the line had answered them."""
    assert await deliver(client, message("Bonjour", mid="m_hello_mark")) == 200
    assert await deliver(client, message("j'ai besoin d'aide", mid="m_help_mark")) == 200
    await eventually(lambda: client.app[STORE].conversations_by_status(Status.BOT))
    desk = ListenerDesk(client)
    await desk.login()
    assert await deliver(client, echo(ADMIN, "m_admin_mark")) == 200
    card = await desk.first_waiting()
    assert card["page_answered"] is True
    assert PSID not in str(card) and ADMIN not in str(card)
    running_clock(client).advance(hours=25)  # nobody takes it: the idle close
    await client.app[TIMERS].fire_due()

    async def ended() -> list[Conversation]:
        return await client.app[STORE].conversations_by_status(Status.ABANDONED)

    await eventually(ended)
    response = await client.get("/api/stats")
    assert response.status == 200
    figures = await response.json()
    assert figures["wait"]["unanswered"] == 0 and figures["total"] == 1


async def test_a_waiting_young_person_no_human_answered_is_not_marked_and_counts_unanswered(
    client: Client, graph: FakeGraphAPI
) -> None:
    await walk_to_queue(client)
    desk = ListenerDesk(client)
    await desk.login()
    card = await desk.first_waiting()
    assert card["page_answered"] is False
    running_clock(client).advance(hours=25)
    await client.app[TIMERS].fire_due()

    async def ended() -> list[Conversation]:
        return await client.app[STORE].conversations_by_status(Status.ABANDONED)

    await eventually(ended)
    figures = await (await client.get("/api/stats")).json()
    assert figures["wait"]["unanswered"] == 1


async def test_a_young_person_waiting_whom_a_page_admin_answers_gets_no_queue_messages_over_the_admin(
    client: Client, graph: FakeGraphAPI
) -> None:
    """Waiting for a listener, a page admin answers the young person from Meta's inbox (its app listed as a
    person's): until 2026-12-06 the queue's timer went on sending "On ne t'oublie pas : tu es maintenant en position
    1…" every five minutes over the admin's words, as if nobody had answered. Now they hold back as for a thread the
    admin took (``standby``), the listeners still see the conversation waiting; the young person's next message on
    the gateway's own thread brings them back."""
    await walk_to_queue(client)
    desk = ListenerDesk(client)
    await desk.login()
    conversation_id = (await desk.first_waiting())["id"]
    await graph.wait_accepted(len(await desk.all_sent(conversation_id)))
    await outbox_drained(client)  # every reply recorded before the count and the clock's moves (the lease is on it)
    sent, clock = len(graph.accepted()), running_clock(client)
    assert await deliver(client, echo(ADMIN, "m_admin_waiting")) == 200
    store = client.app[STORE]

    async def answered() -> list[str]:
        return [e.text for e in await store.transcript(conversation_id) if e.author == Author.PAGE_HUMAN]

    assert await eventually(answered) == [ADMIN]
    for _ in range(3):  # three reassurance times
        clock.advance(minutes=6)
        await client.app[TIMERS].fire_due()
        await eventually(lambda: timer_rearmed(client, conversation_id, "queue_reassure"))
    await outbox_drained(client)
    assert texts(graph.accepted()[sent:]) == []
    assert [card["id"] for card in await desk.waiting()] == [conversation_id]  # still waiting for the listeners
    assert await deliver(client, message("Vous êtes toujours là ?", mid="m_back_admin")) == 200

    async def written() -> bool:
        return any(e.text == "Vous êtes toujours là ?" for e in await store.transcript(conversation_id))

    await eventually(written)
    clock.advance(minutes=6)
    await client.app[TIMERS].fire_due()
    [reassured] = texts(await graph.wait_accepted(sent + 1))[sent:]
    assert "position 1" in reassured


async def test_a_young_person_a_page_admin_answered_then_handed_back_by_a_listener_is_told_their_place_again(
    client: Client, graph: FakeGraphAPI
) -> None:
    """The admin's answer pauses the queue's timed messages (above); a listener then takes the conversation, answers
    on the gateway's thread, and hands it back: the pause ends with the take. Until 2026-12-06 it stayed until the
    young person wrote again: back in the queue, told nothing (at night, not even the closed line)."""
    await walk_to_queue(client)
    desk = ListenerDesk(client)
    await desk.login()
    conversation_id = (await desk.first_waiting())["id"]
    assert await deliver(client, echo(ADMIN, "m_admin_then_listener")) == 200
    store = client.app[STORE]

    async def paused() -> bool:
        found = await store.get_conversation(conversation_id)
        return found is not None and found.standby_at is not None

    await eventually(paused)
    await desk.take(conversation_id)
    assert (await client.post(f"/api/conversations/{conversation_id}/hand-back", json={})).status == 200
    await outbox_drained(client)
    sent, clock = len(graph.accepted()), running_clock(client)
    clock.advance(minutes=6)
    await client.app[TIMERS].fire_due()
    [reassured] = texts(await graph.wait_accepted(sent + 1))[sent:]
    assert "position 1" in reassured


async def redelivered_after_the_conversation_ended(client: Client) -> None:
    """A page admin answers; the conversation ends (nobody took it); the young person writes again; Meta delivers the
    admin's old answer again (a webhook it was not acknowledged for, retried hours later): it belongs to the first
    conversation and changes nothing in the second."""
    assert await deliver(client, message("Bonjour", mid="m_hello_first")) == 200
    first = await in_bot(client)
    answer = echo(ADMIN, "m_admin_before")
    assert await deliver(client, answer) == 200
    await now_waiting(client, first.id)
    running_clock(client).advance(hours=25)  # nobody takes it: the idle close
    await client.app[TIMERS].fire_due()

    async def ended() -> list[Conversation]:
        return await client.app[STORE].conversations_by_status(Status.ABANDONED)

    await eventually(ended)
    assert await deliver(client, message("Bonjour", mid="m_hello_second")) == 200
    second = await in_bot(client)
    assert second.id != first.id
    assert await deliver(client, answer) == 200  # the old echo, redelivered
    store = client.app[STORE]
    current = await store.get_conversation(second.id)
    assert current is not None and current.status == Status.BOT and current.page_answered_at is None
    assert [e.text for e in await store.transcript(second.id) if e.author == Author.PAGE_HUMAN] == []
    assert [e.text for e in await store.transcript(first.id) if e.author == Author.PAGE_HUMAN] == [ADMIN]


async def test_an_admins_answer_redelivered_after_its_conversation_ended_leaves_the_next_one_with_the_bot(
    client: Client,
) -> None:
    """Until 2026-12-05 the redelivered echo was taken for the young person's new conversation: its entry id was
    found in the old one, so nothing was shown, but the new conversation was marked answered by the page and its
    bot's part ended: the young person's questions stopped, and the card said a human had answered them."""
    await redelivered_after_the_conversation_ended(client)


async def test_on_redis_an_admins_answer_redelivered_after_its_conversation_ended_leaves_the_next_one_alone(
    gateway: GatewayFactory, messenger_on_redis: Settings
) -> None:
    client = await gateway(human_inbox(messenger_on_redis.replace(messenger_app_secret=SECRET)))
    await redelivered_after_the_conversation_ended(client)


async def test_an_admins_answer_delivered_with_the_young_persons_next_message_gets_no_bot_question_after_it(
    client: Client, graph: FakeGraphAPI
) -> None:
    """Meta batches: the admin's answer and the young person's next message (a button, here) in one webhook. Until
    2026-12-05 the messages went first: the bot asked its next question ("Tu préfères continuer en français…"), then
    the echo ended the bot's part, the young person left with a question nobody would read the answer of."""
    assert await deliver(client, message("Bonjour", mid="m_hello_batch")) == 200
    conversation = await in_bot(client)
    sent = len(graph.accepted())
    answer = messenger_echo(PSID, ADMIN, mid="m_admin_batch", app_id=META_INBOX)
    pressed = messenger_message(PSID, "Non", mid="m_no_batch", quick_reply="no")
    answer["timestamp"] = pressed["timestamp"] - 1000  # the admin wrote first
    assert await deliver(client, messenger_body([pressed, answer])) == 200
    await now_waiting(client, conversation.id)
    await outbox_drained(client)
    assert len(graph.accepted()) == sent
    store = client.app[STORE]
    words = [(e.author, e.text) for e in await store.transcript(conversation.id) if e.author != Author.BOT]
    assert words[-2:] == [(Author.PAGE_HUMAN, ADMIN), (Author.USER, "Non")]


async def test_an_admins_answer_in_the_webhook_that_opens_the_conversation_is_recorded_after_it(
    client: Client, graph: FakeGraphAPI
) -> None:
    """The young person's first message and the page's answer to it in one webhook: the conversation opens, then
    the answer is recorded in it and ends the bot's part."""
    first = messenger_message(PSID, "Bonjour", mid="m_hello_with_answer")
    answer = messenger_echo(PSID, ADMIN, mid="m_admin_first", app_id=META_INBOX)
    answer["timestamp"] = first["timestamp"] + 1000
    assert await deliver(client, messenger_body([first, answer])) == 200

    async def waiting() -> list[Conversation]:
        return await client.app[STORE].conversations_by_status(Status.QUEUED)

    [conversation] = await eventually(waiting)
    transcript = await client.app[STORE].transcript(conversation.id)
    assert [e.text for e in transcript if e.author == Author.PAGE_HUMAN] == [ADMIN]


async def test_get_started_in_the_day_after_an_admins_answer_is_not_told_the_chat_reopened(
    client: Client, graph: FakeGraphAPI
) -> None:
    """The admin's answer hands the conversation to the listeners by day (the line open, never closed in this wait);
    the young person empties the thread and taps Get Started: their place in line, never "Le chat du 3018 a rouvert"
    (the hand-over marked the closed line told for this wait, which read as told it was closed)."""
    assert await deliver(client, message("Bonjour", mid="m_day")) == 200
    conversation = await in_bot(client)
    assert await deliver(client, echo(ADMIN, "m_admin_day")) == 200
    await now_waiting(client, conversation.id)
    await outbox_drained(client)
    sent = len(graph.accepted())
    tap = messenger_body([messenger_postback(PSID, "GET_STARTED", "Commencer", mid="m_gs")])
    assert await deliver(client, tap) == 200
    told = texts(await graph.wait_accepted(sent + 1))[sent:]
    assert len(told) == 1 and "position 1" in told[0]
    assert "rouvert" not in told[0]


INSTANT_REPLY = "Merci pour ton message ! Nous te répondrons dès que possible."  # Meta's automated response


@pytest.mark.parametrize(
    ("app_id", "ours", "humans"),
    [
        (None, "", ""),  # the defaults
        (None, str(OURS), ""),
        (META_INBOX, str(OURS), ""),
        (4242, str(OURS), ""),
        (None, str(OURS), str(META_INBOX)),  # a person's answers named: an echo of no app is still not one
        (4242, str(OURS), str(META_INBOX)),
    ],
)
async def test_an_automated_response_of_metas_is_recorded_and_the_bot_goes_on_answering(
    gateway: GatewayFactory, messenger_settings: Settings, graph: FakeGraphAPI, app_id: int | None, ours: str,
    humans: str,
) -> None:  # fmt: skip
    """A page with Meta's automated responses on (Business Suite's Instant Reply, away message, FAQ): Meta sends
    one at the young person's first message, and its echo names no app or Meta's inbox app, as a page admin's
    answer does (Meta documents nothing that tells them apart). Until 2026-12-06 that echo ended the bot's part at
    the first message: the young person was left with "we will answer soon" and then silence, no question, no
    emergency numbers, no place in line. Now an echo not known to be a person's is recorded for the listeners and
    the bot goes on."""
    client = await gateway(messenger_settings.replace(messenger_app_id=ours, messenger_human_echo_apps=humans))
    assert await deliver(client, message("Bonjour", mid="m_hello_auto")) == 200
    conversation = await in_bot(client)
    sent = len(graph.accepted())
    assert await deliver(client, echo(INSTANT_REPLY, "m_auto_1", app_id=app_id)) == 200
    store = client.app[STORE]

    async def recorded() -> list[str]:
        return [e.text for e in await store.transcript(conversation.id) if e.author == Author.PAGE]

    assert await eventually(recorded) == [INSTANT_REPLY]  # the listener sees what the page said
    current = await store.get_conversation(conversation.id)
    assert current is not None and current.status == Status.BOT and current.page_answered_at is None
    assert await deliver(client, message("Non", "no", mid="m_no_auto")) == 200  # the bot answers: its next question
    assert len(texts(await graph.wait_accepted(sent + 1))) > sent
    current = await store.get_conversation(conversation.id)
    assert current is not None and current.status == Status.BOT


async def test_metas_away_message_to_a_waiting_young_person_does_not_mark_them_answered(
    client: Client, graph: FakeGraphAPI
) -> None:
    """Meta's away message (no app) while the young person waits: recorded, but the queue's card does not say a human
    answered them, and leaving unanswered they count as such."""
    await walk_to_queue(client)
    [waiting] = await client.app[STORE].conversations_by_status(Status.QUEUED)
    assert await deliver(client, echo(INSTANT_REPLY, "m_away", app_id=None)) == 200
    store = client.app[STORE]

    async def recorded() -> list[str]:
        return [e.text for e in await store.transcript(waiting.id) if e.author == Author.PAGE]

    assert await eventually(recorded) == [INSTANT_REPLY]
    desk = ListenerDesk(client)
    await desk.login()
    assert (await desk.first_waiting())["page_answered"] is False


async def test_an_automated_responses_echo_cut_after_its_entry_is_completed_once_at_its_redelivery(
    client: Client, graph: FakeGraphAPI
) -> None:
    """The instance died after writing the page's entry of an automated response, before saving its processed mark:
    Meta delivers it again, nothing is written twice, and the bot's part goes on."""
    assert await deliver(client, message("Bonjour", mid="m_hello_auto_cut")) == 200
    conversation = await in_bot(client)
    store = client.app[STORE]
    written = Echo(ChannelName.MESSENGER, PSID, "m_auto_cut", INSTANT_REPLY)
    entry = TranscriptEntry(id=echo_entry_id(written), conversation_id=conversation.id, at=conversation.created_at,
                            author=Author.PAGE, text=INSTANT_REPLY, delivery=Delivery.DELIVERED)  # fmt: skip
    await store.append_transcript(entry)
    for _ in range(2):
        assert await deliver(client, echo(INSTANT_REPLY, "m_auto_cut", app_id=None)) == 200
    assert [e.text for e in await store.transcript(conversation.id) if e.author == Author.PAGE] == [INSTANT_REPLY]
    current = await store.get_conversation(conversation.id)
    assert current is not None and current.status == Status.BOT and current.page_answered_at is None
