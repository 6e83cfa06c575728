"""The store on a Redis Cluster of three primaries through the Cluster client (``GATEWAY_REDIS_CLUSTER=1``): every
contract test that needs only a store runs against it. Keys hash to slots on three nodes, so a client that
ignores slots gets MOVED, and a script or transaction over several slots is refused (CROSSSLOT)."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from gateway.store import Store, open_store
from gateway.testing import store_keys
from tests.store import (
    test_contract,
    test_contract_casework,
    test_contract_late,
    test_contract_retention,
    test_erasure_person,
)
from tests.store.conftest import flush_cluster

pytestmark = pytest.mark.redis


def _store_only(module: Any) -> dict[str, Callable[[Store], Awaitable[None]]]:
    return {f"{module.__name__.rsplit('.', 1)[-1]}.{name}": test for name, test in vars(module).items()
            if name.startswith("test_") and list(inspect.signature(test).parameters) == ["store"]
            and not hasattr(test, "hypothesis")}  # fmt: skip  # a property test runs under pytest's own runner


CONTRACT = (
    _store_only(test_contract)
    | _store_only(test_contract_casework)
    | _store_only(test_contract_retention)
    | _store_only(test_contract_late)
)
# These read every key of every node afterwards (``everything``): what a purge or an erasure leaves.
WITH_URL: dict[str, Callable[[Store, str], Awaitable[None]]] = {
    "purge": test_contract_retention.test_a_purge_leaves_the_counted_record_and_no_content,
    "erasure": test_contract_retention.test_an_erasure_leaves_nothing_naming_the_conversation,
    "erasure of a person": test_erasure_person.test_an_erasure_leaves_nothing_about_the_person,
}


@pytest.fixture
async def cluster_store(redis_cluster3_url: str) -> AsyncIterator[Store]:
    flush_cluster(redis_cluster3_url)
    opened = await open_store(redis_cluster3_url, keys=store_keys(redis_cluster3_url), cluster=True)
    try:
        yield opened
    finally:
        await opened.close()


def test_the_contract_tests_run_here_are_most_of_them() -> None:
    assert len(CONTRACT) > 60


@pytest.mark.parametrize("name", sorted(CONTRACT))
async def test_the_store_contract_on_a_three_node_cluster(name: str, cluster_store: Store) -> None:
    await CONTRACT[name](cluster_store)


@pytest.mark.parametrize("name", sorted(WITH_URL))
async def test_what_a_purge_or_an_erasure_leaves_on_a_three_node_cluster(
    name: str, cluster_store: Store, redis_cluster3_url: str
) -> None:
    await WITH_URL[name](cluster_store, redis_cluster3_url)
