"""What an operator sees when ``gateway serve`` cannot open its Redis at start-up (``gateway/store/waiting.py``).

Against real servers: a redis-server with ``requirepass`` given a wrong password or none, a port nobody listens
on (then a redis-server started on it), a host name that cannot resolve (``nowhere.invalid``, RFC 6761). Each is
logged by its reason's class with the host and port, never the password; once, then reminders further and further
apart, never a line per try. A refused port is waited for as long as it takes; a refused password or a name that
does not resolve stops the start-up after ``GATEWAY_STORE_START_GIVE_UP_SECONDS``, saying why. Every wait is on a
condition (a process's exit, a log line, a task's end).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from gateway.errors import ConfigError
from gateway.store.waiting import Reason, _Waiting, open_store_waiting
from gateway.testing import store_keys
from tests.store.conftest import _free_port, _redis_server
from tests.test_redis_restart import OwnRedis
from tests.test_serve import Server

pytestmark = pytest.mark.redis

PASSWORD = "Right-horse-battery-9"
WRONG = "Zebra-wrong-pa55"
UNREACHABLE = "store unreachable at start-up"


@pytest.fixture
def guarded_redis(tmp_path: Path) -> Iterator[int]:
    """A real redis-server that requires ``PASSWORD``; its port."""
    (tmp_path / "redis").mkdir()
    process, port = _redis_server(tmp_path / "redis")
    with redis.Redis(port=port) as client:
        client.config_set("requirepass", PASSWORD)
    try:
        yield port
    finally:
        process.terminate()
        process.wait(timeout=60)


async def stopped(server: Server, settings: dict[str, str]) -> str:
    """``gateway serve`` with ``settings``, until it exits (status 1): its log."""
    server.env.update(settings)
    server.start()
    assert server.process is not None
    status = await asyncio.to_thread(server.process.wait, 120)
    log = server.log.read_text()
    assert status == 1, log
    return log


def lines(log: str, fragment: str) -> list[str]:
    return [line for line in log.splitlines() if fragment in line]


@pytest.mark.parametrize("given", [WRONG, ""], ids=["wrong password", "no password"])
async def test_a_refused_password_is_logged_by_class_without_the_password_and_stops_the_start_up(
    tmp_path: Path, guarded_redis: int, given: str
) -> None:
    auth = f":{given}@" if given else ""
    log = await stopped(Server(tmp_path), {
        "GATEWAY_STORE": f"redis://{auth}127.0.0.1:{guarded_redis}/0", "GATEWAY_STORE_START_GIVE_UP_SECONDS": "2",
    })  # fmt: skip
    [warning] = lines(log, UNREACHABLE)  # once, not once per try
    assert f"redis 127.0.0.1:{guarded_redis}: the password was refused (AuthenticationError)" in warning
    [error] = lines(log, "gateway: the store at")
    assert "the password was refused" in error and "GATEWAY_STORE" in error
    assert WRONG not in log and PASSWORD not in log
    assert "RecursionError" not in log and "maximum recursion" not in log  # the pool reconnected in a loop before


async def test_a_host_name_that_does_not_resolve_is_named_and_stops_the_start_up(tmp_path: Path) -> None:
    log = await stopped(Server(tmp_path), {
        "GATEWAY_STORE": f"redis://user:{WRONG}@nowhere.invalid:6390/0", "GATEWAY_STORE_START_GIVE_UP_SECONDS": "2",
    })  # fmt: skip
    [warning] = lines(log, UNREACHABLE)
    assert "redis nowhere.invalid:6390: the host name does not resolve (gaierror)" in warning
    assert lines(log, "gateway: the store at redis nowhere.invalid:6390")
    assert WRONG not in log and "user" not in log


async def test_a_port_nobody_listens_on_is_waited_for_with_reminders_further_apart_until_redis_is_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.store")
    redis_server = OwnRedis(tmp_path)  # its port chosen, nothing listening on it yet
    url = redis_server.url.replace("redis://", f"redis://:{WRONG}@")  # a password in the URL is never logged
    opening = asyncio.create_task(open_store_waiting(
        url, keys=store_keys(url), give_up_after=0.2, reminder=0.2, delays=(0.01, 0.05),
    ))  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not any(_tries(r.getMessage()) >= 40 for r in caplog.records):  # tries, not seconds: a busy machine
            assert not opening.done(), opening  # a refused port is an outage: never given up (give_up_after 0.2 s)
            assert time.monotonic() < deadline, caplog.text
            await asyncio.sleep(0.05)
        redis_server.start()
        store = await asyncio.wait_for(opening, 60)
        await store.close()
    finally:
        opening.cancel()
        redis_server.stop()
    messages = [r.getMessage() for r in caplog.records if r.name == "gateway.store"]
    assert WRONG not in caplog.text
    where = f"redis 127.0.0.1:{redis_server.port}"
    assert messages[0] == f"{UNREACHABLE}: {where}: the connection was refused (ConnectionRefusedError): nothing " \
        "listens there yet; waiting for it, trying again every 0.05 s at most"  # fmt: skip
    reminders = [m for m in messages if m.startswith("store still unreachable")]
    assert reminders and all(where in m for m in reminders)
    tries = [_tries(m) for m in reminders]
    assert len(reminders) >= 3 and tries[-1] > 4 * len(reminders), messages  # far fewer lines than tries
    between = [b - a for a, b in itertools.pairwise(tries)]
    assert between[-1] > between[0], messages  # the reminders further and further apart
    assert re.fullmatch(rf"store reached at start-up after \d+ s \(\d+ tries\): {where}", messages[-1])
    assert len(messages) == 1 + len(reminders) + 1


def _tries(message: str) -> int:
    found = re.search(r"\((\d+) tries\)", message)
    return int(found.group(1)) if found else 0


async def test_a_password_refused_then_given_up_in_process_says_why_and_since_when(guarded_redis: int) -> None:
    url = f"redis://:{WRONG}@127.0.0.1:{guarded_redis}/0"
    with pytest.raises(ConfigError) as stopped_by:
        await asyncio.wait_for(
            open_store_waiting(url, keys=store_keys(url), give_up_after=0.3, delays=(0.01, 0.05)), 60
        )
    message = str(stopped_by.value)
    assert f"redis 127.0.0.1:{guarded_redis}" in message and "the password was refused" in message
    assert WRONG not in message


def test_two_reasons_that_alternate_are_said_once_each_then_only_in_reminders(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A Redis that refuses one try and times out the next (a failover, a flaky network path) gave a line a try:
    a reason already said in this wait waits for the reminder, which names the latest."""
    caplog.set_level(logging.INFO, logger="gateway.store")
    refused, late = Reason("the connection was refused (ConnectionRefusedError)"), Reason("no answer (TimeoutError)")
    waiting = _Waiting("redis 10.0.0.5:6379", started=0.0, reminder=60.0, longest=10.0)
    for second in range(100):  # a try a second for 100 s: the reasons alternating
        waiting.failed(refused if second % 2 else late, float(second))
    messages = [r.getMessage() for r in caplog.records]
    assert [late.text in messages[0], refused.text in messages[1]] == [True, True], messages
    assert len(messages) == 3, messages  # both reasons once, then the reminder a minute on: was 100 lines
    assert messages[2].startswith("store still unreachable at start-up after 61 s (62 tries)"), messages


async def test_sentinels_that_name_no_primary_are_waited_for_and_named_without_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``redis+sentinel://`` with no Sentinel answering (all down, or a failover under way: no primary to name):
    an outage, waited for; the line names the service and the Sentinels, never the password. The host and port of
    a ``redis://`` URL were read from it before, which a list of Sentinels is not."""
    caplog.set_level(logging.INFO, logger="gateway.store")
    first, second = _free_port(), _free_port()
    url = f"redis+sentinel://:{WRONG}@127.0.0.1:{first},127.0.0.1:{second}/helpline?db=0&sentinel_password={WRONG}"
    opening = asyncio.create_task(open_store_waiting(
        url, keys=store_keys(url), give_up_after=0.2, reminder=0.2, delays=(0.01, 0.05),
    ))  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not any(_tries(r.getMessage()) >= 10 for r in caplog.records):
            assert not opening.done(), opening  # an outage: never given up (give_up_after 0.2 s)
            assert time.monotonic() < deadline, caplog.text
            await asyncio.sleep(0.05)
    finally:
        opening.cancel()
    messages = [r.getMessage() for r in caplog.records if r.name == "gateway.store"]
    assert messages[0] == (
        f"{UNREACHABLE}: redis+sentinel service helpline via 127.0.0.1:{first},127.0.0.1:{second}: no Sentinel "
        "named a primary that is up (MasterNotFoundError): a failover under way, or no Sentinel reached monitors "
        "this service name; waiting for it, trying again every 0.05 s at most"
    )
    assert WRONG not in caplog.text
