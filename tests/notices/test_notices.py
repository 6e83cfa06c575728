"""Takedown notices end to end: the real app, a real SMTP server on 127.0.0.1 (STARTTLS, AUTH), Messenger on a
fake Graph API and the web chat on its real websocket."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from gateway.app import STORE
from gateway.testing import FakeGraphAPI, messenger_body, messenger_message, signed_messenger
from tests.conftest import PASSWORD, Clock, add_listener
from tests.notices.conftest import MESSENGER_SECRET
from tests.notices.smtp_server import SmtpServer
from tests.test_webchat import WALK_TO_QUEUE, hello, receive_until, say

PSID = "2400000000000077"
SCREENSHOT = b"\x89PNG\r\n\x1a\nscreenshot-of-the-post"
REMOVED = "le contenu que nous avons signalé pour toi a été retiré"

Client = TestClient  # type: ignore[type-arg]


async def messenger_says(app: Client, text: str = "", attachments: list[tuple[str, str]] | None = None) -> str:
    body = messenger_body([messenger_message(PSID, text, attachments=attachments or [])])
    raw, headers = signed_messenger(MESSENGER_SECRET, body)
    assert (await app.post("/webhooks/messenger", data=raw, headers=headers)).status == 200
    conversation = await app.app[STORE].find_active_conversation(*_messenger())
    assert conversation is not None
    return conversation.id


def _messenger() -> tuple[Any, str]:
    from gateway.messages import ChannelName

    return ChannelName.MESSENGER, PSID


async def create(app: Client, conversation: str, **fields: Any) -> Any:
    body = {"platform": "instagram", "category": "intimate_images", "description": "", "evidence": [], **fields}
    return await app.post(f"/api/conversations/{conversation}/notices", json=body)


async def test_a_notice_with_two_urls_and_a_screenshot_reaches_the_smtp_server(
    app: Client, graph: FakeGraphAPI, smtp: SmtpServer
) -> None:
    url = graph.serve_media("cdn/shot.png", SCREENSHOT, "image/png")
    conversation = await messenger_says(app, "regarde", [("image", url)])
    created = await create(
        app, conversation, evidence=[0], description="Photo publiée par un ancien ami, elle a 15 ans.",
        locations=["HTTPS://www.Instagram.com/p/Cx1/?igshid=abc#top", "https://www.instagram.com/fake.account_1/"],
    )  # fmt: skip
    assert created.status == 201, await created.text()
    (notice,) = (await created.json())["notices"]
    assert notice["status"] == "draft" and notice["locations"] == [
        "https://www.instagram.com/p/Cx1/", "https://www.instagram.com/fake.account_1/",
    ]  # fmt: skip
    assert smtp.inbox.received == []  # a draft sends nothing

    sent = await app.post(f"/api/notices/{notice['id']}/send", json={})
    assert sent.status == 200, await sent.text()
    assert (await sent.json())["status"] == "sent"
    (message,) = await smtp.inbox.wait(1)
    mail_from, rcpt, raw = smtp.inbox.received[0]
    assert rcpt == ["trusted-flagger@instagram.example"] and mail_from == "signalements@3018.example"
    subject = str(message["Subject"]).strip()
    assert subject.startswith("[Trusted flagger notice] Non-consensual intimate images - ref. N-")
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    for part in ("https://www.instagram.com/p/Cx1/", "https://www.instagram.com/fake.account_1/",
                 "Article 16 of Regulation (EU) 2022/2065", "trusted flagger", "Trusted flagger designated by Arcom",
                 "article 226-2-1", "states in good faith", "Association e-Enfance / 3018 - signalements@3018.example",
                 "1 file(s) attached: evidence-1.png", "elle a 15 ans"):  # fmt: skip
        assert part in text, part
    files = {a.get_filename(): a.get_content() for a in message.iter_attachments()}
    assert files["evidence-1.png"] == SCREENSHOT
    record = json.loads(next(v for k, v in files.items() if k.endswith(".json")))
    assert record["notifier"]["trusted_flagger"] is True and record["category"]["id"] == "intimate_images"
    assert record["locations"] == notice["locations"] and record["csam"] is False
    assert record["evidence"][0]["name"] == "evidence-1.png" and record["good_faith_statement"]
    assert PSID.encode() not in raw and conversation.encode() not in raw  # never the young person's identity

    actions = [e["action"] for e in (await (await app.get("/api/audit")).json())["entries"]]
    assert actions[:2] == ["notice_sent", "notice_created"]


async def test_csam_is_never_attached_and_always_goes_to_pharos_too(
    app: Client, graph: FakeGraphAPI, smtp: SmtpServer
) -> None:
    url = graph.serve_media("cdn/x.jpg", b"\xff\xd8never-attached", "image/jpeg")
    conversation = await messenger_says(app, "", [("image", url)])
    base = {"category": "child_abuse_material", "locations": ["https://www.instagram.com/p/Zz9/"]}
    refused = await create(app, conversation, evidence=[0], **base)
    assert refused.status == 400 and "never attached" in (await refused.json())["message"]

    created = await create(app, conversation, **base)
    assert created.status == 201
    main, pharos = (await created.json())["notices"]
    assert (main["platform"], pharos["platform"]) == ("instagram", "pharos")
    assert main["linked"] == pharos["id"] and pharos["linked"] == main["id"] and main["evidence"] == []
    assert await app.app[STORE].get_evidence(main["id"]) == []

    assert (await app.post(f"/api/notices/{main['id']}/send", json={})).status == 200
    (message,) = await smtp.inbox.wait(1)
    assert [a.get_content_type() for a in message.iter_attachments()] == ["application/json"]
    assert b"never-attached" not in smtp.inbox.received[0][2]
    assert "only located, never copied" in message.get_body(("plain",)).get_content()  # type: ignore[union-attr]

    # Pharos has a web form only: the console gets the ready text (in French) and marks it filed.
    assert (await app.post(f"/api/notices/{pharos['id']}/send", json={})).status == 409
    listed = await (await app.get(f"/api/conversations/{conversation}/notices")).json()
    form = next(n for n in listed["notices"] if n["id"] == pharos["id"])
    assert "https://www.instagram.com/p/Zz9/" in form["text"] and "bonne foi" in form["text"]
    assert form["form"] == "https://www.internet-signalement.gouv.fr"
    filed = await app.post(f"/api/notices/{pharos['id']}/filed", json={})
    assert filed.status == 200 and (await filed.json())["status"] == "sent"
    assert len(smtp.inbox.received) == 1


async def test_bad_notices_are_refused_with_400_naming_the_field(app: Client, graph: FakeGraphAPI) -> None:
    """Each refusal names the part of the form refused (``field``, with ``position``: which line, 1 first, and the
    limits), for the console to say it in the listener's language (casework.js); the English ``message`` stays."""
    conversation = await messenger_says(app, "bonjour")
    url = ["https://x.com/a"]
    for fields, said in [
        ({"locations": ["https://x.com/a", "not a url"]}, {"field": "location", "position": 2, "length": 2000}),
        ({"locations": []}, {"field": "locations", "max": 20}),
        ({"locations": url, "evidence": [3]}, {"field": "attachment", "position": 4}),
        ({"locations": url, "platform": "myspace"}, {"field": "platform"}),
        ({"locations": url, "category": "gossip"}, {"field": "category"}),
        ({"locations": url, "description": "x" * 2001}, {"field": "description", "max": 2000}),
        ({"locations": url, "description": f"son id {PSID}"}, {"error": "identity"}),
        ({"locations": ["https://user:pw@x.com/a"]}, {"field": "location", "position": 1}),
        ({"locations": "https://x.com/a"}, {"error": "bad_request"}),
    ]:  # fmt: skip
        response = await create(app, conversation, **fields)
        answer = await response.json()
        assert response.status == 400 and said.items() <= answer.items() and answer["message"], (fields, answer)
    assert await app.app[STORE].list_notices(conversation) == []


async def _sent_notice(app: Client, conversation: str) -> str:
    created = await create(app, conversation, locations=["https://www.instagram.com/p/A1/"])
    notice = (await created.json())["notices"][0]["id"]
    assert (await app.post(f"/api/notices/{notice}/send", json={})).status == 200
    return str(notice)


async def test_a_removal_reaches_the_young_person_on_messenger_and_is_followed(
    app: Client, graph: FakeGraphAPI, smtp: SmtpServer, clock: Clock
) -> None:
    conversation = await messenger_says(app, "bonjour")
    notice = await _sent_notice(app, conversation)
    refused = await app.post(f"/api/notices/{notice}/status", json={"status": "draft"})
    assert refused.status == 409
    ack = await app.post(f"/api/notices/{notice}/status", json={"status": "acknowledged", "answer": "Ticket 42"})
    assert (await ack.json())["status"] == "acknowledged"
    removed = await app.post(f"/api/notices/{notice}/status", json={"status": "removed", "answer": "Removed."})
    shown = await removed.json()
    assert shown["status"] == "removed" and shown["told_at"] and shown["answer"] == "Removed."
    # the bot's own welcome replies may still be on their way: wait for the notice's words, not for a count
    told = await _told(graph)
    assert len(told) == 1 and told[0].body["recipient"]["id"] == PSID


async def _told(graph: FakeGraphAPI) -> list[Any]:
    def removals() -> list[Any]:
        return [r for r in graph.accepted() if REMOVED in r.body.get("message", {}).get("text", "")]

    async with asyncio.timeout(10):
        while not removals():
            await asyncio.sleep(0.05)
    return removals()


async def test_a_removal_after_the_window_waits_until_the_young_person_writes_again(
    app: Client, graph: FakeGraphAPI, smtp: SmtpServer, clock: Clock
) -> None:
    conversation = await messenger_says(app, "bonjour")
    notice = await _sent_notice(app, conversation)
    clock.advance(hours=30)  # past Messenger's 24 h window for the bot
    removed = await (await app.post(f"/api/notices/{notice}/status", json={"status": "removed"})).json()
    assert removed["told_at"] is None
    assert not any(REMOVED in r.body.get("message", {}).get("text", "") for r in graph.accepted())

    await messenger_says(app, "re bonjour")  # the window opens again: the background round tells them
    await _told(graph)
    stored = await app.app[STORE].get_notice(notice)
    assert stored is not None and stored.told_at is not None


async def test_a_removal_reaches_the_young_person_on_the_web_chat(app: Client, smtp: SmtpServer) -> None:
    async with app.ws_connect("/chat/ws") as ws:
        session = await hello(ws)
        for number, answer in enumerate(WALK_TO_QUEUE):
            await say(ws, f"m{number}", answer)
        conversation = await app.app[STORE].find_active_conversation(*_webchat(session["token"]))
        assert conversation is not None
        notice = await _sent_notice(app, conversation.id)
        await app.post(f"/api/notices/{notice}/status", json={"status": "removed"})
        frames = await receive_until(ws, lambda f: f["type"] == "entry" and REMOVED in f["entry"]["text"])
        assert frames[-1]["entry"]["author"] == "bot"


def _webchat(token: str) -> tuple[Any, str]:
    from gateway.messages import ChannelName

    return ChannelName.WEBCHAT, token


async def test_a_late_platform_shows_a_reminder_and_evidence_is_deleted_after_retention(
    app: Client, graph: FakeGraphAPI, smtp: SmtpServer, clock: Clock
) -> None:
    url = graph.serve_media("cdn/y.png", SCREENSHOT, "image/png")
    conversation = await messenger_says(app, "", [("image", url)])
    created = await create(app, conversation, evidence=[0], locations=["https://www.instagram.com/p/B2/"])
    notice = (await created.json())["notices"][0]["id"]
    assert (await app.post(f"/api/notices/{notice}/send", json={})).status == 200
    clock.advance(hours=25)  # Instagram's expected answer: 24 h
    listed = (await (await app.get("/api/notices")).json())["notices"]
    assert listed[0]["id"] == notice and listed[0]["overdue"] is True
    store = app.app[STORE]
    async with asyncio.timeout(10):
        while "notice_overdue" not in [e.action for e in await store.audit_log()]:
            await asyncio.sleep(0.05)

    await app.post(f"/api/notices/{notice}/status", json={"status": "refused", "answer": "Not violating."})
    assert len(await store.get_evidence(notice)) == 1  # kept while the retention runs
    clock.advance(days=31)
    async with asyncio.timeout(10):
        while await store.get_evidence(notice):
            await asyncio.sleep(0.05)
    stored = await store.get_notice(notice)
    assert stored is not None and stored.evidence_deleted_at is not None


async def test_a_web_form_notice_gives_the_ready_text_and_its_evidence_files(
    app: Client, graph: FakeGraphAPI, smtp: SmtpServer
) -> None:
    url = graph.serve_media("cdn/snap.png", SCREENSHOT, "image/png")
    conversation = await messenger_says(app, "", [("image", url)])
    created = await create(app, conversation, platform="snapchat", evidence=[0],
                           locations=["https://www.snapchat.com/add/faux.compte"])  # fmt: skip
    (notice,) = (await created.json())["notices"]
    assert notice["form"].startswith("https://") and notice["files"] == ["evidence-1.png"]
    assert "1 file(s) attached: evidence-1.png" in notice["text"]
    assert "https://www.snapchat.com/add/faux.compte" in notice["text"]
    evidence = await app.get(f"/api/notices/{notice['id']}/evidence/0")
    assert evidence.status == 200 and await evidence.read() == SCREENSHOT
    assert evidence.headers["Content-Disposition"] == 'attachment; filename="evidence-1.png"'
    assert (await app.get(f"/api/notices/{notice['id']}/evidence/1")).status == 404
    assert (await app.post(f"/api/notices/{notice['id']}/filed", json={})).status == 200
    assert smtp.inbox.received == []


async def test_two_listeners_sending_at_once_send_one_email(app: Client, graph: FakeGraphAPI, smtp: SmtpServer) -> None:
    conversation = await messenger_says(app, "bonjour")
    created = await create(app, conversation, locations=["https://www.instagram.com/p/Twice/"])
    notice = (await created.json())["notices"][0]["id"]
    answers = await asyncio.gather(*(app.post(f"/api/notices/{notice}/send", json={}) for _ in range(3)))
    assert sorted(a.status for a in answers) == [200, 409, 409]
    await smtp.inbox.wait(1)
    assert len(smtp.inbox.received) == 1


async def test_a_listener_sees_and_acts_on_the_notices_of_the_conversations_they_see_only(
    app: Client, graph: FakeGraphAPI, smtp: SmtpServer
) -> None:
    conversation = await messenger_says(app, "bonjour")  # still in the bot: anne, a supervisor, files a notice
    created = await create(app, conversation, locations=["https://www.instagram.com/p/Walled/"])
    notice = (await created.json())["notices"][0]["id"]
    await add_listener(app, "bob")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as bob:
        login = await bob.post(app.make_url("/api/session"), json={"name": "bob", "password": PASSWORD})
        assert login.status == 200
        listed = await (await bob.get(app.make_url("/api/notices"))).json()
        assert notice not in [n["id"] for n in listed["notices"]]  # not a conversation bob sees
        for method, path in (
            ("POST", f"/api/notices/{notice}/send"),
            ("POST", f"/api/notices/{notice}/filed"),
            ("POST", f"/api/notices/{notice}/status"),
            ("GET", f"/api/notices/{notice}/evidence/0"),
        ):
            answer = await bob.request(method, app.make_url(path), json={"status": "removed"})
            assert answer.status == 403, (path, await answer.text())
    listed = await (await app.get("/api/notices")).json()
    assert notice in [n["id"] for n in listed["notices"]]  # the supervisor sees every notice
    assert smtp.inbox.received == []  # nothing was sent on bob's word
