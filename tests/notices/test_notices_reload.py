"""Notices whose platform or category a flows.yaml reload removed: before, listing a conversation's notices and
sending one raised a KeyError in ``compose`` (a 503 for the listener). Now they are listed with their recorded
platform and category, marked as no longer in flows.yaml, and sending or filing one is refused with a 409 that says
why. The real app on SQLite, a real SMTP server, its flows.yaml a copy the test edits and reloads as the file watcher
does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.app import FLOWS
from gateway.settings import Settings
from tests.conftest import AppFactory, add_listener, login
from tests.notices.smtp_server import SmtpServer
from tests.notices.test_notices import create, messenger_says
from tests.test_app import flow_copy, with_flow

Client = TestClient  # type: ignore[type-arg]

IMPERSONATION = "  impersonation:\n"
X = '  x: {name: X, language: en, form: "https://help.x.com/forms", response_hours: 48}\n'
TIKTOK = "  tiktok: {name: TikTok, language: en, email: trusted-flagger@tiktok.example, response_hours: 24}\n"


@pytest.fixture
async def reloading(make_client: AppFactory, mail_settings: Settings, tmp_path: Path) -> tuple[Client, Path]:
    flows = flow_copy(tmp_path)
    client = await make_client(with_flow(mail_settings, flows))
    await add_listener(client, "anne", supervisor=True)
    await login(client, "anne")
    return client, flows


def without(path: Path, *, category: str | None = None, platforms: tuple[str, ...] = ()) -> None:
    """What ops remove: a notice category (its whole block) and platforms (one line each)."""
    lines, out, skipping = path.read_text(encoding="utf-8").splitlines(keepends=True), [], False
    for line in lines:
        if category is not None and line == f"  {category}:\n" and "notice_categories:\n" in "".join(out[-200:]):
            skipping = True
            continue
        if skipping and (line.startswith("    ") or not line.strip()):
            continue
        skipping = False
        if line in platforms:
            continue
        out.append(line)
    path.write_text("".join(out), encoding="utf-8")


async def test_notices_whose_category_or_platform_a_reload_removed_are_listed_and_refused_cleanly(
    reloading: tuple[Client, Path], smtp: SmtpServer
) -> None:
    app, flows = reloading
    conversation = await messenger_says(app, "bonjour")
    made: dict[str, Any] = {}
    for key, platform, category in (("category_gone", "instagram", "impersonation"),
                                    ("form_category_gone", "snapchat", "impersonation"),
                                    ("email_gone", "tiktok", "harassment"),
                                    ("form_gone", "x", "harassment")):  # fmt: skip
        created = await create(app, conversation, platform=platform, category=category,
                               locations=["https://example.com/p/1"])  # fmt: skip
        assert created.status == 201, await created.text()
        made[key] = (await created.json())["notices"][0]
    text = flows.read_text(encoding="utf-8")
    assert IMPERSONATION in text and X in text and TIKTOK in text
    without(flows, category="impersonation", platforms=(X, TIKTOK))
    reloaded = app.app[FLOWS].reload_if_changed()
    assert reloaded is not None and reloaded.ok, reloaded
    assert "impersonation" not in app.app[FLOWS].engine().flow.notice_categories

    for path in (f"/api/conversations/{conversation}/notices", "/api/notices"):
        listed = await app.get(path)
        assert listed.status == 200, (path, await listed.text())
        shown = {n["id"]: n for n in (await listed.json())["notices"]}
        gone = {key: shown[made[key]["id"]]["not_in_flow"] for key in made}
        assert gone == {"category_gone": ["category"], "form_category_gone": ["category"],
                        "email_gone": ["platform"], "form_gone": ["platform"]}, path  # fmt: skip
        assert shown[made["category_gone"]["id"]]["category"] == "impersonation"  # as recorded
        assert shown[made["email_gone"]["id"]]["platform"] == "tiktok"

    for key, action in (("category_gone", "send"), ("form_category_gone", "filed"), ("email_gone", "send"),
                        ("form_gone", "filed"), ("form_gone", "send"), ("email_gone", "filed")):  # fmt: skip
        answer = await app.post(f"/api/notices/{made[key]['id']}/{action}", json={})
        body = await answer.json()
        assert answer.status == 409, (key, action, body)
        assert body["error"] == "not_in_flow" and "no longer in flows.yaml" in body["message"], (key, action, body)
    assert smtp.inbox.received == []
