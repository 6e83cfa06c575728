"""The erasures of ``bench/chaos.py --erasures N``: young people erased while the faults happen, and their audit.

N senders of their own (slot ``ERASE_SLOT``), spread over the provider channels in use, each at a time drawn in
the load from the run's seed, say "bonjour" and walk a step or two of the flow, then are erased, in turn:

* **phrase**: the young person writes the erasure phrase of flows.yaml, waits for the question (``erasure.confirm``)
  and answers "oui" ("yes" to the English one: a walk may choose English); when no goodbye (``erasure.done``) came
  ``ASK_AGAIN_AFTER`` s later (a kill, a Redis restart cut it and nothing finished it), they ask again, as a young
  person would. Every other one then starts a new conversation ("bonjour") once told: its replies are allowed,
  nothing else after the goodbye.
* **supervisor**: a supervisor, logged in to the console, erases the conversation
  (``POST /api/conversations/{id}/erase``), asking again a second later after anything but a 200 or a 404 (a 404
  after a first try: the record, the erasure's last step, was gone already: it had finished).
* **in flight**: a message of theirs is posted and, while it is on its way, a supervisor erases them as above. The
  message may be processed before the erasure (erased with the rest) or after (a new conversation of its own).

Their messages are kept apart from the load's (``Platforms.acknowledged``): the load's audit skips their addresses.
The audit (:func:`audit_erasures`, after the drain): every key and value of Redis scanned for the erased
conversations' ids, the person's identity (its keyed hashes: the store's index, the gate's and inbox's, and the
inbox's lookup of it; the address itself) and the de-duplication marks of their messages sent before the erasure
(the identity only when no conversation started after the erasure names them); the young people's entries from
before the erasure found again in a transcript (their words brought back); how many goodbyes each one got (a phrase:
one, a supervisor's erasure: none; each one more shown by ``bench/chaos.py`` with the fault its copy was in flight at,
as a second flood notice is) and the replies a fake accepted for them after the goodbye (or the supervisor's
200) that no surviving conversation records. Prints figures, asserts nothing.

The retention purge is not driven: ``retention.closed_days`` is whole days, at least 1 (``gateway/flows/privacy.py``),
on the wall clock, so nothing a run of minutes ended is due; ``--erasures`` runs the purge task every
``PURGE_EVERY`` s all the same (``GATEWAY_PURGE_INTERVAL_SECONDS``), so that its passes (which find nothing due)
meet the faults. ``--purges N`` drives it with conversations written due during the run (``bench/chaos_purges.py``).
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import redis
from aiohttp import ClientError, ClientSession

from bench.chaos_channels import Copy, Noting, sender_id
from bench.load import Step
from gateway.crypto import DataKeys
from gateway.erasure import DELIVERED_AGAIN
from gateway.ids import inbound_entry_id, inbound_key, seen_digest
from gateway.keyed import KeyedHash
from gateway.messages import ChannelName, Inbound
from gateway.settings import Settings
from gateway.store.redis_url import SentinelURL, is_sentinel
from gateway.testing import DATA_KEY, named_by_provider

ERASE_SLOT = 800  # an eraser's slot in its address: apart from the load's and the floods'
ERASE_INDEX = 2000  # an eraser's message index (Messenger's mid): apart from the walks'
KINDS = ("phrase", "supervisor", "in flight")
PHRASE, HELLO = "efface mes données", "bonjour"
# flows.yaml's erasure.confirm in each language (a walk may have chosen English) → the answer that confirms it
CONFIRM_MARKS = {"Tu veux que nous effacions": "oui", "Do you want us to erase": "yes"}
YES = frozenset(CONFIRM_MARKS.values())
DONE_MARKS = ("C'est fait : tes messages", "Done: your messages and information are erased")  # erasure.done
ASK_AGAIN_AFTER = 90.0  # s without the question or the goodbye before the young person asks again
SUPERVISOR, PASSWORD = "chaos-eraser", "chaos-eraser-password"
SECRET_KEY = "bench-secret-key"  # bench/load.py's GATEWAY_SECRET_KEY: the identity's keyed hashes
PURGE_EVERY = 15.0  # s: GATEWAY_PURGE_INTERVAL_SECONDS with --erasures (first pass at once below a minute)
EPOCH, FAR = datetime(1970, 1, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC)


def bench_keys(url: str) -> DataKeys:
    """The data keys the instances run with (bench/load.py's GATEWAY_DATA_KEY and GATEWAY_SECRET_KEY): a person's
    index is found by their identity's hash under these."""
    return DataKeys.from_settings(Settings(store=url, data_key=DATA_KEY, secret_key=SECRET_KEY))


class Posting(Protocol):
    """``bench/chaos.py``'s ``Platforms``: a message posted as its platform posts it."""

    async def message(self, channel: ChannelName, sender: str, index: int, step: Step, deadline: float,
                      book: dict[tuple[ChannelName, str], str] | None = None) -> None: ...  # fmt: skip


@dataclass
class Case:
    """One young person erased."""

    channel: ChannelName
    sender: str
    kind: str
    messages: dict[tuple[ChannelName, str], str] = field(default_factory=dict)  # as Platforms.acknowledged
    before: set[str] = field(default_factory=set)  # entry ids of their messages acknowledged before the erasure
    marks: set[str] = field(default_factory=set)  # … and their de-duplication marks
    ids: set[str] = field(default_factory=set)  # their conversations' ids before the erasure
    erased_at: float = 0.0  # monotonic: the supervisor's 200 (or 404 after a try), or the goodbye's copy
    asked: int = 0  # erasure requests (a supervisor's POSTs, a young person's phrase)
    answers: Counter[str] = field(default_factory=Counter)  # the supervisor's POSTs' answers
    anew_at: float | None = None  # monotonic: a new conversation started after the goodbye
    unfinished: str = ""  # why the driver gave up on it


class Erasures:
    """The erasers of a run (``--erasures N``), driven from ``bench/chaos.py``'s platforms and instances."""

    def __init__(self, platforms: Posting, providers: list[Noting], store_url: str, pick: Callable[[], str],
                 session: ClientSession, rng: random.Random) -> None:  # fmt: skip
        self.platforms, self.store_url, self.pick, self.session, self.rng = platforms, store_url, pick, session, rng
        self.fakes = {p.channel: p for p in providers}
        self.cases: list[Case] = []
        self.cookie = ""

    async def add_supervisor(self) -> None:
        from gateway.console.auth import hash_password
        from gateway.store import Listener, open_store

        store = await open_store(self.store_url, keys=bench_keys(self.store_url))
        try:
            await store.add_listener(Listener(SUPERVISOR, hash_password(PASSWORD), supervisor=True))
        finally:
            await store.close()

    async def run(self, count: int, channels: list[ChannelName], script: list[list[Step]], duration: float) -> None:
        """``count`` erasers on the provider channels of ``channels``, each at a time drawn in the load."""
        provider = [c for c in channels if c in self.fakes]
        if not count or not provider:
            return
        await self.add_supervisor()
        deadline = time.monotonic() + duration + 600
        plans = []
        for n in range(count):
            channel, kind = provider[n % len(provider)], KINDS[(n // len(provider)) % len(KINDS)]
            walk = script[self.rng.randrange(len(script))]
            plans.append((self.rng.uniform(5.0, max(6.0, duration - 30.0)), channel, kind, walk, n))
        await asyncio.gather(*(self._one(*plan, deadline) for plan in plans))

    async def _one(self, at: float, channel: ChannelName, kind: str, walk: list[Step], n: int,
                   deadline: float) -> None:  # fmt: skip
        await asyncio.sleep(at)
        case = Case(channel, sender_id(channel, ERASE_SLOT + n, n), kind)
        self.cases.append(case)
        began = time.monotonic()
        try:
            await self._through(case, walk, n, deadline)
        finally:
            how = case.unfinished or f"asked {case.asked} time(s), {dict(case.answers) or 'by the phrase'}"
            print(f"  erasure {n} ({kind}, {channel}) {time.monotonic() - began:.1f} s: {how}", flush=True)

    async def _through(self, case: Case, walk: list[Step], n: int, deadline: float) -> None:
        kind = case.kind
        steps = [Step(HELLO, None, 0), *walk[1 : 1 + self.rng.randint(1, 2)]]
        for step in steps:
            await self._say(case, step, deadline)
            await asyncio.sleep(2.0)
        if not await self._conversations(case, deadline):
            case.unfinished = "no conversation found before the erasure"
            return
        if kind == "phrase":
            await self._by_phrase(case, deadline, anew=n % 2 == 0)
            return
        flying = None
        if kind == "in flight":
            flying = asyncio.create_task(self._say(case, Step("je suis encore là", None, 0), deadline, note=False))
            await asyncio.sleep(self.rng.uniform(0.0, 0.3))
        await self._by_supervisor(case, deadline)
        if flying is not None:
            await flying

    async def _say(self, case: Case, step: Step, deadline: float, note: bool = True) -> None:
        """One message of theirs, posted as the platform posts it; ``note``: counted as sent before the erasure (its
        mark too, but for the confirming "oui"'s: kept, so that its redelivery stays a duplicate)."""
        known = set(case.messages)
        index = ERASE_INDEX + len(case.messages)
        await self.platforms.message(case.channel, case.sender, index, step, deadline, book=case.messages)
        if note:
            for channel, message_id in set(case.messages) - known:
                inbound = Inbound(channel, case.sender, message_id)
                case.before.add(inbound_entry_id(inbound))
                if step.text not in YES:
                    case.marks.add(seen_digest(inbound_key(inbound)))

    async def _conversations(self, case: Case, deadline: float) -> bool:
        """Wait until the person has a conversation; note every id of theirs (through Redis restarts: tried again a
        second later, as the instances do)."""
        from gateway.errors import StoreError
        from gateway.store import open_store

        while time.monotonic() < deadline:
            try:
                store = await open_store(self.store_url, keys=bench_keys(self.store_url))
                try:
                    found = await store.conversations_of(case.channel, case.sender, EPOCH, FAR, 100)
                finally:
                    await store.close()
            except StoreError:
                found = []
            case.ids |= {c.id for c in found}
            if found:
                return True
            await asyncio.sleep(1.0)
        return False

    def _copies(self, case: Case, marks: Collection[str], since: float) -> list[Copy]:
        return [c for c in self.fakes[case.channel].copies
                if c.recipient == case.sender and any(m in c.text for m in marks) and c.at >= since]  # fmt: skip

    async def _until(self, condition: Callable[[], bool], limit: float) -> bool:
        end = time.monotonic() + limit
        while time.monotonic() < end:
            if condition():
                return True
            await asyncio.sleep(0.5)
        return False

    async def _by_phrase(self, case: Case, deadline: float, anew: bool) -> None:
        """The phrase, the question, "oui", the goodbye; asked again while no goodbye came."""
        while time.monotonic() < deadline:
            case.asked += 1
            asked = functools.partial(self._copies, case, since=time.monotonic())
            await self._say(case, Step(PHRASE, None, 0), deadline)
            await self._conversations(case, deadline)  # a new conversation when an earlier erasure finished
            if not await self._until(lambda: bool(asked(CONFIRM_MARKS)), ASK_AGAIN_AFTER):  # noqa: B023 — awaited here
                continue
            question = asked(CONFIRM_MARKS)[0].text
            yes = next(y for m, y in CONFIRM_MARKS.items() if m in question)
            await self._say(case, Step(yes, None, 0), deadline)
            if await self._until(lambda: bool(asked(DONE_MARKS)), ASK_AGAIN_AFTER):  # noqa: B023 — awaited here
                case.erased_at = asked(DONE_MARKS)[0].at
                break
        else:
            case.unfinished = "no goodbye before the deadline"
            return
        if anew:
            await asyncio.sleep(2.0)
            case.anew_at = time.monotonic()
            await self._say(case, Step(HELLO, None, 0), deadline, note=False)

    async def _by_supervisor(self, case: Case, deadline: float) -> None:
        """``POST /api/conversations/{id}/erase`` (the latest conversation), again a second later until a 200, or a
        404 after a first try (the erasure had finished)."""
        from gateway.console.sessions import SESSION_COOKIE

        target = max(case.ids)  # any of theirs erases them all
        while time.monotonic() < deadline:
            url = self.pick()
            try:
                if not self.cookie:
                    async with self.session.post(url + "/api/session",
                                                 json={"name": SUPERVISOR, "password": PASSWORD}) as r:  # fmt: skip
                        await r.read()
                        if r.status == 200:
                            self.cookie = r.cookies[SESSION_COOKIE].value
                        else:
                            case.answers[f"login {r.status}"] += 1
                            await asyncio.sleep(1.0)
                            continue
                case.asked += 1
                cookie = {"Cookie": f"{SESSION_COOKIE}={self.cookie}"}
                erase = f"{url}/api/conversations/{target}/erase"
                async with self.session.post(erase, json={"confirm": True}, headers=cookie) as response:
                    await response.read()
                    case.answers[str(response.status)] += 1
                    if response.status == 401:
                        self.cookie = ""
                    if response.status == 200 or (response.status == 404 and case.asked > 1):
                        case.erased_at = time.monotonic()
                        return
                    if response.status == 404:
                        case.unfinished = "404 at the first request"
                        return
            except (ClientError, TimeoutError) as error:
                case.answers[type(error).__name__] += 1
            await asyncio.sleep(1.0)
        case.unfinished = "no 200 before the deadline"


@dataclass
class ErasureAudit:
    cases: Counter[str] = field(default_factory=Counter)  # kind → cases
    unfinished: list[str] = field(default_factory=list)
    asked_again: Counter[str] = field(default_factory=Counter)  # kind → cases asked more than once
    answers: Counter[str] = field(default_factory=Counter)  # the supervisors' POSTs' answers
    left: list[str] = field(default_factory=list)  # "<kind> <channel>: what is left in Redis"
    brought_back: int = 0  # entries of messages from before the erasure found in a transcript after it
    goodbyes: Counter[str] = field(default_factory=Counter)  # "<kind>: n goodbyes" → cases
    # the cases given a goodbye more than once (a phrase) or at all (a supervisor's): "<kind> <channel>" and each copy,
    # explained by bench/chaos.py (``explain_goodbyes``: the fault a copy was in flight at, as a second notice is)
    goodbyes_again: list[tuple[str, list[Copy]]] = field(default_factory=list)
    goodbyes_explained: list[str] = field(default_factory=list)
    after: list[str] = field(default_factory=list)  # replies accepted after the erasure no transcript records
    anew: int = 0  # new conversations after a goodbye
    anew_answered: int = 0  # … that got a reply recorded in their transcript
    kept_identity: int = 0  # cases with a conversation after the erasure (their identity rightly kept)
    marks_kept: int = 0  # provider marks kept by design, in the day hashes only (``erasure.DELIVERED_AGAIN``)
    sent_after: int = 0  # replies whose request reached the provider after the erasure (not in flight at it)


def every_key_and_value(url: str) -> list[str]:
    """Every key of Redis with its value, as ``tests/store/test_redis_erasure_leaves_nothing.py`` reads them."""
    if is_sentinel(url):  # --sentinel (since 2026-12-07): the primary the Sentinels name now
        parsed = SentinelURL.parse(url)
        with redis.Redis(*parsed.sentinels[0], decode_responses=True) as sentinel:
            host, port = sentinel.sentinel_get_master_addr_by_name(parsed.service)
        db = int(parsed.redis_options.get("db", 0))
        client = redis.Redis(host=host, port=port, db=db, decode_responses=True, encoding_errors="surrogateescape")
    else:
        client = redis.Redis.from_url(url, decode_responses=True, encoding_errors="surrogateescape")
    try:
        found = []
        for found_key in client.scan_iter(count=1000):
            key = str(found_key)  # decoded: decode_responses
            kind = str(client.type(key))
            value: object = ""
            if kind == "string":
                value = client.get(key)
            elif kind == "list":
                value = client.lrange(key, 0, -1)
            elif kind == "set":
                value = client.smembers(key)
            elif kind == "zset":
                value = client.zrange(key, 0, -1)
            elif kind == "hash":
                value = client.hgetall(key)
            found.append(f"{key} = {value}")
        return found
    finally:
        client.close()


async def audit_erasures(erasures: Erasures) -> ErasureAudit:
    from gateway.store import Author, open_store

    result = ErasureAudit()
    url = erasures.store_url
    keys, keyed = bench_keys(url), KeyedHash(SECRET_KEY)
    dump = await asyncio.to_thread(every_key_and_value, url)
    store = await open_store(url, keys=keys)
    try:
        for case in erasures.cases:
            label = f"{case.kind} {case.channel}"
            result.cases[case.kind] += 1
            result.answers += case.answers
            result.asked_again[case.kind] += case.asked > 1
            if case.unfinished:
                result.unfinished.append(f"{label}: {case.unfinished}")
                continue
            survivors = await store.conversations_of(case.channel, case.sender, EPOCH, FAR, 100)
            recorded: set[str] = set()
            named = named_by_provider(store, (c.provider_id for c in erasures.fakes[case.channel].copies))
            for conversation in survivors:
                for entry in await store.transcript(conversation.id):
                    if entry.author is Author.USER:
                        result.brought_back += entry.id in case.before
                    elif entry.provider_message_id is not None:  # Redis's entries give back each id's digest
                        recorded.add(named.get(entry.provider_message_id, entry.provider_message_id))
            names = {f"id {i}": i for i in case.ids} | {f"mark {m}": m for m in case.marks}
            if not survivors:
                gate = keyed.sender(case.channel.value, case.sender)
                names |= {"identity hash": keys.identity(case.channel.value, case.sender), "gate's hash": gate,
                          "inbox lookup": keys.lookup("inbox", gate), "address": case.sender}  # fmt: skip
            else:
                result.kept_identity += 1
            for what, value in names.items():
                hits = [line[:100] for line in dump if value in line]
                if what.startswith("mark ") and case.channel in DELIVERED_AGAIN:  # kept by design, unlinked: only the
                    result.marks_kept += bool(hits)  # day hashes may hold them (never hg:d:{<conv>}, a conversation's)
                    hits = [line for line in hits if not line.startswith("hg:{seen}:")]
                if hits:
                    result.left.append(f"{label}: {what} in {len(hits)} key(s), e.g. {hits[0]}")
            copies = [c for c in erasures.fakes[case.channel].copies if c.recipient == case.sender]
            goodbye = [c for c in copies if any(m in c.text for m in DONE_MARKS)]
            result.goodbyes[f"{case.kind}: {len(goodbye)}"] += 1
            if len(goodbye) > (case.kind == "phrase"):
                result.goodbyes_again.append((label, goodbye))
            for copy in copies:
                late = copy.at > case.erased_at and copy not in goodbye
                if late and copy.provider_id not in recorded:
                    arrived = copy.at - copy.held  # the request reached the fake then (a hang held it)
                    when = "in flight at it" if arrived <= case.erased_at else "sent after it"
                    result.after.append(f"{label}: accepted {copy.at - case.erased_at:.1f} s after the erasure, {when}"
                                        f" (held {copy.held:.1f} s), {copy.text[:30]!r}")  # fmt: skip
                    result.sent_after += arrived > case.erased_at
            if case.anew_at is not None:
                result.anew += 1
                result.anew_answered += any(c.at > case.anew_at and c.provider_id in recorded for c in copies)
    finally:
        await store.close()
    return result


def show_erasures(result: ErasureAudit) -> None:
    if not result.cases:
        return
    print(
        f"erasures: {sum(result.cases.values())} ({', '.join(f'{k} {n}' for k, n in sorted(result.cases.items()))});"
        f" asked again {dict(sorted(result.asked_again.items()))}; supervisor answers"
        f" {dict(sorted(result.answers.items()))}; unfinished {len(result.unfinished)}"
    )
    print(
        f"  left in Redis: {len(result.left)}; entries from before the erasure brought back {result.brought_back};"
        f" goodbyes {dict(sorted(result.goodbyes.items()))}; replies after the erasure no transcript records"
        f" {len(result.after)} (sent after it {result.sent_after}); WhatsApp marks kept unlinked {result.marks_kept};"
        f" new conversations after the goodbye {result.anew} ({result.anew_answered} answered);"
        f" a conversation after the erasure (identity kept) {result.kept_identity}"
    )
    for line in [*result.unfinished, *result.left, *result.after][:15]:
        print(f"    {line}")
    for line in result.goodbyes_explained[:5]:
        print(f"    goodbye again: {line}")
