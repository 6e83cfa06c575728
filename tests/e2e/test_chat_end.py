"""The web chat when the line is closed and after the end, in a real Chromium: the closed line is said before the
first question; once the conversation ends, the last messages (the numbers) stay in sight, the message box gives
way to "Nouvelle conversation", nothing typed starts a conversation, and a reload still shows the numbers; a message
sent just as a listener closes the conversation is not lost: said, and kept in the message box for a new one."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import BrowserContext, Page, WebSocketRoute, expect

from gateway.app import API, STORE
from gateway.conversation import Status
from tests.conftest import Clock
from tests.e2e.test_chat import bot_messages, open_chat, queued_then_silent, type_answer, walk_to_queue

pytestmark = pytest.mark.browser


async def conversations(server: TestServer, clock: Clock) -> int:
    since, until = clock.now - timedelta(days=1), clock.now + timedelta(days=1)
    return len(await server.app[STORE].list_conversations(since, until))


async def walk_while_closed(page: Page) -> None:
    await page.get_by_role("button", name="Non", exact=True).click()
    await page.get_by_role("button", name="Français").click()
    await expect(bot_messages(page).last).to_contain_text("âge")
    await type_answer(page, "j'ai 14 ans")
    await page.get_by_role("button", name="Pour moi").click()
    await page.get_by_role("button", name="Cyberharcèlement").click()
    await expect(bot_messages(page).last).to_contain_text("quelques mots")
    await type_answer(page, "Des élèves se moquent de moi sur un groupe.")


async def test_closed_line_said_first_then_the_end_keeps_the_numbers(
    context: BrowserContext, server: TestServer, clock: Clock
) -> None:
    clock.advance(hours=9, minutes=30)  # 23:30 in Paris: the line is closed until 9:00
    page = await open_chat(context, server)
    bots = bot_messages(page)
    await expect(bots).to_have_count(3)  # welcome, the closed line, then the first question
    await expect(bots.nth(0)).not_to_contain_text("va lire tes messages")
    await expect(bots.nth(1)).to_contain_text("fermé pour le moment")
    await expect(bots.nth(1)).to_contain_text("demain à 9h")
    await expect(bots.nth(1)).to_contain_text("119")
    await expect(bots.nth(1)).to_contain_text("3114")
    await expect(bots.nth(1)).to_contain_text("17 ou le 112")
    await expect(bots.nth(2)).to_contain_text("es-tu en danger")

    await walk_while_closed(page)
    await expect(page.locator("#ended")).to_be_visible()
    await expect(page.locator("#composer")).to_be_hidden()
    await expect(page.locator("#choices")).to_be_hidden()
    await expect(page.locator("#new-conversation")).to_be_focused()
    last = bots.last
    await expect(last).to_contain_text("3114")
    await expect(last).to_be_in_viewport(ratio=1)  # not under the "Conversation terminée" box
    assert await conversations(server, clock) == 1

    await page.keyboard.type("coucou")  # nothing typed goes anywhere
    await page.reload()
    await expect(page.locator("#ended")).to_be_visible()
    await expect(page.locator("#composer")).to_be_hidden()
    await expect(bot_messages(page).last).to_contain_text("3114")
    await expect(bot_messages(page).last).to_be_in_viewport()
    await expect(page.locator('.msg[data-author="user"]')).to_have_count(0)  # the young person's words are not kept
    assert await conversations(server, clock) == 1  # the reload started nothing
    assert await server.app[STORE].conversations_by_status(Status.BOT) == []

    await page.get_by_role("button", name="Nouvelle conversation").click()
    await expect(page.locator("#ended")).to_be_hidden()
    await expect(page.locator("#composer")).to_be_visible()
    await expect(bot_messages(page)).to_have_count(3)  # a fresh greeting, the closed line, the question
    await expect(page.locator("#choices button").first).to_be_visible()
    assert await conversations(server, clock) == 2
    await page.reload()  # the new conversation resumes, the ended one is gone
    await expect(page.locator("#ended")).to_be_hidden()
    await expect(bot_messages(page)).to_have_count(3)


async def test_ending_it_yourself_keeps_the_goodbye_in_sight(
    context: BrowserContext, server: TestServer, clock: Clock
) -> None:
    page = await open_chat(context, server)
    page.on("dialog", lambda dialog: dialog.accept())
    await page.get_by_role("button", name="Terminer").click()
    await expect(page.locator("#ended")).to_be_visible()
    await expect(bot_messages(page).last).to_contain_text("La conversation est terminée")
    await expect(bot_messages(page).last).to_be_in_viewport(ratio=1)
    await expect(page.locator("#message-input")).to_be_hidden()
    await page.reload()
    await expect(bot_messages(page).last).to_contain_text("La conversation est terminée")
    assert await conversations(server, clock) == 1


async def test_an_ended_conversation_is_not_shown_to_whoever_opens_the_chat_an_hour_later(
    context: BrowserContext, server: TestServer, clock: Clock
) -> None:
    """The last messages of an ended conversation are kept in the browser so that a reload shows the numbers given;
    kept for good, whoever opened the chat on the same device days later (a parent, a sibling) read what the line
    said. The page's own record is set back two hours, as time would."""
    page = await open_chat(context, server)
    page.on("dialog", lambda dialog: dialog.accept())
    await page.get_by_role("button", name="Terminer").click()
    await expect(bot_messages(page).last).to_contain_text("La conversation est terminée")
    await page.evaluate("""() => {
        const kept = JSON.parse(localStorage.getItem("hg-chat-ended"));
        kept.at -= 2 * 60 * 60 * 1000;
        localStorage.setItem("hg-chat-ended", JSON.stringify(kept));
    }""")
    await page.reload()
    await expect(page.locator("#composer")).to_be_visible()  # a new conversation, greeted
    await expect(page.locator("#ended")).to_be_hidden()
    await expect(page.locator("#messages")).not_to_contain_text("La conversation est terminée")
    assert await page.evaluate('() => localStorage.getItem("hg-chat-ended")') is None


class Deaf:
    """Passes the page's socket through; while ``deaf``, the server's news (status, entries) is kept from the page,
    which still hears its acknowledgements and errors: it has not learnt yet that the conversation ended."""

    def __init__(self) -> None:
        self.deaf = False

    async def route(self, page_side: WebSocketRoute) -> None:
        server_side = page_side.connect_to_server()

        def from_server(message: str | bytes) -> None:
            if not self.deaf or json.loads(message).get("type") in ("ack", "error"):
                page_side.send(message)

        page_side.on_message(server_side.send)
        server_side.on_message(from_server)


async def test_a_message_sent_as_the_conversation_closes_waits_in_the_box_for_a_new_one(
    context: BrowserContext, server: TestServer, clock: Clock
) -> None:
    words = "Attends, il y a encore une chose."
    page, deaf = await context.new_page(), Deaf()
    await page.route_web_socket("**/chat/ws", deaf.route)
    await page.goto(str(server.make_url("/chat")))
    await walk_to_queue(page)
    [waiting] = await server.app[STORE].conversations_by_status(Status.QUEUED)
    deaf.deaf = True
    await server.app[API].actions.close(waiting.id, "anne", "cyberbullying")  # the page has not heard of it yet

    await type_answer(page, words)  # dropped by the server: the conversation has ended
    await expect(page.locator(".msg.system").last).to_contain_text("ton dernier message n'a pas été envoyé")
    await expect(page.locator("#ended")).to_be_visible()
    await expect(page.locator('.msg[data-author="user"] .text')).not_to_contain_text([words])
    deaf.deaf = False
    await page.get_by_role("button", name="Nouvelle conversation").click()
    await expect(page.locator("#message-input")).to_have_value(words)  # kept for the new conversation
    await expect(page.locator("#choices button").first).to_be_visible()
    await page.locator("#message-input").press("Enter")
    await expect(page.locator('.msg[data-author="user"] .text').last).to_have_text(words)
    await expect(page.locator(".msg.user.pending")).to_have_count(0)  # acknowledged: recorded
    store = server.app[STORE]
    [new] = [c for status in (Status.BOT, Status.QUEUED) for c in await store.conversations_by_status(status)]
    assert new.id != waiting.id and words in [e.text for e in await store.transcript(new.id)]
    assert words not in [e.text for e in await store.transcript(waiting.id)]


async def test_ending_it_yourself_into_a_connection_that_died_silently_still_ends_it(
    context: BrowserContext, server: TestServer
) -> None:
    """A review of chat.js (2026-12-05): "Terminer" pressed into a connection that had died without a word (a phone
    changing networks) was lost, the conversation going on in the queue without the young person, who saw nothing
    happen. Now the page takes the silence for a dead connection, connects again and asks once more."""
    page, silent = await queued_then_silent(context, server)
    page.on("dialog", lambda dialog: dialog.accept())
    await page.get_by_role("button", name="Terminer").click()
    await page.clock.run_for(16_000)
    await expect(bot_messages(page).last).to_contain_text("La conversation est terminée")
    await expect(page.locator("#ended")).to_be_visible()
    assert silent.sockets == 2
    assert await server.app[STORE].conversations_by_status(Status.QUEUED) == []


async def test_an_end_missed_while_the_connection_was_dead_is_shown_with_the_listeners_last_words(
    context: BrowserContext, server: TestServer, clock: Clock
) -> None:
    """A young person's connection died without a word while a listener answered and closed the conversation. When
    the page connected again, its hello opened a new conversation: the bot's welcome took the place of the listener's
    last words ("appelle le 119") and of the end (noted in a review, 2026-12-05). Now the hello names the conversation
    the page followed, and one that ended meanwhile is shown ended, with what the line said and nothing new opened."""
    page, silent = await queued_then_silent(context, server)
    store, actions = server.app[STORE], server.app[API].actions
    [waiting] = await store.conversations_by_status(Status.QUEUED)
    await actions.take(waiting.id, "anne", 3)
    await actions.reply(waiting.id, "anne", "Si ça recommence, appelle le 119, de jour comme de nuit.")
    await actions.close(waiting.id, "anne", "cyberbullying")
    await page.clock.run_for(51_000)  # nothing heard: taken for dead, connected again
    await expect(page.locator("#ended")).to_be_visible()
    await expect(page.locator('.msg[data-author="listener"] .text')).to_have_text(
        ["Si ça recommence, appelle le 119, de jour comme de nuit."]
    )
    await expect(page.locator("#composer")).to_be_hidden()
    assert silent.sockets == 2
    assert await conversations(server, clock) == 1  # nothing new was opened
    await page.get_by_role("button", name="Nouvelle conversation").click()  # a new one only when asked
    await expect(page.locator("#choices button").first).to_be_visible()
    assert await conversations(server, clock) == 2


async def test_a_closed_tab_opened_again_within_the_hour_shows_the_end_and_later_a_new_conversation(
    context: BrowserContext, server: TestServer, clock: Clock
) -> None:
    """The tab was closed while the young person waited; a listener answered and closed the conversation. Opened
    again within the hour, the chat shows the end and the listener's words (never the young person's: the device
    may be shared); past the hour, a new conversation as before."""
    page = await open_chat(context, server)
    await walk_to_queue(page)
    await page.close()
    store, actions = server.app[STORE], server.app[API].actions
    [waiting] = await store.conversations_by_status(Status.QUEUED)
    await actions.take(waiting.id, "anne", 3)
    await actions.reply(waiting.id, "anne", "Je dois clore : le 3018 reste là, rappelle quand tu veux.")
    await actions.close(waiting.id, "anne", "cyberbullying")
    clock.advance(minutes=40)
    again = await context.new_page()
    await again.goto(str(server.make_url("/chat")))
    await expect(again.locator("#ended")).to_be_visible()
    await expect(again.locator('.msg[data-author="listener"] .text')).to_have_text(
        ["Je dois clore : le 3018 reste là, rappelle quand tu veux."]
    )
    await expect(again.locator('.msg[data-author="user"]')).to_have_count(0)
    # past the hour: the same hello (its page kept the conversation, not the record of its end) opens a new one
    clock.advance(hours=1)
    await again.evaluate(
        "id => { localStorage.removeItem('hg-chat-ended'); localStorage.setItem('hg-chat-conversation', id); }",
        waiting.id,
    )
    await again.reload()
    await expect(again.locator("#choices button").first).to_be_visible()  # a new conversation: the welcome
    await expect(again.locator("#ended")).to_be_hidden()
    assert await conversations(server, clock) == 2
