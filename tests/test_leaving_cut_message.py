"""A young person who writes while their ending, cut short on Redis after its goodbye, is still listed as begun.

An ending of a conversation with the bot (the quick exit, "Terminer", the supervision page's bulk close) writes, under
the conversation's lock: its listing (``store.begin_leaving``), its note or goodbye, its timers' cancellation, then
the record, then its unlisting. Cut before the record, the record still says "with the bot" until the alert check
completes the ending (every 10 s). Until branch rel35 a message arriving in those seconds was answered by the bot
after the goodbye, in the old conversation, then closed by the check (docs/guarantees.md, "still not swept").

Now the message's processing finds the ending listed (read with the lock, no round trip more) and completes it first,
as the check does (``Actions.complete_leaving``, under the lock), then handles the message as one arriving after that
conversation closed: on a provider channel a new conversation, greeted by the bot (a risky message flagged in it); on
the web chat none (a message never starts the next conversation silently there): the page is told ``ended`` and puts
the words back in its message box.

Real cuts: ``tests/cutting_proxy.py`` resets the ending's Redis connection before the record's write
(``put_conversation``), after its goodbye's listing; the message goes through the real app, on the same Redis.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest

from gateway import leaving
from gateway.app import DISPATCHER, SUPERVISOR
from gateway.conversation import Status
from gateway.ids import inbound_entry_id
from gateway.language import language_of
from gateway.messages import ChannelName, Inbound
from gateway.settings import Settings
from gateway.store import Author, Store, open_store
from tests.conftest import AppFactory, Clock, add_listener, login
from tests.console.test_handback_crash import instance, redis_store, store_keys
from tests.console.test_take_crash import next_check
from tests.cutting_proxy import cutting_proxy
from tests.losing_proxy import script_text
from tests.store.conftest import redis_url
from tests.test_leaving_cut import DiesAtTheRecord, Killed, cut_at
from tests.test_leaving_cut_bulk import in_the_bot_on_messenger
from tests.test_security import DANGER
from tests.test_webchat import WALK_TO_QUEUE, hello, receive_until

__all__ = ["redis_store", "redis_url"]  # fixtures used below

COMPLETED = {"quick_exit": "leaving_completed", "ended": "leaving_completed", "closed_in_bulk": "bulk_close_completed"}


async def end(store: Store, clock: Clock, conversation_id: str, how: str) -> None:
    """The ending ``how`` made by an instance on ``store``: the young person's quick exit or "Terminer", or a
    supervisor's bulk close (as ``Safety._close`` makes it: under the lock, in the conversation's batch)."""
    dispatcher, _ = instance(store, clock)
    if how == "quick_exit":
        await leaving.quick_exit(dispatcher, cast(Any, store), conversation_id, clock())
    elif how == "ended":
        await leaving.ended(dispatcher, cast(Any, store), conversation_id, clock())
    else:
        async with store.locked_batch(conversation_id):
            conversation = await store.get_conversation(conversation_id)
            assert conversation is not None
            await leaving.close_in_bulk(dispatcher, cast(Any, store), conversation, clock())


async def goodbye(store: Store, conversation_id: str, how: str) -> list[str]:
    """What the ending tells the young person: "Terminer"'s and the bulk close's goodbye (``ended``), a quick exit
    nothing."""
    conversation = await store.get_conversation(conversation_id)
    assert conversation is not None
    engine = instance(store, lambda: conversation.updated_at)[1].flows.for_version(conversation.flow_version)
    return [] if how == "quick_exit" else [engine.message("ended", language_of(conversation, engine.flow))]


async def settled(
    store: Store, clock: Clock, conversation_id: str, how: str, since: int, *, asked: bool = False
) -> list[Any]:
    """After two checks: the old conversation ended that way, told its goodbye once and nothing after it, completed
    once (one audit line, after the supervisor's ``bulk_close_asked`` when the ending was ``asked`` through the
    console), nothing listed. Its entries since ``since``."""
    await next_check(store, clock)
    await next_check(store, clock)
    after = await store.get_conversation(conversation_id)
    assert after is not None and not after.active, after
    written = (await store.transcript(conversation_id))[since:]
    told = [e.text for e in written if e.author is Author.BOT]
    assert told == await goodbye(store, conversation_id, how), told  # one goodbye (none: a quick exit), nothing after
    assert [e for e in written if e.author is Author.USER] == []  # the message is not the old conversation's
    lines = [e.action for e in await store.audit_log() if e.subject == conversation_id]
    assert lines == [COMPLETED[how], *(["bulk_close_asked"] if asked else [])], lines  # completed once, newest first
    assert await store.leavings_begun() == {}
    return written


@pytest.mark.redis
@pytest.mark.parametrize("how", ["quick_exit", "ended", "closed_in_bulk"])
async def test_a_web_chat_message_while_its_ending_is_cut_short_is_told_ended_never_answered_after_the_goodbye(
    redis_store: Store, redis_url: str, clock: Clock, settings: Settings, make_client: AppFactory, how: str
) -> None:
    """On the web chat, still with the bot, the young person's quick exit, "Terminer" or a supervisor's bulk close is
    cut before its record; the young person's page (its socket still open) sends a message. The page is told
    ``ended`` (as after any end: the words go back to its message box, nothing recorded, no new conversation started
    silently), no bot entry but the goodbye reaches it; the ending was completed at once (one goodbye), and the checks
    after change nothing. Before: the bot answered the message in the old conversation, after the goodbye. (Until
    rel37 the page opened its socket again on the same token here; since rel37 that hello completes the ending itself,
    ``tests/test_leaving_cut_hello.py``, so the message is sent on the socket that stayed open.)"""
    client = await make_client(settings.replace(store=redis_url), worker_poll_seconds=3600)
    await client.app[SUPERVISOR].stop()  # its timers and check: run below, in order
    frames: list[dict[str, Any]] = []
    async with client.ws_connect("/chat/ws") as ws:
        token = (await hello(ws))["token"]
        await ws.send_json({"type": "message", "id": "m0", "text": WALK_TO_QUEUE[0]})
        await receive_until(ws, lambda f: f == {"type": "ack", "id": "m0"})
        found = await redis_store.find_active_conversation(ChannelName.WEBCHAT, token)
        assert found is not None and found.status is Status.BOT, found
        conversation_id = found.id
        clock.advance(minutes=1)
        since = len(await redis_store.transcript(conversation_id))

        await cut_at(redis_url, clock, conversation_id, script_text("put_conversation"),
                     lambda store: end(store, clock, conversation_id, how))  # fmt: skip
        cut = await redis_store.get_conversation(conversation_id)
        assert cut is not None and cut.status is Status.BOT  # the record not written: still "with the bot"
        assert conversation_id in await redis_store.leavings_begun()

        clock.advance(seconds=5)  # before the check; the lost release made again by token
        await ws.send_json({"type": "message", "id": "m-after", "text": "t'es encore là ?"})
        await receive_until(ws, lambda f: f.get("id") == "m-after" or f["type"] == "error", frames=frames)
    said = await goodbye(redis_store, conversation_id, how)
    told = [e.text for e in (await redis_store.transcript(conversation_id))[since:] if e.author is Author.BOT]
    assert told == said, told  # before any check: nothing after the goodbye
    answered = [f["entry"]["text"] for f in frames if f["type"] == "entry" and f["entry"]["author"] == "bot"]
    assert [text for text in answered if text not in said] == [], answered  # the goodbye's event at most
    assert {"type": "error", "code": "ended"} in [{k: f.get(k) for k in ("type", "code")} for f in frames], frames

    await settled(redis_store, clock, conversation_id, how, since)
    assert await redis_store.find_active_conversation(ChannelName.WEBCHAT, token) is None  # none started


@pytest.mark.redis
@pytest.mark.parametrize("text", ["3", DANGER], ids=["ordinary", "risky"])
async def test_a_messenger_message_while_a_bulk_close_is_cut_short_goes_to_a_new_conversation_once(
    redis_store: Store, redis_url: str, clock: Clock, settings: Settings, make_client: AppFactory, text: str
) -> None:
    """On Messenger, still with the bot, the supervision page's bulk close is cut before its record (the request
    fails, 503); the young person writes. The message is recorded once, in a new conversation greeted by the bot (as
    after any close on a provider channel), a risky one flagged there (escalate, never silence); the old one got its
    goodbye only, listed to be sent last, nothing after it; the message's redelivery is a duplicate; the checks after
    change nothing. Before: the bot answered in the old conversation after the goodbye, then the check closed it."""
    conversation_id = await in_the_bot_on_messenger(redis_store, clock)
    since = len(await redis_store.transcript(conversation_id))
    async with cutting_proxy(redis_url) as proxy:
        cut_client = await make_client(settings.replace(store=proxy.url), worker_poll_seconds=3600)
        await cut_client.app[SUPERVISOR].stop()
        proxy.cut_before(script_text("put_conversation"), conversation_id.encode())
        await add_listener(cut_client, "sam", supervisor=True)
        await login(cut_client, "sam")
        first = await cut_client.post("/api/floods/close", json={"ids": [conversation_id]})
        assert proxy.cut == 1
        assert first.status == 503, await first.text()
    assert conversation_id in await redis_store.leavings_begun()

    clock.advance(seconds=5)  # before the check; the lost release made again by token
    client = await make_client(settings.replace(store=redis_url), worker_poll_seconds=3600)
    await client.app[SUPERVISOR].stop()
    inbound = Inbound(ChannelName.MESSENGER, "psid-idle", "mid.after", text)
    assert await client.app[DISPATCHER].handle_inbound(inbound)
    assert not await client.app[DISPATCHER].handle_inbound(inbound)  # redelivered: a duplicate
    told = [e.text for e in (await redis_store.transcript(conversation_id))[since:] if e.author is Author.BOT]
    assert told == await goodbye(redis_store, conversation_id, "closed_in_bulk"), told  # before any check

    written = await settled(redis_store, clock, conversation_id, "closed_in_bulk", since, asked=True)
    assert written[-1].author is Author.BOT  # the goodbye last
    after = await redis_store.get_conversation(conversation_id)
    assert after is not None and (after.status, after.outcome) == (Status.CLOSED, "closed_in_bulk"), after
    due = [i.id for i in await redis_store.outbox_due(clock(), 10, run=100) if i.conversation_id == conversation_id]
    assert due[-1] == leaving.goodbye_id(conversation_id, "closed_in_bulk"), due  # nothing listed after it

    new = await redis_store.find_active_conversation(ChannelName.MESSENGER, "psid-idle")
    assert new is not None and new.id != conversation_id, new
    entries = await redis_store.transcript(new.id)
    mine = [e for e in entries if e.author is Author.USER]
    assert [(e.id, e.text) for e in mine] == [(inbound_entry_id(inbound), text)]  # once, in the new conversation
    assert any(e.author is Author.BOT for e in entries)  # the bot greets the new conversation
    if text == DANGER:
        assert mine[0].flag is not None and new.flag is not None, (mine, new)  # flagged as in any new conversation


@pytest.mark.parametrize("how", ["quick_exit", "ended"])
async def test_on_sqlite_a_message_after_an_ending_that_died_is_answered_in_the_same_conversation(
    tmp_path: Path, clock: Clock, how: str
) -> None:
    """SQLite writes an ending in one transaction, never listed: one that dies writes nothing, and the young person's
    next message is answered by the bot in the same conversation, as before rel35 (nothing read, nothing completed)."""
    url = f"sqlite:///{tmp_path}/gateway.sqlite3"
    store = await open_store(url, keys=store_keys(url))
    try:
        dispatcher, _ = instance(store, clock)
        assert await dispatcher.handle_inbound(Inbound(ChannelName.WEBCHAT, "t" * 24, "m0", WALK_TO_QUEUE[0]))
        [conversation_id] = await store.conversation_ids_by_status(Status.BOT)
        since = len(await store.transcript(conversation_id))
        dying = DiesAtTheRecord(store)
        with pytest.raises(Killed):
            await end(cast(Store, dying), clock, conversation_id, how)
        assert await store.leavings_begun() == {}
        wired, actions = instance(store, clock)
        wired.complete_leaving = actions.complete_leaving  # as the app wires it
        assert await wired.handle_inbound(Inbound(ChannelName.WEBCHAT, "t" * 24, "m1", "t'es encore là ?"))
        after = await store.get_conversation(conversation_id)
        assert after is not None and after.status is Status.BOT, after
        written = (await store.transcript(conversation_id))[since:]
        assert [e.author for e in written][:2] == [Author.USER, Author.BOT], written  # answered as before
    finally:
        await store.close()
