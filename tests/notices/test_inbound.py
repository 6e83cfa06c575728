"""Partners' inbound referrals: an authenticated request queues a web chat conversation with the partner's
summary; its one-time link opens that conversation once."""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any, cast

import pytest
import redis.asyncio
from aiohttp.test_utils import TestClient

from gateway.app import STORE
from gateway.conversation import Conversation, Status
from gateway.crypto import DataKeys
from gateway.errors import StoreError
from gateway.notices.record import Referral, ReferralStatus
from gateway.notices.referrals import Referrals
from gateway.settings import Settings
from gateway.store import Author, ClaimState, Store, open_store
from gateway.store import redis_keys as K
from tests.conftest import AppFactory, Clock, add_listener, login
from tests.console.test_handback_crash import instance, redis_store
from tests.cutting_proxy import cutting_proxy
from tests.store.conftest import STORES, on_store, redis_url
from tests.test_webchat import hello, say

__all__ = ["redis_store", "redis_url"]  # fixtures used below
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


@pytest.fixture(params=STORES)
def either(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    return on_store(request, settings.replace(partner_keys=f"116006={KEY}"))


async def test_the_page_that_exchanged_a_link_is_answered_again_for_a_while_and_nobody_else(
    make_client: AppFactory, either: Settings, clock: Clock
) -> None:
    """The answer of a link's exchange lost (the connection dropped as the server answered): the same page (its key)
    asking again gets the same session for ``ASKED_AGAIN``; before, "already used" (410) and the conversation the
    partner opened was out of reach. Another key, no key, or later: 410, as before. A second press while the first
    exchange runs: 503, try again (not "already used"). The page's key is never stored as it came."""
    app = await make_client(either)
    created = await app.post("/api/partners/116006/referrals", json={"summary": "Jeune d'accord."},
                             headers={"Authorization": "Bearer " + KEY})  # fmt: skip
    code = (await created.json())["link"].split("#", 1)[1]
    page, other = "p" * 48, "q" * 48
    first = await app.post("/chat/referral", json={"code": code, "key": page})
    assert first.status == 200
    token = (await first.json())["token"]
    again = await app.post("/chat/referral", json={"code": code, "key": page})
    assert again.status == 200 and (await again.json())["token"] == token
    assert (await app.post("/chat/referral", json={"code": code, "key": other})).status == 410
    assert (await app.post("/chat/referral", json={"code": code})).status == 410
    assert (await app.post("/chat/referral", json={"code": code, "key": "p" * 10})).status == 410  # not a key
    store = app.app[STORE]
    (referral,) = await store.list_referrals()
    assert referral.opened_by and page not in json.dumps(referral.to_dict())
    clock.advance(minutes=11)
    assert (await app.post("/chat/referral", json={"code": code, "key": page})).status == 410

    created = await app.post("/api/partners/116006/referrals", json={"summary": "Une autre."},
                             headers={"Authorization": "Bearer " + KEY})  # fmt: skip
    code = (await created.json())["link"].split("#", 1)[1]
    referral_id = "in-" + hashlib.sha256(code.encode()).hexdigest()[:40]
    assert await store.claim("referral-link:" + referral_id, "an exchange in progress", 30.0) == ClaimState.CLAIMED
    busy = await app.post("/chat/referral", json={"code": code, "key": page})
    assert busy.status == 503 and busy.headers["Retry-After"] == "1"


@pytest.mark.redis
async def test_a_listeners_move_as_the_link_is_exchanged_is_kept_and_so_is_the_page(
    redis_store: Store, redis_url: str, clock: Clock, settings: Settings, make_client: AppFactory
) -> None:
    """The exchange writes the page's key on the referral (read, then written whole), and a listener's status move
    does the same: Anne marks the referral "taken up" on another instance while the young person's press is between
    its read and its write (held at the wire, ``tests/cutting_proxy.py``: nothing of the gateway patched). Before
    (a review, 2026-12-06), the exchange wrote back the status it had read: Anne's move was lost, the console showing
    it "sent" again. Both writes read the referral under its lock now: the move and the page's key are both kept."""
    dispatcher, _ = instance(redis_store, clock)
    referrals = Referrals(dispatcher, cast(Any, redis_store), dispatcher.flows, None, clock=clock)
    async with cutting_proxy(redis_url) as proxy:
        app = await make_client(settings.replace(store=proxy.url, partner_keys=f"116006={KEY}"))
        created = await app.post("/api/partners/116006/referrals", json={"summary": "Jeune d'accord."},
                                 headers={"Authorization": "Bearer " + KEY})  # fmt: skip
        code = (await created.json())["link"].split("#", 1)[1]
        (referral,) = await redis_store.list_referrals()
        moves: list[asyncio.Task[Referral]] = []
        raw = redis.asyncio.Redis.from_url(redis_url)

        async def anne_moves() -> None:  # elsewhere: the other instance, on its own connection
            moves.append(asyncio.create_task(referrals.update(referral.id, "anne", "taken_up")))
            for _ in range(3000):  # done, or waiting for the referral's lock the exchange holds (30 s at most)
                if moves[0].done() or await raw.exists(K.lock("referral:" + referral.id)):
                    return
                await asyncio.sleep(0.01)

        proxy.hold_before(b"ZADD", b"referrals", referral.id.encode(), meanwhile=anne_moves)
        claimed = await app.post("/chat/referral", json={"code": code, "key": "p" * 48})
        await asyncio.wait_for(moves[0], 30)
        await raw.aclose()
    assert (proxy.held, proxy.failures, claimed.status) == (1, [], 200), proxy.failures
    after = await redis_store.get_referral(referral.id)
    assert after is not None and after.status is ReferralStatus.TAKEN_UP, after
    assert after.opened_by and after.opened_at is not None, after


async def test_a_partner_referral_sent_again_under_its_idempotency_key_is_answered_what_the_first_made(
    make_client: AppFactory, settings: Settings
) -> None:
    """A partner's referral sent again with the same ``Idempotency-Key`` (its answer lost, or a 503 while the
    replicas were behind) is answered 200 with the first one's link and pseudonym: one conversation waiting, not
    two. Until 2026-12-07 there was no such key: each retry queued another conversation, the first one's link never
    given. Another key, or the same key of another partner, is another referral; the same key with another summary is
    refused (422); a key that is not one (too long, control characters) 400."""
    app = await make_client(settings.replace(partner_keys=f"116006={KEY}, 3018={'t' * 24}"))
    path = "/api/partners/116006/referrals"
    body = {"summary": "Jeune de 15 ans, harcelée, d'accord pour être contactée.", "language": "fr"}
    auth = {"Authorization": "Bearer " + KEY, "Idempotency-Key": "3f0c6a1e-referral-0001"}
    first = await app.post(path, json=body, headers=auth)
    assert first.status == 201, await first.text()
    again = await app.post(path, json=body, headers=auth)
    assert again.status == 200, await again.text()  # before 2026-12-07: 201, a second conversation
    assert await again.json() == await first.json()  # the same link, the same pseudonym
    store = app.app[STORE]
    assert len(await store.waiting()) == 1
    both = await asyncio.gather(*(app.post(path, json=body, headers={**auth, "Idempotency-Key": "concurrent-2"})
                                  for _ in range(2)))  # fmt: skip
    assert sorted(r.status for r in both) == [200, 201]  # sent twice at once: one made, one answered it
    assert len({(await r.json())["link"] for r in both}) == 1
    assert len(await store.waiting()) == 2
    other = await app.post(path, json=body, headers={**auth, "Idempotency-Key": "3f0c6a1e-referral-0002"})
    assert other.status == 201 and (await other.json())["link"] != (await first.json())["link"]
    unkeyed = [await app.post(path, json=body, headers={"Authorization": "Bearer " + KEY}) for _ in range(2)]
    assert [r.status for r in unkeyed] == [201, 201]  # no key: each request its own referral, as before
    changed = await app.post(path, json={**body, "summary": "Un autre jeune."}, headers=auth)
    assert changed.status == 422 and (await changed.json())["error"] == "idempotency_key_reused"
    for bad in ("x" * 256, "a\tb", ""):
        refused = await app.post(path, json=body, headers={**auth, "Idempotency-Key": bad})
        assert refused.status == 400, (bad, await refused.text())
    assert len(await store.waiting()) == 5


async def test_an_idempotency_key_is_kept_24_hours(make_client: AppFactory, settings: Settings, clock: Clock) -> None:
    """Past 24 hours the key is forgotten (as Stripe's): a request under it is a new referral, its own link."""
    app = await make_client(settings.replace(partner_keys=f"116006={KEY}"))
    path, body = "/api/partners/116006/referrals", {"summary": "Jeune de 15 ans, harcelée.", "language": "fr"}
    headers = {"Authorization": "Bearer " + KEY, "Idempotency-Key": "kept-a-day-0001"}
    first = await app.post(path, json=body, headers=headers)
    clock.advance(hours=23, minutes=59)
    assert (await app.post(path, json=body, headers=headers)).status == 200
    clock.advance(minutes=2)
    later = await app.post(path, json=body, headers=headers)
    assert (first.status, later.status) == (201, 201)
    assert (await later.json())["link"] != (await first.json())["link"]
    assert len(await app.app[STORE].waiting()) == 2


class ReferralRefusedOnce:
    """The real store, whose first ``put_referral`` fails (a Redis timeout, the instance dying): after the referral's
    conversation was queued, before its record (``InboundReferrals._queue``)."""

    def __init__(self, store: Store) -> None:
        self.real, self.refused = store, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    async def put_referral(self, referral: Referral) -> None:
        if not self.refused:
            self.refused += 1
            raise StoreError("the store went away")
        await self.real.put_referral(referral)


async def test_a_referral_cut_before_its_record_and_sent_again_under_its_key_queues_one_conversation(
    make_client: AppFactory, either: Settings
) -> None:
    """The first request queues its conversation, then its record fails (503); the partner sends it again under the
    same ``Idempotency-Key``: one conversation waits, the one the first request queued, with one note, told its
    place once, and the link given opens it. Before: the retry found no record and queued a second conversation, the
    first left waiting with no link (2 waiting)."""
    store = ReferralRefusedOnce(await open_store(either.store, keys=DataKeys.from_settings(either)))
    app = await make_client(either, store=cast(Store, store))  # the app closes it
    path, body = "/api/partners/116006/referrals", {"summary": "Jeune de 15 ans, d'accord.", "language": "fr"}
    headers = {"Authorization": "Bearer " + KEY, "Idempotency-Key": "cut-before-record-0001"}
    first = await app.post(path, json=body, headers=headers)
    assert first.status == 503 and store.refused == 1, await first.text()
    again = await app.post(path, json=body, headers=headers)
    assert again.status == 201, await again.text()
    answer = await again.json()
    waiting = await store.waiting()
    assert len(waiting) == 1, f"{len(waiting)} conversations waiting for one referral"
    conversation_id = waiting[0].conversation_id
    conversation = await store.get_conversation(conversation_id)
    assert conversation is not None and conversation.pseudonym == answer["pseudonym"]
    transcript = await store.transcript(conversation_id)
    assert len([e for e in transcript if e.author is Author.NOTE]) == 1
    assert len([e for e in transcript if e.author is Author.BOT]) == 1, [e.author for e in transcript]  # its place
    claimed = await app.post("/chat/referral", json={"code": answer["link"].split("#", 1)[1]})
    assert claimed.status == 200 and (await claimed.json())["token"] == conversation.sender
    assert (await app.post(path, json=body, headers=headers)).status == 200  # made: answered what it made


class RecordRefusedOnce:
    """The real store, whose first save of a queued conversation fails (a Redis timeout, the instance dying): after
    the referral's conversation was enqueued, before its record said so (``InboundReferrals._queue``)."""

    def __init__(self, store: Store) -> None:
        self.real, self.refused = store, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    async def save_conversation(self, conversation: Conversation, **options: Any) -> None:
        if conversation.status == Status.QUEUED and not self.refused:
            self.refused += 1
            raise StoreError("the store went away")
        await self.real.save_conversation(conversation, **options)


async def test_a_referral_cut_between_its_queue_entry_and_its_record_queues_one_conversation(
    make_client: AppFactory, either: Settings
) -> None:
    """The first request enqueues its conversation, then the conversation's record fails (503: the entry waiting, the
    record still with the bot); the partner sends it again under the same ``Idempotency-Key``: one entry waits, one
    note, the place told once, and the link opens it."""
    store = RecordRefusedOnce(await open_store(either.store, keys=DataKeys.from_settings(either)))
    app = await make_client(either, store=cast(Store, store))  # the app closes it
    path, body = "/api/partners/116006/referrals", {"summary": "Jeune de 15 ans, d'accord.", "language": "fr"}
    headers = {"Authorization": "Bearer " + KEY, "Idempotency-Key": "cut-before-conversation-01"}
    first = await app.post(path, json=body, headers=headers)
    assert first.status == 503 and store.refused == 1, await first.text()
    again = await app.post(path, json=body, headers=headers)
    assert again.status == 201, await again.text()
    answer = await again.json()
    waiting = await store.waiting()
    assert len(waiting) == 1, f"{len(waiting)} queue entries for one referral"
    conversation = await store.get_conversation(waiting[0].conversation_id)
    assert conversation is not None and conversation.status == Status.QUEUED
    assert conversation.pseudonym == answer["pseudonym"]
    transcript = await store.transcript(conversation.id)
    assert len([e for e in transcript if e.author is Author.NOTE]) == 1
    assert len([e for e in transcript if e.author is Author.BOT]) == 1, [e.author for e in transcript]  # its place
    claimed = await app.post("/chat/referral", json={"code": answer["link"].split("#", 1)[1]})
    assert claimed.status == 200 and (await claimed.json())["token"] == conversation.sender


class AuditRefusedOnce:
    """The real store, whose first ``referral_received`` line fails (a Redis timeout, the instance dying): after the
    referral's record was written, before its line (``InboundReferrals._recorded``)."""

    def __init__(self, store: Store) -> None:
        self.real, self.refused = store, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def _refuse(self, entry: Any) -> None:
        if entry.action == "referral_received" and not self.refused:
            self.refused += 1
            raise StoreError("the store went away")

    async def audit(self, entry: Any) -> None:
        self._refuse(entry)
        await self.real.audit(entry)

    async def audit_once(self, entry: Any, key: str, kept_seconds: int) -> bool:  # since 2026-12-07
        self._refuse(entry)
        return bool(await self.real.audit_once(entry, key, kept_seconds))


async def test_a_referral_cut_before_its_audit_line_has_it_written_once_by_the_retries(
    make_client: AppFactory, either: Settings
) -> None:
    """The first request writes its record, then its ``referral_received`` line fails (503); the partner sends it
    again under the same ``Idempotency-Key``, twice at once, then once more: each answered 200 with the first one's
    link, and the line written once. Until 2026-12-07 the retry answered 200 from the record and wrote no line: the
    supervisors' audit never said the partner's referral came in (0 lines)."""
    store = AuditRefusedOnce(await open_store(either.store, keys=DataKeys.from_settings(either)))
    app = await make_client(either, store=cast(Store, store))  # the app closes it
    path, body = "/api/partners/116006/referrals", {"summary": "Jeune de 15 ans, d'accord.", "language": "fr"}
    headers = {"Authorization": "Bearer " + KEY, "Idempotency-Key": "cut-before-audit-0001"}
    first = await app.post(path, json=body, headers=headers)
    assert first.status == 503 and store.refused == 1, await first.text()
    both = await asyncio.gather(*(app.post(path, json=body, headers=headers) for _ in range(2)))
    again = await app.post(path, json=body, headers=headers)
    assert [r.status for r in [*both, again]] == [200, 200, 200], [await r.text() for r in [*both, again]]
    assert len({(await r.json())["link"] for r in [*both, again]}) == 1
    lines = [e for e in await store.audit_log() if e.action == "referral_received"]
    assert len(lines) == 1, f"{len(lines)} referral_received lines for one referral"
    assert lines[0].subject == (await again.json())["pseudonym"] and lines[0].actor == "partner:116006"
    assert len(await store.waiting()) == 1
