"""Images sent from the web chat (gateway/uploads.py, gateway/images.py) through the real app: accepted ones are
re-encoded without their metadata, stored, and shown to the listener like any channel's attachment; anything
else is refused with a code the page words, and nothing is stored."""

from __future__ import annotations

import io
import os
from typing import Any

from aiohttp.test_utils import TestClient
from PIL import Image

from gateway.app import STORE
from gateway.messages import ChannelName
from gateway.settings import Settings
from gateway.store import Author
from tests.conftest import AppFactory, add_listener, login
from tests.test_webchat import hello, say

Client = TestClient  # type: ignore[type-arg]
GPS = {1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)}  # Paris, to the second


def photo(size: tuple[int, int] = (64, 48), image_format: str = "JPEG") -> bytes:
    """A phone photo: its camera, where it was taken, and an orientation tag (turn it 90°)."""
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0112] = "Phone Maker", "Phone 12", 6
    exif[0x8825] = GPS
    out = io.BytesIO()
    Image.new("RGB", size, (200, 40, 40)).save(out, image_format, exif=exif)
    return out.getvalue()


async def chat(client: Client) -> str:
    """A web chat conversation with the bot; its token."""
    async with client.ws_connect("/chat/ws") as ws:
        token = str((await hello(ws))["token"])
        await say(ws, "m1", "2")
    return token


async def upload(client: Client, token: str, body: bytes, upload_id: str = "u-1") -> tuple[int, Any]:
    """The answer's status, and its error code (or the accepted upload's id)."""
    response = await client.post("/chat/upload", data=body, headers={"X-Chat-Token": token, "X-Upload-Id": upload_id})
    body = await response.json()
    return response.status, body.get("error", body.get("id"))


async def images_of(client: Client, token: str) -> list[Any]:
    conversation = await client.app[STORE].find_active_conversation(ChannelName.WEBCHAT, token)
    assert conversation is not None
    transcript = await client.app[STORE].transcript(conversation.id)
    return [a for e in transcript if e.author == Author.USER for a in e.attachments]


async def test_a_photo_is_stored_without_its_location_and_shown_to_the_listener(client: Client) -> None:
    token = await chat(client)
    assert b"Phone 12" in photo() and Image.open(io.BytesIO(photo())).getexif().get_ifd(0x8825)
    assert await upload(client, token, photo()) == (201, "u-1")
    assert await upload(client, token, photo()) == (201, "u-1")  # sent again: one message
    [attachment] = await images_of(client, token)
    assert (attachment.kind, attachment.content_type) == ("image", "image/jpeg")
    content_type, stored = await client.app[STORE].get_upload(attachment.url.removeprefix("upload:"))  # type: ignore[misc, union-attr]
    cleaned = Image.open(io.BytesIO(stored))
    assert content_type == "image/jpeg" and cleaned.format == "JPEG"
    assert dict(cleaned.getexif()) == {} and b"Phone 12" not in stored and b"Exif" not in stored
    assert cleaned.size == (48, 64)  # turned upright as the orientation tag said, then the tag went too

    conversation = await client.app[STORE].find_active_conversation(ChannelName.WEBCHAT, token)
    assert conversation is not None
    await add_listener(client, "anne", supervisor=True)  # the conversation is still in the bot: a supervisor's
    await login(client, "anne")
    detail = await (await client.get(f"/api/conversations/{conversation.id}")).json()
    [shown] = [a for e in detail["transcript"] for a in e["attachments"]]
    assert shown == {"kind": "image", "content_type": "image/jpeg", "name": None, "number": 0, "fetchable": True}
    response = await client.get(f"/api/conversations/{conversation.id}/attachments/0")
    assert response.status == 200 and response.content_type == "image/jpeg"
    assert await response.read() == stored
    assert "upload:" not in str(detail)  # the store's key never reaches the console


def heic() -> bytes:
    return b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 200


def bomb() -> bytes:
    """48 KB of PNG that would be 400 million pixels once decoded."""
    out = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(out, "PNG")
    return out.getvalue()


async def test_anything_but_a_reasonable_jpeg_png_or_webp_is_refused_and_nothing_is_kept(client: Client) -> None:
    token = await chat(client)
    gif = io.BytesIO()
    Image.new("RGB", (4, 4)).save(gif, "GIF")
    refused = {
        "a text named .jpg": (b"\xff\xd8\xff\xe0 not really a jpeg " * 20, (422, "corrupt")),
        "a truncated photo": (photo()[:300], (422, "corrupt")),
        "a GIF": (gif.getvalue(), (415, "type")),
        "an SVG": (b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>", (415, "type")),
        "an iPhone photo": (heic(), (415, "heic")),
        "a decompression bomb": (bomb(), (413, "too_large")),
        "nothing": (b"", (415, "type")),
    }
    for number, (what, (body, expected)) in enumerate(refused.items()):
        assert await upload(client, token, body, f"bad-{number}") == expected, what
    assert await images_of(client, token) == []


def odd_exif_photo(image_format: str) -> bytes:
    """A photo whose EXIF has a tag of an unexpected type (``BitsPerSample`` as text, as a careless camera app or a
    hostile page writes it) beside an orientation tag (turn it 90°)."""
    exif = Image.Exif()
    exif[0x010F], exif[0x0112] = "cam", 6
    raw = exif.tobytes()
    assert raw.count(b"\x01\x0f\x00\x02") == 1  # the Make tag, ASCII: made BitsPerSample, still ASCII
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 40, 40)).save(out, image_format, exif=raw.replace(b"\x01\x0f", b"\x01\x02"))
    return out.getvalue()


async def test_a_photo_whose_exif_is_odd_is_kept_upright_without_it_never_a_5xx(client: Client) -> None:
    """Until 2026-12-07 ``ImageOps.exif_transpose`` rewrote the EXIF and raised ``struct.error``: 503, an ERROR
    line, and the same at every try of that photo."""
    token = await chat(client)
    for number, image_format in enumerate(("JPEG", "PNG", "WEBP")):
        assert await upload(client, token, odd_exif_photo(image_format), f"odd-{number}") == (201, f"odd-{number}")
    kept = await images_of(client, token)
    assert len(kept) == 3
    for attachment in kept:
        _, stored = await client.app[STORE].get_upload(attachment.url.removeprefix("upload:"))  # type: ignore[misc, union-attr]
        cleaned = Image.open(io.BytesIO(stored))
        assert cleaned.size == (48, 64) and dict(cleaned.getexif()) == {} and b"cam" not in stored


def multi_picture_photo() -> bytes:
    """A phone's JPEG carrying a second picture in its Multi-Picture Format segment (an HDR gain map, a depth map),
    with its camera, location and orientation tag: Pillow opens it as "MPO"."""
    exif = Image.Exif()
    exif[0x010F], exif[0x0112], exif[0x8825] = "Phone Maker", 6, GPS
    gain_map = Image.new("L", (32, 24), 128)
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 40, 40)).save(out, "MPO", save_all=True, append_images=[gain_map], exif=exif)
    assert Image.open(io.BytesIO(out.getvalue())).format == "MPO"
    return out.getvalue()


async def test_a_photo_carrying_a_second_picture_is_kept_as_its_first_one(client: Client) -> None:
    """Until 2026-12-07 ``images.FORMATS["MPO"]`` raised KeyError: 503 at every try of such a photo."""
    token = await chat(client)
    assert await upload(client, token, multi_picture_photo()) == (201, "u-1")
    [attachment] = await images_of(client, token)
    content_type, stored = await client.app[STORE].get_upload(attachment.url.removeprefix("upload:"))  # type: ignore[misc, union-attr]
    cleaned = Image.open(io.BytesIO(stored))
    assert (content_type, cleaned.format, cleaned.size) == ("image/jpeg", "JPEG", (48, 64))
    assert getattr(cleaned, "n_frames", 1) == 1 and dict(cleaned.getexif()) == {} and b"Phone Maker" not in stored
    assert b"MPF" not in stored  # the second picture gone with the rest


async def test_refused_before_reading_an_image_too_big_no_session_or_an_ended_chat(
    make_client: AppFactory, settings: Settings
) -> None:
    client = await make_client(settings.replace(webchat_upload_max_bytes=10_000))
    token = await chat(client)
    assert await upload(client, token, photo((2000, 2000)) + b"\x00" * 10_000) == (413, "too_big")
    response = await client.post("/chat/upload", data=photo(), headers={"X-Upload-Id": "u-2"})
    assert (response.status, (await response.json())["error"]) == (400, "bad_request")
    assert await upload(client, "x" * 32, photo()) == (409, "ended")  # an upload never starts a chat
    async with client.ws_connect("/chat/ws") as ws:
        await hello(ws, token)
        await ws.send_json({"type": "end"})
        await ws.receive_json(timeout=5)
    assert await upload(client, token, photo()) == (409, "ended")
    larger = b"x" * (settings.max_body_bytes + 1)  # every other route keeps GATEWAY_MAX_BODY_BYTES
    assert (await client.post("/api/session", data=larger)).status == 413


async def test_the_chat_page_knows_the_limit(client: Client) -> None:
    page = await (await client.get("/chat")).text()
    assert 'data-upload-max="5000000"' in page


def noise(size: tuple[int, int], image_format: str, grain: int = 1, **options: Any) -> bytes:
    """Random pixels (blocks of ``grain``): what compresses worst once re-encoded."""
    width, height = size[0] // grain, size[1] // grain
    pixels = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3)).resize(
        size, Image.Resampling.NEAREST
    )
    out = io.BytesIO()
    pixels.save(out, image_format, **options)
    return out.getvalue()


async def test_what_an_image_keeps_in_the_store_is_bounded_whatever_was_sent(client: Client) -> None:
    """Until 2026-12-07 a picture was kept at its full size at JPEG quality 88: 40 megapixels of noise sent as a
    3.7 MB JPEG were kept as 10.6 MB (a troll's network, 200 images a minute, filled Redis in minutes)."""
    token = await chat(client)
    sent = {
        "40 MP of noise, JPEG quality 10": noise((7300, 5470), "JPEG", grain=8, quality=10),
        "5 MB of noise, PNG": noise((1280, 1280), "PNG"),
        "a phone's screenshot, PNG": photo((1170, 2532), "PNG"),
    }
    for number, (what, body) in enumerate(sent.items()):
        assert len(body) <= 5_000_000, what
        assert await upload(client, token, body, f"big-{number}") == (201, f"big-{number}"), what
    kept = []
    for attachment in await images_of(client, token):
        content_type, data = await client.app[STORE].get_upload(attachment.url.removeprefix("upload:"))  # type: ignore[misc, union-attr]
        kept.append((content_type, len(data), Image.open(io.BytesIO(data)).size))
    [jpeg, png, screenshot] = kept
    assert jpeg[0] == "image/jpeg" and jpeg[1] <= 2_000_000 and jpeg[2] == (2048, 1535), jpeg
    assert png[0] == "image/jpeg" and png[1] <= 2_000_000 and png[2] == (1280, 1280), png  # too heavy as a PNG
    assert screenshot == ("image/png", screenshot[1], (2048, 946)), screenshot  # turned upright, still a PNG
