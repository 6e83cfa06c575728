"""The web chat on a phone's network, in a real Chromium (a review from the young person's seat, 2026-12-05): a
proxy that lets the page through but never answers the socket's upgrade (a school's or a metro's Wi-Fi portal, a
proxy that holds websockets), the page waiting on its socket and the young person typing meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from aiohttp.test_utils import TestServer
from playwright.async_api import BrowserContext, WebSocketRoute, expect

from gateway.app import STORE
from gateway.conversation import Status
from gateway.settings import Settings
from tests.conftest import ROOT
from tests.e2e.conftest import ServerFactory
from tests.e2e.test_chat import bot_messages, type_answer

pytestmark = __import__("pytest").mark.browser


class UpgradeHolder:
    """A TCP proxy on 127.0.0.1 in front of the app: plain HTTP passes; while ``hold``, a websocket's upgrade
    request is read and never answered (the connection stays open, silent), as a proxy that holds websockets."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.hold = True
        self.held = 0  # upgrades held so far
        self.tasks: set[asyncio.Task[None]] = set()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[int]:
        server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        try:
            yield server.sockets[0].getsockname()[1]
        finally:
            server.close()
            for task in list(self.tasks):
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(self._serve(reader, writer))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            first = await reader.read(65536)
            if self.hold and b"upgrade: websocket" in first.lower():
                self.held += 1
                while await reader.read(65536):  # never answered, until the page gives up on it
                    pass
                return
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
            up_writer.write(first)
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            writer.close()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()


async def until(condition: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 15
    while not check():
        assert time.monotonic() < deadline, condition
        await asyncio.sleep(0.05)


async def test_a_socket_whose_upgrade_is_never_answered_is_said_and_tried_again(
    context: BrowserContext, server: TestServer
) -> None:
    """The page waited on a socket whose upgrade a proxy never answered, as long as the browser let it (minutes):
    a blank page, nothing said, no new try, and a message typed meanwhile shown waiting for ever. Now a socket not
    open 15 s after it was asked for is given up: the page says it is reconnecting and tries again (with its
    growing delay), and once the way is clear the conversation opens and the message is recorded once."""
    assert server.port is not None
    proxy = UpgradeHolder(server.port)
    async with proxy.running() as port:
        page = await context.new_page()
        await page.clock.install()
        await page.goto(f"http://127.0.0.1:{port}/chat")
        await until("the page never asked for its socket", lambda: proxy.held == 1)
        await type_answer(page, "allo ? il y a quelqu'un ?")
        await expect(page.locator(".msg.pending")).to_have_count(1)

        await page.clock.run_for(16_000)
        await expect(page.locator("#connection")).to_have_text("Reconnexion…")
        await until("the page never tried again", lambda: proxy.held >= 2 or not proxy.hold)
        proxy.hold = False
        await page.clock.run_for(18_000)  # the second held socket given up too; the third goes through
        await expect(bot_messages(page).first).to_contain_text("confidentiel")
        await expect(page.locator(".msg.pending")).to_have_count(0)
        await expect(page.locator("#connection")).to_be_hidden()
        assert proxy.held <= 3  # a growing delay, not a loop

    store = server.app[STORE]
    [conversation] = await store.conversations_by_status(Status.BOT)
    texts = [e.text for e in await store.transcript(conversation.id) if e.author == "user"]
    assert texts == ["allo ? il y a quelqu'un ?"]


class Refusing:
    """Every socket closed by the server's side as soon as it opens: the line cannot be reached at all (the gateway
    down, a deployment gone wrong, a network that lets the page through but not its socket)."""

    def __init__(self) -> None:
        self.sockets = 0
        self.refusing = True

    async def route(self, page_side: WebSocketRoute) -> None:
        if not self.refusing:
            page_side.connect_to_server()
            return
        self.sockets += 1
        await page_side.close(code=1013, reason="try again later")


async def test_a_line_that_cannot_be_reached_says_where_to_turn_meanwhile(
    context: BrowserContext, server: TestServer
) -> None:
    """A young person who opened the chat while it could not be reached (at night, the gateway down) saw
    "Reconnexion…" and nothing else, for as long as it lasted: not one number. Past 30 s without a session the line
    says the chat is not answering, that it keeps trying, and where to turn now (119, 3114, 17, 112, as links);
    once a session opens the line goes."""
    page, refusing = await context.new_page(), Refusing()
    await page.clock.install()
    await page.route_web_socket("**/chat/ws", refusing.route)
    await page.goto(str(server.make_url("/chat")))
    await expect(page.locator("#connection")).to_have_text("Reconnexion…")
    for _ in range(40):
        await page.clock.run_for(1000)
    connection = page.locator("#connection")
    await expect(connection).to_contain_text("ne répond pas")
    await expect(connection.locator("a.phone")).to_have_text(["119", "3114", "17", "112", "114"])
    assert refusing.sockets <= 10  # still the growing delay (0.5 s doubling to 10 s), never a loop

    refusing.refusing = False  # the line is back
    await page.clock.run_for(11_000)
    await expect(bot_messages(page).first).to_contain_text("confidentiel")
    await expect(connection).to_be_hidden()


async def test_where_to_turn_while_unreachable_is_the_lines_own_from_flows_yaml(
    context: BrowserContext, make_server: ServerFactory, settings: Settings, tmp_path: Path
) -> None:
    """The words and numbers the page gives while it cannot reach the line are flows.yaml's (its message
    ``unreachable``, put in the page as it is served), not the widget's own: a line with other partners changes
    them where it changes every other number."""
    text = (ROOT / "flows.yaml").read_text(encoding="utf-8")
    start = text.index("  unreachable:")
    end = text.index("  reminder:", start)
    ours = ('  unreachable:\n    fr: "Notre chat est injoignable. Appelle le 116 006 ou, en danger immédiat, le 112."\n'
            '    en: "Our chat cannot be reached. Call 116 006 or, in immediate danger, 112."\n')  # fmt: skip
    flows = tmp_path / "flows.yaml"
    flows.write_text(text[:start] + ours + text[end:], encoding="utf-8")
    server = await make_server(settings.replace(flows=str(flows)))

    page, refusing = await context.new_page(), Refusing()
    await page.clock.install()
    await page.route_web_socket("**/chat/ws", refusing.route)
    await page.goto(str(server.make_url("/chat")))
    for _ in range(40):
        await page.clock.run_for(1000)
    connection = page.locator("#connection")
    await expect(connection).to_contain_text("Notre chat est injoignable")
    await expect(connection.locator("a.phone")).to_have_text(["116 006", "112"])
    await page.clock.pause_at(await page.evaluate("Date.now()"))  # no retry meanwhile: the switch says it
    await page.locator("#lang-toggle").click()
    await expect(connection).to_contain_text("Our chat cannot be reached")


async def test_a_reload_while_the_line_cannot_be_reached_still_shows_what_waits_to_be_sent(
    context: BrowserContext, server: TestServer
) -> None:
    """A young person whose message could not go (the socket refused: a school's proxy, the gateway's store down)
    reloaded the page: it came back blank but for "Reconnexion…", their message gone from sight though kept to be
    sent, so they typed it again and the listener got it twice. Now the page shows what waits to be sent as it
    opens, said not sent yet; once a session opens it goes after the conversation's history, and is recorded once."""
    page = await context.new_page()
    await page.goto(str(server.make_url("/chat")))
    await page.get_by_role("button", name="Non", exact=True).click()
    await expect(bot_messages(page).last).to_contain_text("anglais")
    await expect(page.locator(".msg.pending")).to_have_count(0)

    refusing = Refusing()
    await page.route_web_socket("**/chat/ws", refusing.route)
    await page.reload()
    await expect(page.locator("#connection")).to_be_visible()
    await type_answer(page, "Français")
    await page.reload()
    waiting = page.locator('.msg.pending[data-author="user"]')
    await expect(waiting.locator(".text")).to_have_text("Français")
    await expect(waiting.locator(".waiting")).to_have_text("Pas encore envoyé…")

    refusing.refusing = False  # the line is back
    await expect(bot_messages(page).last).to_contain_text("âge")
    await expect(page.locator(".msg.pending")).to_have_count(0)
    await expect(page.locator('.msg[data-author="user"] .text')).to_have_text(["Non", "Français"])
    store = server.app[STORE]
    [conversation] = await store.conversations_by_status(Status.BOT)
    assert [e.text for e in await store.transcript(conversation.id) if e.author == "user"] == ["Non", "Français"]
