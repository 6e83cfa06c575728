"""Telegram's ``/start``: the START button (shown again to a young person who cleared the chat), "Restart bot", a
deep link (``/start campagne3018``) or the command typed alone. Telegram's words, never the young person's: as
Messenger's Get Started (tests/e2e/test_messenger_get_started.py) in every status. The real app, a fake Bot API.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from gateway.app import STORE, TIMERS
from gateway.conversation import Status
from gateway.store import TimerKind
from gateway.testing import FakeTelegramAPI, telegram_update
from tests.conftest import outbox_drained
from tests.e2e.channel_support import Client, eventually, gateway, offline, running_clock, timer_rearmed
from tests.e2e.test_telegram import CHAT, client, deliver, handed_to_listener, telegram_settings, walk

__all__ = ["client", "gateway", "offline", "telegram_settings"]  # fixtures used by the tests below


def start(update_id: int, text: str = "/start") -> dict[str, Any]:
    """As Telegram sends it: the command's text, marked as a ``bot_command`` entity."""
    update = telegram_update(update_id, CHAT, text)
    update["message"]["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
    return update


async def test_a_first_start_greets_with_no_words_of_the_young_person(
    client: Client, telegram: FakeTelegramAPI
) -> None:
    """Until 2026-12-05 the first "/start" was in the transcript as the young person's message."""
    assert await deliver(client, start(910000001)) == 200
    [conversation] = await eventually(lambda: _by_status(client, Status.BOT))
    transcript = await client.app[STORE].transcript(conversation.id)
    assert [e.author.value for e in transcript] == ["bot", "bot"]  # the welcome and the first question
    assert [r.body["text"] for r in await telegram.wait_accepted(2)] == [e.text for e in transcript]


async def test_start_during_the_questions_asks_the_question_again_without_a_retry(
    client: Client, telegram: FakeTelegramAPI
) -> None:
    """The question again each time, no retry used (as before); "/start" no longer the young person's words."""
    assert await deliver(client, telegram_update(910000010, CHAT, "bonjour")) == 200
    store = client.app[STORE]
    [conversation] = await eventually(lambda: _by_status(client, Status.BOT))
    asked = [e.text for e in await store.transcript(conversation.id) if e.author.value == "bot"]
    for number, text in enumerate(["/start", "/start campagne3018", "/start@helpline_bot"]):
        assert await deliver(client, start(910000011 + number, text)) == 200
    await outbox_drained(client)
    transcript = await store.transcript(conversation.id)
    assert [e.text for e in transcript if e.author.value == "user"] == ["bonjour"]
    said = [e.text for e in transcript if e.author.value == "bot"]
    assert said == asked + [asked[-1]] * 3
    current = await store.get_conversation(conversation.id)
    assert current is not None and current.status == Status.BOT and current.engine.get("attempts", 0) == 0
    assert [r.body["text"] for r in await telegram.wait_accepted(len(said))] == said


async def test_start_in_the_queue_tells_the_young_person_they_still_wait(
    client: Client, telegram: FakeTelegramAPI
) -> None:
    """Until 2026-12-05 a young person waiting who cleared the chat and tapped START got nothing, and the listeners
    read "/start" as their words. Now their place in line again, and the listeners read what happened."""
    for update in walk():
        assert await deliver(client, update) == 200
    [conversation] = await eventually(lambda: _by_status(client, Status.QUEUED))
    store = client.app[STORE]
    await outbox_drained(client)
    before = await store.transcript(conversation.id)
    assert await deliver(client, start(910000020)) == 200
    await outbox_drained(client)
    after = await store.transcript(conversation.id)
    added = after[len(before) :]
    assert [e.author.value for e in added] == ["system", "bot"]
    assert added[0].system is not None and added[0].system.code == "restarted"
    assert "position 1" in added[1].text
    assert not [e for e in after if e.author.value == "user" and "/start" in e.text]
    bot = [e for e in after if e.author.value == "bot"]
    assert [r.body["text"] for r in await telegram.wait_accepted(len(bot))][-1] == added[1].text


async def test_start_with_a_listener_is_told_to_the_listener_not_as_words(
    client: Client, telegram: FakeTelegramAPI
) -> None:
    """Until 2026-12-05 the listener read "/start campagne3018" as the young person's message. Now a note; the bot
    says nothing."""
    desk, conversation_id = await handed_to_listener(client, telegram)
    before = (await desk.conversation(conversation_id))["transcript"]
    assert await deliver(client, start(910000030, "/start campagne3018")) == 200

    async def noted() -> list[dict[str, Any]] | None:
        return await desk.system_entries(conversation_id, "rouvert le fil telegram") or None

    await eventually(noted)
    after = (await desk.conversation(conversation_id))["transcript"]
    added = after[len(before) :]
    assert [e["author"] for e in added] == ["system"]
    assert not [e for e in after if e["author"] == "user" and "/start" in e["text"]]


async def test_start_with_words_after_it_stays_the_young_persons_words(
    client: Client, telegram: FakeTelegramAPI
) -> None:
    """More than Telegram's command (a deep link has one parameter): the young person wrote it, read for a risk."""
    assert await deliver(client, telegram_update(910000040, CHAT, "bonjour")) == 200
    assert await deliver(client, telegram_update(910000041, CHAT, "/start je veux mourir")) == 200
    await outbox_drained(client)
    [conversation] = await eventually(lambda: _by_status(client, Status.QUEUED))
    transcript = await client.app[STORE].transcript(conversation.id)
    assert [e.text for e in transcript if e.author.value == "user"] == ["bonjour", "/start je veux mourir"]
    assert conversation.flag is not None


async def test_a_risk_in_starts_parameter_is_the_young_persons_words(client: Client, telegram: FakeTelegramAPI) -> None:
    """One word after /start has the shape of a deep link's parameter; a risk read in it still escalates."""
    assert await deliver(client, telegram_update(910000050, CHAT, "bonjour")) == 200
    assert await deliver(client, start(910000051, "/start suicide")) == 200
    await outbox_drained(client)
    [conversation] = await eventually(lambda: _by_status(client, Status.QUEUED))
    transcript = await client.app[STORE].transcript(conversation.id)
    assert [e.text for e in transcript if e.author.value == "user"] == ["bonjour", "/start suicide"]
    assert conversation.flag is not None


async def _by_status(client: Client, status: Status) -> list[Any] | None:
    return await client.app[STORE].conversations_by_status(status) or None


async def test_start_through_the_night_is_told_the_closed_line_once_and_in_the_morning_that_it_reopened(
    client: Client, telegram: FakeTelegramAPI
) -> None:
    """Queued at 14:00, told at 23:01 that the chat is closed, a young person who cleared the chat taps START at
    23:30, then again at 9:01 before the morning's timer. Until 2026-12-05 the tap at 23:30 got the whole closed line a
    second time in the wait, and the tap at 9:01 "On ne t'oublie pas : tu es maintenant en position 1" (nothing of the
    reopening), the timer then saying "Le chat du 3018 a rouvert" after it. Now the short reminder at night (with the
    numbers that answer now), and at 9:01 that the chat reopened, once."""
    for update in walk():
        assert await deliver(client, update) == 200
    [conversation] = await eventually(lambda: _by_status(client, Status.QUEUED))
    store, clock = client.app[STORE], running_clock(client)
    await outbox_drained(client)

    async def said_since(count: int) -> list[str] | None:
        lines = [e.text for e in await store.transcript(conversation.id) if e.author.value == "bot"]
        return lines[count:] or None

    count = len(await said_since(0) or [])
    clock.advance(hours=9, minutes=1)  # 23:01 in Paris: closed until 9:00
    await client.app[TIMERS].fire_due()
    [closed] = await eventually(lambda: said_since(count))
    assert "est fermé pour le moment" in closed
    # sent before the clock moves: the outbox's lease is counted on this clock, and a 29-minute jump while the send is
    # in flight (a busy machine, 2026-12-06) ends it at once: the next pass sent the closed line a second time
    await outbox_drained(client)
    clock.advance(minutes=29)  # 23:30
    await eventually(lambda: timer_rearmed(client, conversation.id, TimerKind.QUEUE_REASSURE.value))
    assert await deliver(client, start(910000060)) == 200
    [night] = await eventually(lambda: said_since(count + 1))
    assert "est fermé pour le moment" not in night  # the closed line once in the wait…
    assert "toujours fermé" in night and "demain à 9h" in night  # … then its reminder
    assert "119" in night and "3114" in night and "17" in night
    await outbox_drained(client)

    morning = clock() + timedelta(hours=9, minutes=31)  # 9:01: open again, the next timer at 9:20
    await store.set_timer(conversation.id, TimerKind.QUEUE_REASSURE, morning + timedelta(minutes=19))
    clock.advance(hours=9, minutes=31)
    assert await deliver(client, start(910000061)) == 200
    [reopened] = await eventually(lambda: said_since(count + 2))
    assert "a rouvert" in reopened and "position 1" in reopened
    await outbox_drained(client)
    clock.advance(minutes=20)  # the timer: the usual words, the reopening said once
    await client.app[TIMERS].fire_due()
    [later] = await eventually(lambda: said_since(count + 3))
    assert "rouvert" not in later and "position 1" in later
    await outbox_drained(client)
    sent = [r.body["text"] for r in telegram.accepted()]
    assert sent[-4:] == [closed, night, reopened, later]
