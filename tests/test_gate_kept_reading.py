"""A held page's automatic try of a first message whose first reading was kept ``"unread"`` (``Gate.new_chat``'s
``read=False``, ``Gate._read_again``), at the gate, with the real store and a fake model whose answer the test sets.

The client network is at its cap (one chat open, ``max_waiting_per_client=1``); ``risky_chats_per_network`` is one
an hour, spent under the unread bound by another message, so that the message's first try is refused and its
reading kept ``"unread"``. Then the unread bound frees (its counter cleared, as when its window ends) and the page
tries the message again by itself: judged as a fresh try of the same words would be, and the model asked once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from limits.aio.storage import MemoryStorage

from gateway.conversation import Status
from gateway.flows.reading import RISKS, UNREAD, Reading, Risk, Unread
from gateway.flowset import FlowSet
from gateway.gate import Gate, Refusal, risky_bound
from gateway.keyed import KeyedHash
from gateway.messages import ChannelName, Inbound
from gateway.metrics import Metrics
from gateway.ratelimit import Limit, RateLimits
from gateway.settings import Settings
from gateway.store import Store, open_store
from gateway.testing import store_keys
from tests.store.conftest import redis_url  # noqa: F401  (the session's server)

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = Settings(secret_key="k" * 32).replace(
    limit_risky_chats_per_network="1/hour", limit_refused_readings_per_network="10/hour"
)
NOW = datetime.now(UTC)
HOME = "203.0.113.7"
WORDS = "je l'ai tué en un coup sur fortnite jsuis trop fort"  # no keyword
NOTHING = Reading(tuple((risk, 0.01) for risk in RISKS))  # the model reads no risk
SUICIDE = Reading(tuple((risk, 0.99 if risk is Risk.SUICIDE else 0.0) for risk in RISKS))


@pytest.fixture(params=["sqlite", pytest.param("redis_url", marks=pytest.mark.redis)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    url = f"sqlite:///{tmp_path}/store/gateway.sqlite3"
    if request.param != "sqlite":
        url = request.getfixturevalue(request.param)
        with redis.Redis.from_url(url) as client:
            client.flushdb()
    opened = await open_store(url, keys=store_keys(url))
    try:
        yield opened
    finally:
        await opened.close()


class FakeModel:
    """The embedded model's reading (``Dispatcher.reading``), answered by ``answer``; each reading counted."""

    def __init__(self) -> None:
        self.answer: Reading | Unread | None = UNREAD
        self.asked = 0

    async def __call__(self, inbound: Inbound) -> Reading | Unread | None:
        self.asked += 1
        return self.answer


async def full_gate(store: Store, model: FakeModel) -> Gate:
    flows = FlowSet(ROOT / "flows.yaml")
    flows.reload()
    assert flows.engine().decide(WORDS).flag is None  # the keywords alone read nothing in it
    metrics = Metrics()
    limits = RateLimits.from_settings(SETTINGS, MemoryStorage(), metrics)
    keyed = KeyedHash(SETTINGS.secret_key.get_secret_value())
    gate = Gate(store, flows, limits, keyed, metrics, clock=lambda: NOW, on_outgoing=lambda: None,
                max_waiting_per_client=1, read=model)  # fmt: skip
    conversation, _ = await store.active_conversation(ChannelName.WEBCHAT, "classmate", NOW)
    await store.save_conversation(replace(conversation, client=gate.client_key(HOME), status=Status.QUEUED))
    return gate


def first(message_id: str, text: str = WORDS) -> Inbound:
    return Inbound(ChannelName.WEBCHAT, "held-token", message_id, text=text)


async def unread_hour_over(gate: Gate) -> None:
    """The hour of the network's unread chats' bound over (its counter alone cleared)."""
    item, name = gate.limits._items[Limit.RISKY_CHATS], Limit.RISKY_CHATS.value
    subject = risky_bound("unread", gate.networks.key(HOME))
    await gate.limits._limiter.clear(item, name, gate.limits._keyed(name, subject))


async def kept_unread(gate: Gate) -> None:
    """The unread bound spent by r1 (let in unread), then m1 refused unread: its reading kept ``"unread"``."""
    assert await gate.new_chat("other-token", HOME, first("r1"), once="r1") is None
    refused = await gate.new_chat("held-token", HOME, first("m1"), once="m1")
    assert refused is not None and refused.reason is Refusal.CLIENT_FULL


async def test_an_unread_message_the_model_now_reads_as_harmless_waits_at_the_cap_and_is_read_once(
    store: Store,
) -> None:
    model = FakeModel()
    gate = await full_gate(store, model)
    await kept_unread(gate)
    assert model.asked == 2
    await unread_hour_over(gate)
    model.answer = NOTHING  # the model reads now: no risk in the words
    for _ in range(3):
        refused = await gate.new_chat("held-token", HOME, first("m1"), once="m1", read=False)
        # until 2026-12-07 (night): None on the first try (let in under the unread bound, judged "unread" still)
        assert refused is not None and refused.reason is Refusal.CLIENT_FULL
    # until 2026-12-07 (night): the model asked at each automatic try, spending refused_readings_per_network
    assert model.asked == 3
    # a fresh try of the same words gets the same answer
    refused = await gate.new_chat("held-token", HOME, first("m1"), once="m1")
    assert refused is not None and refused.reason is Refusal.CLIENT_FULL


async def test_an_unread_message_read_as_a_risk_or_still_unread_is_never_weaker(store: Store) -> None:
    """A risk read at the automatic try opens it (and is kept: the model not asked again); one still unread keeps
    ``"unread"`` (the unread bound freed: it opens under it); other words under the same id are their own."""
    model = FakeModel()
    gate = await full_gate(store, model)
    await kept_unread(gate)
    refused = await gate.new_chat("held-token", HOME, first("m1"), once="m1", read=False)  # still unread: bound spent
    assert refused is not None and refused.reason is Refusal.CLIENT_FULL and model.asked == 3
    await unread_hour_over(gate)
    assert await gate.new_chat("held-token", HOME, first("m1"), once="m1", read=False) is None  # unread: let in
    assert model.asked == 4

    model.answer = UNREAD
    refused = await gate.new_chat("held-token", HOME, first("m2"), once="m2")  # the unread bound spent by m1 again
    assert refused is not None and model.asked == 5
    model.answer = SUICIDE
    for _ in range(2):  # the risky (model) bound: spent by m2's first let-in, answered the same after it
        assert await gate.new_chat("held-token", HOME, first("m2"), once="m2", read=False) is None
    assert model.asked == 6  # read once, the risk kept
