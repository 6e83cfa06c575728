"""A frozen instance: a real ``gateway serve`` stopped (SIGSTOP) and resumed (SIGCONT), as a virtual machine paused or
live-migrated, a suspended host, a swap storm or a long GC stop one. Unlike a wall clock stepped forward
(``tests/test_outbox_clock_jump.py``), both the wall clock and the loop's own clock have moved on while it slept: its
leases lapsed, its timers all due at once, its sockets still open."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from gateway.messages import ChannelName
from gateway.testing import FakeGraphAPI, messenger_body, messenger_message, signed_messenger
from tests.test_faults import SECRET, inbox_drained, instance, psid, redis_server, settled, store_at

# GATEWAY_OUTBOX_LEASE_SECONDS: its first renewal (a third of it, 2 s) due after the outbox's next poll (1 s), so
# that on resume the claim's timer fires first, as it does at the default 15 s
LEASE = 6.0


async def post(http: aiohttp.ClientSession, url: str, sender: str, text: str, mid: str) -> None:
    """One Messenger webhook, posted again a second after any answer that is not a 200 (as Meta does)."""
    raw, headers = signed_messenger(SECRET, messenger_body([messenger_message(sender, text, mid)]))
    for _ in range(60):
        try:
            async with http.post(url + "/webhooks/messenger", data=raw, headers=headers) as response:
                if response.status == 200:
                    return
        except (aiohttp.ClientError, TimeoutError):
            pass
        await asyncio.sleep(1.0)
    raise AssertionError(f"{mid} never acknowledged")


@pytest.mark.redis
async def test_an_instance_frozen_past_its_outbox_lease_mid_send_does_not_send_that_reply_again(
    tmp_path: Path, graph: FakeGraphAPI
) -> None:
    """The provider holds the bot's first reply when the instance is frozen for longer than the outbox lease; once
    resumed, its own outbox must renew the lease of that send in flight before it claims again, not take the reply
    back and send it a second time (docs/guarantees.md: a suspended machine does not make the outbox send its own
    reply in flight twice)."""
    with redis_server(tmp_path) as url:
        only = instance(tmp_path, "only", url, graph, "v23.0")
        only.env["GATEWAY_OUTBOX_LEASE_SECONDS"] = str(int(LEASE))
        sender = psid(1)
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
                only.start()
                await only.ready(http)
                assert only.process is not None
                graph.stall()
                await post(http, only.url, sender, "Bonjour", "m_freeze_0")
                await graph.wait_held(1)  # the first reply is at the provider, unanswered
                only.process.send_signal(signal.SIGSTOP)
                try:
                    await asyncio.sleep(LEASE + 1.5)  # the fault itself: frozen past the lease, both clocks moving
                finally:
                    only.process.send_signal(signal.SIGCONT)
                # the instance goes on: a message more (its outbox kicked, a claim made) answered, then the provider
                await post(http, only.url, sender, "Non", "m_freeze_1")
                graph.resume()
                async with store_at(url) as store:
                    await inbox_drained(store)
                    conversation = await store.find_active_conversation(ChannelName.MESSENGER, sender)
                    assert conversation is not None
                    await settled(store, [conversation])
        finally:
            only.stop()
    sent = Counter(r.body["message"]["text"] for r in graph.requests_to("messages") if "message" in r.body)
    assert sent and max(sent.values()) == 1, f"a reply sent more than once after the freeze: {sent}"
