"""What a screen reader is given, recorded in the page: each node added to a live region (``aria-live`` other than
off, or the roles that imply it: log, status, alert) while it is in the accessibility tree (rendered, not under
``aria-hidden``), kept as the region's id and the added text, as ARIA defines the region's ``aria-relevant``
(``additions text`` by default: an element added is an addition, a text node added is a text change). Recorded
from the page's start (an init script); :func:`announced` takes what was recorded since it was last called."""

from __future__ import annotations

from playwright.async_api import BrowserContext, Page

RECORDER = """
(() => {
  const LIVE = '[aria-live], [role="log"], [role="status"], [role="alert"]';
  window.__announced = [];
  const liveOf = (el) => {
    const region = el && el.closest(LIVE);
    return region && region.getAttribute("aria-live") !== "off" ? region : null;
  };
  const relevant = (region) => (region.getAttribute("aria-relevant") || "additions text").split(/\\s+/);
  const given = (el) => el.isConnected && !el.closest('[aria-hidden="true"]') && el.checkVisibility();
  new MutationObserver((records) => {
    for (const record of records) {
      for (const node of record.addedNodes) {
        const region = liveOf(record.target);
        const element = node.nodeType === Node.ELEMENT_NODE ? node : node.parentElement;
        if (!region || !element || !given(element)) { continue; }
        const kind = node.nodeType === Node.ELEMENT_NODE ? "additions" : "text";
        const wanted = relevant(region);
        if (!wanted.includes(kind) && !wanted.includes("all")) { continue; }
        const text = node.textContent.trim();
        if (text) { window.__announced.push({ region: region.id, text: text }); }
      }
    }
  }).observe(document, { childList: true, subtree: true });
})();
"""


async def record(context: BrowserContext) -> None:
    """Every page the context opens from now on records what its live regions are given."""
    await context.add_init_script(RECORDER)


async def announced(page: Page, region: str | None = None) -> list[str]:
    """The texts given since the last call (of that region's id, or of every region), then forgotten."""
    given: list[dict[str, str]] = await page.evaluate("() => window.__announced.splice(0)")
    return [g["text"] for g in given if region is None or g["region"] == region]
