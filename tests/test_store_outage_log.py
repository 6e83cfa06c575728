"""A Redis outage is told in a few lines an operator can alert on, every failure still counted (issue 8: the chaos
soak's 340–2,483 ERROR lines "store unavailable while serving …" a soak; ``gateway/outage_log.py``).

The real app on its own redis-server (tests/test_redis_restart.py's, since the test stops it), Messenger webhooks
from the fake Graph API's side posted while it is down, its workers (inbox, outbox, timers, the web chat's and the
console's event forwarding, the alert checks) retrying meanwhile as they do every 50 ms in the tests: one ERROR line
once the outage has lasted 2 s, a summary a second at most (``outage_summary_seconds=1``), one line when Redis is back,
and every failure counted in ``gateway_store_failures_total{part, error}``. Before, each webhook gave its own ERROR
line and each worker a WARNING line a try.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import socket
from collections.abc import Callable

import pytest
import redis

from gateway.app import METRICS, METRICS_READ_SECONDS, STORE
from gateway.crypto import DataKeys
from gateway.errors import LockTimeout, StoreError
from gateway.metrics import Metrics
from gateway.outage_log import StoreOutages
from gateway.settings import Settings
from gateway.store import open_store
from gateway.testing import FakeGraphAPI
from tests.conftest import AppFactory
from tests.redis_messenger import SECRET, post_message
from tests.test_redis_restart import OwnRedis, own_redis

__all__ = ["own_redis"]  # the fixture, imported to be used here

pytestmark = pytest.mark.redis

# Each test asks for its own Redis first: pytest tears fixtures down in the reverse order, so the app stops while its
# Redis still answers (asked for after the app, Redis was stopped first and the app's stop waited its 10 s grace for
# the outbox's send cut by it: 10 s of every such test's teardown).

WEBHOOKS = 40  # posted while Redis is down: each answered 503 and counted, none its own line
WATCH = 2.0  # the alert checks' period (10 s in production): the test waits for two of their probes and the end
SUMMARY_SECONDS = 1.0
WORKERS = ("inbox", "outbox", "timers", "webchat_forwarding")  # parts that retry by themselves during the outage
PARTS = len(WORKERS) + 1  # and the requests
OUTAGE_LINES = ("alert: the store is unreachable", "alert: the store refuses writes", "store unavailable for")
PSID, TEXT = "psid-4242-outage", "je me sens seule ce soir"


def failures(metrics: Metrics, part: str) -> float:
    """Every failure ``part`` met, whatever its error's class."""
    return sum(
        sample.value
        for family in metrics.registry.collect()
        if family.name == "gateway_store_failures"
        for sample in family.samples
        if sample.name == "gateway_store_failures_total" and sample.labels["part"] == part
    )


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(60):  # a safety net against a hang, not a timing assumption
        while not condition():
            await asyncio.sleep(0.05)


def on_redis_with_messenger(settings: Settings, own_redis: OwnRedis, graph: FakeGraphAPI) -> Settings:
    """The app on the test's own Redis, Messenger on, against the fake Graph API."""
    return settings.replace(
        store=own_redis.url, messenger_app_secret=SECRET, messenger_verify_token="verify",
        messenger_page_access_token="page-token", messenger_api_url=graph.url + "/v23.0",
    )  # fmt: skip


async def test_a_redis_outage_is_told_in_a_few_lines_and_every_failure_counted(
    own_redis: OwnRedis, make_client: AppFactory, settings: Settings, graph: FakeGraphAPI,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.INFO, logger="gateway")
    settings = on_redis_with_messenger(settings, own_redis, graph)
    client = await make_client(settings, outage_summary_seconds=SUMMARY_SECONDS, watch_seconds=WATCH)
    metrics = client.app[METRICS]
    loop = asyncio.get_running_loop()
    assert await post_message(client, PSID, TEXT, "m-before") == 200

    def said(text: str) -> list[logging.LogRecord]:
        return [r for r in caplog.records if text in r.getMessage()]

    def loud_lines() -> list[str]:
        """WARNING and ERROR lines besides the outage's first one and its summaries: ≤ 3 per part an outage."""
        return [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.WARNING
                and r.name.startswith("gateway") and not r.getMessage().startswith(OUTAGE_LINES)]  # fmt: skip

    caplog.clear()
    own_redis.stop()
    stopped = loop.time()
    statuses = [await post_message(client, PSID, TEXT, f"m-{n}") for n in range(WEBHOOKS)]
    assert statuses == [503] * WEBHOOKS
    assert len(loud_lines()) <= 3 * PARTS, loud_lines()  # one ERROR line a webhook before
    await until(lambda: all(failures(metrics, part) >= 3 for part in WORKERS) and bool(said("unavailable for")))
    own_redis.start()
    await until(lambda: bool(said("alert over")))
    lasted = loop.time() - stopped

    assert failures(metrics, "http") == WEBHOOKS  # every request answered 503 counted, by part and class only
    assert metrics.registry.get_sample_value(
        "gateway_store_failures_total", {"part": "http", "error": "ConnectionError"}
    ) == WEBHOOKS  # fmt: skip
    [start] = said("alert: the store is unreachable")
    assert start.levelno == logging.ERROR
    assert "ConnectionError" in start.getMessage()
    summaries = said("store unavailable for")
    assert 1 <= len(summaries) <= lasted / SUMMARY_SECONDS + 1
    assert f"http {WEBHOOKS} answered 503" in summaries[0].getMessage()
    [back] = said("alert over")
    folded = int(back.getMessage().split(": ")[2].split(" failures folded")[0])
    assert folded >= WEBHOOKS + 3 * len(WORKERS)  # the recovery line says how many failures were folded
    assert len(loud_lines()) <= 3 * PARTS, loud_lines()
    assert not [r for r in caplog.records if PSID in r.getMessage() or TEXT in r.getMessage()]
    assert await post_message(client, PSID, TEXT, "m-after") == 200


def connection_error() -> StoreError:
    error = StoreError("redis: ConnectionError")
    error.__cause__ = ConnectionError("Connection refused")
    return error


async def test_a_failure_after_the_store_answered_keeps_the_outage_open_until_it_holds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A request in flight when Redis came back, or a pooled connection it cut, fails after another part was
    answered: one outage, said back once no failure followed an answer for ``settle`` seconds, never a line a
    flap. On uvloop (the suite's loop, as ``gateway serve``'s) the loop's time moves once a turn: an answer and a
    failure in one turn had equal times, and the outage was said over while the store still failed (2026-12-02)."""
    caplog.set_level(logging.INFO, logger="gateway.outage_log")
    metrics = Metrics()
    outages = StoreOutages(metrics.store_failures, every=600, settle=0.2)
    outages.failed("inbox", connection_error())
    await until(lambda: bool(caplog.records))  # nothing answered: an outage once it has lasted the settle
    for _ in range(3):  # answered, then failing again at once
        outages.answered("outbox")
        outages.failed("http", connection_error())
    failed_last = asyncio.get_running_loop().time()
    await until(lambda: outages._check is None)  # its check after the settle ran: the last word was a failure
    assert outages.down and len(caplog.records) == 1
    outages.answered("inbox")
    await until(lambda: not outages.down)
    # uvloop's whole milliseconds as floats: 33707.244 - 33707.044 is 0.19999...; one millisecond of slack
    assert asyncio.get_running_loop().time() - failed_last >= 0.2 - 1e-3
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages
    # the seconds as the machine took them (a busy one rounds the 0.2 s settle up to 1 s: fresh99, load 14)
    assert re.match(r"alert: the store is unreachable: inbox met ConnectionError \(for \d+ s\);", messages[0]), messages
    assert caplog.records[0].levelno == logging.ERROR
    assert re.match(r"alert over: the store answers again after \d+ s: 4 failures folded", messages[1]), messages
    assert "inbox 1" in messages[1] and "http 3 answered 503" in messages[1]
    assert failures(metrics, "inbox") == 1 and failures(metrics, "http") == 3


async def test_a_blip_answered_at_once_is_one_warning_not_an_alert(caplog: pytest.LogCaptureFixture) -> None:
    """A connection Redis closed (its idle ``timeout``, ``CLIENT KILL``): the command on it fails, the next one
    is answered. Said once, as a WARNING with its count, and counted; the ERROR line is for an outage."""
    caplog.set_level(logging.INFO, logger="gateway.outage_log")
    metrics = Metrics()
    outages = StoreOutages(metrics.store_failures, every=600, settle=0.2)
    outages.failed("inbox", connection_error())
    outages.failed("outbox", connection_error())
    outages.answered("inbox")
    await until(lambda: not outages.down)
    [line] = caplog.records
    assert line.levelno == logging.WARNING
    assert line.getMessage().startswith("the store failed briefly: 2 failures in 0.0 s (")
    assert failures(metrics, "inbox") == 1 and failures(metrics, "outbox") == 1


async def test_answered_reads_do_not_end_an_outage_of_refused_writes(caplog: pytest.LogCaptureFixture) -> None:
    """A store refusing writes answers the parts that only read: the outage is over once a write is answered (the
    alert checks' probe), not at the first read answered, however long the refused writes are apart."""
    caplog.set_level(logging.INFO, logger="gateway.outage_log")
    metrics = Metrics()
    outages = StoreOutages(metrics.store_failures, every=600, settle=0.05)
    refused = StoreError("redis: OutOfMemoryError")
    refused.__cause__ = redis.exceptions.OutOfMemoryError("OOM command not allowed")
    outages.failed("alerts", refused)
    outages.answered("inbox")  # a poll that found nothing due: a read
    await until(lambda: bool(caplog.records))
    assert outages.down and outages.waiting() == ["alerts"]
    outages.answered("outbox")
    await until(lambda: outages._check is None)
    assert outages.down and len(caplog.records) == 1
    outages.answered("alerts", wrote=True)
    await until(lambda: not outages.down)
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0].startswith("alert: the store refuses writes: alerts met OutOfMemoryError"), messages
    assert len(messages) == 2 and messages[1].startswith("alert over: the store answers again"), messages


async def test_a_lock_not_taken_in_time_is_contention_not_an_outage(caplog: pytest.LogCaptureFixture) -> None:
    """The store answered (another holder kept the conversation's lock): counted and said, never the outage's
    ERROR line, and no outage begins."""
    caplog.set_level(logging.INFO, logger="gateway.outage_log")
    metrics = Metrics()
    outages = StoreOutages(metrics.store_failures, every=600, settle=0.05)
    for _ in range(3):
        outages.failed("timers", LockTimeout("timed out waiting for the lock of conversation c1"))
    assert not outages.down and failures(metrics, "timers") == 3
    outages.failed("inbox", connection_error())  # a real outage still starts and is said
    await until(lambda: any(r.levelno == logging.ERROR for r in caplog.records))
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].startswith("alert: the store is unreachable: inbox met ConnectionError")
    assert sum("lock not taken in time" in r.getMessage() for r in caplog.records) == 3


async def test_the_late_readings_store_worker_tells_the_outage_log_not_a_line_a_try(
    own_redis: OwnRedis, make_client: AppFactory, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """The late readings' store worker (renewing its holds, claiming lapsed ones: every third of the hold) meets
    Redis down at each try: counted and told to the outage log, not a WARNING line of its own each try."""
    caplog.set_level(logging.WARNING, logger="gateway.understanding.late")
    client = await make_client(settings.replace(store=own_redis.url, late_hold_seconds=0.3))
    metrics = client.app[METRICS]
    await asyncio.to_thread(own_redis.stop)
    try:
        await until(lambda: failures(metrics, "late_readings") >= 3)
    finally:
        await asyncio.to_thread(own_redis.start)
    assert not [r.getMessage() for r in caplog.records if r.name == "gateway.understanding.late"]


@pytest.mark.parametrize("refusal", ["oom", "replica", "misconf"])
async def test_a_redis_that_refuses_writes_is_not_ready_and_not_up(
    own_redis: OwnRedis, make_client: AppFactory, settings: Settings, graph: FakeGraphAPI, refusal: str
) -> None:
    """A full Redis under ``noeviction`` (docs/deployment.md's policy) answers reads and PING but refuses every
    write (OOM); so does a replica (READONLY: a ``redis://`` URL left on the old primary's address). Every webhook
    is answered 503, and until 2026-12-05 ``/readyz`` said 200 ``store: ok`` and ``gateway_store_up`` 1 meanwhile:
    the alert on the ERROR line had nothing to confirm it. Now both say the store is not usable, with the error's
    class, and come back once Redis takes writes again. A Redis that cannot persist (its disk full: MISCONF, which
    refuses PING too) was named ``ResponseError`` until 2026-12-07, a class that says nothing; now ``MISCONF``."""
    settings = on_redis_with_messenger(settings, own_redis, graph)
    client = await make_client(settings, watch_seconds=WATCH)
    metrics = client.app[METRICS]
    assert (await client.get("/readyz")).status == 200
    server = redis.Redis(port=own_redis.port)
    try:
        await refuse_writes(server, refusal)
        assert await post_message(client, PSID, TEXT, "m-refused") == 503
        answer = await client.get("/readyz")
        body = await answer.json()
        assert answer.status == 503 and body["store"] == "unreachable", body
        assert body["store_error"] == REFUSALS[refusal], body
        await until(lambda: metrics.registry.get_sample_value("gateway_store_up") == 0)
    finally:
        await take_writes(server, own_redis)
    await until(lambda: metrics.registry.get_sample_value("gateway_store_up") == 1)
    assert (await client.get("/readyz")).status == 200
    assert await post_message(client, PSID, TEXT, "m-refused") == 200  # the provider's redelivery


REFUSALS = {"oom": "OutOfMemoryError", "replica": "ReadOnlyError", "misconf": "MISCONF"}  # what each is named


async def refuse_writes(server: redis.Redis, refusal: str) -> None:
    """Make ``server`` refuse every write: full under ``noeviction`` (OOM), a replica (READONLY), or unable to
    persist (MISCONF: a snapshot failed, as on a full disk, with ``stop-writes-on-bgsave-error yes``, the default;
    it applies once a ``save`` rule is set). ``/proc`` refuses the snapshot's file, even to root."""
    if refusal == "oom":
        server.config_set("maxmemory", "1")  # below what Redis uses already: every write refused
    elif refusal == "replica":
        server.replicaof("127.0.0.1", str(_closed_port()))  # a replica of nobody: reads answered, writes refused
    else:
        server.config_set("save", "3600 1")
        server.config_set("dir", "/proc")
        server.bgsave(schedule=True)  # after an append-only file's rewrite, if one is under way
        await until(lambda: server.info("persistence")["rdb_last_bgsave_status"] == "err")


async def take_writes(server: redis.Redis, own_redis: OwnRedis) -> None:
    """``server`` takes writes again, whatever :func:`refuse_writes` did (a snapshot that succeeds ends MISCONF)."""
    server.config_set("maxmemory", "0")
    server.replicaof("NO", "ONE")
    if server.config_get("dir")["dir"] != str(own_redis.log.parent):
        server.config_set("dir", str(own_redis.log.parent))
        server.bgsave(schedule=True)
        await until(lambda: server.info("persistence")["rdb_last_bgsave_status"] == "ok")
    server.close()


def _closed_port() -> int:
    with socket.socket() as probe:  # a port nobody listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.mark.parametrize("refusal", ["oom", "replica", "misconf"])
async def test_a_redis_that_refuses_writes_is_one_outage_in_the_log_until_it_takes_writes(
    own_redis: OwnRedis, make_client: AppFactory, settings: Settings, graph: FakeGraphAPI, refusal: str,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """A Redis full under ``noeviction`` (OOM) answers reads, and the scripts that write nothing: the workers'
    polls of a quiet gateway (nothing due) are answered, the webhooks and the alert checks' probe refused. Until
    2026-12-05 the answered polls counted as the store back: no ERROR line, and a WARNING ``the store failed briefly
    … it answers again`` after each refused webhook or check (every ~10 s), while every webhook was answered 503. Now
    one outage: its ERROR line naming the refusal, its summaries, and its end once a write is taken again (the alert
    checks' probe is a write). A replica (READONLY) refuses the outbox's claim script at every poll, so it was told
    as one outage before too; it shows its end is still said once Redis takes writes."""
    caplog.set_level(logging.INFO, logger="gateway")
    settings = on_redis_with_messenger(settings, own_redis, graph)
    client = await make_client(settings, outage_summary_seconds=SUMMARY_SECONDS, watch_seconds=WATCH)
    metrics = client.app[METRICS]
    assert await post_message(client, PSID, TEXT, "m-before") == 200

    def said(text: str) -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.name == "gateway.outage_log" and text in r.getMessage()]

    store = client.app[STORE]
    async with asyncio.timeout(60):  # its reply sent and recorded: a quiet gateway, its workers finding nothing due
        while await store.outbox_oldest_pending() is not None:
            await asyncio.sleep(0.05)
    server = redis.Redis(port=own_redis.port)
    caplog.clear()
    try:
        await refuse_writes(server, refusal)
        await until(lambda: failures(metrics, "alerts") >= 1)  # the alert checks' probe refused (every 10 s)
        # a summary (the outage said, lasting), or before the fix the false "back" line
        await until(lambda: bool(said("store unavailable for") or said("failed briefly")))
        assert not said("failed briefly"), [r.getMessage() for r in said("failed briefly")]
        assert [await post_message(client, PSID, TEXT, f"m-refused-{n}") for n in range(3)] == [503] * 3
        await until(lambda: failures(metrics, "alerts") >= 2)  # the next check refused too
        assert not said("failed briefly") and not said("alert over"), [r.getMessage() for r in caplog.records]
    finally:
        await take_writes(server, own_redis)
    await until(lambda: bool(said("alert over")))
    expected = REFUSALS[refusal]
    [start] = said("alert: the store refuses writes")  # until 2026-12-05 "is unreachable": it answers reads
    assert start.levelno == logging.ERROR and expected in start.getMessage()
    [back] = said("alert over")
    assert "http 3 answered 503" in back.getMessage()
    assert not said("failed briefly")
    assert not [r for r in caplog.records if PSID in r.getMessage() or TEXT in r.getMessage()]
    assert await post_message(client, PSID, TEXT, "m-refused-late") == 200  # the provider's redelivery


async def test_the_metrics_page_answers_while_the_store_is_unreachable(
    own_redis: OwnRedis, make_client: AppFactory, settings: Settings
) -> None:
    """``gateway_store_up`` at 0 and the failures counted meanwhile are what a scrape should read during an outage.
    Until 2026-12-07 ``/metrics`` read the store's queue first and answered 503 while Redis was away: the gauge was
    never scraped at 0 (Prometheus saw the gateway's target down instead, not its store), nor the outage's counts.
    Now the page is served, the queue's figures as last read, the scrape's failure counted (part ``metrics``)."""
    client = await make_client(settings.replace(store=own_redis.url), watch_seconds=WATCH)
    metrics = client.app[METRICS]
    assert (await client.get("/metrics")).status == 200
    own_redis.stop()
    try:
        await until(lambda: metrics.registry.get_sample_value("gateway_store_up") == 0)
        answer = await client.get("/metrics")
        lines = (await answer.text()).splitlines()
        assert answer.status == 200, lines
        assert "gateway_store_up 0.0" in lines
        assert failures(metrics, "metrics") >= 1
        assert any(line.startswith("gateway_store_failures_total{") and 'part="metrics"' in line for line in lines)
    finally:
        own_redis.start()
    await until(lambda: metrics.registry.get_sample_value("gateway_store_up") == 1)
    assert (await client.get("/metrics")).status == 200


async def test_a_scrape_while_the_store_does_not_answer_is_served_within_its_budget(
    own_redis: OwnRedis, make_client: AppFactory, settings: Settings
) -> None:
    """A Redis that accepts connections but answers nothing (frozen, cut off by a silent network) holds a read until
    the socket's timeout, a pool exhausted until the pool's: a scrape waiting for the queue's read that long missed
    Prometheus's own scrape timeout (10 s by default), the target seen down again. The read gets
    ``METRICS_READ_SECONDS``; past it the page is served with the gauges as last read, the read going on by itself.
    The test's socket timeout is 30 s so that a scrape that waits for the store cannot pass."""
    client = await make_client(settings.replace(store=own_redis.url, redis_socket_timeout=30.0), watch_seconds=WATCH)
    metrics = client.app[METRICS]
    assert (await client.get("/metrics")).status == 200
    assert own_redis.process is not None
    os.kill(own_redis.process.pid, signal.SIGSTOP)  # connections accepted by the kernel, nothing answered
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        answer = await client.get("/metrics")
        took = loop.time() - started
        assert answer.status == 200
        assert "gateway_queue_longest_wait_seconds" in await answer.text()
        assert took < METRICS_READ_SECONDS + 10, f"the scrape took {took:.1f} s"  # 30 s when it waits for the store
        again = await client.get("/metrics")  # the read still going: no second one behind it, served as fast
        assert again.status == 200
    finally:
        os.kill(own_redis.process.pid, signal.SIGCONT)
    assert (await client.get("/metrics")).status == 200
    assert not metrics.outages.waiting()


class _SlowBug:
    """The real store, except that once armed the queue's read (``waiting_page``; ``waiting`` until 2026-12-07,
    when ``/metrics`` read every entry) waits for :attr:`go_on`, then fails with a bug (not the store's failure)."""

    def __init__(self, store: object) -> None:
        self._store, self.armed, self.go_on = store, False, asyncio.Event()

    def __getattr__(self, name: str) -> object:
        found = getattr(self._store, name)
        if name != "waiting_page" or not self.armed:
            return found

        async def waiting_page(limit: int) -> object:
            await self.go_on.wait()
            raise RuntimeError("a bug in the queue's read")

        return waiting_page


async def test_a_queue_read_a_bug_ends_after_its_scrape_is_told_by_class(
    make_client: AppFactory, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """A scrape waits ``METRICS_READ_SECONDS`` for the queue's read, which goes on without it; a bug ending that read
    later is logged by class and place at once (never silent), not left to asyncio's "never retrieved"."""

    store = _SlowBug(await open_store(settings.store, keys=DataKeys.from_settings(settings)))
    client = await make_client(settings, store=store)
    assert (await client.get("/metrics")).status == 200
    store.armed = True
    assert (await client.get("/metrics")).status == 200  # served past the wait, the read still going
    with caplog.at_level(logging.ERROR, logger="gateway.app"):
        store.go_on.set()
        for _ in range(400):
            if any("RuntimeError" in r.getMessage() for r in caplog.records):
                break
            await asyncio.sleep(0.025)
    lines = [r.getMessage() for r in caplog.records if r.name == "gateway.app"]
    assert any("queue's read failed: RuntimeError at" in line for line in lines), lines
    assert not any("a bug in the queue's read" in line for line in lines)  # the class and place, never the text
