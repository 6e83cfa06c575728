"""The console's live events: one store subscription per instance, fanned out to the console sockets that may see
each event.

:meth:`ConsoleEvents.forward` is a supervised worker. Each console socket has its own
:class:`~gateway.sockets.SocketWriter`, so a listener's tab that stopped reading (or whose connection reset) is
dropped without delaying anybody else. Who gets what is the rule of ``console/access.py``: queue changes,
statuses and presence go to every socket; a conversation's entries, notes, typing, flags,
deliveries and notices only to its holder's and the supervisors' sockets (one store read of the conversation per
such event, skipped when only supervisors are connected); alerts to supervisors only. When events may have been
missed (the store's ``resync`` event after a reconnection, or this worker restarting) every socket gets
``{"type": "resync"}``, on which the console and supervision pages reload the queue and the open conversation.

Sessions: an ended session's sockets are closed at once when its ``sessions_ended`` event arrives
(``console/sessions.py``), never forwarded; :meth:`ConsoleEvents.sweep` (a supervised worker too) closes those
whose session ended where no event reached this instance (the CLI on SQLite) or expired, and those whose account
changed its password or was removed since (:meth:`~gateway.console.sessions.Sessions.serves`: the sessions' end
may have failed after the account's write).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

from gateway.console.access import conversation_of, may_receive
from gateway.console.media import public_event
from gateway.console.sessions import Sessions, listener_digest
from gateway.conversation import Conversation
from gateway.events import Event, Resync, SessionsEnded, encode
from gateway.outage_log import StoreOutages
from gateway.sockets import Forwarding, SocketWriter
from gateway.store import ConversationStore, EventStore, Listener, ListenerStore, Subscription


class ConsoleEventsRoles(EventStore, ConversationStore, ListenerStore, Protocol):
    """What the console's events need of the store: the events, a conversation's holder, and the accounts of the
    sockets' sessions (the sweep)."""


@dataclass(frozen=True)
class Viewer:
    """Who is behind a console socket: the listener (role at login) and the key of the session it opened with."""

    listener: Listener
    session: str


class ConsoleEvents:
    def __init__(
        self, store: ConsoleEventsRoles, sessions: Sessions, outages: StoreOutages, *, sweep_seconds: float = 5.0
    ) -> None:
        self.store, self.sessions, self.sweep_seconds = store, sessions, sweep_seconds
        self.sockets: dict[SocketWriter, Viewer] = {}
        self._outages = outages
        self._forwarding = Forwarding(store, outages, "console_forwarding")

    async def add(self, writer: SocketWriter, viewer: Viewer) -> None:
        """A console socket: from the moment this returns, it is offered every event it may see."""
        self.sockets[writer] = viewer
        if self._forwarding.current is not None:
            await self._forwarding.current.follow_all(True)

    def discard(self, writer: SocketWriter) -> None:
        self.sockets.pop(writer, None)  # the last one gone: no more events at the forwarder's next one

    async def forward(self) -> None:
        """Every conversation's events while a console socket is open on this instance; without one, only those
        of every instance (the store does not send the others here, ``store/redis_events.py``)."""
        await self._forwarding.run(self._forward)

    async def _forward(self, subscription: Subscription) -> None:
        await subscription.follow_all(bool(self.sockets))
        self._offer(Resync(), None)  # after a restart of this worker, events may have been missed
        async for event in subscription:
            if not self.sockets:
                await subscription.follow_all(False)
            if isinstance(event, SessionsEnded):
                self._end(event)
                continue
            conversation, conversation_id = None, conversation_of(event)
            if conversation_id and any(not v.listener.supervisor for v in self.sockets.values()):
                conversation = await self.store.get_conversation(conversation_id)
            self._offer(event, conversation)
            await asyncio.sleep(0)  # let the writers run: a burst never fills the queue of a socket that reads

    def _offer(self, event: Event, conversation: Conversation | None) -> None:
        if not self.sockets:  # no console open on this instance: nothing to encode
            return
        frame = dict(public_event(encode(event)))
        for writer, viewer in list(self.sockets.items()):
            if may_receive(viewer.listener, event, conversation):
                writer.offer(frame)

    def _end(self, event: SessionsEnded) -> None:
        for writer, viewer in list(self.sockets.items()):
            if viewer.session == event.session or event.listener == listener_digest(viewer.listener.name):
                self._close(writer)

    def _close(self, writer: SocketWriter) -> None:
        self.discard(writer)
        writer.revoke()

    async def sweep(self) -> None:
        """A supervised worker: every ``sweep_seconds``, close the sockets whose session ended without news reaching
        this instance. A pass the store failed (a Redis restart) is told once an outage (part ``console_sessions``)
        and made at the next period; until 2026-12-07 it stopped the worker (restarted and counted by the supervisor
        at each outage)."""
        while True:
            await asyncio.sleep(self.sweep_seconds)
            if self.sockets:  # a pass reading nothing would say the store answered, an outage over
                await self._outages.attempt("console_sessions", self._sweep())

    async def _sweep(self) -> None:
        """One pass of :meth:`sweep`: a session read per socket, the first before anything else is awaited, and an
        account read per listener with a live session. Until 2026-12-07 the account was not read: a socket whose
        listener's password changed (or whose account was removed) while the sessions' end failed stayed open, the
        conversations' events going on, for the session's hours."""
        accounts: dict[str, Listener | None] = {}
        for writer, viewer in list(self.sockets.items()):
            session, name = await self.sessions.live(viewer.session), viewer.listener.name
            if session is not None and name not in accounts:
                accounts[name] = await self.store.get_listener(name)
            if session is None or not Sessions.serves(session, accounts[name]):
                self._close(writer)
