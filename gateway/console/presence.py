"""Which listeners are online, across every instance of the gateway.

Each instance counts the live console sockets it holds. It announces the (hashed) names of their listeners
through the store's events whenever that set changes and every ``beat`` seconds; every instance keeps what the
others announced until ``2.5 × beat`` passes without news (an instance that died stops counting by itself). A
listener with two tabs on two instances counts once. The count feeds the wait estimate given to young people,
the supervision board and ``/metrics``. Announcing and listening are two supervised workers.

Each announcement also names the instance's background workers that are down or restarting too often
(``troubled``, :meth:`gateway.supervisor.Supervisor.problems`), so that the supervision board says the same
whichever instance serves it (:meth:`troubles`): one that fails its ``/readyz`` is taken out of a load balancer's
rotation, and its own board would never be the one a supervisor sees.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterable

from gateway.errors import StoreError
from gateway.events import ListenersOnline, Resync
from gateway.outage_log import StoreOutages
from gateway.sockets import Forwarding
from gateway.store import EventStore, Subscription


def _digest(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:16]  # events reach every console: no names in them


class Presence:
    def __init__(
        self, *, beat: float = 10.0, clock: Callable[[], float] = time.monotonic, outages: StoreOutages | None = None
    ) -> None:
        """``outages``: where an announcement the store failed is counted and told (part ``presence_beat``); before,
        it was dropped unsaid (on a silent path to Redis each one waited a socket timeout, then nothing)."""
        self.outages = outages
        self.connections: Counter[str] = Counter()
        self.instance = secrets.token_hex(8)
        self.beat, self.clock = beat, clock
        self._remote: dict[str, tuple[frozenset[str], float]] = {}
        self._remote_troubled: dict[str, tuple[frozenset[str], float]] = {}
        self.troubled: Callable[[], Iterable[str]] = tuple  # this instance's workers down or restarting too often
        self._hearing_since: float | None = None  # the others' announcements followed without a gap since then

    def local(self) -> frozenset[str]:
        return frozenset(_digest(name) for name, count in self.connections.items() if count > 0)

    def here(self) -> list[str]:
        """The listeners with a console open on this instance (names: for the store, never for the events)."""
        return sorted(name for name, count in self.connections.items() if count > 0)

    def online(self) -> int:
        return len(self._names())

    def has(self, name: str) -> bool:
        """Whether listener ``name`` has a console open on any instance (as far as the announcements tell)."""
        return _digest(name) in self._names()

    def complete(self) -> bool:
        """Whether :meth:`has` knows every instance's listeners: this one has followed the announcements without a
        gap for ``2.5 × beat`` (each instance announced itself meanwhile). Before (just started, events missed, the
        subscription down), a listener at a console on another instance may look absent: nothing is taken from them
        on that ground (the automatic hand-back, ``gateway/alerts.py``)."""
        since = self._hearing_since
        return since is not None and self.clock() - since >= 2.5 * self.beat

    def troubles(self) -> list[str]:
        """The background workers down or restarting too often on this instance or on another one heard lately
        (within ``2.5 × beat``), by name, each once."""
        now, names = self.clock(), set(self.troubled())
        for instance, (remote, expires) in list(self._remote_troubled.items()):
            if expires > now:
                names |= remote
            else:
                del self._remote_troubled[instance]
        return sorted(names)

    def _names(self) -> set[str]:
        now, names = self.clock(), set(self.local())
        for instance, (remote, expires) in list(self._remote.items()):
            if expires > now:
                names |= remote
            else:
                del self._remote[instance]
        return names

    def event(self) -> ListenersOnline:
        return ListenersOnline(self.instance, tuple(sorted(self.local())), tuple(sorted(self.troubled())))

    def heard(self, event: ListenersOnline) -> None:
        """Record another instance's announcement (one's own is ignored; malformed ones never decode)."""
        if event.instance != self.instance:
            expires = self.clock() + 2.5 * self.beat
            self._remote[event.instance] = (frozenset(event.listeners), expires)
            self._remote_troubled[event.instance] = (frozenset(event.troubled), expires)

    async def announce(self, store: EventStore) -> None:
        """Publish this instance's listeners; a store failure is counted (the next beat tries again)."""
        try:
            await store.publish(self.event())
        except StoreError as exc:
            if self.outages is not None:
                self.outages.failed("presence_beat", exc)
            return
        if self.outages is not None:
            self.outages.answered("presence_beat")

    async def beat_forever(self, store: EventStore) -> None:
        """A supervised worker: announce this instance's listeners every beat."""
        while True:
            await self.announce(store)
            await asyncio.sleep(self.beat)

    async def listen(self, store: EventStore) -> None:
        """A supervised worker: hear the other instances; after missed events, announce at once (they may have
        forgotten this instance meanwhile). While the store fails it subscribes again by itself (part ``presence``),
        not hearing meanwhile: never left in the supervisor's backoff, ``down`` after the store was back."""
        await Forwarding(store, self.outages, "presence").run(lambda subscription: self._hear(store, subscription))

    async def _hear(self, store: EventStore, subscription: Subscription) -> None:
        self._hearing_since = self.clock()
        try:
            async for event in subscription:  # presence: every instance's
                match event:
                    case Resync():  # some announcements may be lost: whole again 2.5 beats from now
                        self._hearing_since = self.clock()
                        await self.announce(store)
                    case ListenersOnline():
                        self.heard(event)
        finally:
            self._hearing_since = None
