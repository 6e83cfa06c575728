"""Sextortion in progress on Messenger, end to end: the real app (create_app, SQLite store, outbox) and a fake
Graph API, signed webhooks. The blackmail typed as the first message, or at the age question, hands off at once at
"high" with the first advice and Pharos; the listener's card says what it is about (escalate, never silence)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.settings import Settings
from gateway.testing import FakeGraphAPI, messenger_body, messenger_message, signed_messenger
from tests.e2e.channel_support import Client, GatewayFactory, ListenerDesk, gateway, offline

__all__ = ["gateway", "offline"]  # fixtures used by the tests below

SECRET = "meta-app-secret"
PSID = "7012345678901234"
PATH = "/webhooks/messenger"


@pytest.fixture
async def client(gateway: GatewayFactory, settings: Settings, graph: FakeGraphAPI) -> Client:
    return await gateway(
        settings.replace(
            messenger_app_secret=SECRET,
            messenger_verify_token="verify-me",
            messenger_page_access_token="page-token",
            messenger_api_url=graph.url + "/v23.0",
        )
    )


async def deliver(client: Client, text: str, mid: str, payload: str | None = None) -> None:
    raw, headers = signed_messenger(
        SECRET, messenger_body([messenger_message(PSID, text, mid=mid, quick_reply=payload)])
    )
    response = await client.post(PATH, data=raw, headers=headers)
    assert response.status == 200


async def handed_off(client: Client, graph: FakeGraphAPI) -> tuple[dict[str, Any], dict[str, Any], str]:
    """The card waiting in the queue, the conversation, and every bot text Graph accepted (once all are sent)."""
    desk = ListenerDesk(client)
    await desk.login()
    card = await desk.first_waiting()
    assert PSID not in json.dumps(card)
    sent = await desk.all_sent(card["id"])
    await graph.wait_accepted(len(sent))
    said = " ".join(r.body["message"]["text"] for r in graph.accepted() if "message" in r.body)
    return card, await desk.conversation(card["id"]), said


async def test_the_blackmail_as_the_first_message_hands_off_at_once_at_high_with_the_advice_and_pharos(
    client: Client, graph: FakeGraphAPI
) -> None:
    await deliver(client, "il me demande 200€ sinon il envoie mes photos à tous mes contacts", "m_sx_first")

    card, detail, said = await handed_off(client, graph)
    assert card["priority"] == "high" and detail["status"] == "queued" and detail["route"] == "sextortion"
    assert "Surtout, ne paie pas" in said and "Ne supprime pas les messages" in said and "17 ou le 112" in said
    assert "internet-signalement.gouv.fr" in said  # Pharos
    assert "Quel âge as-tu" not in said and "es-tu en danger en ce moment" in said  # greeted, never questioned
    assert dict(detail["summary"])["Sujet"].startswith("Chantage, sextorsion")


async def test_the_blackmail_typed_at_the_age_question_hands_off_at_once(client: Client, graph: FakeGraphAPI) -> None:
    await deliver(client, "Bonjour", "m_sx_1")
    await deliver(client, "Non", "m_sx_2", payload="no")
    await deliver(client, "Français", "m_sx_3", payload="fr")
    await deliver(client, "il me fait du chantage avec mes photos", "m_sx_4")

    card, detail, said = await handed_off(client, graph)
    assert card["priority"] == "high" and detail["route"] == "sextortion"
    assert "Quel âge as-tu" in said and "Tu nous écris pour toi" not in said
    assert "Surtout, ne paie pas" in said and "internet-signalement.gouv.fr" in said
    assert dict(detail["summary"])["Sujet"].startswith("Chantage, sextorsion")
