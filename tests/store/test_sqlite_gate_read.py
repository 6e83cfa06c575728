"""SQLite: the gate's block read also reads whether the sender has messages waiting in the inbox, for the webhook's
next step (``inbox_waiting``): one hop to the store's thread for both, as Redis reads both in one round trip
(``tests/test_gate.py``). The answer is the one of that moment, used once, then read again."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from gateway.flowset import FlowSet
from gateway.gate import Gate
from gateway.keyed import KeyedHash
from gateway.messages import ChannelName, Inbound
from gateway.metrics import Metrics
from gateway.ratelimit import RateLimits, open_limit_storage
from gateway.settings import Settings
from gateway.store import InboxItem, open_store
from gateway.testing import store_keys

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = Settings(secret_key="k" * 32, limit_messages_per_conversation="30/minute")
NOW = datetime.now(UTC)


async def test_the_block_read_answers_the_inbox_check_that_follows_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/store/gateway.sqlite3"
    store, counters = await open_store(url, keys=store_keys(url)), open_limit_storage(url)
    try:
        flows = FlowSet(ROOT / "flows.yaml")
        flows.reload()
        metrics = Metrics()
        limits = RateLimits.from_settings(SETTINGS, counters.storage, metrics)
        keyed = KeyedHash(SETTINGS.secret_key.get_secret_value())
        gate = Gate(store, flows, limits, keyed, metrics, clock=lambda: NOW, on_outgoing=lambda: None)
        message = Inbound(ChannelName.TELEGRAM, "5003", "m3", "bonjour")
        key = gate.sender_key(message.channel, message.sender)
        await store.inbox_put([InboxItem("in:telegram:m0", key, {"text": "before"}, NOW)])
        assert await gate.check(message) is None
        assert await store.inbox_waiting(key)  # as the gate read it
        [item] = await store.inbox_due(NOW, 10)
        assert await store.inbox_done(item.id)
        assert not await store.inbox_waiting(key)  # read again: the gate's read was used once
        assert await gate.check(message) is None
        assert not await store.inbox_waiting(key)
        await store.inbox_put([InboxItem("in:telegram:m1", key, {"text": "meanwhile"}, NOW)])
        assert await store.inbox_waiting(key)  # the gate's read of this key was used: read now
    finally:
        await counters.close()
        await store.close()
