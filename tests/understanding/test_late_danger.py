"""Danger the keywords missed and the model read late, where the reading used to be dropped (docs/understanding.md,
"Late readings"): a message on a Messenger thread another app owns (``standby``) with no conversation open, and a
conversation that ended before its message's reading. Escalate, never silence. The real Reader (held on a gate, as a
busy model), the real dispatcher, flows.yaml and the SQLite store; the clock pinned (``tests.conftest.Clock``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest

from gateway.conversation import Conversation, Priority, Status
from gateway.erasure import Eraser
from gateway.messages import ChannelName, Inbound
from gateway.understanding.late import Late
from tests.e2e.channel_support import eventually
from tests.understanding.test_late import RISKY, Rig, rig
from tests.understanding.test_late_night import IN_THEIR_WORDS, NIGHT, _advice, _asking

__all__ = ["rig"]  # the fixture the tests below use


async def _told_busy(r: Rig, inbound: Inbound) -> asyncio.Task[bool]:
    """``inbound``'s processing, once the model told it ``busy`` (the model is held until ``r.release()``)."""
    told: list[str] = []
    r.reader._on_failure = told.append  # what the app counts in ``gateway_understanding_failures``
    processing = asyncio.create_task(r.dispatcher.handle_inbound(inbound))
    await eventually(lambda: asyncio.sleep(0, "busy" in told))
    return processing


async def _ended_before_its_reading(r: Rig, sender: str, text: str) -> Conversation:
    """A conversation whose first question the bot asked; ``text`` written while the model is busy, then "au revoir"
    ends the conversation before its reading (held until ``r.release()``): the conversation as it was asking."""
    conversation = await _asking(r, sender)
    await r.busy()
    await r.send(sender, 1, text)
    assert await r.dispatcher.handle_inbound(Inbound(ChannelName.WEBCHAT, sender, "m2", "au revoir"))  # ended first
    return conversation


async def test_a_risk_only_the_model_reads_late_on_another_app_s_thread_with_nothing_open_starts_a_conversation(
    rig: Callable[..., Awaitable[Rig]],
) -> None:
    """Until 2026-12-06 such a message (the model busy when it came) started nothing and was never read again: no
    conversation, no listener ever knew. Now it is read whole before nothing is decided, and its risk opens a
    conversation for the listeners at its priority, as a risk read in time there does."""
    r = await rig()
    await r.busy()
    standby = Inbound(ChannelName.MESSENGER, "psid-1", "m_standby", RISKY, standby=True)
    processing = await _told_busy(r, standby)
    r.release()
    assert await processing
    conversation = await r.store.find_active_conversation(ChannelName.MESSENGER, "psid-1")
    assert conversation is not None, "the risk read late started nothing"
    assert conversation.status is Status.QUEUED and conversation.priority is Priority.URGENT
    assert conversation.flag is not None and conversation.flag.source == "model"
    assert [e.text for e in await r.said(conversation.id)] == [RISKY]


async def test_harmless_words_on_another_app_s_thread_read_late_still_start_nothing(
    rig: Callable[..., Awaitable[Rig]],
) -> None:
    r = await rig()
    await r.busy()
    standby = Inbound(ChannelName.MESSENGER, "psid-2", "m_plain", "c quoi les horaires", standby=True)
    processing = await _told_busy(r, standby)
    r.release()
    assert await processing
    assert await r.store.find_active_conversation(ChannelName.MESSENGER, "psid-2") is None
    for status in Status:
        assert await r.store.conversations_by_status(status) == []


async def test_a_blackmail_read_late_after_the_young_person_said_goodbye_gets_its_advice_and_is_flagged(
    rig: Callable[..., Awaitable[Rig]], caplog: pytest.LogCaptureFixture
) -> None:
    """Until 2026-12-06 a late reading of a message whose conversation ended meanwhile ("au revoir" right after the
    blackmail) was dropped: no "ne paie pas", no closed line, no Pharos, and nobody at the line knew. Now the young
    person is told what the interrupt says with the line as it is (closed at night), once; the conversation keeps
    the alert, counted and logged for supervision; it stays ended."""
    caplog.set_level(logging.INFO)
    r = await rig()
    r.clock.now = NIGHT
    conversation = await _ended_before_its_reading(r, "lea", IN_THEIR_WORDS)
    assert (await r.conversation(conversation.id)).status is Status.CLOSED
    before = await r.bot_said(conversation.id)
    r.release()
    await eventually(lambda: asyncio.sleep(0, r.late.waiting() == 0 and bool(r.outcomes[1:])))
    engine = r.flows.engine()
    told = (await r.bot_said(conversation.id))[len(before) :]
    assert told == [*_advice(r), engine.closed_line("listeners", "fr", NIGHT, "closed_line_again"), r.partner("pharos")]
    after = await r.conversation(conversation.id)
    assert after.status is Status.CLOSED  # never reopened, nor ended twice
    assert after.alert == "sextortion" and after.at_risk  # a blackmail going on (a topic's interrupt: no risk flag)
    assert after.partners_given == ("pharos",) and after.interrupts_said == ("sextortion",)
    [blackmail, _] = await r.said(conversation.id)
    assert "ended" in r.outcomes
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "read late after its conversation ended" in logged and IN_THEIR_WORDS not in logged

    again = Late(conversation.id, blackmail.id, IN_THEIR_WORDS)  # the same reading applied twice: told once
    reading = await r.reader.read_late(IN_THEIR_WORDS)
    assert reading is not None
    await r.dispatcher.apply_late(again, reading)
    assert (await r.bot_said(conversation.id))[len(before) :] == told


async def test_a_late_reading_of_an_erased_conversation_says_and_writes_nothing(
    rig: Callable[..., Awaitable[Rig]],
) -> None:
    """An erasure wins: the young person asked to be forgotten, the late reading finds nothing to tell."""
    r = await rig()
    r.clock.now = NIGHT
    conversation = await _ended_before_its_reading(r, "lea", IN_THEIR_WORDS)  # ended, then erased
    eraser = Eraser(r.store, r.dispatcher, r.flows, lambda channel, sender: "k", clock=r.clock, late=r.late)
    assert await eraser.erase_conversation(conversation.id, "supervisor", "console") is not None
    r.gate.set()
    reading = await r.reader.read_late(IN_THEIR_WORDS)
    assert reading is not None
    assert not await r.dispatcher.apply_late(Late(conversation.id, "m1", IN_THEIR_WORDS), reading)
    assert await r.store.get_conversation(conversation.id) is None
    assert await r.store.transcript(conversation.id) == []


async def test_a_suicide_read_late_after_the_end_flags_the_message_and_gives_the_numbers(
    rig: Callable[..., Awaitable[Rig]],
) -> None:
    r = await rig()
    conversation = await _ended_before_its_reading(r, "zoe", RISKY)
    before = await r.bot_said(conversation.id)
    r.release()
    # "ended" is told as the reading is applied, before its writes: its end ("flagged", once the store kept it)
    await eventually(lambda: asyncio.sleep(0, "ended" in r.outcomes and "flagged" in r.outcomes))
    after = await r.conversation(conversation.id)
    assert after.status is Status.CLOSED and after.priority is Priority.URGENT
    assert after.flag is not None and after.flag.risk == "suicide" and after.flag.source == "model"
    assert "3114" in after.partners_given
    told = (await r.bot_said(conversation.id))[len(before) :]
    assert r.partner("3114") in told
    [risky, _] = await r.said(conversation.id)
    assert risky.flag is not None and risky.flag.source == "model"


async def test_a_risk_read_late_after_the_end_is_listed_on_the_supervision_board(
    rig: Callable[..., Awaitable[Rig]],
) -> None:
    """Until 2026-12-06 only a metric and a WARNING log said it: the board lists open flagged conversations only.
    Now the ended conversation is on the supervisors' "Risques lus après la fin" (``ConversationStore.read_late``)."""
    r = await rig()
    conversation = await _ended_before_its_reading(r, "zoe", RISKY)
    assert await r.store.read_late(r.clock.now - timedelta(hours=1), 50) == []
    r.release()
    # "ended" is told as the reading is applied, before its writes: its end ("flagged", once the store kept it)
    await eventually(lambda: asyncio.sleep(0, "ended" in r.outcomes and "flagged" in r.outcomes))
    [listed] = await r.store.read_late(r.clock.now - timedelta(hours=1), 50)
    assert listed.id == conversation.id and listed.status is Status.CLOSED
