"""``bench/chaos.py --console N`` (since 2026-12-07): N listeners at their consoles during the faults, and their audit.

Each listener is an account of its own (capacity 3), logged in through the real console API (``POST /api/session``)
on an instance that is up, and acts as a listener does on the soak's conversations that reach the queue: reads the
queue (``GET /api/queue``), takes a waiting one (``/take``), writes to the young person one to three times
(``/messages``, each with its console id: ``id``), then hands it back (``/hand-back``), transfers it
(``/transfer`` to the other queue: :data:`SECOND_QUEUE`, added to the soak's flow with ``--console``) or closes it
(``/close``), each with its id. As the console does, a request answered 503, or met by a connection error or a
timeout (an instance killed, Redis away, a failover), is sent again a second later **with the same id** (and the same
body) on an instance that is up, until it gets another answer; 409 ``in_progress`` or ``sending`` (the same action's
first request under way, or its instance killed within its claim's 10 s lease: the console says "try again in a
moment" and keeps the id) is sent again too; 401 logs in again and sends it again. Every answer is kept.

The audit (:func:`audit_consoles`) after the drain:

* **500**: any console answer 500 (or another 5xx than 503), by route;
* **messages**: each message the API answered 201 recorded once in its conversation's transcript (by its entry id)
  and received by the young person: on a provider channel the copies of its text at the channel's fake (its text is
  unique: the listener and a number), once, or more than once within the bound (:func:`bench.chaos.cause`: a kill, a
  hang past the send timeout, an outage the send was in flight at), else beyond it; on the web chat its entry id in a
  frame a page read. A message never answered 201 (refused 4xx, or given up) counted apart, and any copy of it sent;
* **made once**: each take answered 200 told the young person once (``listener_joined``, its id derived from the
  take): that message's entries in the transcript against the takes answered 200 (a take sent again and answered as
  it stands tells nothing more); each keyed action sent more than once answered 200 at last (a refusal after a
  first request that was made: "not yours", "no longer waiting", "already waits in this queue" is the action made and
  told as failed to the listener);
* **one state**: every conversation the listeners acted on (and every conversation of the run) in one consistent
  state: held (``with_listener``: its entry taken by its listener, in that listener's ``held`` set, in no queue's
  order), waiting (``queued``: its entry not taken, in its record's queue and that queue's order once, in no
  ``held`` set) or ended (no entry, in no order, no ``held`` set); read twice, 25 s apart, as the alert check
  (every 10 s) completes a move cut short: only what is still wrong the second time is a violation.

Prints figures, asserts nothing.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import ClientError, ClientSession

from bench.chaos_channels import Copy, Noting
from bench.chaos_erasures import bench_keys
from gateway.messages import ChannelName

SLOT = "chaos-listener-"
PASSWORD = "chaos-listener-password"
CAPACITY = 3
SECOND_QUEUE = "chaos_second"  # the other queue a transfer moves to (and back from): added to the soak's flow
OUTCOME = "family"  # flows.yaml's outcomes: a close's
JOINED_MARKS = ("vient de te rejoindre", "has just joined you")  # flows.yaml's ``listener_joined``, fr and en
RETRY_AFTER = 1.0
STATE_SETTLE = 25.0  # s between the two reads of the states: the alert check (every 10 s) completes a move cut short


def second_queue(flows_text: str) -> str:
    """The soak's flow with :data:`SECOND_QUEUE` beside the listeners' queue, always open (a transfer's target)."""
    anchor = "queues:\n"
    assert anchor in flows_text, "flows.yaml has no queues"
    added = (
        f"  {SECOND_QUEUE}:\n    name: {{fr: Deuxième ligne (soak), en: Second line (soak)}}\n"
        "    schedule: always\n    average_minutes: 12\n"
    )
    return flows_text.replace(anchor, anchor + added, 1)


@dataclass
class Act:
    """One console action as a listener made it: every try's answer, the last one's status and body."""

    listener: str
    kind: str  # take, message, transfer, hand-back, close
    conversation: str
    key: str | None = None
    text: str = ""
    answers: list[str] = field(default_factory=list)
    status: int = 0  # the last answer's (0: none before the deadline)
    body: dict[str, Any] = field(default_factory=dict)
    at: float = 0.0  # monotonic, the last answer


@dataclass
class Listener:
    name: str
    cookie: str = ""
    held: set[str] = field(default_factory=set)


class Consoles:
    """The listeners of a run (``--console N``), on the instances ``pick`` names (one that is up)."""

    def __init__(self, session: ClientSession, pick: Callable[[], str], store_url: str, rng: random.Random) -> None:
        self.session, self.pick, self.store_url, self.rng = session, pick, store_url, rng
        self.acts: list[Act] = []
        self.statuses: Counter[str] = Counter()  # "<route> <status>" of every answer
        self.errors: list[str] = []  # 5xx other than 503, with their route
        self.channels: dict[str, ChannelName] = {}  # conversation id → channel (from the cards)
        self.numbers = itertools.count(1)

    async def add_listeners(self, count: int) -> None:
        from gateway.console.auth import hash_password
        from gateway.store import Listener as Account
        from gateway.store import open_store

        store = await open_store(self.store_url, keys=bench_keys(self.store_url))
        try:
            hashed = hash_password(PASSWORD)
            for n in range(count):
                await store.add_listener(Account(f"{SLOT}{n}", hashed, capacity=CAPACITY))
        finally:
            await store.close()

    async def run(self, count: int, duration: float) -> None:
        if not count:
            return
        await self.add_listeners(count)
        stop, deadline = time.monotonic() + duration, time.monotonic() + duration + 300
        await asyncio.gather(*(self._listen(Listener(f"{SLOT}{n}"), stop, deadline) for n in range(count)))

    async def _login(self, listener: Listener, deadline: float) -> bool:
        from gateway.console.sessions import SESSION_COOKIE

        while time.monotonic() < deadline:
            try:
                async with self.session.post(self.pick() + "/api/session",
                                             json={"name": listener.name, "password": PASSWORD}) as r:  # fmt: skip
                    await r.read()
                    self.statuses[f"login {r.status}"] += 1
                    if r.status >= 500 and r.status != 503:
                        self.errors.append(f"login {r.status}")
                    if r.status == 200:
                        listener.cookie = r.cookies[SESSION_COOKIE].value
                        return True
            except (ClientError, TimeoutError) as error:
                self.statuses[f"login {type(error).__name__}"] += 1
            await asyncio.sleep(RETRY_AFTER)
        return False

    async def _call(self, listener: Listener, act: Act | None, method: str, path: str, route: str,
                    body: dict[str, Any] | None, deadline: float) -> tuple[int, Any]:  # fmt: skip
        """One request, sent again (same body: same id) after a 503, a connection error, a timeout, a 409
        ``in_progress``, or a 401 (logged in again), until another answer or ``deadline``: (status, JSON or None)."""
        from gateway.console.sessions import SESSION_COOKIE

        while time.monotonic() < deadline:
            if not listener.cookie and not await self._login(listener, deadline):
                break
            answer, status, found = "", 0, None
            try:
                headers = {"Cookie": f"{SESSION_COOKIE}={listener.cookie}"}
                async with self.session.request(method, self.pick() + path, json=body, headers=headers) as r:
                    status = r.status
                    found = await r.json(content_type=None) if r.content_length != 0 else None
                    answer = str(status)
            except (ClientError, TimeoutError, ValueError) as error:
                answer = type(error).__name__
            self.statuses[f"{route} {answer}"] += 1
            if act is not None:
                act.answers.append(answer)
            if status >= 500 and status != 503:
                self.errors.append(f"{route} {status}: {str(found)[:120]}")
            retry = (
                status == 0
                or status == 503
                or status == 401
                # the same action's first request under way (or its instance killed within the claim's lease): the
                # console says "try again in a moment" and keeps the id with the text; the listener sends it again
                or (status == 409 and isinstance(found, dict) and found.get("error") in ("in_progress", "sending"))
            )
            if status == 401:
                listener.cookie = ""
            if not retry:
                if act is not None:
                    act.status, act.body, act.at = status, found if isinstance(found, dict) else {}, time.monotonic()
                return status, found
            await asyncio.sleep(RETRY_AFTER)
        return 0, None

    async def _act(self, listener: Listener, kind: str, conversation: str, body: dict[str, Any] | None,
                   deadline: float, text: str = "") -> Act:  # fmt: skip
        act = Act(listener.name, kind, conversation, (body or {}).get("id"), text)
        self.acts.append(act)
        await self._call(listener, act, "POST", f"/api/conversations/{conversation}/{kind}", kind, body or {}, deadline)
        return act

    async def _listen(self, listener: Listener, stop: float, deadline: float) -> None:
        await asyncio.sleep(self.rng.uniform(5.0, 15.0))  # the first conversations reach the queue
        while time.monotonic() < stop:
            status, queue = await self._call(listener, None, "GET", "/api/queue", "queue", None, deadline)
            if status != 200 or not isinstance(queue, dict):
                await asyncio.sleep(RETRY_AFTER)
                continue
            mine = [c for c in queue.get("mine", []) if isinstance(c, dict)]
            waiting = [c for c in queue.get("waiting", []) if isinstance(c, dict)]
            for card in (*mine, *waiting):
                self.channels[str(card["id"])] = ChannelName(card["channel"])
            if mine:  # one left held by an action refused (or by a take whose answer was lost): finished first
                card = self.rng.choice(mine)
            elif waiting and len(mine) < CAPACITY:
                card = self.rng.choice(waiting[:10])
                take = await self._act(listener, "take", str(card["id"]), None, deadline)
                if take.status != 200:
                    await asyncio.sleep(self.rng.uniform(0.2, 1.0))
                    continue
                card = take.body or card
            else:
                await asyncio.sleep(2.0)
                continue
            await self._converse(listener, card, deadline)
            await asyncio.sleep(self.rng.uniform(0.5, 2.0))

    async def _converse(self, listener: Listener, card: Mapping[str, Any], deadline: float) -> None:
        conversation = str(card["id"])
        for _ in range(self.rng.randint(1, 3)):
            number = next(self.numbers)
            text = f"Je t'écoute, prends ton temps ({listener.name[len(SLOT) :]}·{number})"
            key = f"soak-{listener.name[len(SLOT) :]}-{number}-{self.rng.getrandbits(32):08x}"
            act = await self._act(listener, "messages", conversation, {"text": text, "id": key}, deadline, text)
            if act.status != 201:
                break
            await asyncio.sleep(self.rng.uniform(0.5, 2.0))
        how = self.rng.choice(("hand-back", "transfer", "close"))
        key = f"soak-{how}-{self.rng.getrandbits(48):012x}"
        if how == "transfer":
            queue = SECOND_QUEUE if card.get("queue") != SECOND_QUEUE else "listeners"
            await self._act(listener, "transfer", conversation, {"queue": queue, "id": key}, deadline)
        elif how == "close":
            await self._act(listener, "close", conversation, {"outcome": OUTCOME, "notes": "", "id": key}, deadline)
        else:
            await self._act(listener, "hand-back", conversation, {"id": key}, deadline)


@dataclass
class ConsoleAudit:
    acts: Counter[str] = field(default_factory=Counter)  # "<kind> <last status>"
    retried: Counter[str] = field(default_factory=Counter)  # kinds sent more than once
    retried_refused: list[str] = field(default_factory=list)  # keyed, sent again, refused at last
    errors: list[str] = field(default_factory=list)  # 5xx but 503
    messages: int = 0  # answered 201
    once: int = 0
    not_recorded: list[str] = field(default_factory=list)
    recorded_twice: list[str] = field(default_factory=list)
    never_received: list[str] = field(default_factory=list)
    twice_within: Counter[str] = field(default_factory=Counter)
    twice_beyond: list[str] = field(default_factory=list)
    unanswered_sent: list[str] = field(default_factory=list)  # a message never answered 201 that reached them
    joined_mismatch: list[str] = field(default_factory=list)
    lost_at_failover: list[str] = field(default_factory=list)  # answered within 2 s of a failover, then not recorded
    states: Counter[str] = field(default_factory=Counter)
    transient: int = 0  # wrong at the first read, right at the second
    wrong: list[str] = field(default_factory=list)


async def read_states(store_url: str, ids: set[str] | None) -> tuple[dict[str, str], list[str]]:
    """Each conversation's state (of ``ids``; all when None) and what is inconsistent about it."""
    from gateway.flows.lifecycle import Status
    from gateway.store import open_store

    store = await open_store(store_url, keys=bench_keys(store_url))
    try:
        redis = store._redis  # type: ignore[attr-defined]  # the audit reads the queues' orders raw
        from gateway.store import redis_keys as K

        names = sorted(m.decode() if isinstance(m, bytes) else m for m in await redis.smembers(K.QUEUE + "names"))
        orders: Counter[str] = Counter()
        in_queue: dict[str, set[str]] = {}
        for name in names:
            for member in await redis.zrange(K.QUEUE + "waiting:" + name, 0, -1):
                cid = (member.decode() if isinstance(member, bytes) else member).split(":", 3)[3]
                orders[cid] += 1
                in_queue.setdefault(cid, set()).add(name)
        listeners = [listener.name for listener in await store.list_listeners()]
        held: dict[str, list[str]] = {}
        for name, taken in (await store.held_ids(listeners)).items():
            for cid in taken:
                held.setdefault(cid, []).append(name)
        if ids is None:
            everyone = await store.list_conversations(datetime(2000, 1, 1, tzinfo=UTC),
                                                      datetime.now(UTC) + timedelta(days=1))  # fmt: skip
            ids = {c.id for c in everyone}
        states: dict[str, str] = {}
        wrong: list[str] = []
        for cid in sorted(ids):
            record = await store.get_conversation(cid)
            if record is None:
                continue  # erased or purged: their own audits
            entry = await store.queue_entry(cid)
            problems = []
            if orders[cid] > 1:
                problems.append(f"in the queues' orders {orders[cid]} times ({sorted(in_queue[cid])})")
            if record.status == Status.WITH_LISTENER:
                state = "held"
                if entry is None or entry.taken_by != record.listener:
                    problems.append(f"entry {None if entry is None else (entry.queue, entry.taken_by)}")
                if held.get(cid) != [record.listener]:
                    problems.append(f"held sets {held.get(cid)}")
                if orders[cid]:
                    problems.append("held and waiting in a queue's order")
                if not record.listener:
                    problems.append("held by nobody")
            elif record.status == Status.QUEUED:
                state = "waiting"
                if entry is None or entry.taken_by is not None or entry.queue != record.queue:
                    problems.append(f"entry {None if entry is None else (entry.queue, entry.taken_by)}")
                if in_queue.get(cid) != {record.queue}:
                    problems.append(f"orders {sorted(in_queue.get(cid, set()))}, record's queue {record.queue}")
                if held.get(cid):
                    problems.append(f"waiting and in held sets {held[cid]}")
            else:
                state = record.status.value
                if record.status.active:  # the bot's: no entry, no order, nobody's
                    state = "bot"
                if entry is not None or orders[cid] or held.get(cid):
                    problems.append(
                        f"entry {None if entry is None else (entry.queue, entry.taken_by)}, orders {orders[cid]},"
                        f" held sets {held.get(cid)}"
                    )
            states[cid] = state
            if problems:
                wrong.append(f"{cid} {record.status.value} (listener {record.listener}): " + "; ".join(problems))
        return states, wrong
    finally:
        await store.close()


async def audit_consoles(
    consoles: Consoles,
    providers: list[Noting],
    received: Callable[[str], int],
    cause: Callable[[Copy], str | None],
    in_bound: frozenset[str],
    began: float,
    at_failover: Callable[[float], bool] = lambda at: False,
) -> ConsoleAudit:
    """The listeners' actions against the store, the fakes and the pages (``received``: frames that carried an entry
    id, the web chat's); ``cause``: why a copy may not be recorded (``bench/chaos.py``'s); ``at_failover``: whether an
    answer came within a failover's window (2 s about it; to the instances' move since 2026-12-07, before the
    Sentinels' naming the new primary) (``--sentinel`` without ``--replica-acks``: what the old primary had not
    passed on is lost, the console's writes too: docs/deployment.md), such a message or take lost counted apart."""
    from gateway.store import Author, open_store

    result = ConsoleAudit(errors=list(consoles.errors))
    if not consoles.acts:
        return result
    for act in consoles.acts:
        result.acts[f"{act.kind} {act.status}"] += 1
        if len(act.answers) > 1:
            result.retried[act.kind] += 1
            if act.key is not None and act.status not in (200, 201):
                result.retried_refused.append(
                    f"{act.kind} on {act.conversation} by {act.listener}: {act.answers} {act.body.get('error')}"
                )
    fakes = {p.channel: p for p in providers}
    touched = {act.conversation for act in consoles.acts}
    store = await open_store(consoles.store_url, keys=bench_keys(consoles.store_url))
    try:
        transcripts = {cid: await store.transcript(cid) for cid in sorted(touched)}
        records = {cid: await store.get_conversation(cid) for cid in sorted(touched)}
    finally:
        await store.close()
    for act in consoles.acts:
        if act.kind != "messages":
            continue
        record = records.get(act.conversation)
        channel = record.channel if record is not None else consoles.channels.get(act.conversation)
        copies = [c for c in fakes[channel].copies if c.text == act.text] if channel in fakes else []
        if act.status != 201:
            if copies:
                result.unanswered_sent.append(f"{act.answers} {len(copies)} copies ({channel})")
            continue
        result.messages += 1
        entry_id = str(act.body.get("id", ""))
        entries = [e for e in transcripts.get(act.conversation, []) if e.id == entry_id or e.text == act.text]
        entries = [e for e in entries if e.author is Author.LISTENER]
        label = f"{act.conversation} {act.listener} {act.answers} at {act.at - began:.1f} s ({channel})"
        if not entries and at_failover(act.at):
            result.lost_at_failover.append(f"message {label}")
            continue
        if not entries:
            result.not_recorded.append(label)
        elif len(entries) > 1:
            result.recorded_twice.append(f"{label}: {len(entries)} entries")
        if channel is ChannelName.WEBCHAT:
            if received(entry_id) == 0:
                result.never_received.append(label)
            else:
                result.once += 1
            continue
        if not copies:
            result.never_received.append(label)
            continue
        if len(copies) == 1:
            result.once += 1
            continue
        ordered = sorted(copies, key=lambda c: c.at)
        whys = [cause(c) for c in ordered[:-1]]  # each copy but the recorded last one needs a cause
        if all(why in in_bound for why in whys):
            result.twice_within[", ".join(sorted(str(w) for w in whys))] += 1
        else:
            told = ", ".join(f"{c.sender}@{c.at - began:.1f}s held {c.held:.1f} s ({cause(c)})" for c in ordered)
            result.twice_beyond.append(f"{label}: {told}")
    takes = Counter(act.conversation for act in consoles.acts if act.kind == "take" and act.status == 200)
    takes_at = {act.conversation: act.at for act in consoles.acts if act.kind == "take" and act.status == 200}
    for cid in sorted(touched):
        joined = sum(
            e.author is Author.BOT and any(m in (e.text or "") for m in JOINED_MARKS) for e in transcripts.get(cid, [])
        )  # fmt: skip
        if records.get(cid) is not None and joined < takes[cid] and at_failover(takes_at[cid]):
            result.lost_at_failover.append(f"take {cid}: {takes[cid]} takes answered 200, {joined} joined messages")
        elif records.get(cid) is not None and joined != takes[cid]:
            result.joined_mismatch.append(f"{cid}: {takes[cid]} takes answered 200, {joined} joined messages")
    first_states, first_wrong = await read_states(consoles.store_url, None)
    if first_wrong:
        await asyncio.sleep(STATE_SETTLE)
        _, second = await read_states(consoles.store_url, {w.split(" ", 1)[0] for w in first_wrong})
        result.transient = len(first_wrong) - len(second)
        result.wrong = second
    result.states = Counter(first_states[cid] for cid in touched if cid in first_states)
    return result


def show_consoles(result: ConsoleAudit, count: int) -> None:
    if not count:
        return
    print(
        f"console: {count} listeners; actions by last answer {dict(sorted(result.acts.items()))}; sent more than once"
        f" {dict(sorted(result.retried.items()))}, of them keyed and refused at last {len(result.retried_refused)};"
        f" 5xx but 503: {len(result.errors)}"
    )
    for line in [*result.errors[:5], *result.retried_refused[:5]]:
        print(f"    {line}")
    print(
        f"  listener messages answered 201: {result.messages}; received once {result.once}, more than once within"
        f" the bound {dict(result.twice_within)}, beyond it {len(result.twice_beyond)}; never received"
        f" {len(result.never_received)}; not recorded {len(result.not_recorded)}; recorded twice"
        f" {len(result.recorded_twice)}; not answered 201 and sent {len(result.unanswered_sent)}"
    )
    for line in [*result.twice_beyond, *result.never_received, *result.not_recorded, *result.recorded_twice,
                 *result.unanswered_sent][:10]:  # fmt: skip
        print(f"    {line}")
    print(
        f"  takes told once (listener_joined): mismatches {len(result.joined_mismatch)}; messages and takes answered"
        f" within a failover's window and lost with it: {len(result.lost_at_failover)}"
    )
    for line in [*result.joined_mismatch[:5], *result.lost_at_failover[:5]]:
        print(f"    {line}")
    print(
        f"  the acted-on conversations' states {dict(sorted(result.states.items()))}; inconsistent (of every"
        f" conversation, twice {STATE_SETTLE:.0f} s apart): {len(result.wrong)} (transient {result.transient})"
    )
    for line in result.wrong[:10]:
        print(f"    {line}")
