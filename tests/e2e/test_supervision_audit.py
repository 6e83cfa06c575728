"""The supervision page's audit log ("Journal"), in a real Chromium: every action the gateway writes there reads as
words in French and in English, never as an untranslated key ("safety.action.notice_sent"): the notices' and warm
referrals' steps (docs/console.md: "Every notice and referral action … is in the audit log of the supervision page")
and the repairs of operations cut short (a transfer completed, messages withdrawn)."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import BrowserContext, expect

from gateway.app import STORE
from gateway.events import Alert
from gateway.store import AuditEntry
from tests.conftest import Clock
from tests.e2e.test_console import add_listeners, log_in

pytestmark = pytest.mark.browser

# Every action the gateway writes to the audit log besides the ones the page always named: the notices'
# (gateway/notices/service.py: created, sent, filed, each answer, overdue, removal told, evidence deleted), the
# referrals' (gateway/notices/referrals.py, inbound.py), and the alert check's repairs (gateway/console/actions.py:
# "<kind>_withdrawn", "transfer_completed", an idle close completed).
ACTIONS = [
    "notice_created", "notice_sent", "notice_filed", "notice_acknowledged", "notice_removed", "notice_refused",
    "notice_no_answer", "notice_overdue", "notice_removal_told", "evidence_deleted",
    "referral_consent_asked", "referral_declined", "referral_sent", "referral_taken_up", "referral_closed",
    "referral_received", "referral_link_used",
    "transfer_completed", "idle_close_completed", "transfer_withdrawn", "hand_back_withdrawn", "take_withdrawn",
    "reply_withdrawn", "leaving_withdrawn", "close_withdrawn",
]  # fmt: skip


async def test_every_audited_action_reads_as_words(desk: BrowserContext, server: TestServer, clock: Clock) -> None:
    await add_listeners(server, supervisor="sam")
    for action in ACTIONS:
        await server.app[STORE].audit(AuditEntry(clock(), "gateway", action, "NS-1", ""))
    board = await log_in(desk, server, "sam")
    await board.get_by_role("link", name="Supervision").click()
    journal = board.locator("#audit li")
    await expect(journal).to_have_count(len(ACTIONS))
    for language in ("FR", "EN"):
        await board.get_by_role("button", name=language, exact=True).click()
        texts = await journal.all_inner_texts()
        untranslated = [text for text in texts if "safety.action." in text]
        assert not untranslated, f"{language}: {untranslated}"


async def test_an_alert_shows_on_the_supervision_page_as_it_comes(desk: BrowserContext, server: TestServer) -> None:
    """A login locked, a takedown notice past its platform's answer time: the gateway sends the supervisors an
    ``alert`` event (docs/security.md: "the alert every supervisor's console shows"); the open supervision page shows
    it at once, without a reload, in the page's language."""
    await add_listeners(server, "anne", supervisor="sam")
    board = await log_in(desk, server, "sam")
    await board.get_by_role("link", name="Supervision").click()
    await expect(board.locator("#connection")).to_have_text("En direct")
    await server.app[STORE].publish(Alert("login_locked", "anne", "too many wrong passwords: locked for 15 min"))
    await server.app[STORE].publish(Alert("notice_overdue", "NS-4", "tiktok: no answer in time (Renard 12)"))
    alerts = board.locator("#alerts li")
    await expect(alerts).to_have_count(2)
    await expect(alerts.nth(0)).to_contain_text("signalement : réponse en retard · NS-4")
    await expect(alerts.nth(1)).to_contain_text("connexion verrouillée · anne · too many wrong passwords")
    await board.get_by_role("button", name="EN", exact=True).click()
    await expect(alerts.nth(1)).to_contain_text("login locked · anne")
