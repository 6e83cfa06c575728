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
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from gateway.conversation import Conversation
from gateway.store import ConversationStore, TranscriptStore

MAX_SHOWN = 50  # the most recently flagged conversations; a board is read at a glance

Card = Callable[[Conversation, datetime], dict[str, Any]]


class FlaggedRoles(ConversationStore, TranscriptStore, Protocol):
    """What the board's flags read of the store: the open conversations with a flag and their transcripts."""


async def flagged(store: FlaggedRoles, card: Card, now: datetime) -> list[dict[str, Any]]:
    """The open conversations with a flag, the most recently flagged first (``Conversation.flagged_at``: when a
    risk was last read in them, on arrival or late), each with its flagged messages."""
    conversations = await store.flagged_conversations(MAX_SHOWN)
    transcripts = await asyncio.gather(*(store.transcript(c.id) for c in conversations))  # their reads batched
    shown = []
    for conversation, transcript in zip(conversations, transcripts, strict=True):
        messages = [{"id": e.id, "at": e.at.isoformat(), "flag": e.flag.to_dict()}
                    for e in transcript if e.flag is not None]  # fmt: skip
        seen = {k: v for k, v in card(conversation, now).items() if k != "summary"}
        shown.append({**seen, "messages": messages})
    return shown
