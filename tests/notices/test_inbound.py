"""Partners' inbound referrals: an authenticated request queues a web chat conversation with the partner's
summary; its one-time link opens that conversation once."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from gateway.app import STORE
from gateway.conversation import Status
from gateway.settings import Settings
from tests.conftest import AppFactory, add_listener, login
from tests.test_webchat import hello, say

KEY = "k" * 30
Client = TestClient  # type: ignore[type-arg]


async def test_a_partner_referral_waits_in_the_queue_and_its_link_works_once(
    make_client: AppFactory, settings: Settings
) -> None:
    app = await make_client(settings.replace(partner_keys=f"116006={KEY}, 119={'z' * 24}"))
    path = "/api/partners/116006/referrals"
    body = {"summary": "Jeune de 15 ans, harcelée, d'accord pour être contactée par le 3018.", "language": "fr"}
    assert (await app.post(path, json=body)).status == 401
    assert (await app.post(path, json=body, headers={"Authorization": "Bearer " + "x" * 30})).status == 401
    assert (
        await app.post("/api/partners/119/referrals", json=body, headers={"Authorization": "Bearer " + "z" * 24})
    ).status == 404  # no referral block
    auth = {"Authorization": "Bearer " + KEY}
    assert (await app.post(path, json={"summary": ""}, headers=auth)).status == 400
    assert (await app.post(path, data=b"{", headers={**auth, "Content-Type": "application/json"})).status == 400

    created = await app.post(path, json=body, headers=auth)
    assert created.status == 201
    answer = await created.json()
    assert answer["link"].startswith("http://127.0.0.1:8080/chat/referral#")
    code = answer["link"].split("#", 1)[1]

    store = app.app[STORE]
    (waiting,) = await store.waiting()
    conversation = await store.get_conversation(waiting.conversation_id)
    assert conversation is not None and conversation.status == Status.QUEUED
    assert conversation.pseudonym == answer["pseudonym"] and conversation.summary[1][1] == body["summary"]
    await add_listener(app, "anne", supervisor=True)
    await login(app, "anne")
    card = await (await app.get(f"/api/conversations/{conversation.id}")).json()
    assert any(e["author"] == "note" and "harcelée" in e["text"] for e in card["transcript"])

    page = await app.get("/chat/referral")
    assert page.status == 200 and "referral.js" in await page.text()
    claimed = await app.post("/chat/referral", json={"code": code})
    assert claimed.status == 200
    token = (await claimed.json())["token"]
    assert (await app.post("/chat/referral", json={"code": code})).status == 410  # once only
    assert (await app.post("/chat/referral", json={"code": "nope"})).status == 404

    async with app.ws_connect("/chat/ws") as ws:  # the web chat resumes the waiting conversation
        session = await hello(ws, token)
        assert session["status"] == "queued"
        await say(ws, "m1", "bonjour, c'est moi")
    assert [e.text for e in await store.transcript(conversation.id)][-1] == "bonjour, c'est moi"
    actions = [e["action"] for e in (await (await app.get("/api/audit")).json())["entries"]]
    assert "read" in actions  # anne, a supervisor, read a conversation she does not hold: audited
    assert [a for a in actions if a != "read"][:2] == ["referral_link_used", "referral_received"]


def test_partner_keys_are_checked() -> None:
    import pytest

    from gateway.errors import ConfigError

    assert Settings(partner_keys=f" 116006={KEY} ,").partner_key_map() == {"116006": KEY}
    for bad in ("116006=short", f"={KEY}", "116006"):
        with pytest.raises(ConfigError) as raised:
            Settings(partner_keys=bad)
        assert "short" not in str(raised.value)
