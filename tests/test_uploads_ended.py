"""A web chat image whose conversation ended (not erased) while it was being kept (the real app on SQLite and a real
Redis, a raw upload and websockets as the page's): the image found the conversation open, then the young person
pressed "Terminer" in another tab before the image reached the conversation's lock. As a message in that window,
the image goes into the young person's next conversation (``store.locked_active``: ended, not erased, as without
``only``), and its file is kept with that conversation (``Dispatcher.moved``, ``Uploads.moved``).

Until 2026-12-07 the file stayed under the ended conversation's id while the next one showed it: the ended one's
purge deleted a file the next one still showed (the listener's fetch of it answered 502). The erasure of the next
one took the file then too, and still takes every copy (it erases every conversation of the young person, the ended
one with its copy): that half guards the move (a file kept under any other key than the conversation's fails it).

Two paths move the file: the upload's own (``Uploads._deliver``: none other open, the next one opened within the
new-chat limits) and the dispatcher's (``Dispatcher.moved``: another tab opened the next one before the image reached
the lock: "the next one opened first"). Until 2026-12-07 (noon) only the first was tested: the dispatcher's move could
be removed with every case here passing.

The step is held by the store double of tests/store_holds.py (:class:`Holds`: the real store, nothing of the
gateway patched), at the image's ``put_upload`` (:func:`image_while_ended`, which tests/test_webchat_ended_race.py
and tests/test_webchat_client_tag.py share).
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import timedelta
from typing import Any, cast

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from gateway.app import FLOWS, METRICS, STORE
from gateway.messages import ChannelName
from gateway.retention import Retention
from gateway.settings import Settings
from gateway.store import Author, Store
from tests.conftest import AppFactory, add_listener, login
from tests.store.conftest import STORES, redis_url, store_url
from tests.store_holds import Holds, holds
from tests.test_uploads import photo
from tests.test_webchat import hello

__all__ = ["holds", "redis_url", "store_url"]  # fixtures used below

Client = TestClient  # type: ignore[type-arg]


async def ended(client: Client, conversation_id: str) -> None:
    """Wait for the young person's "Terminer" to have closed the conversation (kept, not erased)."""
    async with asyncio.timeout(20):
        while (found := await client.app[STORE].get_conversation(conversation_id)) is None or found.active:
            assert found is not None, "the conversation was erased, not ended"
            await asyncio.sleep(0.05)


async def image_while_ended(chat: Client, store: Holds, session: dict[str, Any]) -> asyncio.Task[ClientResponse]:
    """The page's image (``u1``) held at its ``put_upload`` (it found the conversation open, cleaned, not kept yet)
    while the young person presses "Terminer" in another tab, until that conversation is ended: the image's
    request, still held (the caller sets :attr:`Holds.go`)."""
    old = session["conversation"]
    store.hold("put_upload", old)
    headers = {"X-Chat-Token": session["token"], "X-Upload-Id": "u1"}
    image = asyncio.create_task(chat.post("/chat/upload", data=photo(), headers=headers))
    async with asyncio.timeout(20):
        await store.reached.wait()  # found the conversation open, cleaned, not kept yet
    async with chat.ws_connect("/chat/ws") as other_tab:  # "Terminer" in another tab (its hello resumes)
        await hello(other_tab, session["token"])
        await other_tab.send_json({"type": "end"})
        await ended(chat, old)
    return image


@pytest.mark.parametrize("store_url", STORES, indirect=True)
@pytest.mark.parametrize("then", ["the ended one purged", "the next one erased", "the next one opened first"])
async def test_an_image_whose_conversation_ended_meanwhile_is_kept_with_the_next_one(
    holds: tuple[Settings, Holds], make_client: AppFactory, then: str
) -> None:  # holds first: the app (which closes the store) stops before the fixture closes it again
    settings, store = holds
    chat = await make_client(settings, store=cast(Store, store))
    async with chat.ws_connect("/chat/ws") as page:
        session = await hello(page)
    old = session["conversation"]
    image = await image_while_ended(chat, store, session)
    opened = None
    if then == "the next one opened first":  # a third tab's hello begins the next one before the image's lock
        async with chat.ws_connect("/chat/ws") as third_tab:
            opened = (await hello(third_tab, session["token"]))["conversation"]
        assert opened != old
    store.go.set()
    answer = await image
    assert answer.status == 201  # taken, as a message is in that window
    following = await chat.app[STORE].find_active_conversation(ChannelName.WEBCHAT, session["token"])
    assert following is not None and following.id != old
    assert await answer.json() == {"id": "u1", "conversation": following.id}  # the page follows it (chat.js)
    assert opened in (None, following.id)  # the image went into the one the third tab opened
    entries = await chat.app[STORE].transcript(following.id)
    attachments = [(e.author, a) for e in entries for a in e.attachments]  # numbered as the console numbers them
    [number] = [n for n, (author, _) in enumerate(attachments) if author == Author.USER]
    attachment = attachments[number][1]
    key = (attachment.url or "").removeprefix("upload:")
    assert await store.get_upload(key) is not None
    await add_listener(chat, "sam", supervisor=True)
    await login(chat, "sam")
    if then != "the next one erased":
        closed_days = chat.app[FLOWS].engine().flow.retention.closed_days
        later = following.created_at + timedelta(days=closed_days + 1)
        retention = Retention(chat.app[STORE], chat.app[FLOWS], clock=lambda: later, metrics=chat.app[METRICS])
        assert (await retention.purge(later)).conversations == 1  # the ended one; the next one is open
        shown = await chat.get(f"/api/conversations/{following.id}/attachments/{number}")
        assert shown.status == 200, shown.status  # before: 502, the file deleted with the ended conversation
        assert await store.get_upload(key) is not None
    else:
        erased = await chat.post(f"/api/conversations/{following.id}/erase", json={"confirm": True})
        assert erased.status == 200, await erased.text()
        kept_under_old = f"{old}/{hashlib.sha256(b'u1').hexdigest()[:32]}"  # gateway/uploads.py's first key
        assert await store.get_upload(key) is None  # the image the next one showed
        assert await store.get_upload(kept_under_old) is None  # nor the copy left with the ended one
