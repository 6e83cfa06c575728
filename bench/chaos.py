"""A chaos soak: faults together, under a steady load, then an audit. ``python bench/chaos.py --seed 1``.

Two ``gateway serve`` processes on one redis-server of the run's own (append-only file, ``appendfsync everysec``
as docs/deployment.md recommends), serving the repository's flows.yaml made always open, with Messenger, WhatsApp
(Twilio) and Telegram on. Each channel's replies reach its own fake API in this process (``gateway/testing.py``'s,
``bench/chaos_channels.py``) under ``/<instance>-<generation>/``, so who sent what is known. Conversations walk the
flow at about ``--rate`` messages a second, each on a channel drawn from ``--channels``, each webhook signed as its
platform signs it (Meta's HMAC, Twilio's ``X-Twilio-Signature`` over the public URL, Telegram's secret token), sent
round robin to the instances that are up and **redelivered** one second after any answer that is not a 2xx (as Meta
and Telegram do; a small share of acknowledged ones is redelivered too: an acknowledgement lost on the way). Twilio
does not: as it does, a WhatsApp webhook is posted once, and once more after a failed connection only; its message
is kept in the fake Twilio's list (``receive``) whatever its webhook met, and the gateway's catch-up
(``gateway/channels/whatsapp_catchup.py``) must find every one the webhook did not bring: the audit counts each
WhatsApp message Twilio took, acknowledged or not, and the drain waits for them. A **web chat**
conversation is a websocket client of ``bench/chaos_webchat.py`` instead, behaving as the widget's page does: to an
instance that is up (each its own address in ``X-Forwarded-For``, the instances behind a proxy), every message
under its client id until acknowledged, after a drop a reconnection (0.5 s doubling to 5 s, to another instance
when its own is down), ``hello`` with its token, and the unacknowledged messages sent again, same id; it waits for
the bot's reply before its next message, and stays on the page once its walk is done.

Every ``--every`` seconds (on average, from ``--seed``) one fault, chosen at random: ``kill -9`` of one instance,
started again a few seconds later; a Redis restart (``SHUTDOWN NOSAVE``, down a few seconds, started again on
its files); one provider's fake answering 503 for a few seconds; one provider's fake holding every request for a
few seconds (``provider-hang``, 2–8 s: below the 15 s send timeout); or for longer than the send timeout
(``provider-hang-long``, 16–25 s: the sends then time out while the provider holds them, and it takes them when
the hang ends: ambiguous sends, which the gateway sends again). ``provider-429`` (since 2026-12-07; named in
``--faults`` only, the default runs' draws unchanged): one provider's fake answers every send with its own rate limit's
answer for 5–30 s (:func:`rate_limit_answer`: Graph's codes 4/17/32/613 as HTTP 400, 429 or a 200 with the error
object, Telegram's 429, each with a ``retry_after`` or without; Twilio's 20429, WhatsApp's 63018), and the run prints
with the fault the sends it refused, the replies held back without asking (``gateway_outbox_deliveries{result=
"paused"}``) and the wait from its end to the channel's first send accepted.

``--redis-delay-ms MS`` (``--redis-jitter-ms MS``; since 2026-12-07, default none: the run above unchanged): each
instance reaches Redis through a ``tests/delaying_proxy.py`` process of its own (:class:`RedisProxy`), MS each way plus
up to the jitter, as Redis across a network; and one more fault, ``redis-stall``, in the default faults then: one
instance's proxy holds every byte for 1–9 s, both ways, only towards Redis or only back (drawn), the other instance's
Redis untouched, so some stalls pass the 5 s socket timeout and the 6 s conversation lock's lease (the lock's renewal,
the fenced commit, ``LockLost``, a mark taken back). A reply accepted from the stalled instance within 2 s of its stall
and recorded nowhere is counted within the bound as ``redis-stall``, as at a Redis outage. ``redis-stall-commit``
(since 2026-12-07; named in ``--faults`` only): one instance's proxy armed (``stall_at``) for the next commit made
under a conversation's lock (the fenced record's script, ``COMMIT_MARKER``), every byte towards Redis held 7–9 s from
that chunk on, past the lease and the socket timeout, while the other instance takes the conversation; 30 s without a
commit: disarmed ("unmet"). The proxies count the fenced scripts' refusals Redis answered, and those answered to a
client gone already (its call timed out: the gateway saw a TimeoutError, not ``LockLost``), printed after the failures.

``freeze`` (since 2026-12-07; named in ``--faults`` only): one instance that is up stopped (``SIGSTOP``) for 5–30 s,
then resumed (``SIGCONT``), as a virtual machine paused or live-migrated, a suspended host, a swap storm or a long GC
do; never at once with a kill of the same instance. Its sockets stay open (pages, consoles and webhooks posted to it
hang rather than drop; a webhook is redelivered only past this bench's 30 s request timeout), its leases and claims
lapse while it sleeps, and on resume it goes on mid-operation with both its clocks moved on. A reply accepted from
the frozen instance within 2 s of its freeze, during it or within 2 s after it and recorded nowhere is counted within
the bound as ``freeze`` (the send in flight at that instant: its lease lapsed and another claim sent it again).

After ``--duration`` seconds and a drain, the audit per channel against the store and the fakes: every webhook
acknowledged at least once recorded exactly once in its transcript; every copy of a reply a fake accepted whose
provider id no transcript records (a reply received twice), explained by the fault it was in flight at (a kill, a
Redis outage, a hang past the send timeout: the documented bound) or beyond it; since 2026-12-07 each reply against
that bound itself (:func:`beyond_bound`: at most one copy per fault, one more per attempt the gateway hung up on after
the send timeout, so twice unless that many causes explain more; never a copy sent after the send the gateway
recorded was accepted), each violation printed with the fault nearest it and the line "replies beyond the stated
bound: N" (since 2026-12-07 too, a reply's copies are told apart by the outbox item each was sent under, from the
instances' DEBUG lines, ``sends_logged``: two replies of one text whose entries a failover lost are two replies, and a
violation names each copy's item and claim); replies recorded as accepted by the provider that it never accepted
(lost); conversations stuck (no
engine state, messages left in the inbox, replies still pending); HTTP 500s; ``/readyz`` of both instances; the
supervisor's worker restarts by worker (``/metrics``), and since 2026-12-07 the store's failures by class
(``LockLost``: a commit fenced).
The web chat's audit (every page in session again first): every message acknowledged recorded
exactly once; every bot and listener entry of its transcript **received** (its id in any frame the client read:
``session``'s history, ``entry``, ``resync``), and how many only by a catch-up; entry ids that came again
(**repeated**: the page shows one bubble per id) and ids no transcript records (**phantoms**: what the young person
would see twice); messages never acknowledged; **deaf** sockets (in session, no ack 60 s after a message was sent)
and **silent** ones (in session, acknowledged, the bot still on the conversation and no reply in 30 s); gone
timers armed and conversations marked gone while their page is open; conversations no client holds the token of
(a drop before the first session). Prints figures, asserts nothing (bench/README.md, "Chaos soak").

``--floods N`` (default none: the run above unchanged): N senders per provider channel, each at a time drawn in the
load, burst ``FLOOD_BURST`` messages a tenth of a second apart (each after the previous one's answer), past the flood
limit (``limit_messages_per_conversation``, 20 a minute), their last eight words of danger (the keywords' phrases) and
one more among the first twenty. Their audit (:func:`audit_floods`): every message recorded at most once; the first
twenty recorded; past them, every word of danger recorded within the risky bound
(``limit_risky_messages_per_conversation``: escalate, never silence), the plain ones refused but for those the model
could not read (counted apart, same amount) and WhatsApp's never posted (the catch-up's, held to no limit); more
recorded is a flood let in; a sender with a message refused got the ``rate_limited`` notice once (the hour), a second
one is shown with the fault its earlier copy was in flight at (a send the gateway hung up on or was killed during is
sent again: the documented bound). On the web chat, N pages of their own (``WebChats.flood``, each its own address and
socket) type the same burst as chat.js sends it (each kept pending under its id, sent at once without waiting for the
previous one's answer; a refused one kept and sent again, same id, after each session: a kill's reconnection) and stay
open; audited (``chaos_webchat.audit_flood``) each message acknowledged and recorded once, or refused (a ``refused``
frame; the notice once a minute per socket) and never recorded: never both, never neither (unanswered and unrecorded:
silently dropped), the first twenty recorded, words of danger within the risky bound, no more recorded in the burst's
first minute than the bound; a refused one let on when sent again later (a new window) is counted apart. And one client
network at its cap (``WebChats.crowd_at_cap``): ``max_waiting_per_client`` + 5 pages from one address, each opened after
the previous one's session or refused hello; each refused page then sends words of danger on its held socket (they open
its conversation: escalate, never silence), and a page of another address must get its session (its wait is printed).
Each refused page's words of danger acknowledged and recorded once, otherwise a line per reason (``crowd_miss``, since
2026-12-07: refused and why, sent and never answered, acknowledged and never recorded (within 2 s of a failover: the
replication loss without ``GATEWAY_REDIS_REPLICA_ACKS``), recorded twice, or under a token no session frame gave the
page: the audit's), and when the pages were opened and the words sent, relative to the start.

``--erasures N`` (default 0: the run unchanged): N young people of their own on the provider channels erased during
the load, by their phrase and "oui", by a supervisor through the console, or by a supervisor while a message of theirs
is in flight, each asked again as a young person or a supervisor would when cut; audited after the drain
(``bench/chaos_erasures.py``: nothing of theirs left in Redis, their words never back, the goodbye once (a second one
shown with the fault its earlier copy was in flight at), nothing sent after it but to a conversation they started
again), their addresses left out of the audit above. The purge runs every 15 s meanwhile (it finds nothing due: the
retention is whole days).

``--console N`` (since 2026-12-07; default 0: the run unchanged): N listeners (``bench/chaos_console.py``), each
logged in through the console API on an instance that is up, taking the soak's conversations from the queue, writing
to the young person one to three times (each message with its console id), then handing back, transferring (to a
second queue added to the run's flow) or closing, each action with its id; a request answered 503 or met by a
connection error, a timeout, a 409 ``in_progress``/``sending`` or a 401 is sent again a second later with the same id
and body, as the console does. Audited after the drain: no 5xx but 503; each message answered 201 recorded once and
received once (or within the bound, :func:`cause`), its copies at the fake found by its text, on the web chat its id
in a frame; each take answered 200 told once (``listener_joined``); each keyed action sent again answered 200 at last;
every conversation of the run in one consistent state (record, queue entry, the queues' orders, the ``held`` sets),
read twice 25 s apart; a message or take answered within 2 s of a failover and lost with it counted apart.

``--purges N`` (default 0): N ended conversations written to Redis before the instances start, each closed
``retention.closed_days`` before a moment of the run, so that the purge (every 15 s) finds them due while the faults
happen, and N more whose retention ends after the run; audited after the drain (``bench/chaos_purges.py``: nothing of
a purged one's person, words, provider ids, mark or upload left in Redis, its record stripped; the others whole),
all of them left out of the audit above.

``--sentinel`` (since 2026-12-07; default off: the run above unchanged): the instances on a ``redis+sentinel://`` URL,
a primary, its replica and three Sentinels started in the run's directory by ``tests/sentinel_servers.py`` (as the
tests start them: persistence off, ``down-after-milliseconds`` 1000), and one more fault, ``failover`` (in the default
faults then, ``redis`` out: a restart of the primary alone is a failover there), alternately a planned one (``SENTINEL
FAILOVER``: the old primary stays up, a writable primary until the Sentinels make it a replica) and ``kill -9`` of the
primary, the replica promoted, the old one started again 2–8 s later as the new one's replica; each waits for the
replica in step and known to every Sentinel before it ends, so several failovers happen in one run. A reply accepted
within 2 s of a failover (from 2 s before its start to 2 s after the last instance moved to the new primary, by
the instances' logs: ``note_moves``; until 2026-12-07 (night) 2 s after the Sentinels named it, while the instances
moved up to 2.9 s after that) and recorded nowhere is counted within the bound as ``failover``: what the old primary
had not passed on to its replica is lost, its "sent" mark too; so is an acknowledged webhook there (counted apart:
"acknowledged within a failover's window"). ``--replica-acks``: the
instances with ``GATEWAY_REDIS_REPLICA_ACKS=1`` (an acknowledgement only once a replica has the message), where none
may be lost.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiohttp import ClientError, ClientSession, ClientTimeout, TCPConnector
from limits import parse as parse_limit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable from a checkout without installing

from bench.chaos_channels import (  # noqa: E402
    CHANNELS,
    URL_VARIABLES,
    ChaosTwilio,
    Copy,
    Noting,
    Webhook,
    channels_env,
    fakes,
    sender_id,
    webhook,
)
from bench.chaos_console import Consoles, audit_consoles, second_queue, show_consoles  # noqa: E402
from bench.chaos_erasures import PURGE_EVERY, ErasureAudit, Erasures, audit_erasures, show_erasures  # noqa: E402
from bench.chaos_purges import Purges, audit_purges, show_purges  # noqa: E402
from bench.chaos_receipts import Receipts, audit_receipts, show_receipts  # noqa: E402
from bench.chaos_webchat import FloodRules, WebChats, audit_webchat, show_webchat, since  # noqa: E402
from bench.load import Step, bench_flows, free_port, gateway_env, machine_line, run, walks, workdir  # noqa: E402
from gateway.channels.base import SEND_TIMEOUT_SECONDS as SEND_TIMEOUT  # noqa: E402
from gateway.conversation import Conversation  # noqa: E402
from gateway.flows.loader import load_text  # noqa: E402
from gateway.ids import inbound_entry_id  # noqa: E402
from gateway.inbox import sender_key  # noqa: E402
from gateway.keyed import KeyedHash  # noqa: E402
from gateway.messages import PART_SEPARATOR, ChannelName, Inbound  # noqa: E402
from gateway.outage_log import SETTLE  # noqa: E402
from gateway.settings import Settings  # noqa: E402
from gateway.store.redis_lua import SCRIPTS  # noqa: E402
from gateway.testing import Failure, named_by_provider, stop_gently, store_keys  # noqa: E402
from tests.sentinel_servers import NotReady, Sentinels  # noqa: E402

REDELIVER_AFTER = 1.0
# s before a kill or a Redis outage (and after the outage: the pool reconnecting) in which a send accepted by the
# provider may not be recorded as sent yet: sent again after its lease, within the documented bound
IN_FLIGHT_MARGIN = 2.0
TIMEOUT_MARGIN = 0.5  # s: the gateway starts its send's clock a little before the request reaches the fake
FAULTS = ["kill", "redis", "provider-5xx", "provider-hang", "provider-hang-long"]
# one provider's fake answering every send with its own rate limit's answer for 5-30 s (since 2026-12-07; named in
# ``--faults`` only: the default runs' draws unchanged): :func:`rate_limit_answer`
RATE_LIMIT = "provider-429"
RATE_LIMIT_SECONDS = (5.0, 30.0)
RATE_LIMIT_FIRST_SEND = 90.0  # s after a rate limit's end waited at most for its channel's first send accepted
# --redis-delay-ms: one instance's Redis traffic held (its own proxy), both ways or one, 1–9 s: past the 5 s socket
# timeout and the 6 s conversation lock's lease some of the time; in the default faults only with the proxies
STALL = "redis-stall"
STALL_SECONDS = (1.0, 9.0)
# one instance's proxy armed for its next commit under a conversation's lock (the fenced record's script on its way
# to Redis): from that chunk on, every byte towards Redis held 7–9 s, past the 6 s lease and the 5 s socket timeout,
# while the load goes on (since 2026-12-07: random stalls never met a commit in flight)
STALL_COMMIT = "redis-stall-commit"
STALL_COMMIT_SECONDS = (7.0, 9.0)
STALL_COMMIT_WAIT = 30.0  # s: armed that long at most for a commit to pass (then disarmed, the fault "unmet")
STALLS = frozenset({STALL, STALL_COMMIT})
# one instance stopped (SIGSTOP) 5–30 s then resumed (SIGCONT), as a VM paused or live-migrated, a suspended host, a
# swap storm or a long GC: its sockets kept open (pages, consoles and webhooks hang, they do not drop), its leases and
# claims lapsing while it sleeps, and on resume it goes on mid-operation (since 2026-12-07; named in ``--faults`` only)
FREEZE = "freeze"
FREEZE_SECONDS = (5.0, 30.0)
# --sentinel: the primary lost, the replica promoted (planned and ``kill -9``, alternately; since 2026-12-07)
FAILOVER = "failover"
SENTINEL_FAULTS = [*(f for f in FAULTS if f != "redis"), FAILOVER]
# --floods: a sender's burst past the flood limit, its words of danger last (and one within the limit), the keyword
# phrases of tests/test_security.py and the WhatsApp catch-up's tests; the rest plain words no reading calls a risk
FLOOD_FILLER = ("ok", "d'accord", "merci", "attends", "je reviens", "t'es là ?")
FLOOD_DANGER = ("je veux mourir", "je vais me tuer ce soir")
FLOOD_BURST, FLOOD_DANGER_AT = 45, frozenset({3, *range(37, 45)})
FLOOD_PAUSE = 0.1  # s between a flood's webhooks (each after the previous one's answer)
FLOOD_INDEX = 1000  # a flood message's index (Messenger's mid): apart from the walks'
FLOOD_SLOT = 900  # a flood sender's slot in its address: apart from the load's
CROWD = Settings.model_fields["max_waiting_per_client"].default + 5  # --floods: one network's pages, 5 past its cap
NOTICE_MARK = "Beaucoup de messages arrivent"  # flows.yaml's ``rate_limited`` notice, French first in every language


def _amount(name: str) -> int:
    """The default amount of a ``limit_*`` setting (``20/minute`` → 20): what the instances run with."""
    return int(parse_limit(str(Settings.model_fields[name].default)).amount)


FLOOD_LIMIT = _amount("limit_messages_per_conversation")  # a minute's window, from the sender's first message
RISKY_BOUND = _amount("limit_risky_messages_per_conversation")  # an hour's, words read as a risk past the limit
UNREAD_BOUND = min(RISKY_BOUND, _amount("limit_flood_readings_per_sender"))  # unread past the limit: counted apart
WEB_FLOOD_RULES = FloodRules(FLOOD_LIMIT, RISKY_BOUND, UNREAD_BOUND, FLOOD_DANGER_AT)
# what the proxy sees of a commit under a conversation's lock: the fenced record's script, sent with its text (EVAL in
# a pipeline: ``gateway/store/redis.py``'s ``_eval``), the fence's head and the record's body together, none other's
COMMIT_MARKER = SCRIPTS["fenced_put_conversation"].encode()


class AofRedis:
    """A redis-server with its append-only file (``appendfsync everysec``), restartable on its port and files."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(exist_ok=True)
        self.port, self.directory = free_port(), directory
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("chaos: redis-server is not on PATH (make system-deps)")
        self.command = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
                        "--appendfsync", "everysec", "--maxmemory-policy", "noeviction", "--dir", str(directory),
                        "--logfile", str(directory / "redis.log")]  # fmt: skip
        self.process: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True, text=True)

    async def start(self) -> None:
        self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        for _ in range(300):
            if self.cli("PING").stdout.strip() == "PONG":
                return
            await asyncio.sleep(0.1)
        raise SystemExit("chaos: redis-server did not start")

    async def shutdown(self) -> None:
        """``SHUTDOWN NOSAVE``: no RDB written; the append-only file is flushed, as on a crash of Redis alone."""
        await asyncio.to_thread(self.cli, "SHUTDOWN", "NOSAVE")
        if self.process is not None:
            await asyncio.to_thread(self.process.wait)
        self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=60)


class SentinelRedis:
    """``--sentinel``: a primary, its replica and three Sentinels (``tests/sentinel_servers.py``), the instances on
    their ``redis+sentinel://`` URL; :meth:`failover` the fault. Since 2026-12-07."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(exist_ok=True)
        self.directory = directory
        self.servers: Sentinels | None = None
        self.done: Counter[str] = Counter()  # failovers done, by how

    async def start(self) -> None:
        self.servers = await asyncio.to_thread(Sentinels, self.directory, 3)

    @property
    def url(self) -> str:
        assert self.servers is not None
        return self.servers.url

    async def failover(self, fault: Fault, down: float) -> None:
        """The next failover: planned (``SENTINEL FAILOVER``) and ``kill -9`` alternately, the planned one first;
        ``fault.end`` set when every Sentinel names the new primary, the killed one started again ``down`` s later
        as its replica, and back when the replica is in step (the next failover can be asked)."""
        servers = self.servers
        assert servers is not None
        old = servers.primary_port
        how = "planned" if sum(self.done.values()) % 2 == 0 else "kill -9"
        try:
            if how == "planned":
                await asyncio.to_thread(servers.ask_failover)
            else:
                await asyncio.to_thread(servers.kill_primary)
            await asyncio.to_thread(servers.promoted)
            fault.end = time.monotonic()
            fault.target = f"{how} :{old} → :{servers.primary_port}"
            self.done[how] += 1
            if how == "kill -9":
                await asyncio.sleep(down)
                await asyncio.to_thread(servers.rejoin)
            else:
                await asyncio.to_thread(servers.settled)
        except NotReady as error:  # told in the fault's line and the summary, the run goes on
            fault.target = f"{how} :{old}, {error}"
            self.done["not done"] += 1

    def stop(self) -> None:
        if self.servers is not None:
            self.servers.stop()


class RedisProxy:
    """``tests/delaying_proxy.py`` as a process of its own between one instance and the run's Redis
    (``--redis-delay-ms``): each instance its own, so a stall holds one instance's Redis traffic and not the
    other's. Its connections to Redis are made per connection of the instance's: a Redis restart closes them, the
    next ones reach the new server on the same port."""

    def __init__(self, redis: AofRedis, delay_ms: float, jitter_ms: float) -> None:
        command = [sys.executable, "-m", "tests.delaying_proxy", redis.url, str(delay_ms), str(jitter_ms)]
        self.process = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        if not self.url:
            raise SystemExit("chaos: the delaying proxy did not start")

        self.lines: asyncio.Queue[str] = asyncio.Queue()  # what it prints after its URL (``read``)
        self.reading: threading.Thread | None = None

    def stall(self, seconds: float, way: str) -> None:
        """Nothing passes for ``seconds`` from now: ``way`` "both", "up" (towards Redis: the commands wait) or "down"
        (back: Redis ran them, their answers wait)."""
        self.tell(f"stall {seconds * 1000:.0f} {way}")

    def tell(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def read(self) -> None:
        """Its printed lines put on ``lines`` from a thread of their own (a blocking pipe), for this loop."""
        loop, stdout = asyncio.get_running_loop(), self.process.stdout
        assert stdout is not None

        def lines() -> None:
            for line in stdout:
                loop.call_soon_threadsafe(self.lines.put_nowait, line.strip())

        self.reading = threading.Thread(target=lines, daemon=True)
        self.reading.start()

    async def stall_at(self, marker: bytes, seconds: float, way: str, wait: float) -> bool:
        """The next chunk towards Redis holding ``marker`` begins a stall of ``seconds`` (``way``), within
        ``wait`` s: whether it began (else disarmed)."""
        while not self.lines.empty():  # a ``began`` of an arming disarmed as it began: not this one's
            self.lines.get_nowait()
        self.tell(f"arm {seconds * 1000:.0f} {way} {marker.hex()}")
        try:
            async with asyncio.timeout(wait):
                while await self.lines.get() != "began":
                    pass
            return True
        except TimeoutError:
            self.tell("disarm")
            return False

    async def fenced(self) -> tuple[int, int]:
        """The fenced scripts' refusals its Redis answered, and how many of them to a client gone already."""
        self.tell("count")
        async with asyncio.timeout(10):
            while not (line := await self.lines.get()).startswith("fenced "):
                pass
        words = line.split()
        return int(words[1]), int(words[3])

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


SECRET_KEY = "bench-secret-key"  # bench/load.py's GATEWAY_SECRET_KEY, the instances'
# the provider ids as the instances' outbox logs them (``KeyedHash.provider_id``, keyed since 2026-12-07)
LOGGED = KeyedHash(SECRET_KEY)

# ``gateway serve`` with the outbox's DEBUG lines (the run's level WARNING otherwise): each send's item, claim and
# provider ids' keyed hashes, read back by :func:`sends_logged` (since 2026-12-07)
SERVE = (
    "import logging, sys; logging.getLogger('gateway.outbox').setLevel(logging.DEBUG);"
    " from gateway.cli import main; sys.exit(main(sys.argv[1:]))"
)
# the outbox's line once a provider accepted a send (gateway/outbox.py, ``Outbox._attempt``)
ACCEPTED = re.compile(r"^(\S+ \S+) DEBUG gateway\.outbox: outbox: (.+): accepted as (.+) under the lease to (\S+)$")


@dataclass(frozen=True, slots=True)
class Sent:
    """A send an instance heard accepted, from its outbox's DEBUG line (since 2026-12-07): the item (its keyed form,
    ``KeyedHash.logged_id``: the same for the same item on every instance) and the claim it was sent under (its
    lease's end then: a renewal moves it on, a new claim too)."""

    item: str
    lease: str
    by: str  # the instance's name
    at: str  # the line's time (the instance's wall clock)

    def short(self) -> str:
        return f"item {self.item} lease {self.lease[11:23]}"  # the item's keyed form (since 2026-12-07), whole


def sends_logged(logs: Iterable[tuple[str, Iterable[str]]]) -> dict[str, Sent]:
    """Each provider id's keyed hash (``LOGGED.provider_id``) → the send its instance heard accepted, from the
    instances' log lines (``logs``: (instance, lines)). A copy the gateway never heard of (a kill, a timeout) is not
    there."""
    sends: dict[str, Sent] = {}
    for by, lines in logs:
        for line in lines:
            if (found := ACCEPTED.match(line)) is not None:
                at, item, digests, lease = found.groups()
                for digest in digests.split(PART_SEPARATOR):
                    sends[digest] = Sent(item, lease, by, at)
    return sends


class Instance:
    """One ``gateway serve`` on its own port, killed and started again; each start a new generation, its replies
    under ``/<name>-<generation>/`` at the fake."""

    def __init__(self, name: str, env: dict[str, str], work: Path, apis: dict[ChannelName, str],
                 proxy: RedisProxy | None = None) -> None:  # fmt: skip
        self.name, self.work, self.apis, self.proxy = name, work, apis, proxy
        self.env = env if proxy is None else {**env, "GATEWAY_STORE": proxy.url}  # its Redis through its own proxy
        self.port, self.generation = free_port(), 0
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts: Counter[str] = Counter()  # worker restarts read from /metrics before each kill
        self.failures: Counter[str] = Counter()  # the store's failures by class, the same
        self.exits: list[str] = []  # the processes that ended on their own (started again, as systemd does): how

    @property
    def up(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        self.generation += 1
        by = f"{self.name}-{self.generation}"
        env = {**os.environ, **self.env, **{URL_VARIABLES[c]: f"{url}/{by}" for c, url in self.apis.items()}}
        with (self.work / f"gateway-{self.name}.log").open("ab") as log:
            self.process = subprocess.Popen([sys.executable, "-c", SERVE, "serve", "--port", str(self.port)],
                                            env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        self.process = None

    def freeze(self) -> None:
        """SIGSTOP: the process stays, its sockets open, nothing of it runs (since 2026-12-07)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT: it goes on where it stopped, its loop's clock jumped."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        self.thaw()  # a frozen process never reads its SIGTERM
        stop_gently(self.process)
        self.process = None

    async def keep(self) -> None:
        """A process manager's ``Restart=always``, ``RestartSec=1``: a process that ended on its own (not killed
        here) is started again a second later, its exit code noted."""
        while True:
            await asyncio.sleep(0.5)
            if self.process is not None and (code := self.process.poll()) is not None:
                lines = (self.work / f"gateway-{self.name}.log").read_text(errors="replace").splitlines()
                self.exits.append(f"exit {code} after {lines[-1][:160] if lines else 'nothing logged'}")
                self.process = None
                await asyncio.sleep(1.0)
                self.start()

    async def status(self, session: ClientSession, path: str) -> int:
        try:
            async with session.get(self.url + path) as response:
                await response.read()
                return response.status
        except (ClientError, TimeoutError):
            return 0

    async def ready(self, session: ClientSession, limit: float = 180.0) -> bool:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if await self.status(session, "/readyz") == 200:
                return True
            await asyncio.sleep(0.2)
        return False

    async def worker_restarts(self, session: ClientSession) -> Counter[str]:
        return await self.counted(session, "gateway_worker_restarts_total", "worker")

    async def store_failures(self, session: ClientSession) -> Counter[str]:
        """The store's failures by class (``LockLost``: a commit fenced, its lock lost on the way; since 2026-12-07)."""
        return await self.counted(session, "gateway_store_failures_total", "error")

    async def counted(self, session: ClientSession, metric: str, label: str, only: str = "") -> Counter[str]:
        """A counter of ``/metrics`` summed by one of its labels (``only``: its lines holding that text alone)."""
        counts: Counter[str] = Counter()
        try:
            async with session.get(self.url + "/metrics") as response:
                text = await response.text()
        except (ClientError, TimeoutError):
            return counts
        for line in text.splitlines():
            if line.startswith(metric + "{") and f'{label}="' in line and only in line:
                name, value = line.rsplit(" ", 1)
                counts[name.split(f'{label}="', 1)[1].split('"', 1)[0]] += int(float(value))
        return counts


@dataclass
class Fault:
    kind: str
    start: float  # monotonic
    end: float = 0.0
    target: str = ""  # the killed instance's generation, or the provider's channel
    # a failover's: when each instance left the old primary, by its log (:func:`note_moves`; since 2026-12-07)
    moved: dict[str, float] = field(default_factory=dict)

    @property
    def until(self) -> float:
        """Its end, or for a failover the last instance's move to the new primary when that came later: writes the
        old primary answered until then were not passed on (since 2026-12-07; until then ``end``, the Sentinels
        naming the new primary, while the instances moved 2.3–2.9 s after it under load)."""
        return max([self.end, *self.moved.values()])


@dataclass
class Platforms:
    """The providers' side of the webhooks: round robin over the instances that are up, redelivery until a 2xx,
    counted per channel."""

    instances: list[Instance]
    session: ClientSession
    rng: random.Random
    lost_ack: float
    turn: int = 0
    numbers: itertools.count[int] = field(default_factory=lambda: itertools.count(1))  # update_id, MessageSid
    statuses: Counter[tuple[ChannelName, str]] = field(default_factory=Counter)
    acknowledged: dict[tuple[ChannelName, str], str] = field(default_factory=dict)  # (channel, message id) → sender
    acknowledged_at: dict[tuple[ChannelName, str], float] = field(default_factory=dict)  # → the first 2xx (monotonic)
    redelivered: Counter[ChannelName] = field(default_factory=Counter)
    given_up: Counter[ChannelName] = field(default_factory=Counter)
    twilio: ChaosTwilio | None = None  # keeps every WhatsApp message sent, as Twilio does (its catch-up's list)
    left: Counter[ChannelName] = field(default_factory=Counter)  # webhooks never acknowledged, left to a catch-up
    flooded: dict[tuple[ChannelName, str], tuple[str, int]] = field(default_factory=dict)  # → (sender, index)
    bursts: dict[tuple[ChannelName, str], tuple[float, float]] = field(default_factory=dict)  # → (first, last)
    unposted: set[tuple[ChannelName, str]] = field(default_factory=set)  # flood messages Twilio took, never posted

    def next_up(self) -> Instance:
        for _ in range(len(self.instances)):
            self.turn += 1
            instance = self.instances[self.turn % len(self.instances)]
            if instance.up:
                return instance
        return self.instances[0]  # all down: this post fails, and is redelivered a second later

    async def deliver(self, channel: ChannelName, path: str, raw: bytes, headers: dict[str, str],
                      deadline: float) -> bool:  # fmt: skip
        while time.monotonic() < deadline:
            try:
                async with self.session.post(self.next_up().url + path, data=raw, headers=headers) as response:
                    await response.read()
                    self.statuses[channel, str(response.status)] += 1
                    if 200 <= response.status < 300:
                        return True
            except (ClientError, TimeoutError) as error:
                self.statuses[channel, type(error).__name__] += 1
            self.redelivered[channel] += 1
            await asyncio.sleep(REDELIVER_AFTER)
        return False

    async def twilio_posts(self, hook: Webhook) -> bool:
        """Twilio's webhook: posted once, and once more after a failed connection only (its default); an answer
        that is not a 2xx is not posted again (the gateway's catch-up reads Twilio's list)."""
        for _ in range(2):
            try:
                async with self.session.post(self.next_up().url + hook.path, data=hook.raw,
                                             headers=hook.headers) as response:  # fmt: skip
                    await response.read()
                    self.statuses[ChannelName.WHATSAPP, str(response.status)] += 1
                    return 200 <= response.status < 300
            except (ClientError, TimeoutError) as error:
                self.statuses[ChannelName.WHATSAPP, type(error).__name__] += 1
                self.redelivered[ChannelName.WHATSAPP] += 1
        return False

    async def message(self, channel: ChannelName, sender: str, index: int, step: Step, deadline: float,
                      book: dict[tuple[ChannelName, str], str] | None = None) -> None:  # fmt: skip
        """One message posted as its platform posts it, noted in ``acknowledged`` (``book``: there instead, for the
        senders audited apart, ``--erasures``'s)."""
        noted = self.acknowledged if book is None else book
        hook = webhook(channel, sender, next(self.numbers), index, step)
        if channel is ChannelName.WHATSAPP and self.twilio is not None:  # Twilio keeps it, whatever its webhook meets
            self.twilio.receive(sender, step.text, message_sid=hook.message_id)
            noted[channel, hook.message_id] = sender  # the line must process it once: Twilio said sent
            if not await self.twilio_posts(hook):
                self.left[channel] += 1
                return
        elif not await self.deliver(channel, hook.path, hook.raw, hook.headers, deadline):
            self.given_up[channel] += 1
            return
        noted[channel, hook.message_id] = sender
        self.acknowledged_at.setdefault((channel, hook.message_id), time.monotonic())
        if self.rng.random() < self.lost_ack:  # the 2xx lost on its way back: the platform delivers it again
            self.redelivered[channel] += 1
            await self.deliver(channel, hook.path, hook.raw, hook.headers, deadline)

    async def flood(self, channel: ChannelName, sender: str, deadline: float) -> None:
        """One sender's burst of ``FLOOD_BURST`` messages, each posted as the load's are (Twilio keeps every one),
        ``FLOOD_PAUSE`` s after the previous one's answer; noted in ``flooded`` (not ``acknowledged``: a message
        past the limit may be refused) and the burst's time in ``bursts``."""
        began = time.monotonic()
        for index, text in enumerate(flood_texts()):
            hook = webhook(channel, sender, next(self.numbers), FLOOD_INDEX + index, Step(text, None, 0))
            if channel is ChannelName.WHATSAPP and self.twilio is not None:
                self.twilio.receive(sender, text, message_sid=hook.message_id)
                self.flooded[channel, hook.message_id] = (sender, index)
                if not await self.twilio_posts(hook):
                    self.left[channel] += 1
                    self.unposted.add((channel, hook.message_id))  # the catch-up's: held to no flood limit
            elif await self.deliver(channel, hook.path, hook.raw, hook.headers, deadline):
                self.flooded[channel, hook.message_id] = (sender, index)
                self.acknowledged_at.setdefault((channel, hook.message_id), time.monotonic())  # since 2026-12-07
            else:
                self.given_up[channel] += 1
            await asyncio.sleep(FLOOD_PAUSE)
        self.bursts[channel, sender] = (began, time.monotonic())


def flood_texts() -> list[str]:
    """A flood's ``FLOOD_BURST`` messages: plain words, words of danger at ``FLOOD_DANGER_AT``."""
    return [FLOOD_DANGER[i % 2] if i in FLOOD_DANGER_AT else FLOOD_FILLER[i % len(FLOOD_FILLER)]
            for i in range(FLOOD_BURST)]  # fmt: skip


async def floods(platforms: Platforms, chats: WebChats, channels: list[ChannelName], per_channel: int,
                 duration: float, rng: random.Random) -> None:  # fmt: skip
    """``per_channel`` senders on each channel of ``channels``, each bursting past the flood limit once, at a time
    drawn in the load (from its own generator: the load's draws stay the seed's); on the web chat, pages of their
    own (``WebChats.flood``) typing the burst as chat.js sends it."""
    deadline = time.monotonic() + duration + 600

    async def one(channel: ChannelName, number: int) -> None:
        await asyncio.sleep(rng.uniform(5.0, max(6.0, duration - 40.0)))
        if channel is ChannelName.WEBCHAT:
            await chats.flood(FLOOD_SLOT + number, flood_texts(), FLOOD_PAUSE, deadline)
        else:
            await platforms.flood(channel, sender_id(channel, FLOOD_SLOT + number, number), deadline)

    async def crowd() -> None:
        await asyncio.sleep(rng.uniform(5.0, max(6.0, duration - 60.0)))
        await chats.crowd_at_cap(CROWD, FLOOD_SLOT + 100, FLOOD_DANGER[0], deadline)

    web = [crowd()] if ChannelName.WEBCHAT in channels and per_channel else []
    await asyncio.gather(*(one(c, n) for c in channels for n in range(per_channel)), *web)


async def conversations(platforms: Platforms, chats: WebChats, script: list[list[Step]], channels: list[ChannelName],
                        rate: float, gap: float, duration: float) -> int:  # fmt: skip
    """``rate * gap`` conversations at once, each on a channel drawn from ``channels`` and sending its next message
    ``gap`` s after the previous one was acknowledged, a new one starting when one reaches its hand-off; until
    ``duration`` s. A web chat conversation is a client of ``chats`` (bench/chaos_webchat.py), its page left open
    once its walk is done. Conversations started."""
    started = 0
    stop = time.monotonic() + duration
    deadline = stop + 600  # a webhook still refused 10 minutes after the load: given up (counted)

    async def slot(number: int) -> None:
        nonlocal started
        await asyncio.sleep(platforms.rng.random() * gap)
        while time.monotonic() < stop:
            started += 1
            walk = script[platforms.rng.randrange(len(script))]
            channel = platforms.rng.choice(channels)
            if channel is ChannelName.WEBCHAT:
                await chats.conversation(number, started, walk, gap, stop, deadline)
                continue
            sender = sender_id(channel, number, started)
            for index, step in enumerate(walk):
                if time.monotonic() >= stop:
                    return
                await platforms.message(channel, sender, index, step, deadline)
                await asyncio.sleep(gap)

    await asyncio.gather(*(slot(n) for n in range(max(1, int(rate * gap)))))
    return started


class Chaos:
    """Faults at random times from one seeded generator, each running on its own (they overlap: a kill during a
    Redis outage during a provider's hang), never two at once on one target (an instance, Redis, a provider)."""

    def __init__(
        self, rng: random.Random, instances: list[Instance], redis: AofRedis | SentinelRedis, providers: list[Noting],
        session: ClientSession,
    ) -> None:  # fmt: skip
        self.rng, self.instances, self.redis, self.providers = rng, instances, redis, providers
        self.session = session
        self.faults: list[Fault] = []
        self.busy: set[str] = set()  # "redis", a provider's channel, or an instance's name
        self.began = time.monotonic()

    async def inject(self, kind: str) -> None:
        pause = self.rng.uniform(2.0, 8.0)
        if kind == "provider-hang-long":
            pause = self.rng.uniform(SEND_TIMEOUT + 1, SEND_TIMEOUT + 10)
        if kind == STALL:
            pause = self.rng.uniform(*STALL_SECONDS)
        if kind == STALL_COMMIT:
            pause = self.rng.uniform(*STALL_COMMIT_SECONDS)
        if kind == FREEZE:
            pause = self.rng.uniform(*FREEZE_SECONDS)
        if kind == RATE_LIMIT:
            pause = self.rng.uniform(*RATE_LIMIT_SECONDS)
        victims = [i for i in self.instances if i.name not in self.busy and i.up]
        stalled = [i for i in self.instances if i.proxy is not None and f"{STALL} {i.name}" not in self.busy]
        provider = self.rng.choice(self.providers) if self.providers else None  # none: web chat alone
        hits = provider.channel if provider is not None and kind.startswith("provider") else ""
        if kind in ("kill", FREEZE):  # one or the other at a time on an instance
            if not victims:
                return
            victim = self.rng.choice(victims)
            held = victim.name
        elif kind in STALLS:  # its own target: a stall may meet a kill of the same instance
            if not stalled:
                return
            victim = self.rng.choice(stalled)
            way = self.rng.choice(("both", "up", "down")) if kind == STALL else "up"
            held, hits = f"{STALL} {victim.name}", f"{victim.name} {way}"
        else:
            held = "redis" if kind == FAILOVER else hits or kind
        if held in self.busy:
            return
        self.busy.add(held)
        fault = Fault(kind, time.monotonic(), target=hits)
        self.faults.append(fault)
        told = ""  # a rate limit's answer and what it cost
        try:
            if kind == "kill":
                victim.restarts += await victim.worker_restarts(self.session)
                victim.failures += await victim.store_failures(self.session)
                fault.target = f"{victim.name}-{victim.generation}"
                fault.start = time.monotonic()
                victim.kill()
                await asyncio.sleep(pause)
                victim.start()
            elif kind == FREEZE:
                fault.target = f"{victim.name}-{victim.generation}"
                fault.start = time.monotonic()
                victim.freeze()
                try:
                    await asyncio.sleep(pause)
                finally:
                    victim.thaw()
            elif kind == STALL:
                assert victim.proxy is not None
                victim.proxy.stall(pause, way)
                await asyncio.sleep(pause)
            elif kind == STALL_COMMIT:  # armed: it begins when a commit passes, or never (the fault then unmet)
                assert victim.proxy is not None
                if await victim.proxy.stall_at(COMMIT_MARKER, pause, way, STALL_COMMIT_WAIT):
                    fault.start = time.monotonic()
                    await asyncio.sleep(pause)
                else:
                    fault.target += " unmet"
                    fault.start = time.monotonic()
            elif kind == FAILOVER:
                assert isinstance(self.redis, SentinelRedis)
                await self.redis.failover(fault, pause)
            elif kind == "redis":
                assert isinstance(self.redis, AofRedis)
                await self.redis.shutdown()
                await asyncio.sleep(pause)
                await self.redis.start()
            elif provider is None:
                pass  # run() draws no provider fault without a provider
            elif kind == "provider-5xx":
                provider.down()
                await asyncio.sleep(pause)
                provider.up()
            elif kind == RATE_LIMIT:
                told = await self.rate_limited(provider, pause, fault)
            else:  # provider-hang, provider-hang-long
                provider.stall()
                await asyncio.sleep(pause)
                provider.resume()
        finally:
            fault.end = fault.end or time.monotonic()  # a failover's: the promotion (its rejoin after it)
            self.busy.discard(held)
        span = f"{fault.start - self.began:6.1f}–{fault.end - self.began:5.1f} s"
        print(f"  {span}  {kind} {fault.target}{told}".rstrip(), flush=True)

    async def rate_limited(self, provider: Noting, seconds: float, fault: Fault) -> str:
        """``provider-429``: every send to ``provider`` answered with its rate limit's answer
        (:func:`rate_limit_answer`) for ``seconds``; told: the answer, the sends it refused (both instances'),
        the replies the instances held back meanwhile without asking (``gateway_outbox_deliveries{result="paused"}``),
        and the wait from the limit's end to the channel's first send accepted (the pause outliving the limit),
        once it came (``RATE_LIMIT_FIRST_SEND`` at most; a channel with nothing to send then says "none")."""
        answer, form = rate_limit_answer(provider.channel, self.rng)
        paused = await self.paused(provider.channel)
        refused = provider.limited
        provider.rate_limit(seconds, answer)
        await asyncio.sleep(seconds)
        fault.end = time.monotonic()
        accepted = len(provider.copies)
        waited = "none"
        while time.monotonic() - fault.end < RATE_LIMIT_FIRST_SEND:
            if len(provider.copies) > accepted:
                waited = f"{provider.copies[accepted].at - fault.end:.1f} s"
                break
            await asyncio.sleep(0.1)
        held_back = await self.paused(provider.channel) - paused
        return (
            f" ({form}): {provider.limited - refused} sends refused, {held_back} replies held back unasked;"
            f" first send accepted {waited} after"
        )

    async def paused(self, channel: ChannelName) -> int:
        """The replies of ``channel`` the instances up held back for a rate limit so far (a killed one's count
        restarts: a figure, not an audit)."""
        total = 0
        for instance in self.instances:
            if instance.up:
                counted = await instance.counted(self.session, "gateway_outbox_deliveries_total", "channel",
                                                 'result="paused"')  # fmt: skip
                total += counted[channel.value]
        return total

    async def run(self, every: float, duration: float, kinds: list[str]) -> list[Fault]:
        stop = time.monotonic() + duration
        running: set[asyncio.Task[None]] = set()
        kinds = [k for k in kinds if self.providers or not k.startswith("provider")]
        kinds = [k for k in kinds if k not in STALLS or any(i.proxy is not None for i in self.instances)]
        while True:
            await asyncio.sleep(self.rng.uniform(0.3, 1.7) * every)
            if time.monotonic() >= stop - 5:
                break
            task = asyncio.create_task(self.inject(self.rng.choice(kinds)))
            running.add(task)
            task.add_done_callback(running.discard)
        if running:
            await asyncio.wait(running)
        return self.faults


async def drained(store_url: str, senders: set[tuple[ChannelName, str]], limit: float,
                  expected: Collection[str] = ()) -> tuple[int, int, int]:  # fmt: skip
    """Wait (up to ``limit`` s) until no sender has messages in the inbox, no reply is pending and every entry id of
    ``expected`` is recorded (WhatsApp's messages whose webhook Twilio never posted again: its catch-up's): what is
    left of each."""
    from gateway.store import Author, Delivery, open_store

    keyed = KeyedHash(SECRET_KEY)
    keys = [sender_key(keyed, Inbound(channel, sender, "")) for channel, sender in senders]
    store = await open_store(store_url, keys=store_keys(store_url))
    deadline = time.monotonic() + limit
    try:
        while True:
            waiting = sum([await store.inbox_waiting(key) for key in keys])
            pending, recorded = 0, set[str]()
            for conversation in await store.list_conversations(datetime(2000, 1, 1, tzinfo=UTC),
                                                               datetime.now(UTC) + timedelta(days=1)):  # fmt: skip
                entries = await store.transcript(conversation.id)
                # a listener's too (since 2026-12-07, ``--console``): before, only the bot's were waited for
                pending += sum(e.author in (Author.BOT, Author.LISTENER) and e.delivery is Delivery.PENDING
                               for e in entries)  # fmt: skip
                recorded.update(e.id for e in entries if e.author is Author.USER)
            missing = sum(entry_id not in recorded for entry_id in expected)
            if (waiting == 0 and pending == 0 and missing == 0) or time.monotonic() > deadline:
                return waiting, pending, missing
            await asyncio.sleep(2.0)
    finally:
        await store.close()


@dataclass
class Audit:
    """One channel's figures."""

    acknowledged: int = 0
    processed_once: int = 0
    never_processed: int = 0
    never_at_failover: int = 0  # … of them acknowledged within 2 s of a failover (--sentinel): replication's loss
    recorded_twice: int = 0
    no_conversation: int = 0
    empty_engine: int = 0
    replies_received: int = 0  # copies the fake accepted
    replies_failed: int = 0  # recorded as failed (the outbox gave up, or the provider refused)
    twice_by_fault: Counter[str] = field(default_factory=Counter)  # copies no transcript records, within the bound
    twice_beyond: list[str] = field(default_factory=list)  # … and beyond it
    copies_per_reply: Counter[int] = field(default_factory=Counter)  # copies at the provider → replies (2026-12-07)
    beyond_bound: list[list[str]] = field(default_factory=list)  # each reply past the stated bound: its violations
    unanchored: int = 0  # replies no transcript records (an entry lost with a failover's old primary): not repeats
    # since 2026-12-07: copies of one text the items told apart (more replies than by text alone), and the replies
    # past the bound by text alone (the audit before the items): what the items explained
    told_apart: int = 0
    beyond_by_text: int = 0
    told_apart_lines: list[str] = field(default_factory=list)  # … their replies' copies, item and claim each
    explained: list[str] = field(default_factory=list)  # replies received more than twice, within it: their causes
    lost: int = 0
    stray_users: int = 0  # young people's entries no acknowledged message explains (a receipt taken for one?)
    conversations: int = 0
    extra_conversations: int = 0  # beyond one per sender, or of a sender no acknowledged message came from
    extra_lines: list[str] = field(default_factory=list)  # … each such sender's conversations (since 2026-12-07)
    after_close: int = 0  # a sender's next conversation, begun after a listener closed the one before: not extra
    waits: list[tuple[float, float]] = field(default_factory=list)  # (s from entry to its first copy, that copy's at)
    # since 2026-12-07: a conversation's replies whose first copy at the fake came before an earlier entry's (a rate
    # limit's pause, a retry: a conversation's order broken), and their conversations
    out_of_order: int = 0
    out_of_order_lines: list[str] = field(default_factory=list)
    flood: Flood = field(default_factory=lambda: Flood())


@dataclass
class Flood:
    """One channel's floods (``--floods``): each burst's messages against the gate's rules."""

    senders: int = 0
    sent: int = 0  # acknowledged (or kept by Twilio)
    once: int = 0
    twice: int = 0  # recorded more than once
    refused: int = 0  # never recorded
    within_refused: int = 0  # among the first FLOOD_LIMIT of a burst (in one minute): refused though within the limit
    danger: int = 0
    danger_recorded: int = 0
    silenced: int = 0  # words of danger not recorded that the risky bound does not explain
    # of the first FLOOD_LIMIT and the words of danger, never recorded, acknowledged within 2 s of a failover (the old
    # primary's writes lost: asynchronous replication); left out of ``within_refused`` and ``silenced`` (since
    # 2026-12-07: before, counted there as the gate's doing)
    lost_at_failover: int = 0
    past_bound: int = 0  # recorded beyond the limit + the risky and unread bounds (+ the catch-up's): a flood let in
    unbounded: int = 0  # bursts that took a minute or more: the bound is not computed
    notices: Counter[int] = field(default_factory=Counter)  # notices a sender got → senders
    silent_refusals: int = 0  # senders with a message refused and no notice
    notice_unrefused: int = 0  # senders with a notice and every message recorded: refused and recorded
    extra_notices: list[str] = field(default_factory=list)  # a second notice within the hour, and why


def rate_limit_answer(channel: ChannelName, rng: random.Random) -> tuple[Failure, str]:
    """A provider's own answer to a send past its rate limit, drawn (``provider-429``), and how the run prints it.
    Messenger: Graph's error object with code 4 (the app's limit), 17 (a user's), 32 (the page's) or 613 (a custom
    one), as HTTP 400, 429 or a 200; Telegram: a 429 (``error_code`` 429); each with a ``retry_after`` (Graph's
    ``Retry-After`` header, Telegram's ``parameters.retry_after``: the whole seconds the limit has left) or without,
    one time in two. WhatsApp: Twilio's 429 with code 20429, or WhatsApp's 63018 (as a 429 or a 400); Twilio's answers
    carry no ``retry_after``."""
    told = rng.random() < 0.5 and channel is not ChannelName.WHATSAPP
    retry_after = 0 if told else None  # 0: the fake tells the seconds left (``FakeAPI.rate_limit``)
    if channel is ChannelName.MESSENGER:
        status, code = rng.choice((400, 429, 200)), rng.choice((4, 17, 32, 613))
        answer = Failure(status, code=code, retry_after=retry_after, description="Calls to this api have exceeded"
                         " the rate limit.")  # fmt: skip
    elif channel is ChannelName.WHATSAPP:
        status, code = rng.choice(((429, 20429), (429, 63018), (400, 63018)))
        answer = Failure(status, code=code, description="Too Many Requests")
    else:
        status, code = 429, 429
        answer = Failure(429, retry_after=retry_after, description="Too Many Requests: retry after")
    return answer, f"HTTP {status} code {code}, retry_after {'told' if told else 'none'}"


def in_flight(copy: Copy, faults: list[Fault]) -> str | None:
    """Why the gateway may not have recorded ``copy`` as sent (:func:`cause`'s name of it), or None."""
    return cause(copy, faults)[0]


def cause(copy: Copy, faults: list[Fault]) -> tuple[str | None, Fault | None]:
    """Why the gateway may not have recorded ``copy`` (a reply a provider accepted) as sent, within the documented
    bound, or None. "kill": accepted from an instance killed just after (or while the provider held the request);
    "timeout": the gateway hung up on it after waiting the send timeout (or its answer was written as the timeout
    fired): a hang past the timeout, an ambiguous send, sent again, one more copy per timed-out attempt; "redis":
    accepted around a Redis outage (its record could not be written), "failover" around a failover (``--sentinel``:
    its record written to the old primary and lost with it); "redis-stall": the same from the instance whose
    own Redis traffic was stalled then (``--redis-delay-ms``, since 2026-12-07); "freeze": accepted from an instance
    within 2 s of its freeze (SIGSTOP) to 2 s after its resume (since 2026-12-07). A kill is named first: a process
    killed loses its records whatever the store does. A copy the gateway hung up on sooner than the send timeout is
    beyond the bound ("timeout below 15 s"), and so is one it was answered for and did not record outside a kill
    or an outage. With it, the fault that explains it (None for a timeout: each timed-out attempt is its own cause;
    since 2026-12-07, :func:`beyond_bound` counts the causes of a reply's copies)."""
    for fault in faults:
        killed = fault.kind == "kill" and copy.sender == fault.target and fault.start - IN_FLIGHT_MARGIN <= copy.at
        # unanswered: the kill's only if the kill hung up on it (since 2026-12-07: before, an attempt its instance
        # had given up on at the send timeout before the kill was the kill's too, a second copy of one crash)
        hung_up = None if copy.waited is None else copy.at - copy.held + copy.waited
        if killed and (copy.at <= fault.end if hung_up is None else hung_up >= fault.start - IN_FLIGHT_MARGIN):
            return "kill", fault
    if copy.waited is not None:
        return ("timeout" if copy.waited >= SEND_TIMEOUT - TIMEOUT_MARGIN else "timeout below 15 s"), None
    if copy.held >= SEND_TIMEOUT - TIMEOUT_MARGIN:  # answered as the gateway's timeout fired: it gave up all the same
        return "timeout", None
    for fault in faults:
        if (
            fault.kind in ("redis", FAILOVER)
            and fault.start - IN_FLIGHT_MARGIN <= copy.at <= fault.until + IN_FLIGHT_MARGIN
        ):
            return fault.kind, fault
    for fault in faults:  # a frozen instance's send: its claim lapsed while it slept, the other instance sent it again
        frozen = fault.kind == FREEZE and copy.sender == fault.target
        if frozen and fault.start - IN_FLIGHT_MARGIN <= copy.at <= fault.end + IN_FLIGHT_MARGIN:
            return FREEZE, fault
    for fault in faults:  # an outage of that instance's Redis alone (its record could not be written in time)
        stalled = fault.kind in STALLS and copy.sender.split("-")[0] == fault.target.split(" ")[0]
        if stalled and fault.start - IN_FLIGHT_MARGIN <= copy.at <= fault.end + IN_FLIGHT_MARGIN:
            return fault.kind, fault
    return None, None


def nearest(at: float, faults: list[Fault], began: float) -> str:
    """The fault nearest ``at`` (its start to its end), its kind and target, and ``at`` in seconds from its start."""
    if not faults:
        return "no fault in the run"
    fault = min(faults, key=lambda f: max(f.start - at, 0.0, at - f.end))
    return (
        f"nearest fault: {' '.join(filter(None, (fault.kind, fault.target)))} at {fault.start - began:.1f}–"
        f"{fault.end - began:.1f} s, {at - fault.start:+.1f} s from its start"
    )


def replies(
    copies: list[Copy], recorded: Collection[str], sends: Mapping[str, Sent] | None = None
) -> list[tuple[Copy | None, list[Copy]]]:
    """``copies`` (of one provider, one recipient, one text) as the replies they are copies of: each copy whose
    provider id a transcript records (the anchor: the send the gateway recorded) with the copies it does not record
    that arrived at the provider before the anchor was accepted, or after the last anchor (a send again after its
    record); copies of a text no transcript records, one reply (no anchor). A conversation sent the same text twice
    gets two anchors: a copy between them goes to the later (the crash's copy comes before its resend).

    With ``sends`` (:func:`sends_logged`, since 2026-12-07), the copies an instance heard accepted are grouped by
    their outbox item instead: two items of one text are two replies even when no transcript records either (a
    flood's replies, or a text asked twice, their entries lost with a failover's old primary: until then one reply
    sent again); a copy no instance heard of goes to the first item heard accepted after it arrived (the crash's
    or the timeout's copy comes before its resend), else to the last."""
    if sends:
        heard = {id(c): sends.get(LOGGED.provider_id(c.provider_id)) for c in copies}
        items: dict[str, list[Copy]] = {}
        for copy in sorted(copies, key=lambda c: c.at):
            if (sent := heard[id(copy)]) is not None:
                items.setdefault(sent.item, []).append(copy)
        if len(items) > 1:
            groups = list(items.values())  # in the order of their first copy heard
            for copy in sorted(copies, key=lambda c: c.at):
                if heard[id(copy)] is None:
                    arrived = copy.at - copy.held
                    later = [g for g in groups if min(c.at for c in g) >= arrived]
                    (later[0] if later else groups[-1]).append(copy)
            return [(next((c for c in g if c.provider_id in recorded), None), g) for g in groups]
    ordered = sorted(copies, key=lambda c: c.at)
    anchors = [c for c in ordered if c.provider_id in recorded]
    if not anchors:
        return [(None, ordered)]
    grouped: list[tuple[Copy | None, list[Copy]]] = [(a, [a]) for a in anchors]
    for copy in ordered:
        if copy.provider_id in recorded:
            continue
        arrived = copy.at - copy.held
        index = next((i for i, a in enumerate(anchors) if arrived <= a.at), len(anchors) - 1)
        grouped[index][1].append(copy)
    return grouped


def explained(
    anchor: Copy | None, copies: list[Copy], faults: list[Fault], began: float, sends: Mapping[str, Sent] | None = None
) -> str:
    """A reply's copies in order, each with the instance that sent it, when, and its cause (the recorded one said);
    with ``sends``, each copy's item and claim as its instance logged them, or "not heard" (since 2026-12-07)."""
    told = []
    for copy in sorted(copies, key=lambda c: c.at):
        why, fault = cause(copy, faults)
        at = "" if fault is None else f" ({fault.target} at {fault.start - began:.1f} s)"
        told.append(f"{copy.sender}@{copy.at - began:.1f}s " + ("recorded" if copy is anchor else f"{why}{at}")
                    + ("" if sends is None else f" [{claim_of(copy, sends)}]"))  # fmt: skip
    return ", ".join(told)


def claim_of(copy: Copy, sends: Mapping[str, Sent]) -> str:
    """The item and claim a copy was sent under, as its instance logged it; "not heard" when it never heard it."""
    sent = sends.get(LOGGED.provider_id(copy.provider_id))
    return "not heard" if sent is None else sent.short()


def claimed(sends: Mapping[str, Sent]) -> str:
    """The items the instances heard accepted, and those accepted under more than one claim (a send made again: a
    kill, a timeout, a record or a claim a failover lost; or a reply in parts resumed), by how many claims."""
    claims: dict[str, set[str]] = {}
    for sent in sends.values():
        claims.setdefault(sent.item, set()).add(sent.lease)
    again = Counter(len(leases) for leases in claims.values() if len(leases) > 1)
    return f"{len(claims):,} items, under more than one claim {sum(again.values())} {dict(sorted(again.items()))}"


def repeated(copies: list[Copy], sends: Mapping[str, Sent]) -> str:
    """What a reply's copies are, by the items and claims their instances heard accepted (since 2026-12-07): one
    item under several claims is a send made again (a lease lost or a "sent" record lost); several items of one text
    are several replies no transcript tells apart."""
    heard = [s for c in copies if (s := sends.get(LOGGED.provider_id(c.provider_id))) is not None]
    items, claims = {s.item for s in heard}, {(s.item, s.lease) for s in heard}
    return (
        f"{len(heard)} of {len(copies)} copies heard accepted: {len(items)} item(s), {len(claims)} claim(s)"
        + ("; one item sent under several claims: a send made again" if len(items) == 1 < len(claims) else "")
        + ("; one claim accepted twice" if len(claims) < len(heard) else "")
    )


def beyond_bound(anchor: Copy | None, copies: list[Copy], faults: list[Fault], began: float) -> list[str]:
    """One reply's copies at its provider against what docs/guarantees.md and docs/deployment.md promise (since
    2026-12-07; before, each copy no transcript records was labelled by the fault it was in flight at and nothing
    more was checked): every copy not recorded explained by a fault of a kind that allows a repeat, within its window
    (:func:`cause`); at most one copy per fault (after a crash or an outage, only the send in flight at that instant
    may repeat), one more per attempt the gateway hung up on after the send timeout (the ambiguous send); so received
    at most twice unless that many causes (a timed-out attempt each, or distinct faults) explain more; and never a
    copy that reached the provider after the provider accepted the send the gateway recorded (a send already
    recorded as sent, sent again), unless its instance was still on a planned failover's old primary when it sent
    (:func:`blind`: two primaries, each instance's claim and "sent" mark on its own, the old one's lost; until
    2026-12-07 (night) counted beyond the bound). Each violation with the fault nearest it."""
    unrecorded = [c for c in copies if c is not anchor]
    lines: list[str] = []
    timeouts, by_fault = 0, Counter[int]()
    for copy in unrecorded:
        why, fault = cause(copy, faults)
        if why not in IN_BOUND:
            hung = "never" if copy.waited is None else f"after {copy.waited:.1f} s"
            lines.append(
                f"{copy.sender}@{copy.at - began:.1f}s, held {copy.held:.1f} s, the gateway hung up {hung}:"
                f" {why or 'no fault'} explains it; {nearest(copy.at, faults, began)}"
            )
            continue
        if fault is None:
            timeouts += 1
            continue
        by_fault[id(fault)] += 1
        if by_fault[id(fault)] > 1:
            lines.append(
                f"{copy.sender}@{copy.at - began:.1f}s: a second copy in flight at one {why} ({fault.target} at"
                f" {fault.start - began:.1f} s); {nearest(copy.at, faults, began)}"
            )
    causes = timeouts + len(by_fault)
    allowed = max(2, causes + (anchor is not None))
    if len(copies) > allowed:
        first = min(c.at for c in copies)
        lines.append(
            f"received {len(copies)} times (the bound {allowed}: {causes} causes) from {first - began:.1f} s;"
            f" {nearest(first, faults, began)}"
        )
    if anchor is not None:
        for copy in unrecorded:
            if (arrived := copy.at - copy.held) > anchor.at and not blind(copy, faults):
                lines.append(
                    f"{copy.sender}@{copy.at - began:.1f}s sent again {arrived - anchor.at:.1f} s after the provider"
                    f" accepted the recorded send ({anchor.sender}@{anchor.at - began:.1f}s);"
                    f" {nearest(anchor.at, faults, began)}"
                )
    return lines


def blind(copy: Copy, faults: list[Fault]) -> bool:
    """Whether ``copy`` reached the provider from an instance still on a planned failover's old primary (before its
    move, :attr:`Fault.moved`, by its log): it claimed and sent there, blind to what the other instance, moved
    already, recorded on the new primary (the old primary is writable until the Sentinels make it a replica, ~10 s
    later; its claims and "sent" marks are lost: docs/deployment.md, "What it can lose"). Seed 111 on 2026-12-07
    (night): an item whose lease lapsed 0.1 s after the switch (its claimer killed 15 s before) claimed by each
    instance on its own primary, sent by both 0.1 s apart. Since 2026-12-07 (night)."""
    instance, arrived = copy.sender.split("-")[0], copy.at - copy.held
    return any(f.kind == FAILOVER and f.start <= arrived <= f.moved.get(instance, float("-inf")) for f in faults)


def at_failover(at: float, faults: list[Fault]) -> bool:
    """Whether ``at`` (a webhook's 2xx, a console's answer) is within ``IN_FLIGHT_MARGIN`` of a failover (its start to
    the last instance's move to the new primary, :attr:`Fault.until`): what the old primary acknowledged and had not
    passed on to its replica is lost (asynchronous replication, ``GATEWAY_REDIS_REPLICA_ACKS=0``: docs/deployment.md,
    "What it can lose"). Since 2026-12-07; until 2026-12-07 the window ended 2 s after the Sentinels named the new
    primary whatever the instances did (they moved up to 2.9 s after it: losses then counted as beyond it)."""
    return any(f.kind == FAILOVER and f.start - IN_FLIGHT_MARGIN <= at <= f.until + IN_FLIGHT_MARGIN for f in faults)


# an instance's store failures ended (``gateway/outage_log.py``): the line comes ``SETTLE`` s after the last failure,
# once a part answered; at a failover, the last failure is its connections to the old primary cut (``follow_primary``)
MOVED_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) WARNING gateway\.outage_log:"
    r" the store failed briefly: \d+ failures in ([\d.]+) s"
)


MOVE_WITHIN = 5.0  # s: an instance's move begins this long at most after the Sentinels named the new primary (its
# follow_primary asks every second); a later blip (a replica behind, its restart after a kill) is no move


def note_moves(faults: list[Fault], logs: Iterable[tuple[str, Iterable[str]]], offset: float) -> None:
    """Each failover's :attr:`Fault.moved`: for each instance (``logs``: (instance, lines)), the first line of its
    store failures ending (:data:`MOVED_LINE`) whose failures began from the failover's start to ``MOVE_WITHIN`` s
    after the Sentinels named the new primary (a line of seed 131's, +8.1 s, was its instance's restart), within 30 s of
    the Sentinels naming the new primary (and before the next failover): its last failure, the line's time less
    ``SETTLE`` (the instance's connections to the old primary cut by ``follow_primary``, its commands on them failed;
    its next ones went to the new primary). ``offset``: the wall clock less the monotonic one (the logs' times are
    local wall-clock times). An instance with no such line (killed then, no command failed) moves nothing: the window
    is the Sentinels' there; so does a ``kill -9`` failover (the old primary answers nothing after its kill; its
    failures are an outage, not a move). Since 2026-12-07."""
    failovers = sorted((f for f in faults if f.kind == FAILOVER and f.end), key=lambda f: f.start)
    planned = [f for f in failovers if f.target.startswith("planned")]
    for by, lines in logs:
        ended = []  # (first failure, last failure), monotonic
        for line in lines:
            if (match := MOVED_LINE.match(line)) is None:
                continue
            at = datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S,%f").timestamp() - offset  # local time, as logged
            last = at - SETTLE
            ended.append((last - float(match[2]), last))
        for fault, after in itertools.zip_longest(failovers, failovers[1:]):
            limit = min(fault.end + 30.0, after.start if after is not None else float("inf"))
            found = [
                last for first, last in ended if fault.start - 0.5 <= first <= fault.end + MOVE_WITHIN and last <= limit
            ]
            if found and fault in planned:
                fault.moved[by] = min(found)


def failover_gap(fault: Fault, acks: list[float], began: float, until: float) -> str:
    """A failover as the young people met it: the longest time without any acknowledgement (a webhook's first 2xx,
    a web chat ``ack``; ``acks`` sorted) from 2 s before it to 30 s after the Sentinels named the new primary (or the
    last acknowledgement of the run, the load's end; or 2 s before the next failover, ``until``), and where that gap
    began. Since 2026-12-07."""
    end = min(fault.end + 30.0, until - 2.0, acks[-1]) if acks else fault.end
    window = [fault.start - 2.0, *(t for t in acks if fault.start - 2.0 < t < end), max(end, fault.start - 2.0)]
    gap, at = max((b - a, a) for a, b in itertools.pairwise(window))
    return (
        f"{fault.start - began:.1f} s {fault.target}: the Sentinels {fault.end - fault.start:.1f} s"
        f"{''.join(f', {by} moved {at - fault.end:+.1f} s' for by, at in sorted(fault.moved.items()))};"
        f" no acknowledgement for {gap:.1f} s from {at - fault.start:+.1f} s"
    )


def extra_conversations(held: list[Conversation]) -> tuple[int, int]:
    """One sender's conversations beyond the first: (extra, after a listener's close). The next one begun after a
    listener closed the one before (the young person writing again, as a flood's sender whose words of danger put
    it in the queue does) is the gateway's rule, not an extra; one begun while the one before was open, or after any
    other end, is extra. Until 2026-12-07 (night) every conversation beyond one counted: seed 101 ``--floods
    --console 2`` counted 1-2 flood senders, each writing on after a listener's close."""
    extra = after = 0
    ordered = sorted(held, key=lambda c: c.created_at)
    for before, conversation in itertools.pairwise(ordered):
        closed = before.closed_at is not None and before.closed_at <= conversation.created_at
        by_listener = closed and before.listener is not None and before.left_how is None
        after += by_listener
        extra += not by_listener
    return extra, after


def sender_conversations(held: list[Conversation], whose: str, began: float) -> str:
    """One sender's conversations, when it has more than one (or none of its messages was acknowledged), in words
    that name no one (``began``: the run's start, wall clock): each one's id, status, when it was created and closed
    (s into the run), and how (a listener's close and its outcome, the young person leaving). Since 2026-12-07 (seed
    101 ``--floods --console 2`` counted one Telegram sender beyond one conversation, its reason unknown)."""

    def since(at: datetime | None) -> str:
        return "-" if at is None else f"{at.timestamp() - began:.1f} s"

    parts = [
        f"{c.id} {c.status.value} created {since(c.created_at)} closed {since(c.closed_at)}"
        f" by {'a listener' if c.listener else 'no listener'} ({c.outcome or '-'}; left {c.left_how or '-'})"
        for c in sorted(held, key=lambda c: c.created_at)
    ]
    return f"{whose}, {len(held)} conversations: " + "; ".join(parts)


IN_BOUND = frozenset({"kill", "timeout", "redis", FAILOVER, FREEZE, *STALLS})


async def audit(
    store_url: str, platforms: Platforms, providers: list[Noting], faults: list[Fault], began: float,
    apart: Collection[tuple[ChannelName, str]] = (), ids_apart: Collection[str] = (),
    sends: Mapping[str, Sent] | None = None,
) -> tuple[dict[ChannelName, Audit], dict[str, str]]:  # fmt: skip
    """Each channel's figures, and each recorded provider id's delivery (for the receipts' audit); the conversations
    of the addresses ``apart`` (``--erasures``'s, audited by ``bench/chaos_erasures.py``; ``--purges``'s) and the
    replies to them left out, and the conversations ``ids_apart`` (``--purges``'s: a purged one names nobody).
    ``sends``: the sends the instances logged (:func:`sends_logged`), each reply's copies told by item and claim."""
    from gateway.store import Author, Delivery, open_store

    results = {provider.channel: Audit() for provider in providers}
    store = await open_store(store_url, keys=store_keys(store_url))
    expected = {inbound_entry_id(Inbound(channel, sender, message_id))
                for (channel, message_id), sender in platforms.acknowledged.items()}  # fmt: skip
    expected |= {inbound_entry_id(Inbound(channel, sender, message_id))
                 for (channel, message_id), (sender, _) in platforms.flooded.items()}  # fmt: skip
    known = {(channel, sender) for (channel, _), sender in platforms.acknowledged.items()}
    known |= {(channel, sender) for (channel, _), (sender, _) in platforms.flooded.items()}
    notices: dict[tuple[ChannelName, str], list[Copy]] = {}  # the gate's notices (never in a transcript)
    flooders = {(channel, sender) for (channel, _), (sender, _) in platforms.flooded.items()}
    deliveries: dict[str, str] = {}
    try:
        users: Counter[str] = Counter()
        recorded: set[str] = set()  # provider ids in the transcripts
        accepted = {p.channel: {c.provider_id for c in p.copies} for p in providers}
        first: dict[str, float] = {}  # a provider id's first copy at the fake (monotonic)
        for provider in providers:
            for copy in provider.copies:
                first[copy.provider_id] = min(first.get(copy.provider_id, copy.at), copy.at)
        wall = time.time() - time.monotonic()  # the entries' times are the gateways' wall clocks, this machine's
        named = named_by_provider(store, first)  # Redis's entries give back each id's digest
        senders: set[tuple[ChannelName, str]] = set()
        by_address: dict[tuple[ChannelName, str], list[Conversation]] = {}
        for conversation in await store.list_conversations(datetime(2000, 1, 1, tzinfo=UTC),
                                                           datetime.now(UTC) + timedelta(days=1)):  # fmt: skip
            if (conversation.channel not in results or (conversation.channel, conversation.sender) in apart
                    or conversation.id in ids_apart):  # fmt: skip
                continue  # the web chat: bench/chaos_webchat.py's audit; the erased and purged: their own
            result = results[conversation.channel]
            result.conversations += 1
            address = (conversation.channel, conversation.sender)
            senders.add(address)
            by_address.setdefault(address, []).append(conversation)
            result.empty_engine += not conversation.engine
            latest = -1.0  # the latest first copy of the conversation's replies so far (their order, at the fake)
            for entry in await store.transcript(conversation.id):
                if entry.author is Author.USER:
                    users[entry.id] += 1
                    result.stray_users += entry.id not in expected
                elif entry.author in (Author.BOT, Author.LISTENER):
                    result.replies_failed += entry.delivery is Delivery.FAILED
                    pid = named.get(entry.provider_message_id or "", entry.provider_message_id)
                    if pid is not None:
                        recorded.add(pid)
                        deliveries[pid] = entry.delivery.value
                    if entry.delivery in (Delivery.SENT, Delivery.DELIVERED, Delivery.READ):
                        result.lost += pid not in accepted[conversation.channel]
                    if pid in first:
                        at = first[pid]
                        result.waits.append((at + wall - entry.at.timestamp(), at))
                        if at < latest:
                            result.out_of_order += 1
                            result.out_of_order_lines.append(f"{conversation.id}: {entry.id} {latest - at:.1f} s early")
                        latest = max(latest, at)
        for address, held in by_address.items():
            extra, after_close = extra_conversations(held)
            result = results[address[0]]
            result.extra_conversations += extra if address in known else len(held)  # no message of theirs: all
            result.after_close += after_close if address in known else 0
            if extra or address not in known:
                whose = "a flood's sender" if address in flooders else "a walk's sender" if address in known else "?"
                results[address[0]].extra_lines.append(sender_conversations(held, whose, wall + began))
        for provider in providers:
            result = results[provider.channel]
            result.replies_received = len(provider.copies)
            texts: dict[tuple[str, str], list[Copy]] = {}  # (recipient, text) → its copies
            for copy in provider.copies:
                if (provider.channel, copy.recipient) in apart:
                    continue
                if NOTICE_MARK in copy.text:
                    notices.setdefault((provider.channel, copy.recipient), []).append(copy)
                    continue
                texts.setdefault((copy.recipient, copy.text), []).append(copy)
                if copy.provider_id in recorded:
                    continue
                why = in_flight(copy, faults)
                if why in IN_BOUND:
                    result.twice_by_fault[str(why)] += 1
                else:
                    result.twice_beyond.append(
                        f"{copy.sender}@{copy.at - began:.1f}s, held {copy.held:.1f} s, the gateway hung up"
                        f" {'never' if copy.waited is None else f'after {copy.waited:.1f} s'} ({why or 'no fault'})"
                    )
            for (recipient, _), same in texts.items():  # each reply against the stated bound (since 2026-12-07)
                # a flood's replies of one text 0.1 s apart, entries lost with a failover's old primary: one reply here
                whose = "a flood's sender" if (provider.channel, recipient) in flooders else "a walk's sender"
                by_text = replies(same, recorded)
                told = replies(same, recorded, sends)
                if len(told) > len(by_text):
                    result.told_apart += 1
                    wrong = sum(bool(beyond_bound(a, c, faults, began)) for a, c in by_text)
                    result.beyond_by_text += wrong
                    result.told_apart_lines.insert(  # those past the bound by text alone first
                        0 if wrong else len(result.told_apart_lines),
                        f"to {whose}: " + " | ".join(explained(a, c, faults, began, sends) for a, c in told),
                    )
                for anchor, copies in told:
                    result.copies_per_reply[len(copies)] += 1
                    result.unanchored += anchor is None
                    if lines := beyond_bound(anchor, copies, faults, began):
                        lines.append(explained(anchor, copies, faults, began, sends))
                        if sends:  # which items and claims the copies were sent under
                            lines.append(repeated(copies, sends))
                        result.beyond_bound.append([f"to {whose}: {line}" for line in lines])
                    elif len(copies) > 2:  # within the bound by that many causes: which, to be read
                        result.explained.append(explained(anchor, copies, faults, began, sends))
        for (channel, message_id), sender in platforms.acknowledged.items():
            result = results[channel]
            result.acknowledged += 1
            result.no_conversation += (channel, sender) not in senders
            times = users[inbound_entry_id(Inbound(channel, sender, message_id))]
            result.processed_once += times == 1
            result.never_processed += times == 0
            acked_at = platforms.acknowledged_at.get((channel, message_id))
            result.never_at_failover += times == 0 and acked_at is not None and at_failover(acked_at, faults)
            result.recorded_twice += times > 1
        audit_floods(platforms, results, users, notices, faults, began)
    finally:
        await store.close()
    return results, deliveries


def audit_floods(platforms: Platforms, results: dict[ChannelName, Audit], users: Counter[str],
                 notices: dict[tuple[ChannelName, str], list[Copy]], faults: list[Fault],
                 began: float) -> None:  # fmt: skip
    """Each burst against the gate's rules, the gateway processing one sender's webhooks in their order: the first
    ``FLOOD_LIMIT`` recorded; past them, the words of danger recorded within ``RISKY_BOUND`` (escalate, never
    silence), plain words refused but for the unread ones (the model busy, late, loading) within ``UNREAD_BOUND``,
    and any WhatsApp message whose webhook was never posted (the catch-up's, held to no limit); every message
    recorded at most once; a sender with a message refused notified once (an hour)."""
    bursts: dict[tuple[ChannelName, str], list[tuple[int, int, bool]]] = {}  # → (index, times recorded, unposted)
    lost: dict[tuple[ChannelName, str], set[int]] = {}  # → the indexes never recorded, acknowledged at a failover
    for (channel, message_id), (sender, index) in platforms.flooded.items():
        times = users[inbound_entry_id(Inbound(channel, sender, message_id))]
        bursts.setdefault((channel, sender), []).append((index, times, (channel, message_id) in platforms.unposted))
        acked_at = platforms.acknowledged_at.get((channel, message_id))
        kept = index < FLOOD_LIMIT or index in FLOOD_DANGER_AT  # never refused (danger past the risky bound aside)
        if kept and times == 0 and acked_at is not None and at_failover(acked_at, faults):
            lost.setdefault((channel, sender), set()).add(index)
    for (channel, sender), messages in bursts.items():
        flood = results[channel].flood
        flood.senders += 1
        flood.sent += len(messages)
        flood.once += sum(t == 1 for _, t, _ in messages)
        flood.twice += sum(t > 1 for _, t, _ in messages)
        gone = lost.get((channel, sender), set())
        flood.lost_at_failover += len(gone)
        refused = sum(t == 0 for _, t, _ in messages)
        flood.refused += refused
        flood.danger += sum(i in FLOOD_DANGER_AT for i, _, _ in messages)
        flood.danger_recorded += sum(i in FLOOD_DANGER_AT and t > 0 for i, t, _ in messages)
        first, last = platforms.bursts.get((channel, sender), (0.0, 1e9))
        if last - first >= 60:
            flood.unbounded += 1
        else:
            past = [(i, t) for i, t, _ in messages if i >= FLOOD_LIMIT]
            flood.within_refused += sum(i < FLOOD_LIMIT and t == 0 and i not in gone for i, t, _ in messages)
            danger_past = [t for i, t in past if i in FLOOD_DANGER_AT]
            filler_past = [t for i, t in past if i not in FLOOD_DANGER_AT]
            flood.silenced += sum(i < FLOOD_LIMIT and i in FLOOD_DANGER_AT and t == 0 and i not in gone
                                  for i, t, _ in messages)  # fmt: skip
            danger_kept = [t for i, t in past if i in FLOOD_DANGER_AT and i not in gone]  # a lost one: by no gate
            flood.silenced += max(0, min(len(danger_kept), RISKY_BOUND) - sum(t > 0 for t in danger_kept))
            bound = FLOOD_LIMIT + min(len(danger_past), RISKY_BOUND) + min(len(filler_past), UNREAD_BOUND)
            bound += sum(u for _, _, u in messages)
            flood.past_bound += max(0, sum(t > 0 for _, t, _ in messages) - bound)
        told = notices.get((channel, sender), [])
        flood.notices[len(told)] += 1
        flood.silent_refusals += refused > 0 and not told
        flood.notice_unrefused += refused == 0 and bool(told)
        for earlier, copy in itertools.pairwise(sorted(told, key=lambda c: c.at)):
            # one notice sent again: the copy the gateway did not hear of (a kill, a send timed out) is the earlier
            why = in_flight(earlier, faults) or in_flight(copy, faults) or "no fault"
            flood.extra_notices.append(
                f"{channel} {earlier.sender}@{earlier.at - began:.1f} s (held {earlier.held:.1f} s, the gateway hung"
                f" up {'never' if earlier.waited is None else f'after {earlier.waited:.1f} s'}), again"
                f" {copy.sender}@{copy.at - began:.1f} s: {why}"
            )


def explain_goodbyes(result: ErasureAudit, faults: list[Fault], began: float) -> None:
    """Each goodbye an erased young person got once more than the one (none after a supervisor's erasure), as a second
    notice is explained: the copy the gateway did not hear of (a kill, a send timed out) is the earlier."""
    for label, goodbyes in result.goodbyes_again:
        ordered = sorted(goodbyes, key=lambda c: c.at)
        for earlier, copy in itertools.pairwise(ordered) if len(ordered) > 1 else [(ordered[0], None)]:
            why = in_flight(earlier, faults) or (copy and in_flight(copy, faults)) or "no fault"
            again = f"again {copy.sender}@{copy.at - began:.1f} s" if copy else "none expected"
            result.goodbyes_explained.append(
                f"{label} {earlier.sender}@{earlier.at - began:.1f} s (held {earlier.held:.1f} s, the gateway hung"
                f" up {'never' if earlier.waited is None else f'after {earlier.waited:.1f} s'}), {again}: {why}"
            )


async def main(args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    flows_text = bench_flows((ROOT / "flows.yaml").read_text(encoding="utf-8"))
    if args.console:  # a second queue, a transfer's target (the walks end in the first)
        flows_text = second_queue(flows_text)
    script = walks(flows_text)
    channels = [ChannelName(c) for c in args.channels]
    print(machine_line())
    print(
        f"seed {args.seed}; {args.rate:.0f} msg/s for {args.duration:.0f} s on {', '.join(channels)}, a fault every"
        f" ~{args.every:.0f} s ({', '.join(args.faults)}); understanding {args.understanding}; 2 instances, "
        + ("Redis: a primary, a replica, 3 Sentinels" if args.sentinel else "Redis AOF everysec")
        + ("; GATEWAY_REDIS_REPLICA_ACKS=1" if args.replica_acks else "")
        + (f"; floods: {args.floods} senders per channel" if args.floods else "")
        + (f"; erasures: {args.erasures}" if args.erasures else "")
        + (f"; console: {args.console} listeners" if args.console else "")
        + (f"; purges: {args.purges} due, {args.purges} not" if args.purges else "")
        + (f"; the purge every {PURGE_EVERY:.0f} s" if args.erasures or args.purges else "")
        + (
            ""
            if args.redis_delay_ms is None
            else f"; each instance's Redis through its own delaying proxy,"
            f" {args.redis_delay_ms:g} ms each way + up to {args.redis_jitter_ms:g} ms"
        )
    )
    providers = fakes()
    with workdir("gateway-chaos-", flows_text) as (work, flows):
        redis: AofRedis | SentinelRedis = (
            SentinelRedis(work / "sentinels") if args.sentinel else AofRedis(work / "redis")
        )
        await redis.start()
        async with contextlib.AsyncExitStack() as stack:
            for provider in providers:
                await stack.enter_async_context(provider)
            session = await stack.enter_async_context(ClientSession(timeout=ClientTimeout(total=30)))
            env = {**gateway_env(redis.url, flows, providers[0], args.understanding), **channels_env()}
            env["GATEWAY_LOG_LEVEL"] = "WARNING"
            env["GATEWAY_CLIENT_ADDRESS_HEADER"] = "X-Forwarded-For"  # behind a proxy: each web chat its address
            # Twilio posts a webhook once (a 503 is never posted again): the catch-up reads its list after a 503
            # once a message is 2 s old, and every 20 s (5 minutes in production) as the soak is short
            env["GATEWAY_WHATSAPP_CATCHUP_SETTLE_SECONDS"] = "2"
            env["GATEWAY_WHATSAPP_CATCHUP_SECONDS"] = "20"
            if args.replica_acks:  # --sentinel: an acknowledgement once a replica has what it wrote
                env["GATEWAY_REDIS_REPLICA_ACKS"] = "1"
            if args.erasures or args.purges:  # its passes meet the faults (due: --purges's, bench/chaos_purges.py)
                env["GATEWAY_PURGE_INTERVAL_SECONDS"] = str(PURGE_EVERY)
            sockets = await stack.enter_async_context(  # the pages' sockets stay open: no pool limit, no total
                ClientSession(connector=TCPConnector(limit=0), timeout=ClientTimeout(total=None, connect=10))
            )
            apis = {provider.channel: provider.url for provider in providers}
            proxies: list[RedisProxy | None] = [None, None]
            if args.redis_delay_ms is not None:  # each instance its own proxy: a stall holds one and not the other
                assert isinstance(redis, AofRedis)  # parse(): not with --sentinel
                started_proxies = [RedisProxy(redis, args.redis_delay_ms, args.redis_jitter_ms) for _ in range(2)]
                for proxy in started_proxies:
                    stack.callback(proxy.stop)
                    proxy.read()
                proxies = [*started_proxies]
            instances = [
                Instance(name, env, work, apis, proxy) for name, proxy in zip(("a", "b"), proxies, strict=True)
            ]
            keepers: list[asyncio.Task[None]] = []
            platforms = Platforms(instances, session, random.Random(args.seed + 1), args.lost_ack)
            platforms.twilio = next((p for p in providers if isinstance(p, ChaosTwilio)), None)
            chats = WebChats(sockets, lambda: platforms.next_up().url)
            receipts = Receipts(session, lambda: platforms.next_up().url, random.Random(args.seed + 2),
                                time.monotonic() + args.duration + 600)  # fmt: skip
            for provider in providers:
                provider.on_accept = receipts.accepted
            erasures = Erasures(platforms, providers, redis.url, lambda: platforms.next_up().url, session,
                                random.Random(args.seed + 4))  # fmt: skip
            purges = Purges(redis.url, random.Random(args.seed + 5))
            consoles = Consoles(session, lambda: platforms.next_up().url, redis.url, random.Random(args.seed + 6))
            loaded_flows, _ = load_text(flows_text, "flows.yaml")
            closed_days = loaded_flows.flow.retention.closed_days if loaded_flows is not None else 30
            provider_channels = [c for c in channels if c in apis]
            await purges.seed(args.purges, provider_channels, args.duration, closed_days)
            try:
                for instance in instances:
                    instance.start()
                for instance in instances:
                    if not await instance.ready(session):
                        raise SystemExit(f"chaos: instance {instance.name} not ready; see its log")
                keepers += [asyncio.create_task(i.keep()) for i in instances]
                began = time.monotonic()
                load = asyncio.create_task(
                    conversations(platforms, chats, script, channels, args.rate, args.gap, args.duration)
                )
                flooding = asyncio.create_task(
                    floods(platforms, chats, channels, args.floods, args.duration, random.Random(args.seed + 3))
                )
                erasing = asyncio.create_task(erasures.run(args.erasures, channels, script, args.duration))
                listening = asyncio.create_task(consoles.run(args.console, args.duration))
                faulty = [p for p in providers if p.channel in channels]  # a provider fault hits a channel in use
                chaos = Chaos(rng, instances, redis, faulty, session)
                faults = await chaos.run(args.every, args.duration, args.faults)
                started = await load
                await flooding
                await erasing
                await listening
                loaded = time.monotonic() - began
                ready = [await i.ready(session, 240) for i in instances]
                senders = {(channel, sender) for (channel, _), sender in platforms.acknowledged.items()}
                senders |= {(channel, sender) for (channel, _), (sender, _) in platforms.flooded.items()}
                erased = {(case.channel, case.sender) for case in erasures.cases}
                apart = erased | purges.addresses
                twilio_kept = {inbound_entry_id(Inbound(channel, sender, message_id))
                               for (channel, message_id), sender in platforms.acknowledged.items()
                               if channel is ChannelName.WHATSAPP}  # fmt: skip
                waiting, pending, uncaught = await drained(redis.url, senders | erased, args.drain, twilio_kept)
                left = await receipts.settled(120)  # the late ones: 60 s after their reply at most, then redelivered
                await asyncio.sleep(3)  # a stray resend would show by now
                unsettled = await chats.settled(60)  # every page in session again, nothing left unacknowledged
                logs = [(i.name, (work / f"gateway-{i.name}.log").read_text(errors="replace").splitlines())
                        for i in instances]  # fmt: skip
                sends = sends_logged(logs)
                note_moves(faults, logs, time.time() - time.monotonic())  # the failovers' windows: the instances'
                results, deliveries = await audit(redis.url, platforms, providers, faults, chaos.began, apart,
                                                  purges.ids, sends)  # fmt: skip
                erasure_audit = await audit_erasures(erasures)
                explain_goodbyes(erasure_audit, faults, chaos.began)
                purge_audit = await audit_purges(purges)
                applied = audit_receipts(receipts, deliveries, chaos.began)
                webchat = await audit_webchat(redis.url, chats, WEB_FLOOD_RULES, lambda at: at_failover(at, faults))
                webchat.unsettled, webchat.held = unsettled, chats.held_pages
                for _, line, trace in chats.unsettled[:5]:  # since 2026-12-07: which pages, and what they were told
                    webchat.unsettled_lines.append(f"{line}; frames: " + "; ".join(
                        since(t, chaos.began) for t in trace[-30:]))  # fmt: skip
                console_audit = await audit_consoles(
                    consoles, providers, chats.received,
                    lambda copy: cause(copy, faults)[0], IN_BOUND, chaos.began, lambda at: at_failover(at, faults),
                )  # fmt: skip
                readyz = [await i.status(session, "/readyz") for i in instances]
                restarts: Counter[str] = Counter()
                failures: Counter[str] = Counter()
                for instance in instances:
                    restarts += instance.restarts + await instance.worker_restarts(session)
                    failures += instance.failures + await instance.store_failures(session)
                fenced = [await p.fenced() for p in proxies if p is not None]
            finally:
                await chats.stop()
                await receipts.stop()
                for keeper in keepers:
                    keeper.cancel()
                for instance in instances:
                    instance.stop()
                redis.stop()
            problems, warnings = Counter[str](), Counter[str]()
            for instance in instances:
                for line in (work / f"gateway-{instance.name}.log").read_text(errors="replace").splitlines():
                    if " ERROR " in line or "Traceback" in line:
                        problems[line.split(" ", 3)[-1][:80]] += 1
                    elif " WARNING " in line:
                        warnings[line.split(" ", 3)[-1][:60]] += 1
            if args.logs is not None:  # the instances' and the servers' logs kept (since 2026-12-07)
                args.logs.mkdir(parents=True, exist_ok=True)
                for kept in work.rglob("*.log"):
                    shutil.copy(kept, args.logs / "-".join(kept.relative_to(work).parts))
    kinds = Counter(f.kind for f in faults)
    acked = len(platforms.acknowledged)
    statuses: Counter[str] = Counter()
    for (_, status), count in platforms.statuses.items():
        statuses[status] += count
    print(
        f"\nload: {acked:,} messages acknowledged ({acked / loaded:.1f}/s) in {started:,} conversations;"
        f" {sum(platforms.redelivered.values()):,} redeliveries; webhook answers {dict(sorted(statuses.items()))};"
        f" given up {sum(platforms.given_up.values())}"
    )
    ports = ", ".join(f"{i.name} :{i.port}" for i in instances)
    print(f"instances: {ports}")
    print(f"faults: {sum(kinds.values())} ({', '.join(f'{k} {n}' for k, n in sorted(kinds.items()))})")
    by_provider = Counter(f"{f.kind} {f.target}" for f in faults if f.kind.startswith("provider"))
    print(f"  provider faults by channel: {', '.join(f'{k} {n}' for k, n in sorted(by_provider.items())) or 'none'}")
    exits = [code for i in instances for code in i.exits]
    print(f"instances that ended on their own (started again a second later): {len(exits)}")
    for how in Counter(exits).most_common(5):
        print(f"  {how[1]}x {how[0]}")
    print(
        f"ready again after the load: {ready}; drain left: {waiting} senders with inbox items,"
        f" {pending} replies pending, {uncaught} WhatsApp messages not caught up"
    )
    for channel, result in results.items():
        if channel in channels:
            show(channel, result, platforms)
    beyond = sum(len(r.beyond_bound) for c, r in results.items() if c in channels)
    print(f"replies beyond the stated bound: {beyond}")  # the line to grep (since 2026-12-07)
    print(f"sends heard accepted, by the instances' logs: {claimed(sends)}")
    show_waits([w for c, r in results.items() if c in channels for w in r.waits], faults, chaos.began)
    show_receipts(receipts, applied, left)
    show_erasures(erasure_audit)
    show_purges(purge_audit)
    show_consoles(console_audit, args.console)
    if ChannelName.WEBCHAT in channels:
        show_webchat(webchat, chats.tally, chaos.began)
    print(f"/readyz at the end: {readyz}")
    print(f"worker restarts: {dict(sorted(restarts.items())) or 'none'}")
    print(f"store failures by class (LockLost: a commit fenced): {dict(sorted(failures.items())) or 'none'}")
    if isinstance(redis, SentinelRedis):
        done = {how: n for how, n in redis.done.items() if how != "not done"}
        print(f"failovers done: {sum(done.values())} {dict(sorted(redis.done.items()))}")
        acks = sorted([*platforms.acknowledged_at.values(), *(t for c in chats.clients for t in c.acked_at.values())])
        failovers = sorted((f for f in faults if f.kind == FAILOVER), key=lambda f: f.start)
        for fault, after in itertools.zip_longest(failovers, failovers[1:]):
            print(f"  {failover_gap(fault, acks, chaos.began, after.start if after else float('inf'))}")
    if fenced:  # the fence's refusals as Redis answered them, heard by the gateway (LockLost) or not (its timeout)
        print(
            f"fenced refusals at the proxies: {sum(n for n, _ in fenced)}, to a client gone already (a timeout on"
            f" the gateway's side) {sum(u for _, u in fenced)}"
        )
    print(f"log errors: {sum(problems.values())} " + "; ".join(f"{n}x {w}" for w, n in problems.most_common(4)))
    print(f"log warnings: {sum(warnings.values())} " + "; ".join(f"{n}x {w}" for w, n in warnings.most_common(4)))


def show(channel: ChannelName, result: Audit, platforms: Platforms) -> None:
    in_bound = sum(result.twice_by_fault.values())
    print(
        f"{channel}: {result.acknowledged:,} acknowledged, {platforms.redelivered[channel]:,} redeliveries,"
        f" HTTP 500 {platforms.statuses[channel, '500']}, given up {platforms.given_up[channel]}"
        + (f", left to the catch-up {platforms.left[channel]}" if channel is ChannelName.WHATSAPP else "")
        + ";"
        f" inbound processed once {result.processed_once:,}, never {result.never_processed}"
        f" ({result.never_at_failover} acknowledged within a failover's window), twice or more"
        f" {result.recorded_twice}; senders without a conversation {result.no_conversation}; empty engine states"
        f" {result.empty_engine}; young people's entries no acknowledged message explains {result.stray_users};"
        f" conversations {result.conversations:,}, beyond one per sender {result.extra_conversations} (a next one"
        f" after a listener's close {result.after_close})"
    )
    print(
        f"  replies: {result.replies_received:,} received; twice within the bound {in_bound}"
        f" {dict(sorted(result.twice_by_fault.items()))}, beyond it {len(result.twice_beyond)}; lost {result.lost};"
        f" failed {result.replies_failed}; out of their conversation's order {result.out_of_order}"
    )
    for line in result.out_of_order_lines[:5]:
        print(f"    out of order: {line}")
    for line in result.extra_lines[:5]:
        print(f"    beyond one conversation: {line}")
    for line in result.twice_beyond[:10]:
        print(f"    beyond: {line}")
    print(
        f"  replies by copies received: {dict(sorted(result.copies_per_reply.items()))} (of them recorded nowhere"
        f" {result.unanchored}); past the stated bound {len(result.beyond_bound)}; copies of one text told apart by"
        f" their items {result.told_apart} (past the bound by text alone: {result.beyond_by_text})"
    )
    for lines in result.beyond_bound[:10]:
        for line in lines:
            print(f"    violation: {line}")
    for line in result.explained[:5]:
        print(f"    more than twice, within the bound: {line}")
    for line in result.told_apart_lines[:5]:
        print(f"    told apart by their items: {line}")
    flood = result.flood
    if flood.senders:
        print(
            f"  floods: {flood.senders} senders, {flood.sent} messages ({FLOOD_BURST} each, limit {FLOOD_LIMIT}/minute,"
            f" risky bound {RISKY_BOUND}, unread {UNREAD_BOUND}); recorded once {flood.once}, twice or more"
            f" {flood.twice}, refused {flood.refused} (of the first {FLOOD_LIMIT}: {flood.within_refused}; of them and"
            f" the words of danger, never recorded, acknowledged within a failover's window: {flood.lost_at_failover});"
            " words of"
            f" danger {flood.danger_recorded}/{flood.danger} recorded, silenced beyond the bound {flood.silenced};"
            f" recorded past the bound {flood.past_bound}; bursts of a minute or more {flood.unbounded}; notices"
            f" per sender {dict(sorted(flood.notices.items()))}, refused without a notice {flood.silent_refusals},"
            f" a notice and nothing refused {flood.notice_unrefused}"
        )
        for line in flood.extra_notices[:5]:
            print(f"    second notice: {line}")


def show_waits(waits: list[tuple[float, float]], faults: list[Fault], began: float) -> None:
    """How long the provider channels' replies waited, from their transcript entry to their first copy at the fake:
    a kill's claimed replies wait out the outbox lease (``GATEWAY_OUTBOX_LEASE_SECONDS``), the crash bound; a
    provider's hang or 503s, and a Redis outage, make others wait too. The slowest are shown beside the last fault
    that began before them."""
    if not waits:
        return
    ordered = sorted(seconds for seconds, _ in waits)
    edges = (1, 5, 10, 16, 20, 45, 65)
    buckets = [sum(low < s <= high for s in ordered) for low, high in zip((0, *edges), (*edges, 1e9), strict=True)]
    by = ", ".join(f"≤{high}: {n}" for high, n in zip(edges, buckets[:-1], strict=True))
    print(
        f"replies' wait (entry to the provider): p50 {ordered[len(ordered) // 2]:.2f} s,"
        f" p99 {ordered[min(len(ordered) - 1, len(ordered) * 99 // 100)]:.1f} s, max {ordered[-1]:.1f} s; by seconds"
        f" {by}, >{edges[-1]}: {buckets[-1]}"
    )
    for seconds, at in sorted(waits, reverse=True)[:6]:
        before = [f for f in faults if f.start <= at]
        last = max(before, key=lambda f: f.start, default=None)
        after = "" if last is None else f" ({last.kind} {last.target} at {last.start - began:.1f} s)"
        print(f"  {seconds:.1f} s, accepted at {at - began:.1f} s{after}")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of load and faults (default 120)")
    parser.add_argument("--rate", type=float, default=20.0, help="messages per second offered (default 20)")
    parser.add_argument("--gap", type=float, default=2.0, help="seconds between one sender's messages")
    parser.add_argument("--every", type=float, default=10.0, help="seconds between faults, on average")
    parser.add_argument(
        "--faults",
        nargs="+",
        default=None,
        choices=[*FAULTS, RATE_LIMIT, STALL, STALL_COMMIT, FAILOVER, FREEZE],
        help=f"the faults drawn (default {' '.join(FAULTS)}, and {STALL} with --redis-delay-ms; with --sentinel"
        f" {' '.join(SENTINEL_FAULTS)}); named only: {FREEZE}, one instance SIGSTOPped"
        f" {FREEZE_SECONDS[0]:.0f}-{FREEZE_SECONDS[1]:.0f} s, then SIGCONT; {RATE_LIMIT}, one provider's fake answers"
        " every send with its own rate limit's answer for 5-30 s (Graph's codes 4/17/32/613 as HTTP 400, 429 or 200,"
        " Telegram's 429, each with a retry_after or without; Twilio's 20429 or WhatsApp's 63018)",
    )
    every = [str(c) for c in (*CHANNELS, ChannelName.WEBCHAT)]
    parser.add_argument("--channels", nargs="+", default=every, choices=every,
                        help="the channels conversations are drawn from (default all four)")  # fmt: skip
    parser.add_argument("--lost-ack", type=float, default=0.02, help="share of acknowledged webhooks delivered again")
    parser.add_argument("--drain", type=float, default=180.0, help="seconds at most for the drain after the load")
    parser.add_argument("--understanding", choices=["on", "off"], default="on")
    parser.add_argument("--floods", type=int, nargs="?", const=2, default=0, metavar="N",
                        help=f"N senders per channel, web chat pages too (2 when N is left out) burst {FLOOD_BURST}"
                        " messages past the flood limit, words of danger among them (default 0: none)")  # fmt: skip
    parser.add_argument("--erasures", type=int, default=0, metavar="N",
                        help="N young people on the provider channels erased during the load: by their phrase,"
                        " by a supervisor, or with a message in flight; audited after the drain (default 0)",
                        )  # fmt: skip
    parser.add_argument("--console", type=int, default=0, metavar="N",
                        help="N listeners logged in to the console taking, answering, transferring, handing back"
                        " and closing the soak's conversations, each request sent again with its id after a 503 or"
                        " a connection error; audited after the drain (default 0)")  # fmt: skip
    parser.add_argument("--purges", type=int, default=0, metavar="N",
                        help="N ended conversations whose retention ends during the run (and N after it), written"
                        " before the instances start; the purge's work audited after the drain (default 0)",
                        )  # fmt: skip
    parser.add_argument("--redis-delay-ms", type=float, help="each instance reaches Redis through a delaying proxy"
                        " of its own (tests/delaying_proxy.py, a process each): this many ms each way; the"
                        f" {STALL} fault then holds one instance's traffic 1-9 s, both ways or one")  # fmt: skip
    parser.add_argument("--redis-jitter-ms", type=float, default=0.0, help="with --redis-delay-ms: up to this many"
                        " ms more on each chunk, at random (order kept on each connection)")  # fmt: skip
    parser.add_argument("--sentinel", action="store_true", help="the instances on redis+sentinel://: a primary, its"
                        f" replica and 3 Sentinels; the {FAILOVER} fault (planned, kill -9, alternately)")  # fmt: skip
    parser.add_argument("--replica-acks", action="store_true", help="with --sentinel: GATEWAY_REDIS_REPLICA_ACKS=1"
                        " (an acknowledgement once a replica has the message)")  # fmt: skip
    parser.add_argument("--logs", type=Path, help="a directory where the instances' logs (the outbox's sends at"
                        " DEBUG: item, claim, provider ids' digests) and the Redis servers' are copied at"
                        " the end")  # fmt: skip
    args = parser.parse_args(argv)
    if args.replica_acks and not args.sentinel:
        parser.error("--replica-acks needs --sentinel")
    if args.sentinel and args.redis_delay_ms is not None:
        parser.error("--sentinel and --redis-delay-ms: not together (a proxy reaches one Redis)")
    if args.sentinel and args.faults is None:
        args.faults = SENTINEL_FAULTS
    elif args.sentinel and "redis" in args.faults:
        parser.error("redis (a restart of one Redis) and --sentinel: not together (failover is that fault there)")
    elif not args.sentinel and args.faults is not None and FAILOVER in args.faults:
        parser.error(f"{FAILOVER} needs --sentinel")
    if args.faults is None:
        args.faults = FAULTS + ([STALL] if args.redis_delay_ms is not None else [])
    elif STALLS & set(args.faults) and args.redis_delay_ms is None:
        parser.error(f"{STALL} and {STALL_COMMIT} need --redis-delay-ms (0 for proxies without delay)")
    return args


if __name__ == "__main__":
    run(main, parse())
