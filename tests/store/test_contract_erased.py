"""The young people erased lately, kept for the WhatsApp catch-up's window (``Store.keep_erased``,
``Store.erased_at``) on SQLite, Redis and Cluster: a keyed hash of the identity and the erasure's instant, nothing
else, gone by itself once its time is over (Redis a TTL; SQLite a dated row, swept by the next one kept or the purge's
daily pass)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import UTC, datetime, timedelta

from gateway.flowset import FlowSet
from gateway.metrics import Metrics
from gateway.retention import Retention
from gateway.store import Store
from tests.conftest import ROOT

T0 = datetime(2026, 12, 6, 21, 0, 0, 123_000, tzinfo=UTC)


async def test_an_erased_identity_is_kept_with_its_instant_until_it_lapses(store: Store, store_url: str) -> None:
    assert await store.erased_at("d1") is None
    await store.keep_erased("d1", T0, 3600)
    await store.keep_erased("d2", T0 + timedelta(seconds=1), 0.05)
    assert await store.erased_at("d1") == T0
    deadline = time.monotonic() + 30  # waits on the condition (a busy machine's Redis may answer late), not a sleep
    while await store.erased_at("d2") is not None:
        assert time.monotonic() < deadline, "an erasure kept 50 ms was still there after 30 s"
        await asyncio.sleep(0.01)
    await store.keep_erased("d1", T0 + timedelta(hours=1), 3600)  # erased again (a new contact, erased too)
    assert await store.erased_at("d1") == T0 + timedelta(hours=1)
    if store_url.startswith("sqlite"):  # the lapsed row swept by the last write: nothing older than its time
        with sqlite3.connect(store_url.removeprefix("sqlite:///")) as conn:
            assert conn.execute("SELECT digest FROM erased").fetchall() == [("d1",)]


async def test_a_lapsed_erasure_is_gone_after_the_daily_purge_with_no_erasure_after_it(
    store: Store, store_url: str
) -> None:
    """guarantees.md keeps an erased identity's keyed hash for the catch-up's window and a minute. On SQLite the row
    was swept only by the next erasure kept: on a line with no erasure after it, the keyed hash of the erased
    identity and its instant stayed in the file for good. Now the purge's daily pass sweeps it too."""
    await store.keep_erased("d1", T0, 0.05)
    deadline = time.monotonic() + 30
    while await store.erased_at("d1") is not None:
        assert time.monotonic() < deadline, "an erasure kept 50 ms was still there after 30 s"
        await asyncio.sleep(0.01)
    flows = FlowSet(ROOT / "flows.yaml")
    flows.reload()
    now = datetime.now(UTC)

    await Retention(store, flows, clock=lambda: now, metrics=Metrics()).purge(now)  # nothing to purge: the pass alone

    if store_url.startswith("sqlite"):
        with sqlite3.connect(store_url.removeprefix("sqlite:///")) as conn:
            assert conn.execute("SELECT digest FROM erased").fetchall() == []  # before: [('d1',)]
