"""An image sent from the web chat, in a real Chromium: a phone photo with its location goes through the page's
"Image" button, the listener sees it in the console like any channel's attachment, and what the gateway kept
has no EXIF; a file that is no image is refused with a plain message in the page's language."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from PIL import Image
from playwright.async_api import BrowserContext, Route, expect

from gateway.app import STORE
from gateway.conversation import Status
from gateway.erasure import EPOCH, FAR
from tests.e2e.test_chat import open_chat, walk_to_queue
from tests.e2e.test_console import add_listeners, log_in
from tests.test_uploads import photo

pytestmark = pytest.mark.browser


async def test_a_photo_reaches_the_listener_without_its_location(
    context: BrowserContext, desk: BrowserContext, server: TestServer
) -> None:
    await add_listeners(server, "anne")
    young = await open_chat(context, server)
    await walk_to_queue(young)
    listener = await log_in(desk, server, "anne")
    await listener.locator("#waiting .card .take").click()
    await expect(listener.locator("#conv-meta")).to_contain_text("avec anne")

    with_location = photo((64, 48))
    assert Image.open(io.BytesIO(with_location)).getexif().get_ifd(0x8825)  # GPS, as a phone writes it
    await expect(young.get_by_role("button", name="Envoyer une image (capture d'écran, photo)")).to_be_visible()
    await young.locator("#image-input").set_input_files(
        files=[{"name": "IMG_2041.jpg", "mimeType": "image/jpeg", "buffer": with_location}]
    )
    await expect(young.locator('.msg[data-author="user"]').last).to_contain_text("📎 Image envoyée")

    show = listener.get_by_role("button", name="Afficher : Pièce jointe (image)")
    await show.click()
    image = listener.locator("#transcript img.attachment-image")
    await expect(image).to_have_js_property("complete", True)
    assert await image.evaluate("i => [i.naturalWidth, i.naturalHeight]") == [48, 64]  # upright, as taken

    [conversation] = await server.app[STORE].conversations_by_status(Status.WITH_LISTENER)
    transcript = await server.app[STORE].transcript(conversation.id)
    [attachment] = [a for e in transcript for a in e.attachments]
    found = await server.app[STORE].get_upload((attachment.url or "").removeprefix("upload:"))
    assert found is not None
    stored = found[1]
    assert dict(Image.open(io.BytesIO(stored)).getexif()) == {} and b"Phone 12" not in stored

    await young.locator("#image-input").set_input_files(
        files=[{"name": "photo.jpg", "mimeType": "image/jpeg", "buffer": b"\xff\xd8\xff\xe0 pas une image" * 10}]
    )
    refused = young.locator('.msg[data-author="system"]').last
    await expect(refused).to_contain_text("le fichier est abîmé ou n'est pas une image")
    await young.get_by_role("button", name="Page in English").click()
    await young.locator("#image-input").set_input_files(
        files=[{"name": "big.png", "mimeType": "image/png", "buffer": b"\x89PNG" + b"\x00" * 5_000_001}]
    )
    await expect(young.locator('.msg[data-author="system"]').last).to_contain_text("too heavy (5 MB at most)")
    assert len([e for e in await server.app[STORE].transcript(conversation.id) if e.attachments]) == 1


async def test_an_image_without_an_answer_is_said_not_sent_and_sent_again_under_the_same_id(
    context: BrowserContext, server: TestServer, tmp_path: Path
) -> None:
    """A review of chat.js (2026-12-05): on a stalled network "Envoi de l'image…" stayed for ever; and an image
    that reached the server before its answer was lost, chosen again, went under a new id and was stored twice. Now
    an image without an answer in 60 s is said not sent, and the same file chosen again goes under the same id
    (the server keeps one image and one message per id)."""
    page = await context.new_page()
    await page.clock.install()
    await page.goto(str(server.make_url("/chat")))
    await walk_to_queue(page)
    ids: list[str] = []
    stalled = asyncio.Event()

    async def first_stalls(route: Route) -> None:
        ids.append(route.request.headers["x-upload-id"])
        if len(ids) == 1:
            stalled.set()  # held: never answered (the page gives up on it)
            return
        await route.continue_()

    await page.route("**/chat/upload", first_stalls)
    picture = tmp_path / "IMG_2042.jpg"  # a file of the phone's gallery: its name, size and date stay the same
    picture.write_bytes(photo((64, 48)))
    await page.locator("#image-input").set_input_files(files=picture)
    await stalled.wait()
    await expect(page.locator(".msg.pending")).to_contain_text("Envoi de l'image")
    await page.clock.run_for(61_000)
    await expect(page.locator('.msg[data-author="system"]').last).to_contain_text("n'a pas pu être envoyée")
    await expect(page.locator(".msg.pending")).to_have_count(0)
    await page.locator("#image-input").set_input_files(files=picture)
    await expect(page.locator('.msg[data-author="user"]').last).to_contain_text("📎 Image envoyée")
    assert len(ids) == 2 and ids[0] == ids[1]
    [conversation] = await server.app[STORE].conversations_by_status(Status.QUEUED)
    assert len([e for e in await server.app[STORE].transcript(conversation.id) if e.attachments]) == 1


@pytest.mark.parametrize(
    "answer",
    [
        {"status": 503, "json": {"error": "unavailable", "message": "try again shortly"}},
        {"status": 502, "body": "<html><body>502 Bad Gateway</body></html>", "content_type": "text/html"},
        {"status": 504, "body": "<html><body>504 Gateway Time-out</body></html>", "content_type": "text/html"},
    ],
    ids=["503", "502-proxy", "504-proxy"],
)
async def test_an_image_answered_503_is_sent_again_under_the_same_id(
    context: BrowserContext, server: TestServer, tmp_path: Path, answer: dict[str, Any]
) -> None:
    """A 503 (``GATEWAY_REDIS_REPLICA_ACKS``: processed on the primary, not yet on a replica; or a store failure
    after the processing) is an answer that says nothing of whether the image was kept: the same file chosen again
    goes under the same id, so the server keeps it once. Until 2026-12-07 any answer made the page forget the id: a
    new one, the image stored twice. The same for any 5xx: a load balancer's 502 (the instance stopped or died
    after keeping the image, docs/deployment.md) or 504 (its own timeout, shorter than the page's 60 s); until
    2026-12-07 (review56) only a 503 kept the id."""
    page = await context.new_page()
    await page.goto(str(server.make_url("/chat")))
    await walk_to_queue(page)
    ids: list[str] = []

    async def first_processed_then_503(route: Route) -> None:
        ids.append(route.request.headers["x-upload-id"])
        if len(ids) == 1:
            await route.fetch()  # the gateway keeps it...
            await route.fulfill(**answer)  # ...the answer says nothing of it
            return
        await route.continue_()

    await page.route("**/chat/upload", first_processed_then_503)
    picture = tmp_path / "IMG_2043.jpg"
    picture.write_bytes(photo((64, 48)))
    await page.locator("#image-input").set_input_files(files=picture)
    await expect(page.locator('.msg[data-author="system"]').last).to_contain_text("n'a pas pu être envoyée")
    await page.locator("#image-input").set_input_files(files=picture)
    await expect(page.locator(".msg.pending")).to_have_count(0)
    assert len(ids) == 2 and ids[0] == ids[1]
    [conversation] = await server.app[STORE].conversations_by_status(Status.QUEUED)
    assert len([e for e in await server.app[STORE].transcript(conversation.id) if e.attachments]) == 1


async def test_an_image_of_a_page_whose_conversation_was_lost_is_not_told_the_conversation_ended(
    context: BrowserContext, server: TestServer, tmp_path: Path
) -> None:
    """The store lost the page's conversation without an erasure (a Redis failover with
    ``GATEWAY_REDIS_REPLICA_ACKS=0``; here its record deleted by the store's own step, no erasure's mark) while the
    page's socket stayed open, and the young person's next move is an image: the upload finds no active conversation,
    409 ``ended``. The page does not take that as the end: it says the image was not sent and connects again, its
    hello naming the conversation decides (erased: ``closed``; lost, as here: a conversation that works), and the
    same image chosen again is sent. Until 2026-12-07 (review56) the page showed "Conversation terminée" at once: a
    young person told their conversation had ended though nobody ended it, as a text was no longer told since
    fdb5c358."""
    page = await context.new_page()
    await page.goto(str(server.make_url("/chat")))
    await walk_to_queue(page)
    store = server.app[STORE]
    [lost] = await store.conversations_by_status(Status.QUEUED)
    await store.erase_conversation(lost.id)  # lost: the store's step alone, no erasure's mark
    picture = tmp_path / "IMG_2044.jpg"
    picture.write_bytes(photo((64, 48)))
    await page.locator("#image-input").set_input_files(files=picture)
    await expect(page.locator('.msg[data-author="system"]').last).to_contain_text("n'a pas pu être envoyée")
    assert await page.locator("#ended").is_hidden()  # before: "Conversation terminée", nothing more possible
    async with asyncio.timeout(30):  # the page's new hello: a new conversation, not "closed"
        while not (opened := await store.list_conversations(EPOCH, FAR)):
            await asyncio.sleep(0.1)
    await expect(page.locator("#connection")).to_be_hidden()  # its session frame came
    await page.locator("#image-input").set_input_files(files=picture)
    await expect(page.locator('.msg[data-author="user"]').last).to_contain_text("📎 Image envoyée")
    await expect(page.locator("#ended")).to_be_hidden()
    [conversation] = opened
    assert conversation.id != lost.id
    assert len([e for e in await store.transcript(conversation.id) if e.attachments]) == 1
