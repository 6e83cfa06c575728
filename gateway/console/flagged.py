"""The supervision board's risk flags: every conversation still open (with the bot, waiting, with a listener) in
which a risk was read, the strongest first seen on its card, and each flagged message's time and flag (the class,
the score, the words that matched or the model); the page highlights the ones that arrive live.

A supervisor sees here what a listener sees on a card (``ListenerAPI.card``: pseudonym, channel, language,
status, priority, the listener who holds it; never the sender's address) without its first-contact summary, and no
message's text: reading the words is opening the conversation in the console, which the audit log records
(``console/access.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from gateway.conversation import Conversation, Status
from gateway.store import ConversationStore, TranscriptStore

MAX_SHOWN = 50  # the most recently flagged conversations; a board is read at a glance
OPEN = (Status.WITH_LISTENER, Status.QUEUED, Status.BOT)

Card = Callable[[Conversation, datetime], dict[str, Any]]


class FlaggedRoles(ConversationStore, TranscriptStore, Protocol):
    """What the board's flags read of the store: the open conversations and their transcripts."""


async def flagged(store: FlaggedRoles, card: Card, now: datetime) -> list[dict[str, Any]]:
    """The open conversations with a flag, the most recently flagged first, each with its flagged messages."""
    shown = []
    for status in OPEN:
        for conversation in await store.conversations_by_status(status):
            if conversation.flag is None:
                continue
            messages = [{"id": e.id, "at": e.at.isoformat(), "flag": e.flag.to_dict()}
                        for e in await store.transcript(conversation.id) if e.flag is not None]  # fmt: skip
            seen = {k: v for k, v in card(conversation, now).items() if k != "summary"}
            shown.append({**seen, "messages": messages})
    shown.sort(key=lambda c: max((m["at"] for m in c["messages"]), default=""), reverse=True)
    return shown[:MAX_SHOWN]
