"""Which data key each running instance seals with, told to the others through the store (Redis), since 2026-12-07.

Every instance writes, when it starts and every ``ADVERT_SECONDS`` after (a supervised worker, ``sealing-key``),
a random id of its own (drawn at each start: nothing of the host, nothing of a person) → the id of the key it
seals with and the time, Redis's ``TIME`` read just before (until 2026-12-07 the app's clock, which follows Redis's
time only within ``SKEW_TRUSTED_SECONDS``: a host 10 minutes behind dated its adverts 10 minutes ago, the command
took it for gone and said every record was sealed while it sealed with the old key); a clean stop removes it. An
instance not heard for ``ADVERT_LIVE_SECONDS`` (killed, its host gone) no longer counts.

``gateway data-key rotate`` reads them before its first pass and again after its last one: while a live instance
seals with another key than the one it reseals under, it refuses (``gateway/cli.py``), where until 2026-12-07
step 3 of the rotation ("restart every instance on the new key first", docs/deployment.md) was a human step that
nothing checked: a record an instance not yet restarted wrote under the old key after the last pass was never
found again, the command said "every record is sealed" and the old key was removed. ``/readyz`` and
``gateway doctor`` show instances sealing with different keys (a rolling restart under way: shown, not a failure).

Instances of versions before this one advertise nothing: they are not seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.errors import StoreError
from gateway.outage_log import StoreOutages
from gateway.store import HasTime, SealingStore

ADVERT_SECONDS = 10.0  # how often a running instance says again which key it seals with
ADVERT_LIVE_SECONDS = 45.0  # an instance not heard for this long is taken for gone (more than four adverts missed)


@dataclass(frozen=True, slots=True)
class Sealing:
    """One instance's advert: its random id, the id of the data key it seals with, when it said so."""

    instance: str
    key_id: str
    at: datetime


def live(adverts: Iterable[Sealing], now: datetime) -> list[Sealing]:
    """The adverts of the instances heard within ``ADVERT_LIVE_SECONDS`` of ``now`` (one dated later than ``now``,
    a host's clock ahead, counts: a running instance is never taken for gone on that ground)."""
    return [advert for advert in adverts if advert.at >= now - timedelta(seconds=ADVERT_LIVE_SECONDS)]


def by_key(adverts: Iterable[Sealing]) -> dict[str, int]:
    """Key id → how many instances seal with it."""
    return dict(sorted(Counter(advert.key_id for advert in adverts).items()))


def other_keys(adverts: Iterable[Sealing], key_id: str, now: datetime) -> dict[str, int]:
    """Among the live instances, those sealing with another key than ``key_id``: key id → how many."""
    return by_key(advert for advert in live(adverts, now) if advert.key_id != key_id)


class Advert:
    """This instance's advert, kept in the store (:class:`SealingStore`) while it runs."""

    def __init__(
        self,
        store: SealingStore,
        key_id: str,
        clock: Callable[[], datetime],
        *,
        every: float = ADVERT_SECONDS,
        outages: StoreOutages | None = None,
    ) -> None:
        self.store, self.key_id, self.clock, self.every, self.outages = store, key_id, clock, every, outages
        self.instance = secrets.token_hex(8)
        self.heard: list[Sealing] = []  # every instance's adverts as the last write read them back
        self._ahead = timedelta()  # the store's time less this clock's, at the last advert (``mixed``)

    async def once(self) -> None:
        """Say it now, dated on the store's time when it keeps one (``HasTime``: the time ``gateway data-key rotate``
        reads them against, whatever this host's clock says); a store failure is counted (part ``sealing_key``) and
        the next beat tries again."""
        try:
            now = await self.store.server_time() if isinstance(self.store, HasTime) else self.clock()
            self.heard = await self.store.advertise_sealing(Sealing(self.instance, self.key_id, now))
            self._ahead = now - self.clock()
        except StoreError as exc:
            if self.outages is not None:
                self.outages.failed("sealing_key", exc)
            return
        if self.outages is not None:
            self.outages.answered("sealing_key")

    async def run(self) -> None:
        """A supervised worker: say it every ``every`` seconds."""
        while True:
            await self.once()
            await asyncio.sleep(self.every)

    async def forget(self) -> None:
        """At a clean stop: this instance no longer seals anything (a failure: it is gone after its live time)."""
        with contextlib.suppress(StoreError):
            await self.store.forget_sealing(self.instance)

    def mixed(self) -> dict[str, int] | None:
        """The live instances by key id, when they seal with more than one key (as of the last advert); else None."""
        found = by_key(live(self.heard, self.clock() + self._ahead))
        return found if len(found) > 1 else None
