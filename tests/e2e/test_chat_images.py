"""An image sent from the web chat, in a real Chromium: a phone photo with its location goes through the page's
"Image" button, the listener sees it in the console like any channel's attachment, and what the gateway kept
has no EXIF; a file that is no image is refused with a plain message in the page's language."""

from __future__ import annotations

import io

import pytest
from aiohttp.test_utils import TestServer
from PIL import Image
from playwright.async_api import BrowserContext, expect

from gateway.app import STORE
from gateway.conversation import Status
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
