"""Nothing half-written is lost in the console (issue 8): a listener's unsaved private note or unsent reply stays
when the conversation is taken from under them: kept per conversation in the tab (sessionStorage, never the
server), said in the console's language, to copy; back in the box when that conversation opens again; gone once
saved or sent. Nothing of it is ever sent or saved by itself.

Chromium on the real app: Bruno's and Sonia's browsers (colleagues; Sam, a supervisor), a young person's phone."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, BrowserContext, Page, expect

from gateway.app import STORE
from gateway.conversation import Status
from gateway.store import Author, Listener
from tests.conftest import PASSWORD, Clock, password_hash
from tests.e2e.conftest import french_window
from tests.e2e.test_chat import open_chat, walk_to_queue
from tests.e2e.test_console import log_in

pytestmark = pytest.mark.browser

HALF_NOTE = "Parle de son beau-père, à recouper avec"
HALF_REPLY = "Merci de me l'avoir dit. Est-ce que tu"
DRAFT_KEYS = "Object.keys(sessionStorage).filter(k => k.startsWith('hg-draft:'))"


async def add(server: TestServer, name: str, *, supervisor: bool = False) -> None:
    await server.app[STORE].add_listener(Listener(name, password_hash(), supervisor=supervisor, capacity=3))


async def written_by_listeners(server: TestServer) -> list[str]:
    """Every reply and note the store holds, in any conversation."""
    store = server.app[STORE]
    texts = []
    for status in Status:
        for conversation in await store.conversations_by_status(status):
            entries = await store.transcript(conversation.id)
            texts += [e.text for e in entries if e.author in (Author.LISTENER, Author.NOTE)]
    return texts


async def note_on_the_waiting_card(listener: Page, phone: Page, server: TestServer) -> Page:
    """A young person walks to the queue on ``phone``; the listener opens their card and starts a private note,
    unsaved. The young person's page."""
    young = await open_chat(phone, server)
    await walk_to_queue(young)
    await listener.locator("#waiting .card .card-open").click()
    await listener.locator("#reply").fill(HALF_NOTE)
    return young


async def test_a_half_written_note_survives_a_colleagues_take_and_goes_once_saved(
    desk: BrowserContext, browser: Browser, server: TestServer
) -> None:
    await add(server, "bruno")
    await add(server, "sonia")
    await add(server, "sam", supervisor=True)
    async with (
        french_window(browser, 1280, 820) as other_desk,
        french_window(browser, 1280, 820) as boss_desk,
        french_window(browser, 390, 780) as phone,
    ):
        await desk.grant_permissions(["clipboard-read", "clipboard-write"])
        bruno, sonia = await log_in(desk, server, "bruno"), await log_in(other_desk, server, "sonia")
        young = await open_chat(phone, server)
        await walk_to_queue(young)

        # Bruno reads the waiting card and starts a private note; he does not save it.
        await bruno.locator("#waiting .card .card-open").click()
        await expect(bruno.locator("#composer")).to_have_attribute("data-mode", "note")
        await bruno.locator("#reply").fill(HALF_NOTE)

        # Sonia takes the conversation: Bruno's panel closes (he may no longer see it, nor note on it) ...
        await expect(sonia.locator("#waiting .card")).to_have_count(1)
        await sonia.locator("#waiting .card .take").click()
        await expect(sonia.locator("#composer")).to_have_attribute("data-mode", "reply")
        await expect(bruno.locator("#conversation")).to_be_hidden()
        await expect(bruno.locator("#gone")).to_contain_text("Un·e collègue a pris cette conversation")
        # ... and his words are still there, said so, to copy.
        kept = bruno.locator("#kept .kept-draft")
        await expect(kept).to_have_count(1)
        await expect(kept).to_contain_text("Ta note non enregistrée a été gardée")
        await expect(kept.locator(".kept-text")).to_have_value(HALF_NOTE)
        await kept.get_by_role("button", name="Copier").click()
        await expect(kept.locator(".kept-copied")).to_have_text("Copié.")
        assert await bruno.evaluate("navigator.clipboard.readText()") == HALF_NOTE
        await bruno.get_by_role("button", name="EN", exact=True).click()  # English second
        await expect(kept).to_contain_text("Your unsaved note was kept")
        await bruno.get_by_role("button", name="FR", exact=True).click()

        # Nothing was sent or saved: not in the store, not on Sonia's console, not on the young person's page.
        await expect(sonia.locator("#transcript .msg").first).to_be_visible()
        await expect(sonia.locator('#transcript .msg[data-author="note"]')).to_have_count(0)
        await expect(young.locator('.msg[data-author="listener"]')).to_have_count(0)
        assert not any(HALF_NOTE in text for text in await written_by_listeners(server))

        # A reload keeps it (the tab's storage), still listed.
        await bruno.reload()
        await expect(bruno.locator("#connection")).to_have_text("En direct")
        await expect(bruno.locator("#kept .kept-text")).to_have_value(HALF_NOTE)

        # Sam, a supervisor, gives it back to the queue: Bruno opens it again, his note is back in the box, a note.
        sam = await log_in(boss_desk, server, "sam")
        await sam.locator("#others .card .card-open").click()
        await sam.get_by_role("button", name="Rendre à la file").click()
        await expect(bruno.locator("#waiting .card")).to_have_count(1)
        await bruno.locator("#waiting .card .card-open").click()
        await expect(bruno.locator("#reply")).to_have_value(HALF_NOTE)
        await expect(bruno.locator("#composer")).to_have_attribute("data-mode", "note")
        await expect(bruno.locator("#kept-section")).to_be_hidden()  # back in its box, no longer listed

        # He finishes it and saves it: in the store once, and the draft is gone (a reload opens an empty box).
        await bruno.locator("#reply").press("End")
        await bruno.keyboard.type(" le signalement d'hier.")
        await bruno.locator("#reply").press("Enter")
        await expect(bruno.locator('#transcript .msg[data-author="note"] .text')).to_contain_text(HALF_NOTE)
        await expect(bruno.locator("#reply")).to_have_value("")
        assert await bruno.evaluate(DRAFT_KEYS) == []
        assert [t for t in await written_by_listeners(server) if HALF_NOTE in t] == [
            f"bruno: {HALF_NOTE} le signalement d'hier."
        ]
        await bruno.reload()
        await expect(bruno.locator("#take")).to_be_visible()  # the hash opens its card again (no transcript)
        await expect(bruno.locator("#reply")).to_have_value("")
        await expect(bruno.locator("#kept-section")).to_be_hidden()
        await expect(young.locator('.msg[data-author="listener"]')).to_have_count(0)


@asynccontextmanager
async def bruno_writing_before_sam(
    desk: BrowserContext, browser: Browser, server: TestServer
) -> AsyncIterator[tuple[Page, Page, Page]]:
    """Bruno takes a young person's conversation and starts a reply he does not send; Sam, a supervisor, has it
    open from the others' list: (bruno, sam, young)."""
    await add(server, "bruno")
    await add(server, "sam", supervisor=True)
    async with french_window(browser, 1280, 820) as boss_desk, french_window(browser, 390, 780) as phone:
        bruno = await log_in(desk, server, "bruno")
        young = await open_chat(phone, server)
        await walk_to_queue(young)
        await bruno.locator("#waiting .card .take").click()
        await expect(young.locator(".msg").last).to_contain_text("vient de te rejoindre")
        await expect(bruno.locator("#composer")).to_have_attribute("data-mode", "reply")
        await bruno.locator("#reply").fill(HALF_REPLY)

        sam = await log_in(boss_desk, server, "sam")
        await sam.locator("#others .card .card-open").click()
        yield bruno, sam, young


async def test_a_half_written_reply_stays_when_a_supervisor_hands_the_conversation_back(
    desk: BrowserContext, browser: Browser, server: TestServer
) -> None:
    """The panel stays (a waiting card) but can only write notes now: the reply is still in the box, said kept and
    unsent; taken again, it is a reply again, and sent it goes once and the draft is gone."""
    async with bruno_writing_before_sam(desk, browser, server) as (bruno, sam, young):
        await sam.get_by_role("button", name="Rendre à la file").click()
        await expect(young.locator(".msg").last).to_contain_text("position 1")

        await expect(bruno.locator("#take")).to_be_visible()  # a waiting card again, in the same panel
        await expect(bruno.locator("#composer")).to_have_attribute("data-mode", "note")
        await expect(bruno.locator("#reply")).to_have_value(HALF_REPLY)
        await expect(bruno.locator("#draft-kept")).to_contain_text("Ta réponse non envoyée a été gardée ici")
        await expect(young.locator('.msg[data-author="listener"]')).to_have_count(0)
        assert not any(HALF_REPLY in text for text in await written_by_listeners(server))

        # Bruno opens nothing else and takes it again: his reply is a reply again; sent, it arrives once.
        await bruno.locator("#take").click()
        await expect(bruno.locator("#composer")).to_have_attribute("data-mode", "reply")
        await expect(bruno.locator("#draft-kept")).to_be_hidden()
        await expect(bruno.locator("#reply")).to_have_value(HALF_REPLY)
        await bruno.locator("#reply").press("Enter")
        await expect(young.locator('.msg[data-author="listener"] .text')).to_have_text([HALF_REPLY])
        await expect(bruno.locator("#reply")).to_have_value("")
        assert await bruno.evaluate(DRAFT_KEYS) == []


async def test_a_half_written_reply_is_kept_when_a_supervisor_closes_the_conversation(
    desk: BrowserContext, browser: Browser, server: TestServer
) -> None:
    """Closed by a supervisor, the conversation leaves Bruno's console: the reply is listed as kept, unsent, until
    he discards it."""
    async with bruno_writing_before_sam(desk, browser, server) as (bruno, sam, young):
        await sam.get_by_role("button", name="Clôturer").click()
        await sam.get_by_label("Catégorie").select_option("school_bullying")
        await sam.locator("#close-send").click()
        await expect(young.locator(".ended")).to_be_visible()

        await expect(bruno.locator("#conversation")).to_be_hidden()
        kept = bruno.locator("#kept .kept-draft")
        await expect(kept).to_contain_text("Ta réponse non envoyée a été gardée")
        await expect(kept.locator(".kept-text")).to_have_value(HALF_REPLY)
        await expect(young.locator('.msg[data-author="listener"]')).to_have_count(0)
        assert not any(HALF_REPLY in text for text in await written_by_listeners(server))

        await kept.get_by_role("button", name="Jeter").click()
        await expect(bruno.locator("#kept-section")).to_be_hidden()
        assert await bruno.evaluate(DRAFT_KEYS) == []


async def test_a_note_written_on_a_card_stays_a_note_when_its_writer_takes_the_conversation(
    desk: BrowserContext, browser: Browser, server: TestServer
) -> None:
    """Taking lands in reply mode (test_console_take.py) but for a note already written: Enter after the take saves
    it as a note, never sends it to the young person; the next message is a reply again."""
    await add(server, "bruno")
    async with french_window(browser, 390, 780) as phone:
        bruno = await log_in(desk, server, "bruno")
        young = await note_on_the_waiting_card(bruno, phone, server)
        await bruno.locator("#take").click()
        await expect(young.locator(".msg").last).to_contain_text("vient de te rejoindre")
        await expect(bruno.locator("#take")).to_be_hidden()
        await expect(bruno.locator("#composer")).to_have_attribute("data-mode", "note")
        await expect(bruno.locator("#reply")).to_have_value(HALF_NOTE)
        await bruno.locator("#reply").press("Enter")
        await expect(bruno.locator('#transcript .msg[data-author="note"] .text')).to_contain_text(HALF_NOTE)
        await expect(bruno.locator("#composer")).to_have_attribute("data-mode", "reply")
        await expect(young.locator('.msg[data-author="listener"]')).to_have_count(0)
        assert await bruno.evaluate(DRAFT_KEYS) == []


async def test_logging_out_with_drafts_asks_first_and_forgets_them(
    desk: BrowserContext, browser: Browser, server: TestServer
) -> None:
    """A shared desk: unsent drafts never outlive a logout. With some, "Se déconnecter" first asks in the page how
    many will be lost ("Annuler" focused: Escape keeps everything); confirmed, they are gone from the tab. Without
    drafts the logout is immediate."""
    await add(server, "bruno")
    async with french_window(browser, 390, 780) as phone, french_window(browser, 390, 780) as other_phone:
        bruno = await log_in(desk, server, "bruno")
        young = await open_chat(phone, server)
        await walk_to_queue(young)
        await bruno.locator("#waiting .card .take").click()
        await expect(bruno.locator("#composer")).to_have_attribute("data-mode", "reply")
        await bruno.locator("#reply").fill(HALF_REPLY)  # a reply in progress, in the box
        other = await open_chat(other_phone, server)
        await walk_to_queue(other)
        await bruno.locator("#waiting .card .card-open").click()  # a note on another's waiting card
        await expect(bruno.locator("#composer")).to_have_attribute("data-mode", "note")
        await bruno.locator("#reply").fill(HALF_NOTE)

        dialog = bruno.locator("#logout-dialog")
        await bruno.get_by_role("button", name="EN", exact=True).click()  # English second
        await bruno.get_by_role("button", name="Log out").click()
        await expect(dialog).to_contain_text("2 unsent drafts will be lost")
        await expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
        await bruno.keyboard.press("Escape")  # cancelled: nothing changes
        await expect(dialog).to_be_hidden()
        await bruno.get_by_role("button", name="FR", exact=True).click()
        await expect(bruno.locator("#reply")).to_have_value(HALF_NOTE)
        assert len(await bruno.evaluate(DRAFT_KEYS)) == 2

        await bruno.get_by_role("button", name="Se déconnecter").click()
        await expect(dialog).to_contain_text("2 brouillons non envoyés seront perdus")
        await expect(dialog.get_by_role("button", name="Annuler")).to_be_focused()
        await bruno.keyboard.press("Tab")
        await expect(dialog.get_by_role("button", name="Se déconnecter et les perdre")).to_be_focused()
        await bruno.keyboard.press("Enter")
        await expect(bruno).to_have_url(str(server.make_url("/console/login")))
        assert await bruno.evaluate(DRAFT_KEYS) == []  # the same tab: nothing left to read on a shared desk
        assert not any(HALF_NOTE in text or HALF_REPLY in text for text in await written_by_listeners(server))

        # Back in the same tab: nothing restored; and with no draft, "Se déconnecter" logs out at once.
        await bruno.get_by_label("Nom").fill("bruno")
        await bruno.get_by_label("Mot de passe").fill(PASSWORD)
        await bruno.get_by_role("button", name="Se connecter").click()
        await expect(bruno.locator("#connection")).to_have_text("En direct")
        await bruno.locator("#waiting .card .card-open").first.click()
        await expect(bruno.locator("#reply")).to_have_value("")
        await expect(bruno.locator("#kept-section")).to_be_hidden()
        await bruno.get_by_role("button", name="Se déconnecter").click()
        await expect(bruno).to_have_url(str(server.make_url("/console/login")))
        await expect(bruno.locator("#logout-dialog")).to_have_count(0)


@asynccontextmanager
async def bruno_holding(desk: BrowserContext, browser: Browser, server: TestServer) -> AsyncIterator[tuple[Page, Page]]:
    """Bruno holds a young person's conversation: (bruno, young)."""
    await add(server, "bruno")
    async with french_window(browser, 390, 780) as phone:
        bruno = await log_in(desk, server, "bruno")
        young = await open_chat(phone, server)
        await walk_to_queue(young)
        await bruno.locator("#waiting .card .take").click()
        await expect(young.locator(".msg").last).to_contain_text("vient de te rejoindre")
        await expect(bruno.locator("#composer")).to_have_attribute("data-mode", "reply")
        yield bruno, young


async def close_as(page: Page, category: str) -> None:
    await page.get_by_label("Catégorie").select_option(category)
    await page.locator("#close-send").click()


async def test_closing_ones_own_conversation_says_its_unsent_reply_goes_and_keeps_nothing(
    desk: BrowserContext, browser: Browser, server: TestServer
) -> None:
    """The listener closes it: the reply in the box cannot go any more and is no longer theirs to keep as "taken
    away". The close dialog says it is discarded ("Annuler" to send it first); closed, nothing is listed as kept."""
    async with bruno_holding(desk, browser, server) as (bruno, young):
        await bruno.locator("#reply").fill(HALF_REPLY)
        await bruno.get_by_role("button", name="Clôturer").click()
        warning = bruno.locator("#close-draft")
        await expect(warning).to_have_text(
            "Ta réponse en cours n'a pas été envoyée : la clôture la jette, le ou la jeune ne la recevra pas. "
            "Annule pour l'envoyer d'abord."
        )
        await expect(bruno.locator("#close-notes")).to_have_value("")  # a reply is never made a note
        await bruno.get_by_role("button", name="Annuler").click()  # cancelled: still in the box, still a reply
        await expect(bruno.locator("#reply")).to_have_value(HALF_REPLY)
        assert len(await bruno.evaluate(DRAFT_KEYS)) == 1

        await bruno.get_by_role("button", name="Clôturer").click()
        await expect(warning).to_be_visible()
        await close_as(bruno, "school_bullying")
        await expect(young.locator(".ended")).to_be_visible()
        await expect(bruno.locator("#conv-meta")).to_contain_text("clôturée")
        await expect(bruno.locator("#history .card")).to_have_count(1)
        await expect(bruno.locator("#kept-section")).to_be_hidden()
        assert await bruno.evaluate(DRAFT_KEYS) == []
        await bruno.reload()
        await expect(bruno.locator("#connection")).to_have_text("En direct")
        await expect(bruno.locator("#conv-meta")).to_contain_text("clôturée")
        await expect(bruno.locator("#kept-section")).to_be_hidden()
        await expect(young.locator('.msg[data-author="listener"]')).to_have_count(0)
        assert not any(HALF_REPLY in text for text in await written_by_listeners(server))


async def test_closing_ones_own_conversation_saves_its_unsaved_note_with_the_close(
    desk: BrowserContext, browser: Browser, server: TestServer
) -> None:
    """A private note in the box is never lost by a close: it is in the close's notes, seen and editable, and saved
    with the close, once; cancelled, it stays in the box only."""
    async with bruno_holding(desk, browser, server) as (bruno, young):
        await bruno.get_by_role("button", name="Note privée").click()
        await bruno.locator("#reply").fill(HALF_NOTE)
        await bruno.get_by_role("button", name="Clôturer").click()
        await expect(bruno.locator("#close-draft")).to_have_text(
            "Ta note privée en cours est reprise dans les notes ci-dessous : elle sera enregistrée avec la clôture."
        )
        await expect(bruno.locator("#close-notes")).to_have_value(HALF_NOTE)
        await bruno.keyboard.press("Escape")
        await expect(bruno.locator("#close-dialog")).to_be_hidden()
        await expect(bruno.locator("#close-notes")).to_have_value("")  # not doubled when it opens again
        await expect(bruno.locator("#reply")).to_have_value(HALF_NOTE)

        await bruno.get_by_role("button", name="Clôturer").click()
        await expect(bruno.locator("#close-notes")).to_have_value(HALF_NOTE)
        await close_as(bruno, "school_bullying")
        await expect(young.locator(".ended")).to_be_visible()
        await expect(bruno.locator('#transcript .msg[data-author="note"] .text')).to_have_text([f"bruno: {HALF_NOTE}"])
        await expect(bruno.locator("#kept-section")).to_be_hidden()
        assert await bruno.evaluate(DRAFT_KEYS) == []
        assert [t for t in await written_by_listeners(server) if HALF_NOTE in t] == [f"bruno: {HALF_NOTE}"]
        await expect(young.locator('.msg[data-author="listener"]')).to_have_count(0)


async def test_an_earlier_conversation_opened_from_a_held_one_stays_open_through_a_reload(
    desk: BrowserContext, browser: Browser, server: TestServer, clock: Clock
) -> None:
    """Bruno's note on a waiting card is kept when the young person leaves the queue (the conversation is no longer
    open to him). They come back; holding the new conversation, he opens the earlier one from it, and reloads: it is
    still open (the page remembers where it was opened from), nothing says it is gone, the note is listed once."""
    await add(server, "bruno")
    async with french_window(browser, 390, 780) as phone:
        bruno = await log_in(desk, server, "bruno")
        young = await note_on_the_waiting_card(bruno, phone, server)
        young.on("dialog", lambda dialog: dialog.accept())
        await young.get_by_role("button", name="Terminer").click()
        await expect(young.locator("#ended")).to_be_visible()
        kept = bruno.locator("#kept .kept-draft")
        await expect(kept.locator(".kept-text")).to_have_value(HALF_NOTE)

        clock.advance(hours=3)
        await young.get_by_role("button", name="Nouvelle conversation").click()
        await walk_to_queue(young)
        await bruno.locator("#waiting .card .take").click()
        await expect(bruno.locator("#conv-meta")).to_contain_text("avec bruno")
        earlier = bruno.locator("#returning").get_by_role("button")
        await expect(earlier).to_have_count(1)
        await earlier.click()
        await expect(bruno.locator("#conv-meta")).to_contain_text("abandonnée")
        title = await bruno.locator("#conv-title").inner_text()

        await bruno.reload()
        await expect(bruno.locator("#connection")).to_have_text("En direct")
        await expect(bruno.locator("#conv-meta")).to_contain_text("abandonnée")
        await expect(bruno.locator("#conv-title")).to_have_text(title)
        await expect(bruno.locator("#gone")).to_be_hidden()
        await expect(kept).to_have_count(1)
        await expect(kept.locator(".kept-text")).to_have_value(HALF_NOTE)


async def test_a_reply_left_unsent_when_the_young_person_leaves_is_listed_as_kept(
    desk: BrowserContext, browser: Browser, server: TestServer
) -> None:
    """Bruno's reply cannot go once the young person ended the conversation while he was reading the queue: it is
    listed as kept at once (the logout's count shows nothing that cannot be found), not only when he opens the ended
    conversation from his history."""
    async with bruno_holding(desk, browser, server) as (bruno, young), french_window(browser, 390, 780) as phone:
        await bruno.locator("#reply").fill(HALF_REPLY)
        await walk_to_queue(await open_chat(phone, server))
        await bruno.locator("#waiting .card .card-open").click()  # another young person's card
        await expect(bruno.locator("#take")).to_be_visible()
        young.on("dialog", lambda dialog: dialog.accept())
        await young.get_by_role("button", name="Terminer").click()
        await expect(young.locator("#ended")).to_be_visible()

        await expect(bruno.locator("#history .card")).to_have_count(1)
        kept = bruno.locator("#kept .kept-draft")
        await expect(kept).to_contain_text("Ta réponse non envoyée a été gardée")
        await expect(kept.locator(".kept-text")).to_have_value(HALF_REPLY)
        await bruno.reload()
        await expect(bruno.locator("#connection")).to_have_text("En direct")
        await expect(kept.locator(".kept-text")).to_have_value(HALF_REPLY)
        await bruno.get_by_role("button", name="Se déconnecter").click()
        await expect(bruno.locator("#logout-dialog")).to_contain_text("1 brouillon non envoyé sera perdu")


async def test_a_supervisor_logging_out_from_the_supervision_page_is_asked_too(
    desk: BrowserContext, browser: Browser, server: TestServer
) -> None:
    """The tab's drafts are the tab's, whichever page ends the session: Sam wrote a note in the console, went to the
    supervision page in the same tab and logs out there: asked, then nothing left."""
    await add(server, "sam", supervisor=True)
    async with french_window(browser, 390, 780) as phone:
        sam = await log_in(desk, server, "sam")
        await note_on_the_waiting_card(sam, phone, server)
        await sam.get_by_role("link", name="Supervision").click()
        await expect(sam).to_have_url(str(server.make_url("/console/supervision")))
        await sam.get_by_role("button", name="Se déconnecter").click()
        dialog = sam.locator("#logout-dialog")
        await expect(dialog).to_contain_text("1 brouillon non envoyé sera perdu")
        await dialog.get_by_role("button", name="Se déconnecter et les perdre").click()
        await expect(sam).to_have_url(str(server.make_url("/console/login")))
        assert await sam.evaluate(DRAFT_KEYS) == []
