"""The conversation lifecycle: an explicit ``transitions`` machine whose illegal transitions raise.

    bot ──handoff──▶ queued ──take──▶ with_listener ──close──▶ closed
     │                 ▲  │  ◀──hand_back── │
     │                 │  └──transfer──┐    ├──transfer──▶ queued
     │                 └───────────────┘    └──abandon───▶ abandoned (the young person left)
     ├──refer──▶ referred        ├──end──▶ closed        └──abandon──▶ abandoned
    queued ──close──▶ closed       queued ──abandon──▶ abandoned

:func:`transition` is the one way a conversation's status changes. The machine says whether the move is legal
(:class:`~gateway.errors.IllegalTransition` otherwise, before anything changed) and where it leads; then the
effects of entering the new status run, through the :class:`Effects` the caller gives (their store side lives
outside ``gateway/flows/``): a final status releases the conversation (its queue place, the listener's
capacity) and stops its timers; every new status is published. :func:`advance` answers the same question
without moving, for a caller that must know before it acts. The machine is built once and has no model: it is
asked (``get_transitions``), never set to a conversation's state.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Protocol, TypeVar

from transitions import Machine

from gateway.errors import IllegalTransition


class Status(StrEnum):
    BOT = "bot"
    QUEUED = "queued"
    WITH_LISTENER = "with_listener"
    CLOSED = "closed"
    REFERRED = "referred"
    ABANDONED = "abandoned"

    @property
    def active(self) -> bool:
        """True while a new message from the same sender belongs to this conversation."""
        return self in ACTIVE


class Trigger(StrEnum):
    HANDOFF = "handoff"
    REFER = "refer"
    END = "end"
    TAKE = "take"
    HAND_BACK = "hand_back"
    TRANSFER = "transfer"
    CLOSE = "close"
    ABANDON = "abandon"


ACTIVE = frozenset({Status.BOT, Status.QUEUED, Status.WITH_LISTENER})
FINAL = frozenset({Status.CLOSED, Status.REFERRED, Status.ABANDONED})

TRANSITIONS: list[dict[str, Any]] = [  # plain strings: ``transitions`` names an Enum state by its member name
    {"trigger": "handoff", "source": "bot", "dest": "queued"},
    {"trigger": "refer", "source": "bot", "dest": "referred"},
    {"trigger": "end", "source": "bot", "dest": "closed"},
    {"trigger": "take", "source": "queued", "dest": "with_listener"},
    {"trigger": "hand_back", "source": "with_listener", "dest": "queued"},
    {"trigger": "transfer", "source": ["queued", "with_listener"], "dest": "queued"},
    {"trigger": "close", "source": ["queued", "with_listener"], "dest": "closed"},
    {"trigger": "abandon", "source": ["bot", "queued", "with_listener"], "dest": "abandoned"},
]

_machine = Machine(
    model=None,
    states=[s.value for s in Status],
    transitions=TRANSITIONS,
    initial=Status.BOT.value,
    auto_transitions=False,
    ignore_invalid_triggers=False,
)


_TRIGGERS = frozenset(t.value for t in Trigger)


def advance(status: str, trigger: str) -> Status:
    """The status after ``trigger``; :class:`IllegalTransition` when it is not allowed from ``status``."""
    source, action = str(status), str(trigger)  # the values: ``transitions`` reads an Enum's name
    found = _machine.get_transitions(trigger=action, source=source) if action in _TRIGGERS else []
    if not found:
        raise IllegalTransition(source, action)
    return Status(str(found[0].dest))


def allowed(status: str) -> frozenset[Trigger]:
    """The triggers allowed from ``status``."""
    return frozenset(t for t in Trigger if _machine.get_transitions(trigger=t.value, source=str(status)))


class Subject(Protocol):
    """What the lifecycle needs of a conversation."""

    status: Status


S = TypeVar("S", bound=Subject)
S_contra = TypeVar("S_contra", bound=Subject, contravariant=True)


class Effects(Protocol[S_contra]):
    """The effects of entering a status, given by the caller (they write to the store)."""

    async def finished(self, subject: S_contra) -> None:
        """A final status: release the queue place and the listener's capacity, stop the timers."""
        ...

    async def entered(self, subject: S_contra) -> None:
        """Every new status: record when, and tell the console and the web chat."""
        ...


async def transition(subject: S, trigger: Trigger, effects: Effects[S]) -> Status:
    """Move ``subject`` by ``trigger`` and run the effects of the status it enters; IllegalTransition (and
    nothing changed) when the move is not allowed from its status."""
    status = advance(subject.status, trigger)
    subject.status = status
    if status in FINAL:
        await effects.finished(subject)
    await effects.entered(subject)
    return status
