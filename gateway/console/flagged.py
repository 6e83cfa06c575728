"""The supervision board's risk flags: every conversation still open (with the bot, waiting, with a listener) in
which a risk was read, the strongest first seen on its card, and each flagged message's time and flag (the class,
the score, the words that matched or the model); the page highlights the ones that arrive live.

A supervisor sees here what a listener sees on a card (``ListenerAPI.card``: pseudonym, channel, language,
status, priority, the listener who holds it; never the sender's address) without its first-contact summary, and no
message's text: reading the words is opening the conversation in the console, which the audit log records
(``console/access.py``).

The conversations are read from the store's index of the open ones with a flag (``ConversationStore.
flagged_conversations``): the page reloads this on every queue or status event (every 2 s at most), and its cost is
the ``MAX_SHOWN`` it shows, however many conversations are open (before, it loaded them all: 1 s at 10,000).

Beside them, "Risques lus après la fin" (:func:`read_late`): the ended conversations in which a risk was read
late, after the young person had left (``Dispatcher._late_after_end``: they were told where to turn, nobody at the
line was), from the last ``READ_LATE_HOURS``, until a supervisor marks each seen (``ConversationStore.read_late``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from gateway.conversation import Conversation
from gateway.store import READ_LATE_HOURS, ConversationStore, TranscriptStore

MAX_SHOWN = 50  # the most recently flagged conversations; a board is read at a glance

Card = Callable[[Conversation, datetime], dict[str, Any]]


class FlaggedRoles(ConversationStore, TranscriptStore, Protocol):
    """What the board's flags read of the store: the open conversations with a flag and their transcripts."""


async def flagged(store: FlaggedRoles, card: Card, now: datetime) -> list[dict[str, Any]]:
    """The open conversations with a flag, the most recently flagged first (``Conversation.flagged_at``: when a
    risk was last read in them, on arrival or late), each with its flagged messages."""
    return await _shown(store, card, now, await store.flagged_conversations(MAX_SHOWN))


async def read_late(store: FlaggedRoles, card: Card, now: datetime) -> list[dict[str, Any]]:
    """The ended conversations in which a risk was read late, in the last ``READ_LATE_HOURS`` and not marked seen,
    the latest first, each with its flagged messages and when it ended."""
    since = now - timedelta(hours=READ_LATE_HOURS)
    conversations = await store.read_late(since, MAX_SHOWN)
    shown = await _shown(store, card, now, conversations)
    return [{**seen, "closed_at": c.closed_at.isoformat() if c.closed_at else None}
            for seen, c in zip(shown, conversations, strict=True)]  # fmt: skip


async def _shown(store: FlaggedRoles, card: Card, now: datetime, conversations: Sequence[Conversation]
                 ) -> list[dict[str, Any]]:  # fmt: skip
    """Each conversation's card (no summary) and its flagged messages (time and flag, never text)."""
    transcripts = await asyncio.gather(*(store.transcript(c.id) for c in conversations))  # their reads batched
    shown = []
    for conversation, transcript in zip(conversations, transcripts, strict=True):
        messages = [{"id": e.id, "at": e.at.isoformat(), "flag": e.flag.to_dict()}
                    for e in transcript if e.flag is not None]  # fmt: skip
        seen = {k: v for k, v in card(conversation, now).items() if k != "summary"}
        shown.append({**seen, "messages": messages})
    return shown
