"""Key rotation on Redis checks which key the running instances seal with (``gateway/sealing.py``): the real command
(``gateway data-key rotate``), real app instances on the session's real Redis.

Until 2026-12-07 step 3 of the rotation (docs/deployment.md: every instance restarted on the new key K2 first) was
a human step nothing checked. The command passed again until a pass resealed nothing, but an instance still sealing
with K1 that wrote after that last pass was not seen: the command said "every record is sealed with data key K2",
the operator removed K1, and that record never opened again. Now every instance says which key it seals with; the
command refuses while a live one seals with another key, before its first pass and again after its last.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.cli import StoreOpener, _data_key_rotate
from gateway.crypto import DataKeys, key_id, new_key, parse_key
from gateway.doctor import Level, instances_sealing
from gateway.errors import DataKeyError
from gateway.sealing import ADVERT_LIVE_SECONDS, Advert
from gateway.settings import Settings
from gateway.store import HasTime, SealingStore, Store, open_store
from gateway.testing import DATA_KEY, SECRET_KEY
from tests.conftest import Clock
from tests.store.conftest import emptied
from tests.store.test_reseal import PHONE, WA, gateway
from tests.store.test_reseal_old_writer import env, rotate, with_a_conversation

pytestmark = pytest.mark.redis

Client = TestClient[web.Request, web.Application]
K1_ID = key_id(parse_key(DATA_KEY, "test"))


def keys(url: str, current: str, *old: str) -> DataKeys:
    return DataKeys.from_settings(
        Settings(store=url, data_key=current, data_keys_old=",".join(old), secret_key=SECRET_KEY)
    )


@pytest.fixture
async def instance(
    aiohttp_client: Callable[..., Awaitable[Client]], settings: Settings, redis_url: str
) -> AsyncIterator[Callable[..., Awaitable[Client]]]:
    """A gateway instance on the session's Redis, on the real clock (Redis's time), sealing with ``data_key``."""

    async def make(data_key: str, *old: str) -> Client:
        on = settings.replace(store=redis_url, understanding="off", data_key=data_key, data_keys_old=",".join(old))
        return await aiohttp_client(await create_app(on, worker_poll_seconds=0.05))

    yield make


async def test_the_rotation_is_refused_while_an_instance_seals_with_the_old_key_and_done_once_it_stopped(
    redis_url: str, settings: Settings, tmp_path: Path, instance: Callable[..., Awaitable[Client]]
) -> None:
    url = emptied(redis_url)
    await with_a_conversation(url, keys(url, DATA_KEY))
    k2 = new_key()
    k2_id = key_id(parse_key(k2, "test"))
    old = await instance(DATA_KEY, k2)  # step 2 done, step 3 not yet on this one
    restarted = await instance(k2, DATA_KEY)

    ready = await (await restarted.get("/readyz")).json()
    assert ready["data_keys_sealing"] == {K1_ID: 1, k2_id: 1}, ready  # shown: a rolling restart under way
    assert ready["ready"], ready  # not a failure
    doctor = await instances_sealing(settings.replace(store=url, data_key=k2, data_keys_old=DATA_KEY))
    assert doctor is not None and doctor.level == Level.WARNING, doctor
    assert f"1 with data key {K1_ID}" in doctor.text and f"1 with data key {k2_id}" in doctor.text, doctor

    command = {"GATEWAY_STORE": url, "GATEWAY_DATA_KEY": k2, "GATEWAY_DATA_KEYS_OLD": DATA_KEY,
               "GATEWAY_SECRET_KEY": SECRET_KEY}  # fmt: skip
    code, out, err = await gateway(tmp_path, "data-key", "rotate", **command)
    assert code == 1, out + err  # before: 0, "every record is sealed with data key K2", K1 still in use
    assert "every record is sealed with" not in out + err, out + err
    assert f"1 running instance seals with another key than data key {k2_id}: data key {K1_ID} (1)" in err, err
    assert "nothing resealed" in err and "run `gateway data-key rotate` again" in err, err
    store = await open_store(url, keys=keys(url, k2))
    try:  # no pass was made: the conversation is still under K1
        with pytest.raises(DataKeyError):
            await store.find_active_conversation(WA, PHONE)
    finally:
        await store.close()

    await old.close()  # stopped (or restarted on K2): its advert leaves with it
    code, out, err = await gateway(tmp_path, "data-key", "rotate", **command)
    assert code == 0, out + err
    assert f"every record is sealed with data key {k2_id}" in out and "1 conversation" in out, out
    doctor = await instances_sealing(settings.replace(store=url, data_key=k2))
    assert doctor is not None and doctor.level == Level.OK and f"1 with data key {k2_id}" in doctor.text, doctor


class StoreTime:
    """The command's real store, its time (Redis's ``TIME``) read on the test's clock instead."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self._store, self._clock = store, clock

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def server_time(self) -> Any:
        return self._clock()


def on_clock(clock: Clock) -> StoreOpener:
    async def opening(url: str, **kwargs: Any) -> Store:
        return StoreTime(await open_store(url, **kwargs), clock)  # type: ignore[return-value]

    return opening


async def test_an_instance_killed_is_forgotten_once_its_advert_is_older_than_its_live_time(
    redis_url: str, clock: Clock, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = emptied(redis_url)
    k2 = new_key()
    env(monkeypatch, url, k2)
    killed = await open_store(url, keys=keys(url, DATA_KEY))
    try:
        assert isinstance(killed, SealingStore)  # its time, as the command's, on the test's clock
        await Advert(StoreTime(killed, clock), K1_ID, clock).once()  # then killed: never forgotten by itself
    finally:
        await killed.close()

    clock.advance(seconds=ADVERT_LIVE_SECONDS - 1)
    code, out = await rotate(capsys, on_clock(clock))
    assert code == 1 and f"data key {K1_ID} (1)" in out, out
    clock.advance(seconds=2)
    code, out = await rotate(capsys, on_clock(clock))
    assert code == 0 and "every record is sealed" in out, out


class OldInstanceStartsDuringThePasses:
    """The command's real store; right after its first pass, an instance on the old key starts (its advert said,
    as ``create_app`` says it before serving) and writes nothing while the passes go on: only afterwards."""

    def __init__(self, store: Store, old: Store, at: datetime) -> None:
        self._store, self._old, self._at = store, old, at
        self.passes = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def reseal(self) -> dict[str, int]:
        counts = await self._store.reseal()
        self.passes += 1
        if self.passes == 1:
            assert isinstance(self._old, SealingStore)
            await Advert(self._old, K1_ID, lambda: self._at).once()
        return counts

    async def close(self) -> None:
        await self._old.close()
        await self._store.close()


async def test_an_instance_on_the_old_key_started_during_the_passes_is_seen_after_the_last(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = emptied(redis_url)
    await with_a_conversation(url, keys(url, DATA_KEY))
    k2 = new_key()
    k2_id = key_id(parse_key(k2, "test"))
    env(monkeypatch, url, k2)
    opened: list[OldInstanceStartsDuringThePasses] = []

    async def opening(url: str, **kwargs: Any) -> Store:
        store = await open_store(url, **kwargs)
        assert isinstance(store, HasTime)
        old = await open_store(url, keys=keys(url, DATA_KEY))
        opened.append(OldInstanceStartsDuringThePasses(store, old, await store.server_time()))
        wrapped = opened[-1]
        return wrapped  # type: ignore[return-value]

    code = await asyncio.to_thread(_data_key_rotate, argparse.Namespace(), opening)
    out = capsys.readouterr()
    said = out.out + out.err
    assert opened[0].passes == 2, said  # 1: the conversation resealed; 2: nothing found
    assert code == 1, said  # before: 0, "every record is sealed with data key K2", an instance still on K1
    assert "every record is sealed with" not in out.out and not out.out.strip(), said  # nothing said done
    assert "after 2 passes (resealed: 1 conversation" in said, said
    assert f"NOT every record is sealed with data key {k2_id}" in said, said
    assert f"data key {K1_ID} (1)" in said, said

    store = await open_store(url, keys=keys(url, k2))
    try:  # what the passes resealed opens with K2 alone; the instance on K1 is what the command waits for
        found = await store.find_active_conversation(WA, PHONE)
        assert found is not None and found.sender == PHONE
    finally:
        await store.close()


async def test_an_instance_whose_host_clock_is_minutes_behind_is_still_seen_sealing_with_the_old_key(
    redis_url: str, settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    aiohttp_client: Callable[..., Awaitable[Client]],
) -> None:  # fmt: skip
    """A host whose clock is 10 minutes behind (NTP broken: beyond ``SKEW_TRUSTED_SECONDS`` the app does not follow
    Redis's time, it says so and uses its own). Until 2026-12-07 its advert was dated on that clock: the command,
    reading Redis's time, took it for gone 45 s after and resealed, said every record was sealed with K2 while that
    instance kept sealing with K1."""
    url = emptied(redis_url)
    await with_a_conversation(url, keys(url, DATA_KEY))
    k2 = new_key()
    on = settings.replace(store=url, understanding="off", data_key=DATA_KEY, data_keys_old=k2)
    behind = await aiohttp_client(
        await create_app(on, clock=lambda: datetime.now(UTC) - timedelta(minutes=10), worker_poll_seconds=0.05)
    )
    assert (await behind.get("/readyz")).status == 200
    env(monkeypatch, url, k2)
    code, out = await rotate(capsys)
    assert code == 1, out  # before: 0, "every record is sealed with data key K2"
    assert "every record is sealed with" not in out and f"data key {K1_ID} (1)" in out, out
