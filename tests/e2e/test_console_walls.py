"""The console's walls in a real Chromium: what a young person wrote cannot hide or reorder itself (bidirectional
overrides and zero-width characters made visible, an unbroken text wraps); a listener changes their password
(refusals said in French or English) and their other sessions close; a supervisor logs a listener out
everywhere from the supervision page and the listener's open console goes to the login page at once."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, BrowserContext, expect

from tests.conftest import PASSWORD
from tests.e2e.test_chat import open_chat, type_answer, walk_to_queue
from tests.e2e.test_console import add_listeners, log_in

pytestmark = pytest.mark.browser

HIDDEN = "Paye \u202eRCS.exe\u202c maintenant\u200b ou j\u2066e\u2069 publie"
UNBROKEN = "A" * 1500


async def test_hidden_characters_are_shown_and_an_unbroken_text_wraps(
    context: BrowserContext, desk: BrowserContext, server: TestServer
) -> None:
    await add_listeners(server, "anne")
    anne = await log_in(desk, server, "anne")
    young = await open_chat(context, server)
    await walk_to_queue(young)
    await anne.locator("#waiting .card .take").click()
    await expect(anne.locator("#conv-meta")).to_contain_text("avec anne")
    await type_answer(young, HIDDEN)
    shown = anne.locator('#transcript .msg[data-author="user"] .text').last
    await expect(shown).to_contain_text("\u27e6U+202E\u27e7RCS.exe\u27e6U+202C\u27e7")
    text = await shown.inner_text()
    assert "\u27e6U+200B\u27e7" in text and "\u27e6U+2066\u27e7" in text
    assert not any(c in text for c in "\u202e\u202c\u200b\u2066\u2069")  # none of them acts any more

    await type_answer(young, UNBROKEN)
    long = anne.locator('#transcript .msg[data-author="user"]').last
    await expect(long.locator(".text")).to_have_text(UNBROKEN)
    fits = await long.evaluate(
        """node => {
          const list = document.getElementById("transcript").getBoundingClientRect();
          const box = node.getBoundingClientRect();
          return node.scrollWidth <= node.clientWidth + 1 && box.right <= list.right + 1 && box.height > 60;
        }"""
    )
    assert fits, "a long unbroken message overflows the transcript instead of wrapping"


async def test_a_password_change_says_why_in_french_or_english_and_closes_the_other_sessions(
    desk: BrowserContext, browser: Browser, server: TestServer
) -> None:
    await add_listeners(server, "anne")
    anne = await log_in(desk, server, "anne")
    elsewhere = await browser.new_context(viewport={"width": 1280, "height": 820}, locale="fr-FR")
    try:
        other_tab = await log_in(elsewhere, server, "anne")

        async def change(new: str, again: str | None = None) -> None:
            await anne.locator("#password-open").click()
            await anne.locator("#password-current").fill(PASSWORD)
            await anne.locator("#password-new").fill(new)
            await anne.locator("#password-again").fill(again if again is not None else new)
            await anne.locator("#password-send").click()

        await change("court")
        await expect(anne.locator("#password-error")).to_have_text(
            "Mot de passe trop court : au moins 12 caractères (une phrase de quelques mots convient)."
        )
        await anne.keyboard.press("Escape")
        await change("motdepasse2024!")
        await expect(anne.locator("#password-error")).to_contain_text("Mot de passe trop courant")
        await anne.keyboard.press("Escape")
        await anne.get_by_role("button", name="EN", exact=True).click()
        await change("azertyuiop123")
        await expect(anne.locator("#password-error")).to_have_text(
            "Password too common: it is in the lists attackers try first."
        )
        await anne.keyboard.press("Escape")
        await change("le chat dort sur le radiateur", "le chat dort")
        await expect(anne.locator("#password-error")).to_have_text("The two new passwords differ.")
        await anne.keyboard.press("Escape")
        await change("le chat dort sur le radiateur")
        await expect(anne.locator("#password-dialog")).not_to_be_visible()
        await expect(anne.locator("#toast")).to_contain_text("Password changed")
        await expect(other_tab).to_have_url(str(server.make_url("/console/login?expired=1")))  # closed at once
        await expect(anne.locator("#connection")).to_have_text("Live")  # this one got a new session
        await anne.reload()
        await expect(anne.locator("#me")).to_have_text("anne")
    finally:
        await elsewhere.close()


async def test_a_supervisor_logs_a_listener_out_everywhere_and_the_open_console_closes(
    desk: BrowserContext, browser: Browser, server: TestServer
) -> None:
    await add_listeners(server, "anne", supervisor="sam")
    anne = await log_in(desk, server, "anne")
    supervisor = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="fr-FR")
    try:
        board = await log_in(supervisor, server, "sam")
        await board.get_by_role("link", name="Supervision").click()
        await board.get_by_role("button", name="Déconnecter partout : anne").click()
        await expect(board.locator("#accounts-result")).to_have_text("anne : 1 session(s) fermée(s)")
        await expect(anne).to_have_url(str(server.make_url("/console/login?expired=1")))
        await expect(board.locator("#audit")).to_contain_text("déconnexion partout")
        await board.reload()  # the supervisor's own session goes on
        await expect(board).to_have_url(str(server.make_url("/console/supervision")))
    finally:
        await supervisor.close()
