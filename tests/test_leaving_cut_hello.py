"""A web chat page that opens again (``hello``) on a conversation whose ending, cut short on Redis after its goodbye,
is still listed as begun; and an image sent then.

An ending of a conversation with the bot (the quick exit, "Terminer", the supervision page's bulk close) cut before
its record stays listed as begun (``hg:lv:{<conv>}`` and the queue's leaving list), the record still "with the bot",
until the alert check completes it (every 10 s). Since rel35 a message arriving meanwhile completes it first
(``tests/test_leaving_cut_message.py``). Until branch rel37 a page that opened again in those seconds (its socket
cut, a reload, another tab: ``hello`` with its token) was shown the old conversation as still with the bot, its
history up to the goodbye, and only its next message was told ``ended``; an image it sent was stored before its
refusal (409 ``ended``).

Now the hello finds the ending listed (``Dispatcher.ending_completed``: ``store.ending_begun``, one ``GET`` of the
conversation's key) and completes it first, with the alert check's own completion (``Actions.complete_leaving``, as
the app wires the dispatcher: one goodbye, audited once), then is answered as a hello after that ending completed
normally: a new conversation for the same token, greeted by the bot, asked of the gate's new-chat limits. The
reference is made beside it in each case: the same ending, not cut, then a hello with its token; the two pages are
told the same. An upload on such a conversation is refused 409 ``ended`` before anything is stored.

Real cuts: ``tests/cutting_proxy.py`` resets the ending's Redis connection before the record's write
(``put_conversation``), after its goodbye; the pages go through the real app's web chat socket, on the same Redis.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.app import STORE, SUPERVISOR
from gateway.conversation import Status
from gateway.messages import ChannelName
from gateway.settings import Settings
from gateway.store import Author, Store
from tests.conftest import AppFactory, Clock
from tests.console.test_handback_crash import redis_store
from tests.losing_proxy import script_text
from tests.store.conftest import redis_url
from tests.test_leaving_cut import DiesAtTheRecord, Killed, cut_at
from tests.test_leaving_cut_message import COMPLETED, end, goodbye, settled
from tests.test_uploads import photo, upload
from tests.test_webchat import WALK_TO_QUEUE, hello, say

__all__ = ["redis_store", "redis_url"]  # fixtures used below

Client = TestClient  # type: ignore[type-arg]


async def with_the_bot(client: Client, store: Store) -> tuple[str, str]:
    """A web chat page with the bot, its socket closed: its token and its conversation's id."""
    async with client.ws_connect("/chat/ws") as ws:
        token = str((await hello(ws))["token"])
        await say(ws, "m0", WALK_TO_QUEUE[0])
    found = await store.find_active_conversation(ChannelName.WEBCHAT, token)
    assert found is not None and found.status is Status.BOT, found
    return token, found.id


async def opened_again(client: Client, token: str) -> dict[str, Any]:
    """What a page opening again on ``token`` is told: its session frame, without what differs between any two
    conversations (entry ids and times, the conversation's id; the token checked to be the one the page sent)."""
    async with client.ws_connect("/chat/ws") as ws:
        session = await hello(ws, token)
    assert session["token"] == token, session
    history = [(e["author"], e["text"], e["choices"], e["images"]) for e in session["history"]]
    kept = {k: v for k, v in session.items() if k not in ("token", "history", "conversation")}
    return {**kept, "history": history}


async def ended_as(store: Store, conversation_id: str) -> tuple[Any, ...]:
    after = await store.get_conversation(conversation_id)
    assert after is not None
    return after.status, after.outcome, after.left_how


@pytest.mark.redis
@pytest.mark.parametrize("how", ["quick_exit", "ended", "closed_in_bulk"])
async def test_a_page_opening_again_on_an_ending_cut_short_is_told_what_it_is_told_after_that_ending(
    redis_store: Store, redis_url: str, clock: Clock, settings: Settings, make_client: AppFactory, how: str
) -> None:
    """Two pages with the bot. The first one's quick exit, "Terminer" or bulk close is made whole, the second one's
    cut before its record (listed as begun, still "with the bot", after its goodbye); each page opens again (``hello``
    with its token) 5 s later, before any check. The second page is told exactly what the first is told (a new
    conversation for its token, greeted by the bot, not the old one "with the bot"); the cut ending was completed by
    the hello (audited once, nothing listed, before any check), ended as the first (status, outcome, leaving); the
    young person got one goodbye (none for a quick exit) and nothing after it; the two checks after find nothing to do.
    Before rel37: the second page was shown the old conversation, status ``bot``, its history up to the goodbye."""
    client = await make_client(settings.replace(store=redis_url), worker_poll_seconds=3600)
    await client.app[SUPERVISOR].stop()  # its timers and check: run below, in order
    whole_token, whole = await with_the_bot(client, redis_store)
    cut_token, cut = await with_the_bot(client, redis_store)
    clock.advance(minutes=1)
    since = len(await redis_store.transcript(cut))

    await end(redis_store, clock, whole, how)  # the reference: the same ending, made whole
    await cut_at(redis_url, clock, cut, script_text("put_conversation"), lambda store: end(store, clock, cut, how))
    listed = await redis_store.get_conversation(cut)
    assert listed is not None and listed.status is Status.BOT  # the record not written: still "with the bot"
    assert cut in await redis_store.leavings_begun()

    clock.advance(seconds=5)  # before the check; the lost release made again by token
    told_after_the_ending = await opened_again(client, whole_token)
    told_after_the_cut = await opened_again(client, cut_token)
    assert told_after_the_ending["status"] == "bot", told_after_the_ending  # a new conversation, greeted
    assert told_after_the_cut == told_after_the_ending

    assert await redis_store.leavings_begun() == {}  # completed by the hello, before any check
    lines = [e.action for e in await redis_store.audit_log() if e.subject == cut]
    assert lines == [COMPLETED[how]], lines
    assert await ended_as(redis_store, cut) == await ended_as(redis_store, whole)
    for token, old in ((whole_token, whole), (cut_token, cut)):
        new = await redis_store.find_active_conversation(ChannelName.WEBCHAT, token)
        assert new is not None and new.id != old and new.status is Status.BOT, new
    told = [e.text for e in (await redis_store.transcript(cut))[since:] if e.author is Author.BOT]
    assert told == await goodbye(redis_store, cut, how), told  # one goodbye (none: a quick exit), nothing after

    await settled(redis_store, clock, cut, how, since)  # the checks find nothing to do: still one line, one goodbye


@pytest.mark.redis
async def test_an_image_sent_on_an_ending_cut_short_is_refused_ended_before_it_is_stored(
    redis_store: Store, redis_url: str, clock: Clock, settings: Settings, make_client: AppFactory
) -> None:
    """The young person's "Terminer" cut short after its goodbye, then the page's image (``POST /chat/upload``) 5 s
    later, before any check: refused 409 ``ended`` as after any end, and nothing of it stored (the ending completed
    first, audited once; the checks after find nothing to do). Before rel37: refused 409 ``ended`` by the message's
    processing, the image stored first, left to the conversation's purge."""
    client = await make_client(settings.replace(store=redis_url), worker_poll_seconds=3600)
    await client.app[SUPERVISOR].stop()
    token, cut = await with_the_bot(client, redis_store)
    clock.advance(minutes=1)
    since = len(await redis_store.transcript(cut))
    await cut_at(redis_url, clock, cut, script_text("put_conversation"), lambda store: end(store, clock, cut, "ended"))
    assert cut in await redis_store.leavings_begun()

    clock.advance(seconds=5)
    assert await upload(client, token, photo(), "u-after") == (409, "ended")
    key = f"{cut}/{hashlib.sha256(b'u-after').hexdigest()[:32]}"  # where gateway/uploads.py keeps it
    assert await redis_store.get_upload(key) is None
    assert await redis_store.leavings_begun() == {}
    await settled(redis_store, clock, cut, "ended", since)
    assert await redis_store.find_active_conversation(ChannelName.WEBCHAT, token) is None  # none started


@pytest.mark.parametrize("how", ["quick_exit", "ended"])
async def test_on_sqlite_a_page_opening_again_after_an_ending_that_died_resumes_the_same_conversation(
    tmp_path: Path, clock: Clock, settings: Settings, make_client: AppFactory, how: str
) -> None:
    """SQLite writes an ending in one transaction, never listed: one that dies writes nothing, and a page opening
    again is shown the same conversation with the bot, its history as before the ending. Passes before and after
    rel37 by design (nothing is listed, nothing read, nothing completed)."""
    client = await make_client(settings, worker_poll_seconds=3600)
    await client.app[SUPERVISOR].stop()
    store = client.app[STORE]
    token, conversation_id = await with_the_bot(client, store)
    before = await opened_again(client, token)
    dying = DiesAtTheRecord(store)
    with pytest.raises(Killed):
        await end(dying, clock, conversation_id, how)  # type: ignore[arg-type]
    assert await store.leavings_begun() == {}
    assert await opened_again(client, token) == before
    again = await store.find_active_conversation(ChannelName.WEBCHAT, token)
    assert again is not None and again.id == conversation_id and again.status is Status.BOT, again
