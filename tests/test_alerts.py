"""Alert-worthy states: a message waiting too long in the outbox, a store that does not answer. Each shows in a
metric and in one log line when it starts, one when it ends."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from pathlib import Path

import pytest

from gateway.alerts import Watch
from gateway.console.presence import Presence
from gateway.conversation import Status
from gateway.messages import ChannelName
from gateway.metrics import Metrics
from gateway.store import OutboxItem, open_store
from gateway.testing import store_keys
from tests.conftest import Clock
from tests.test_redis_restart import OwnRedis, own_redis

__all__ = ["own_redis"]  # fixture used below


def sample(metrics: Metrics, name: str) -> float | None:
    return metrics.registry.get_sample_value(name)


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
async def test_a_message_waiting_too_long_in_the_outbox(
    kind: str, tmp_path: Path, clock: Clock, caplog: pytest.LogCaptureFixture, request: pytest.FixtureRequest
) -> None:
    """Fires, then clears once the reply is sent (on Redis, read from the set of pending items by creation)."""
    caplog.set_level(logging.INFO, logger="gateway.alerts")
    url = f"sqlite:///{tmp_path}/g.sqlite3" if kind == "sqlite" else request.getfixturevalue("own_redis").url
    store, metrics = await open_store(url, keys=store_keys(url)), Metrics()
    watch = Watch(store, metrics, clock=clock, outbox_alert_seconds=60)
    try:
        await store.outbox_put(OutboxItem("o1", "c1", {"text": "Tu n'es pas seul"}, clock()))
        clock.advance(seconds=30)
        await watch.check()
        assert sample(metrics, "gateway_outbox_oldest_pending_seconds") == 30
        assert not caplog.records
        clock.advance(seconds=45)
        await watch.check()
        await watch.check()
        assert sample(metrics, "gateway_outbox_oldest_pending_seconds") == 75
        [line] = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert "75 s in the outbox" in line.getMessage() and "seul" not in line.getMessage()
        await store.outbox_due(clock(), 10)
        await store.outbox_mark_sent("c1", "o1", None)
        await watch.check()
        assert sample(metrics, "gateway_outbox_oldest_pending_seconds") == 0
        assert "alert over" in caplog.records[-1].getMessage()
    finally:
        await store.close()


@pytest.mark.redis
async def test_an_unreachable_store(own_redis: OwnRedis, clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    """Said once when it has lasted two seconds, once when it ends (by gateway/outage_log.py, with every other
    part's failures: ``alert over`` once no failure followed the store's answer for two seconds)."""
    caplog.set_level(logging.INFO, logger="gateway")
    store, metrics = await open_store(own_redis.url, keys=store_keys(own_redis.url)), Metrics()
    watch = Watch(store, metrics, clock=clock, outbox_alert_seconds=60)
    try:
        await watch.check()
        assert sample(metrics, "gateway_store_up") == 1
        own_redis.stop()
        await watch.check()
        await watch.check()
        assert sample(metrics, "gateway_store_up") == 0
        async with asyncio.timeout(30):  # said once it lasted two seconds, however many checks failed meanwhile
            while not [r for r in caplog.records if r.levelno == logging.ERROR]:
                await asyncio.sleep(0.05)
        await watch.check()
        [line] = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert "the store is unreachable" in line.getMessage()
        own_redis.start()
        await watch.check()
        assert sample(metrics, "gateway_store_up") == 1
        async with asyncio.timeout(30):  # a safety net against a hang, not a timing assumption
            while "alert over" not in caplog.records[-1].getMessage():
                await asyncio.sleep(0.05)
    finally:
        await store.close()


def test_the_threshold_is_a_setting() -> None:
    from gateway.errors import ConfigError
    from gateway.settings import Settings

    assert Settings.from_env({"GATEWAY_OUTBOX_ALERT_SECONDS": "120"}, env_file=None).outbox_alert_seconds == 120
    with pytest.raises(ConfigError, match="GATEWAY_OUTBOX_ALERT_SECONDS"):
        Settings.from_env({"GATEWAY_OUTBOX_ALERT_SECONDS": "0"}, env_file=None)
    assert timedelta(seconds=Settings().outbox_alert_seconds) == timedelta(minutes=1)


async def test_each_instance_says_a_shared_alert_once_per_incident(
    tmp_path: Path, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """docs/deployment.md, "Why every instance says its alerts": N instances' watches on one store give one line
    each when the incident starts and one when it ends (2 × N), however many checks run meanwhile, each line
    starting with the fixed text an alert matches on."""
    caplog.set_level(logging.INFO, logger="gateway.alerts")
    url = f"sqlite:///{tmp_path}/g.sqlite3"
    store = await open_store(url, keys=store_keys(url))
    watches = [Watch(store, Metrics(), clock=clock, outbox_alert_seconds=60) for _ in range(3)]
    try:
        await store.outbox_put(OutboxItem("o1", "c1", {"text": "Tu n'es pas seul"}, clock()))
        clock.advance(seconds=90)
        for _ in range(4):
            for watch in watches:
                await watch.check()
        await store.outbox_due(clock(), 10)
        await store.outbox_mark_sent("c1", "o1", None)
        for _ in range(4):
            for watch in watches:
                await watch.check()
    finally:
        await store.close()
    lines = [r.getMessage() for r in caplog.records]
    assert [line.split(" s ")[0] for line in lines[:3]] == ["alert: a message has waited 90"] * 3
    assert [line.startswith("alert over: ") for line in lines[3:]] == [True] * 3


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
async def test_a_conversation_held_by_a_listener_away_from_the_console(
    kind: str, tmp_path: Path, clock: Clock, caplog: pytest.LogCaptureFixture, request: pytest.FixtureRequest
) -> None:
    """A listener's browser closed or laptop gone flat (no logout: that gives their conversations back): the young
    person waits with nobody able to answer. Counted once the listener has had no console open for
    ``held_alert_seconds``, said in one line with no name or id, over once they are back."""
    caplog.set_level(logging.INFO, logger="gateway.alerts")
    url = f"sqlite:///{tmp_path}/g.sqlite3" if kind == "sqlite" else request.getfixturevalue("own_redis").url
    store, metrics, presence = await open_store(url, keys=store_keys(url)), Metrics(), Presence()
    watch = Watch(store, metrics, clock=clock, outbox_alert_seconds=60, listener_present=presence.has,
                  held_alert_seconds=300)  # fmt: skip
    try:
        conversation, _ = await store.active_conversation(ChannelName.MESSENGER, "psid-held", clock())
        conversation.status, conversation.listener = Status.WITH_LISTENER, "anne"
        await store.save_conversation(conversation)
        presence.connections["anne"] += 1  # her console open
        await watch.check()
        presence.connections["anne"] -= 1  # closed without logging out
        await watch.check()
        clock.advance(seconds=299)
        await watch.check()
        assert sample(metrics, "gateway_held_by_absent_listener") == 0 and not caplog.records
        clock.advance(seconds=2)
        await watch.check()
        await watch.check()
        assert sample(metrics, "gateway_held_by_absent_listener") == 1
        [line] = [r.getMessage() for r in caplog.records]
        assert line.startswith("alert: 1 conversation(s) held by a listener with no console open for 300 s"), line
        assert "anne" not in line and conversation.id not in line
        presence.connections["anne"] += 1  # back
        await watch.check()
        assert sample(metrics, "gateway_held_by_absent_listener") == 0
        assert caplog.records[-1].getMessage().startswith("alert over: no conversation is held by a listener away")
        presence.connections["anne"] -= 1
        clock.advance(seconds=299)
        await watch.check()  # a new absence counts from when it began
        assert sample(metrics, "gateway_held_by_absent_listener") == 0
    finally:
        await store.close()
