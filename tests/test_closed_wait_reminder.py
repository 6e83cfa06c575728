"""A young person still waiting when the line has closed, who keeps writing through the night ("allo ?", "y a
quelqu'un ?", "svp répondez", "je fais quoi" at 23:40, 00:30, 02:00, 07:00), is told where to turn now: their
message gets the short closed-line reminder (``closed_line_again``: nobody answers here before the reopening, 119,
3114, 17/112), at most once every ``timers.closed_reminder_minutes`` (30), never by day, never instead of a risk's own
escalation; the morning's "a rouvert" still comes. The real app on SQLite, its clock pinned (Paris), the web chat's
socket, and Messenger's signed webhooks with the fake Graph API.

Until 2026-12-06 such a message got no reply at all unless a risk was read in it: after the timer's one closed-line
notice at 23:01, the young person heard nothing until 9:00."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from aiohttp import ClientWebSocketResponse as WebSocket
from aiohttp.test_utils import TestClient

from gateway.app import STORE, TIMERS
from gateway.settings import Settings
from gateway.testing import FakeGraphAPI, messenger_body, messenger_message, signed_messenger
from tests.conftest import PARIS, AppFactory, Clock, outbox_drained
from tests.e2e.channel_support import eventually
from tests.test_webchat import WALK_TO_QUEUE, hello, say

Client = TestClient  # type: ignore[type-arg]

CLOSED_LINE = "Le chat du 3018 est fermé pour le moment"
REMINDER = "Pour rappel, le chat est toujours fermé"
SECRET = "meta-app-secret"
PSID = "7012345678901234"


def at(day: int, hour: int, minute: int) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=PARIS).astimezone(UTC)


async def bot_lines(client: Client, conversation_id: str) -> list[str]:
    return [e.text for e in await client.app[STORE].transcript(conversation_id) if e.author.value == "bot"]


async def settled(client: Client, conversation_id: str) -> None:
    """Whatever was under way for the conversation (a message, a timer) is done once its lock is free."""
    async with client.app[STORE].lock(conversation_id):
        pass


async def timers_fired(client: Client, clock: Clock, when: datetime, cid: str) -> None:
    """The clock at ``when``, the timers due then fired, and what they did for the conversation done."""
    clock.now = when
    await client.app[TIMERS].fire_due()
    await settled(client, cid)


@asynccontextmanager
async def waiting_in_the_web_chat(client: Client, clock: Clock) -> AsyncIterator[tuple[WebSocket, str]]:
    """At 22:50 in Paris (open until 23:00) a web chat walked to the queue: its socket and the conversation's id."""
    clock.now = at(10, 22, 50)
    async with client.ws_connect("/chat/ws") as ws:
        await hello(ws)
        for number, answer in enumerate(WALK_TO_QUEUE):
            await say(ws, f"w{number}", answer)
        [entry] = await client.app[STORE].waiting()
        yield ws, entry.conversation_id


async def night(client: Client, clock: Clock, write: Callable[[str, str], Awaitable[None]], cid: str) -> list[str]:
    """The timer's closed-line notice at 23:01, then the young person's night; what each message got."""
    await timers_fired(client, clock, at(10, 23, 1), cid)
    assert CLOSED_LINE in (await bot_lines(client, cid))[-1]

    async def told(when: datetime, number: str, text: str) -> list[str]:
        clock.now = when
        before = len(await bot_lines(client, cid))
        await write(number, text)
        await settled(client, cid)
        return (await bot_lines(client, cid))[before:]

    late = await told(at(10, 23, 40), "n1", "allo ?")
    assert len(late) == 1 and REMINDER in late[0] and "demain à 9h" in late[0]
    assert "119" in late[0] and "3114" in late[0] and "17" in late[0]
    assert await told(at(10, 23, 45), "n2", "y a quelqu'un ?") == []  # not again within 30 minutes
    [midnight] = await told(at(11, 0, 30), "n3", "svp répondez")
    assert REMINDER in midnight and "aujourd'hui à 9h" in midnight
    [deep] = await told(at(11, 2, 0), "n4", "je fais quoi")
    assert REMINDER in deep
    [dawn] = await told(at(11, 7, 0), "n5", "allo")
    assert REMINDER in dawn

    clock.now = at(11, 9, 1)  # the line reopened: the morning's first message says so, as before
    before = len(await bot_lines(client, cid))
    await client.app[TIMERS].fire_due()
    await settled(client, cid)
    [morning] = (await bot_lines(client, cid))[before:]
    assert "a rouvert" in morning
    assert await told(at(11, 9, 2), "d1", "allo ?") == []  # by day: the listeners answer, as before (no timer due)
    return [*late, midnight, deep, dawn, morning]


async def test_a_young_person_waiting_at_night_in_the_web_chat_is_reminded_where_to_turn(
    client: Client, clock: Clock
) -> None:
    async with waiting_in_the_web_chat(client, clock) as (ws, cid):

        async def write(number: str, text: str) -> None:
            await say(ws, number, text)

        await night(client, clock, write, cid)


async def test_a_risk_written_while_waiting_at_night_still_escalates_and_is_reminded_once(
    client: Client, clock: Clock
) -> None:
    async with waiting_in_the_web_chat(client, clock) as (ws, cid):
        await timers_fired(client, clock, at(10, 23, 1), cid)
        before = len(await bot_lines(client, cid))
        clock.now = at(10, 23, 50)
        await say(ws, "r1", "je veux mourir")
        said = (await bot_lines(client, cid))[before:]
        assert any("3114" in text and REMINDER not in text for text in said)  # the risk's own numbers, first
        assert sum(REMINDER in text for text in said) == 1 and REMINDER in said[-1]
        [entry] = await client.app[STORE].waiting()
        assert entry.priority.value == "urgent"


async def test_a_young_person_waiting_at_night_on_messenger_is_reminded_where_to_turn(
    make_client: AppFactory, settings: Settings, clock: Clock, graph: FakeGraphAPI
) -> None:
    client = await make_client(settings.replace(
        messenger_app_secret=SECRET, messenger_verify_token="verify-me", messenger_page_access_token="page-token",
        messenger_api_url=graph.url + "/v23.0",
    ))  # fmt: skip
    store = client.app[STORE]

    async def post(text: str, mid: str, payload: str | None = None) -> None:
        raw, headers = signed_messenger(SECRET, messenger_body([messenger_message(PSID, text, mid, payload)]))
        assert (await client.post("/webhooks/messenger", data=raw, headers=headers)).status == 200

    async def written(cid: str) -> int:
        return sum(e.author.value == "user" for e in await store.transcript(cid))

    clock.now = at(10, 22, 50)
    walk = [("Bonjour", None), ("Non", "no"), ("Français", "fr"), ("j'ai 15 ans", None), ("Pour moi", "me"),
            ("Cyberharcèlement", "cyberharassment"), ("On se moque de moi sur un groupe.", None)]  # fmt: skip
    for number, (text, payload) in enumerate(walk):
        await post(text, f"m_walk_{number}", payload)
    [entry] = await eventually(store.waiting)
    cid = entry.conversation_id

    async def write(number: str, text: str) -> None:
        before = await written(cid)
        await post(text, f"m_{number}")

        async def recorded() -> bool:
            return await written(cid) > before

        await eventually(recorded)

    said = await night(client, clock, write, cid)
    await outbox_drained(client)
    sent = [r.body["message"]["text"] for r in graph.accepted() if "message" in r.body]
    assert sent[-len(said) :] == said  # each reached Messenger, once


async def test_a_message_just_after_the_closing_tells_the_closed_line_once_whoever_comes_first(
    client: Client, clock: Clock
) -> None:
    """A message ("allo ?") at 23:02, the queue's timer due as well (the worker may tell the closed line first, or
    the message): the whole closed line once, no reminder on top of it, and the timer does not repeat it."""
    async with waiting_in_the_web_chat(client, clock) as (ws, cid):
        clock.now = at(10, 23, 2)
        await say(ws, "n1", "allo ?")
        await client.app[TIMERS].fire_due()
        await settled(client, cid)
        await timers_fired(client, clock, at(10, 23, 20), cid)
        said = await bot_lines(client, cid)
        assert sum(CLOSED_LINE in text for text in said) == 1 and CLOSED_LINE in said[-1]
        assert not any(REMINDER in text for text in said)
