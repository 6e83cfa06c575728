"""A sextortion understood late (docs/understanding.md, "Late readings"): the model was busy when the young person
wrote it, the bot asked its next question on the keywords alone, and the reading came after. At night (the line
closed) its interrupt cannot hand off: the late reading must still say what the same message read inline says
(flows.yaml's ``say_closed``, where to turn while the line is closed, Pharos), keep the alert, the partners given and
the priority, and never end the conversation. The real Reader (held on a gate), dispatcher, flows.yaml and SQLite."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from gateway.conversation import Conversation, Priority, Status
from gateway.messages import ChannelName, Inbound
from tests.conftest import PARIS
from tests.e2e.channel_support import eventually
from tests.understanding.test_late import Rig, queued, rig

__all__ = ["rig"]  # the fixture the tests below use

IN_THEIR_WORDS = "il veut 50 balles en carte paysafecard sinon tout le lycée verra la vidéo"  # the model only
NIGHT = datetime(2026, 12, 6, 1, 30, tzinfo=PARIS).astimezone(UTC)  # the line opens at 9:00
DAY = datetime(2026, 12, 6, 14, 0, tzinfo=PARIS).astimezone(UTC)


async def _asking(r: Rig, sender: str) -> Conversation:
    """A conversation whose first question the bot asked."""
    conversation = await r.dispatcher.start_conversation(ChannelName.WEBCHAT, sender, "fr")
    assert conversation.status is Status.BOT
    return conversation


async def _read_late(r: Rig, sender: str, number: int, text: str) -> Conversation:
    """``text`` written while the model is busy, then read late: the conversation once the reading is applied."""
    await r.busy()
    conversation = await r.send(sender, number, text)
    r.release()
    await eventually(lambda: asyncio.sleep(0, bool({"flagged", "read"} & set(r.outcomes))))
    return await r.conversation(conversation.id)


async def _inline(r: Rig, sender: str, text: str) -> tuple[Conversation, list[str]]:
    """The same message read in time: the conversation and what the bot said to it."""
    r.gate.set()
    conversation = await _asking(r, sender)
    before = await r.bot_said(conversation.id)
    assert await r.dispatcher.handle_inbound(Inbound(ChannelName.WEBCHAT, sender, "inline", text))
    return await r.conversation(conversation.id), (await r.bot_said(conversation.id))[len(before) :]


async def _told_late(r: Rig, sender: str, *texts: str) -> tuple[Conversation, list[str]]:
    """A conversation whose first question the bot asked, ``texts`` written while the model is busy, then read late:
    the conversation once each reading is flagged, and what the bot said since the last of them was written."""
    conversation = await _asking(r, sender)
    await r.busy()
    for number, text in enumerate(texts, start=1):
        await r.send(sender, number, text)
    before = await r.bot_said(conversation.id)
    r.release()
    await eventually(lambda: asyncio.sleep(0, r.outcomes.count("flagged") == len(texts)))
    return await r.conversation(conversation.id), (await r.bot_said(conversation.id))[len(before) :]


ANSWERS = {"urgency": "non", "language": "français", "age": "15 ans", "who": "pour moi"}  # the walk's first answers


async def _answered(r: Rig, sender: str, conversation_id: str) -> list[str]:
    """The bot's questions answered (the walk's first as ``ANSWERS``, the others "non") until it hands off: the steps
    asked."""
    asked: list[str] = []
    for number in range(2, 12):
        found = await r.conversation(conversation_id)
        if found.status is not Status.BOT:
            break
        asked.append(found.engine.get("step", ""))
        await r.send(sender, number, ANSWERS.get(found.engine.get("step", ""), "non"))
    return asked


async def _topic_chosen_then_read_late(r: Rig, sender: str) -> Conversation:
    """Ten minutes before the line opens, the topic answered "autre" at its question; the bot asks whether at home
    when a blackmail is written, the model busy, then read late: the conversation once it is flagged."""
    r.clock.now = MORNING
    conversation = await _asking(r, sender)
    answers = {**ANSWERS, "topic": "autre"}
    for number in range(1, 6):
        await r.send(sender, number, answers[(await r.conversation(conversation.id)).engine["step"]])
    assert (await r.conversation(conversation.id)).engine["step"] == "home"
    await r.busy()
    await r.send(sender, 10, IN_THEIR_WORDS)
    r.release()
    await eventually(lambda: asyncio.sleep(0, "flagged" in r.outcomes))
    return await r.conversation(conversation.id)


async def test_a_sextortion_read_late_at_night_says_what_its_interrupt_says_inline_and_the_bot_goes_on(
    rig: Callable[..., Awaitable[Rig]],
) -> None:
    inline = await rig(timeout=30)
    inline.clock.now = NIGHT
    ended, told = await _inline(inline, "ines", IN_THEIR_WORDS)
    assert ended.status is Status.CLOSED  # inline, the closed line ends it: its texts are what the late one owes
    engine = inline.flows.engine()
    assert told == [
        *_advice(inline),
        engine.closed_line("listeners", "fr", NIGHT, "closed_line_again"),
        inline.partner("pharos"),
    ]

    r = await rig()
    r.clock.now = NIGHT
    after, late = await _told_late(r, "lea", IN_THEIR_WORDS)
    assert late == told  # the advice, where to turn now, Pharos
    assert after.status is Status.BOT and after.engine.get("step")  # never ended: the bot goes on
    assert after.alert == "sextortion" and after.at_risk  # a blackmail going on, as the inline hand-off records
    assert after.partners_given == ("pharos",) and after.interrupts_said == ("sextortion",)
    assert after.priority is Priority.HIGH  # the interrupt's, kept for a later hand-off (never lowered)


async def test_a_later_hand_off_at_night_gives_neither_the_advice_nor_pharos_again(
    rig: Callable[..., Awaitable[Rig]],
) -> None:
    r = await rig()
    r.clock.now = NIGHT
    conversation = await _asking(r, "lea")
    await _read_late(r, "lea", 1, IN_THEIR_WORDS)
    async with r.store.lock(conversation.id):  # handed off later (a Messenger page's human, a transfer)
        found = await r.conversation(conversation.id)
        await r.dispatcher.enqueue(found, r.flows.engine(), "listeners", found.priority, r.clock())
        await r.store.save_conversation(found)
    await r.send("lea", 2, "il me fait du chantage")  # the keywords' sextortion, waiting
    said = await r.bot_said(conversation.id)
    assert said.count(r.partner("pharos")) == 1, said
    (advice,) = _advice(r)
    assert said.count(advice) == 1, said
    waiting = await r.conversation(conversation.id)
    assert waiting.status is Status.QUEUED and waiting.priority is Priority.HIGH and waiting.alert == "sextortion"


async def test_a_sextortion_read_late_in_the_day_hands_off_as_inline(rig: Callable[..., Awaitable[Rig]]) -> None:
    inline = await rig(timeout=30)
    inline.clock.now = DAY
    handed, told = await _inline(inline, "ines", IN_THEIR_WORDS)
    assert handed.status is Status.QUEUED and handed.priority is Priority.HIGH and handed.alert == "sextortion"

    r = await rig()
    r.clock.now = DAY
    conversation = await _asking(r, "lea")
    await r.busy()
    await r.send("lea", 1, IN_THEIR_WORDS)
    before = await r.bot_said(conversation.id)
    r.release()
    after = await eventually(lambda: _queued(r, conversation.id))
    second = [t.replace("position 1", "position 2").replace("12 minutes", "24 minutes") for t in told]  # ines first
    assert (await r.bot_said(conversation.id))[len(before) :] == second
    assert after.priority is Priority.HIGH and after.alert == "sextortion" and after.queue == "listeners"
    assert after.partners_given == handed.partners_given == ("pharos",)
    assert after.interrupts_said == handed.interrupts_said == ("sextortion",)


# A late reading after the conversation ended: tests/understanding/test_late_danger.py (told, never dropped).


def _advice(r: Rig) -> list[str]:
    """flows.yaml's sextortion interrupt's words when the line is closed (``say_closed``), in French."""
    engine = r.flows.engine()
    return [engine.text(t, "fr") for t in engine.flow.interrupts["sextortion"].then.say_closed or ()]


async def _queued(r: Rig, conversation_id: str) -> Conversation | None:
    found = await r.conversation(conversation_id)
    return found if found.status is Status.QUEUED else None


MORNING = datetime(2026, 12, 6, 8, 50, tzinfo=PARIS).astimezone(UTC)  # ten minutes before the line opens


async def test_a_sextortion_read_late_before_the_line_opens_keeps_its_priority_at_the_bot_s_hand_off(
    rig: Callable[..., Awaitable[Rig]],
) -> None:
    """The bot went on after the late reading; the line opened meanwhile, and the answers route to a hand-off (the
    topic the sextortion gave): the young person is handed off at the sextortion's "high", never lower."""
    r = await rig()
    r.clock.now = MORNING
    conversation = await _asking(r, "lea")
    assert (await _read_late(r, "lea", 1, IN_THEIR_WORDS)).priority is Priority.HIGH
    r.clock.advance(minutes=15)  # open now
    await _answered(r, "lea", conversation.id)
    handed = await r.conversation(conversation.id)
    assert handed.route == "illegal_content_open"  # the topic the late sextortion gave (its question not asked)
    assert handed.status is Status.QUEUED and handed.priority is Priority.HIGH
    assert r.partner("pharos") not in (await r.bot_said(conversation.id))[-3:]  # given once, at the late reading


async def test_two_blackmails_read_late_at_night_say_the_advice_the_closed_line_and_pharos_once(
    rig: Callable[..., Awaitable[Rig]],
) -> None:
    r = await rig()
    r.clock.now = NIGHT
    after, told = await _told_late(r, "lea", IN_THEIR_WORDS, IN_THEIR_WORDS)  # again: the bot asked its question again
    engine = r.flows.engine()
    once = [*_advice(r), engine.closed_line("listeners", "fr", NIGHT, "closed_line_again"), r.partner("pharos")]
    assert told == once
    assert after.status is Status.BOT


async def test_the_interrupt_again_after_a_late_sextortion_at_night_gives_neither_the_advice_nor_pharos_again(
    rig: Callable[..., Awaitable[Rig]],
) -> None:
    """The bot went on after the late reading (its topic given: not asked); the young person answered its questions,
    "il me fait du chantage" at one of them: the sextortion interrupt again (the conversation ends on the closed
    line), its advice and Pharos given already."""
    r = await rig()
    r.clock.now = NIGHT
    conversation = await _asking(r, "lea")
    assert (await _read_late(r, "lea", 1, "il veut 50 balles en paysafecard sinon tout le monde verra")).alert
    answers = {"urgency": "non", "language": "français", "age": "15 ans", "who": "il me fait du chantage"}
    for number in range(2, 12):
        found = await r.conversation(conversation.id)
        if found.status is not Status.BOT:
            break
        text = answers.get(found.engine.get("step", ""), "il a des photos de moi")
        assert await r.dispatcher.handle_inbound(Inbound(ChannelName.WEBCHAT, "lea", f"m{number}", text))
    ended = await r.conversation(conversation.id)
    said = await r.bot_said(conversation.id)
    assert ended.status is Status.CLOSED and ended.route == "sextortion"  # the interrupt again, inline: ended
    assert said.count(r.partner("pharos")) == 1 and said.count(_advice(r)[0]) == 1, said
    engine = r.flows.engine()
    assert said[-1] == engine.closed_line("listeners", "fr", NIGHT, "closed_line_again")  # where to turn, last


async def test_a_sextortion_read_late_while_waiting_at_night_says_the_closed_advice_and_pharos(
    rig: Callable[..., Awaitable[Rig]],
) -> None:
    """Handed off before its reading (a wait going on past the closing time): as the docs say, the priority raised,
    the interrupt's words for a closed line and Pharos, then where to turn now, the alert; still waiting."""
    r = await rig()
    r.clock.now = NIGHT
    conversation = await queued(r, "lea")
    before = await r.bot_said(conversation.id)
    after = await _read_late(r, "lea", 1, IN_THEIR_WORDS)
    again = r.flows.engine().closed_line("listeners", "fr", NIGHT, "closed_line_again")  # told at the hand-off
    assert (await r.bot_said(conversation.id))[len(before) :] == [*_advice(r), r.partner("pharos"), again]
    assert after.status is Status.QUEUED and after.priority is Priority.HIGH and after.alert == "sextortion"
    assert after.partners_given == ("pharos",) and after.interrupts_said == ("sextortion",)


async def test_a_sextortion_read_late_while_the_bot_asks_gives_the_card_its_topic_without_asking_it_again(
    rig: Callable[..., Awaitable[Rig]],
) -> None:
    """The inline interrupt writes ``topic: sextortion`` on the listener's card; read late while the bot asks (its
    words also name "le lycée", a school bullying's synonym, noted for the topic question when the message came), the
    same topic: the interrupt's wins over the same message's other words, the topic question is not asked, and the
    listener's card at the bot's hand-off reads "Chantage, sextorsion" with its alert."""
    r = await rig()
    r.clock.now = MORNING
    conversation = await _asking(r, "lea")
    noted = await _read_late(r, "lea", 1, IN_THEIR_WORDS)
    assert noted.alert == "sextortion"
    r.clock.advance(minutes=15)  # open now
    asked = await _answered(r, "lea", conversation.id)
    handed = await r.conversation(conversation.id)
    assert handed.status is Status.QUEUED
    assert "topic" not in asked, asked  # answered by the late interrupt: never asked
    engine = r.flows.engine()
    topic = dict(handed.summary).get("Sujet")  # the card's label (flows.yaml's topic question, in French)
    assert topic is not None and topic.startswith(engine.display_value("topic", "sextortion")), handed.summary
    assert "sextortion" in topic and engine.display_value("topic", "school_bullying") not in topic, handed.summary


async def test_a_sextortion_read_late_while_waiting_at_night_ends_on_where_to_turn_now(
    rig: Callable[..., Awaitable[Rig]],
) -> None:
    """Waiting at night, told the closed line at the hand-off; forty minutes later a blackmail in their own words
    while the model is busy: the message's own turn says the closed line's reminder, then the late reading the advice
    and Pharos. As inline (the advice, Pharos, then the reminder), what the young person reads last is where to turn
    now, not a reporting site alone."""
    r = await rig()
    r.clock.now = NIGHT
    conversation = await queued(r, "lea")
    r.clock.advance(minutes=40)  # past the reminder's pace (timers.closed_reminder_minutes)
    engine = r.flows.engine()
    again = engine.closed_line("listeners", "fr", r.clock(), "closed_line_again")
    before = await r.bot_said(conversation.id)
    after = await _read_late(r, "lea", 1, IN_THEIR_WORDS)
    told = (await r.bot_said(conversation.id))[len(before) :]
    assert told[-3:] == [*_advice(r), r.partner("pharos"), again], told  # where to turn now, last
    assert after.status is Status.QUEUED and after.alert == "sextortion"


async def test_a_sextortion_read_late_never_overwrites_the_topic_the_young_person_chose(
    rig: Callable[..., Awaitable[Rig]],
) -> None:
    """The topic chosen at its question before the late reading stays theirs: the interrupt notes nothing over it."""
    r = await rig()
    after = await _topic_chosen_then_read_late(r, "lea")
    assert after.alert == "sextortion" and after.engine["step"] == "home"
    assert after.engine["fields"]["topic"] == "other" and "topic" not in after.engine.get("noted", {})


async def test_a_sextortion_read_late_after_a_chosen_topic_shows_beside_it_on_the_card_at_the_hand_off(
    rig: Callable[..., Awaitable[Rig]],
) -> None:
    """Inline, the interrupt's topic shows beside the young person's own answer ("Autre chose · Chantage, sextorsion
    (alerte « sextortion »)", ``Engine.alerted``); read late while the bot asks, the same at the bot's hand-off."""
    r = await rig()
    conversation = await _topic_chosen_then_read_late(r, "lea")
    r.clock.advance(minutes=15)  # open now
    await r.send("lea", 11, "non")  # at home: no
    await r.send("lea", 12, "je préfère pas dire")  # the details
    handed = await r.conversation(conversation.id)
    assert handed.status is Status.QUEUED
    engine = r.flows.engine()
    topic = dict(handed.summary)["Sujet"]
    assert topic.startswith(engine.display_value("topic", "other")), topic  # their answer first, kept
    assert engine.display_value("topic", "sextortion") in topic and "sextortion »" in topic, topic
