"""A page held by its network's cap (many pupils behind one school address) whose words of danger were refused past
``risky_chats_per_network``: they are kept on the page and go by themselves once the network has room again.

Until 2026-12-07 chat.js sent such a message again only at a new session or when the young person pressed
"Réessayer": a pupil who wrote "je veux mourir", read the notice and waited, was never heard, even long after a
classmate's conversation had ended and freed the place. Now a message the cap refused is tried again by the page,
less and less often (``HELD_RETRY_MS``, doubling up to ``HELD_RETRY_MAX_MS``), flagged ``"auto": true``: the server
neither repeats the notice for it nor asks the model again (``Gate.new_chat``'s ``read``), and the gate's ``once``
counts it once. The real app and Chromium, nothing patched."""

from __future__ import annotations

import json
import time

from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, BrowserContext, expect

from gateway.app import STORE
from gateway.conversation import Priority
from gateway.messages import ChannelName
from gateway.settings import Settings
from tests.e2e.conftest import ServerFactory, french_window
from tests.e2e.test_chat import bot_messages, open_chat, type_answer

pytestmark = __import__("pytest").mark.browser

RECORD_SENT = """
(() => {  // the frames the page sends, for the test to read
  window.__sent = [];
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) { window.__sent.push(String(data)); return send.call(this, data); };
})();
"""
TRIED_TWICE = """() => window.__sent.filter((f) => f.includes('"auto":true')).length >= 2"""
AUTO_TRIES = """() => window.__sentAt.filter((s) => s[1].includes('"auto":true')).length >= {at_least}"""
TRIED_ONCE = """() => window.__sent.filter((f) => f.includes('"auto":true')).length >= 1"""


async def test_a_held_pages_refused_danger_goes_by_itself_once_a_place_frees(
    context: BrowserContext, browser: Browser, make_server: ServerFactory, settings: Settings
) -> None:
    server: TestServer = await make_server(
        settings.replace(max_waiting_per_client=1, limit_risky_chats_per_network="1/hour")
    )
    classmate = await open_chat(context, server)  # the school's address at its cap (one chat)
    async with french_window(browser, 390, 780) as other, french_window(browser, 390, 780) as phone:
        first = await other.new_page()  # another pupil's danger opens past the cap: the hour's risky chat spent
        await first.goto(str(server.make_url("/chat")))
        await expect(bot_messages(first).last).to_contain_text("3114")
        await type_answer(first, "je veux mourir")
        await expect(first.locator("#status-line")).to_contain_text("position 1")
        await phone.add_init_script(RECORD_SENT)
        page = await phone.new_page()
        await page.goto(str(server.make_url("/chat")))
        await expect(bot_messages(page).last).to_contain_text("3114")  # the hello's notice: where to turn now
        notice = await bot_messages(page).last.text_content()
        await type_answer(page, "je veux mourir")
        refused = page.locator('.msg.pending.failed[data-author="user"]')
        await expect(refused).to_contain_text("Pas encore envoyé.")  # kept on the page, said as not sent
        await expect(bot_messages(page)).to_have_count(1)  # the hello's notice says it (once a minute a socket)
        await page.wait_for_function(TRIED_TWICE, timeout=30_000)  # tried again by itself, refused again: still full
        await expect(bot_messages(page)).to_have_count(1)  # no notice more for a try
        await expect(refused).to_contain_text("Pas encore envoyé.")
        for ending in (classmate, first):  # both end: the network has room again
            ending.on("dialog", lambda dialog: dialog.accept())
            await ending.get_by_role("button", name="Terminer").click()
            await expect(ending.get_by_role("button", name="Nouvelle conversation")).to_be_visible()
        # before: "Pas encore envoyé." for good, nothing sent, nothing in the queue
        await expect(page.locator(".msg.pending")).to_have_count(0, timeout=45_000)
        await expect(page.locator('.msg[data-author="user"] .text')).to_have_text(["je veux mourir"])
        await expect(page.locator("#status-line")).to_contain_text("position 1")
        assert (await bot_messages(page).all_text_contents()).count(notice or "") == 1  # the hello's notice only
    waiting = await server.app[STORE].waiting()
    assert [(w.priority, w.flag.risk if w.flag else None) for w in waiting] == [(Priority.URGENT, "suicide")]
    users = [e.text for e in await server.app[STORE].transcript(waiting[0].conversation_id) if e.author == "user"]
    assert users == ["je veux mourir"]  # once


async def test_a_held_pages_try_refused_by_the_hours_rate_keeps_trying_once_the_window_ends(
    context: BrowserContext, browser: Browser, make_server: ServerFactory, settings: Settings
) -> None:
    """The network's cap frees (the classmate ends), but the network's rate of new chats (``chats_per_address``)
    is spent for its window: the page's automatic try is refused ``rate_limited``. The page keeps trying, and its
    message goes once the window ends. Before: that refusal stopped the page's tries (only ``client_full`` asked for
    another), nothing said (``quiet``): the message waited for "Réessayer" for good."""
    server: TestServer = await make_server(
        settings.replace(max_waiting_per_client=1, limit_chats_per_address="1 per 20 seconds")
    )
    async with french_window(browser, 390, 780) as phone:
        await phone.add_init_script(RECORD_SENT)
        classmate = await open_chat(context, server)  # the school's address at its cap, its window's one chat
        page = await phone.new_page()
        reasons: list[str] = []
        page.on("websocket", lambda ws: ws.on("framereceived", lambda frame: reasons.extend(
            [str(frame)] if '"refused"' in str(frame) else [])))  # fmt: skip
        await page.goto(str(server.make_url("/chat")))
        await expect(bot_messages(page).last).to_contain_text("3114")
        await type_answer(page, "salut, je voudrais parler à quelqu'un")
        refused = page.locator('.msg.pending.failed[data-author="user"]')
        await expect(refused).to_contain_text("Pas encore envoyé.")
        await page.wait_for_function(TRIED_ONCE, timeout=30_000)  # tried again by itself: still full
        classmate.on("dialog", lambda dialog: dialog.accept())
        await classmate.get_by_role("button", name="Terminer").click()  # the cap frees; the window's chat is spent
        await expect(classmate.get_by_role("button", name="Nouvelle conversation")).to_be_visible()
        await page.wait_for_function(
            """() => window.__sent.filter((f) => f.includes('"auto":true')).length >= 2""", timeout=30_000
        )
        # before: the pending message stayed for good, no try after the rate_limited one
        await expect(page.locator(".msg.pending")).to_have_count(0, timeout=70_000)
        await expect(page.locator("#status-line")).to_contain_text("position 1")
    assert any('"rate_limited"' in frame for frame in reasons), reasons  # the case under test was met
    waiting = await server.app[STORE].waiting()
    assert len(waiting) == 1
    users = [e.text for e in await server.app[STORE].transcript(waiting[0].conversation_id) if e.author == "user"]
    assert users == ["salut, je voudrais parler à quelqu'un"]  # once


RECORD_SENT_AT = """
(() => {  // the frames the page sends, with when (ms since the epoch), for the test to read
  window.__sentAt = [];
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    window.__sentAt.push([Date.now(), String(data)]);
    return send.call(this, data);
  };
})();
"""


async def test_a_held_pages_try_refused_by_the_networks_rate_waits_for_its_retry_after(
    context: BrowserContext, browser: Browser, make_server: ServerFactory, settings: Settings
) -> None:
    """An automatic try refused ``rate_limited`` comes with ``retry_after`` (the window's end): the page's next try
    waits at least that long, then goes, queued once. Before (2026-12-07 evening): the backoff alone (its third try
    8-16 s later, refused again for nothing while the 45 s window lasted; an hour's window: once a minute)."""
    server: TestServer = await make_server(
        settings.replace(max_waiting_per_client=1, limit_chats_per_address="1 per 45 seconds")
    )
    async with french_window(browser, 390, 780) as phone:
        await phone.add_init_script(RECORD_SENT_AT)
        classmate = await open_chat(context, server)  # the school's address at its cap, its window's one chat
        page = await phone.new_page()
        refused: list[tuple[float, dict[str, object]]] = []

        def received(frame: str | bytes) -> None:
            if '"refused"' in str(frame):
                refused.append((time.time(), json.loads(frame)))

        page.on("websocket", lambda ws: ws.on("framereceived", received))
        await page.goto(str(server.make_url("/chat")))
        await expect(bot_messages(page).last).to_contain_text("3114")
        await type_answer(page, "salut, je voudrais parler à quelqu'un")
        await expect(page.locator('.msg.pending.failed[data-author="user"]')).to_contain_text("Pas encore envoyé.")
        await page.wait_for_function(AUTO_TRIES.format(at_least=1), timeout=30_000)  # still full
        classmate.on("dialog", lambda dialog: dialog.accept())
        await classmate.get_by_role("button", name="Terminer").click()  # the cap frees; the window's chat is spent
        await expect(classmate.get_by_role("button", name="Nouvelle conversation")).to_be_visible()
        for _ in range(600):  # the first try refused by the rate (its frame read by the test's handler)
            if any(frame.get("reason") == "rate_limited" for _, frame in refused):
                break
            await page.wait_for_timeout(100)
        at, frame = next((at, f) for at, f in refused if f.get("reason") == "rate_limited")
        assert isinstance(frame.get("retry_after"), int), frame
        tries = len(await page.evaluate("() => window.__sentAt.filter((s) => s[1].includes('\"auto\":true'))"))
        await expect(page.locator(".msg.pending")).to_have_count(0, timeout=70_000)  # it goes once the window ends
        sent = await page.evaluate("() => window.__sentAt.filter((s) => s[1].includes('\"auto\":true'))")
        assert len(sent) > tries
        waited = sent[tries][0] / 1000 - at
        assert waited >= int(frame["retry_after"]) - 1, (waited, frame)  # before: 8-16 s into a ~30 s wait
    waiting = await server.app[STORE].waiting()
    assert len(waiting) == 1
    users = [e.text for e in await server.app[STORE].transcript(waiting[0].conversation_id) if e.author == "user"]
    assert users == ["salut, je voudrais parler à quelqu'un"]  # once


RECORD_SOCKETS = """
(() => {  // the frames the page sends, and its sockets (the test drops one as a network would)
  window.__sent = [];
  window.__sockets = [];
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    if (!window.__sockets.includes(this)) { window.__sockets.push(this); }
    window.__sent.push(String(data));
    return send.call(this, data);
  };
})();
"""


async def test_a_held_pages_tries_go_on_after_its_socket_is_replaced_while_a_try_waits(
    context: BrowserContext, browser: Browser, make_server: ServerFactory, settings: Settings
) -> None:
    """The held socket drops while the page's next automatic try waits (its timer set by a refusal on that socket);
    the new socket's hello is refused too, the page sends what is pending on it, refused ``client_full`` again. The
    page keeps trying on the new socket, and the message goes once a place frees. Before (2026-12-07): the old
    socket's timer was still set, so the new refusal set none (``heldRetry``: one timer for all); that timer then
    found its socket replaced and sent nothing, and no try came again: "Pas encore envoyé" for good."""
    server: TestServer = await make_server(settings.replace(max_waiting_per_client=1))
    classmate = await open_chat(context, server)  # the school's address at its cap (one chat)
    async with french_window(browser, 390, 780) as phone:
        await phone.add_init_script(RECORD_SOCKETS)
        page = await phone.new_page()
        refused: list[str] = []
        page.on("websocket", lambda ws: ws.on("framereceived", lambda frame: refused.extend(
            [str(frame)] if '"refused"' in str(frame) and '"id":null' not in str(frame) else [])))  # fmt: skip
        await page.goto(str(server.make_url("/chat")))
        await expect(bot_messages(page).last).to_contain_text("3114")
        await type_answer(page, "salut, je voudrais parler à quelqu'un")
        await expect(page.locator('.msg.pending.failed[data-author="user"]')).to_contain_text("Pas encore envoyé.")
        await page.wait_for_function(TRIED_ONCE, timeout=30_000)  # tried by itself, refused: its next try waits 4-8 s
        for _ in range(300):
            if len(refused) >= 2:
                break
            await page.wait_for_timeout(50)
        assert len(refused) >= 2, refused
        before = len(refused)
        await page.evaluate("() => window.__sockets[0].close()")  # the network drops the held socket
        for _ in range(300):  # the new socket's hello refused, the pending message sent on it, refused again
            if len(refused) > before and await page.evaluate("() => window.__sockets.length") == 2:
                break
            await page.wait_for_timeout(50)
        assert len(refused) > before, refused
        assert await page.evaluate("() => window.__sockets.length") == 2
        classmate.on("dialog", lambda dialog: dialog.accept())
        await classmate.get_by_role("button", name="Terminer").click()  # a place frees
        await expect(classmate.get_by_role("button", name="Nouvelle conversation")).to_be_visible()
        # before: no try after the new socket's refusal, the message pending for good
        await expect(page.locator(".msg.pending")).to_have_count(0, timeout=45_000)
        await expect(page.locator("#status-line")).to_contain_text("position 1")
    waiting = await server.app[STORE].waiting()
    assert len(waiting) == 1
    users = [e.text for e in await server.app[STORE].transcript(waiting[0].conversation_id) if e.author == "user"]
    assert users == ["salut, je voudrais parler à quelqu'un"]  # once


async def test_a_first_message_refused_by_the_networks_rate_goes_by_itself_once_the_window_ends(
    context: BrowserContext, browser: Browser, make_server: ServerFactory, settings: Settings
) -> None:
    """A classmate behind the school's address opened the window's one chat (``chats_per_address``): this page's hello
    is refused, and its FIRST message (typed, not an automatic try) is refused ``rate_limited`` by the network's rate,
    not by any flood of its own. The page tries it again by itself after ``retry_after`` (marked ``"auto"``), and it
    reaches the store once the window ends, without a click, exactly once. Before (2026-12-07): only a ``client_full``
    refusal or an automatic try's ``rate_limited`` set a try; this one waited for "Réessayer" or a new session."""
    server: TestServer = await make_server(settings.replace(limit_chats_per_address="1 per 30 seconds"))
    async with french_window(browser, 390, 780) as phone:
        await phone.add_init_script(RECORD_SENT)
        await open_chat(context, server)  # the window's one chat of the school's address
        page = await phone.new_page()
        refused: list[dict[str, object]] = []
        page.on("websocket", lambda ws: ws.on("framereceived", lambda frame: refused.extend(
            [json.loads(frame)] if '"refused"' in str(frame) else [])))  # fmt: skip
        await page.goto(str(server.make_url("/chat")))
        await expect(bot_messages(page).last).to_contain_text("3114")  # the hello refused: its notice
        await type_answer(page, "salut, je voudrais parler à quelqu'un")
        await expect(page.locator('.msg.pending.failed[data-author="user"]')).to_contain_text("Pas encore envoyé.")
        # before: the pending message stayed for good, nothing sent by the page itself
        await expect(page.locator(".msg.pending")).to_have_count(0, timeout=70_000)
        await expect(page.locator('.msg[data-author="user"] .text')).to_have_text(
            ["salut, je voudrais parler à quelqu'un"]
        )
        sent = await page.evaluate("() => window.__sent")
        token = await page.evaluate("() => localStorage.getItem('hg-chat-token')")
    first = next(f for f in refused if f.get("id") is not None)
    assert first["reason"] == "rate_limited" and isinstance(first.get("retry_after"), int), first  # the case met
    assert any('"auto":true' in f for f in sent), sent  # by itself, no click
    store = server.app[STORE]
    conversation = await store.find_active_conversation(ChannelName.WEBCHAT, token)
    assert conversation is not None
    users = [e.text for e in await store.transcript(conversation.id) if e.author == "user"]
    assert users == ["salut, je voudrais parler à quelqu'un"]  # once


async def test_a_first_message_refused_by_the_browsers_own_rate_is_not_tried_again_by_itself(
    context: BrowserContext, make_server: ServerFactory, settings: Settings
) -> None:
    """The other side of the test above: a message refused ``rate_limited`` by this browser's own rate of new chats
    (``chats_per_browser``: "Nouvelle conversation" again and again) has a ``retry_after`` too, but no ``"limit":
    "network"``: the page does not try it again by itself (no loop on a page's own doing), even past its window;
    "Réessayer" sends it then, recorded once. A fix that looped on any ``retry_after`` fails here."""
    server: TestServer = await make_server(settings.replace(limit_chats_per_browser="1 per 20 seconds"))
    await context.add_init_script(RECORD_SENT_AT)
    page = await open_chat(context, server)  # the browser's one chat of the window
    frames: list[dict[str, object]] = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda frame: frames.extend(
        [json.loads(frame)] if '"refused"' in str(frame) else [])))  # fmt: skip
    refused = [f for f in frames if f["id"] is not None]  # a message's (the hello's has none), filled below
    page.on("dialog", lambda dialog: dialog.accept())
    await page.get_by_role("button", name="Terminer").click()
    await page.get_by_role("button", name="Nouvelle conversation").click()  # the same token: its rate refuses
    await expect(bot_messages(page).last).to_contain_text("3114")  # the hello's notice
    await type_answer(page, "re bonjour")
    failed = page.locator('.msg.pending.failed[data-author="user"]')
    await expect(failed).to_contain_text("Pas encore envoyé.")
    for _ in range(100):  # its frame, read by the test's handler
        refused[:] = [f for f in frames if f["id"] is not None]
        if refused:
            break
        await page.wait_for_timeout(50)
    assert refused and "limit" not in refused[0] and isinstance(refused[0].get("retry_after"), int), refused
    waited = (int(refused[0]["retry_after"]) + 6) * 1000  # past the window and a backoff's random part (<= 2 s)
    deadline = await page.evaluate("() => Date.now()") + waited
    await page.wait_for_function("(end) => Date.now() >= end", arg=deadline, timeout=waited + 30_000)
    sent = await page.evaluate("() => window.__sentAt.map((s) => s[1])")
    assert not [f for f in sent if '"auto":true' in f], sent  # never by itself
    await expect(failed).to_contain_text("Pas encore envoyé.")
    await failed.get_by_role("button", name="Réessayer").click()  # the window over: the young person's own try
    await expect(page.locator(".msg.pending")).to_have_count(0)
    token = await page.evaluate("() => localStorage.getItem('hg-chat-token')")
    conversation = await server.app[STORE].find_active_conversation(ChannelName.WEBCHAT, token)
    assert conversation is not None
    users = [e.text for e in await server.app[STORE].transcript(conversation.id) if e.author == "user"]
    assert users == ["re bonjour"]  # once


async def test_a_held_pages_try_refused_for_its_own_flood_is_not_tried_again_by_itself(
    context: BrowserContext, browser: Browser, make_server: ServerFactory, settings: Settings
) -> None:
    """A held page (the network at its cap) whose young person typed past the flood limit (``messages_per_conversation``
    at 1 an hour): the first message is refused ``client_full`` and tried again by the page, the second ``rate_limited``
    for the page's own flood (no ``retry_after``, no ``limit``). The page's automatic try of the second, refused the
    same way, is its last: the first goes on being tried, the second waits for "Réessayer" or a new session. Until
    2026-12-07 (night) chat.js took any automatic try refused ``rate_limited`` as the network's window: the flooded
    message was sent again with every round, about once a minute, for good."""
    server: TestServer = await make_server(
        settings.replace(max_waiting_per_client=1, limit_messages_per_conversation="1/hour")
    )
    async with french_window(browser, 390, 780) as phone:
        await phone.add_init_script(RECORD_SENT)
        await open_chat(context, server)  # the school's address at its cap
        page = await phone.new_page()
        refused: list[dict[str, object]] = []
        page.on("websocket", lambda ws: ws.on("framereceived", lambda frame: refused.extend(
            [json.loads(frame)] if '"refused"' in str(frame) else [])))  # fmt: skip
        await page.goto(str(server.make_url("/chat")))
        await expect(bot_messages(page).last).to_contain_text("3114")  # the hello refused: its notice
        await type_answer(page, "salut")  # client_full: tried again by the page
        await type_answer(page, "tu es la")  # past the flood limit
        await expect(page.locator(".msg.pending.failed")).to_have_count(2)
        held = """() => window.__sent.filter((f) => f.includes('"auto":true') && f.includes('"salut"')).length >= 3"""
        await page.wait_for_function(held, timeout=90_000)  # three rounds: the network's refusal still tried
        sent = await page.evaluate("() => window.__sent")
        failed = page.locator('.msg.pending.failed[data-author="user"]', has_text="tu es la")
        await expect(failed).to_contain_text("Pas encore envoyé.")
    flooded = [f for f in sent if '"auto":true' in f and '"tu es la"' in f]
    # before: one in every round (3 when the test stopped waiting)
    assert len(flooded) <= 1, flooded
    own = [f for f in refused if f.get("reason") == "rate_limited"]
    assert own and all("limit" not in f and "retry_after" not in f for f in own), refused  # the case met
