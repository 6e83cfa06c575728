"""Rate limits on what anonymous clients and listeners may do, with the ``limits`` library.

Counters live in Redis when the store is Redis (shared by every instance: ``limits``' async Redis storage on
redis-py) and in memory otherwise. A counter is keyed by a :class:`~gateway.keyed.KeyedHash` of what it counts
(a client address, a browser token, a conversation id, a listener), never by the value itself. A refused hit
costs one counter increment: nothing is written to the store. Refusals are counted in the
``gateway_rate_limited`` metric by limit name only.

If the counters cannot be reached (Redis down), requests are allowed: the store being down stops the gateway
anyway, and a limit must never be what silences a young person.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from limits import RateLimitItem, RateLimitItemPerDay, RateLimitItemPerHour, RateLimitItemPerSecond, parse
from limits.aio.storage import MemoryStorage, RedisClusterStorage, RedisStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter
from redis.asyncio import BlockingConnectionPool
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript

from gateway.keyed import KeyedHash
from gateway.metrics import Metrics
from gateway.outage_log import error_class
from gateway.proxies import ClientAddresses
from gateway.settings import Settings
from gateway.store import Counter
from gateway.store.redis_pool import close_cluster, open_pool, primary_followers, sent_once
from gateway.store.redis_url import is_redis, is_sentinel

log = logging.getLogger(__name__)

KEY_PREFIX = "hg:limits"


class Limit(StrEnum):
    CHATS_PER_ADDRESS = "chats_per_address"  # per client network (gateway/networks.py)
    CHATS_PER_SHARED_NETWORK = "chats_per_shared_network"  # per client network inside a declared shared one
    RISKY_CHATS = "risky_chats_per_network"  # new chats a guard refused, opened for a risky first message
    REFUSED_READINGS = "refused_readings_per_network"  # the model's readings of messages a guard refused
    CHATS_PER_BROWSER = "chats_per_browser"
    MESSAGES = "messages_per_conversation"
    RISKY_MESSAGES = "risky_messages_per_conversation"  # messages past the flood limit let through for their risk
    FLOOD_READINGS = "flood_readings_per_sender"  # the model's readings of messages past the flood limit
    FORWARDED = "forwarded_per_conversation"  # messages the platform marks forwarded: counted apart from MESSAGES
    TYPING = "typing_per_conversation"
    LISTENER_WRITES = "listener_writes"
    # bytes of web chat images kept (after cleaning), not hits (gateway/uploads.py; since 2026-12-07)
    IMAGE_BYTES_PER_NETWORK = "image_bytes_per_network"
    IMAGE_BYTES_PER_SHARED_NETWORK = "image_bytes_per_shared_network"
    IMAGE_BYTES_PER_CONVERSATION = "image_bytes_per_conversation"


class Charge(StrEnum):
    """What :meth:`RateLimits.charge` did."""

    CHARGED = "charged"  # within the budget: added, this id marked (:meth:`RateLimits.refund` may take it back)
    NOT_CHARGED = "not_charged"  # this id charged before in the window, or the counters unreachable: let on
    REFUSED = "refused"  # the budget spent before it: nothing added


@dataclass(frozen=True)
class LimitStorage:
    """The counters' storage and how to release it (its Redis connections) at shutdown."""

    storage: Storage
    pool: BlockingConnectionPool | None = None
    cluster: RedisCluster | None = None  # the Cluster client ``limits`` made (it offers no close of its own)

    def workers(self) -> dict[str, Callable[[], Coroutine[Any, Any, None]]]:
        """Behind Sentinel, the pool's check of the primary (``limits-primary``), for the app's supervisor."""
        return primary_followers(self.pool, "limits-primary")

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.aclose()
        if self.cluster is not None:
            await close_cluster(self.cluster)  # redis-py's aclose alone may close nothing (redis_pool.py)


def open_limit_storage(
    store_url: str,
    *,
    max_connections: int = 100,
    pool_timeout: float = 10.0,
    health_check_interval: float = 30.0,
    socket_timeout: float = 5.0,
    cluster: bool = False,
) -> LimitStorage:
    """The counters' storage: the store's Redis (through redis-py, already a dependency), else memory.

    With Redis, the connections come from a pool of ours, like the store's: blocking (a caller waits up to
    ``pool_timeout`` for a free connection instead of failing with MaxConnectionsError under load), checked by a
    PING after ``health_check_interval`` idle seconds (a connection a firewall or a Redis restart cut is replaced
    before a command is lost on it: ``gateway/store/redis_pool.py``), and closed at shutdown
    (:meth:`LimitStorage.close`). With ``cluster`` (``GATEWAY_REDIS_CLUSTER``), ``limits``' Cluster storage on
    redis-py's Cluster client (each counter is one key: one slot), which sends each command once, as the store's
    (``redis_pool.open_cluster``): a hit resent after a lost answer counted twice.
    """
    if cluster and store_url.startswith(("redis://", "rediss://")):
        node = urlsplit(store_url).netloc
        clustered = RedisClusterStorage(
            "async+redis+cluster://" + node, implementation="redispy", key_prefix=KEY_PREFIX,
            max_connections=max_connections, health_check_interval=health_check_interval,
            socket_timeout=socket_timeout,
            retry=sent_once(),  # type: ignore[arg-type]  # passed on to redis-py's RedisCluster, typed narrower
        )  # fmt: skip
        client: RedisCluster = clustered.bridge.get_connection()  # type: ignore[attr-defined]  # redis-py's bridge
        return LimitStorage(clustered, cluster=client)
    if is_redis(store_url):
        pool = open_pool(store_url, max_connections=max_connections, timeout=pool_timeout,
                         health_check_interval=health_check_interval, socket_timeout=socket_timeout)  # fmt: skip
        storage = RedisStorage(
            _limits_scheme(store_url),
            implementation="redispy",
            key_prefix=KEY_PREFIX,
            connection_pool=pool,  # type: ignore[arg-type]  # passed on to redis-py's client
        )
        return LimitStorage(storage, pool)
    return LimitStorage(MemoryStorage())


def _limits_scheme(store_url: str) -> str:
    """The URL ``limits`` is given for its scheme only: its client is made on our pool. A Sentinel URL's pool follows
    the primary (``gateway/store/redis_pool.py``), so ``limits`` sees one Redis (its own Sentinel storage would make
    a pool of redis-py's, without our checks)."""
    if is_sentinel(store_url):
        return "async+redis://primary-named-by-sentinel:6379"  # never connected to: the pool is
    return ("async+redis+" if store_url.startswith("unix://") else "async+") + store_url


def client_address(request: web.Request, addresses: ClientAddresses) -> str:
    """The client's address: the peer's, or the one a trusted proxy named (``gateway/proxies.py``). Only ever used
    through a keyed hash. Several lines of the header are one list, in order (RFC 9110, 5.3): a proxy that adds its
    own line after the client's (HAProxy's ``option forwardfor``) is read from its own line, never the client's."""
    forwarded = ", ".join(request.headers.getall(addresses.header, ())) if addresses.header else None
    return addresses.client(request.remote or "", forwarded)


class RateLimits:
    """``await limits.allow(Limit.MESSAGES, conversation_id)`` counts one hit and says whether it is allowed."""

    def __init__(
        self, storage: Storage, items: Mapping[Limit, RateLimitItem], keyed: KeyedHash, metrics: Metrics
    ) -> None:
        self.storage = storage
        self._limiter = FixedWindowRateLimiter(storage)
        self._items = dict(items)
        self._keyed = keyed
        self._metrics = metrics
        self._memory = asyncio.Lock()  # :meth:`_hit_once` in memory: its read and its increments, one at a time
        self._script: AsyncScript | None = None
        self._charge_script: AsyncScript | None = None
        self._refund_script: AsyncScript | None = None
        if isinstance(storage, RedisStorage):  # the Cluster's too (a subclass)
            connection = storage.bridge.get_connection()  # type: ignore[attr-defined]
            self._script = connection.register_script(_HIT_ONCE)
            self._charge_script = connection.register_script(_CHARGE)
            self._refund_script = connection.register_script(_REFUND)

    @classmethod
    def from_settings(cls, settings: Settings, storage: Storage, metrics: Metrics) -> RateLimits:
        items = {
            Limit.CHATS_PER_ADDRESS: parse(settings.limit_chats_per_address),
            Limit.CHATS_PER_SHARED_NETWORK: parse(settings.limit_chats_per_shared_network),
            Limit.RISKY_CHATS: parse(settings.limit_risky_chats_per_network),
            Limit.REFUSED_READINGS: parse(settings.limit_refused_readings_per_network),
            Limit.CHATS_PER_BROWSER: parse(settings.limit_chats_per_browser),
            Limit.MESSAGES: parse(settings.limit_messages_per_conversation),
            Limit.RISKY_MESSAGES: parse(settings.limit_risky_messages_per_conversation),
            Limit.FLOOD_READINGS: parse(settings.limit_flood_readings_per_sender),
            Limit.FORWARDED: parse(settings.limit_forwarded_per_conversation),
            Limit.TYPING: parse(settings.limit_typing_per_conversation),
            Limit.LISTENER_WRITES: parse(settings.limit_listener_writes),
            Limit.IMAGE_BYTES_PER_NETWORK: RateLimitItemPerHour(settings.webchat_image_bytes_per_network_hour),
            Limit.IMAGE_BYTES_PER_SHARED_NETWORK: RateLimitItemPerHour(
                settings.webchat_image_bytes_per_shared_network_hour
            ),
            # a conversation's budget over a day: a web chat conversation rarely lasts longer
            Limit.IMAGE_BYTES_PER_CONVERSATION: RateLimitItemPerDay(settings.webchat_image_bytes_per_conversation),
        }
        return cls(storage, items, KeyedHash(settings.secret_key.get_secret_value()), metrics)

    async def allow(self, limit: Limit, subject: str, once: str | None = None) -> bool:
        """``once``: what the hit counts (an inbound message's de-duplication key): hit again, it counts nothing more
        and is answered as the first time (as :meth:`counter`'s mark; here a second key of the counters' storage)."""
        try:
            if once is None:
                allowed = await self._limiter.hit(self._items[limit], limit.value, self._keyed(limit.value, subject))
            else:
                allowed = await self._hit_once(limit, subject, once) <= self._items[limit].amount
        except Exception as exc:  # the counters' storage is down: allow (see the module docstring)
            log.warning("rate limits: counters unavailable (%s): allowing", error_class(exc))
            return True
        if not allowed:
            self._metrics.rate_limited.labels(limit.value).inc()
        return allowed

    async def window_left(self, limit: Limit, subject: str) -> int | None:
        """Whole seconds until ``limit``'s window for ``subject`` ends (its counter's expiry, one ``TTL`` on Redis),
        at least 1 and at most the window's length; None when the counters cannot be reached or hold no counter.
        Asked only after a refusal (``Gate.new_chat``: the ``refused`` frame's ``retry_after``, since 2026-12-07)."""
        item = self._items[limit]
        try:
            ends = await self.storage.get_expiry(item.key_for(limit.value, self._keyed(limit.value, subject)))
        except Exception as exc:  # the counters' storage is down: nothing to tell
            log.warning("rate limits: counters unavailable (%s): no window told", error_class(exc))
            return None
        left = ends - time.time()
        if left <= 0:
            return None
        return max(1, min(math.ceil(left), item.get_expiry()))

    async def _hit_once(self, limit: Limit, subject: str, once: str) -> int:
        """The count ``once``'s first hit brought (kept in its mark until the window ends), hitting the counter only
        the first time; a hit past the limit leaves no mark (as the store's script: a flood is not one key a
        message). On Redis one script (:data:`_HIT_ONCE`, the mark in the counter's slot on a Cluster); in memory,
        under the counters' lock. Until 2026-12-07 a read, then two increments: two attempts of one message at once
        (two sockets of one page, on two instances) both found no mark and both counted, the message taking two of
        ``risky_chats_per_network``'s places (``tests/test_ratelimit.py``)."""
        item = self._items[limit]
        key = item.key_for(limit.value, self._keyed(limit.value, subject))
        mark = self._mark(key, limit, once)
        if self._script is not None:
            bridge = self.storage.bridge  # type: ignore[attr-defined]  # limits' Redis storages have it
            keys = [bridge.prefixed_key(key), bridge.prefixed_key(mark)]
            return int(await self._script(keys, [item.get_expiry(), item.amount]))
        async with self._memory:
            if seen := await self.storage.get(mark):
                return seen
            count = await self.storage.incr(key, item.get_expiry())
            if count <= item.amount:
                await self._mark_in_memory(mark, key, count)
            return count

    async def within(self, limit: Limit, subject: str, once: str) -> bool:
        """Whether ``subject`` has some of ``limit``'s budget left (a byte budget: :meth:`charge`), or ``once`` was
        charged already in this window (a retry is never refused for its own first charge). Read only: nothing
        counted; a first look before the costly work (an image's cleaning), :meth:`charge` deciding after it.
        True when the counters cannot be reached (the module docstring)."""
        item = self._items[limit]
        key = item.key_for(limit.value, self._keyed(limit.value, subject))
        try:
            allowed = bool(await self.storage.get(self._mark(key, limit, once))) or (
                await self.storage.get(key) < item.amount
            )
        except Exception as exc:  # the counters' storage is down (see the module docstring)
            log.warning("rate limits: counters unavailable (%s): allowing", error_class(exc))
            return True
        if not allowed:
            self._metrics.rate_limited.labels(limit.value).inc()
        return allowed

    async def charge(self, limit: Limit, subject: str, amount: int, once: str) -> Charge:
        """Add ``amount`` (bytes kept) to ``subject``'s counter of ``limit`` when some of its budget is left (as
        :meth:`within` reads it), once for ``once`` in the window (its mark: an upload sent again under the same id
        after a 5xx is neither charged twice nor refused for its own first charge). The check and the charge are
        one step: one script on Redis (:data:`_CHARGE`, the mark in the counter's slot on a Cluster), one step under
        the counters' lock in memory. Until 2026-12-07 it read, then added, and refused nothing: two images at once,
        both found within the budget before their cleaning, were both kept past it (``tests/test_ratelimit.py``,
        ``tests/test_uploads_budget.py``). ``NOT_CHARGED`` when the counters cannot be reached."""
        item = self._items[limit]
        key = item.key_for(limit.value, self._keyed(limit.value, subject))
        mark = self._mark(key, limit, once)
        try:
            if self._charge_script is not None:
                bridge = self.storage.bridge  # type: ignore[attr-defined]  # limits' Redis storages have it
                keys = [bridge.prefixed_key(key), bridge.prefixed_key(mark)]
                done = int(await self._charge_script(keys, [item.get_expiry(), item.amount, max(1, amount)]))
                charged = (Charge.REFUSED, Charge.CHARGED, Charge.NOT_CHARGED)[done]
            else:
                async with self._memory:
                    charged = await self._charge_in_memory(key, mark, item, amount)
        except Exception as exc:  # the counters' storage is down (see the module docstring)
            log.warning("rate limits: counters unavailable (%s): not charged", error_class(exc))
            return Charge.NOT_CHARGED
        if charged is Charge.REFUSED:
            self._metrics.rate_limited.labels(limit.value).inc()
        return charged

    async def _charge_in_memory(self, key: str, mark: str, item: RateLimitItem, amount: int) -> Charge:
        if await self.storage.get(mark):
            return Charge.NOT_CHARGED
        if await self.storage.get(key) >= item.amount:
            return Charge.REFUSED
        await self.storage.incr(key, item.get_expiry(), amount=max(1, amount))
        await self._mark_in_memory(mark, key, 1)
        return Charge.CHARGED

    async def _mark_in_memory(self, mark: str, key: str, value: int) -> None:
        """``mark`` set to ``value`` until its counter ``key`` ends, to the instant (``limits``' memory storage keeps
        each key's end in ``expirations``). Until 2026-12-07 (late) its counter's seconds left rounded up, at least 1:
        a mark outlived its counter by up to a second (``tests/test_ratelimit.py``)."""
        ends = await self.storage.get_expiry(key)
        await self.storage.incr(mark, max(1, math.ceil(ends - time.time())), amount=value)
        if isinstance(self.storage, MemoryStorage):
            self.storage.expirations[mark] = ends

    async def refund(self, limit: Limit, subject: str, amount: int, once: str) -> None:
        """Take back what :meth:`charge` added for ``once`` (an image it charged under one budget and another
        refused: kept by neither), its mark with it; nothing if ``once`` is not marked, nor when its window's
        counter is gone (never below 0: :data:`_REFUND`). Since 2026-12-07."""
        item = self._items[limit]
        key = item.key_for(limit.value, self._keyed(limit.value, subject))
        mark = self._mark(key, limit, once)
        try:
            if self._refund_script is not None:
                bridge = self.storage.bridge  # type: ignore[attr-defined]  # limits' Redis storages have it
                await self._refund_script([bridge.prefixed_key(key), bridge.prefixed_key(mark)], [max(1, amount)])
                return
            async with self._memory:
                if isinstance(self.storage, MemoryStorage) and await self.storage.get(mark):
                    await self.storage.clear(mark)
                    await self.storage.decr(key, max(1, amount))
        except Exception as exc:  # the counters' storage is down (see the module docstring)
            log.warning("rate limits: counters unavailable (%s): not taken back", error_class(exc))

    def _mark(self, key: str, limit: Limit, once: str) -> str:
        """``once``'s mark of the counter ``key``: named with the counter's full key as its hash tag, so that a
        Cluster keeps both in one slot (:data:`_HIT_ONCE`; until 2026-12-07 ``{key}:once:…``, anywhere)."""
        return f"{{{KEY_PREFIX}:{key}}}:once:{self._keyed(limit.value + ':once', once)}"

    async def once_marked(self, limit: Limit, subject: str, once: str) -> bool:
        """Whether ``once`` was let on under ``limit`` for ``subject`` in this window (its mark), without a hit;
        False when the counters cannot be reached."""
        key = self._items[limit].key_for(limit.value, self._keyed(limit.value, subject))
        try:
            return bool(await self.storage.get(self._mark(key, limit, once)))
        except Exception as exc:  # the counters' storage is down (see the module docstring)
            log.warning("rate limits: counters unavailable (%s): no mark read", error_class(exc))
            return False

    def counter(self, limit: Limit, subject: str, once: str | None = None) -> Counter | None:
        """``limit``'s counter for ``subject`` as a key of the store's Redis, for a store to hit along with its own
        read (``Gate.check``: ``CountingBlockStore``); None when the counters are not in Redis. ``once``: what the hit
        counts (an inbound message's de-duplication key), for the counter's mark of it (``Counter.once``), a key
        a field of the window's marks (``Counter.marks``, one slot with the counter on a Cluster) named by a keyed
        hash of ``once`` (64 bits: a sender's window holds at most the limit's amount of marks)."""
        if not isinstance(self.storage, RedisStorage | RedisClusterStorage):
            return None
        item = self._items[limit]
        key = f"{KEY_PREFIX}:{item.key_for(limit.value, self._keyed(limit.value, subject))}"
        mark = None if once is None else self._keyed(limit.value + ":once", once)[:16]
        return Counter(key, item.get_expiry(), mark, item.amount)

    def counted(self, limit: Limit, count: int) -> bool:
        """Whether a hit that brought ``limit``'s counter to ``count`` is allowed (refusals counted as ``allow``
        counts them)."""
        allowed = count <= self._items[limit].amount
        if not allowed:
            self._metrics.rate_limited.labels(limit.value).inc()
        return allowed

    async def first_refusal(self, limit: Limit, subject: str) -> bool:
        """True for the first refusal of ``subject`` in an hour: the calm notice is sent once, not per message."""
        return await self._first(_ONCE_AN_HOUR, "notice", limit.value, self._keyed("notice:" + limit.value, subject))

    async def mark(self, seconds: int, what: str, subject: str) -> None:
        """Note ``subject`` under ``what`` for ``seconds`` (a counter of one, by a keyed hash of ``subject``), for
        :meth:`marked`; nothing when the counters cannot be reached."""
        with contextlib.suppress(Exception):
            await self._limiter.hit(RateLimitItemPerSecond(1, seconds), what, self._keyed(what, subject))

    async def marked(self, seconds: int, what: str, subject: str) -> bool:
        """Whether :meth:`mark` noted ``subject`` under ``what`` in the last ``seconds`` (read only); False when the
        counters cannot be reached."""
        try:
            return not await self._limiter.test(RateLimitItemPerSecond(1, seconds), what, self._keyed(what, subject))
        except Exception:
            return False

    async def once_per(self, seconds: int, what: str, subject: str) -> bool:
        """True for the first call about ``subject`` in a window of ``seconds`` opened by that call: a short claim,
        which one instance wins when the counters are in Redis (``TypingRelay``: one indicator, not one per
        instance)."""
        return await self._first(RateLimitItemPerSecond(1, seconds), what, self._keyed(what, subject))

    async def _first(self, window: RateLimitItem, *identifiers: str) -> bool:
        """One hit on a counter allowing one per window (Redis: ``INCR``, the expiry set by the first hit). True
        when the counters cannot be reached: what it guards is sent twice rather than never."""
        try:
            return await self._limiter.hit(window, *identifiers)
        except Exception:
            return True


_ONCE_AN_HOUR = RateLimitItemPerHour(1)

# :meth:`RateLimits._hit_once` on Redis: KEYS the counter and the message's mark, ARGV the window's seconds and the
# limit's amount. The mark's count if the message was counted in this window; else one hit (the expiry set by the
# first, as ``limits``' own increment), marked when within the amount (a flood past it leaves no mark) until the
# counter's end, to the millisecond (``PTTL``/``PX``; a counter without expiry: the window). Until 2026-12-07 (late) the
# counter's ``TTL`` in whole seconds, at least 1: a mark outlived its counter by up to a second (the next window's
# counter never held it; ``tests/test_ratelimit.py::test_a_mark_never_outlives_its_counter``).
_HIT_ONCE = """
local seen = redis.call('GET', KEYS[2])
if seen then return tonumber(seen) end
local count = redis.call('INCRBY', KEYS[1], 1)
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
if count <= tonumber(ARGV[2]) then
  local left = redis.call('PTTL', KEYS[1])
  if left == -1 then left = tonumber(ARGV[1]) * 1000 elseif left < 1 then left = 1 end
  redis.call('SET', KEYS[2], count, 'PX', left)
end
return count
"""

# :meth:`RateLimits.charge` on Redis: KEYS the budget's counter and the upload's mark, ARGV the window's seconds, the
# budget and the bytes. 2: charged before (marked); 0: the budget spent, nothing added; 1: added (the expiry set by
# the first, as ``limits``' own increment) and marked until the counter ends, to the millisecond (as :data:`_HIT_ONCE`).
_CHARGE = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 2 end
if tonumber(redis.call('GET', KEYS[1]) or '0') >= tonumber(ARGV[2]) then return 0 end
local total = redis.call('INCRBY', KEYS[1], ARGV[3])
if total == tonumber(ARGV[3]) then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
local left = redis.call('PTTL', KEYS[1])
if left == -1 then left = tonumber(ARGV[1]) * 1000 elseif left < 1 then left = 1 end
redis.call('SET', KEYS[2], 1, 'PX', left)
return 1
"""

# :meth:`RateLimits.refund` on Redis: KEYS the counter and the mark, ARGV the bytes, taken back only with the mark and
# only from a counter still there, never below 0, its expiry kept. Until 2026-12-07 (late) a plain ``DECRBY``: a mark
# outliving its counter (the ``TTL`` it was given rounded up, at least 1 s) made the counter anew, negative and with
# no expiry, the budget's window never ending again (``tests/test_ratelimit.py``).
_REFUND = """
if redis.call('DEL', KEYS[2]) == 1 then
  local count = redis.call('GET', KEYS[1])
  if count then redis.call('SET', KEYS[1], math.max(0, tonumber(count) - tonumber(ARGV[1])), 'KEEPTTL') end
end
return 0
"""
