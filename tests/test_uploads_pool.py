"""Web chat images are cleaned in a pool of their own (gateway/images.py, ``Cleaning``), never the loop's default
executor, which aiohttp's DNS lookups and redis-py's connects to a host name share: an image flood waits there,
bounded (past its queue, 503 ``busy``), and nothing else waits behind it."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

from aiohttp.test_utils import TestClient

from gateway.app import CLEANING
from gateway.settings import Settings
from tests.conftest import AppFactory
from tests.test_uploads import chat, images_of, photo, upload
from tests.test_uploads_budget import text_goes_on

Client = TestClient  # type: ignore[type-arg]


async def test_an_image_is_cleaned_while_the_loops_default_executor_is_busy(client: Client) -> None:
    """The default executor's only thread held (as a burst of DNS lookups would hold it): the image is cleaned and
    taken all the same. Until 2026-12-07 it was cleaned there (``asyncio.to_thread``) and waited behind it."""
    token = await chat(client)
    loop = asyncio.get_running_loop()
    held, blocked = threading.Event(), ThreadPoolExecutor(max_workers=1)
    loop.set_default_executor(blocked)
    stuck = loop.run_in_executor(None, held.wait)
    try:
        assert await asyncio.wait_for(upload(client, token, photo()), 30) == (201, "u-1")
    finally:
        held.set()
        await stuck
        loop.set_default_executor(ThreadPoolExecutor())
        blocked.shutdown()
    assert len(await images_of(client, token)) == 1


async def test_past_the_pools_queue_an_image_is_refused_busy_and_text_is_answered(
    make_client: AppFactory, settings: Settings
) -> None:
    client = await make_client(settings.replace(webchat_image_workers=1, webchat_image_waiting=0))
    token = await chat(client)
    started, held = threading.Event(), threading.Event()

    def work() -> None:
        started.set()
        held.wait()

    hold = asyncio.ensure_future(client.app[CLEANING].run(work))  # the pool's one thread taken, nothing may wait
    try:
        while not started.is_set():
            await asyncio.sleep(0.01)
        assert await upload(client, token, photo(), "u-1") == (503, "busy")
        await text_goes_on(client, token, "t-1")  # the young person's words answered while the images' pool is full
    finally:
        held.set()
        await hold
    assert await upload(client, token, photo(), "u-1") == (201, "u-1")  # sent again by the page, under its id
    assert len(await images_of(client, token)) == 1
