"""What the channel end-to-end tests share: a clock that runs, a loopback guard, and a listener driving the API.

The clock starts on a Tuesday at 14:00 in Paris (the line is open) and runs in real time, so the outbox's
backoff delays (tens of milliseconds, from Settings) elapse by themselves; nothing here sleeps for a fixed time,
every wait polls a condition with a generous timeout.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from gateway.app import DISPATCHER, STORE, create_app
from gateway.clock import Aligned
from gateway.settings import Settings
from gateway.store import Listener
from tests.conftest import PARIS, PASSWORD, loopback_only, model_loaded, password_hash, shared_understanding

T = TypeVar("T")
Client = TestClient[web.Request, web.Application]

TIMEOUT = 20.0


@dataclass
class RunningClock:
    """``start`` plus the real time elapsed since the clock was made, plus what ``advance`` added."""

    start: datetime = field(default_factory=lambda: datetime(2026, 3, 10, 14, 0, tzinfo=PARIS).astimezone(UTC))
    offset: timedelta = timedelta(0)
    _origin: float = field(default_factory=time.monotonic)

    def __call__(self) -> datetime:
        return self.start + self.offset + timedelta(seconds=time.monotonic() - self._origin)

    def advance(self, **delta: float) -> None:
        self.offset += timedelta(**delta)


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail any test whose code connects anywhere but loopback (the fake providers listen on 127.0.0.1)."""
    with loopback_only(monkeypatch):
        yield


GatewayFactory = Callable[[Settings], Awaitable[Client]]


@pytest.fixture
def gateway(aiohttp_client: Callable[..., Awaitable[Client]], offline: None) -> GatewayFactory:
    """Start the real app (create_app, real store, real workers) on the aiohttp test server."""

    async def start(settings: Settings) -> Client:
        app = await create_app(
            settings, clock=RunningClock(), worker_poll_seconds=0.05, **shared_understanding(settings)
        )
        client = await aiohttp_client(app)
        await model_loaded(client)
        await client.app[STORE].add_listener(Listener("anne", password_hash(), capacity=3, supervisor=True))
        # a supervisor: the tests read conversations still in the bot, which only supervisors see
        return client

    return start


async def eventually(check: Callable[[], Awaitable[T | None]], timeout: float = TIMEOUT) -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds with the last value."""
    deadline = time.monotonic() + timeout
    value = await check()
    while not value:
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last value: {value!r})")
        await asyncio.sleep(0.05)
        value = await check()
    return value


def running_clock(client: Client) -> RunningClock:
    """The clock the app was made with (``gateway`` gives it a :class:`RunningClock`), to move time forward."""
    clock = client.app[DISPATCHER].clock
    if isinstance(clock, Aligned):  # on Redis, since 2026-12-07, the app's clock set on Redis's TIME wraps it (a test's
        clock = clock.local  # clock months off the real time: not followed, the test's own clock read as it is)
    assert isinstance(clock, RunningClock)
    return clock


async def timer_rearmed(client: Client, conversation_id: str, kind: str) -> bool:
    """Whether the conversation's ``kind`` timer is due later than now: it fired since the clock last moved."""
    now = running_clock(client)()
    timers = await client.app[STORE].due_timers(now + timedelta(days=30))
    return any(t.conversation_id == conversation_id and t.kind == kind and t.due_at > now for t in timers)


class ListenerDesk:
    """A listener using the HTTP API: ``/api/session``, the queue, take, reply, the conversation."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def login(self, name: str = "anne") -> None:
        response = await self.client.post("/api/session", json={"name": name, "password": PASSWORD})
        assert response.status == 200, await response.text()

    async def waiting(self) -> list[dict[str, Any]]:
        response = await self.client.get("/api/queue")
        assert response.status == 200
        waiting: list[dict[str, Any]] = (await response.json())["waiting"]
        return waiting

    async def first_waiting(self) -> dict[str, Any]:
        async def found() -> dict[str, Any] | None:
            waiting = await self.waiting()
            return waiting[0] if waiting else None

        return await eventually(found)

    async def take(self, conversation_id: str) -> None:
        response = await self.client.post(f"/api/conversations/{conversation_id}/take", json={})
        assert response.status == 200, await response.text()

    async def reply(self, conversation_id: str, text: str) -> dict[str, Any]:
        response = await self.client.post(f"/api/conversations/{conversation_id}/messages", json={"text": text})
        assert response.status == 201, await response.text()
        entry: dict[str, Any] = await response.json()
        return entry

    async def conversation(self, conversation_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/api/conversations/{conversation_id}")
        assert response.status == 200, await response.text()
        detail: dict[str, Any] = await response.json()
        return detail

    async def young_persons_words(self, conversation_id: str) -> list[tuple[str, list[str]]]:
        """The young person's entries as the console shows them: (text, the kinds of its attachments)."""
        transcript = (await self.conversation(conversation_id))["transcript"]
        return [(e["text"], [a["kind"] for a in e["attachments"]]) for e in transcript if e["author"] == "user"]

    async def delivery_of(self, conversation_id: str, entry_id: str, wanted: str) -> dict[str, Any]:
        """Wait until the transcript entry ``entry_id`` shows the delivery status ``wanted``."""

        async def reached() -> dict[str, Any] | None:
            for entry in (await self.conversation(conversation_id))["transcript"]:
                if entry["id"] == entry_id and entry["delivery"] == wanted:
                    return entry  # type: ignore[no-any-return]
            return None

        return await eventually(reached)

    async def system_entries(self, conversation_id: str, containing: str = "") -> list[dict[str, Any]]:
        """The conversation's system entries (for listeners only) whose text contains ``containing``."""
        transcript = (await self.conversation(conversation_id))["transcript"]
        return [e for e in transcript if e["author"] == "system" and containing in e["text"]]

    async def all_sent(self, conversation_id: str) -> list[dict[str, Any]]:
        """Wait until no outgoing entry is pending any more; return the outgoing entries (bot and listener)."""

        async def settled() -> list[dict[str, Any]] | None:
            transcript = (await self.conversation(conversation_id))["transcript"]
            outgoing = [e for e in transcript if e["author"] in ("bot", "listener")]
            return outgoing if all(e["delivery"] != "pending" for e in outgoing) else None

        return await eventually(settled)
