"""Every route of the running app, fuzzed: as a logged-in supervisor (the widest rights) and as nobody, any text in
the path's parameters, any query, any JSON (or no JSON at all) in the body. Whatever comes, the answer is the
route's own or a clear 4xx, never a 5xx (no store is down here) and never an ERROR line in the log (a handled refusal
is no error). Four 500/503s were found one route at a time on 2026-12-06 (a list as a block's duration, "²" as a
file number, ``to=9999-12-31`` on the figures, a Telegram update without its chat); this is the general net.

The signed webhooks and the web chat's socket have their own property tests (tests/channels, test_webchat_hostile):
here they get unsigned bodies only, which they refuse (401/403/400). ``ROUTES_FUZZ_EXAMPLES`` raises the examples
per group for a longer local run (e.g. ``ROUTES_FUZZ_EXAMPLES=3000``)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from yarl import URL

from gateway.settings import Settings
from gateway.testing import ACCOUNT_SID, FakeGraphAPI, FakeTelegramAPI, FakeTwilioAPI
from tests.conftest import PASSWORD, TWILIO_TOKEN, AppFactory, add_listener, login
from tests.hostile_json import json_values
from tests.test_webchat import WALK_TO_QUEUE, hello, receive_until, say

Client = TestClient[web.Request, web.Application]
EXAMPLES = int(os.environ.get("ROUTES_FUZZ_EXAMPLES", "60"))
PARTNER_KEY = "partner-key-of-at-least-24-chars"

# What the handlers read: the query's keys, the bodies' fields (any route, any of them: a field a route does not
# read is ignored, one it reads gets every JSON kind).
QUERY_KEYS = ["from", "to", "via", "watch", "partner", "limit", "since", "before", "cursor", "page", "q", "status",
              "hub.mode", "hub.verify_token", "hub.challenge", "code", "lang", "language", "id"]  # fmt: skip
FIELDS = ["text", "id", "partner", "queue", "outcome", "notes", "duration", "reason", "platform", "category",
          "locations", "description", "evidence", "consent", "shared", "summary", "ids", "include_flagged",
          "current", "new", "name", "password", "status", "code", "language", "url", "note", "token", "type",
          "filed", "reference", "seen", "message", "flow", "confirm", "answer"]  # fmt: skip
WORDS = ["24h", "30d", "permanent", "listeners", "cyberbullying", "116006", "119", "pharos", "fr", "en", "sam",
         "anne", "1", "0", "-1", "true", "null", "nan", "inf", "-inf", "1e999", "2026-03-10", "9999-12-31",
         "0001-01-01", "2026-03-10T14:00:00+14:00", "2026-02-30", "²", "٣", "9" * 5000, "..", "%00", "\x00",
         "😀", "a" * 3000, " ", "sent", "filed", "removed", "refused", "done", "https://example.org/x", "instagram",
         "snapchat", "harassment", "sextortion", "child_abuse_material", "https://www.instagram.com/p/x"]  # fmt: skip
CHAT_TOKEN = "{chat-token}"  # in a body: replaced by the young person's token when sent (the quick exit's)
HUGE = [10**400, -(10**400), 2**63, -(2**63) - 1, 1e308, -1e308, 5e-324]


@dataclass
class Fuzzed:
    client: Client
    anonymous: aiohttp.ClientSession
    conversation_id: str
    chat_token: str  # the young person's web chat token (X-Chat-Token, the quick exit's body)
    routes: list[tuple[str, str]]  # (method, path template), the static ones as "{prefix}/{filename}"


def route_table(app: web.Application) -> list[tuple[str, str]]:
    found = set()
    for route in app.router.routes():
        resource = route.resource
        if resource is None or route.method == "*":
            continue
        template = resource.canonical
        if isinstance(resource, web.StaticResource):
            template += "/{filename}"
        found.add((route.method, template))
    return sorted(found)


@pytest.fixture
async def fuzzed(make_client: AppFactory, settings: Settings) -> AsyncIterator[Fuzzed]:
    """The app with every channel on (each on its fake provider), no brake a fuzzer would hit before a handler
    (writes, logins), a supervisor logged in and a young person waiting in the web chat."""
    async with (
        FakeGraphAPI() as graph,
        FakeTelegramAPI() as telegram,
        FakeTwilioAPI(ACCOUNT_SID, TWILIO_TOKEN) as twilio,
    ):
        client = await make_client(settings.replace(
            limit_listener_writes="100000/minute", limit_typing_per_conversation="100000/minute",
            login_free_failures=100000, login_lock_failures=100000, partner_keys=f"116006={PARTNER_KEY}",
            telegram_bot_token="123:fake-token", telegram_webhook_secret="webhook_secret-123",
            telegram_api_url=telegram.url, messenger_app_secret="messenger-app-secret",
            messenger_page_access_token="page-token", messenger_verify_token="verify", messenger_api_url=graph.url,
            twilio_account_sid=ACCOUNT_SID, twilio_auth_token=TWILIO_TOKEN, twilio_api_url=twilio.url,
            twilio_whatsapp_from="whatsapp:+33100000000",
        ))  # fmt: skip
        await add_listener(client, "anne")
        await add_listener(client, "sam", supervisor=True)
        async with client.ws_connect("/chat/ws") as ws:
            chat_token = (await hello(ws))["token"]
            frames = []
            for number, answer in enumerate(WALK_TO_QUEUE):
                frames += await say(ws, f"m{number}", answer)
            if not any(f["type"] == "status" for f in frames):
                frames += await receive_until(ws, lambda f: f["type"] == "status")
            await login(client, "sam")
            conversation_id = (await (await client.get("/api/queue")).json())["waiting"][0]["id"]
            routes = [r for r in route_table(client.app) if r != ("GET", "/chat/ws")]  # the socket: elsewhere
            async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as anonymous:
                yield Fuzzed(client, anonymous, conversation_id, chat_token, routes)


def path_texts(conversation_id: str) -> st.SearchStrategy[str]:
    return st.sampled_from([conversation_id, "c" + "0" * 31, *WORDS]) | st.text(max_size=40)


def header_sets(fuzzed: Fuzzed) -> st.SearchStrategy[dict[str, str]]:
    """The headers some routes read before their body: the chat's token and upload id, a partner's key, Origin."""
    own = str(fuzzed.client.make_url("/")).rstrip("/")
    printable = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x2FF, exclude_characters="\x7f"), max_size=30)
    values = {
        "X-Chat-Token": st.sampled_from([fuzzed.chat_token, "x" * 40]) | printable,
        "X-Upload-Id": st.sampled_from(["u1", "²", "a" * 65]) | printable,
        "Authorization": st.sampled_from([f"Bearer {PARTNER_KEY}", "Bearer ", "Bearer é"]) | printable,
        "Origin": st.sampled_from([own, "null", "https://evil.example"]) | printable,
        "X-Telegram-Bot-Api-Secret-Token": st.sampled_from(["webhook_secret-123", "é"]) | printable,
    }
    return st.fixed_dictionaries({}, optional=values)


def queries() -> st.SearchStrategy[list[tuple[str, str]]]:
    values = st.sampled_from(WORDS) | st.text(max_size=30) | st.integers().map(str)
    return st.lists(st.tuples(st.sampled_from(QUERY_KEYS) | st.text(max_size=10), values), max_size=4)


JSON_ANY: st.SearchStrategy[Any] = json_values | st.sampled_from(HUGE) | st.sampled_from(WORDS)
FIELD_VALUES: st.SearchStrategy[Any] = (
    st.sampled_from([*WORDS, CHAT_TOKEN])
    | st.sampled_from(HUGE)
    | json_values
    | st.lists(st.sampled_from(WORDS), max_size=3)
)
BODIES: st.SearchStrategy[tuple[str | None, bytes]] = st.one_of(
    st.dictionaries(st.sampled_from(FIELDS), FIELD_VALUES, max_size=6).map(
        lambda body: ("application/json", json.dumps(body).encode())
    ),
    JSON_ANY.map(lambda body: ("application/json", json.dumps(body).encode())),
    st.tuples(
        st.sampled_from(
            [
                "application/json",
                "text/plain",
                "application/x-www-form-urlencoded",
                "multipart/form-data",
                "multipart/form-data; boundary=x",
                None,
            ]
        ),
        st.sampled_from(
            [
                b"",
                b"NaN",
                b'{"text": NaN}',
                b'{"duration": Infinity}',
                b"\xff\xfe",
                b'{"a":' * 200,
                b'--x\r\nContent-Disposition: form-data; name="file"\r\n\r\nzz\r\n--x--\r\n',
            ]
        )
        | st.binary(max_size=64),
    ),
)


async def ask(
    fuzzed: Fuzzed, method: str, path: str, body: tuple[str | None, bytes], extra: dict[str, str], as_supervisor: bool
) -> int:
    client = fuzzed.client
    session = client.session if as_supervisor else fuzzed.anonymous
    url = URL(str(client.make_url("/")).rstrip("/") + path, encoded=True)
    content_type, data = body
    headers = {**extra, **({"Content-Type": content_type} if content_type else {})}
    data = data.replace(CHAT_TOKEN.encode(), fuzzed.chat_token.encode())
    send = data if method in ("POST", "DELETE", "PUT", "PATCH") else None
    async with session.request(method, url, data=send, headers=headers, allow_redirects=False) as response:
        if response.content_type != "text/event-stream":  # the live events: a stream that does not end
            await response.read()
        return response.status


async def still_logged_in(fuzzed: Fuzzed) -> None:
    """The fuzzer may log the supervisor out (DELETE /api/session, a logout everywhere): back in for the next."""
    if (await fuzzed.client.get("/api/me")).status == 401:
        await login(fuzzed.client, "sam")


def in_group(group: str, template: str) -> bool:
    if group == "conversation":
        return template.startswith("/api/conversations/")
    if group == "supervision":
        return template.startswith(("/api/supervision", "/api/stats", "/api/blocks", "/api/floods", "/api/audit",
                                    "/api/flow", "/api/admin", "/api/listeners", "/metrics"))  # fmt: skip
    if group == "notices":
        return template.startswith(("/api/notices", "/api/referrals", "/api/casework", "/api/partners"))
    covered = ("/api/conversations/", "/api/supervision", "/api/stats", "/api/blocks", "/api/floods", "/api/audit",
               "/api/flow", "/api/admin", "/api/listeners", "/metrics", "/api/notices", "/api/referrals",
               "/api/casework", "/api/partners")  # fmt: skip
    return not template.startswith(covered)  # the rest: sessions, pages, the chat's, webhooks, health


def fill(template: str, texts: list[str]) -> str:
    """``template`` with each ``{param}`` (or ``{param:regex}``) replaced by the next of ``texts``, percent-encoded."""
    out, rest = [], template
    for text in texts:
        start = rest.find("{")
        if start < 0:
            break
        out.append(rest[:start])
        out.append(quote(text, safe=""))
        rest = rest[rest.index("}", start) + 1 :]
    return "".join(out) + rest


async def fuzz_one(fuzzed: Fuzzed, caplog: pytest.LogCaptureFixture, data: st.DataObject, group: str) -> None:
    method, template = data.draw(st.sampled_from([r for r in fuzzed.routes if in_group(group, r[1])]))
    texts = [data.draw(path_texts(fuzzed.conversation_id)) for _ in range(template.count("{"))]
    query = data.draw(queries())
    body = data.draw(BODIES)
    extra = data.draw(header_sets(fuzzed))
    as_supervisor = data.draw(st.booleans())
    path = fill(template, texts) + ("?" + urlencode(query) if query else "")
    # a request line past aiohttp's 8190 bytes is aiohttp's own 400, which it logs as an ERROR with a traceback
    # (aiohttp.server, before any handler of the gateway): left out here, the fuzzer is about the gateway's handlers
    assume(len(path) < 8000)
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        status = await ask(fuzzed, method, path, body, extra, as_supervisor)
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    await still_logged_in(fuzzed)
    assert status < 500 and not errors, (
        method,
        path[:300],
        body[0],
        body[1][:300],
        extra,
        as_supervisor,
        status,
        errors,
    )


@pytest.mark.parametrize("group", ["conversation", "supervision", "notices", "the rest"])
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
async def test_any_request_on_any_route_is_never_a_5xx_nor_an_error_line(
    fuzzed: Fuzzed, caplog: pytest.LogCaptureFixture, data: st.DataObject, group: str
) -> None:
    await fuzz_one(fuzzed, caplog, data, group)


def test_the_groups_cover_every_route_but_the_socket() -> None:
    """A route added later lands in one group at least (the last takes what the others do not)."""
    groups = ["conversation", "supervision", "notices", "the rest"]
    for template in ["/api/conversations/{id}/x", "/api/stats", "/api/notices", "/new/route"]:
        assert any(in_group(g, template) for g in groups)


def test_the_password_is_no_fuzzed_word() -> None:
    """The fuzzer never changes the supervisor's password by chance (it would log the next examples out)."""
    assert PASSWORD not in WORDS


@pytest.mark.parametrize("name", ["9" * 300, "a" * 5000, "x/" + "é" * 200])
@pytest.mark.parametrize("prefix", ["/chat/static", "/console/static"])
async def test_a_static_file_name_too_long_for_the_system_is_404(
    client: Client, caplog: pytest.LogCaptureFixture, prefix: str, name: str
) -> None:
    """Found by the fuzzer above (a longer run): before, 503 "try again shortly" and an ERROR line (``OSError``:
    file name too long, from the file system's stat) for anyone on the internet asking it."""
    with caplog.at_level(logging.ERROR):
        response = await client.get(f"{prefix}/{quote(name)}")
    assert response.status == 404, await response.text()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
