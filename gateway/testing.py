"""Fake provider APIs and webhook helpers, for the gateway's tests and benchmarks. Never imported by the product.

Fakes: :class:`FakeGraphAPI` (Messenger Send API), :class:`FakeTwilioAPI` (Twilio's Messages resource and media)
and :class:`FakeTelegramAPI` (the Bot API as python-telegram-bot calls it). Each is a small aiohttp app on
127.0.0.1 with a free port::

    async with FakeGraphAPI() as graph:
        settings = Settings(messenger_api_url=graph.url, ...)
        ...
        assert graph.requests_to("messages")[0].body["messaging_type"] == "RESPONSE"

Every request is recorded as a :class:`RecordedRequest` (method, path, query, headers, parsed body, raw bytes).
``down()`` and ``up()`` make an outage of any length (every request answers 503 meanwhile).
``rate_limit(seconds)`` answers every send 429 (or the vendor's rate limit given) for that long, its retry_after
the seconds left; ``limited`` counts those answers.
``fail_next(500, 429, Failure(400, code=63016))`` scripts the next answers of an endpoint (the last segment of
its path: ``messages``, ``Messages.json``, ``sendMessage``…) in the vendor's own error shape; a ``None`` among
them answers its request normally (``fail_next(None, 500)``: the first part of a split message passes, the second
fails). ``serve_media`` (and ``FakeTelegramAPI.add_file``) hosts files to download.

Webhook helpers build realistic bodies (``messenger_text_event``, ``twilio_form``, ``telegram_update``…) and
sign them the way each platform does (``sign_messenger``, ``sign_twilio``).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime
import email.utils
import hashlib
import hmac
import itertools
import json
import math
import signal
import subprocess
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, urlencode

from aiohttp import web
from twilio.request_validator import RequestValidator

from gateway.crypto import DataKeys
from gateway.settings import Settings
from gateway.store import provider_digests
from gateway.store.redis import RedisStore

PAGE_ID = "106000000000001"
ACCOUNT_SID = "AC" + "0" * 32
WHATSAPP_FROM = "whatsapp:+14155238886"
BOT_TOKEN = "123456789:TEST-token_for-the-fake-bot-api"
DATA_KEY = "dGVzdC1kYXRhLWtleS0wMTIzNDU2Nzg5YWJjZGVmZ2g"  # GATEWAY_DATA_KEY of the tests (32 bytes, base64url)
SECRET_KEY = "test-secret-key-0123456789"  # GATEWAY_SECRET_KEY of the tests: keys the lookups with DATA_KEY


def store_keys(url: str) -> DataKeys:
    """The data keys of a store that a test opens beside its gateways: the tests' GATEWAY_DATA_KEY, as theirs."""
    return DataKeys.from_settings(Settings(store=url, data_key=DATA_KEY, secret_key=SECRET_KEY))


def kept_provider_id(store: object, provider_message_id: str) -> str:
    """A provider id (a reply's parts' ids) as ``store``'s entries give it back: on Redis each id's digest (since
    2026-12-07, ``store.provider_digests``: its entries' heads keep no id), on SQLite the ids whole."""
    return provider_digests(provider_message_id) if isinstance(store, RedisStore) else provider_message_id


def named_by_provider(store: object, provider_ids: Iterable[str]) -> dict[str, str]:
    """Each of ``provider_ids`` (ids a fake provider answered) by the form ``store``'s entries give it back in
    (:func:`kept_provider_id`): an entry read back, named by the id its provider gave."""
    return {kept_provider_id(store, p): p for p in provider_ids}


_ids = itertools.count(1)


def _next_id() -> int:
    return next(_ids)


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request a fake received. ``body`` is the parsed JSON or form (a dict; repeated form keys → lists)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    raw: bytes
    status: int = 0  # what the fake answered
    answer: Any = None  # the JSON it answered with (e.g. the message id it gave)

    @property
    def endpoint(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True, slots=True)
class Failure:
    """A scripted error answer. ``code``/``subcode`` are the vendor's error codes; ``retry_after`` in seconds."""

    status: int
    code: int | None = None
    subcode: int | None = None
    retry_after: int | None = None
    description: str = "scripted failure"
    page: str | None = None  # answered as this HTML page instead of the vendor's error shape (a proxy's, a firewall's)


@dataclass(frozen=True, slots=True)
class _Media:
    data: bytes
    content_type: str
    redirect_to: str | None = None


class FakeAPI:
    """What every fake shares: the server's lifecycle, the request log, scripted failures and hosted files."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._failures: defaultdict[str, deque[Failure | None]] = defaultdict(deque)
        self._media: dict[str, _Media] = {}
        self._arrived = asyncio.Condition()
        self._down = False
        self._flowing = asyncio.Event()  # cleared by stall(): requests then wait, unanswered, until resume()
        self._flowing.set()
        self._stalled_only: bytes | None = None  # stall(only=…): the text a held request's body holds
        self.held = 0  # requests that waited (or wait) in a stall
        self._limit: tuple[float, Failure] | None = None  # rate_limit(): until when (monotonic), and the answer
        self.limited = 0  # requests answered as rate-limited by rate_limit()
        self._runner: web.AppRunner | None = None
        self._port = 0
        self.app = web.Application(client_max_size=50_000_000, middlewares=[self._recorder])
        self.app.router.add_get("/{path:.*}", self._serve_media)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``, without a trailing slash."""
        if self._runner is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return f"http://127.0.0.1:{self._port}"

    async def start(self) -> Self:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self._port = self._runner.addresses[0][1]
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()

    def fail_next(self, *failures: int | Failure | None, endpoint: str | None = None) -> None:
        """Answer the next requests to ``endpoint`` (default: the fake's sending endpoint) with these errors;
        ``None`` answers its request normally."""
        queue = self._failures[endpoint or self.send_endpoint]
        queue.extend(Failure(f) if isinstance(f, int) else f for f in failures)

    def answer_normally(self, endpoint: str | None = None) -> None:
        """Drop the failures :meth:`fail_next` scripted for ``endpoint`` (default: the sending one) and not answered
        yet: its next requests are answered normally (an outage of one endpoint over when the test says)."""
        self._failures.pop(endpoint or self.send_endpoint, None)

    def down(self) -> None:
        """An outage: from now on every request answers 503 in the vendor's shape, until :meth:`up`."""
        self._down = True

    def up(self) -> None:
        self._down = False

    def rate_limit(self, seconds: float, failure: Failure | None = None) -> None:
        """A rate limit: for ``seconds`` from now every request to the sending endpoint answers ``failure`` (429 by
        default, in the vendor's shape), its ``retry_after`` (when it has one) the whole seconds left then, as
        Telegram's ``parameters.retry_after`` and a ``Retry-After`` header say; :attr:`limited` counts them."""
        limited = failure or Failure(429, retry_after=0, description="Too Many Requests")
        self._limit = (time.monotonic() + seconds, limited)

    @property
    def limiting(self) -> bool:
        """Whether :meth:`rate_limit`'s limit holds now (a test waits for its end on this, never on a sleep)."""
        return self._limit is not None and self._limit[0] > time.monotonic()

    def stall(self, only: str | None = None) -> None:
        """A slow provider: from now on every request waits, unanswered, until :meth:`resume`; with ``only``, just
        the requests whose body holds that text (e.g. one recipient's id) wait, the others are answered."""
        self._stalled_only = only.encode() if only is not None else None
        self._flowing.clear()

    def resume(self) -> None:
        self._stalled_only = None
        self._flowing.set()

    async def wait_held(self, count: int = 1, timeout: float = 20.0) -> None:
        """Wait until ``count`` requests are (or were) held by a stall."""
        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(lambda: self.held >= count), timeout)

    def serve_media(self, path: str, data: bytes, content_type: str, redirect_to: str | None = None) -> str:
        """Host ``data`` at ``path`` (or a redirect to ``redirect_to`` there); return its full URL."""
        self._media["/" + path.lstrip("/")] = _Media(data, content_type, redirect_to)
        return self.url + "/" + path.lstrip("/")

    def requests_to(self, endpoint: str) -> list[RecordedRequest]:
        return [request for request in self.requests if request.endpoint == endpoint]

    def accepted(self, endpoint: str | None = None) -> list[RecordedRequest]:
        """The requests to ``endpoint`` (default: the sending one) that the fake answered with a 2xx."""
        return [r for r in self.requests_to(endpoint or self.send_endpoint) if 200 <= r.status < 300]

    async def wait_accepted(
        self, count: int, endpoint: str | None = None, timeout: float = 20.0
    ) -> list[RecordedRequest]:
        """Wait until ``count`` requests to ``endpoint`` were accepted (retries and backoff included)."""

        def enough() -> bool:
            return len(self.accepted(endpoint)) >= count

        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(enough), timeout)
        return self.accepted(endpoint)

    async def wait_for(self, endpoint: str, count: int = 1, timeout: float = 20.0) -> list[RecordedRequest]:
        """Wait until ``endpoint`` received ``count`` requests (for work an adapter does in the background)."""
        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(lambda: len(self.requests_to(endpoint)) >= count), timeout)
        return self.requests_to(endpoint)

    send_endpoint = ""

    def _endpoint_of(self, request: web.Request) -> str:
        """The name ``fail_next`` and ``requests_to`` know a request by: its path's last segment."""
        return request.path.rstrip("/").rsplit("/", 1)[-1]

    def error_response(self, failure: Failure) -> web.Response:
        return web.json_response({"error": failure.description}, status=failure.status)

    def authorised(self, request: web.Request | RecordedRequest) -> bool:
        return True

    @web.middleware
    async def _recorder(self, request: web.Request, handler: Any) -> web.StreamResponse:
        raw = await request.read()
        if not self._flowing.is_set() and (self._stalled_only is None or self._stalled_only in raw):
            async with self._arrived:
                self.held += 1
                self._arrived.notify_all()
            await self._flowing.wait()
        endpoint = self._endpoint_of(request)
        queue = self._failures.get(endpoint)
        failure = queue.popleft() if queue else None
        if self._down:
            failure = Failure(503, description="service unavailable")
        elif self._limit and endpoint == self.send_endpoint and (left := self._limit[0] - time.monotonic()) > 0:
            limited = self._limit[1]
            told = None if limited.retry_after is None else math.ceil(left)
            failure, self.limited = dataclasses.replace(limited, retry_after=told), self.limited + 1
        try:
            response: web.StreamResponse = (
                web.Response(text=failure.page, status=failure.status, content_type="text/html")
                if failure is not None and failure.page is not None
                else self.error_response(failure)
                if failure
                else await handler(request)
            )
        except web.HTTPException as redirect:  # a redirect of a hosted file
            await self._record(request, raw, redirect.status)
            raise
        answer = None
        if isinstance(response, web.Response) and response.content_type == "application/json" and response.body:
            answer = json.loads(response.body)  # type: ignore[arg-type]
        await self._record(request, raw, response.status, answer)
        return response

    async def _record(self, request: web.Request, raw: bytes, status: int, answer: Any = None) -> None:
        recorded = RecordedRequest(
            request.method, request.path, dict(request.query), dict(request.headers), _parse_body(request, raw), raw,
            status, answer,
        )  # fmt: skip
        async with self._arrived:
            self.requests.append(recorded)
            self._arrived.notify_all()

    async def _serve_media(self, request: web.Request) -> web.Response:
        media = self._media.get(request.path)
        if media is None:
            return web.json_response({"error": "no such media"}, status=404)
        if not self.authorised(request):
            return web.json_response({"error": "unauthorised"}, status=401)
        if media.redirect_to:
            raise web.HTTPFound(media.redirect_to)
        return web.Response(body=media.data, content_type=media.content_type)


def _parse_body(request: web.Request, raw: bytes) -> Any:
    """JSON or a form as a dict (a repeated form key gives a list); other or malformed bodies stay bytes."""
    try:
        if request.content_type == "application/json" and raw:
            return json.loads(raw)
        if request.content_type == "application/x-www-form-urlencoded":
            return _form(parse_qsl(raw.decode(), keep_blank_values=True))
    except ValueError:
        return raw
    return raw or None


def _form(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    form: dict[str, Any] = {}
    for name, value in pairs:
        if name not in form:
            form[name] = value
        elif isinstance(form[name], list):
            form[name].append(value)
        else:
            form[name] = [form[name], value]
    return form


class FakeGraphAPI(FakeAPI):
    """Meta's Graph API for Messenger: ``POST /me/messages`` (also under a ``/vNN.0`` prefix).

    Set ``messenger_api_url`` to :attr:`url`. Failures answer ``{"error": {"code", "error_subcode", …}}``.
    """

    send_endpoint = "messages"

    def __init__(self) -> None:
        super().__init__()
        self.without_ids = False  # set: a send is accepted (200) with no ``message_id`` (the gateway keeps none)
        self.answered: list[str] = []  # the ``message_id`` of each send accepted, in order
        self.app.router.add_post("/me/messages", self._messages)
        self.app.router.add_post("/{version}/me/messages", self._messages)

    def error_response(self, failure: Failure) -> web.Response:
        error = {
            "message": f"(#{failure.code}) {failure.description}",
            "type": "OAuthException",
            "code": failure.code if failure.code is not None else 2,
            "error_subcode": failure.subcode,
            "fbtrace_id": "FakeTrace",
        }
        headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after is not None else {}
        return web.json_response({"error": error}, status=failure.status, headers=headers)

    async def _messages(self, request: web.Request) -> web.Response:
        body = await request.json()
        recipient = body.get("recipient", {}).get("id")
        if "sender_action" in body or self.without_ids:
            return web.json_response({"recipient_id": recipient})
        self.answered.append(f"m_fake_{_next_id()}")
        return web.json_response({"recipient_id": recipient, "message_id": self.answered[-1]})


class FakeTwilioAPI(FakeAPI):
    """Twilio's REST API: ``POST /2010-04-01/Accounts/{sid}/Messages.json`` and hosted media, with basic auth.

    Set ``twilio_api_url`` to :attr:`url`. Requests without ``account_sid:auth_token`` get 401 (code 20003);
    failures answer ``{"code", "message", "more_info", "status"}`` (429 defaults to code 20429).

    Twilio keeps every message: :meth:`receive` records one a young person sent to the line (whatever became of its
    webhook: answered 503, never posted), and ``GET …/Messages.json`` lists what it keeps as Twilio does (the
    sends too, ``outbound-api``), the newest first, filtered by ``To`` and ``DateSent>``, ``PageSize`` at a time
    with a ``next_page_uri``; ``GET …/Messages/{sid}/Media.json`` lists a message's media (:meth:`delete_media`
    empties it). ``fail_next(…, endpoint="list")`` scripts the list's answers.
    """

    send_endpoint = "Messages.json"

    def __init__(self, account_sid: str = ACCOUNT_SID, auth_token: str = "twilio-auth-token") -> None:
        super().__init__()
        self.account_sid = account_sid
        self._credentials = "Basic " + base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()
        self.app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", self._messages)
        self.kept: list[dict[str, Any]] = []  # every message Twilio keeps, in the order it received or sent them
        self._kept_media: dict[str, list[dict[str, Any]]] = {}

    def _endpoint_of(self, request: web.Request) -> str:
        """``list`` for the Messages list (a GET of ``Messages.json``), apart from the sends (its POST)."""
        listing = request.method == "GET" and request.path.endswith("/Messages.json")
        return "list" if listing else super()._endpoint_of(request)

    def requests_to(self, endpoint: str) -> list[RecordedRequest]:
        """As :meth:`FakeAPI.requests_to`, the list's requests (``list``) apart from the sends (``Messages.json``)."""
        if endpoint == "list":
            return [r for r in self.requests if r.method == "GET" and r.endpoint == "Messages.json"]
        return [r for r in super().requests_to(endpoint) if not (r.method == "GET" and r.endpoint == "Messages.json")]

    def receive(
        self, from_: str, body: str = "", *, message_sid: str | None = None, at: datetime.datetime | None = None,
        media: Iterable[tuple[str, str]] = (), to: str = WHATSAPP_FROM,
    ) -> str:  # fmt: skip
        """A message a young person sent to the line, as Twilio keeps it (received ``at``, default now); ``media``
        are ``(media_sid, content_type)`` pairs, hosted at :meth:`media_path` by the test. Returns its sid."""
        sid = message_sid or f"SM{_next_id():032x}"
        self._keep(sid, from_, to, body, "inbound", at)
        path = f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}"
        self._kept_media[sid] = [
            {"sid": media_sid, "parent_sid": sid, "content_type": content_type,
             "uri": f"{path}/Media/{media_sid}.json"}
            for media_sid, content_type in media
        ]  # fmt: skip
        self.kept[-1]["num_media"] = str(len(self._kept_media[sid]))
        return sid

    def delete_media(self, message_sid: str) -> None:
        """A message's media deleted from Twilio (by the account, or its retention): its Media list is empty from now
        on, the message still listed with its ``num_media``."""
        self._kept_media[message_sid] = []

    def _keep(self, sid: str, from_: str, to: str, body: str, direction: str, at: datetime.datetime | None) -> None:
        when = at or datetime.datetime.now(datetime.UTC)
        path = f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}"
        self.kept.append({
            "sid": sid, "account_sid": self.account_sid, "from": from_, "to": to, "body": body,
            "direction": direction, "status": "received" if direction == "inbound" else "queued", "num_media": "0",
            "date_sent": email.utils.format_datetime(when.astimezone(datetime.UTC)), "_at": when,
            "uri": f"{path}.json", "subresource_uris": {"media": f"{path}/Media.json"},
        })  # fmt: skip

    async def _serve_media(self, request: web.Request) -> web.Response:
        account = f"/2010-04-01/Accounts/{self.account_sid}/"
        if request.path.endswith(".json") and not (self.authorised(request) and request.path.startswith(account)):
            return self.error_response(Failure(401, code=20003, description="Authenticate"))
        if request.path == account + "Messages.json":
            return self._list(request)
        if request.path.startswith(account + "Messages/") and request.path.endswith("/Media.json"):
            listed = self._kept_media.get(request.path.split("/")[5], [])
            return web.json_response({"media_list": listed, "next_page_uri": None, "page": 0,
                                      "page_size": 50, "uri": request.path})  # fmt: skip
        return await super()._serve_media(request)

    def _list(self, request: web.Request) -> web.Response:
        query = request.query
        after = datetime.datetime.fromisoformat(query["DateSent>"].replace("Z", "+00:00")) if "DateSent>" in query \
            else None  # fmt: skip
        if after is not None and after.tzinfo is None:
            after = after.replace(tzinfo=datetime.UTC)
        chosen = [m for m in reversed(self.kept)  # the newest first, as Twilio lists them
                  if query.get("To", m["to"]) == m["to"] and (after is None or m["_at"] >= after)]  # fmt: skip
        size, page = int(query.get("PageSize", "50")), int(query.get("Page", "0"))
        records = [{k: v for k, v in m.items() if k != "_at"} for m in chosen[page * size : (page + 1) * size]]
        more = (page + 1) * size < len(chosen)
        following = {**query, "Page": str(page + 1), "PageToken": f"PA{page + 1}"}
        next_uri = f"{request.path}?{urlencode(following)}" if more else None
        return web.json_response({"messages": records, "next_page_uri": next_uri, "page": page, "page_size": size,
                                  "uri": request.path_qs, "first_page_uri": request.path, "previous_page_uri": None,
                                  "start": page * size, "end": page * size + len(records)})  # fmt: skip

    def media_path(self, message_sid: str = "MM" + "1" * 32, media_sid: str = "ME" + "1" * 32) -> str:
        """Where Twilio keeps an inbound message's media, for :meth:`serve_media`."""
        return f"2010-04-01/Accounts/{self.account_sid}/Messages/{message_sid}/Media/{media_sid}"

    def authorised(self, request: web.Request | RecordedRequest) -> bool:
        """Whether ``request`` carried this account's basic auth."""
        return hmac.compare_digest(request.headers.get("Authorization", ""), self._credentials)

    def error_response(self, failure: Failure) -> web.Response:
        code = failure.code or (20429 if failure.status == 429 else 20500)
        document = {
            "code": code,
            "message": failure.description,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": failure.status,
        }
        headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after is not None else {}
        return web.json_response(document, status=failure.status, headers=headers)

    async def _messages(self, request: web.Request) -> web.Response:
        if not self.authorised(request) or request.match_info["sid"] != self.account_sid:
            return self.error_response(Failure(401, code=20003, description="Authenticate"))
        form = await request.post()
        sid = f"SM{_next_id():032x}"
        self._keep(sid, str(form.get("From", "")), str(form.get("To", "")), str(form.get("Body", "")), "outbound-api",
                   None)  # fmt: skip
        resource = {
            "sid": sid,
            "status": "queued",
            "account_sid": self.account_sid,
            "to": form.get("To"),
            "from": form.get("From"),
            "body": form.get("Body"),
        }
        return web.json_response(resource, status=201)


class FakeTelegramAPI(FakeAPI):
    """The Telegram Bot API: ``POST /bot{token}/{method}`` and ``GET /file/bot{token}/{path}``.

    Set ``telegram_api_url`` to :attr:`url`. Answers getMe, sendMessage, sendChatAction, answerCallbackQuery,
    setWebhook, leaveChat and getFile (files added with :meth:`add_file`); a wrong token gets 401. Failures answer
    ``{"ok": false, "error_code", "description", "parameters": {"retry_after"}}``.
    """

    send_endpoint = "sendMessage"

    def __init__(self, token: str = BOT_TOKEN) -> None:
        super().__init__()
        self.token = token
        self._files: dict[str, str] = {}
        self.app.router.add_post("/bot{token}/{method}", self._method)

    def add_file(self, file_id: str, data: bytes, content_type: str = "image/jpeg") -> None:
        """Make ``file_id`` known to getFile, and its content downloadable."""
        path = f"files/{file_id}"
        self._files[file_id] = path
        self._media[f"/file/bot{self.token}/{path}"] = _Media(data, content_type)

    def error_response(self, failure: Failure) -> web.Response:
        document: dict[str, Any] = {"ok": False, "error_code": failure.status, "description": failure.description}
        if failure.retry_after is not None:
            document["parameters"] = {"retry_after": failure.retry_after}
        return web.json_response(document, status=failure.status)

    async def _method(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return self.error_response(Failure(401, description="Unauthorized"))
        method = request.match_info["method"]
        params = _parse_body(request, await request.read())
        params = params if isinstance(params, dict) else {}
        if method == "getMe":
            return _ok({"id": 123456789, "is_bot": True, "first_name": "TestBot", "username": "test_bot"})
        if method == "sendMessage":
            return _ok(_sent_message(params))
        if method == "getFile":
            file_id = params.get("file_id", "")
            if file_id not in self._files:
                return self.error_response(Failure(400, description="Bad Request: invalid file_id"))
            return _ok({"file_id": file_id, "file_unique_id": file_id, "file_path": self._files[file_id]})
        return _ok(True)


def _ok(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def _sent_message(params: Mapping[str, Any]) -> dict[str, Any]:
    chat_id = str(params.get("chat_id", "0"))
    chat = {"id": int(chat_id) if chat_id.lstrip("-").isdigit() else 0, "type": "private"}
    return {"message_id": _next_id(), "date": int(time.time()), "chat": chat, "text": params.get("text", "")}


@contextmanager
def no_new_thread() -> Iterator[None]:
    """The system refuses every new thread meanwhile (``RuntimeError: can't start new thread``, as a process at its
    threads' or memory limit meets it): each thread started asks for a stack larger than any address space, whatever
    the overcommit setting; the threads already running go on. Process-wide: what runs meanwhile meets it too."""
    before = threading.stack_size(1 << 62)
    try:
        yield
    finally:
        threading.stack_size(before)


def stop_gently(process: subprocess.Popen[bytes] | None, timeout: float = 30.0) -> None:
    """End a server process the tests or benchmarks started: SIGINT (its graceful shutdown), then SIGKILL if it is
    still there after ``timeout`` seconds. Nothing for ``None`` or a process that already ended."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# Signing, as each platform does.


def sign_messenger(app_secret: str, raw: bytes) -> str:
    """The ``X-Hub-Signature-256`` header value for ``raw``."""
    return "sha256=" + hmac.new(app_secret.encode(), raw, hashlib.sha256).hexdigest()


def sign_twilio(auth_token: str, url: str, form: Mapping[str, str]) -> str:
    """The ``X-Twilio-Signature`` header value for ``form`` posted to ``url`` (the public URL, query included).

    ``form`` may be a ``multidict.MultiDict`` when a field is repeated.
    """
    signature: str = RequestValidator(auth_token).compute_signature(url, form)
    return signature


def signed_messenger(app_secret: str, document: Any) -> tuple[bytes, dict[str, str]]:
    """``document`` encoded as Meta would, and the headers to post it with."""
    raw = json.dumps(document).encode()  # Meta escapes non-ASCII characters as \uXXXX
    return raw, {"Content-Type": "application/json", "X-Hub-Signature-256": sign_messenger(app_secret, raw)}


# Messenger webhook bodies.


def messenger_body(*entries: Sequence[Mapping[str, Any]], page_id: str = PAGE_ID) -> dict[str, Any]:
    """A webhook body with one entry per argument, each a sequence of messaging items."""
    return {
        "object": "page",
        "entry": [{"id": page_id, "time": _now_ms(), "messaging": list(items)} for items in entries],
    }


def messenger_message(
    sender: str,
    text: str = "",
    mid: str | None = None,
    quick_reply: str | None = None,
    attachments: Iterable[tuple[str, str]] = (),
    page_id: str = PAGE_ID,
) -> dict[str, Any]:
    """A ``message`` item; ``attachments`` are ``(type, url)`` pairs."""
    message: dict[str, Any] = {"mid": mid or f"m_{_next_id()}"}
    if text:
        message["text"] = text
    if quick_reply is not None:
        message["quick_reply"] = {"payload": quick_reply}
    if attachments:
        message["attachments"] = [{"type": kind, "payload": {"url": url}} for kind, url in attachments]
    return _messaging(sender, page_id, message=message)


def messenger_text_event(sender: str, text: str, mid: str | None = None, page_id: str = PAGE_ID) -> dict[str, Any]:
    """A whole webhook body carrying one text message."""
    return messenger_body([messenger_message(sender, text, mid, page_id=page_id)], page_id=page_id)


def messenger_postback(sender: str, payload: str, title: str = "", mid: str | None = None) -> dict[str, Any]:
    return _messaging(sender, PAGE_ID, postback={"title": title, "payload": payload, "mid": mid or f"m_{_next_id()}"})


def messenger_echo(recipient: str, text: str, mid: str | None = None, app_id: int | None = 1517) -> dict[str, Any]:
    """The copy Meta sends of a message the page itself sent: through an app (``app_id``, 1517 the gateway's in the
    tests), or with ``app_id`` None as Meta's inbox sends a page admin's answer (Business Suite, the Page Inbox)."""
    message: dict[str, Any] = {"mid": mid or f"m_{_next_id()}", "is_echo": True, "text": text}
    if app_id is not None:
        message["app_id"] = app_id
    return _messaging(PAGE_ID, recipient, message=message)


def messenger_delivery(sender: str, mids: Sequence[str] | None, watermark: int) -> dict[str, Any]:
    delivery: dict[str, Any] = {"watermark": watermark}
    if mids is not None:
        delivery["mids"] = list(mids)
    return _messaging(sender, PAGE_ID, delivery=delivery)


def messenger_read(sender: str, watermark: int) -> dict[str, Any]:
    return _messaging(sender, PAGE_ID, read={"watermark": watermark})


def _messaging(sender: str, recipient: str, **event: Any) -> dict[str, Any]:
    return {"sender": {"id": sender}, "recipient": {"id": recipient}, "timestamp": _now_ms(), **event}


def _now_ms() -> int:
    return int(time.time() * 1000)


# Twilio webhook forms.


def twilio_form(
    from_: str,
    body: str = "",
    message_sid: str | None = None,
    media: Iterable[tuple[str, str]] = (),
    button_payload: str | None = None,
    to: str = WHATSAPP_FROM,
) -> dict[str, str]:
    """An incoming WhatsApp message as Twilio posts it; ``media`` are ``(url, content_type)`` pairs."""
    sid = message_sid or f"SM{_next_id():032x}"
    form = {
        "MessageSid": sid,
        "SmsMessageSid": sid,
        "AccountSid": ACCOUNT_SID,
        "From": from_,
        "To": to,
        "Body": body,
        "NumSegments": "1",
        "SmsStatus": "received",
        "ApiVersion": "2010-04-01",
        "ProfileName": "Zoé",
        "WaId": from_.removeprefix("whatsapp:").lstrip("+"),
        "MessageType": "button" if button_payload is not None else "text",
    }
    items = list(media)
    form["NumMedia"] = str(len(items))
    for index, (url, content_type) in enumerate(items):
        form[f"MediaUrl{index}"] = url
        form[f"MediaContentType{index}"] = content_type
    if button_payload is not None:
        form.update(ButtonPayload=button_payload, ButtonText=body)
    return form


def twilio_status_form(
    message_sid: str, status: str, to: str, error_code: str | None = None, from_: str = WHATSAPP_FROM
) -> dict[str, str]:
    """A status callback for a message the gateway sent to ``to``."""
    form = {"MessageSid": message_sid, "MessageStatus": status, "AccountSid": ACCOUNT_SID, "From": from_, "To": to}
    if error_code is not None:
        form["ErrorCode"] = error_code
    return form


# Telegram updates.


def telegram_update(
    update_id: int,
    chat_id: int,
    text: str | None = "bonjour",
    language_code: str | None = "fr",
    photo_file_id: str | None = None,
    document: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A private-chat message update; ``document`` holds ``file_id``, ``file_name``, ``mime_type``."""
    sender: dict[str, Any] = {"id": chat_id, "is_bot": False, "first_name": "Zoé"}
    if language_code:
        sender["language_code"] = language_code
    message: dict[str, Any] = {
        "message_id": _next_id(),
        "date": int(time.time()),
        "from": sender,
        "chat": {"id": chat_id, "type": "private", "first_name": "Zoé"},
    }
    if text is not None:
        message["caption" if photo_file_id or document else "text"] = text
    if photo_file_id:
        message["photo"] = [
            {"file_id": photo_file_id + "-small", "file_unique_id": "s", "width": 90, "height": 90},
            {"file_id": photo_file_id, "file_unique_id": "l", "width": 800, "height": 800},
        ]
    if document:
        message["document"] = {"file_unique_id": "d", **document}
    return {"update_id": update_id, "message": message}


def telegram_callback(
    update_id: int,
    chat_id: int,
    data: str,
    buttons: Sequence[tuple[str, str]] = (),
    query_id: str = "4382bfdwdsb323b2d9",
) -> dict[str, Any]:
    """A button tap; ``buttons`` are the ``(label, callback_data)`` of the keyboard under the bot's message."""
    message: dict[str, Any] = {
        "message_id": _next_id(),
        "date": int(time.time()),
        "chat": {"id": chat_id, "type": "private"},
        "from": {"id": 123456789, "is_bot": True, "first_name": "TestBot"},
        "text": "Choisis :",
    }
    if buttons:
        keyboard = [[{"text": label, "callback_data": value}] for label, value in buttons]
        message["reply_markup"] = {"inline_keyboard": keyboard}
    query = {
        "id": query_id,
        "chat_instance": "-1234567890",
        "from": {"id": chat_id, "is_bot": False, "first_name": "Zoé", "language_code": "fr"},
        "data": data,
        "message": message,
    }
    return {"update_id": update_id, "callback_query": query}


def telegram_member_update(update_id: int, chat_id: int, status: str) -> dict[str, Any]:
    """The bot's membership in a private chat changed: ``kicked`` when the person blocked it, ``member`` when they
    unblocked or restarted it."""
    person = {"id": chat_id, "is_bot": False, "first_name": "Zoé"}
    bot = {"id": 123456789, "is_bot": True, "first_name": "TestBot"}
    old = "member" if status == "kicked" else "kicked"
    changed = {
        "chat": {"id": chat_id, "type": "private", "first_name": "Zoé"},
        "from": person,
        "date": int(time.time()),
        "old_chat_member": {"status": old, "user": bot, **({"until_date": 0} if old == "kicked" else {})},
        "new_chat_member": {"status": status, "user": bot, **({"until_date": 0} if status == "kicked" else {})},
    }
    return {"update_id": update_id, "my_chat_member": changed}


def telegram_headers(secret: str) -> dict[str, str]:
    return {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": secret}


class FaultyEmbedder:
    """An embedding model that fails on purpose, for tests and drills: ``raise`` on every message, or ``hang``
    until :meth:`release` (then answers like ``inner``). Injected through ``create_app(understanding=...)``."""

    def __init__(self, inner: Any, mode: str) -> None:
        import threading

        self.inner, self.mode = inner, mode
        self.name, self.dim = inner.name, inner.dim
        self.calls = 0
        self._released = threading.Event()

    def embed(self, texts: Any) -> Any:
        self.calls += 1
        if self.mode == "raise":
            raise RuntimeError("the model broke")
        self._released.wait(timeout=60)
        return self.inner.embed(texts)

    def release(self) -> None:
        self._released.set()
