"""``/metrics``'s queue gauges at a peak (``gateway_queue_waiting`` per queue and priority, the longest wait): from
the counts the store keeps and its earliest arrival (``store.waiting_page(1)``), not every waiting entry. Until
2026-12-07 each scrape read every waiting entry (``store.waiting``): 60 here."""

from __future__ import annotations

import pytest

from gateway.app import STORE
from gateway.conversation import Priority
from gateway.settings import Settings
from gateway.store import Store
from tests.conftest import AppFactory, Clock
from tests.console.test_queue_page import WAITING as BACK_MINUTES
from tests.console.test_queue_page import _waiting
from tests.console.test_take_crash import commands_during
from tests.store.conftest import STORES, on_store, redis_url
from tests.store.test_contract_read_receipts import Statements
from tests.test_metrics import value

__all__ = ["redis_url"]  # a fixture used through ``on_store``

WAITING = 60


@pytest.fixture(params=STORES)
def store_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    return on_store(request, settings)


async def test_a_scrape_reads_the_queues_counts_not_every_waiting_entry(
    make_client: AppFactory, store_settings: Settings, clock: Clock
) -> None:
    """60 waiting (every 7th urgent), 2 more in another queue: the gauges as before; the scrape names at most a few
    waiting ids (Redis: ``MONITOR``) or reads the queue's rows by its index with a ``LIMIT`` (SQLite: the
    statements traced), never all of them."""
    client = await make_client(store_settings)
    store: Store = client.app[STORE]
    ids = [await _waiting(store, clock, n, Priority.URGENT if n % 7 == 0 else Priority.NORMAL) for n in range(WAITING)]
    for n in (WAITING, WAITING + 1):
        conversation_id = await _waiting(store, clock, n)
        await store.enqueue(conversation_id, "parents", Priority.HIGH, clock.now)
        ids.append(conversation_id)

    async def scrape() -> str:
        response = await client.get("/metrics")
        assert response.status == 200
        return await response.text()

    if "redis" in store_settings.store:
        found: list[str] = []

        async def scraped() -> None:
            found.append(await scrape())

        commands = await commands_during(store_settings.store, scraped())
        text = found[0]
        named = {i for i in ids if any(i in command for command in commands)}
        assert len(named) <= 4, len(named)  # the earliest, the first, the latest; until 2026-12-07: all 62
    else:
        async with Statements(store) as statements:
            text = await scrape()
        whole = [s for s in statements if " FROM queue " in s and "LIMIT" not in s]
        assert whole == [], whole  # until 2026-12-07: "SELECT * FROM queue WHERE taken_by IS NULL ... ORDER BY ..."
    assert value(text, "gateway_queue_waiting", queue="listeners", priority="urgent") == 9
    assert value(text, "gateway_queue_waiting", queue="listeners", priority="normal") == WAITING - 9
    assert value(text, "gateway_queue_waiting", queue="parents", priority="high") == 2
    assert value(text, "gateway_queue_waiting", queue="parents", priority="normal") == 0
    assert value(text, "gateway_queue_longest_wait_seconds") == BACK_MINUTES * 60  # c0000's arrival
