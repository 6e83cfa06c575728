"""A listener's reply whose instance was killed mid-send is sent, once, by the console's retry under the same id, at
once: not refused ``409 sending`` for the rest of the dead instance's claim (``CLAIM_SECONDS``, 10 s), the console
showing an error while the young person waits.

Every claim of a reply's key is made, and saved done or released, under its conversation's lock
(``Actions._claim_reply``), so a claim still within its lease that the retry finds once it holds that lock is no
claimer's alive and sending: its instance died (Redis: its lock lapsed, 6 s; SQLite: its file lock went with the
process), or its lock lapsed while it stalled (its writes then refused by the lock's fence). The retry takes it
over (``claim(take_over=True)``): DONE when the record saved the key as processed, else sent under it, its entry and
outbox item the ids the dead instance used (derived from the key): written once, sent once.

A real ``kill -9`` of a process of its own (``tests/console/dying_reply.py``) stopped right after its claim or after
its entry and item were written, on SQLite, Redis and the Cluster fixture; Redis's claims on the test's clock (fixed:
by the store's clock the dead instance's claim never lapses, so the retry's success is the take-over, not a wait);
the young person's provider a fake Graph API, the outbox run before and after the retry.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import aiohttp
import pytest

from gateway.channels.messenger import MessengerChannel
from gateway.conversation import Status
from gateway.dispatcher import CLAIM_SECONDS
from gateway.messages import ChannelName
from gateway.outbox import Outbox
from gateway.settings import Settings
from gateway.store import Author, ClaimState, Store
from gateway.testing import FakeGraphAPI
from tests.conftest import ROOT, Clock
from tests.console.dying_reply import TEXT
from tests.console.test_handback_crash import held_by_anne, instance
from tests.store.conftest import redis_cluster_url, redis_url, store, store_url

__all__ = ["redis_cluster_url", "redis_url", "store", "store_url"]  # fixtures used below

KEY = "r-7f3a"  # the console's id of the reply, the same when it sends it again


async def killed_mid_send(store_url: str, conversation_id: str, point: str, clock: Clock, action: str = "reply") -> str:
    """An instance of its own sends Anne's reply (or makes her ``action``) and is killed (``SIGKILL``) once stopped at
    ``point``: the claim's key."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.console.dying_reply", store_url, conversation_id, KEY, point, clock().isoformat(),
        action, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
    finally:
        process.kill()
        await process.wait()
    assert line.startswith(f"dying {action}:"), line
    return line.split()[1]


async def sent_texts(store: Store, clock: Clock, settings: Settings, graph: FakeGraphAPI) -> list[str]:
    """Every due reply handed to the fake Graph API; the texts it accepted so far, in order."""
    async with aiohttp.ClientSession() as session:
        messenger = MessengerChannel(settings.replace(messenger_api_url=graph.url,
                                                      messenger_page_access_token="token"), session)  # fmt: skip
        outbox = Outbox(store, {ChannelName.MESSENGER: messenger}, clock=clock)
        while await outbox.deliver_due():
            pass
    return [r.body["message"]["text"] for r in graph.accepted() if "message" in r.body]


@pytest.mark.parametrize(("point", "tabs"), [("claimed", 1), ("claimed", 2), ("written", 1)])
async def test_a_reply_whose_instance_was_killed_mid_send_is_sent_once_by_the_consoles_retry(
    store: Store, store_url: str, clock: Clock, settings: Settings, point: str, tabs: int
) -> None:
    use_clock: Any = getattr(store, "use_clock", None)
    if use_clock is not None:  # Redis: the claims on the test's clock, as the app's (``gateway/app.py``)
        use_clock(clock)
    conversation_id = await held_by_anne(store, clock)
    claim_key = await killed_mid_send(store_url, conversation_id, point, clock)

    async with FakeGraphAPI() as graph:
        before = await sent_texts(store, clock, settings, graph)  # what the dead instance listed goes out meanwhile
        assert before.count(TEXT) == (point == "written")  # its reply's item too, when it was written
        # the dead instance's claim is still within its lease: another owner's claim of the key is refused
        assert await store.claim(claim_key, "another", CLAIM_SECONDS) is ClaimState.BUSY

        # the console sends it again under the same id (from ``tabs`` tabs at once, on instances of their own)
        answers = await asyncio.gather(
            *(instance(store, clock)[1].reply(conversation_id, "anne", TEXT, KEY) for _ in range(tabs))
        )
        assert len({entry.id for entry in answers}) == 1  # every tab answered with the one reply

        written = [e for e in await store.transcript(conversation_id) if e.author is Author.LISTENER]
        assert [(e.id, e.text) for e in written] == [(answers[0].id, TEXT)]  # written once
        after = await sent_texts(store, clock, settings, graph)
        assert after.count(TEXT) == 1, (before, after)  # sent once, whether or not before the retry


async def test_a_hand_back_whose_instance_was_killed_mid_action_is_made_once_by_the_consoles_retry(
    store: Store, store_url: str, clock: Clock
) -> None:
    """The same for a console action's key (``Actions._once``: a hand-back, a transfer, a close), refused
    ``409 in_progress`` for the rest of the dead claim's lease before: Anne's hand-back, its instance killed once its
    key was claimed, sent again from two tabs at once."""
    use_clock: Any = getattr(store, "use_clock", None)
    if use_clock is not None:
        use_clock(clock)
    conversation_id = await held_by_anne(store, clock)
    claim_key = await killed_mid_send(store_url, conversation_id, "claimed", clock, "hand_back")
    assert await store.claim(claim_key, "another", CLAIM_SECONDS) is ClaimState.BUSY  # still within its lease

    answers = await asyncio.gather(
        *(instance(store, clock)[1].hand_back(conversation_id, "anne", key=KEY) for _ in range(2))
    )
    assert [(c.status, c.listener) for c in answers] == [(Status.QUEUED, None)] * 2
    record = await store.get_conversation(conversation_id)
    assert record is not None and (record.status, record.listener) == (Status.QUEUED, None)
    assert [e.conversation_id for e in await store.waiting()] == [conversation_id]  # back in line, once
    assert await store.held_by("anne") == 0
