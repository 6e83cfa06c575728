"""Danger the keywords missed and the model read late, where the reading used to be dropped (docs/understanding.md,
"Late readings"): a message on a Messenger thread another app owns (``standby``) with no conversation open, and a
conversation that ended before its message's reading. Escalate, never silence. The real Reader (held on a gate, as a
busy model), the real dispatcher, flows.yaml and the SQLite store; the clock pinned (``tests.conftest.Clock``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from gateway.conversation import Priority, Status
from gateway.messages import ChannelName, Inbound
from tests.e2e.channel_support import eventually
from tests.understanding.test_late import RISKY, Rig, rig

__all__ = ["rig"]  # the fixture the tests below use


async def _told_busy(r: Rig, inbound: Inbound) -> asyncio.Task[bool]:
    """``inbound``'s processing, once the model told it ``busy`` (the model is held until ``r.release()``)."""
    told: list[str] = []
    r.reader._on_failure = told.append  # what the app counts in ``gateway_understanding_failures``
    processing = asyncio.create_task(r.dispatcher.handle_inbound(inbound))
    await eventually(lambda: asyncio.sleep(0, "busy" in told))
    return processing


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
