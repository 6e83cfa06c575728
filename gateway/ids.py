"""Ids of our own: de-duplication keys of inbound messages and the ids of transcript entries.

While an inbound message is processed (:func:`derived_from`), every new entry id is derived from the message's
key, so a processing retried after a crash rewrites the same entries (and outbox items) instead of adding new
ones; outside of that, ids are random.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import hashlib
import itertools
import secrets
from collections.abc import Callable, Iterator

from gateway.messages import ChannelName, Echo, Inbound

_turn_ids: contextvars.ContextVar[Callable[[], str] | None] = contextvars.ContextVar("turn_ids", default=None)
"""While an inbound message is processed: the source of the ids of the entries it writes (derived from its id)."""


def new_id() -> str:
    """The id of a new transcript entry: derived from the inbound message being processed, else random."""
    derived = _turn_ids.get()
    return derived() if derived is not None else secrets.token_urlsafe(12)


def derived_from(key: str) -> None:
    """From now on in this task's context, :func:`new_id` derives the ids from ``key`` (1, 2, 3… in order)."""
    counter = itertools.count(1)
    _turn_ids.set(lambda: derived_id(key, next(counter)))


@contextlib.contextmanager
def derived_ids(key: str) -> Iterator[str]:
    """Inside, :func:`new_id` derives the ids from ``key`` as :func:`derived_from` does; the ids before are back
    after. Gives the first id: an operation retried after a crash (a hand-back) finds what its first try wrote."""
    counter = itertools.count(1)
    token = _turn_ids.set(lambda: derived_id(key, next(counter)))
    try:
        yield derived_id(key, 1)
    finally:
        _turn_ids.reset(token)


def derived_id(key: str, number: int) -> str:
    """The ``number``-th id derived from ``key`` (from 1)."""
    return "r" + hashlib.sha256(f"{key}:{number}".encode()).hexdigest()[:23]


def inbound_key(inbound: Inbound) -> str:
    """The de-duplication key of an inbound message. A provider's ids are unique on its channel; a web chat
    message id is chosen by the page, so it is scoped to the young person's session (hashed: no token in keys)."""
    if inbound.channel == ChannelName.WEBCHAT:
        session = hashlib.sha256(inbound.sender.encode()).hexdigest()[:24]
        return f"in:{inbound.channel.value}:{session}:{inbound.message_id}"
    return f"in:{inbound.channel.value}:{inbound.message_id}"


def inbound_entry_id(inbound: Inbound) -> str:
    """A young person's message always gets the same entry id: a retried processing never records it twice."""
    return entry_id_of_key(inbound_key(inbound))


def echo_entry_id(echo: Echo) -> str:
    """The page's message sent from outside the gateway (``messages.Echo``) always gets the same entry id, from its
    provider id: delivered again, it is found recorded and not recorded twice."""
    return "p" + hashlib.sha256(f"echo:{echo.channel.value}:{echo.message_id}".encode()).hexdigest()[:23]


def echo_key(echo: Echo) -> str:
    """The de-duplication key of the page's message sent from outside the gateway (``messages.Echo``): its processed
    mark, saved with the conversation it was recorded in, keeps a redelivery out of the young person's next one."""
    return f"echo:{echo.channel.value}:{echo.message_id}"


def entry_id_of_key(key: str) -> str:
    """The entry id of the young person's message whose de-duplication key is ``key`` (how an erasure finds the
    keys of the person's messages again, from their entries)."""
    return "u" + hashlib.sha256(key.encode()).hexdigest()[:23]


def seen_digest(key: str) -> str:
    """What a processed mark holds of the de-duplication key ``key``: 12 bytes of its SHA-256, base64url (16
    characters, whatever the provider's id length), from which :func:`entry_id_of_seen` finds the entry id."""
    return base64.urlsafe_b64encode(hashlib.sha256(key.encode()).digest()[:12]).decode()


def entry_id_of_seen(digest: str) -> str:
    """The entry id of the young person's message whose processed mark is ``digest`` (:func:`seen_digest`): the
    same as :func:`entry_id_of_key` of its key."""
    return "u" + base64.urlsafe_b64decode(digest).hex()[:23]


def seen_digests_of_entry(entry_id: str) -> list[str]:
    """Every processed mark (:func:`seen_digest`) whose entry id is ``entry_id`` (:func:`entry_id_of_seen`): the
    entry id holds 23 of the digest's 24 hex digits, so 16 candidates, one of them the young person's message's
    (another's has 92 bits in common by chance: never in practice). An erasure deletes them by name instead of
    reading every mark kept; an id not of that form (not a young person's message) has none."""
    hexa = entry_id[1:]
    if not (entry_id.startswith("u") and len(hexa) == 23 and all(c in "0123456789abcdef" for c in hexa)):
        return []
    return [base64.urlsafe_b64encode(bytes.fromhex(hexa + last)).decode() for last in "0123456789abcdef"]
