"""The supervision page's bulk close (``POST /api/floods/close``, ``gateway/console/safety.py``) and the young people
at risk in a flood (since rel36): a supervisor clearing a troll's flood never closes by accident a young person whose
words were flagged (or who was handed off as urgent) who happened to be in the selection.

On both stores (SQLite, the session's Redis), the real app on Messenger, its outbox delivering to a fake Graph API:
a conversation at risk is kept by default (not closed, its young person told nothing), counted in the answer
(``flagged_kept``, ``flagged_kept_ids``) and in the ``bulk_close`` audit line, and closed when the body says
``"include_flagged": true`` (the usual ``ended`` goodbye, once); one flagged after the page loaded is kept too (the
risk is read under the conversation's lock, at the close); ``include_flagged`` is a bool or the request is 400.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from gateway.app import DISPATCHER, STORE, SUPERVISOR
from gateway.console.safety import flood_rows
from gateway.conversation import Conversation, Priority, Status
from gateway.language import language_of
from gateway.messages import ChannelName, Inbound
from gateway.settings import Settings
from gateway.store import Store
from gateway.testing import FakeGraphAPI
from tests.conftest import AppFactory, Clock, add_listener, login, outbox_drained
from tests.console.test_handback_crash import instance, redis_store
from tests.cutting_proxy import cutting_proxy
from tests.loop_gaps import longest_hold
from tests.losing_proxy import script_text
from tests.store.conftest import STORES, on_store, redis_url
from tests.test_security import DANGER
from tests.test_webchat import WALK_TO_QUEUE

__all__ = ["redis_store", "redis_url"]  # fixtures used below

Client = TestClient[web.Request, web.Application]
MIDS = itertools.count()  # each message its own Messenger id


@pytest.fixture(params=STORES)
def where(request: pytest.FixtureRequest, settings: Settings, graph: FakeGraphAPI) -> Settings:
    """The settings on SQLite, or on the session's Redis (emptied), Messenger's replies sent to the fake Graph API."""
    return on_store(request, settings.replace(
        messenger_api_url=graph.url, messenger_page_access_token="page-token", messenger_app_secret="app-secret",
        messenger_verify_token="verify",
    ))  # fmt: skip


@pytest.fixture
async def sam(make_client: AppFactory, where: Settings) -> Client:
    """The real app (its workers running: the outbox delivers), Sam logged in as a supervisor."""
    client = await make_client(where)
    await add_listener(client, "sam", supervisor=True)
    await login(client, "sam")
    return client


async def writes(client: Client, psid: str, *texts: str) -> str:
    """The young person ``psid`` writes on Messenger (through the app's dispatcher): their open conversation's id."""
    dispatcher = client.app[DISPATCHER]
    for text in texts:
        assert await dispatcher.handle_inbound(Inbound(ChannelName.MESSENGER, psid, f"mid.{next(MIDS)}", text))
    conversation = await client.app[STORE].find_active_conversation(ChannelName.MESSENGER, psid)
    assert conversation is not None
    return conversation.id


def told(graph: FakeGraphAPI, psid: str) -> list[str]:
    """The texts the fake Graph API was asked to send to ``psid``, in order."""
    sent = graph.requests_to(graph.send_endpoint)
    return [str(r.body["message"].get("text", "")) for r in sent if r.body.get("recipient", {}).get("id") == psid
            and "message" in r.body]  # fmt: skip


async def ended(client: Client, conversation_id: str) -> str:
    """The bulk close's goodbye (``ended``) in the young person's language."""
    conversation = await client.app[STORE].get_conversation(conversation_id)
    assert conversation is not None
    engine = client.app[DISPATCHER].flows.for_version(conversation.flow_version)
    return engine.message("ended", language_of(conversation, engine.flow))


async def close(client: Client, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/api/floods/close", json=body)
    assert response.status == 200, await response.text()
    answer: dict[str, Any] = await response.json()
    return answer


async def bulk_lines(client: Client) -> list[str]:
    return [e.detail for e in await client.app[STORE].audit_log() if e.action == "bulk_close"]


async def test_a_flagged_conversation_is_kept_unless_include_flagged_told_nothing_then_goodbye_once(
    sam: Client, graph: FakeGraphAPI
) -> None:
    """A troll's conversation in the bot and a young person who wrote words of danger (the suicide interrupt: flagged,
    handed off, waiting) are in the same selection. The rows say which is flagged at risk, and for what (the class,
    never a word). The bulk close closes the troll's (its goodbye once) and keeps the young person's: still waiting,
    told nothing, counted (``flagged_kept``) and named by id for the page's second button; the audit line counts it.
    Sent again with ``include_flagged``: closed ``closed_in_bulk``, the goodbye once; the audit line says it was at
    risk. Before rel36 both were closed by the first request."""
    troll = await writes(sam, "psid-troll", WALK_TO_QUEUE[0])
    risky = await writes(sam, "psid-risky", DANGER)
    rows = {r["id"]: r for r in (await (await sam.get("/api/floods")).json())["conversations"]}
    assert (rows[troll]["flagged"], rows[troll]["risk"]) == (False, None), rows[troll]
    assert (rows[risky]["flagged"], rows[risky]["risk"]) == (True, "suicide"), rows[risky]
    assert "mourir" not in str(rows) and "psid" not in str(rows)  # never a word, never the address
    await outbox_drained(sam)
    before = {psid: len(told(graph, psid)) for psid in ("psid-troll", "psid-risky")}

    answer = await close(sam, {"ids": [troll, risky]})
    await outbox_drained(sam)
    assert answer == {"closed": 1, "ending": 0, "flagged_kept": 1, "flagged_kept_ids": [risky]}, answer
    assert told(graph, "psid-risky")[before["psid-risky"] :] == []  # kept: told nothing
    kept = await sam.app[STORE].get_conversation(risky)
    assert kept is not None and (kept.status, kept.flag is not None) == (Status.QUEUED, True), kept
    assert [e.conversation_id for e in await sam.app[STORE].waiting()] == [risky]
    assert told(graph, "psid-troll")[before["psid-troll"] :] == [await ended(sam, troll)]  # closed: once
    assert await bulk_lines(sam) == ["1 conversations closed, 1 flagged at risk kept"]

    answer = await close(sam, {"ids": [risky], "include_flagged": True})
    await outbox_drained(sam)
    assert answer == {"closed": 1, "ending": 0, "flagged_kept": 0, "flagged_kept_ids": []}, answer
    assert told(graph, "psid-risky")[before["psid-risky"] :] == [await ended(sam, risky)]  # the goodbye, once
    after = await sam.app[STORE].get_conversation(risky)
    assert after is not None and (after.status, after.outcome) == (Status.CLOSED, "closed_in_bulk"), after
    assert await sam.app[STORE].waiting() == []
    lines = await bulk_lines(sam)
    assert lines[0] == "1 conversations closed, 1 flagged at risk among them", lines  # the newest first
    assert "mourir" not in str(lines) and "psid" not in str(lines)
    asked = [(e.actor, e.subject, e.detail) for e in await sam.app[STORE].audit_log() if e.action == "bulk_close_asked"]
    assert asked == [  # each request audited before its first close (a cut one keeps who asked), newest first
        ("sam", risky, "1 conversations asked, flagged at risk included"),
        ("sam", f"{troll}, {risky}", "2 conversations asked, flagged at risk kept"),
    ], asked


async def test_a_conversation_flagged_after_the_page_loaded_is_kept(sam: Client, graph: FakeGraphAPI) -> None:
    """Sam's page loads a young person still in the bot, not flagged; the young person then writes words of danger
    (flagged, handed off); Sam closes the selection the page showed: kept (the risk is read at the close, under the
    conversation's lock), told nothing by the close. Before rel36: closed, told goodbye right after their words."""
    conversation_id = await writes(sam, "psid-late", WALK_TO_QUEUE[0])
    [row] = (await (await sam.get("/api/floods")).json())["conversations"]
    assert (row["id"], row["flagged"]) == (conversation_id, False), row
    assert await writes(sam, "psid-late", DANGER) == conversation_id
    await outbox_drained(sam)
    before = len(told(graph, "psid-late"))

    answer = await close(sam, {"ids": [conversation_id]})
    await outbox_drained(sam)
    assert answer == {"closed": 0, "ending": 0, "flagged_kept": 1, "flagged_kept_ids": [conversation_id]}, answer
    assert told(graph, "psid-late")[before:] == []
    after = await sam.app[STORE].get_conversation(conversation_id)
    assert after is not None and after.status is Status.QUEUED, after
    assert await bulk_lines(sam) == ["0 conversations closed, 1 flagged at risk kept"]


async def test_an_urgent_hand_off_without_a_flag_is_kept_too(sam: Client, graph: FakeGraphAPI) -> None:
    """The young person answers the flow's first question that they are in danger right now (the walk to the queue):
    an urgent hand-off, and no word flagged (``Conversation.flag`` is None). At risk all the same: shown flagged (no
    class), kept by the bulk close, told nothing; closed with ``include_flagged``, the goodbye once."""
    conversation_id = await writes(sam, "psid-urgent", *WALK_TO_QUEUE)
    conversation = await sam.app[STORE].get_conversation(conversation_id)
    assert conversation is not None and (conversation.priority, conversation.flag) == (Priority.URGENT, None)
    [row] = (await (await sam.get("/api/floods")).json())["conversations"]
    assert (row["flagged"], row["risk"], row["priority"]) == (True, None, "urgent"), row
    await outbox_drained(sam)
    before = len(told(graph, "psid-urgent"))

    kept = await close(sam, {"ids": [conversation_id]})
    await outbox_drained(sam)
    assert (kept["closed"], kept["flagged_kept"]) == (0, 1), kept
    assert told(graph, "psid-urgent")[before:] == []
    closed = await close(sam, {"ids": [conversation_id], "include_flagged": True})
    await outbox_drained(sam)
    assert (closed["closed"], closed["flagged_kept"]) == (1, 0), closed
    assert told(graph, "psid-urgent")[before:] == [await ended(sam, conversation_id)]


@pytest.mark.parametrize("value", ["yes", "true", 1, 0, None, [], {}])
async def test_include_flagged_is_a_bool_or_400(sam: Client, value: object) -> None:
    """``include_flagged`` present and not a bool: 400, nothing closed (``null`` is not "absent")."""
    conversation_id = await writes(sam, "psid-bad", WALK_TO_QUEUE[0])
    response = await sam.post("/api/floods/close", json={"ids": [conversation_id], "include_flagged": value})
    assert response.status == 400, await response.text()
    assert (await response.json())["error"] == "bad_request"
    after = await sam.app[STORE].get_conversation(conversation_id)
    assert after is not None and after.status is Status.BOT, after
    assert await bulk_lines(sam) == []


@pytest.mark.redis
async def test_a_conversation_flagged_while_the_close_goes_through_the_ones_before_is_kept(
    redis_store: Store, redis_url: str, clock: Clock, settings: Settings, make_client: AppFactory
) -> None:
    """Why the risk is read under each conversation's lock, not once for the request: Sam closes Alex's and Yan's
    conversations, both in the bot, not flagged when the request begins. Once the request has begun, its first
    close's lock held at the wire (``tests/cutting_proxy.py``, ``hold_before``: nothing of the gateway patched), Yan
    writes words of danger on another instance (flagged, handed off). The bulk close then reaches Yan's: kept
    (``{"closed": 1, "flagged_kept": 1}``), Yan told nothing by it. Read once before the first lock, Yan would be
    closed right after his words."""
    dispatcher, _ = instance(redis_store, clock)
    for psid in ("psid-alex", "psid-yan"):
        assert await dispatcher.handle_inbound(Inbound(ChannelName.MESSENGER, psid, f"mid.{psid}", WALK_TO_QUEUE[0]))
    alex, yan = [c.id for c in sorted(await redis_store.conversations_by_status(Status.BOT), key=lambda c: c.sender)]

    wrote: list[bool] = []

    async def yan_writes() -> None:  # elsewhere: the other instance, on its own connection
        inbound = Inbound(ChannelName.MESSENGER, "psid-yan", "mid.yan.danger", DANGER)
        wrote.append(await dispatcher.handle_inbound(inbound))

    since = len(await redis_store.transcript(yan))
    async with cutting_proxy(redis_url) as proxy:
        client = await make_client(settings.replace(store=proxy.url), worker_poll_seconds=3600)
        await client.app[SUPERVISOR].stop()
        await add_listener(client, "sam", supervisor=True)
        await login(client, "sam")
        # the request has begun (its first close about to take Alex's lock): Yan writes meanwhile
        proxy.hold_before(script_text("lock_read"), alex.encode(), meanwhile=yan_writes)
        answer = await close(client, {"ids": [alex, yan]})
        goodbye = await ended(client, yan)
    assert (proxy.held, proxy.failures) == (1, []), proxy.failures
    assert wrote == [True], wrote
    assert answer == {"closed": 1, "ending": 0, "flagged_kept": 1, "flagged_kept_ids": [yan]}, answer
    after = await redis_store.get_conversation(yan)
    assert after is not None and after.status is Status.QUEUED and after.flag is not None, after
    entries = (await redis_store.transcript(yan))[since:]
    assert [e.text for e in entries if e.text == goodbye] == [], [e.text for e in entries]  # told nothing by it
    closed = await redis_store.get_conversation(alex)
    assert closed is not None and (closed.status, closed.outcome) == (Status.CLOSED, "closed_in_bulk"), closed


async def test_a_sextortion_hand_off_without_a_flag_is_kept_and_badged_by_its_interrupt(
    sam: Client, graph: FakeGraphAPI
) -> None:
    """A blackmail going on as the first message: the ``sextortion`` interrupt (no risk class) hands off at "high" with
    its advice and Pharos; no word is flagged (``Conversation.flag`` is None). At risk all the same (since 2026-12-05;
    before, the bulk close closed it with the troll's flood): shown flagged with the interrupt (never a word), kept
    and told nothing; closed with ``include_flagged``, the goodbye once."""
    conversation_id = await writes(sam, "psid-sextortion", "il me demande 200€ sinon il envoie mes photos à tous")
    conversation = await sam.app[STORE].get_conversation(conversation_id)
    assert conversation is not None and conversation.status is Status.QUEUED, conversation
    assert (conversation.priority, conversation.flag) == (Priority.HIGH, None)
    [row] = (await (await sam.get("/api/floods")).json())["conversations"]
    assert (row["flagged"], row["risk"], row["priority"]) == (True, "sextortion", "high"), row
    await outbox_drained(sam)
    before = len(told(graph, "psid-sextortion"))

    kept = await close(sam, {"ids": [conversation_id]})
    await outbox_drained(sam)
    assert (kept["closed"], kept["flagged_kept"], kept["flagged_kept_ids"]) == (0, 1, [conversation_id]), kept
    assert told(graph, "psid-sextortion")[before:] == []
    closed = await close(sam, {"ids": [conversation_id], "include_flagged": True})
    await outbox_drained(sam)
    assert (closed["closed"], closed["flagged_kept"]) == (1, 0), closed
    assert told(graph, "psid-sextortion")[before:] == [await ended(sam, conversation_id)]


async def test_a_sextortion_written_while_waiting_is_kept(sam: Client, graph: FakeGraphAPI) -> None:
    """Handed off at "normal" (cyberharassment), then the blackmail written while waiting: the priority raised, the
    advice and Pharos given, no flag. Kept by the bulk close, badged ``sextortion``."""
    conversation_id = await writes(sam, "psid-waiting", "bonjour", "non", "français", "15", "pour moi",
                                   "harcèlement", "on se moque de moi sur un groupe")  # fmt: skip
    conversation = await sam.app[STORE].get_conversation(conversation_id)
    assert conversation is not None and conversation.status is Status.QUEUED, conversation
    assert not conversation.at_risk, conversation
    await writes(sam, "psid-waiting", "il me demande 200€ sinon il envoie mes photos à tous")
    conversation = await sam.app[STORE].get_conversation(conversation_id)
    assert conversation is not None and (conversation.priority, conversation.flag) == (Priority.HIGH, None)
    [row] = (await (await sam.get("/api/floods")).json())["conversations"]
    assert (row["flagged"], row["risk"]) == (True, "sextortion"), row

    kept = await close(sam, {"ids": [conversation_id]})
    assert (kept["closed"], kept["flagged_kept"]) == (0, 1), kept


async def test_unsure_about_danger_is_kept_and_badged_by_its_rule(sam: Client, graph: FakeGraphAPI) -> None:
    """A "je ne sais pas" to the first question (in danger right now?): the ``unsure_danger`` rule hands off at
    "high", no flag. At risk all the same (since 2026-12-05; before, closed with the flood): shown flagged with the
    rule, kept and told nothing; closed with ``include_flagged``, the goodbye once."""
    conversation_id = await writes(sam, "psid-unsure", "bonjour", "je ne sais pas", "français", "14", "pour moi",
                                   "harcèlement scolaire", "on se moque de moi sur un groupe")  # fmt: skip
    conversation = await sam.app[STORE].get_conversation(conversation_id)
    assert conversation is not None and conversation.status is Status.QUEUED, conversation
    assert (conversation.priority, conversation.flag, conversation.route) == (Priority.HIGH, None, "unsure_danger")
    [row] = (await (await sam.get("/api/floods")).json())["conversations"]
    assert (row["flagged"], row["risk"], row["priority"]) == (True, "unsure_danger", "high"), row
    await outbox_drained(sam)
    before = len(told(graph, "psid-unsure"))

    kept = await close(sam, {"ids": [conversation_id]})
    await outbox_drained(sam)
    assert (kept["closed"], kept["flagged_kept"]) == (0, 1), kept
    assert told(graph, "psid-unsure")[before:] == []
    closed = await close(sam, {"ids": [conversation_id], "include_flagged": True})
    await outbox_drained(sam)
    assert (closed["closed"], closed["flagged_kept"]) == (1, 0), closed
    assert told(graph, "psid-unsure")[before:] == [await ended(sam, conversation_id)]


async def test_asking_for_a_human_or_not_understood_is_not_kept(sam: Client, graph: FakeGraphAPI) -> None:
    """What a troll's flood is made of: "un humain" (an interrupt that refers nobody, "high") and answers the bot
    never understood (the fallback, "high"): not at risk, closed by the bulk close."""
    human = await writes(sam, "psid-human", "je veux un humain")
    lost = await writes(sam, "psid-lost", "bonjour", "zzz", "zzz", "zzz")
    for conversation_id in (human, lost):
        conversation = await sam.app[STORE].get_conversation(conversation_id)
        assert conversation is not None and conversation.status is Status.QUEUED, conversation
        assert conversation.priority is Priority.HIGH and not conversation.at_risk, conversation
    closed = await close(sam, {"ids": [human, lost]})
    assert (closed["closed"], closed["flagged_kept"]) == (2, 0), closed


async def test_a_floods_rows_are_made_with_the_loop_turning_between_parts() -> None:
    """The flood view is read during a flood: 20,000 open conversations of 40 client networks (each row its network's
    label and count, its wait) made in one block held the loop 0.16 s on this 2-core machine until 2026-12-06,
    answering no young person meanwhile. Now a part at a time (the store's reads are in parts already:
    tests/store/test_contract_big_reads.py)."""
    now = datetime(2026, 3, 10, 13, 0, tzinfo=UTC)
    open_ = []
    for n in range(20_000):
        conversation = Conversation.start(ChannelName.WEBCHAT, f"token-{n}", now - timedelta(seconds=n))
        conversation.client = f"network-{n % 40}"
        open_.append(conversation)
    rows, longest, took = await longest_hold(flood_rows(open_, now))
    assert len(rows) == 20_000 and rows[0]["same_client"] == 500 and rows[0]["client"] == "client 1"
    assert longest < took / 2, (longest, took)
