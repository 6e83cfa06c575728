"""Accessibility, measured: axe-core (bundled by the axe-playwright-python package, never fetched) runs in the
real Chromium on every page and state a young person or a listener meets, with the WCAG 2.2 A and AA rules, and
must find nothing. On failure the violations are printed (rule, impact, help, the elements)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Literal

import pytest
from aiohttp.test_utils import TestServer
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.e2e.test_chat import open_chat, type_answer, walk_to_queue
from tests.e2e.test_console import add_listeners, log_in

pytestmark = pytest.mark.browser

WCAG_22_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22a", "wcag22aa"]
PHONE = {"width": 390, "height": 780}
DESKTOP = {"width": 1280, "height": 820}


async def audit(page: Page, what: str) -> None:
    results = await Axe().run(page, options={"runOnly": {"type": "tag", "values": WCAG_22_AA}})
    violations: list[dict[str, Any]] = results.response["violations"]
    report = "\n".join(
        f"- {v['id']} ({v['impact']}): {v['help']}\n"
        + "\n".join(f"    {', '.join(map(str, n['target']))}: {n.get('failureSummary', '')}" for n in v["nodes"][:5])
        for v in violations
    )
    assert not violations, f"axe-core on {what}: {len(violations)} violation(s)\n{report}"


async def new_context(browser: Browser, viewport: dict[str, int], scheme: Literal["light", "dark"]) -> BrowserContext:
    context = await browser.new_context(viewport=viewport, locale="fr-FR", color_scheme=scheme)  # type: ignore[arg-type]
    context.set_default_timeout(15_000)
    return context


@pytest.fixture
async def desk(browser: Browser) -> AsyncIterator[BrowserContext]:
    context = await new_context(browser, DESKTOP, "light")
    yield context
    await context.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
async def test_the_chat_has_no_violation(
    browser: Browser, server: TestServer, viewport: dict[str, int], scheme: Literal["light", "dark"]
) -> None:
    context = await new_context(browser, viewport, scheme)
    try:
        page = await open_chat(context, server)
        await audit(page, f"/chat, first question ({scheme})")
        await walk_to_queue(page)
        await audit(page, f"/chat, in the queue ({scheme})")
        page.on("dialog", lambda dialog: dialog.accept())
        await page.get_by_role("button", name="Terminer").click()
        await expect(page.locator("#ended")).to_be_visible()
        await audit(page, f"/chat, ended ({scheme})")
    finally:
        await context.close()


async def test_the_console_has_no_violation(context: BrowserContext, desk: BrowserContext, server: TestServer) -> None:
    login = await desk.new_page()
    await login.goto(str(server.make_url("/console/login")))
    await audit(login, "/console/login")
    await login.close()

    await add_listeners(server, "anne", supervisor="sam")
    listener = await log_in(desk, server, "sam")
    await audit(listener, "/console, empty queue")
    young = await open_chat(context, server)
    await walk_to_queue(young)
    await expect(listener.locator("#waiting .card")).to_have_count(1)
    await audit(listener, "/console, a waiting card")
    await listener.locator("#waiting .card .card-open").click()
    await audit(listener, "/console, reading a waiting card (note mode)")
    await listener.locator("#take").click()
    await expect(listener.locator("#composer")).to_have_attribute("data-mode", "reply")
    await listener.locator("#reply").fill("Bonjour, je t'écoute.")
    await listener.keyboard.press("Enter")
    await expect(listener.locator('#transcript .msg[data-author="listener"]')).to_have_count(1)
    await audit(listener, "/console, a conversation taken")
    for opener, dialog in (("#refer-open", "#refer-dialog"), ("#transfer-open", "#transfer-dialog"),
                           ("#close-open", "#close-dialog"), ("#notice-open", "#notice-dialog"),
                           ("#referral-open", "#referral-dialog"), ("#erase-open", "#erase-dialog"),
                           ("#password-open", "#password-dialog")):  # fmt: skip
        await listener.locator(opener).click()
        await expect(listener.locator(dialog)).to_be_visible()
        await audit(listener, f"/console, {dialog}")
        await listener.keyboard.press("Escape")
        await expect(listener.locator(dialog)).to_be_hidden()
    await listener.locator("#reply").fill("Je reviens vers")  # a draft: the close says so, the logout asks first
    for opener, dialog in (("#close-open", "#close-dialog"), ("#logout", "#logout-dialog")):
        await listener.locator(opener).click()
        await expect(listener.locator(dialog)).to_be_visible()
        await audit(listener, f"/console, {dialog} with a draft in the box")
        await listener.keyboard.press("Escape")
        await expect(listener.locator(dialog)).to_be_hidden()

    await type_answer(young, "il a un couteau il arrive")  # a risk read while sam holds it: flagged, live
    await expect(listener.locator("#transcript .msg.flagged")).to_have_count(1)
    await audit(listener, "/console, a flagged message")

    await listener.get_by_role("link", name="Supervision").click()
    await expect(listener.locator("#reload")).to_contain_text("réussi")
    await expect(listener.locator("#flagged .flagged-conversation .msg.flagged")).to_have_count(1)
    await audit(listener, "/console/supervision, a flagged conversation")


async def test_the_chat_at_400_percent_zoom_keeps_the_box_and_the_latest_message_usable(
    browser: Browser, server: TestServer
) -> None:
    """1280 × 800 at 400 % is 320 × 200 CSS px: no sideways scrolling, the box and the latest message in sight."""
    context = await new_context(browser, {"width": 320, "height": 200}, "light")
    try:
        page = await open_chat(context, server)
        await walk_to_queue(page)
        await expect(page.locator("#message-input")).to_be_in_viewport()
        await expect(page.locator(".msg").last).to_be_in_viewport()
        assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        await page.locator("#message-input").fill("toujours là")
        await page.keyboard.press("Enter")
        await expect(page.locator('.msg[data-author="user"]').last).to_contain_text("toujours là")
        # the latest message, whoever wrote it (the model may answer with the numbers), stays in sight
        await expect(page.locator(".msg").last).to_be_in_viewport()
        await audit(page, "/chat at 320 × 200 CSS px")
        # a message not yet stored (sent on a slow network) is told apart without fading its text
        await page.evaluate(
            "() => { const mine = document.querySelectorAll('.msg.user'); const last = mine[mine.length - 1];"
            " last.classList.add('pending'); last.scrollIntoView({block: 'end'}); }"
        )
        await audit(page, "/chat at 320 × 200 CSS px, a message pending")
    finally:
        await context.close()


async def test_on_a_small_phone_the_question_stays_in_sight_above_its_choices(
    browser: Browser, server: TestServer
) -> None:
    """Found on a 375 × 667 phone (2026-12-02): the topic question's nine choices took the screen, and the page kept
    the message list where it was before they came, so the question they answer was scrolled out of sight."""
    context = await new_context(browser, {"width": 375, "height": 667}, "light")
    try:
        page = await open_chat(context, server)
        await page.get_by_role("button", name="Non", exact=True).click()
        await page.get_by_role("button", name="Français").click()
        await type_answer(page, "j'ai 14 ans")
        await page.get_by_role("button", name="Pour moi").click()
        question = page.locator('.msg[data-author="bot"]').last
        await expect(question).to_contain_text("Qu'est-ce qui se passe")
        await expect(page.locator("#choices button")).to_have_count(9)
        await expect(question).to_be_in_viewport(ratio=1)
        await expect(page.locator("#choices button").first).to_be_in_viewport()
        await expect(page.locator("#message-input")).to_be_in_viewport()
    finally:
        await context.close()


async def test_the_language_switch_is_not_named_as_the_bots_language_choice(
    browser: Browser, server: TestServer
) -> None:
    """Found with the accessibility tree (2026-12-02): at the bot's language question a screen reader met two buttons
    named "English", the page's switch (first in the order) and the answer; the switch says what it does."""
    context = await new_context(browser, PHONE, "light")
    try:
        page = await open_chat(context, server)
        await page.get_by_role("button", name="Non", exact=True).click()
        await expect(page.locator("#choices button", has_text="English")).to_be_visible()
        await expect(page.get_by_role("button", name="English", exact=True)).to_have_count(1)
        await expect(page.locator("#lang-toggle")).to_have_accessible_name("Page in English")
        await page.locator("#lang-toggle").click()
        await expect(page.locator("#lang-toggle")).to_have_accessible_name("Page en français")
        await expect(page.get_by_role("button", name="Français", exact=True)).to_have_count(1)
    finally:
        await context.close()
