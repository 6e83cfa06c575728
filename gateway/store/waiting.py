"""The store opened at start-up, waited for while it cannot be reached.

A running instance rides out a Redis restart by itself; at start-up, the store's opening (a PING on Redis) failing
made ``gateway serve`` exit 1, and the instance stayed down unless a process manager started it again: an instance
restarted while Redis restarts too, or a host whose Redis loads its append-only file more slowly than the gateway
starts (found by bench/chaos.py; tests/test_redis_at_start.py). Now the opening is tried again, a warning logged at
each try (the error's class only: a URL may hold a password), 0.5 s then doubling up to 10 s, for as long as it
takes: an unknown scheme or a missing key is a ConfigError, not waited for.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Any

from gateway.errors import StoreError
from gateway.store import Store, open_store

log = logging.getLogger("gateway.store")
LONGEST_WAIT = 10.0


async def open_store_waiting(url: str, **options: Any) -> Store:
    """:func:`gateway.store.open_store`, tried again while it raises StoreError (a network store only: a SQLite
    file that does not open is no outage, its error ends the start-up as before)."""
    for attempt in itertools.count():
        try:
            return await open_store(url, **options)
        except StoreError as error:
            if url.startswith("sqlite:"):
                raise
            delay = min(LONGEST_WAIT, 0.5 * 2**attempt)
            log.warning("store unreachable at start-up (%s); trying again in %.1f s", type(error).__name__, delay)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")  # itertools.count() never ends
