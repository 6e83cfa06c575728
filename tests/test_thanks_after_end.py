"""A thank-you written just after a conversation ended ("merci", "ok merci", "🙏"): one short reply, recorded in the
ended conversation, no new conversation (no welcome, no closed line again, no danger question, no queue entry).
Until 2026-12-05 it opened a new conversation: four or five messages in answer to a thank-you, on a phone maybe read
by someone beside them, and a conversation more in the figures. Anything else, or a risk read in it, starts a new
conversation as before. The real app, Messenger through signed webhooks and the fake Graph API on 127.0.0.1; the web
chat through its socket; two instances on the session's Redis."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from gateway.app import DISPATCHER, STORE, create_app
from gateway.conversation import Status
from gateway.messages import ChannelName
from gateway.settings import Settings
from gateway.store import Author, Store
from gateway.testing import FakeGraphAPI, messenger_body, messenger_message, signed_messenger
from tests.conftest import AppFactory, Clock, outbox_drained, shared_understanding
from tests.e2e.channel_support import (
    Client,
    GatewayFactory,
    ListenerDesk,
    RunningClock,
    eventually,
    gateway,
    offline,
    running_clock,
)
from tests.redis_messenger import messenger_on_redis
from tests.store.conftest import redis_url
from tests.test_webchat import hello, receive_until, say

__all__ = ["gateway", "messenger_on_redis", "offline", "redis_url"]  # fixtures used below

SECRET = "meta-app-secret"
PSID = "7012345678901299"
THANKS = "Avec plaisir"
CLOSED_LINE = "Le chat du 3018 est fermé pour le moment"
WALK = [("Bonjour", None), ("Non", "no"), ("Français", "fr"), ("j'ai 15 ans", None), ("Pour moi", "me"),
        ("Cyberharcèlement", "cyberharassment"), ("On se moque de moi sur un groupe.", None)]  # fmt: skip


def messenger(settings: Settings, graph: FakeGraphAPI, secret: str = SECRET) -> Settings:
    return settings.replace(
        messenger_app_secret=secret, messenger_verify_token="verify-me", messenger_page_access_token="page-token",
        messenger_api_url=graph.url + "/v23.0",
        understanding_timeout=30,  # read in time on a busy machine: a reading late is processed as any message
    )  # fmt: skip


async def post(client: Client, text: str, mid: str, payload: str | None = None, secret: str = SECRET) -> None:
    raw, headers = signed_messenger(secret, messenger_body([messenger_message(PSID, text, mid, payload)]))
    response = await client.post("/webhooks/messenger", data=raw, headers=headers)
    assert response.status == 200, await response.text()


def sent(graph: FakeGraphAPI) -> list[str]:
    return [r.body["message"]["text"] for r in graph.accepted() if "message" in r.body]


async def model_loaded(client: Client) -> None:
    """The model read: a message it could not read in time (loading, busy) starts a new conversation, as before."""
    reader = client.app[DISPATCHER].reader
    if reader is not None:
        await reader.wait_loaded()


async def ended_at_night(client: Client, graph: FakeGraphAPI) -> str:
    """A Messenger walk at 23:30 that the closed line ends (with the partners' numbers); the ended conversation's id."""
    await model_loaded(client)
    running_clock(client).advance(hours=9, minutes=30)  # 23:30 in Paris: the line is closed until 9:00
    for number, (text, payload) in enumerate(WALK):
        await post(client, text, f"m_night_{number}", payload)
    store = client.app[STORE]
    [ended] = await eventually(lambda: store.conversations_by_status(Status.CLOSED))
    await outbox_drained(client)
    assert CLOSED_LINE in sent(graph)[1]
    return ended.id


async def closed_by_a_listener(client: Client, later: timedelta = timedelta(0)) -> tuple[ListenerDesk, str]:
    """A Messenger walk by day that a listener takes then closes (``later`` on the clock); the desk and its id."""
    await model_loaded(client)
    for number, (text, payload) in enumerate(WALK):
        await post(client, text, f"m_day_{number}", payload)
    desk = ListenerDesk(client)
    await desk.login()
    waiting = await desk.first_waiting()
    await desk.take(waiting["id"])
    # the take's words ("un·e écoutant·e vient de te rejoindre") recorded sent before the clock moves: the outbox's
    # lease is counted on this clock, and a 9-hour move found them still sending (a busy machine, 2026-12-06)
    await outbox_drained(client)
    running_clock(client).advance(seconds=later.total_seconds())
    response = await client.post(f"/api/conversations/{waiting['id']}/close", json={"outcome": "cyberbullying"})
    assert response.status == 200, await response.text()
    await outbox_drained(client)
    return desk, waiting["id"]


async def sent_after(client: Client, graph: FakeGraphAPI, minutes: int, *messages: tuple[str, str]) -> list[str]:
    """``minutes`` later on the clock, each (text, message id) posted in turn: what was sent once the outbox drained."""
    before = len(sent(graph))
    running_clock(client).advance(minutes=minutes)
    for text, mid in messages:
        await post(client, text, mid)
    await outbox_drained(client)
    return sent(graph)[before:]


async def new_conversation_after(client: Client, minutes: int, text: str, mid: str) -> str:
    """``minutes`` later on the clock, ``text`` posted opens the sender's second conversation: its id."""
    store = client.app[STORE]
    running_clock(client).advance(minutes=minutes)
    await post(client, text, mid)
    await eventually(lambda: _counted(store, 2))
    return (await conversations_of(store))[0]


async def conversations_of(store: Store) -> list[str]:
    """The sender's conversations, the latest first."""
    now = RunningClock().start
    found = await store.conversations_of(ChannelName.MESSENGER, PSID, now - timedelta(days=1), now + timedelta(days=2),
                                         10)  # fmt: skip
    return [c.id for c in found]


async def conversations(store: Store) -> int:
    return len(await conversations_of(store))


async def users_words(store: Store, conversation_id: str) -> list[str]:
    return [e.text for e in await store.transcript(conversation_id) if e.author is Author.USER]


async def test_a_thank_you_after_the_closed_line_gets_one_short_reply_and_no_new_conversation(
    gateway: GatewayFactory, settings: Settings, graph: FakeGraphAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = await gateway(messenger(settings, graph))
    store = client.app[STORE]
    ended = await ended_at_night(client, graph)

    after = await sent_after(client, graph, 1, ("merci beaucoup 🙏", "m_thanks"))
    assert len(after) == 1 and THANKS in after[0], after  # one short reply: no welcome, no closed line, no question
    assert "17 ou 112" in after[0]  # where to turn, still
    assert await store.find_active_conversation(ChannelName.MESSENGER, PSID) is None
    assert await conversations(store) == 1  # nothing more in the figures, nothing in the queue
    assert (await users_words(store, ended))[-1] == "merci beaucoup 🙏"  # kept where a listener reads their history

    # the provider's redelivery, then a second thank-you (said once: kept, not answered): nothing more
    assert await sent_after(client, graph, 0, ("merci beaucoup 🙏", "m_thanks"), ("ok merci", "m_thanks_2")) == []
    assert await store.find_active_conversation(ChannelName.MESSENGER, PSID) is None
    assert (await users_words(store, ended))[-2:] == ["merci beaucoup 🙏", "ok merci"]
    log = caplog.text
    assert "merci" not in log.lower() and PSID not in log  # never the words nor the sender in a log line


@pytest.mark.parametrize("text", ["merci, mais il continue à m'écrire", "merci je vais me tuer", "merci 😢"])
async def test_anything_but_a_thank_you_after_an_end_starts_a_new_conversation(
    gateway: GatewayFactory, settings: Settings, graph: FakeGraphAPI, text: str
) -> None:
    client = await gateway(messenger(settings, graph))
    store = client.app[STORE]
    ended = await ended_at_night(client, graph)
    latest = await new_conversation_after(client, 1, text, "m_more")  # at night a risk's closed line ends it too
    assert latest != ended and await users_words(store, latest) == [text]
    await outbox_drained(client)
    assert THANKS not in " ".join(sent(graph))


async def test_a_thank_you_long_after_the_end_starts_a_new_conversation(
    gateway: GatewayFactory, settings: Settings, graph: FakeGraphAPI
) -> None:
    client = await gateway(messenger(settings, graph))
    await ended_at_night(client, graph)
    await new_conversation_after(client, 31, "merci", "m_late")
    await outbox_drained(client)
    assert THANKS not in " ".join(sent(graph))


async def test_ok_merci_after_a_listeners_close_gets_the_short_reply(
    gateway: GatewayFactory, settings: Settings, graph: FakeGraphAPI
) -> None:
    client = await gateway(messenger(settings, graph))
    store = client.app[STORE]
    desk, closed = await closed_by_a_listener(client)

    after = await sent_after(client, graph, 1, ("ok merci", "m_ok_merci"))
    assert [THANKS in text for text in after] == [True]
    assert await store.find_active_conversation(ChannelName.MESSENGER, PSID) is None
    assert (await users_words(store, closed))[-1] == "ok merci"
    assert await desk.waiting() == []


async def test_the_web_chat_never_starts_a_conversation_from_a_message_after_its_end(
    make_client: AppFactory, settings: Settings, clock: Clock
) -> None:
    """Checked, unchanged: after an end the socket answers ``ended`` to any message (its page offers a new
    conversation); a "merci" there starts nothing and gets nothing more."""
    client = await make_client(settings)
    store = client.app[STORE]
    async with client.ws_connect("/chat/ws") as ws:
        await hello(ws)
        await say(ws, "m0", "stop")  # the stop interrupt ends it
        [ended] = await eventually(lambda: store.conversations_by_status(Status.CLOSED))
        await ws.send_json({"type": "message", "id": "m1", "text": "merci"})
        frames = await receive_until(ws, lambda f: f["type"] == "error")
        assert frames[-1]["code"] == "ended" and [f for f in frames if f["type"] == "entry"] == []
    assert len(await store.conversations_by_status(Status.BOT)) == 0
    assert "merci" not in await users_words(store, ended.id)


@pytest.mark.redis
async def test_two_instances_on_redis_answer_a_thank_you_once(
    aiohttp_client: object, messenger_on_redis: Settings, graph: FakeGraphAPI
) -> None:
    """The conversation ends on one instance; the thank-you and its redelivery reach the other, then the first."""
    from tests.redis_messenger import SECRET as REDIS_SECRET

    clock = RunningClock()
    make = aiohttp_client
    first = await make(await create_app(messenger_on_redis, clock=clock, worker_poll_seconds=0.05,  # type: ignore[operator]
                                        **shared_understanding(messenger_on_redis)))  # fmt: skip
    second = await make(await create_app(messenger_on_redis, clock=clock, worker_poll_seconds=0.05,  # type: ignore[operator]
                                         **shared_understanding(messenger_on_redis)))  # fmt: skip
    await model_loaded(first)
    await model_loaded(second)
    clock.advance(hours=9, minutes=30)
    for number, (text, payload) in enumerate(WALK):
        await post(first, text, f"m_r_{number}", payload, secret=REDIS_SECRET)
    store = first.app[STORE]
    ended = await eventually(lambda: _ended(store))
    await outbox_drained(first)
    before = len(sent(graph))
    clock.advance(minutes=1)
    await post(second, "merci", "m_r_thanks", secret=REDIS_SECRET)
    await post(first, "merci", "m_r_thanks", secret=REDIS_SECRET)  # redelivered to the other instance
    await post(first, "👍", "m_r_thumb", secret=REDIS_SECRET)
    await outbox_drained(first)
    await outbox_drained(second)
    after = sent(graph)[before:]
    assert len(after) == 1 and THANKS in after[0], after
    assert await second.app[STORE].find_active_conversation(ChannelName.MESSENGER, PSID) is None
    assert (await users_words(second.app[STORE], ended))[-2:] == ["merci", "👍"]


async def _ended(store: Store) -> str | None:
    closed = await store.conversations_by_status(Status.CLOSED)
    return closed[0].id if closed else None


async def _counted(store: Store, wanted: int) -> bool:
    return await conversations(store) == wanted


async def test_goodbyes_at_night_promise_no_answer_here_whenever_they_like(
    gateway: GatewayFactory, settings: Settings, graph: FakeGraphAPI
) -> None:
    """A listener closes at 23:10 (the line closed since 23:00), the young person thanks, writes again, erases their
    data, then writes "stop": `ended`, `after_end`, `erasure.done` and the stop's words. Until 2026-12-05 each said
    "Tu peux revenir / nous réécrire quand tu veux" minutes after the closed line said nobody answers here before
    9:00 (as `abandoned` and `idle_closed` said "à tout moment" until that day); now that the 3018 listeners answer
    here during the chat's opening hours, and each keeps who answers now."""
    client = await gateway(messenger(settings, graph))
    # 23:10 in Paris: a late conversation closed after the line's closing time
    await closed_by_a_listener(client, later=timedelta(hours=9, minutes=10))
    for number, text in enumerate(["merci", "bonjour", "efface mes données", "oui", "stop"]):
        await sent_after(client, graph, 1, (text, f"m_after_{number}"))
    texts = sent(graph)
    starts = ("La conversation est terminée", THANKS, "C'est fait : tes messages", "D'accord, on s'arrête là")
    goodbyes = [next(t for t in texts if t.startswith(start)) for start in starts]
    for goodbye in goodbyes:
        assert "quand tu veux" not in goodbye and "heures d'ouverture" in goodbye, goodbye
        assert "17" in goodbye and "112" in goodbye
    assert all("119" in goodbye and "3114" in goodbye for goodbye in goodbyes if not goodbye.startswith(THANKS))
