"""On a 320 px wide phone (an iPhone SE of the first generation, many small Android phones) the message box's
placeholder fits on its one line, in French and in English, beside the Send and Image buttons (both still at least
44 px tall and wide, the touch target's minimum).

Found by an explorer (2026-12): "Écris ton message…" was cut at "Écris ton" in a box about 90 px wide."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Page, expect

from tests.e2e.conftest import french_window
from tests.e2e.test_chat import open_chat

pytestmark = pytest.mark.browser

MEASURE = """() => {
  const box = document.getElementById("message-input");
  const style = getComputedStyle(box);
  const pen = document.createElement("canvas").getContext("2d");
  pen.font = style.font;
  const room = box.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
  const buttons = ["send-button", "image-button"].map((id) => document.getElementById(id).getBoundingClientRect());
  const composer = document.getElementById("composer").getBoundingClientRect();
  return {placeholder: box.placeholder, text: pen.measureText(box.placeholder).width, room: room,
          buttons: buttons.map((b) => [b.width, b.height, b.right]), composer: composer.right,
          page: document.documentElement.scrollWidth};
}"""


async def measure(page: Page) -> dict[str, Any]:
    measured: dict[str, Any] = await page.evaluate(MEASURE)
    return measured


@pytest.mark.parametrize("width", [320, 360])
async def test_the_placeholder_fits_on_a_narrow_phone_in_both_languages(
    browser: Browser, server: TestServer, width: int
) -> None:
    async with french_window(browser, width, 640) as phone:
        page = await open_chat(phone, server)
        for placeholder in ("Écris ici…", "Write here…"):
            if placeholder.startswith("Write"):
                await page.locator("#lang-toggle").click()
            await expect(page.locator("#message-input")).to_have_attribute("placeholder", placeholder)
            seen = await measure(page)
            assert seen["text"] <= seen["room"], seen  # the whole placeholder on its line
            for button_width, button_height, right in seen["buttons"]:
                assert button_width >= 44 and button_height >= 44, seen
                assert right <= seen["composer"], seen  # nothing pushed out of the screen
            assert seen["page"] <= width, seen  # no sideways scrolling
