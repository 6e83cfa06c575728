"""The WhatsApp catch-up's failures as ``/readyz`` shows them (``CatchUp.failing``): a store failure named by the
class the rest of the gateway names it by (``gateway.outage_log.error_class``). The real SQLite store, its
``last_present`` failing as the Redis store's does (tests/store_holds.py), never Twilio reached."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from gateway.channels.whatsapp import Listed, Listing
from gateway.channels.whatsapp_catchup import CatchUp
from gateway.errors import StoreError
from gateway.messages import Inbound
from gateway.metrics import Metrics
from gateway.store import open_store
from tests.e2e.channel_support import eventually
from tests.store_holds import Holds


class Unreached:
    """Twilio's list, never reached: the pass fails on the store first."""

    async def received_since(self, since: datetime) -> Listing:
        raise AssertionError("Twilio asked while the store failed")

    async def with_media(self, listed: Listed) -> Inbound:
        raise AssertionError("Twilio asked while the store failed")


class Won:
    async def once_per(self, seconds: int, what: str, subject: str) -> bool:
        return True


@pytest.mark.parametrize(
    ("said", "named"),
    [("Connection reset by peer", "ConnectionError"), ("max number of clients reached", "MaxClientsReached")],
)
async def test_a_pass_failed_by_the_store_is_named_by_the_error_it_wraps(tmp_path: Path, said: str, named: str) -> None:
    """Until 2026-12-07 ``failing (StoreError)`` whatever the store met: a Redis at its maxclients and a reset alike."""
    holds = Holds(await open_store(f"sqlite:///{tmp_path}/gateway.sqlite3"))

    async def fail(*args: object) -> None:
        try:
            raise RedisConnectionError(said)
        except RedisConnectionError as error:  # as gateway/store/redis.py wraps it
            raise StoreError(f"redis: {type(error).__name__}") from error

    holds.run("last_present", fail)

    async def process(batch: object) -> int:
        raise AssertionError("nothing to process")

    catch_up = CatchUp(Unreached(), holds, process, Won(), Metrics())  # type: ignore[arg-type]
    worker = asyncio.create_task(catch_up.run())
    try:
        failing = await eventually(lambda: asyncio.sleep(0, catch_up.failing))
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
        await holds.real.close()
    assert failing == named
