"""Fixtures shared by the server tests: a controllable clock, settings on a temporary store, the real app."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from argon2 import PasswordHasher
from hypothesis import settings as hypothesis_settings

from gateway.app import OUTBOX, READER, STORE, create_app
from gateway.settings import Settings
from gateway.store import Listener, Store, open_store
from gateway.testing import ACCOUNT_SID, DATA_KEY, SECRET_KEY, FakeGraphAPI, FakeTelegramAPI, FakeTwilioAPI
from gateway.understanding import Model, load_model

os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")


def pytest_configure(config: pytest.Config) -> None:
    """Hypothesis's default deadline (200 ms an example) is a time bound no property here means to prove: on a loaded
    machine a single example waits that long for a core, or for the disk (``tests/store/test_redis_pool.py`` failed
    so once), and the test fails as "Unreliable test timings" although every answer was right. Loaded before the
    test modules are collected, so an ``@settings`` naming no deadline inherits None too; a test meaning a time
    bound asserts it in its own body."""
    hypothesis_settings.register_profile("suite", deadline=None)
    hypothesis_settings.load_profile("suite")


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Callable[[], Any]]:
    """Every async test runs on uvloop, the loop ``gateway serve`` runs on (``cli._event_loop_factory``). On
    asyncio's loop, which the suite ran on until 2026-12-02, two of production's faults never showed: a write to a
    Redis connection closed meanwhile raised uvloop's RuntimeError through the store (seen only in the chaos soak),
    and the outage log took an answer and a failure in one loop turn (uvloop's time moves once a turn) for
    ordered the wrong way. Windows, where uvloop does not exist, is not a platform the gateway serves on."""
    import uvloop

    return {"uvloop": uvloop.new_event_loop}


ROOT = Path(__file__).resolve().parents[1]
PARIS = ZoneInfo("Europe/Paris")
PASSWORD = "correct horse battery"


@dataclass
class Clock:
    """Time under the test's control: ``clock.now`` is what the app sees; ``advance`` moves it. ``monotonic`` is a
    monotonic clock moving with ``advance`` (time the machine ran), not with ``jump`` (a suspended machine resumed, a
    clock stepped)."""

    now: datetime
    jumped: timedelta = timedelta()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)

    def jump(self, **delta: float) -> None:
        self.now += timedelta(**delta)
        self.jumped += timedelta(**delta)

    def monotonic(self) -> float:
        return (self.now - self.jumped).timestamp()


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 3, 10, 14, 0, tzinfo=PARIS).astimezone(UTC))  # the line is open


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[Store]:
    """The embedded default store on a file of the test's own, closed after it."""
    opened = await open_store(f"sqlite:///{tmp_path}/gateway.sqlite3")
    yield opened
    await opened.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        store=f"sqlite:///{tmp_path}/gateway.sqlite3",
        flows=str(ROOT / "flows.yaml"),
        public_url="http://127.0.0.1:8080",
        secret_key=SECRET_KEY,
        data_key=DATA_KEY,
        outbox_base_delay=0.05,
        # the model's reading waited for as long as a busy test machine needs: a reading late (the production 0.5 s)
        # lets a message past the flood limit go on unread (``Gate``), which a test of the flood's refusals does not
        # expect; the tests of a late model set their own timeout (and model)
        understanding_timeout=10.0,
    )


@functools.cache
def shipped_model() -> Model:
    """The shipped model, loaded once for the whole run and shared by the apps ``make_client`` builds (each app's
    Reader loads it in its own thread, as the default does): loading it for each app cost each test seconds of CPU
    and kept a copy per app alive. Apps share it read-only (ONNX Runtime's ``run`` is thread-safe)."""
    return load_model()


def shared_understanding(settings: Settings) -> dict[str, Callable[[], Model]]:
    """``create_app``'s option for an app whose settings ask for the shipped model: :func:`shipped_model`."""
    on = settings.understanding == "on" and settings.understanding_engine == "onnx"
    return {"understanding": shipped_model} if on else {}


async def model_loaded(client: TestClient[web.Request, web.Application] | TestServer) -> None:
    """Wait until the app's reader has the shared model (its load, in a thread, takes a moment after start-up): a
    message read while it is loading goes past the flood limit or a full network's cap unread (``Gate``), which the
    tests of those refusals do not expect. The tests of a model loading pass their own (``understanding=``)."""
    reader = client.app.get(READER)
    deadline = time.monotonic() + 120
    while reader is not None and reader.status == "loading":
        assert time.monotonic() < deadline, "the shared model never loaded"
        await asyncio.sleep(0.01)


AppFactory = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


@pytest.fixture
async def make_client(
    aiohttp_client: Callable[..., Awaitable[TestClient[web.Request, web.Application]]], clock: Clock
) -> AsyncIterator[AppFactory]:
    async def make(settings: Settings, **options: Any) -> TestClient[web.Request, web.Application]:
        shared = "understanding" not in options
        options = {**shared_understanding(settings), **options}
        app = await create_app(settings, clock=clock, **{"worker_poll_seconds": 0.05, **options})
        client = await aiohttp_client(app)
        if shared:
            await model_loaded(client)
        return client

    yield make


@pytest.fixture
async def client(make_client: AppFactory, settings: Settings) -> TestClient[web.Request, web.Application]:
    return await make_client(settings)


@functools.cache
def password_hash() -> str:
    """:data:`PASSWORD`'s argon2 hash as the tests' stores hold it: made once, with argon2's cheapest parameters. The
    console verifies a hash by the parameters written in it, so a test's login costs a millisecond, not the 0.1-0.4 s
    of argon2-cffi's defaults that ``gateway/console/auth.py`` keeps for real accounts (``tests/console/test_auth.py``
    and ``test_logins.py`` hash and verify with those): until 2026-12-07 each test adding a listener paid one hash
    and each login one verification at full cost, a tenth of some files' time."""
    return PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)


async def add_listener(client: TestClient[web.Request, web.Application], name: str, supervisor: bool = False) -> None:
    store = client.app[STORE]
    await store.add_listener(Listener(name, password_hash(), supervisor=supervisor, capacity=3))


async def login(client: TestClient[web.Request, web.Application], name: str) -> None:
    response = await client.post("/api/session", json={"name": name, "password": PASSWORD})
    assert response.status == 200, await response.text()


async def outbox_drained(client: TestClient[web.Request, web.Application], timeout: float = 20.0) -> None:
    """Instead of sleeping "to let a stray duplicate show up": wait until nothing is pending in the outbox (every
    item recorded sent or failed, never handed out again), then drive it once more: nothing is left to send."""
    store, deadline = client.app[STORE], time.monotonic() + timeout
    while await store.outbox_oldest_pending() is not None:
        assert time.monotonic() < deadline, "the outbox never drained"
        await asyncio.sleep(0.05)
    assert await client.app[OUTBOX].deliver_due() == 0


@contextlib.contextmanager
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Inside, any connection anywhere but loopback fails the test (the fakes all listen on 127.0.0.1)."""
    connect = socket.socket.connect

    def connect_loopback(sock: socket.socket, address: Any) -> Any:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not ipaddress.ip_address(address[0]).is_loopback:
            raise AssertionError(f"a test tried to reach {address[0]}")
        return connect(sock, address)

    with monkeypatch.context() as patch:
        patch.setattr(socket.socket, "connect", connect_loopback)
        yield


# The fake provider APIs (real HTTP servers on 127.0.0.1), one each per test that asks for it.

TWILIO_TOKEN = "twilio-auth-token"  # the fake Twilio's auth token: what the tests sign webhooks with


@pytest.fixture
async def graph() -> AsyncIterator[FakeGraphAPI]:
    async with FakeGraphAPI() as fake:
        yield fake


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegramAPI]:
    async with FakeTelegramAPI() as fake:
        yield fake


@pytest.fixture
async def twilio() -> AsyncIterator[FakeTwilioAPI]:
    async with FakeTwilioAPI(ACCOUNT_SID, TWILIO_TOKEN) as fake:
        yield fake
