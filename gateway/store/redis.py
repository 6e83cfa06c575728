"""The shared store: one standalone Redis (not Cluster) behind several gateway instances.

Every key starts with ``hg:``. Each operation that reads then writes runs as one Lua script, so it is atomic
against every other instance; the scripts build some key names from their arguments, which standalone Redis
allows (Cluster would not). Layout:

    hg:conv:<id>                 the conversation record (JSON, sealed: ``gateway.crypto``)
    hg:active:<keyed hash>       id of the active conversation of a (channel, sender): the address is a keyed
                                 hash (``DataKeys.identity``), so no key names a young person
    hg:status:<status>           set of conversation ids        hg:created  ids scored by creation (µs)
    hg:e:<id>                    transcript entry: "<delivery code><provider id>\n<sealed compact JSON>" (``codec.
                                 encode_entry_data``); entries written before are hashes ``hg:entry:<id>``
    hg:transcript:<conv>         list of entry ids               hg:provider:<pmid>  entry id (30 days)
    hg:seen:<key>                an inbound id: "c:<owner>" while claimed (a lease of seconds, renewed while
                                 processing), "1" once processed (kept DEDUPE_TTL, set with the conversation)
    hg:queue:entries             hash conversation id → entry (JSON, with its ordering ``member``)
    hg:queue:waiting:<queue>     waiting members "rank:arrival µs:sequence:id", ordered lexicographically
    hg:takes:<queue>             conversation ids scored by when they were last taken (the last day)
    hg:held:<listener>           ids of the conversations the listener holds now
    hg:listeners                 hash name → account (JSON)
    hg:session:<key>             a console session: its listener's name (expires with the session); the key is a
                                 keyed hash of the cookie's token    hg:sessions:<name>  that listener's keys
    hg:outbox:item:<id>          hash of one item (payload sealed; parts_sent: how far a split message got); once
                                 sent, deleted when its transcript entry records the send (the entry is then the
                                 "already put" mark), else its payload is dropped and the rest expires after an
                                 hour (failed: kept 7 days)
    hg:outbox:conv:<conv>        pending ids by put order
    hg:outbox:heads              conversations scored by when their first pending item is due
    hg:inbox:item:<id>           hash of one inbound message acknowledged but not processed yet (payload sealed)
    hg:inbox:sender:<hash>       its sender's waiting ids by put order    hg:inbox:heads  senders by due time
    hg:inbox:aside:<id>          an item that kept failing, kept     hg:inbox:aside  their ids by when set aside
    hg:timers                    ["conv", "kind"] scored by due time (µs) (``hg:timers:<conv>``, the index of one
                                 conversation's members written before, is read and deleted by cancel_timers)
    hg:lock:<conv>               the conversation lock          hg:events  the pub/sub channel
    hg:blocks                    hash block key (a keyed hash, no identity) → block (JSON)
    hg:audit                     list of audit entries (JSON), newest first, trimmed to AUDIT_KEPT
    hg:notice:<id>               a takedown notice (sealed)     hg:notices  ids scored by creation (µs)
    hg:notices:<conv>            a conversation's notice ids    hg:evidence:<notice>  its files (sealed)
    hg:referral:<id>             a warm referral (sealed)       hg:referrals, hg:referrals:<conv>  as notices
    hg:upload:<key>              a web chat upload (sealed JSON: content type, base64 bytes)

An ended conversation's transcript list and entries get a TTL of flows.yaml's ``retention.closed_days``
(``expire_transcript``); the daily purge strips the record (``gateway/retention.py``, ``redis_retention.py``).

The conversation lock is a lease of ``LOCK_LEASE_MS`` (6 s) that its holder renews every third of it while it
holds the lock: processing one message takes milliseconds, a slow one keeps its lock, and a crashed instance
blocks its conversations for 6 s at most. It is redis-py's ``redis.asyncio.lock.Lock`` (SET NX PX, a random token
checked by Lua on renewal and release, so an expired holder never extends or frees somebody else's lock), renewed
by a task of ours with ``reacquire``; a waiter retries every ``LOCK_POLL_SECONDS``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import contextvars
import functools
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, Concatenate, ParamSpec, Self, TypeVar

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline, PubSub
from redis.asyncio.lock import Lock
from redis.exceptions import LockNotOwnedError, RedisError

from gateway.conversation import Conversation, Priority, Status
from gateway.crypto import DataKeys
from gateway.errors import Conflict, StoreError
from gateway.events import Event, Resync, decode, encode
from gateway.messages import ChannelName
from gateway.notices.record import Evidence, Notice, Referral
from gateway.store import (
    AuditEntry,
    Block,
    ClaimState,
    ConsoleSession,
    Delivery,
    DoneMark,
    InboxItem,
    Listener,
    OutboxItem,
    OutboxStatus,
    QueueEntry,
    Timer,
    TimerKind,
    TranscriptEntry,
    redis_reseal,
    redis_retention,
)
from gateway.store.codec import (
    decode_audit,
    decode_block,
    decode_conversation,
    decode_entry_data,
    decode_listener,
    decode_queue_entry,
    dumps,
    dumps_sealed,
    encode_audit,
    encode_block,
    encode_conversation,
    encode_entry_data,
    encode_listener,
    encode_queue_entry,
    from_us,
    loads,
    loads_sealed,
    to_us,
)
from gateway.store.redis_lua import SCRIPTS
from gateway.store.redis_pool import open_pool
from gateway.store.redis_retention import Record
from gateway.store.texts import OwnTexts, SharedText, SharedTexts, Stored
from gateway.supervisor import where

P = ParamSpec("P")
R = TypeVar("R")
log = logging.getLogger(__name__)
PREFIX = "hg:"
EVENTS_CHANNEL = PREFIX + "events"
LOCK_LEASE_MS = 6_000
LOCK_POLL_SECONDS = 0.01  # a waiting lock's retry pace (bench: redis.asyncio.lock.Lock's 0.1 s default doubled bursts)
RESOLVED_OUTBOX_KEPT = timedelta(days=7)  # failed outbox items expire after this
SENT_OUTBOX_KEPT = timedelta(hours=1)  # what is left of a sent item (no payload) expires after this
PROVIDER_ID_KEPT = timedelta(days=30)  # provider id → entry, for receipts (they come within minutes to days)
_DELIVERY_CODES = {Delivery.PENDING: "p", Delivery.SENT: "s", Delivery.DELIVERED: "d", Delivery.READ: "r",
                   Delivery.FAILED: "f"}  # fmt: skip
_DELIVERIES = {code: delivery for delivery, code in _DELIVERY_CODES.items()}
AUDIT_KEPT = 100_000
_CLAIM_PREFIX = "c:"  # hg:seen:<key> holds "c:<owner>" while claimed, "1" once processed
TAKES_KEPT_US = 24 * 3600 * 1_000_000  # takes older than a day leave takes:<queue> (takes_since looks an hour back)

Queue = Callable[[Pipeline], object]  # adds commands to a pipeline
Check = Callable[[list[Any]], None]  # reads their answers (raises Conflict, say)
HeldWrite = tuple[Queue, Check | None]


def _guarded(
    method: Callable[Concatenate[RedisStore, P], Awaitable[R]],
) -> Callable[Concatenate[RedisStore, P], Coroutine[Any, Any, R]]:
    """Refuse calls after close; send this task's held writes first (see ``batch``); map redis-py's errors to
    StoreError (they name no value or message text)."""
    return _wrapped(method, flush=True)


def _holdable(
    method: Callable[Concatenate[RedisStore, P], Awaitable[R]],
) -> Callable[Concatenate[RedisStore, P], Coroutine[Any, Any, R]]:
    """A write that answers nothing: held inside ``batch`` (the method goes through ``RedisStore._write``)."""
    return _wrapped(method, flush=False)


def _wrapped(
    method: Callable[Concatenate[RedisStore, P], Awaitable[R]], *, flush: bool
) -> Callable[Concatenate[RedisStore, P], Coroutine[Any, Any, R]]:
    @functools.wraps(method)
    async def guarded(store: RedisStore, /, *args: P.args, **kwargs: P.kwargs) -> R:
        if store.closed:
            raise StoreError("the redis store is closed")
        try:
            if flush:
                await store._flush()
            return await method(store, *args, **kwargs)
        except RedisError as error:
            raise StoreError(f"redis: {type(error).__name__}: {error}") from error

    return guarded


def _eval(pipe: Pipeline, name: str, keys: list[str], args: list[Any]) -> None:
    """A script in a MULTI/EXEC: EVAL with its text (Redis caches it), since a NOSCRIPT inside EXEC could not be
    retried without repeating the commands around it."""
    pipe.eval(SCRIPTS[name], len(keys), *keys, *args)


def _text(value: bytes | str) -> str:
    """redis-py types replies as bytes or str; with ``decode_responses`` they are str."""
    return value.decode() if isinstance(value, bytes) else value


def _pairs(flat: Any) -> dict[str, str]:
    """A Lua HGETALL reply (field, value, field, value…) as a dict."""
    values = _texts(flat)
    return dict(zip(values[::2], values[1::2], strict=True))


def _texts(values: Any) -> list[str]:
    return [_text(value) for value in values]


def _key(*parts: str) -> str:
    return PREFIX + ":".join(parts)


class RedisStore:
    """The :class:`~gateway.store.Store` on Redis."""

    def __init__(self, client: Redis, keys: DataKeys) -> None:
        self._redis = client
        self._keys = keys
        self._texts = SharedTexts(keys)
        self._scripts = {name: client.register_script(source) for name, source in SCRIPTS.items()}
        self._closed = False
        self._held: contextvars.ContextVar[list[HeldWrite] | None] = contextvars.ContextVar("held", default=None)

    @classmethod
    async def open(
        cls, url: str, keys: DataKeys, *, max_connections: int = 100, pool_timeout: float = 10.0,
        health_check_interval: float = 30.0,
    ) -> RedisStore:
        """A blocking pool: under load a caller waits for a free connection (up to ``pool_timeout`` s) instead
        of failing at once with MaxConnectionsError (redis-py's default pool raises). A connection idle for
        ``health_check_interval`` s is checked with a PING before use, and replaced if the PING fails
        (``gateway/store/redis_pool.py``; the pub/sub connection is checked too). Replies are decoded as UTF-8 with
        ``surrogateescape``: sealed records are bytes (``gateway.crypto``), and the str of one gives its bytes back
        exactly (``DataKeys.open``)."""
        pool = open_pool(url, decode_responses=True, encoding_errors="surrogateescape", max_connections=max_connections,
                         timeout=pool_timeout, health_check_interval=health_check_interval)  # fmt: skip
        store = cls(Redis(connection_pool=pool), keys)
        try:
            await store.ping()
        except StoreError:
            await store.close()
            raise
        return store

    async def _script(self, name: str, keys: list[str], args: list[Any]) -> Any:
        return await self._scripts[name](keys=keys, args=args)

    # Batches

    @asynccontextmanager
    async def batch(self) -> AsyncIterator[None]:
        if self._held.get() is not None:
            yield
            return
        token = self._held.set([])
        try:
            yield
            try:
                await self._flush()
            except RedisError as error:
                raise StoreError(f"redis: {type(error).__name__}: {error}") from error
        finally:
            self._held.reset(token)

    async def _write(self, queue: Queue, check: Check | None = None) -> None:
        """Hold the write in this task's batch, or send it now (one MULTI/EXEC)."""
        held = self._held.get()
        if held is not None:
            held.append((queue, check))
        else:
            await self._send([(queue, check)])

    async def _flush(self) -> None:
        held = self._held.get()
        if held:
            writes = list(held)
            held.clear()
            await self._send(writes)

    async def _send(self, writes: list[HeldWrite]) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            spans = []
            for queue, check in writes:
                start = len(pipe)
                queue(pipe)
                spans.append((start, len(pipe), check))
            answers = await pipe.execute()
        for start, end, check in spans:
            if check is not None:
                check(answers[start:end])

    @_guarded
    async def ping(self) -> None:
        await self._redis.ping()

    @property
    def closed(self) -> bool:
        return self._closed

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            # The pool is ours (``open``): redis-py closes only the pools it made, so without this every
            # connection stayed open after shutdown (tests/test_redis_connections.py)
            await self._redis.aclose(close_connection_pool=True)

    # Conversations

    @_guarded
    async def active_conversation(
        self, channel: ChannelName, sender: str, now: datetime
    ) -> tuple[Conversation, bool]:
        fresh = Conversation.start(channel, sender, now)
        args = [PREFIX, fresh.id, self._sealed(fresh), to_us(now), str(fresh.status)]
        created, raw = await self._script("active_conversation", [self._active_key(channel, sender)], args)
        return self._conversation(raw), created == 1

    def _active_key(self, channel: ChannelName, sender: str) -> str:
        return _key("active", self._keys.identity(channel, sender))

    def _sealed(self, conversation: Conversation) -> bytes:
        return dumps_sealed(self._keys, "conversation", encode_conversation(conversation))

    def _conversation(self, raw: str | bytes) -> Conversation:
        return loads_sealed(self._keys, "conversation", raw, decode_conversation)

    @_guarded
    async def find_active_conversation(self, channel: ChannelName, sender: str) -> Conversation | None:
        conversation_id = await self._redis.get(self._active_key(channel, sender))
        if conversation_id is None:
            return None
        found = await self._conversations([_text(conversation_id)])
        return found[0] if found and found[0].active else None

    @_guarded
    async def get_conversation(self, conversation_id: str) -> Conversation | None:
        raw = await self._redis.get(_key("conv", conversation_id))
        return None if raw is None else self._conversation(raw)

    @_holdable
    async def save_conversation(self, conversation: Conversation, *, done: DoneMark | None = None) -> None:
        c = conversation
        keys = [self._active_key(c.channel, c.sender)]
        done_at = ""
        if done is not None:
            keys.append(_key("seen", done.key))
            done_at = str(to_us(datetime.now(UTC)) // 1000 + done.ttl_seconds * 1000)
        args = [PREFIX, c.id, self._sealed(c), to_us(c.created_at), str(c.status),
                "1" if c.active else "0", done_at, *(str(status) for status in Status)]  # fmt: skip
        await self._write(lambda pipe: _eval(pipe, "save_conversation", keys, args), _saved)

    @_guarded
    async def conversations_by_status(self, status: Status) -> list[Conversation]:
        ids = _texts(await self._redis.smembers(_key("status", str(status))))
        found = await self._conversations(sorted(ids))
        return sorted(found, key=lambda c: (c.created_at, c.id))

    @_guarded
    async def list_conversations(self, since: datetime, until: datetime) -> list[Conversation]:
        ids = await self._redis.zrangebyscore(_key("created"), to_us(since), f"({to_us(until)}")
        return await self._conversations(_texts(ids))

    async def _conversations(self, ids: list[str]) -> list[Conversation]:
        if not ids:
            return []
        raws = await self._redis.mget([_key("conv", i) for i in ids])
        return [self._conversation(raw) for raw in raws if raw is not None]

    # Transcripts

    def share_texts(self, own: OwnTexts) -> None:
        self._texts.allow(own)

    @_holdable
    async def append_transcript(self, entry: TranscriptEntry) -> None:
        keys = [_key("e", entry.id), _key("transcript", entry.conversation_id)]
        pmid = entry.provider_message_id or ""
        shared = self._texts.reference(entry)
        head = f"{_DELIVERY_CODES[entry.delivery]}{pmid}\n".encode()
        value = head + self._keys.seal("entry", encode_entry_data(entry, shared))
        args = [PREFIX, entry.id, value, pmid, int(PROVIDER_ID_KEPT.total_seconds())]

        def queue(pipe: Pipeline) -> None:
            if shared is not None:  # its text first, in the same transaction: never a reference to nothing
                pipe.hsetnx(_key("texts"), shared.ref, shared.sealed)
            _eval(pipe, "append_entry", keys, args)

        await self._write(queue)

    @_guarded
    async def transcript(self, conversation_id: str) -> list[TranscriptEntry]:
        ids = _texts(await self._redis.lrange(_key("transcript", conversation_id), 0, -1))
        return [entry for entry in await self._entries(ids) if entry is not None]

    async def _entries(self, ids: list[str]) -> list[TranscriptEntry | None]:
        if not ids:
            return []
        values = await self._redis.mget([_key("e", entry_id) for entry_id in ids])
        shared = self._texts.get
        found = await self._texts.decoded(
            lambda: [None if v is None else _entry(entry_id, _text(v), self._keys, shared)
                     for entry_id, v in zip(ids, values, strict=True)],
            self._shared_texts,
        )  # fmt: skip
        missing = [n for n, entry in enumerate(found) if entry is None]
        if missing:  # entries written before the compact layout
            async with self._redis.pipeline(transaction=False) as pipe:
                for n in missing:
                    pipe.hgetall(_key("entry", ids[n]))
                for n, fields in zip(missing, await pipe.execute(), strict=True):
                    found[n] = _old_entry(ids[n], fields, self._keys) if fields else None
        return found

    async def _shared_texts(self) -> Stored:
        found = await self._redis.hgetall(_key("texts"))
        return [(_text(ref), sealed) for ref, sealed in found.items()]

    @_guarded
    async def set_delivery(
        self, entry_id: str, delivery: Delivery, provider_message_id: str | None = None
    ) -> bool:
        keys = [_key("e", entry_id), _key("entry", entry_id)]
        args = [PREFIX, entry_id, _DELIVERY_CODES[delivery], str(delivery), provider_message_id or "",
                int(PROVIDER_ID_KEPT.total_seconds())]  # fmt: skip
        return bool(await self._script("set_delivery", keys, args) == 1)

    @_guarded
    async def find_by_provider_id(self, provider_message_id: str) -> TranscriptEntry | None:
        entry_id = await self._redis.get(_key("provider", provider_message_id))
        return None if entry_id is None else (await self._entries([_text(entry_id)]))[0]

    # De-duplication

    @_guarded
    async def claim(self, key: str, owner: str, lease_seconds: float, *, now: datetime | None = None) -> ClaimState:
        lease_end_ms = to_us(now or datetime.now(UTC)) // 1000 + int(lease_seconds * 1000)
        found = await self._script("claim", [_key("seen", key)], [_CLAIM_PREFIX + owner, lease_end_ms])
        return ClaimState(_text(found))

    @_guarded
    async def release(self, key: str, owner: str) -> None:
        await self._script("unlock", [_key("seen", key)], [_CLAIM_PREFIX + owner])

    # The waiting queue

    @_holdable
    async def enqueue(self, conversation_id: str, queue: str, priority: Priority, at: datetime) -> None:
        entry = encode_queue_entry(QueueEntry(conversation_id, queue, priority, at))
        keys = [_key("queue", "entries"), _key("queue", "seq"), _key("queue", "names")]
        args = [PREFIX, conversation_id, queue, str(priority.rank), f"{to_us(at):020d}", dumps(entry)]
        await self._write(lambda pipe: _eval(pipe, "enqueue", keys, args))

    @_guarded
    async def waiting(self, queue: str | None = None) -> list[QueueEntry]:
        names = [queue] if queue is not None else _texts(await self._redis.smembers(_key("queue", "names")))
        members: list[str] = []
        for name in names:
            members.extend(_texts(await self._redis.zrange(_key("queue", "waiting", name), 0, -1)))
        ids = [member.split(":", 3)[3] for member in sorted(members)]
        if not ids:
            return []
        raws = await self._redis.hmget(_key("queue", "entries"), ids)
        return [loads("queue", raw, decode_queue_entry) for raw in raws if raw is not None]

    @_guarded
    async def position(self, conversation_id: str) -> int | None:
        raw = await self._redis.hget(_key("queue", "entries"), conversation_id)
        if raw is None:
            return None
        entry = json.loads(raw)
        rank = await self._redis.zrank(_key("queue", "waiting", entry["queue"]), entry["member"])
        return None if rank is None else int(str(rank)) + 1

    @_guarded
    async def take(self, conversation_id: str, listener: str, at: datetime) -> QueueEntry:
        if not listener:
            raise ValueError("take needs a listener name")
        entry = await self._take_or_requeue(conversation_id, listener, to_us(at))
        if entry is None:
            raise Conflict(f"conversation {conversation_id} is not waiting in a queue")
        return entry

    @_guarded
    async def takes_since(self, queue: str, since: datetime) -> int:
        return int(await self._redis.zcount(_key("takes", queue), to_us(since), "+inf"))

    @_guarded
    async def held_by(self, listener: str) -> int:
        return int(await self._redis.scard(_key("held", listener)))

    @_guarded
    async def requeue(self, conversation_id: str) -> QueueEntry:
        entry = await self._take_or_requeue(conversation_id, "", 0)
        if entry is None:
            raise Conflict(f"conversation {conversation_id} has no queue entry")
        return entry

    async def _take_or_requeue(self, conversation_id: str, listener: str, at_us: int) -> QueueEntry | None:
        args = [PREFIX, conversation_id, listener, at_us, at_us - TAKES_KEPT_US]
        raw = await self._script("take_or_requeue", [_key("queue", "entries")], args)
        return None if raw is None else loads("queue", raw, decode_queue_entry)

    @_guarded
    async def remove_from_queue(self, conversation_id: str) -> bool:
        args = [PREFIX, conversation_id]
        return bool(await self._script("remove_from_queue", [_key("queue", "entries")], args) == 1)

    # Listener accounts

    @_guarded
    async def add_listener(self, listener: Listener) -> None:
        if not await self._redis.hsetnx(_key("listeners"), listener.name, dumps(encode_listener(listener))):
            raise Conflict(f"a listener named {listener.name!r} already exists")

    @_guarded
    async def get_listener(self, name: str) -> Listener | None:
        raw = await self._redis.hget(_key("listeners"), name)
        return None if raw is None else loads("listener", raw, decode_listener)

    @_guarded
    async def list_listeners(self) -> list[Listener]:
        accounts = await self._redis.hgetall(_key("listeners"))
        return [loads("listener", accounts[name], decode_listener) for name in sorted(accounts)]

    @_guarded
    async def update_listener(self, listener: Listener) -> bool:
        args = [listener.name, dumps(encode_listener(listener))]
        return bool(await self._script("update_listener", [_key("listeners")], args) == 1)

    @_guarded
    async def remove_listener(self, name: str) -> bool:
        return bool(await self._redis.hdel(_key("listeners"), name) == 1)

    # Console sessions

    @_guarded
    async def put_session(self, session: ConsoleSession, now: datetime) -> None:
        ttl_ms = max(1, int((session.expires - now).total_seconds() * 1000))
        value = json.dumps({"name": session.name, "expires_us": to_us(session.expires)})
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(_key("session", session.key), value, px=ttl_ms)
            pipe.sadd(_key("sessions", session.name), session.key)
            pipe.pexpire(_key("sessions", session.name), ttl_ms)  # every session lasts as long: the last one ends last
            await pipe.execute()

    @_guarded
    async def get_session(self, key: str, now: datetime) -> ConsoleSession | None:
        raw = await self._redis.get(_key("session", key))
        if raw is None:
            return None
        data = json.loads(raw)
        session = ConsoleSession(key, str(data["name"]), from_us(int(data["expires_us"])))
        return session if session.expires > now else None

    @_guarded
    async def end_session(self, key: str) -> bool:
        raw = await self._redis.get(_key("session", key))
        if raw is None:
            return False
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(_key("session", key))
            pipe.srem(_key("sessions", str(json.loads(raw)["name"])), key)
            await pipe.execute()
        return True

    @_guarded
    async def end_sessions(self, name: str) -> int:
        keys = [_text(key) for key in await self._redis.smembers(_key("sessions", name))]
        async with self._redis.pipeline(transaction=True) as pipe:
            for key in keys:
                pipe.delete(_key("session", key))
            pipe.delete(_key("sessions", name))
            ended = await pipe.execute()
        return sum(int(n) for n in ended[: len(keys)])

    # The outbox

    @_holdable
    async def outbox_put(self, item: OutboxItem) -> None:
        keys = [_key("outbox", "item", item.id), _key("outbox", "conv", item.conversation_id),
                _key("outbox", "heads"), _key("outbox", "seq"), _key("e", item.id)]  # fmt: skip
        args = [item.id, item.conversation_id, dumps_sealed(self._keys, "outbox", item.payload), to_us(item.created_at),
                to_us(item.next_attempt_at or item.created_at)]  # fmt: skip
        await self._write(lambda pipe: _eval(pipe, "outbox_put", keys, args))

    @_guarded
    async def outbox_due(self, now: datetime, limit: int, *, lease_seconds: int = 60) -> list[OutboxItem]:
        lease_end = to_us(now) + lease_seconds * 1_000_000
        args = [PREFIX, to_us(now), limit, lease_end]
        claimed = await self._script("outbox_due", [_key("outbox", "heads")], args)
        items = []
        for conversation_id, item_id, fields in claimed:
            try:
                items.append(_outbox_item(_pairs(fields), self._keys))
            except Exception as exc:  # e.g. a hash cut short: set aside, never blocking the others
                await self._outbox_set_aside(_text(conversation_id), _text(item_id), exc)
        return items

    async def _outbox_set_aside(self, conversation_id: str, item_id: str, exc: Exception) -> None:
        log.error("redis: outbox item %s set aside: its stored form cannot be read (%s)", item_id, type(exc).__name__)
        keys = [_key("outbox", "item", item_id), _key("outbox", "heads"), _key("outbox", "conv", conversation_id)]
        reason = f"set aside: its stored form cannot be read ({type(exc).__name__})"
        args = [PREFIX, item_id, conversation_id, reason, int(RESOLVED_OUTBOX_KEPT.total_seconds())]
        await self._script("outbox_set_aside", keys, args)
        await self._script("set_delivery", [_key("e", item_id), _key("entry", item_id)],
                           [PREFIX, item_id, _DELIVERY_CODES[Delivery.FAILED], str(Delivery.FAILED), "",
                            int(PROVIDER_ID_KEPT.total_seconds())])  # fmt: skip

    @_guarded
    async def outbox_get(self, item_id: str) -> OutboxItem | None:
        return await self._outbox_item(item_id)

    async def _outbox_item(self, item_id: str) -> OutboxItem | None:
        found = await self._redis.hgetall(_key("outbox", "item", item_id))
        return _outbox_item({_text(k): _text(v) for k, v in found.items()}, self._keys) if found else None

    @_guarded
    async def outbox_renew(self, item_id: str, lease: datetime, until: datetime) -> bool:
        keys = [_key("outbox", "item", item_id), _key("outbox", "heads")]
        return bool(await self._script("outbox_renew", keys, [to_us(lease), to_us(until)]) == 1)

    @_guarded
    async def outbox_mark_sent(
        self, item_id: str, provider_message_id: str | None, *, lease: datetime | None = None
    ) -> bool:
        field = "" if provider_message_id is None else "pmid"
        return await self._resolve(item_id, OutboxStatus.SENT, field, provider_message_id or "", Delivery.SENT, lease)

    @_guarded
    async def outbox_reschedule(
        self, item_id: str, next_attempt_at: datetime, attempts: int, last_error: str, parts_sent: int = 0, *,
        lease: datetime | None = None,
    ) -> bool:
        keys = [_key("outbox", "item", item_id), _key("outbox", "heads")]
        args = [PREFIX, item_id, to_us(next_attempt_at), attempts, last_error, parts_sent, _fence(lease)]
        return bool(await self._script("outbox_reschedule", keys, args) == 1)

    @_guarded
    async def outbox_mark_failed(self, item_id: str, reason: str, *, lease: datetime | None = None) -> bool:
        return await self._resolve(item_id, OutboxStatus.FAILED, "last_error", reason, Delivery.FAILED, lease)

    @_guarded
    async def outbox_oldest_pending(self) -> datetime | None:
        """Each conversation's oldest pending item heads it: the oldest of the heads (two pipelined reads)."""
        conversations = _texts(await self._redis.zrange(_key("outbox", "heads"), 0, -1))
        async with self._redis.pipeline(transaction=False) as pipe:
            for conversation_id in conversations:
                pipe.zrange(_key("outbox", "conv", conversation_id), 0, 0)
            heads = [found[0] for found in await pipe.execute() if found]
        async with self._redis.pipeline(transaction=False) as pipe:
            for item_id in heads:
                pipe.hget(_key("outbox", "item", _text(item_id)), "created_us")
            created = [int(value) for value in await pipe.execute() if value is not None]
        return from_us(min(created)) if created else None

    async def _resolve(
        self, item_id: str, status: OutboxStatus, field: str, value: str, delivery: Delivery, lease: datetime | None
    ) -> bool:
        keys = [_key("outbox", "item", item_id), _key("outbox", "heads"), _key("e", item_id), _key("entry", item_id)]
        kept = int((SENT_OUTBOX_KEPT if status == OutboxStatus.SENT else RESOLVED_OUTBOX_KEPT).total_seconds())
        provider_id = value if field == "pmid" else ""
        args = [PREFIX, item_id, str(status), field, value, kept, str(delivery), provider_id,
                _DELIVERY_CODES[delivery], int(PROVIDER_ID_KEPT.total_seconds()), _fence(lease)]  # fmt: skip
        return bool(await self._script("outbox_resolve", keys, args) == 1)

    # The inbox

    @_guarded
    async def inbox_put(self, items: Sequence[InboxItem]) -> None:
        args: list[Any] = [PREFIX]
        for i in items:
            due = i.next_attempt_at or i.received_at
            args += [i.id, self._keys.lookup("inbox", i.sender_key), dumps_sealed(self._keys, "inbox", i.payload),
                     to_us(i.received_at), to_us(due)]  # fmt: skip
        if items:
            await self._script("inbox_put", [_key("inbox", "heads"), _key("inbox", "seq")], args)

    @_guarded
    async def inbox_waiting(self, sender_key: str) -> bool:
        return bool(await self._redis.exists(_key("inbox", "sender", self._keys.lookup("inbox", sender_key))))

    @_guarded
    async def inbox_due(self, now: datetime, limit: int, *, lease_seconds: int = 30) -> list[InboxItem]:
        lease_end = to_us(now) + lease_seconds * 1_000_000
        claimed = await self._script("inbox_due", [_key("inbox", "heads")], [PREFIX, to_us(now), limit, lease_end])
        return [_inbox_item(_pairs(fields), self._keys) for fields in claimed if fields]

    @_guarded
    async def inbox_done(self, item_id: str) -> bool:
        keys = [_key("inbox", "item", item_id), _key("inbox", "heads")]
        return bool(await self._script("inbox_done", keys, [PREFIX, item_id]) == 1)

    @_guarded
    async def inbox_retry(self, item_id: str, next_attempt_at: datetime, attempts: int) -> bool:
        keys = [_key("inbox", "item", item_id), _key("inbox", "heads")]
        args = [PREFIX, item_id, to_us(next_attempt_at), attempts]
        return bool(await self._script("inbox_retry", keys, args) == 1)

    @_guarded
    async def inbox_set_aside(self, item_id: str, at: datetime) -> bool:
        keys = [_key("inbox", "item", item_id), _key("inbox", "heads"), _key("inbox", "aside", item_id),
                _key("inbox", "aside")]  # fmt: skip
        return bool(await self._script("inbox_set_aside", keys, [PREFIX, item_id, to_us(at)]) == 1)

    @_guarded
    async def inbox_set_aside_count(self) -> int:
        return int(await self._redis.zcard(_key("inbox", "aside")))

    # Timers

    @_holdable
    async def set_timer(self, conversation_id: str, kind: TimerKind, due_at: datetime) -> None:
        member = _timer_member(conversation_id, kind)

        await self._write(lambda pipe: pipe.zadd(_key("timers"), {member: to_us(due_at)}))

    @_holdable
    async def cancel_timers(self, conversation_id: str, kind: TimerKind | None = None) -> None:
        """Every kind is known (``TimerKind``): no per-conversation index of its timers is kept."""
        keys = [_key("timers"), _key("timers", conversation_id)]
        members = [_timer_member(conversation_id, k) for k in ([kind] if kind is not None else list(TimerKind))]
        await self._write(lambda pipe: _eval(pipe, "cancel_timers", keys, members))

    @_guarded
    async def due_timers(self, now: datetime, limit: int = 100) -> list[Timer]:
        found = await self._redis.zrangebyscore(
            _key("timers"), "-inf", to_us(now), start=0, num=limit, withscores=True
        )
        pairs: list[tuple[str, float]] = list(found)  # type: ignore[arg-type]  # withscores=True gives pairs
        timers = (_timer(member, score) for member, score in pairs)
        return [timer for timer in timers if timer is not None]

    @_guarded
    async def timer_postpone(self, timer: Timer, until: datetime) -> bool:
        args = [_timer_member(timer.conversation_id, timer.kind), to_us(timer.due_at), to_us(until)]
        return bool(await self._script("timer_postpone", [_key("timers")], args) == 1)

    @_guarded
    async def timer_done(self, timer: Timer) -> bool:
        keys = [_key("timers"), _key("timers", timer.conversation_id)]
        args = [_timer_member(timer.conversation_id, timer.kind), to_us(timer.due_at)]
        return bool(await self._script("timer_done", keys, args) == 1)

    # Events, across instances

    @_holdable
    async def publish(self, event: Event) -> None:
        message = dumps(encode(event))
        await self._write(lambda pipe: pipe.publish(EVENTS_CHANNEL, message))

    @_guarded
    async def subscribe(self) -> _RedisSubscription:
        return await _RedisSubscription.start(self._redis.pubsub())

    # Blocks and the audit log

    @_guarded
    async def put_block(self, block: Block) -> None:
        await self._redis.hset(_key("blocks"), block.key, dumps(encode_block(block)))

    @_guarded
    async def get_block(self, key: str, now: datetime) -> Block | None:
        raw = await self._redis.hget(_key("blocks"), key)
        block = None if raw is None else loads("block", raw, decode_block)
        return block if block is not None and block.active(now) else None

    @_guarded
    async def list_blocks(self, now: datetime) -> list[Block]:
        blocks = [loads("block", raw, decode_block) for raw in (await self._redis.hgetall(_key("blocks"))).values()]
        expired = [block.key for block in blocks if not block.active(now)]
        if expired:
            await self._redis.hdel(_key("blocks"), *expired)
        return sorted((b for b in blocks if b.active(now)), key=lambda b: b.at, reverse=True)

    @_guarded
    async def remove_block(self, key: str) -> bool:
        return bool(await self._redis.hdel(_key("blocks"), key) == 1)

    @_guarded
    async def audit(self, entry: AuditEntry) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.lpush(_key("audit"), dumps(encode_audit(entry)))
            pipe.ltrim(_key("audit"), 0, AUDIT_KEPT - 1)
            await pipe.execute()

    @_guarded
    async def audit_log(self, limit: int = 200) -> list[AuditEntry]:
        raws = await self._redis.lrange(_key("audit"), 0, limit - 1)
        return [loads("audit", raw, decode_audit) for raw in raws]

    # Retention and erasure (gateway/store/redis_retention.py)

    @_guarded
    async def purge_conversation(self, stripped: Conversation) -> int:
        count = await redis_retention.forget(self._redis, stripped.id, erase=False)
        await self.save_conversation(stripped)
        return count

    @_guarded
    async def erase_conversation(self, conversation_id: str) -> int:
        found = await self.get_conversation(conversation_id)
        record = None if found is None else Record(self._active_key(found.channel, found.sender), found.queue)
        return await redis_retention.forget(self._redis, conversation_id, erase=True, record=record)

    @_guarded
    async def first_created(self) -> datetime | None:
        first = await self._redis.zrange(_key("created"), 0, 0, withscores=True)
        return from_us(int(first[0][1])) if first else None

    @_holdable
    async def expire_transcript(self, conversation_id: str, ttl_seconds: int) -> None:
        await self._write(lambda pipe: redis_retention.expire_transcript(pipe, conversation_id, ttl_seconds))

    async def forget_freed(self) -> None:
        return None  # deleted keys leave memory at once; persistence files are rewritten by Redis itself

    @_guarded
    async def seen_keys(self) -> list[str]:
        return await redis_retention.seen_keys(self._redis)

    @_guarded
    async def forget_seen(self, keys: Sequence[str]) -> None:
        if keys:
            await self._redis.delete(*(_key("seen", key) for key in keys))

    @_guarded
    async def inbox_forget(self, sender_key: str) -> int:
        sender_key = self._keys.lookup("inbox", sender_key)
        ids = _texts(await self._redis.zrange(_key("inbox", "sender", sender_key), 0, -1))
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(_key("inbox", "sender", sender_key), *(_key("inbox", "item", i) for i in ids))
            pipe.zrem(_key("inbox", "heads"), sender_key)
            await pipe.execute()
        return len(ids)
    # Encryption at rest

    @_guarded
    async def reseal(self) -> dict[str, int]:
        return await redis_reseal.reseal(self._redis, self._keys)

    # Notices, their evidence, referrals

    @_guarded
    async def put_notice(self, notice: Notice) -> None:
        await self._put_record("notice", notice.id, notice.conversation_id, notice.created_at, notice.to_dict())

    @_guarded
    async def get_notice(self, notice_id: str) -> Notice | None:
        raw = await self._redis.get(_key("notice", notice_id))
        return None if raw is None else loads_sealed(self._keys, "notice", raw, Notice.from_dict)

    @_guarded
    async def list_notices(self, conversation_id: str | None = None) -> list[Notice]:
        raws = await self._records("notice", conversation_id)
        return [loads_sealed(self._keys, "notice", raw, Notice.from_dict) for raw in raws]

    @_guarded
    async def put_evidence(self, notice_id: str, files: list[Evidence]) -> None:
        sealed = dumps_sealed(self._keys, "evidence", [f.to_dict() for f in files])
        await self._redis.set(_key("evidence", notice_id), sealed)

    @_guarded
    async def get_evidence(self, notice_id: str) -> list[Evidence]:
        raw = await self._redis.get(_key("evidence", notice_id))
        return [] if raw is None else [Evidence.from_dict(f) for f in loads_sealed(self._keys, "evidence", raw, list)]

    @_guarded
    async def put_upload(self, key: str, content_type: str, data: bytes) -> None:
        record = {"content_type": content_type, "data": base64.b64encode(data).decode()}
        await self._redis.set(_key("upload", key), dumps_sealed(self._keys, "upload", record))

    @_guarded
    async def get_upload(self, key: str) -> tuple[str, bytes] | None:
        raw = await self._redis.get(_key("upload", key))
        if raw is None:
            return None
        record = loads_sealed(self._keys, "upload", raw, dict)
        return str(record["content_type"]), base64.b64decode(record["data"])

    @_guarded
    async def drop_evidence(self, notice_id: str) -> int:
        files = await self.get_evidence(notice_id)
        await self._redis.delete(_key("evidence", notice_id))
        return len(files)

    @_guarded
    async def put_referral(self, referral: Referral) -> None:
        await self._put_record("referral", referral.id, referral.conversation_id, referral.created_at,
                               referral.to_dict())  # fmt: skip

    @_guarded
    async def get_referral(self, referral_id: str) -> Referral | None:
        raw = await self._redis.get(_key("referral", referral_id))
        return None if raw is None else loads_sealed(self._keys, "referral", raw, Referral.from_dict)

    @_guarded
    async def list_referrals(self, conversation_id: str | None = None) -> list[Referral]:
        raws = await self._records("referral", conversation_id)
        return [loads_sealed(self._keys, "referral", raw, Referral.from_dict) for raw in raws]

    async def _put_record(self, kind: str, id_: str, conversation_id: str, at: datetime, data: dict[str, Any]) -> None:
        score = to_us(at)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(_key(kind, id_), dumps_sealed(self._keys, kind, data))
            pipe.zadd(_key(kind + "s"), {id_: score}, nx=True)
            pipe.zadd(_key(kind + "s", conversation_id), {id_: score}, nx=True)
            await pipe.execute()

    async def _records(self, kind: str, conversation_id: str | None) -> list[str]:
        index = _key(kind + "s", conversation_id) if conversation_id else _key(kind + "s")
        found: list[Any] = await self._redis.zrange(index, 0, -1)
        ids = [_text(i) for i in found]
        if not ids:
            return []
        raws = await self._redis.mget([_key(kind, i) for i in ids])
        return [_text(raw) for raw in raws if raw is not None]

    # Per-conversation locks, across instances

    @asynccontextmanager
    async def lock(self, conversation_id: str, timeout: float = 10.0) -> AsyncIterator[None]:
        if self._closed:
            raise StoreError("the redis store is closed")
        lease = Lock(self._redis, _key("lock", conversation_id), timeout=LOCK_LEASE_MS / 1000, sleep=LOCK_POLL_SECONDS,
                     blocking_timeout=timeout, thread_local=False)  # fmt: skip
        try:
            if not await lease.acquire():
                raise StoreError(f"timed out waiting for the lock of conversation {conversation_id}")
            renewal = asyncio.create_task(self._keep_lock(lease))
            try:
                yield
            finally:
                renewal.cancel()
                with contextlib.suppress(LockNotOwnedError):  # lapsed, perhaps somebody else's now: left alone
                    await lease.release()
        except RedisError as error:
            raise StoreError(f"redis: {type(error).__name__}: {error}") from error

    async def _keep_lock(self, lease: Lock) -> None:
        """Renew the lease while the lock is held; stop once it is somebody else's."""
        while True:
            await asyncio.sleep(LOCK_LEASE_MS / 3000)
            try:
                await lease.reacquire()
            except LockNotOwnedError:
                return
            except RedisError:
                continue  # the next renewal may pass; the lease still runs meanwhile
            except Exception as exc:  # a bug must not end the renewal silently: the lock would lapse while held
                log.error("redis: renewing a conversation lock failed with %s at %s", type(exc).__name__, where(exc))


def _saved(answers: list[Any]) -> None:
    if answers[0] == 0:
        raise Conflict("another conversation of this sender is already active")


def _entry(entry_id: str, value: str, keys: DataKeys, shared: Callable[[str], SharedText]) -> TranscriptEntry:
    head, _, data = value.partition("\n")
    delivery = _DELIVERIES.get(head[:1])
    if delivery is None:
        raise StoreError("a stored transcript record cannot be read (delivery)")
    return decode_entry_data(entry_id, keys.open("entry", data), delivery, head[1:] or None, shared)


def _old_entry(entry_id: str, found: dict[str, str], keys: DataKeys) -> TranscriptEntry:
    data = keys.open("entry", found["data"])
    return decode_entry_data(entry_id, data, Delivery(found["delivery"]), found.get("pmid"))


def _fence(lease: datetime | None) -> str:
    """The lease end a caller holds, as the scripts compare it (µs), or '' for no condition."""
    return "" if lease is None else str(to_us(lease))


def _outbox_item(found: dict[str, str], keys: DataKeys) -> OutboxItem:
    return OutboxItem(
        id=found["id"],
        conversation_id=found["conv"],
        payload=loads_sealed(keys, "outbox", found["payload"], dict) if "payload" in found else {},  # sent: dropped
        created_at=from_us(int(found["created_us"])),
        next_attempt_at=from_us(int(found["next_us"])),
        attempts=int(found["attempts"]),
        last_error=found.get("last_error"),
        status=OutboxStatus(found["status"]),
        provider_message_id=found.get("pmid"),
        parts_sent=int(found.get("parts_sent", 0)),
    )


def _inbox_item(found: dict[str, str], keys: DataKeys) -> InboxItem:
    return InboxItem(
        id=found["id"], sender_key=found["sender"], payload=loads_sealed(keys, "inbox", found["payload"], dict),
        received_at=from_us(int(found["received_us"])), next_attempt_at=from_us(int(found["next_us"])),
        attempts=int(found["attempts"]),
    )  # fmt: skip


def _timer_member(conversation_id: str, kind: str) -> str:
    return json.dumps([conversation_id, kind])


def _timer(member: str, score: float) -> Timer | None:
    conversation_id, kind = json.loads(member)
    return Timer.read(conversation_id, kind, from_us(int(score)))


class _RedisSubscription:
    """One Redis pub/sub connection on the events channel; closing it returns the connection."""

    def __init__(self, pubsub: PubSub) -> None:
        self._pubsub = pubsub
        self._closed = False

    @classmethod
    async def start(cls, pubsub: PubSub) -> _RedisSubscription:
        """Subscribe and wait for Redis to confirm, so every later publish reaches this subscription."""
        subscription = cls(pubsub)
        try:
            await pubsub.subscribe(EVENTS_CHANNEL)
            async with asyncio.timeout(10):
                while (await pubsub.get_message(timeout=1.0) or {}).get("type") != "subscribe":
                    pass
        except BaseException:
            await subscription.aclose()
            raise
        return subscription

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Event:
        """The next event. redis-py reconnects a lost connection by itself and subscribes again: Redis then
        confirms the subscription anew, which means events published meanwhile were missed → ``resync``."""
        while not self._closed:
            try:
                message = await self._pubsub.get_message(timeout=None)
            except RedisError as error:
                if self._closed:
                    break
                raise StoreError(f"redis: {type(error).__name__}: {error}") from error
            if message is not None and message.get("type") == "message":
                event = decode(json.loads(message["data"]))
                if event is not None:  # a type this version does not know (rolling deploy), or malformed
                    return event
            if message is not None and message.get("type") == "subscribe":
                return Resync()
        raise StopAsyncIteration

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]  # untyped in redis-py

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
