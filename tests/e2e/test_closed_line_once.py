"""A night conversation is told the closed line once, through the real app: at its greeting, and at its hand-off
only the short reminder (``closed_line_again``) and the route's own words and referrals; a risky answer still
gets its numbers. Until 2026-12-02 the whole closed-line message came again at the hand-off, minutes after the
greeting. The web chat through its socket, Messenger through signed webhooks and the fake Graph API."""

from __future__ import annotations

from typing import Any

from gateway.app import STORE
from gateway.conversation import Status
from gateway.settings import Settings
from gateway.store import Author
from gateway.testing import FakeGraphAPI, messenger_body, messenger_message, signed_messenger
from tests.conftest import AppFactory, Clock, outbox_drained
from tests.e2e.channel_support import GatewayFactory, eventually, gateway, offline, running_clock
from tests.test_webchat import WALK_TO_QUEUE, hello, say

__all__ = ["gateway", "offline"]  # fixtures used by the tests below

CLOSED_LINE = "Le chat du 3018 est fermé pour le moment"
REMINDER = "le chat est toujours fermé"
EMERGENCY = "appelle le 17 (police) ou le 112"
SECRET = "meta-app-secret"
PSID = "7012345678901234"


def told(texts: list[str], words: str) -> int:
    return sum(words.lower() in text.lower() for text in texts)


def bot_entries(frames: list[dict[str, Any]]) -> list[str]:
    return [f["entry"]["text"] for f in frames if f["type"] == "entry" and f["entry"]["author"] == "bot"]


async def webchat_night(make_client: AppFactory, settings: Settings, clock: Clock, answers: list[str]) -> list[str]:
    """Every bot message a web chat page received: its greeting at 23:30, then an answer a minute."""
    clock.advance(hours=9, minutes=30)  # 23:30 in Paris: the line is closed until 9:00
    client = await make_client(settings)
    async with client.ws_connect("/chat/ws") as ws:
        session = await hello(ws)
        texts = [entry["text"] for entry in session["history"] if entry["author"] == "bot"]
        for number, answer in enumerate(answers):
            clock.advance(minutes=1)
            texts += bot_entries(await say(ws, f"m{number}", answer))
        store = client.app[STORE]
        [ended] = await eventually(lambda: store.conversations_by_status(Status.CLOSED))  # the closed outcome ends it
        await outbox_drained(client)
        sent = [e for e in await store.transcript(ended.id) if e.author == Author.BOT]
        while len(texts) < len(sent):  # the last replies may reach the page after the last answer's ack (load)
            texts += bot_entries([await ws.receive_json(timeout=10)])
    return texts


async def test_a_night_walk_in_the_web_chat_is_told_the_closed_line_once(
    make_client: AppFactory, settings: Settings, clock: Clock
) -> None:
    texts = await webchat_night(make_client, settings, clock, WALK_TO_QUEUE)
    assert told(texts, CLOSED_LINE) == 1 and CLOSED_LINE in texts[1]  # at the greeting, before the first question
    assert told(texts, REMINDER) == 1 and REMINDER in texts[-1].lower()  # the hand-off: the reminder only
    assert "demain à 9h" in texts[-1] and "3114" in texts[-1]  # the numbers in sight at the end


async def test_danger_at_night_in_the_web_chat_still_gets_the_emergency_numbers(
    make_client: AppFactory, settings: Settings, clock: Clock
) -> None:
    texts = await webchat_night(make_client, settings, clock, ["1"])  # "Oui": in danger now
    assert told(texts, CLOSED_LINE) == 1
    assert told(texts, EMERGENCY) == 1  # the route's referrals, after the reminder
    assert "3114" in texts[-1]  # … its own: the 3114's message
    assert told(texts, REMINDER) == 1


async def test_a_night_walk_on_messenger_is_told_the_closed_line_once(
    gateway: GatewayFactory, settings: Settings, graph: FakeGraphAPI
) -> None:
    client = await gateway(
        settings.replace(
            messenger_app_secret=SECRET,
            messenger_verify_token="verify-me",
            messenger_page_access_token="page-token",
            messenger_api_url=graph.url + "/v23.0",
        )
    )
    running_clock(client).advance(hours=9, minutes=30)  # 23:30 in Paris
    walk = [("Bonjour", None), ("Non", "no"), ("Français", "fr"), ("j'ai 15 ans", None), ("Pour moi", "me"),
            ("Cyberharcèlement", "cyberharassment"), ("On se moque de moi sur un groupe.", None)]  # fmt: skip
    for number, (text, payload) in enumerate(walk):
        raw, headers = signed_messenger(SECRET, messenger_body([messenger_message(PSID, text, f"m_night_{number}",
                                                                                  payload)]))  # fmt: skip
        assert (await client.post("/webhooks/messenger", data=raw, headers=headers)).status == 200

    async def ended() -> bool:
        return bool(await client.app[STORE].conversations_by_status(Status.CLOSED))

    await eventually(ended)
    await outbox_drained(client)
    texts = [r.body["message"]["text"] for r in graph.accepted() if "message" in r.body]
    assert told(texts, CLOSED_LINE) == 1 and CLOSED_LINE in texts[1]
    assert told(texts, REMINDER) == 1 and REMINDER in texts[-1].lower()
