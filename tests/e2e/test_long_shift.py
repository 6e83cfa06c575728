"""A night shift, compressed, in a real Chromium: the console of a supervisor and the supervision board stay open
while thousands of live events pass (every conversation's deliveries and risk flags, for the supervisors). What
each page keeps of them is bounded by what it shows, not by the events it has seen: a wall screen left on all night
is not a page whose state grows with every message of every young person.

What a page keeps is read in its scripts' own state (the variables of the script's closure, through Chromium's
DevTools protocol: a function the script added as an event listener, and its scopes), never by changing the page.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import BrowserContext, Page, expect

from gateway.app import STORE
from gateway.conversation import RiskFlag
from gateway.events import Alert, DeliveryChanged, FlagRaised, QueueChanged, Typing
from gateway.store import Delivery
from tests.e2e.channel_support import eventually
from tests.e2e.test_chat import open_chat, walk_to_queue
from tests.e2e.test_console import add_listeners, log_in
from tests.e2e.test_supervision_flags import supervision_page

pytestmark = pytest.mark.browser

BATCHES, PER_BATCH = 10, 100  # a thousand events of conversations the page does not show

KEPT = """function () {  // how many entries a map holds (one level of maps of maps counted through)
  return Object.keys(this).reduce(function (n, key) {
    var value = this[key];
    return n + (value && typeof value === "object" && !Array.isArray(value) ? Object.keys(value).length : 1);
  }.bind(this), 0);
}"""


async def kept(page: Page, target: str, event: str, name: str) -> int:
    """How many entries the variable ``name`` holds, in the closure of the first ``event`` listener of ``target``
    (a script's own state, read without changing the page)."""
    cdp = await page.context.new_cdp_session(page)

    async def properties(object_id: str) -> dict[str, Any]:
        return await cdp.send("Runtime.getProperties", {"objectId": object_id, "ownProperties": True})

    try:
        listener = f"getEventListeners({target})[{event!r}][0].listener"
        found = await cdp.send("Runtime.evaluate", {"expression": listener, "includeCommandLineAPI": True})
        internal = (await properties(found["result"]["objectId"]))["internalProperties"]
        scopes = next(p for p in internal if p["name"] == "[[Scopes]]")
        for scope in (await properties(scopes["value"]["objectId"]))["result"]:
            for variable in (await properties(scope["value"]["objectId"]))["result"]:
                if variable["name"] == name:
                    held = variable["value"]["objectId"]
                    call = {"objectId": held, "functionDeclaration": KEPT, "returnByValue": True}
                    counted = await cdp.send("Runtime.callFunctionOn", call)
                    return int(counted["result"]["value"])
        raise AssertionError(f"no variable {name} in the scopes of {target}'s {event} listener")
    finally:
        await cdp.detach()


async def test_a_supervisors_console_keeps_the_receipts_of_the_conversation_it_shows_only(
    context: BrowserContext, desk: BrowserContext, server: TestServer
) -> None:
    """Supervisors' consoles get every conversation's deliveries. Each was kept (to apply a receipt that overtakes
    the transcript it updates) for the whole shift: a thousand messages of others, a thousand entries kept."""
    await add_listeners(server, supervisor="sam")
    young = await open_chat(context, server)
    await walk_to_queue(young)
    sam = await log_in(desk, server, "sam")
    await sam.locator("#waiting .card .card-open").click()
    await expect(sam.locator("#conv-title")).to_be_visible()
    shown = sam.url.split("#c=")[1]
    store = server.app[STORE]
    for _ in range(BATCHES):
        for _ in range(PER_BATCH):
            await store.publish(DeliveryChanged(uuid.uuid4().hex, uuid.uuid4().hex, Delivery.READ))
        await store.publish(Typing(shown, "user"))  # comes after the batch on the socket: all of it was read
        await expect(sam.locator("#user-typing")).to_be_visible()
        await sam.evaluate("() => { document.getElementById('user-typing').hidden = true; }")
    entries = await sam.locator("#transcript .msg").count()
    assert await kept(sam, "document.getElementById('canned')", "change", "receipts") <= entries

    mark = sam.locator('#transcript .msg[data-author="bot"] .delivery').last  # the page still follows its own
    entry = await sam.locator('#transcript .msg[data-author="bot"]').last.get_attribute("data-entry")
    assert entry is not None
    await store.publish(DeliveryChanged(shown, entry, Delivery.FAILED))
    await expect(mark).to_have_class("delivery failed")


async def test_the_board_keeps_the_highlights_of_the_messages_it_shows_only(
    desk: BrowserContext, server: TestServer
) -> None:
    """The board highlights a message flagged while it is open: each one's id was kept for the whole night, those
    of conversations long closed too."""
    await add_listeners(server, supervisor="sam")
    board = await supervision_page(desk, server)
    store = server.app[STORE]
    for batch in range(BATCHES):
        for _ in range(PER_BATCH):
            await store.publish(FlagRaised(uuid.uuid4().hex, uuid.uuid4().hex, RiskFlag("abuse_home", 0.9, "model")))
        await store.publish(Alert("login_locked", f"lot {batch}", ""))  # after the batch: all of it was read
        await expect(board.locator("#alerts li").first).to_contain_text(f"lot {batch}")
    await store.publish(QueueChanged())  # a reload of the flags asked after all of them

    async def forgotten() -> bool:
        return await kept(board, "document", "hg:live", "live") == 0

    await eventually(forgotten)
    await expect(board.locator("#flagged-none")).to_be_visible()
    await expect(board.locator("#connection")).to_have_text("En direct")
