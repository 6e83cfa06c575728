"""The supervision page's bulk close (``POST /api/floods/close``, ``Safety._close``) cut short on Redis: one goodbye,
closed, in no queue, never takeable, and a bulk close made again tells nothing more.

Until branch rel34 the bulk close was not a batch, its goodbye had a random id and it was never listed as begun
(docs/guarantees.md, "still not swept", rel33's audit): cut before its goodbye's listing (``outbox_list``) the
goodbye stayed pending for good, the young person still waiting; before ``cancel_timers`` or ``remove_from_queue``
they were told goodbye and left waiting, takeable (told their place after it, idle-closed a day later with a second
goodbye); before the record, the check put them back in line after the goodbye; the request made again told another
goodbye.

Real cuts: the real gateway's store goes through ``tests/cutting_proxy.py``, which resets its Redis connection before
the chosen command of the bulk close (the request answered 503, "try again shortly"); the supervisor makes it again;
then the real check and the real timers, as the sibling tests in ``tests/test_leaving_cut_refused.py``.
"""

from __future__ import annotations

import pytest

from gateway import leaving
from gateway.app import SUPERVISOR
from gateway.conversation import Status
from gateway.errors import ActionRefused
from gateway.language import language_of
from gateway.messages import ChannelName, Inbound
from gateway.settings import Settings
from gateway.store import Author, Store
from tests.conftest import AppFactory, Clock, add_listener, login
from tests.console.test_handback_crash import instance, redis_store
from tests.console.test_take_crash import next_check
from tests.cutting_proxy import cutting_proxy
from tests.losing_proxy import script_sha, script_text
from tests.store.conftest import redis_url
from tests.test_leaving_cut import timers_armed, timers_of, waiting_on_messenger
from tests.test_webchat import WALK_TO_QUEUE

__all__ = ["redis_store", "redis_url"]  # fixtures used below

CUTS = ["outbox_list", "cancel_timers", "remove_from_queue", "put_conversation"]


async def in_the_bot_on_messenger(store: Store, clock: Clock) -> str:
    """A young person on Messenger still in the bot (the walk's first answer only): the conversation's id."""
    dispatcher, _ = instance(store, clock)
    for number, text in enumerate(WALK_TO_QUEUE[:1]):
        assert await dispatcher.handle_inbound(Inbound(ChannelName.MESSENGER, "psid-idle", f"mid.{number}", text))
    conversation = await store.find_active_conversation(ChannelName.MESSENGER, "psid-idle")
    assert conversation is not None and conversation.status is Status.BOT, conversation
    return conversation.id


@pytest.mark.redis
@pytest.mark.parametrize("cut", CUTS)
@pytest.mark.parametrize("where", ["queued", "bot"])
async def test_a_bulk_close_cut_short_is_completed_told_goodbye_once_and_made_again_tells_nothing_more(
    redis_store: Store, redis_url: str, clock: Clock, settings: Settings, make_client: AppFactory, cut: str,
    where: str,
) -> None:  # fmt: skip
    """A young person waits on Messenger (``queued``) or is still in the bot (``bot``); Sam, a supervisor, closes the
    flood from the supervision page (the real gateway, its store through the cutting proxy, its workers stopped: the
    test runs the check and the timers). The gateway dies in the middle of the bulk close, before ``cut`` (the request
    fails, 503): the ending listed as begun. Anne tries to take the young person: refused (``not_active``). Sam makes
    the bulk close again: skipped, counted as ending (``{"closed": 0, "ending": 1}``). After a check, a timers' pass 10
    minutes later, a check, a timers' pass two days later (past the idle close) and a check: the young person was told
    one goodbye (``ended``, its id derived from the conversation and the bulk close), listed to be sent once and last;
    closed ``closed_in_bulk``; in no queue; one ``bulk_close_completed`` line after Sam's two ``bulk_close_asked``;
    nothing listed, no timer armed. Before rel34: taken after the goodbye (``outbox_list``, ``cancel_timers``: then
    idle-closed two days later, a second goodbye; ``remove_from_queue``), or told a second goodbye by the bulk close
    made again (``put_conversation``)."""
    if where == "queued":
        conversation_id = await waiting_on_messenger(redis_store, clock)
    else:
        conversation_id = await in_the_bot_on_messenger(redis_store, clock)
    since = len(await redis_store.transcript(conversation_id))
    async with cutting_proxy(redis_url) as proxy:
        client = await make_client(settings.replace(store=proxy.url), worker_poll_seconds=3600)
        await client.app[SUPERVISOR].stop()  # its timers, check and outbox: run below, in order
        await add_listener(client, "sam", supervisor=True)
        await login(client, "sam")
        rows = (await (await client.get("/api/floods")).json())["conversations"]
        assert [r["id"] for r in rows] == [conversation_id], rows  # shown: Sam selects it

        marker = script_sha(cut) if cut == "remove_from_queue" else script_text(cut)
        proxy.cut_before(marker, conversation_id.encode())
        # the walk's young person says they are in danger now (an urgent hand-off): at risk, closed deliberately
        first = await client.post("/api/floods/close", json={"ids": [conversation_id], "include_flagged": True})
        assert proxy.cut == 1
        assert first.status == 503, await first.text()

        clock.advance(seconds=10)  # the lost release made again by token (or lapsed in 6 s)
        _, actions = instance(redis_store, clock)
        try:
            await actions.take(conversation_id, "anne", 3)
            taken: str | None = "taken"
        except ActionRefused as refusal:
            taken = refusal.code
        again = await client.post("/api/floods/close", json={"ids": [conversation_id], "include_flagged": True})
        assert again.status == 200, await again.text()
        answer = await again.json()

    await next_check(redis_store, clock)
    clock.advance(minutes=10)
    await timers_of(redis_store, clock).fire_due()  # any timer left: nothing more told
    await next_check(redis_store, clock)
    clock.advance(days=2)
    await timers_of(redis_store, clock).fire_due()  # past the idle close: nothing more told
    await next_check(redis_store, clock)

    after = await redis_store.get_conversation(conversation_id)
    assert after is not None
    engine = instance(redis_store, clock)[1].flows.for_version(after.flow_version)
    ended = engine.message("ended", language_of(after, engine.flow))
    told = [e for e in (await redis_store.transcript(conversation_id))[since:] if e.author is Author.BOT]
    assert [e.text for e in told] == [ended], [e.text for e in told]  # one goodbye, the bulk close's, nothing after
    assert told[0].id == leaving.goodbye_id(conversation_id, "closed_in_bulk")
    due = [i.id for i in await redis_store.outbox_due(clock(), 10, run=100)]  # the walk's replies, none sent here
    assert due.count(told[0].id) == 1 and due[-1] == told[0].id, due  # listed to be sent once, last
    assert (after.status, after.outcome) == (Status.CLOSED, "closed_in_bulk"), after
    assert await redis_store.waiting() == [] and await redis_store.queue_entry(conversation_id) is None
    assert taken == "not_active", taken  # never takeable after the goodbye
    skipped = {"closed": 0, "ending": 1, "flagged_kept": 0, "flagged_kept_ids": []}
    assert answer == skipped, answer  # made again: skipped, nothing told
    lines = [(e.actor, e.action) for e in await redis_store.audit_log() if e.subject == conversation_id]
    # newest first: who asked for the close is audited before any close (the request's result line is lost with the
    # cut), the cut close completed by the check, once
    asked = ("sam", "bulk_close_asked")
    assert lines == [("gateway", "bulk_close_completed"), asked, asked], lines
    assert await redis_store.leavings_begun() == {} and await redis_store.closes_begun() == {}
    assert await timers_armed(redis_store, clock, conversation_id) == []
