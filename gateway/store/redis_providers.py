"""Receipts' way to their entry on Redis: provider message id → conversation, in small per-day hashes.

A provider's receipt names only its own message id. Each id the store records (a sent reply, an entry written
with one) goes into the index of the UTC day it was recorded: ``hg:p:<day>:<shard>``, a hash used alone, whose
field is a digest of the id (16 characters) and whose value the conversation's id; the key expires
``PROVIDER_DAYS`` after its day ends, so an id is found for 30 to 31 days (receipts come within minutes to days).
The entry itself is then the one of that conversation's transcript whose head holds the id: since 2026-12-07 as
its digest, ``#`` and the same 16 characters (``store.provider_digest``: 17 bytes a reply where a Messenger mid took
some 88, issue 8's bytes), before as the whole id, still found so (a store upgraded in place). A digest shared by
two ids (96 bits: some 1 in 10^11 across a billion sends) would find the other id's entry.

``SHARDS`` hashes per day keep each hash small (up to 128 fields of up to 64 bytes, a few thousand sends a day)
in Redis's compact listpack encoding: about 45 bytes an id instead of some 130 in a hash table. A lookup asks the
shard of every day that may hold the id, in one pipeline.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
from datetime import UTC, datetime
from typing import Any

from gateway.store import DIGEST_MARK, provider_digest
from gateway.store import redis_keys as K

DAY = 86_400
PROVIDER_DAYS = 30
SHARDS = 128
DIGEST_LENGTH = len(provider_digest(""))  # an entry's head's digest of an id: "#" and 16 characters


def today() -> int:
    return int(datetime.now(UTC).timestamp()) // DAY


def _digest(provider_id: str) -> bytes:
    return hashlib.sha256(provider_id.encode()).digest()[:12]


def held_digest(held: str) -> bytes:
    """The digest of a provider id as the store holds it: an entry's head's since 2026-12-07 (``#`` and its digest,
    ``store.provider_digest``: read back, no id to hash), else the id whole (an outbox item's, an older head's)."""
    if held.startswith(DIGEST_MARK) and len(held) == DIGEST_LENGTH:
        with contextlib.suppress(ValueError):
            return base64.urlsafe_b64decode(held[1:])
    return _digest(held)


def field(provider_id: str) -> str:
    return _field_of(_digest(provider_id))


def index(day: int, provider_id: str) -> str:
    return _index_of(day, _digest(provider_id))


def _field_of(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).decode()


def _index_of(day: int, digest: bytes) -> str:
    return K.key("p", str(day), str(digest[-1] % SHARDS))


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


def forget(pipe: Any, held: list[str]) -> None:
    """Queue the ids' removal from every day index that may hold them (each as the store holds it: ``held_digest``)."""
    first = today()
    for digest in map(held_digest, held):
        for day in range(first, first - PROVIDER_DAYS - 2, -1):
            pipe.hdel(_index_of(day, digest), _field_of(digest))
