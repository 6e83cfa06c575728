"""Browser tests: the real app on a real port, and Debian's Chromium driven by Playwright.

``make test`` installs /usr/bin/chromium; a missing browser fails these tests (it is never skipped).

One Chromium (and one Playwright driver, whose start is most of a launch's cost) serves every browser test of the
session; each test gets fresh browser contexts (their own cookies, storage and cache), and any context a test
left open is closed after it, so no test sees another's state. Playwright's objects belong to the event loop that
started them, so the browser tests, and the async fixtures they use, run in pytest-asyncio's session loop (the
other tests keep a loop of their own); a browser that died is launched again for the next test.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import (
    APIResponse,
    Browser,
    BrowserContext,
    Page,
    Playwright,
    Route,
    async_playwright,
    expect,
)

from gateway.app import create_app
from gateway.settings import Settings
from tests.conftest import Clock, model_loaded, shared_understanding

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]  # fmt: skip

pytestmark = pytest.mark.browser

expect.set_options(timeout=15_000)  # as each context's waits: a busy machine is slow, never wrong

ServerFactory = Callable[[Settings], Awaitable[TestServer]]


@pytest.fixture
async def make_server(
    aiohttp_server: Callable[..., Awaitable[TestServer]], clock: Clock
) -> AsyncIterator[ServerFactory]:
    async def make(settings: Settings) -> TestServer:
        app: web.Application = await create_app(
            settings, clock=clock, worker_poll_seconds=0.05, **shared_understanding(settings)
        )
        server = await aiohttp_server(app)
        await model_loaded(server)
        return server

    yield make


@pytest.fixture
async def server(make_server: ServerFactory, settings: Settings) -> TestServer:
    return await make_server(settings)


SHARED_LOOP = "session"
_UNSET = object()


def _uses_the_browser(item: pytest.Item) -> bool:
    return isinstance(item, pytest.Function) and "browser" in item.fixturenames


@pytest.hookimpl(tryfirst=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A browser test's loop is named before pytest-asyncio parametrizes the test with the loop's factory (the
    suite's uvloop, ``tests/conftest.py``) at that loop's scope. Named only at ``pytest_collection_modifyitems``,
    after that, the factory was a function-scoped parameter: torn down after each browser test, it took the
    session's loop and the session's Chromium and Playwright driver with it, and each browser test launched its
    own (1-3 s of its setup, from 2026-12-02 to 2026-12-07)."""
    definition = metafunc.definition
    if "browser" in metafunc.fixturenames and definition.path.is_relative_to(Path(__file__).parent):
        definition.add_marker(pytest.mark.asyncio(loop_scope=SHARED_LOOP), append=False)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The browser tests run in the session's loop, the shared browser's (the marker goes first: it decides)."""
    for item in items:
        if _uses_the_browser(item) and item.path.is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.asyncio(loop_scope=SHARED_LOOP), append=False)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
) -> Generator[None, Any, Any]:
    """A browser test's async fixtures (its server, fake providers…) run in its loop: pytest-asyncio reads a
    fixture's loop from its function, which is given the session's for this setup only."""
    func = fixturedef.func
    shared = fixturedef.scope == "function" and _uses_the_browser(request.node)
    if not shared or not (inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func)):
        return (yield)
    before = func.__dict__.get("_loop_scope", _UNSET)
    if before not in (_UNSET, None):  # a fixture that names its loop keeps it
        return (yield)
    func._loop_scope = SHARED_LOOP  # type: ignore[attr-defined]
    try:
        return (yield)
    finally:
        if before is _UNSET:
            del func._loop_scope  # type: ignore[attr-defined]
        else:
            func._loop_scope = before  # type: ignore[attr-defined]


class Chromium:
    """The session's Playwright driver and browser, launched again if the browser died."""

    def __init__(self, playwright: Playwright) -> None:
        self.playwright = playwright
        self.browser: Browser | None = None

    async def get(self) -> Browser:
        if self.browser is None or not self.browser.is_connected():
            assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: run 'make test' (it installs Debian's chromium)"
            chromium = self.playwright.chromium
            self.browser = await chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        return self.browser


@pytest_asyncio.fixture(scope="session", loop_scope=SHARED_LOOP)
async def chromium() -> AsyncIterator[Chromium]:
    async with async_playwright() as playwright:
        shared = Chromium(playwright)
        yield shared
        if shared.browser is not None:
            await shared.browser.close()


@pytest_asyncio.fixture(loop_scope=SHARED_LOOP)
async def browser(chromium: Chromium) -> AsyncIterator[Browser]:
    """The shared browser; the contexts a test left open are closed after it (the tests run one at a time)."""
    browser = await chromium.get()
    yield browser
    for context in browser.contexts:
        await context.close()


@contextlib.asynccontextmanager
async def french_window(browser: Browser, width: int, height: int) -> AsyncIterator[BrowserContext]:
    """A fresh browser context of that size, in French, each wait 15 s at most."""
    context = await browser.new_context(viewport={"width": width, "height": height}, locale="fr-FR")
    context.set_default_timeout(15_000)
    try:
        yield context
    finally:
        await context.close()


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    """The young person's phone."""
    async with french_window(browser, 390, 780) as context:
        yield context


@pytest.fixture
async def desk(browser: Browser) -> AsyncIterator[BrowserContext]:
    """A listener's desktop browser."""
    async with french_window(browser, 1280, 820) as context:
        yield context


class HeldAnswer:
    """A page's next request to ``path`` answered by the server at once (what it said then) but held at the network
    until :meth:`release`: a busy gateway answering an earlier reload after a later one. Chromium's HTTP cache is
    turned off for the page first (its cache lock would make a second GET of the same address wait for the first;
    without it the two are out at once). Later requests to ``path`` go through."""

    def __init__(self, page: Page, path: str) -> None:
        self.page, self.path = page, path
        self._held: asyncio.Future[tuple[Route, APIResponse]] = asyncio.get_running_loop().create_future()
        self._claimed = False  # set before the first request's fetch: one asked meanwhile goes through

    @classmethod
    async def next_of(cls, context: BrowserContext, page: Page, path: str) -> HeldAnswer:
        held = cls(page, path)
        cdp = await context.new_cdp_session(page)
        await cdp.send("Network.enable")
        await cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
        await page.route("**" + path, held._hold)
        return held

    async def _hold(self, route: Route) -> None:
        if self._claimed:  # not ``_held.done()``: a second request while the first's fetch is out would be held too
            await route.continue_()
            return
        self._claimed = True
        self._held.set_result((route, await route.fetch()))  # the server's answer, now

    async def asked(self) -> None:
        """Until the page has asked (its answer is held)."""
        await self._held

    async def release(self) -> None:
        """The old answer arrives; returns once the page has read it (a full round trip after it)."""
        route, answer = await self._held
        async with self.page.expect_event("requestfinished", lambda r: r.url.endswith(self.path)):
            await route.fulfill(response=answer)
        assert await self.page.evaluate("() => fetch('/healthz').then(r => r.status)") == 200
