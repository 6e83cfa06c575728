"""``GATEWAY_INBOX_CONCURRENCY`` reaches the inbox through the app's wiring (``create_app``): its worker hands out
the head item of at most that many senders a pass, and processes the next pass once those are done. Until
2026-12-07 only the setting's parsing had a test (``tests/test_settings.py``): a wiring dropped (the inbox back on
its default of 50) went unseen.

The real app on SQLite, Messenger against the fake Graph API, every webhook through the inbox (``inline_max`` 0):
one signed webhook of three senders' messages, stored in one commit, so that the worker's first pass finds all
three due. The store is the real one, with each pass's items noted (:class:`Passes`, nothing of the gateway
patched); every sender answered through the fake Graph API is the wait's condition."""

from __future__ import annotations

from typing import Any, cast

import pytest
from aiohttp.test_utils import TestClient

from gateway.crypto import DataKeys
from gateway.settings import Settings
from gateway.store import InboxItem, Store, open_store
from gateway.testing import FakeGraphAPI, messenger_body, messenger_message, signed_messenger
from tests.conftest import AppFactory
from tests.e2e.channel_support import eventually

Client = TestClient  # type: ignore[type-arg]

SECRET = "inbox-concurrency-app-secret"
SENDERS = ("7555000000000041", "7555000000000042", "7555000000000043")


class Passes:
    """The real store, the items each of the inbox's passes was handed (``inbox_due``'s answers) noted."""

    def __init__(self, store: Store) -> None:
        self.real = store
        self.handed: list[int] = []  # each pass that found items: how many

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    async def inbox_due(self, now: Any, limit: int, *, lease_seconds: int = 30) -> list[InboxItem]:
        items = await self.real.inbox_due(now, limit, lease_seconds=lease_seconds)
        if items:
            self.handed.append(len(items))
        return items


def answered(graph: FakeGraphAPI) -> set[str]:
    """The senders the bot's replies reached (not the typing indicators)."""
    return {r.body["recipient"]["id"] for r in graph.accepted() if "message" in r.body}


@pytest.mark.parametrize(("concurrency", "passes"), [(1, [1, 1, 1]), (2, [2, 1])])
async def test_the_inbox_processes_as_many_senders_at_once_as_its_setting_says(
    make_client: AppFactory, settings: Settings, graph: FakeGraphAPI, concurrency: int, passes: list[int]
) -> None:
    settings = settings.replace(
        messenger_app_secret=SECRET, messenger_verify_token="verify", messenger_page_access_token="page-token",
        messenger_api_url=graph.url + "/v23.0", understanding="off",
        inline_max=0,  # every webhook through the inbox
        inbox_concurrency=concurrency,
    )  # fmt: skip
    store = Passes(await open_store(settings.store, keys=DataKeys.from_settings(settings)))
    client: Client = await make_client(settings, store=cast(Store, store))  # the app closes it
    events = [messenger_message(psid, "Bonjour", f"m_concurrency_{i}") for i, psid in enumerate(SENDERS)]
    raw, signed = signed_messenger(SECRET, messenger_body(events))
    response = await client.post("/webhooks/messenger", data=raw, headers=signed)
    assert response.status == 200

    async def all_answered() -> bool:
        return answered(graph) == set(SENDERS)

    await eventually(all_answered, 30)
    assert store.handed == passes, "the inbox took another number of senders at once than GATEWAY_INBOX_CONCURRENCY"
