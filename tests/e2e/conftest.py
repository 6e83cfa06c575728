"""Browser tests: the real app on a real port, and Debian's Chromium driven by Playwright.

``make test`` installs /usr/bin/chromium; a missing browser fails these tests (it is never skipped).
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, BrowserContext, async_playwright

from gateway.app import create_app
from gateway.settings import Settings
from tests.conftest import Clock

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]  # fmt: skip

pytestmark = pytest.mark.browser

ServerFactory = Callable[[Settings], Awaitable[TestServer]]


@pytest.fixture
async def make_server(
    aiohttp_server: Callable[..., Awaitable[TestServer]], clock: Clock
) -> AsyncIterator[ServerFactory]:
    async def make(settings: Settings) -> TestServer:
        app: web.Application = await create_app(settings, clock=clock, worker_poll_seconds=0.05)
        return await aiohttp_server(app)

    yield make


@pytest.fixture
async def server(make_server: ServerFactory, settings: Settings) -> TestServer:
    return await make_server(settings)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: run 'make test' (it installs Debian's chromium)"
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        await browser.close()


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
