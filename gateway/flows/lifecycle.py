"""The conversation lifecycle: an explicit ``transitions`` machine whose illegal transitions raise.

    bot ──handoff──▶ queued ──take──▶ with_listener ──close──▶ closed
     │                 ▲  │  ◀──hand_back── │
     │                 │  └──transfer──┐    ├──transfer──▶ queued
     │                 └───────────────┘    └──abandon───▶ abandoned (the young person left)
     ├──refer──▶ referred        ├──end──▶ closed        └──abandon──▶ abandoned
    queued ──close──▶ closed       queued ──abandon──▶ abandoned

The machine is built once; :func:`advance` sets a shared model to the current status and fires the trigger,
so no machine is built per message.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from transitions import Machine, MachineError

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


ACTIVE = frozenset({Status.BOT, Status.QUEUED, Status.WITH_LISTENER})
FINAL = frozenset({Status.CLOSED, Status.REFERRED, Status.ABANDONED})

TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "handoff", "source": "bot", "dest": "queued"},
    {"trigger": "refer", "source": "bot", "dest": "referred"},
    {"trigger": "end", "source": "bot", "dest": "closed"},
    {"trigger": "take", "source": "queued", "dest": "with_listener"},
    {"trigger": "hand_back", "source": "with_listener", "dest": "queued"},
    {"trigger": "transfer", "source": ["queued", "with_listener"], "dest": "queued"},
    {"trigger": "close", "source": ["queued", "with_listener"], "dest": "closed"},
    {"trigger": "abandon", "source": ["bot", "queued", "with_listener"], "dest": "abandoned"},
]


class _Model:
    state: str = Status.BOT.value


_model = _Model()
_machine = Machine(
    model=_model,
    states=[s.value for s in Status],
    transitions=TRANSITIONS,
    initial=Status.BOT.value,
    auto_transitions=False,
    ignore_invalid_triggers=False,
)
ACTIONS = frozenset(t["trigger"] for t in TRANSITIONS)
_VALUES = frozenset(s.value for s in Status)


def advance(status: str, action: str) -> Status:
    """The status after ``action``; :class:`IllegalTransition` when the action is not allowed from ``status``."""
    status = str(status.value if isinstance(status, Status) else status)
    if action not in ACTIONS or status not in _VALUES:
        raise IllegalTransition(status, action)
    _machine.set_state(status, model=_model)
    try:
        _model.trigger(action)  # type: ignore[attr-defined]
    except MachineError:
        raise IllegalTransition(status, action) from None
    return Status(_model.state)


def allowed(status: str) -> frozenset[str]:
    """The actions allowed from ``status``."""
    source = str(status.value if isinstance(status, Status) else status)
    return frozenset(a for a in ACTIONS if _machine.get_transitions(trigger=a, source=source))
