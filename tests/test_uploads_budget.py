"""What one client network's images may keep in the store (gateway/uploads.py, the byte budgets of
gateway/ratelimit.py): past its budget an image is refused with ``too_many_images`` (the page's text says the young
person can still write, and where to turn), before it is cleaned; text goes on for the same conversation; an upload
sent again under the same id is not charged twice. On SQLite (memory counters) and Redis (the counters there)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import pytest
import redis
from aiohttp.test_utils import TestClient

import gateway
from gateway import images
from gateway.metrics import Metrics
from gateway.ratelimit import Charge, Limit, RateLimits, open_limit_storage
from gateway.settings import Settings
from gateway.uploads import MAX_PIXELS, Uploads
from tests.conftest import AppFactory
from tests.store.conftest import STORES, on_store, redis_url  # noqa: F401  (redis_url: the session's server)
from tests.test_uploads import chat, images_of, photo, upload
from tests.test_webchat import hello, receive_until, say

Client = TestClient  # type: ignore[type-arg]
CLEANING = images.Cleaning(workers=1)  # never used: the tests of ``Uploads._charge`` alone


@pytest.fixture(params=STORES)
def store_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    return on_store(request, settings)


def kept(body: bytes) -> int:
    """The bytes the gateway keeps of ``body`` (its cleaning, as the route makes it)."""
    return len(images.clean(body, MAX_PIXELS).data)


async def text_goes_on(client: Client, token: str, message_id: str) -> None:
    """A text of the same conversation is taken (acknowledged) all the same."""
    async with client.ws_connect("/chat/ws") as ws:
        await hello(ws, token)
        await say(ws, message_id, "on me harcèle")


async def test_images_past_the_networks_budget_are_refused_and_text_goes_on(
    make_client: AppFactory, store_settings: Settings
) -> None:
    client = await make_client(store_settings.replace(webchat_image_bytes_per_network_hour=kept(photo()) + 1))
    first, second = await chat(client), await chat(client)  # two conversations of one network (127.0.0.1)
    assert await upload(client, first, photo(), "u-1") == (201, "u-1")
    assert await upload(client, second, photo(), "u-2") == (201, "u-2")  # 1 byte of budget left: taken
    assert await upload(client, second, photo(), "u-3") == (429, "too_many_images")
    assert await upload(client, first, photo((80, 60)), "u-4") == (429, "too_many_images")
    assert len(await images_of(client, first)) == 1 and len(await images_of(client, second)) == 1
    await text_goes_on(client, second, "t-1")


async def test_a_conversations_budget_refuses_its_images_not_the_networks_others(
    make_client: AppFactory, store_settings: Settings
) -> None:
    client = await make_client(store_settings.replace(webchat_image_bytes_per_conversation=1))
    first, second = await chat(client), await chat(client)
    assert await upload(client, first, photo(), "u-1") == (201, "u-1")
    assert await upload(client, first, photo(), "u-2") == (429, "too_many_images")
    assert await upload(client, second, photo(), "u-3") == (201, "u-3")
    await text_goes_on(client, first, "t-1")


async def test_an_upload_sent_again_under_its_id_is_not_charged_twice(
    make_client: AppFactory, store_settings: Settings
) -> None:
    """The page sends an image again under the same id after a 5xx or no answer (maybe kept the first time): that
    try is neither refused for its own first charge nor charged again."""
    client = await make_client(store_settings.replace(webchat_image_bytes_per_network_hour=kept(photo()) + 1))
    token = await chat(client)
    assert await upload(client, token, photo(), "u-1") == (201, "u-1")
    assert await upload(client, token, photo(), "u-1") == (201, "u-1")  # charged once: 1 byte left
    assert await upload(client, token, photo(), "u-2") == (201, "u-2")
    assert await upload(client, token, photo(), "u-3") == (429, "too_many_images")
    assert len(await images_of(client, token)) == 2


@pytest.mark.parametrize("store_settings", ["sqlite"], indirect=True)
async def test_refused_by_its_budget_before_any_cleaning_or_message_hit(
    make_client: AppFactory, store_settings: Settings
) -> None:
    """Refused by its budget before the cleaning (a file that is no image is refused ``too_many_images``, not
    ``type``) and before the message limit's hit: 25 refused tries leave the text's flood limit (20/minute) whole."""
    client = await make_client(store_settings.replace(webchat_image_bytes_per_conversation=1))
    token = await chat(client)
    assert await upload(client, token, photo(), "u-0") == (201, "u-0")
    for number in range(25):  # not an image at all: refused for the budget, never opened
        assert await upload(client, token, b"not an image", f"x-{number}") == (429, "too_many_images")
    await text_goes_on(client, token, "t-1")


def test_the_page_says_so_french_first_that_they_can_still_write_and_where_to_turn() -> None:
    script = (Path(gateway.__file__).parent / "webchat_static" / "chat.js").read_text()
    texts = [line for line in script.splitlines() if line.strip().startswith("too_many_images:")]
    assert len(texts) == 2, texts
    french, english = texts
    assert "écrire" in french and "write" in english
    assert all("119" in text and "3114" in text and "112" in text for text in texts)


async def test_a_burst_of_screenshots_never_spends_the_texts_flood_limit(client: Client) -> None:
    """Images are evidence (screenshots of the harasser's messages, often dozens at once): counted under their own
    bound (``forwarded_per_conversation``, 100 in 10 minutes), never the typed messages' (20 a minute): the young
    person's words after 25 screenshots are taken. Until 2026-12-07 an upload hit the text's flood limit: the 20th
    screenshot was refused ``rate_limited``, and the words after them too."""
    token = await chat(client)  # its first message counted already
    for number in range(25):
        assert await upload(client, token, photo(), f"u-{number}") == (201, f"u-{number}")
    async with client.ws_connect("/chat/ws") as ws:
        await hello(ws, token)
        await ws.send_json({"type": "message", "id": "t-1", "text": "il me menace"})
        frames = await receive_until(ws, lambda f: f.get("id") == "t-1" and f["type"] in ("ack", "refused"))
    assert frames[-1] == {"type": "ack", "id": "t-1"}


async def test_two_images_at_once_do_not_both_pass_the_budget(
    make_client: AppFactory, store_settings: Settings
) -> None:
    """Both checked before either is cleaned (``within``), then charged: until 2026-12-07 the charge decided nothing,
    so two images at once were both kept past a budget one of them spent (``[201, 201]``). Now the charge refuses
    the one that finds none left (its bytes taken back from a budget charged before it)."""
    budgets = {"webchat_image_bytes_per_conversation": 1, "webchat_image_bytes_per_network_hour": kept(photo()) + 1}
    client = await make_client(store_settings.replace(**budgets))
    token = await chat(client)
    answers = await asyncio.gather(*(upload(client, token, photo(), f"u-{n}") for n in (1, 2)))
    assert sorted(status for status, _ in answers) == [201, 429]
    assert len(await images_of(client, token)) == 1
    other = await chat(client)  # the network's budget: the refused one's bytes given back
    assert await upload(client, other, photo(), "u-3") == (201, "u-3")


class Crash(Exception):
    """The instance dies here (between two budgets' charges): nothing after it runs."""


class CrashingLimits:
    """The real rate limits, the instance dying right before ``crash_at``'s charge, once (the budgets before it
    charged, none given back)."""

    def __init__(self, limits: RateLimits, crash_at: Limit) -> None:
        self.limits, self.crash_at, self.crashed = limits, crash_at, False

    async def charge(self, limit: Limit, subject: str, amount: int, once: str) -> Charge:
        if limit is self.crash_at and not self.crashed:
            self.crashed = True
            raise Crash
        return await self.limits.charge(limit, subject, amount, once)

    async def refund(self, limit: Limit, subject: str, amount: int, once: str) -> None:
        await self.limits.refund(limit, subject, amount, once)


@pytest.mark.parametrize("where", ["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def test_an_image_whose_instance_died_between_two_budgets_gives_the_first_back_when_refused(
    where: str, request: pytest.FixtureRequest
) -> None:
    """An image charged under its network's budget, its instance dying before the conversation's; meanwhile another
    image spends the conversation's budget; the page sends it again under the same id: refused (429), and the
    network's budget gets back what the dead try took. Until 2026-12-07 (late) the retry found the network's charge
    ``NOT_CHARGED`` (its mark), the conversation's ``REFUSED``, and gave nothing back: the network's budget spent by
    an image never kept (``within`` False for the network's next image, for the rest of the hour)."""
    url = request.getfixturevalue("redis_url") if where == "redis" else "sqlite:///x.sqlite3"
    opened = open_limit_storage(url)
    if where == "redis":
        with redis.Redis.from_url(url) as client:
            client.flushdb()
    settings = Settings(secret_key="k" * 32, webchat_image_bytes_per_network_hour=600,
                        webchat_image_bytes_per_conversation=1000)  # fmt: skip
    limits = RateLimits.from_settings(settings, opened.storage, Metrics())
    budgets = ((Limit.IMAGE_BYTES_PER_NETWORK, "net"), (Limit.IMAGE_BYTES_PER_CONVERSATION, "c"))
    dying = Uploads(None, None, SimpleNamespace(limits=CrashingLimits(limits, budgets[1][0])), 1, cleaning=CLEANING)  # type: ignore[arg-type]
    with pytest.raises(Crash):
        await dying._charge(budgets, 600, "c/u1")
    assert await limits.charge(Limit.IMAGE_BYTES_PER_CONVERSATION, "c", 1000, "c/u2") is Charge.CHARGED
    again = Uploads(None, None, SimpleNamespace(limits=limits), 1, cleaning=CLEANING)  # type: ignore[arg-type]
    assert not await again._charge(budgets, 600, "c/u1")  # refused: the conversation's budget spent meanwhile
    # before: False (600 of the network's 600 still taken by the image never kept)
    assert await limits.within(Limit.IMAGE_BYTES_PER_NETWORK, "net", "d/u3")
    assert await again._charge(((Limit.IMAGE_BYTES_PER_NETWORK, "net"),), 600, "d/u3")
    await opened.close()
