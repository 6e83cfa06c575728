"""Receipts' way to their entry on Redis: provider message id → conversation, in small per-day hashes.

A provider's receipt names only its own message id. Each id the store records (a sent reply, an entry written
with one) goes into the index of the UTC day it was recorded: ``hg:p:<day>:<shard>``, a hash used alone, whose
field is a digest of the id (16 characters) and whose value the conversation's id; the key expires
``PROVIDER_DAYS`` after its day ends, so an id is found for 30 to 31 days (receipts come within minutes to days).
The entry itself is then the one of that conversation's transcript whose head holds the id (a digest that
collided would find no entry, never a wrong one).

``SHARDS`` hashes per day keep each hash small (up to 128 fields of up to 64 bytes, a few thousand sends a day)
in Redis's compact listpack encoding: about 45 bytes an id instead of some 130 in a hash table. A lookup asks the
shard of every day that may hold the id, in one pipeline.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from typing import Any

from gateway.store import redis_keys as K

DAY = 86_400
PROVIDER_DAYS = 30
SHARDS = 128


def today() -> int:
    return int(datetime.now(UTC).timestamp()) // DAY


def _digest(provider_id: str) -> bytes:
    return hashlib.sha256(provider_id.encode()).digest()[:12]


def field(provider_id: str) -> str:
    return base64.urlsafe_b64encode(_digest(provider_id)).decode()


def index(day: int, provider_id: str) -> str:
    return K.key("p", str(day), str(_digest(provider_id)[-1] % SHARDS))


def add(pipe: Any, provider_id: str, conversation_id: str, day: int | None = None) -> None:
    """Queue the id's entry in the day's index (today's unless told) and the index's expiry."""
    day = today() if day is None else day
    name = index(day, provider_id)
    pipe.hset(name, field(provider_id), conversation_id)
    pipe.expireat(name, expiry(day))


def expiry(day: int) -> int:
    """When the index of ``day`` expires (seconds since the epoch)."""
    return (day + 1 + PROVIDER_DAYS) * DAY


def find(pipe: Any, provider_id: str) -> None:
    """Queue the lookups, newest day first: the first answer that is not None is the conversation."""
    first = today()
    for day in range(first, first - PROVIDER_DAYS - 1, -1):
        pipe.hget(index(day, provider_id), field(provider_id))


def forget(pipe: Any, provider_ids: list[str]) -> None:
    """Queue the ids' removal from every day index that may hold them."""
    first = today()
    for provider_id in provider_ids:
        for day in range(first, first - PROVIDER_DAYS - 2, -1):
            pipe.hdel(index(day, provider_id), field(provider_id))
