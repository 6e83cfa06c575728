"""A commit refused by the conversation lock's fence leaves nothing of its own in the slots other than the
conversation's (which cannot read the lock: a Cluster runs a script on one slot), and a commit that was kept is not
refused for what follows its record. Each test loses the lock's key before (or inside) the commit
(``fencing_setup.lose_the_lock``: a fast failover, the lease not over), as ``test_redis_fencing.py`` does.

- An ending whose record was answered written, the lock lost before its second pipeline's writes of other slots
  (one script on one node, ``fenced_steps``, held before it): until 2026-12-07 the flush raised LockLost for an
  ending that was made, its events after the record (``QueueChanged``, ``FlagRaised``) never published: the
  console's cards stale. The fence refused, the script tells a lapsed lock from a failover that lost the record by
  the record itself (its SHA-1): the ending's writes run, the commit stands.
- An ending whose record a failover lost between its two pipelines: the fence at the second one's head refuses, its
  processed mark is taken back (since 2026-12-07 a test of its own), and nothing after it is written: until
  2026-12-07 (a later change) the queue entry's removal and the address's release after the fence alone ran all the
  same, the waiting young person out of the queue; on a Cluster (a later change still, ``fenced_gate``) they did
  until then too, and a lapsed lock after a kept ending raised LockLost. Both ending tests run on one node, on the
  Cluster fixture through a plain client, and on a Cluster of their own with a Cluster client (``SERVERS``).
- A waiting conversation's transfer completion whose record a failover lost before ``end_move``: until 2026-12-07
  ``end_move`` went unfenced after the record (the save not split), the transfer unlisted and never completed; now
  behind ``fenced_gate``, on the three servers.
- A refused commit's join of the flagged index (slot ``{index}``, sent before the record): until 2026-12-07 its
  older rank replaced the next holder's newer one, and the latest flagged conversation went down the list.
- A refused hand-off's queue entry (slot ``{queue}``, sent with the position's read before the record): until
  2026-12-07 it stayed beside a record in the bot's flow; now taken out under the lock taken again, unless the
  record says queued or held."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from gateway.conversation import Priority, RiskFlag, Status
from gateway.dispatcher import StatusEffects
from gateway.errors import LockLost
from gateway.events import QueueChanged
from gateway.flows import lifecycle
from gateway.flows.lifecycle import Trigger
from gateway.messages import ChannelName
from gateway.store import AuditEntry, Claim, ClaimState, DoneMark, Store, open_store
from gateway.store import redis_keys as K
from gateway.testing import store_keys
from tests.cutting_proxy import cutting_proxy
from tests.losing_proxy import script_text
from tests.store.conftest import _free_port, _redis_server, _stop, emptied, redis_cluster_url, redis_url  # noqa: F401  (the session's servers)
from tests.store.fencing_setup import entry, lose_the_lock, opened  # noqa: F401  (``opened``: a fixture)

pytestmark = pytest.mark.redis

# the servers the two ending tests run on: one node, the Cluster fixture through a plain client (the store's steps
# apart, one slot each, in one pipeline), and a one-node Cluster of the test's own behind the proxy it announces, the
# store a Cluster client (its steps sent one by one: ``redis_steps.ordered``)
SERVERS = ["redis_url", "redis_cluster_url", "own_cluster"]


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[str]:
    """A one-node Redis Cluster owning every slot, of this test's own (``announce`` changes the address it names)."""
    process, port = _redis_server(tmp_path, "--cluster-enabled", "yes", "--cluster-port", str(_free_port()),
                                  "--cluster-config-file", str(tmp_path / "nodes.conf"))  # fmt: skip
    try:
        with redis.Redis(port=port, decode_responses=True) as client:
            client.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
            deadline = time.monotonic() + 15
            while "cluster_state:ok" not in client.execute_command("CLUSTER", "INFO"):
                assert time.monotonic() < deadline, "the one-node Redis Cluster did not come up"
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        _stop(process)


def announce(client: redis.Redis, proxy_url: str) -> None:
    """The node names the proxy as its address (``cluster-announce-port``): a Cluster client's every connection, the
    one that finds the slots included, goes through it (as ``tests/store/test_redis_cluster_retry.py``)."""
    client.config_set("cluster-announce-port", proxy_url.rsplit(":", 1)[1].split("/")[0])
    slots = client.execute_command("CLUSTER", "SLOTS")
    assert str(slots[0][2][1]) in proxy_url, slots


@pytest.mark.parametrize("server", SERVERS)
async def test_an_ending_kept_before_its_lock_was_lost_stands_and_publishes_its_events(
    request: pytest.FixtureRequest, server: str
) -> None:
    """On a Cluster (the one-node fixture through a plain client: the steps apart) the lock is lost before the fence's
    check sent alone, which passes on the record the server holds (its SHA-1, as ``fenced_steps`` does; since
    2026-12-07: until then the check refused, the writes after it ran and the flush raised ``LockLost``)."""
    url = emptied(request.getfixturevalue(server))
    client = redis.Redis.from_url(url, decode_responses=True)
    listening = client.pubsub()
    listening.subscribe(K.EVENTS_CHANNEL, K.ANY_CONVERSATION_EVENTS)
    async with cutting_proxy(url) as proxy:
        if server == "own_cluster":
            announce(client, proxy.url)
        store = await open_store(proxy.url, keys=store_keys(proxy.url), cluster=server == "own_cluster")
        try:
            now = datetime.now(UTC)
            conversation, _ = await store.active_conversation(ChannelName.MESSENGER, "sender-1", now)
            cid = conversation.id
            async with store.locked_batch(cid):
                found = await store.get_conversation(cid)
                assert found is not None
                await store.enqueue(cid, "general", Priority.NORMAL, now)
                await store.save_conversation(replace(found, status=Status.QUEUED, queue="general"))
            for _ in range(2):  # the subscriptions' confirmations
                assert listening.get_message(timeout=5) is not None

            async def failover() -> None:  # between the record's pipeline and the second one
                lose_the_lock(client, cid)

            if server == "redis_url":  # the second pipeline's (one script)
                proxy.hold_before(script_text("remove_from_queue"), meanwhile=failover)
            else:  # the check's, the command after the record's
                proxy.hold_before(meanwhile=failover, after=script_text("put_conversation"))
            async with store.locked_batch(cid):  # before: LockLost, for an ending that was made
                found = await store.get_conversation(cid)
                assert found is not None and found.status is Status.QUEUED
                await store.save_conversation(replace(found, status=Status.CLOSED, closed_at=now))
                await store.publish(QueueChanged())
            assert proxy.held == 1 and not proxy.failures, "the lock was not lost between the two pipelines"
            record = await store.get_conversation(cid)
            assert record is not None and record.status is Status.CLOSED
            assert await store.waiting() == []
            told: list[str] = []
            async with asyncio.timeout(10):
                while not any('"queue"' in data for data in told):
                    message = await asyncio.to_thread(listening.get_message, timeout=1)
                    if message is not None and message["type"] == "message":
                        told.append(str(message["data"]))
        finally:
            listening.close()
            client.close()
            await store.close()


@pytest.mark.parametrize("server", SERVERS)
async def test_an_ending_whose_record_the_failover_lost_leaves_its_message_unprocessed(
    request: pytest.FixtureRequest, server: str
) -> None:
    """The fence at the head of an ending's second pipeline (``fenced_steps`` on one node, ``fenced_gate`` sent alone
    on a Cluster; until 2026-12-07 ``fenced_check``, the fence alone, in the pipeline): a failover between the ending's
    two pipelines, its record answered written by the old primary and lost with it, the second pipeline on the new
    primary (which has neither the lock's ``SET`` nor the record, nor its processed mark). The global processed mark
    that pipeline writes (slot ``{seen}``, which cannot read the lock; its deadline not passed) is taken back on the
    check's refusal: LockLost, and the redelivery of the ending's message (a "stop") is processed. Without the check
    nothing in that pipeline is fenced: the mark stayed and the message was taken for processed, its conversation
    still waiting and the stop recorded nowhere (2026-12-07, the check removed: the redelivery answered DONE). Nor is
    anything else of that pipeline written: until 2026-12-07 (a later change, ``fenced_steps``) the writes after the
    check ran all the same (Redis runs every command of a pipeline): the young person, still waiting on the new
    primary, was out of the queue and of the status's set, and their address freed (``assert [] == [cid]``). On a
    Cluster (here the one-node fixture through a plain client: not one node to the store, so its steps stay apart, one
    slot each) the check is sent alone, and the writes only once it passed (since 2026-12-07): until then they
    followed it in one pipeline and ran all the same (the same ``assert [] == [cid]``)."""
    url = emptied(request.getfixturevalue(server))
    client = redis.Redis.from_url(url)  # bytes: the sealed record put back as the new primary has it
    async with cutting_proxy(url) as proxy:
        if server == "own_cluster":
            announce(client, proxy.url)
        store = await open_store(proxy.url, keys=store_keys(proxy.url), cluster=server == "own_cluster")
        try:
            now = datetime.now(UTC)
            conversation, _ = await store.active_conversation(ChannelName.MESSENGER, "sender-6", now)
            cid = conversation.id
            async with store.locked_batch(cid):
                found = await store.get_conversation(cid)
                assert found is not None
                await store.enqueue(cid, "general", Priority.NORMAL, now)
                await store.save_conversation(replace(found, status=Status.QUEUED, queue="general"))
            waiting = client.get(K.conversation(cid))
            assert waiting is not None

            async def failover() -> None:  # between the record's pipeline (answered) and the next one
                client.delete(K.lock(cid), K.lock_writes(cid), K.done(cid))
                client.set(K.conversation(cid), waiting)

            proxy.hold_before(meanwhile=failover, after=script_text("put_conversation"))  # its first command
            lost: LockLost | None = None
            try:
                async with store.locked_batch(cid, claim=Claim("in:stop", "owner-a", 30)) as state:
                    assert state is ClaimState.CLAIMED
                    found = await store.get_conversation(cid)
                    assert found is not None and found.status is Status.QUEUED
                    ended = replace(found, status=Status.CLOSED, closed_at=now)
                    await store.save_conversation(ended, done=DoneMark("in:stop", 3600))
            except LockLost as error:
                lost = error
            assert proxy.held == 1 and not proxy.failures, "the failover did not come between the two pipelines"
            record = await store.get_conversation(cid)
            assert record is not None and record.status is Status.QUEUED  # the new primary never had the ending
            await store.release("in:stop", "owner-a")  # as the dispatcher does on a StoreError (``_handle_inbound``)
            assert await store.claim("in:stop", "redelivery", 30) is ClaimState.CLAIMED, (
                "the ending's message was taken for processed, recorded nowhere"
            )
            assert lost is not None, "an ending the new primary never had was taken for made"
            # nothing after the refused check landed (since 2026-12-07): the young person still waits in the queue,
            # in the status's set, and their address still names the conversation (their next message goes in it)
            assert [e.conversation_id for e in await store.waiting()] == [cid], (
                "a waiting young person was taken out of the queue by an ending the new primary never had"
            )
            assert cid in await store.conversation_ids_by_status(Status.QUEUED)
            active = await store.find_active_conversation(ChannelName.MESSENGER, "sender-6")
            assert active is not None and active.id == cid, "the sender's address was freed by a refused ending"
        finally:
            client.close()
            await store.close()


@pytest.mark.parametrize("server", SERVERS)
async def test_a_transfer_completion_whose_record_the_failover_lost_stays_listed(
    request: pytest.FixtureRequest, server: str
) -> None:
    """A waiting conversation's transfer completion (``Actions.complete_move``: the entry in the new queue, the record
    naming it, no status set changed: the save not split), its record answered written by the old primary and lost
    with it before ``end_move`` (sent after the record, ``HeldWrite.cut``) reaches the new primary. Until 2026-12-07
    ``end_move`` (and the audit line after it) went in a pipeline with no fence, on one node as on a Cluster: the
    transfer was unlisted on a server whose record still names the old queue (``assert cid in {}``), and the alert
    check, which completes only the transfers listed, never completed it: the young person left half-moved, the
    console showing the old queue, their new place never told. Now the fence goes first, alone (``fenced_gate``):
    refused, LockLost, the transfer still listed for the next check, and no ``transfer_completed`` line."""
    url = emptied(request.getfixturevalue(server))
    client = redis.Redis.from_url(url)  # bytes: the sealed record put back as the new primary has it
    async with cutting_proxy(url) as proxy:
        if server == "own_cluster":
            announce(client, proxy.url)
        store = await open_store(proxy.url, keys=store_keys(proxy.url), cluster=server == "own_cluster")
        try:
            now = datetime.now(UTC)
            conversation, _ = await store.active_conversation(ChannelName.MESSENGER, "sender-8", now)
            cid = conversation.id
            async with store.locked_batch(cid):
                found = await store.get_conversation(cid)
                assert found is not None
                await store.enqueue(cid, "general", Priority.NORMAL, now)
                await store.save_conversation(replace(found, status=Status.QUEUED, queue="general", queued_at=now))
            moved_at = now + timedelta(seconds=1)
            await store.begin_move(cid, "alice")  # a transfer cut after its queue step
            await store.enqueue(cid, "other", Priority.NORMAL, moved_at)
            waiting = client.get(K.conversation(cid))
            assert waiting is not None

            async def failover() -> None:  # between the record's pipeline (answered) and the next one
                client.delete(K.lock(cid), K.lock_writes(cid))
                client.set(K.conversation(cid), waiting)

            proxy.hold_before(meanwhile=failover, after=script_text("put_conversation"))  # its first command
            lost: LockLost | None = None
            try:
                async with store.locked_batch(cid):  # as ``complete_move`` makes it
                    found = await store.get_conversation(cid)
                    assert found is not None and found.queue == "general"
                    await store.enqueue(cid, "other", Priority.NORMAL, moved_at)
                    await store.save_conversation(replace(found, queue="other", queued_at=moved_at))
                    await store.end_move(cid)
                    await store.audit(AuditEntry(now, "gateway", "transfer_completed", cid, "a transfer cut short"))
            except LockLost as error:
                lost = error
            assert proxy.held == 1 and not proxy.failures, "the failover did not come between the two pipelines"
            record = await store.get_conversation(cid)
            assert record is not None and record.queue == "general"  # the new primary never had the completion
            assert cid in await store.moves_begun(), (
                "a transfer whose completion the new primary never had was unlisted: never completed"
            )
            assert [a.action for a in await store.audit_log()] == [], "a completion not made was audited"
            assert lost is not None, "a completion the new primary never had was taken for made"
        finally:
            client.close()
            await store.close()


async def test_an_ending_on_one_node_writes_every_step_of_its_second_pipeline_in_one_script(
    redis_url: str,  # noqa: F811
) -> None:
    """On one node the ending's writes of other slots are one script behind the fence (``fenced_steps``, since
    2026-12-07): kept, each lands as the separate commands did (the status sets left, the queue entry removed, the
    web chat client's set left, the address freed, the processed mark written with its claim gone)."""
    url = emptied(redis_url)
    store = await open_store(url, keys=store_keys(url))
    try:
        now = datetime.now(UTC)
        conversation, _ = await store.active_conversation(ChannelName.WEBCHAT, "sender-7", now)
        cid = conversation.id
        async with store.locked_batch(cid):
            found = await store.get_conversation(cid)
            assert found is not None
            await store.enqueue(cid, "general", Priority.NORMAL, now)
            await store.save_conversation(replace(found, status=Status.QUEUED, queue="general", client="c-7"))
        assert await store.open_conversations_of_client("c-7") == 1
        assert await store.claim("in:bye", "owner-a", 30) is ClaimState.CLAIMED
        async with store.locked_batch(cid, claim=Claim("in:bye", "owner-a", 30)):
            found = await store.get_conversation(cid)
            assert found is not None
            await store.save_conversation(
                replace(found, status=Status.CLOSED, closed_at=now), done=DoneMark("in:bye", 3600)
            )
        assert await store.waiting() == []
        assert cid not in await store.conversation_ids_by_status(Status.QUEUED)
        assert await store.find_active_conversation(ChannelName.WEBCHAT, "sender-7") is None
        assert await store.open_conversations_of_client("c-7") == 0
        assert await store.claim("in:bye", "redelivery", 30) is ClaimState.DONE
    finally:
        await store.close()


async def test_a_refused_commit_never_moves_a_flagged_card_down(
    opened: tuple[Store, redis.Redis, str],  # noqa: F811
) -> None:
    """The flagged index's join (slot ``{index}``, before the record: an index lists more, never less) of a commit
    whose record is refused must not put back the older rank it read over the newer one the next holder saved:
    until 2026-12-07 it did (a plain ``ZADD``), and the conversation flagged latest went below one flagged before it
    on the console's list (the latest first)."""
    store, client, url = opened
    now = datetime.now(UTC)
    flag = RiskFlag("suicide", 0.9, "keywords", ("mourir",))
    assert await store.flagged_conversations(10) == []  # the index made (a store's first read makes it from records)
    between, _ = await store.active_conversation(ChannelName.MESSENGER, "sender-2", now)
    await store.save_conversation(replace(between, flag=flag, flagged_at=now - timedelta(seconds=30)))
    conversation, _ = await store.active_conversation(ChannelName.MESSENGER, "sender-3", now)
    cid = conversation.id
    other = await open_store(url, keys=store_keys(url))
    try:

        async def next_holder() -> None:  # the lock taken once lost: flagged now, the latest
            async with other.locked_batch(cid):
                found = await other.get_conversation(cid)
                assert found is not None
                await other.save_conversation(replace(found, flag=flag, flagged_at=now, engine={"step": "b"}))

        with pytest.raises(LockLost):
            async with store.locked_batch(cid):
                found = await store.get_conversation(cid)
                assert found is not None
                await store.save_conversation(replace(found, flag=flag, flagged_at=now - timedelta(seconds=60)))
                lose_the_lock(client, cid)
                await asyncio.create_task(next_holder())
    finally:
        await other.close()
    record = await store.get_conversation(cid)
    assert record is not None and record.engine == {"step": "b"}
    assert [c.id for c in await store.flagged_conversations(10)] == [cid, between.id], (
        "the refused commit's older flag moved the latest flagged card down"
    )


async def _hand_off_refused(store: Store, client: redis.Redis, cid: str, *, meanwhile: Store | None = None) -> None:
    """A hand-off's commit as ``Dispatcher.enqueue`` makes it: the queue entry (slot ``{queue}``) sent with the
    position's read before the record, then the record (queued); the lock's key lost before the record is sent, and
    with ``meanwhile`` the next holder handing the conversation off too before the refused record arrives."""

    async def next_holder() -> None:
        assert meanwhile is not None
        async with meanwhile.locked_batch(cid):
            found = await meanwhile.get_conversation(cid)
            assert found is not None and found.status is Status.BOT
            await meanwhile.enqueue(cid, "general", Priority.HIGH, datetime.now(UTC))
            await meanwhile.save_conversation(replace(found, status=Status.QUEUED, queue="general"))

    with pytest.raises(LockLost):
        async with store.locked_batch(cid):
            found = await store.get_conversation(cid)
            assert found is not None and found.status is Status.BOT
            await store.enqueue(cid, "general", Priority.NORMAL, datetime.now(UTC))
            assert await store.position(cid) == 1  # the entry and its read sent: the young person told their place
            await store.save_conversation(replace(found, status=Status.QUEUED, queue="general"))
            lose_the_lock(client, cid)
            if meanwhile is not None:
                await asyncio.create_task(next_holder())


async def test_a_refused_hand_off_leaves_no_queue_entry_beside_a_record_in_the_bots_flow(
    opened: tuple[Store, redis.Redis, str],  # noqa: F811
) -> None:
    """Until 2026-12-07 the entry stayed: listed, counted in the wait estimate and the console's board beside a
    record still in the bot's flow (a listener's take refused ``not_active``) until the message was processed again,
    or the abandon timer when that redo ended otherwise."""
    store, client, _ = opened
    conversation, _ = await store.active_conversation(ChannelName.MESSENGER, "sender-4", datetime.now(UTC))
    cid = conversation.id
    await _hand_off_refused(store, client, cid)
    record = await store.get_conversation(cid)
    assert record is not None and record.status is Status.BOT  # refused: it is still with the bot
    assert await store.waiting() == [], "a refused hand-off left its queue entry beside a record in the bot's flow"
    assert await store.queue_entry(cid) is None
    assert client.exists(K.lock(cid)) == 0  # the repair's lock let go


async def test_a_refused_hand_off_never_takes_the_next_holders_queue_entry(
    opened: tuple[Store, redis.Redis, str],  # noqa: F811
) -> None:
    """The next holder handed the conversation off meanwhile (the refused message processed again, say): its record
    says queued, so the entry (the refused commit's, written over its own, or its own) stays: a young person is never
    left out of the queue."""
    store, client, url = opened
    conversation, _ = await store.active_conversation(ChannelName.MESSENGER, "sender-5", datetime.now(UTC))
    cid = conversation.id
    other = await open_store(url, keys=store_keys(url))
    try:
        await _hand_off_refused(store, client, cid, meanwhile=other)
    finally:
        await other.close()
    record = await store.get_conversation(cid)
    assert record is not None and record.status is Status.QUEUED
    assert [e.conversation_id for e in await store.waiting()] == [cid], "a waiting young person was taken out"


async def test_a_refused_ending_leaves_no_expiry_on_the_transcript_of_a_conversation_that_goes_on(
    opened: tuple[Store, redis.Redis, str],  # noqa: F811
) -> None:
    """An ending's transcript expiry (``StatusEffects.finished``: the retention and the purge's backstop, about 32
    days; the conversation's slot, a plain ``EXPIRE``) is sent with its record, after it: until 2026-12-07 it went
    before the record, and a record refused by the lock's fence left it on the transcript of a conversation that
    stays open, which then lapsed while the young person was still talking (its next ending sets it again, which a
    conversation open that long never reaches). A kept ending still sets it."""
    store, client, _ = opened
    now = datetime.now(UTC)
    conversation, _ = await store.active_conversation(ChannelName.MESSENGER, "sender-6", now)
    cid = conversation.id
    await store.append_transcript(entry(cid, "e-1"))
    ttl = 30 * 24 * 3600

    async def end() -> None:
        found = await store.get_conversation(cid)
        assert found is not None and found.status is Status.BOT
        await lifecycle.transition(found, Trigger.END, StatusEffects(store, now, ttl))  # as the dispatcher ends one
        await store.save_conversation(found)

    with pytest.raises(LockLost):
        async with store.locked_batch(cid):
            await end()
            lose_the_lock(client, cid)  # the failover: the lock gone before the batch's writes are sent
    record = await store.get_conversation(cid)
    assert record is not None and record.status is Status.BOT  # refused: it goes on
    assert client.ttl(K.transcript(cid)) == -1, "a refused ending set its expiry on a transcript still in use"
    async with store.locked_batch(cid):  # the message processed again: ended, and the expiry set with it
        await end()
    assert 0 < client.ttl(K.transcript(cid)) <= ttl
