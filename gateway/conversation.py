"""The conversation record: what the store keeps about one conversation with one young person.

This module holds the data only. Which status may follow which (bot → queued → with_listener → closed, …) is
the lifecycle machine's business (``gateway/flows/lifecycle.py``); the store saves whatever record it is given.

``sender`` is the channel's address of the young person: it is excluded from ``repr`` (so a logged record or a
failed assertion never shows it), as are the engine state and the summary, which hold the young person's
answers. A listener only ever sees the ``pseudonym``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from gateway.flows.lifecycle import ACTIVE, Status
from gateway.messages import ChannelName

__all__ = [
    "ACTIVE_STATUSES", "Conversation", "Priority", "RiskFlag", "Status", "new_conversation_id", "new_pseudonym",
]  # fmt: skip


ACTIVE_STATUSES = ACTIVE


class Priority(StrEnum):
    URGENT = "urgent"
    HIGH = "high"
    NORMAL = "normal"

    @property
    def rank(self) -> int:
        """0 is served first: urgent, then high, then normal."""
        return _RANKS[self]


_RANKS = {Priority.URGENT: 0, Priority.HIGH: 1, Priority.NORMAL: 2}

# Short, neutral, easy to say aloud in a team ("I'll take Loutre-2291"); ASCII so every console font shows them.
_ANIMALS = (
    "Renard", "Loutre", "Hibou", "Castor", "Blaireau", "Lynx", "Heron", "Mouette", "Dauphin", "Panda",
    "Koala", "Lama", "Zebre", "Faucon", "Colibri", "Pingouin", "Tortue", "Lapin", "Ours", "Loup",
    "Chamois", "Marmotte", "Herisson", "Ecureuil", "Moineau", "Cigogne", "Phoque", "Otarie", "Bison", "Gazelle",
)  # fmt: skip


def new_conversation_id() -> str:
    """A random, URL-safe id (128 bits): unguessable, so it can appear in console URLs. Never begins with "-",
    which a command line would read as an option (``gateway erase --conversation ID``)."""
    conversation_id = secrets.token_urlsafe(16)
    while conversation_id.startswith("-"):  # one draw in 64: draw again (the id stays uniform over the others)
        conversation_id = secrets.token_urlsafe(16)
    return conversation_id


def new_pseudonym() -> str:
    """``Renard-4821``: 30 animals × 9000 numbers, unique enough among the conversations of a day."""
    return f"{secrets.choice(_ANIMALS)}-{secrets.randbelow(9000) + 1000}"


@dataclass(frozen=True, slots=True)
class RiskFlag:
    """A risk read in a young person's message, for the listeners: the class, how sure, and why.

    ``source`` is ``keywords`` (``words`` are the interrupt's words that matched) or ``model`` (``score`` is the
    model's probability for the class). Kept on the transcript entry (one read late too: ``TranscriptStore.
    flag_entry``) and, the highest so far, on the conversation.
    """

    risk: str
    score: float
    source: str
    words: tuple[str, ...] = ()

    def replaces(self, kept: RiskFlag | None) -> bool:
        """Whether this flag takes the place of ``kept`` where the strongest is kept (the conversation's, an
        entry's): none yet, or a score at least as high. Never a weaker one over a stronger."""
        return kept is None or self.score >= kept.score

    def to_dict(self) -> dict[str, object]:
        return {"risk": self.risk, "score": self.score, "source": self.source, "words": list(self.words)}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> RiskFlag | None:
        if not data:
            return None
        words = tuple(str(w) for w in data.get("words", ()))
        return cls(str(data["risk"]), float(data["score"]), str(data["source"]), words)


@dataclass(slots=True)
class Conversation:
    """One conversation, saved whole by the store. Datetimes are aware and in UTC."""

    id: str
    channel: ChannelName
    sender: str = field(repr=False)
    pseudonym: str
    created_at: datetime
    updated_at: datetime
    status: Status = Status.BOT
    engine: dict[str, Any] = field(default_factory=dict, repr=False)  # opaque, JSON-able engine state
    flow_version: str = ""
    queue: str | None = None
    priority: Priority = Priority.NORMAL
    summary: list[tuple[str, str]] = field(default_factory=list, repr=False)  # [label, value] for listeners
    route: str | None = None  # where the flow sent the young person (listener, info, referral…), for stats
    listener: str | None = None
    outcome: str | None = None  # the closing category
    last_inbound_at: datetime | None = None  # the young person's last message: when written if dated (written_at)
    queued_at: datetime | None = None
    taken_at: datetime | None = None  # the last time a listener took it (wait-time statistics)
    # since when the young person waits without a human: their arrival in a queue, kept by a transfer of a waiting
    # one; a hand-back (its entry keeps its place by arrival) or a transfer of a held one starts it again. The queue's
    # card and the board's longest wait count from it (console/api.py, console/stats.py); before 2026-12-05 they
    # counted from the entry's arrival, the time with a listener included
    waiting_since: datetime | None = None
    first_wait_seconds: int | None = None  # arrival to the first take (the period figures' wait), set at that take
    closed_at: datetime | None = None
    client: str | None = field(default=None, repr=False)  # web chat: keyed hash of the client's address
    left_at: datetime | None = None  # the young person left (quick exit, "Terminer", the page gone): gateway/leaving.py
    left_how: str | None = None  # "quick_exit", "ended", "gone" or "blocked" (on WhatsApp: STOP, ``unsubscribed``)
    # when the young person last unblocked the line, as the provider dates it (WhatsApp's START, UNSTOP, YES: Twilio's
    # ``date_sent`` when caught up from its list, else when a webhook took it; Telegram's ``member``): a block or STOP
    # dated before it, taken late, marks nothing (the last of the two wins; gateway/dispatcher.py, ``unblocked_since``)
    unblocked_at: datetime | None = None
    flag: RiskFlag | None = field(default=None, repr=False)  # the strongest risk read in the young person's words
    erase_asked_at: datetime | None = None  # the young person wrote the erasure phrase: their next message answers
    purged_at: datetime | None = None  # retention over: only what the figures need is left (gateway/retention.py)
    closed_notice_for: datetime | None = None  # the wait (its queued_at) the closed-line notice was given in
    # when the young person was last told the line is closed and where to turn meanwhile (the closed-line notice):
    # unlike ``closed_notice_for``, kept through the reopening, so the console's card tells a listener arriving in
    # the morning who was told what overnight (shown while it is later than ``waiting_since``: this wait's)
    closed_told_at: datetime | None = None
    window_paused_for: datetime | None = None  # the last message (last_inbound_at) after which queue messages paused
    # the young person's last message came on a thread another app owns (Messenger's ``standby``: a page admin in
    # Meta's inbox), or, waiting, a page admin answered them from Meta's inbox since (``Echo.human``): the bot's timed
    # queue messages hold back until they write on the gateway's own thread again
    standby_at: datetime | None = None
    # when a risk was last read in its messages (on arrival or late): the supervision board's order, kept in the
    # store's index of the open conversations with a flag (``ConversationStore.flagged_conversations``)
    flagged_at: datetime | None = None
    # web chat: when a page last opened the conversation (its hello): a socket closed before that is not a page
    # gone, whichever instance arms its timer and however late (gateway/leaving.py)
    page_opened_at: datetime | None = None
    # the partners whose numbers the young person was given at the hand-off or while waiting: a risk read while
    # waiting brings those it lacks, once each, even when it raises no priority (Dispatcher._escalate)
    partners_given: tuple[str, ...] = ()
    # the partners a risk read while a listener held the conversation calls for and the bot did not give then (it says
    # nothing while held): given when it goes back to a queue (a hand-back, a transfer), each once (Dispatcher.owed)
    partners_owed: tuple[str, ...] = ()
    # the interrupts (their routes) whose first words (``say``) the young person got, at the hand-off or while
    # waiting: one read while waiting says them once in the conversation (Dispatcher._escalate)
    interrupts_said: tuple[str, ...] = ()
    # why the young person is at risk when no flag records it (the bulk close keeps them, the idle close is an
    # alert: :attr:`at_risk`): the route of a referring interrupt without a risk class read in their words (a
    # sextortion going on: ``sextortion``), at the hand-off, while waiting or held, or of the routing rule that handed
    # them off at "high" ("je ne sais pas" about being in danger: ``unsure_danger``; ``Dispatcher._conclude``). The
    # first kept; never a word
    alert: str | None = None
    # when a human of the line first answered from outside the gateway (a page admin in Meta's inbox: an echo,
    # ``Dispatcher.handle_echo``): the queue's card says so, and one who leaves before a listener takes them is not
    # counted as left unanswered (``console/stats.py``)
    page_answered_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.status.active

    @property
    def at_risk(self) -> bool:
        """Whether the young person's words were flagged (the keywords or the model: :attr:`flag`, on arrival or
        late), the conversation was handed off as urgent (a risk interrupt, or the flow's first question answered
        "in danger right now", which no flag records), or it has an :attr:`alert` (a referring interrupt without a
        risk class, a sextortion going on; or a routing rule's hand-off at "high", "je ne sais pas" about being in
        danger; until 2026-12-05 neither was kept). A supervisor's bulk close keeps it unless told otherwise; the
        idle timer closing it unseen is an alert (``gateway/leaving.py``). Not "I want a human" nor answers the bot
        never understood (the fallback), both "high" too: what a troll's flood is made of."""
        return self.flag is not None or self.alert is not None or self.priority is Priority.URGENT

    @property
    def risk_reason(self) -> str | None:
        """What the supervision page's badge and the idle close's alert name for a conversation at risk: the class
        its words were flagged for, else its :attr:`alert` (an interrupt's or a rule's name); never a word. None for
        an urgent hand-off that has neither."""
        return self.flag.risk if self.flag is not None else self.alert

    @classmethod
    def start(cls, channel: ChannelName, sender: str, now: datetime) -> Conversation:
        """A fresh conversation with the bot, with a new id and pseudonym."""
        return cls(
            id=new_conversation_id(),
            channel=channel,
            sender=sender,
            pseudonym=new_pseudonym(),
            created_at=now,
            updated_at=now,
        )
