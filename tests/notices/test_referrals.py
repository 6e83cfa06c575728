"""Warm referrals end to end: consent first, the reviewed summary by a real SMTP server, the young person told."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from gateway.app import STORE
from gateway.messages import ChannelName
from tests.notices.smtp_server import SmtpServer
from tests.test_webchat import WALK_TO_QUEUE, hello, receive_until, say

Client = TestClient  # type: ignore[type-arg]


async def _taken(app: Client, ws: Any) -> str:
    session = await hello(ws)
    for number, answer in enumerate(WALK_TO_QUEUE):
        await say(ws, f"m{number}", answer)
    conversation = await app.app[STORE].find_active_conversation(ChannelName.WEBCHAT, session["token"])
    assert conversation is not None
    assert (await app.post(f"/api/conversations/{conversation.id}/take", json={})).status == 200
    return conversation.id


def _said(text: str) -> Any:
    return lambda f: f["type"] == "entry" and text in f["entry"]["text"]


async def test_without_consent_nothing_is_sent_and_with_it_the_reviewed_summary_is(
    app: Client, smtp: SmtpServer
) -> None:
    async with app.ws_connect("/chat/ws") as ws:
        conversation = await _taken(app, ws)
        r = f"/api/conversations/{conversation}/referrals"
        preview = await (await app.get(r + "/preview", params={"partner": "116006"})).json()
        labels = [label for label, _ in preview["shared"]]
        assert labels == ["Âge", "Sujet", "En quelques mots"]

        assert (await app.post(r + "/ask", json={"partner": "116006"})).status == 204
        await receive_until(ws, _said("Est-ce que tu es d'accord pour que nous transmettions à 116 006"))

        declined = await app.post(r, json={"partner": "116006", "consent": False, "shared": preview["shared"],
                                           "summary": "harcèlement sur un groupe"})  # fmt: skip
        assert declined.status == 201 and (await declined.json())["status"] == "declined"
        told = (await receive_until(ws, _said("nous ne transmettons rien")))[-1]
        # Where to reach the partner and when: France Victimes answers 9:00-19:00, not "whenever you like".
        assert "116 006 - France Victimes" in told["entry"]["text"] and "de 9h à 19h" in told["entry"]["text"]
        assert "quand tu veux" not in told["entry"]["text"]
        assert smtp.inbox.received == []  # the request returned after any send: none happened

        reviewed = [[label, "" if label == "En quelques mots" else value] for label, value in preview["shared"]]
        summary = "Harcelée sur un groupe de classe, a besoin d'aide pour porter plainte."
        sent = await app.post(r, json={"partner": "116006", "consent": True, "shared": reviewed, "summary": summary})
        assert sent.status == 201, await sent.text()
        referral = await sent.json()
        assert referral["status"] == "sent" and [p[0] for p in referral["shared"]] == ["Âge", "Sujet"]
        await receive_until(ws, _said("France Victimes a reçu ce que tu as accepté de partager"))

    (message,) = await smtp.inbox.wait(1)
    assert smtp.inbox.received[0][1] == ["orientations@france-victimes.example"]
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "- Âge : 15" in text and "porter plainte" in text and referral["reference"] in text
    assert "On se moque de moi" not in text  # the blanked answer is not shared
    assert conversation not in text

    for status in ("taken_up", "closed"):
        moved = await app.post(f"/api/referrals/{referral['id']}/status", json={"status": status})
        assert (await moved.json())["status"] == status
    again = await app.post(f"/api/referrals/{referral['id']}/status", json={"status": "sent"})
    assert again.status == 409 and (await again.json())["current"] == "closed"  # the console: "déjà « close »"
    actions = [e["action"] for e in (await (await app.get("/api/audit")).json())["entries"]]
    assert actions[:5] == ["referral_closed", "referral_taken_up", "referral_sent", "referral_declined",
                           "referral_consent_asked"]  # fmt: skip


async def test_a_field_the_partner_does_not_receive_is_refused(app: Client, smtp: SmtpServer) -> None:
    async with app.ws_connect("/chat/ws") as ws:
        conversation = await _taken(app, ws)
        body = {"partner": "116006", "consent": True, "shared": [["Violences à la maison", "oui"]], "summary": ""}
        refused = await app.post(f"/api/conversations/{conversation}/referrals", json=body)
        assert refused.status == 400 and (await refused.json())["field"] == "shared"
        unknown = await app.post(f"/api/conversations/{conversation}/referrals", json={**body, "partner": "119"})
        assert unknown.status == 409 and (await unknown.json())["error"] == "unknown_partner"
    assert smtp.inbox.received == []
