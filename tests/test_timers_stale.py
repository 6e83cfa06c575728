"""A timer firing for a conversation no longer in the state it was armed for does nothing harmful: it never ends a
conversation whose young person has written since it was armed.

The bot's abandon is armed by its reminder (``bot_abandon_minutes`` after it) and nothing cancels it while the young
person answers the bot (each answer moves the reminder on, not the abandon); an idle close may be left armed on a
record still with the bot (a hand-off whose record the lock's fence refused, ``LockLost``: its timers, slot
``{timers}``, landed beside it; an idle close armed on another app's thread, the bot then answering on the gateway's
own). Until 2026-12-07 each checked the record's status only, and ended a conversation whose young person had just
written: abandoned ("plus de nouvelles") or closed for a day's silence between two of their answers."""

from __future__ import annotations

from datetime import timedelta

from gateway.app import STORE, TIMERS
from gateway.conversation import Status
from gateway.store import TimerKind
from tests.conftest import Clock
from tests.test_timers import Client, bot_lines, conversation_of, settled, start
from tests.test_webchat import hello, say


async def answer(client: Client, token: str, key: str, text: str) -> None:
    async with client.ws_connect("/chat/ws") as ws:
        await hello(ws, token)
        await say(ws, key, text)


async def test_a_young_person_answering_the_bot_after_its_reminder_is_never_abandoned(
    client: Client, clock: Clock
) -> None:
    token = await start(client, ["2"])  # waiting at the next question
    conversation = await conversation_of(client, token, clock)
    clock.advance(minutes=11)
    await client.app[TIMERS].fire_due()  # the reminder: the abandon armed 30 minutes on
    await settled(client, conversation.id)
    reminded = await bot_lines(client, conversation.id)
    assert any("toujours là" in line for line in reminded)
    clock.advance(minutes=25)
    await answer(client, token, "back", "1")  # they answer, 25 minutes after the reminder
    clock.advance(minutes=6)  # the abandon due, 6 minutes after their answer
    await client.app[TIMERS].fire_due()
    await settled(client, conversation.id)
    record = await conversation_of(client, token, clock)
    assert record.status is Status.BOT, "abandoned 6 minutes after the young person answered the bot"
    assert not any("plus de nouvelles" in line for line in await bot_lines(client, conversation.id))
    clock.advance(minutes=11)  # now quiet: reminded, then abandoned as ever
    await client.app[TIMERS].fire_due()
    await settled(client, conversation.id)
    assert sum("toujours là" in line for line in await bot_lines(client, conversation.id)) == 2
    clock.advance(minutes=31)
    await client.app[TIMERS].fire_due()
    await settled(client, conversation.id)
    assert (await conversation_of(client, token, clock)).status is Status.ABANDONED


async def test_an_idle_close_left_on_a_conversation_whose_young_person_just_wrote_closes_nothing(
    client: Client, clock: Clock
) -> None:
    token = await start(client, ["2"])
    conversation = await conversation_of(client, token, clock)
    store = client.app[STORE]
    # as a refused hand-off leaves it: an idle close armed beside a record still with the bot
    await store.set_timer(conversation.id, TimerKind.IDLE_CLOSE, clock() + timedelta(minutes=5))
    clock.advance(minutes=4)
    await answer(client, token, "now", "1")
    clock.advance(minutes=2)  # the idle close due, 2 minutes after their answer
    await client.app[TIMERS].fire_due()
    await settled(client, conversation.id)
    record = await conversation_of(client, token, clock)
    assert record.status is Status.BOT, "closed for a day's silence 2 minutes after the young person wrote"
    assert not any("faute de nouvelles" in line for line in await bot_lines(client, conversation.id))
