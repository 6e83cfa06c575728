"""The keyed hash of a sender's identity (``DataKeys.identity``) kept for the processing of one message only.

A message's claim, lock and save each need the sender's address key (Redis: ``RedisStore._identity``): inside
``OneMessage`` (``Dispatcher._handle_inbound``) the first one made is kept and the others reuse it, compared by the
plain channel and sender (never by ``hash()``: a collision would use another person's key). Until 2026-12-08 the
store kept the last one a task made in that task's context for the task's whole life: the plain sender (a phone
number, a platform user id) stayed in the context of the long-lived tasks that call the store (the timers' loop,
the erasure worker, a supervised worker) and of every task created inside them, after an erasure too. Now nothing
is kept outside a message's scope, and its end empties what it kept: a task created inside the message that
outlives it (a timer, a renewal) finds the slot emptied and closed, never the sender.
"""

from __future__ import annotations

import contextvars
from types import TracebackType

from gateway.crypto import DataKeys


class _Made:
    """The one identity a message's processing hashed: its store's keys, channel, plain sender and keyed hash."""

    __slots__ = ("channel", "keys", "made", "open", "sender")

    def __init__(self) -> None:
        self.keys: DataKeys | None = None
        self.channel: str | None = None
        self.sender: str | None = None
        self.made = ""
        self.open = True


_MESSAGE: contextvars.ContextVar[_Made | None] = contextvars.ContextVar("message_identity", default=None)


class OneMessage:
    """Around the processing of one message: the identity hashed inside it kept until its end, then emptied (every
    context copied meanwhile holds the same slot, closed) and the context put back as it was (its token)."""

    __slots__ = ("_made", "_token")

    def __enter__(self) -> None:
        self._made = _Made()
        self._token = _MESSAGE.set(self._made)

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        made = self._made
        made.open, made.keys, made.channel, made.sender, made.made = False, None, None, None, ""
        _MESSAGE.reset(self._token)


def identity(keys: DataKeys, channel: str, sender: str) -> str:
    """``keys.identity(channel, sender)``, made once within a message's scope (``OneMessage``); outside one, made
    at every call and kept nowhere."""
    made = _MESSAGE.get()
    if made is None or not made.open:
        return keys.identity(channel, sender)
    if made.keys is keys and made.channel == channel and made.sender == sender:
        return made.made
    value = keys.identity(channel, sender)
    made.keys, made.channel, made.sender, made.made = keys, channel, sender, value
    return value
