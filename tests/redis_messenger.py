"""What the tests of the real app on the session's Redis with Messenger share: a fake Graph API, the settings of
the Messenger channel on an emptied Redis, a signed webhook posted, a monotonic clock the test moves.

Import the fixtures along with ``redis_url`` (``tests/store/conftest.py``), which they use.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from gateway.settings import Settings
from gateway.testing import FakeGraphAPI, messenger_body, messenger_message, signed_messenger
from tests.e2e.channel_support import Client
from tests.store.conftest import emptied

SECRET = "redis-messenger-app-secret"


class Monotonic:
    """A monotonic clock (the app factory's ``monotonic``: the inbox times inline webhooks by it) moved by the test
    only, counting how often it was read."""

    def __init__(self) -> None:
        self.now, self.reads = 0.0, 0

    def __call__(self) -> float:
        self.reads += 1
        return self.now


@pytest.fixture
def messenger_on_redis(settings: Settings, graph: FakeGraphAPI, redis_url: str) -> Settings:
    """The Messenger channel against the fake Graph API, the store on the session's Redis, emptied first."""
    emptied(redis_url)
    return settings.replace(
        store=redis_url, messenger_app_secret=SECRET, messenger_verify_token="verify",
        messenger_page_access_token="page-token", messenger_api_url=graph.url + "/v23.0",
    )  # fmt: skip


async def post_message(client: Client, psid: str, text: str, mid: str, headers: Mapping[str, str] | None = None) -> int:
    """A signed webhook of one text message from ``psid``; its status."""
    raw, signed = signed_messenger(SECRET, messenger_body([messenger_message(psid, text, mid)]))
    response = await client.post("/webhooks/messenger", data=raw, headers={**signed, **(headers or {})})
    return response.status
