"""Key rotation (``gateway data-key rotate``, the command's own code, in this process) while an instance still
seals with the OLD key: one not yet restarted with ``GATEWAY_DATA_KEY=K2`` (step 3 of docs/deployment.md's
rotation), or, with the embedded key file, a gateway left running. What it writes during the rotation is sealed
with K1.

Until 2026-12-07 the command made one pass and printed "every record is sealed with data key K2" all the same:
a record written after the pass went by its key (or, on Redis, rewritten between the pass's read and its
compare-and-set, skipped silently) stayed under K1; once K1 was removed (``GATEWAY_DATA_KEYS_OLD``, as the command
says to; the key file's old keys, which the command itself dropped) it never opened again. Now the command passes
again (at most ``RESEAL_PASSES``) until a pass finds nothing under an older key; when the last one still finds some,
it says so, exits 1, and keeps the key file's old keys.

The old-key writer is a second real store opened with K1 alone; the rotation's store is the real one, wrapped
(``OldWriterMeanwhile``, given to the command's ``_data_key_rotate`` as what opens its store: nothing of the gateway
replaced; until 2026-12-07 the test replaced ``gateway.store.open_store``) so that the writer writes right after a
pass; on Redis, the real client is wrapped to let
the writer rewrite a record between the pass's read and its compare-and-set (``RewrittenMeanwhile``).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as redis

from gateway.cli import RESEAL_PASSES, StoreOpener, _data_key_rotate, main
from gateway.crypto import DataKeys, key_id, new_key, parse_key
from gateway.errors import DataKeyError
from gateway.store import RESEAL_CHANGED, Store, open_store
from gateway.store.redis_keys import PREFIX
from gateway.store.redis_reseal import reseal
from gateway.testing import DATA_KEY, SECRET_KEY
from tests.store.conftest import emptied
from tests.store.test_reseal import PHONE, PICTURE, T0, WA, env_keys, write_a_conversation


class OldWriterMeanwhile:
    """The real store the command opened; after each of its first ``times`` reseal passes, ``old`` (a store
    sealing with the old key only) writes one more upload."""

    def __init__(self, store: Store, old: Store, times: int) -> None:
        self._store, self._old, self._times = store, old, times
        self.passes = self.written = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def reseal(self) -> dict[str, int]:
        counts = await self._store.reseal()
        self.passes += 1
        if self.written < self._times:
            self.written += 1
            await self._old.put_upload(f"late-{self.written}", "image/png", PICTURE)
        return counts

    async def close(self) -> None:
        await self._old.close()
        await self._store.close()


def old_writer(old_keys: DataKeys, times: int) -> tuple[StoreOpener, list[OldWriterMeanwhile]]:
    """What opens the command's store, wrapped, and the list of the stores it opened (to look at afterwards)."""
    opened: list[OldWriterMeanwhile] = []

    async def opening(url: str, **kwargs: Any) -> Store:
        store = await open_store(url, **kwargs)
        opened.append(OldWriterMeanwhile(store, await open_store(url, keys=old_keys), times))
        return opened[-1]  # type: ignore[return-value]

    return opening, opened


async def rotate(capsys: pytest.CaptureFixture[str], opening: StoreOpener | None = None) -> tuple[int, str]:
    """``gateway data-key rotate``: through ``main``, or with ``opening`` its handler given what opens the store."""
    if opening is None:
        code = await asyncio.to_thread(main, ["data-key", "rotate"])
    else:
        code = await asyncio.to_thread(_data_key_rotate, argparse.Namespace(), opening)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


async def uploads(url: str, keys: DataKeys, count: int) -> list[tuple[str, bytes] | None]:
    store = await open_store(url, keys=keys)
    try:
        return [await store.get_upload(f"late-{n}") for n in range(1, count + 1)]
    finally:
        await store.close()


async def with_a_conversation(url: str, keys: DataKeys) -> None:
    store = await open_store(url, keys=keys)
    try:
        await write_a_conversation(store)
    finally:
        await store.close()


def env(monkeypatch: pytest.MonkeyPatch, url: str, new: str) -> None:
    for name, value in {"GATEWAY_STORE": url, "GATEWAY_DATA_KEY": new, "GATEWAY_DATA_KEYS_OLD": DATA_KEY,
                        "GATEWAY_SECRET_KEY": SECRET_KEY}.items():  # fmt: skip
        monkeypatch.setenv(name, value)


async def test_a_record_written_under_the_old_key_during_a_pass_is_resealed_by_the_next(
    store_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    await with_a_conversation(store_url, env_keys(store_url, DATA_KEY))
    new = new_key()
    env(monkeypatch, store_url, new)
    opening, opened = old_writer(env_keys(store_url, DATA_KEY), times=1)  # the old instance then restarts

    code, out = await rotate(capsys, opening)
    assert code == 0, out
    assert f"every record is sealed with data key {key_id(parse_key(new, 'test'))}" in out
    assert opened[0].passes == 3, out  # 2: the upload resealed; 3: nothing found (before: 1 pass)
    picture = ("image/png", PICTURE)
    assert await uploads(store_url, env_keys(store_url, new), 1) == [picture]  # before: DataKeyError, under K1


async def test_an_instance_still_sealing_with_the_old_key_is_said_and_the_rotation_fails(
    store_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    await with_a_conversation(store_url, env_keys(store_url, DATA_KEY))
    new = new_key()
    new_id, old_id = key_id(parse_key(new, "test")), key_id(parse_key(DATA_KEY, "test"))
    env(monkeypatch, store_url, new)
    opening, opened = old_writer(env_keys(store_url, DATA_KEY), times=99)  # it never restarts

    code, out = await rotate(capsys, opening)
    assert code == 1, out  # before: 0, "every record is sealed with data key K2"
    assert f"NOT every record is sealed with data key {new_id}" in out, out
    assert not out.startswith("every record") and "remove GATEWAY_DATA_KEYS_OLD" not in out, out
    assert opened[0].passes == RESEAL_PASSES
    assert f"{RESEAL_PASSES} passes" in out and "1 record" in out, out
    assert f"still sealing with data key {old_id}?" in out, out
    assert f"once every instance runs with GATEWAY_DATA_KEY (data key {new_id})" in out, out
    with pytest.raises(DataKeyError):  # indeed: the last one written is under K1 (what the command now says)
        await uploads(store_url, env_keys(store_url, new), RESEAL_PASSES)

    code, out = await rotate(capsys)  # every instance restarted: run again
    assert code == 0 and f"every record is sealed with data key {new_id}" in out, out
    assert len(await uploads(store_url, env_keys(store_url, new), RESEAL_PASSES)) == RESEAL_PASSES


async def test_with_the_key_file_the_old_key_is_kept_while_a_gateway_still_seals_with_it(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path}/var/gateway.sqlite3"
    before = DataKeys.for_store(url)  # a gateway left running keeps this key file's keys: K1 alone
    await with_a_conversation(url, before)
    monkeypatch.setenv("GATEWAY_STORE", url)
    opening, _ = old_writer(before, times=99)

    code, out = await rotate(capsys, opening)
    assert code == 1, out
    assert "were removed" not in out and "Stop the gateway" in out, out
    after = DataKeys.for_store(url)
    assert after.ids[1:] == [before.current_id]  # before: forgotten, the record below never opened again
    assert len(await uploads(url, after, RESEAL_PASSES)) == RESEAL_PASSES


class RewrittenMeanwhile:
    """The real Redis client; ``meanwhile`` runs once, right after the first ``GET`` of a conversation record."""

    def __init__(self, client: redis.Redis, meanwhile: Callable[[], Awaitable[Any]]) -> None:
        self._client, self._meanwhile = client, meanwhile
        self.ran = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    async def get(self, key: str) -> Any:
        found = await self._client.get(key)
        if not self.ran and key.startswith(PREFIX + "c:{"):
            self.ran = True
            await self._meanwhile()
        return found


async def test_a_record_rewritten_under_the_old_key_between_read_and_write_is_counted(redis_url: str) -> None:
    url = emptied(redis_url)
    old = await open_store(url, keys=env_keys(url, DATA_KEY))
    client = redis.Redis.from_url(url, decode_responses=True, encoding_errors="surrogateescape")  # as the store's
    try:
        conversation, _ = await old.active_conversation(WA, PHONE, T0)
        wrapped = RewrittenMeanwhile(client, lambda: old.save_conversation(conversation))
        counts = await reseal(wrapped, env_keys(url, new_key(), DATA_KEY))  # type: ignore[arg-type]
        assert wrapped.ran
        assert counts["conversation"] == 0 and counts.get(RESEAL_CHANGED) == 1, counts  # before: not said at all
    finally:
        await client.aclose()
        await old.close()
