"""The browser tests' own tool, ``tests/e2e/conftest.py::HeldAnswer``: a page's next request to a path answered by the
server at once but held at the network until released, every later one through.

Two requests out at once (a page's periodic reload and an event's reload in the same instant, on a busy machine)
both reached the handler before the first's answer had come back; the second then tried to hold too and failed the
test with ``InvalidStateError`` (a full-suite run, 2026-12-04, in ``test_supervision_flags.py``). The first is held,
the second goes through.
"""

from __future__ import annotations

from playwright.async_api import BrowserContext

from gateway.settings import Settings
from tests.e2e.conftest import HeldAnswer, ServerFactory


async def test_of_two_requests_out_at_once_the_first_is_held_and_the_second_goes_through(
    desk: BrowserContext, make_server: ServerFactory, settings: Settings
) -> None:
    server = await make_server(settings)
    page = await desk.new_page()
    await page.goto(str(server.make_url("/healthz")))
    held = await HeldAnswer.next_of(desk, page, "/healthz")
    await page.evaluate(
        """() => { window.answers = [];
                   for (const n of [1, 2]) fetch('/healthz').then(r => window.answers.push([n, r.status])); }"""
    )
    await held.asked()
    await page.wait_for_function("() => window.answers.length === 1")  # one through, the other held
    [[through, status]] = await page.evaluate("() => window.answers")
    assert status == 200
    await held.release()
    await page.wait_for_function("() => window.answers.length === 2")
    assert sorted(n for n, _ in await page.evaluate("() => window.answers")) == [1, 2]
    assert through in (1, 2)
