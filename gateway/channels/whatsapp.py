"""WhatsApp through Twilio: signed form webhooks and status callbacks in, Twilio's Messages resource out.

Inbound: Twilio posts ``application/x-www-form-urlencoded`` forms signed with ``X-Twilio-Signature`` (HMAC-SHA1
of the URL it called plus the sorted fields, keyed with the auth token). The URL is rebuilt from
``GATEWAY_PUBLIC_URL`` + the request's path and query, so verification works behind a proxy. ``MessageSid`` is
the de-duplication key. Status callbacks (``POST /webhooks/whatsapp/status``) become receipts. A young person
who sends STOP (Twilio's ``OptOutType``, or a status callback with error 21610) has unsubscribed: a
:class:`Departure`; START lifts it. A forwarded message (``Forwarded``, ``FrequentlyForwarded``) is someone else's
words: marked with an attachment of kind ``forwarded``.

Outbound: ``messages.create_async`` with the async HTTP client (opened in :meth:`WhatsAppChannel.start`),
its base URL set to ``TWILIO_API_URL``. WhatsApp through Twilio has no buttons for free-form messages, so choices
are a numbered list; texts over 1600 characters are split. Free-form messages are refused more than 24 hours
after the young person's last message (Twilio error 63016), for bots and listeners alike.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import json
import logging
import time
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import aiohttp
from aiohttp import web
from multidict import MultiDict
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from yarl import URL

from gateway.channels import links
from gateway.channels.base import (
    SEND_TIMEOUT_SECONDS,
    STORE_HOLD_SECONDS,
    Batch,
    MediaSource,
    fetch_allowed,
    is_contact_card,
    read_body,
    retry_after_header,
    send_parts,
    split_text,
    with_numbered_list,
)
from gateway.errors import (
    BadRequest,
    BadSignature,
    CredentialsRefused,
    DeliveryError,
    PermanentDelivery,
    RecipientGone,
    RetryableDelivery,
)
from gateway.loop_watch import timeout_unheld
from gateway.messages import FORWARDED, Attachment, ChannelName, Departure, Inbound, Outbound, Receipt
from gateway.settings import Settings

log = logging.getLogger(__name__)

TEXT_LIMIT = 1600
MISMATCH_TOLD_EVERY = 60.0  # seconds between two WARNING lines of a GATEWAY_PUBLIC_URL unlike the URL Twilio calls
MAX_FORM_FIELDS = 1000
MAX_MEDIA = 20  # WhatsApp sends one file per message; Twilio allows ten on MMS
T = TypeVar("T")
LIST_PAGE_SIZE = 100  # messages per page of Twilio's list (the catch-up's)
LIST_MAX_PAGES = 100  # a catch-up's pass reads at most this many pages (10,000 messages)
MEDIA_HOSTS = frozenset({"api.twilio.com", "*.twiliocdn.com"})
STATUS_PATH = "/webhooks/whatsapp/status"

OPTED_OUT = 21610  # the person sent STOP: Twilio refuses every message to them until they send START
TWILIO_CODES = (10000, 99999)  # Twilio's error codes: 5 digits (its error dictionary), the only numbers logged
RATE_LIMITED = {20429, 63018}  # Twilio's "Too Many Requests", WhatsApp's "Rate limit exceeded for Channel" (any status)
OPT_OUT_TYPES = {"STOP": True, "START": False}  # Twilio's Advanced Opt-Out: the OptOutType of an inbound message
# Twilio's default opt-in keywords: a message of one of them alone lifts an opt-out at Twilio, its webhook or not (a
# message caught up from Twilio's list has no OptOutType: ``gateway/channels/whatsapp_catchup.py``)
OPT_IN_KEYWORDS = frozenset({"START", "UNSTOP", "YES"})

STATUSES = {
    "accepted": "sent",
    "scheduled": "sent",
    "queued": "sent",
    "sending": "sent",
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "failed": "failed",
    "undelivered": "failed",
    "canceled": "failed",
}
# A status callback's failure a resend may get through (``Receipt.transient``: sent again once, ``Dispatcher.
# _bot_failed``; a RATE_LIMITED code too, its copy due after the channel's pause: since 2026-12-08, until then 20429
# was final and 63018's copy went at once, into the same limit); any other code is final (30005 unknown destination,
# 30006 landline, 63016 window closed, 63024 invalid recipient, 63032 the number in Meta's experiment…): a resend
# cannot reach them
TRANSIENT_FAILURES = {
    30001: "queue overflow",
    30003: "unreachable destination handset (off, no signal)",
    30008: "unknown error",
    63012: "WhatsApp's internal error",
    63018: "rate limit exceeded for the channel",
}
PERMANENT_REASONS = {
    63016: "reply window closed (more than 24 hours since the person's last message; only a template can go)",
    21211: "the recipient is not a valid WhatsApp address",
    21610: "the person has opted out of messages from this sender",
    63003: "the recipient cannot be reached on WhatsApp",
    63024: "the recipient cannot receive this message",
}
# Twilio refuses the account SID or auth token (HTTP 401, code 20003 "Authenticate": the auth token changed in the
# console, the account closed): no send of any conversation goes until TWILIO_AUTH_TOKEN (or TWILIO_ACCOUNT_SID) is
# set again. Not this person's refusal: the replies wait (CredentialsRefused), Twilio asked again once a minute.
AUTHENTICATE = 20003
CREDENTIALS_RETRY_SECONDS = 60.0
# Twilio does not know the line's own sender (21606: the From number not one of this account's; 63007: no WhatsApp
# channel for the From address, the sender removed, pending approval or another account's): every conversation's
# sends alike, as 20003 (CredentialsRefused), until TWILIO_WHATSAPP_FROM or the sender in Twilio's console is right
SENDER_UNKNOWN = {
    21606: "TWILIO_WHATSAPP_FROM is not a sender of this Twilio account",
    63007: "Twilio has no WhatsApp sender for TWILIO_WHATSAPP_FROM (removed, pending approval, or another account's)",
}


class WhatsAppChannel:
    """The Twilio WhatsApp adapter. Implements Channel, Lifecycle, MediaFetcher and ReplyWindow."""

    name = ChannelName.WHATSAPP
    # Twilio does not send a webhook again after a 5xx (by default: one retry on a failed connection): a store
    # failure is tried again while Twilio waits, rather than answered 503 at once (``channels_wiring._webhook``)
    store_hold_seconds = STORE_HOLD_SECONDS

    def __init__(self, settings: Settings, session: aiohttp.ClientSession) -> None:
        self._settings = settings
        self._session = session
        self._validator = RequestValidator(settings.twilio_auth_token.get_secret_value())
        self._status_url = settings.public_url.rstrip("/") + STATUS_PATH
        api_host = URL(settings.twilio_api_url).host or ""
        self._media = MediaSource(
            self.name,
            allowed_hosts=MEDIA_HOSTS | {api_host},
            auth_hosts=frozenset({"api.twilio.com", api_host}),
            authorization=aiohttp.encode_basic_auth(
                settings.twilio_account_sid, settings.twilio_auth_token.get_secret_value()
            ),
        )
        self._http: AsyncTwilioHttpClient | None = None
        self._client: Client | None = None
        self._mismatch_told = -MISMATCH_TOLD_EVERY  # monotonic time of the last line about GATEWAY_PUBLIC_URL

    async def start(self) -> None:
        """Open Twilio's async HTTP client; call it inside the running loop (the app's cleanup_ctx)."""
        self._http = _HttpClient(timeout=SEND_TIMEOUT_SECONDS)
        # A non-empty environment: Twilio would otherwise read TWILIO_EDGE/TWILIO_REGION from os.environ.
        environment = {"TWILIO_ACCOUNT_SID": self._settings.twilio_account_sid}
        client = Client(
            self._settings.twilio_account_sid,
            self._settings.twilio_auth_token.get_secret_value(),
            http_client=self._http,
            environment=environment,
        )
        client.api.base_url = self._settings.twilio_api_url.rstrip("/")
        self._client = client

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.close()
        self._http = self._client = None

    async def parse(self, request: web.Request) -> Batch:
        """An incoming WhatsApp message (``POST /webhooks/whatsapp``)."""
        form = await self._verified_form(request)
        inbound = _inbound(form)
        left = OPT_OUT_TYPES.get(form.get("OptOutType", "").upper())
        departures = () if left is None else (Departure(self.name, inbound.sender, left),)
        return Batch(inbound=(replace(inbound, opted_out=bool(left), opted_in=left is False),), departures=departures)

    async def parse_status(self, request: web.Request) -> Batch:
        """A status callback for a message the gateway sent (``POST /webhooks/whatsapp/status``)."""
        form = await self._verified_form(request)
        receipt = _receipt(form)
        opted_out = receipt is not None and receipt.error == str(OPTED_OUT)
        departures = (
            (Departure(self.name, receipt.sender, about=receipt.provider_message_id),)
            if receipt is not None and opted_out else ()
        )  # fmt: skip
        return Batch(receipts=(receipt,) if receipt else (), departures=departures)

    def acknowledge(self) -> web.Response:
        return web.Response(text="<Response/>", content_type="text/xml")

    async def send(self, message: Outbound, first_part: int = 0) -> str | None:
        async def send_one(index: int, part: str) -> str | None:
            return await self._create(message.recipient, part)

        parts = split_text(with_numbered_list(links.plain(message.text), message.choices), TEXT_LIMIT)
        return await send_parts(parts, send_one, first_part)

    async def fetch_media(self, attachment: Attachment) -> tuple[bytes, str]:
        if not attachment.url:
            raise PermanentDelivery("whatsapp: the attachment has no url")
        return await fetch_allowed(self._session, self._media, attachment.url, attachment.content_type)

    def reply_window(self, author: str) -> datetime.timedelta:
        return datetime.timedelta(hours=24)

    async def received_since(self, since: datetime.datetime) -> Listing:
        """The messages Twilio received for ``TWILIO_WHATSAPP_FROM`` sent from ``since`` on (its Messages list,
        every page), each with the time Twilio received it, the oldest first: what the webhook would have posted,
        for the catch-up (``whatsapp_catchup.py``), without their media: :meth:`with_media` asks Twilio for those of
        a message the catch-up processes (one request a message with media; not for the many it finds processed
        already). A shared location's coordinates and STOP's ``OptOutType`` are not in the list: not caught up; a
        message with neither words nor media (a shared location, a kind Twilio lists without them) comes as an
        attachment of kind ``other``, so the listener sees that something was sent and the bot says it cannot read
        it.
        At most ``LIST_MAX_PAGES`` pages, the newest: when Twilio holds more, the listing says it is ``cut``.
        Twilio's errors as :meth:`send`'s (a 429: ``RetryableDelivery`` rate limited)."""
        if self._client is None:
            raise RuntimeError("WhatsAppChannel.start() must be awaited before received_since()")
        client, ours = self._client, self._settings.twilio_whatsapp_from
        found: list[Listed] = []
        with _listing():
            page = await _timed(client.messages.page_async(to=ours, date_sent_after=since, page_size=LIST_PAGE_SIZE))
            for _ in range(LIST_MAX_PAGES):
                for resource in page:
                    at = resource.date_sent
                    if resource.direction != "inbound" or resource.to != ours or at is None or at < since:
                        continue
                    if not (isinstance(resource.sid, str) and resource.sid and resource.from_):
                        continue
                    form = MultiDict(MessageSid=resource.sid, From=resource.from_, Body=resource.body or "",
                                     NumMedia="0")  # fmt: skip
                    media = resource.num_media not in (None, "", "0")
                    inbound = _inbound(form) if media or form["Body"] else _unreadable(_inbound(form))
                    found.append(Listed(at, inbound, form if media else None))
                page = await _timed(page.next_page_async())
                if page is None:
                    break
        found.reverse()  # Twilio lists the newest first: the oldest first, same-second ones kept in their order
        found.sort(key=lambda listed: listed.at)
        return Listing(found, cut=page is not None)  # a page left unread: the oldest messages

    async def with_media(self, listed: Listed) -> Inbound:
        """A listed message with its media, as the webhook's form gives them (their URLs asked of Twilio). Media
        Twilio no longer has (deleted: its list empty, or the message's answering 404) leave an attachment of kind
        ``other``: the listener sees that something was sent, the bot says it cannot read it."""
        if listed.form is None or self._client is None:
            return listed.inbound
        form = listed.form.copy()
        with _listing():
            try:
                media = await _timed(self._client.messages(form["MessageSid"]).media.list_async(limit=MAX_MEDIA))
            except TwilioException as error:
                if _status_of(error) != 404:
                    raise
                media = []
        if not media:
            log.info("whatsapp catch-up: a message's media are no longer at Twilio: caught up as a file not readable")
            return _unreadable(listed.inbound)
        base = self._settings.twilio_api_url.rstrip("/")
        form["NumMedia"] = str(len(media))
        for index, item in enumerate(media):
            form[f"MediaUrl{index}"] = base + str(item.uri).removesuffix(".json")
            form[f"MediaContentType{index}"] = item.content_type or ""
        return _inbound(form)

    async def _verified_form(self, request: web.Request) -> MultiDict[str]:
        raw = await read_body(request, self._settings.max_body_bytes, self.name)
        signature = request.headers.get("X-Twilio-Signature", "")
        if not signature or not self._settings.twilio_auth_token.get_secret_value():
            raise BadSignature("whatsapp: X-Twilio-Signature is missing")
        form = _decode_form(raw)
        url = self._settings.public_url.rstrip("/") + request.path_qs
        if not self._validator.validate(url, form, signature):
            self._tell_mismatch(request, form, signature)
            raise BadSignature("whatsapp: X-Twilio-Signature is wrong")
        return form

    def _tell_mismatch(self, request: web.Request, form: MultiDict[str], signature: str) -> None:
        """A signature made for the address this request reached (as the proxy names it: ``X-Forwarded-Proto``,
        ``-Host``, ``-Prefix``), not for ``GATEWAY_PUBLIC_URL``: the setting is wrong and every message of Twilio is
        refused until it is set right. Said in a WARNING line, at most once a minute. Only the auth token makes a
        signature valid for an address: nobody else can make the line name one."""
        now = time.monotonic()
        if now - self._mismatch_told < MISMATCH_TOLD_EVERY:
            return
        headers = request.headers
        schemes = dict.fromkeys((headers.get("X-Forwarded-Proto", "").partition(",")[0].strip(), "https", "http"))
        hosts = dict.fromkeys((headers.get("X-Forwarded-Host", "").partition(",")[0].strip(), request.host))
        prefix = headers.get("X-Forwarded-Prefix", "").partition(",")[0].strip().rstrip("/")
        for scheme in filter(None, schemes):
            for host in filter(None, hosts):
                base = f"{scheme}://{host}{prefix}"
                if self._validator.validate(base + request.path_qs, form, signature):
                    self._mismatch_told = now
                    log.warning("whatsapp: Twilio signs its webhooks for %s, not for GATEWAY_PUBLIC_URL (%s): every "
                                "message is refused (403) until GATEWAY_PUBLIC_URL is set to it",
                                base, self._settings.public_url)  # fmt: skip
                    return

    async def _create(self, to: str, body: str) -> str | None:
        """Create one message: the one place where Twilio's errors become ours."""
        if self._client is None:
            raise RuntimeError("WhatsAppChannel.start() must be awaited before send()")
        _TOLD_WAIT.set(None)
        try:  # Twilio's async client drops its own timeout (aiohttp's 300 s applied): the send timeout is ours
            async with timeout_unheld(SEND_TIMEOUT_SECONDS):  # a freeze's answer read first
                resource = await self._client.messages.create_async(
                    from_=self._settings.twilio_whatsapp_from, to=to, body=body, status_callback=self._status_url
                )
        except (TwilioRestException, TwilioServiceException) as error:
            raise twilio_error(error.status, error.code, _TOLD_WAIT.get()) from None
        except (aiohttp.ClientError, TimeoutError) as error:
            raise RetryableDelivery(f"whatsapp: network error ({type(error).__name__})") from None
        except ValueError:  # a 2xx whose body is not JSON (a captive portal's page): Twilio's client cannot read it
            raise RetryableDelivery("whatsapp: an answer that was not Twilio's (not JSON)") from None
        sid = resource.sid
        if not isinstance(sid, str) or not sid:  # a 2xx without the created message (nothing, an error object)
            raise RetryableDelivery("whatsapp: an answer that was not Twilio's (no message sid)")
        return sid


@dataclass(frozen=True, slots=True)
class Listed:
    """A message of Twilio's list: when Twilio received it, the message without its media, and (``form``) what
    :meth:`WhatsAppChannel.with_media` completes when it has media."""

    at: datetime.datetime
    inbound: Inbound
    form: MultiDict[str] | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Listing:
    """What a read of Twilio's list found, the oldest first; ``cut``: Twilio held more than ``LIST_MAX_PAGES`` pages
    since then, the oldest of them not read."""

    messages: list[Listed]
    cut: bool = False


# The ``Retry-After`` of Twilio's last error answer to this task (its exceptions carry no header): set by
# :class:`_HttpClient`, read by :meth:`WhatsAppChannel._create` (a task's own: concurrent sends never mix theirs)
_TOLD_WAIT: contextvars.ContextVar[float | None] = contextvars.ContextVar("twilio_retry_after", default=None)


class _HttpClient(AsyncTwilioHttpClient):  # type: ignore[misc]  # twilio ships no types
    """Twilio's async HTTP client, the ``Retry-After`` of an error answer kept for the task that asked (since
    2026-12-08: until then never read, a 429's pause only the refused reply's backoff, 1 s doubling)."""

    def log_response(self, status_code: int, response: Any) -> None:  # each answer's, before its body is read
        super().log_response(status_code, response)
        headers = getattr(response, "headers", None) if status_code >= 400 else None
        _TOLD_WAIT.set(retry_after_header(headers.get("Retry-After")) if headers else None)


@contextlib.contextmanager
def _listing() -> Iterator[None]:
    """Twilio's list's and media's failures as ours (as :meth:`WhatsAppChannel.send`'s), its ``Retry-After`` read
    as a send's is (since 2026-12-08: until then a 429 of the list paused the catch-up ``RATE_LIMIT_PAUSE``, 60 s,
    whatever Twilio told)."""
    _TOLD_WAIT.set(None)
    try:
        yield
    except (TwilioRestException, TwilioServiceException) as error:
        raise twilio_error(error.status, error.code, _TOLD_WAIT.get()) from None
    except TwilioException as error:  # a page's error answer: ("Unable to fetch page", the response)
        response = error.args[-1] if error.args else None
        status = getattr(response, "status_code", 0)
        status = status if isinstance(status, int) and status >= 400 else 502
        raise twilio_error(status, _page_code(response), _TOLD_WAIT.get()) from None
    except (aiohttp.ClientError, TimeoutError) as error:
        raise RetryableDelivery(f"whatsapp: network error ({type(error).__name__})") from None
    except (ValueError, KeyError, TypeError):  # a 2xx that is not Twilio's list (a captive portal's page)
        raise RetryableDelivery("whatsapp: an answer that was not Twilio's list") from None


def _page_code(response: Any) -> int | None:
    """Twilio's error code in a page's error answer (its JSON ``code``: a 5-digit number), else None (a proxy's page,
    a body that is not Twilio's). Until 2026-12-08 evening never read: the list's refusals were mapped with code None
    (a 20429 named only by its 429, a 20001 not at all)."""
    try:
        document = json.loads(getattr(response, "text", None) or "")
    except (ValueError, TypeError):
        return None
    code = document.get("code") if isinstance(document, dict) else None
    return code if type(code) is int and TWILIO_CODES[0] <= code <= TWILIO_CODES[1] else None


def _status_of(error: TwilioException) -> int | None:
    """The HTTP status of a Twilio error: a REST error's, or a page's error answer's ("Unable to fetch page")."""
    if isinstance(error, (TwilioRestException, TwilioServiceException)):
        status = error.status
    else:
        status = getattr(error.args[-1] if error.args else None, "status_code", None)
    return status if isinstance(status, int) else None


def _unreadable(inbound: Inbound) -> Inbound:
    """A message Twilio's list keeps without what made it (its media gone, a shared location): an attachment of kind
    ``other``, so that it is never an empty message."""
    return replace(inbound, attachments=(*inbound.attachments, Attachment("other")))


async def _timed(call: Awaitable[T]) -> T:
    """One call of Twilio's async client, within the send timeout (the client drops its own: aiohttp's 300 s)."""
    async with timeout_unheld(SEND_TIMEOUT_SECONDS):  # a freeze's answer read first
        return await call


def twilio_error(status: int, code: int | None, retry_after: float | None = None) -> DeliveryError:
    """Map a Twilio error answer to ours. Twilio's own message is left out: it can quote the phone number.
    ``retry_after``: its ``Retry-After`` header, the wait of a retryable one (since 2026-12-08). ``code`` is kept
    (in the reason and ``provider_code``, which the catch-up's line names) only when it is one of Twilio's, 5 digits
    (since 2026-12-08 evening: until then whatever the SDK read as the answer's ``code``)."""
    code = code if type(code) is int and TWILIO_CODES[0] <= code <= TWILIO_CODES[1] else None
    where = f"whatsapp: HTTP {status}, Twilio code {code}"
    error = _twilio_error(where, status, code, retry_after)
    error.provider_code = code
    return error


def _twilio_error(where: str, status: int, code: int | None, retry_after: float | None) -> DeliveryError:
    if status == 401 or code == AUTHENTICATE:  # every conversation's sends alike: the line's, never a young person's
        reason = "Twilio refused the account SID or auth token: set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN again"
        return CredentialsRefused(f"{where}: {reason}", CREDENTIALS_RETRY_SECONDS)
    if code in SENDER_UNKNOWN:  # the line's configuration, never a young person's: kept and asked again, as above
        return CredentialsRefused(f"{where}: {SENDER_UNKNOWN[code]}", CREDENTIALS_RETRY_SECONDS)
    if status == 429 or code in RATE_LIMITED or status >= 500:
        limited = status == 429 or code in RATE_LIMITED
        return RetryableDelivery(f"{where}: try again later", retry_after, rate_limited=limited)
    reason = PERMANENT_REASONS.get(code or 0, "refused")
    return RecipientGone(f"{where}: {reason}") if code == OPTED_OUT else PermanentDelivery(f"{where}: {reason}")


def _decode_form(raw: bytes) -> MultiDict[str]:
    try:
        pairs = parse_qsl(raw.decode(), keep_blank_values=True, errors="strict", max_num_fields=MAX_FORM_FIELDS)
    except ValueError:  # includes UnicodeDecodeError
        raise BadRequest("whatsapp: request body is not a UTF-8 form") from None
    return MultiDict(pairs)


def _inbound(form: MultiDict[str]) -> Inbound:
    return Inbound(
        channel=ChannelName.WHATSAPP,
        sender=_required(form, "From"),
        message_id=_required(form, "MessageSid"),
        text=form.get("Body", ""),
        payload=form.get("ButtonPayload") or None,
        attachments=_attachments(form),
    )


def _attachments(form: MultiDict[str]) -> tuple[Attachment, ...]:
    count = form.get("NumMedia", "0")
    if not (count.isascii() and count.isdigit() and len(count) <= 3) or int(count) > MAX_MEDIA:  # int() < 4300 digits
        raise BadRequest("whatsapp: NumMedia is not a small whole number")
    files = tuple(
        _attachment(_required(form, f"MediaUrl{index}"), form.get(f"MediaContentType{index}") or None)
        for index in range(int(count))
    )
    # A shared location (or place) comes with no words and no file: said by its kind only, never its coordinates.
    shared = form.get("MessageType") == "location" or ("Latitude" in form and "Longitude" in form)
    found = (*files, Attachment("location")) if shared else files
    # A forwarded message (Twilio's Forwarded, FrequentlyForwarded): someone else's words, never the young person's
    forwarded = any(form.get(name, "").lower() == "true" for name in ("Forwarded", "FrequentlyForwarded"))
    return (*found, Attachment(FORWARDED)) if forwarded else found


def _attachment(url: str, content_type: str | None) -> Attachment:
    if is_contact_card(content_type):  # a shared contact: said by its kind only, its phone number never fetched
        return Attachment("other")
    family = (content_type or "").partition("/")[0]
    kind = family if family in ("image", "audio", "video") else "file"
    return Attachment(kind=kind, url=url, content_type=content_type)


def _receipt(form: MultiDict[str]) -> Receipt | None:
    status = STATUSES.get(_required(form, "MessageStatus"))
    if status is None:  # a status Twilio added after this was written
        return None
    error = form.get("ErrorCode") or None
    # a code as Twilio writes them (5 digits): "²" is a digit to isdigit() and no int, int() refuses 4300 digits
    code = int(error) if error is not None and error.isascii() and error.isdigit() and len(error) <= 6 else None
    return Receipt(
        channel=ChannelName.WHATSAPP,
        sender=_required(form, "To"),
        status=status,
        provider_message_id=_required(form, "MessageSid"),
        error=error,
        transient=status == "failed" and (code in TRANSIENT_FAILURES or code in RATE_LIMITED),
        rate_limited=status == "failed" and code in RATE_LIMITED,
    )


def _required(form: MultiDict[str], name: str) -> str:
    value = form.get(name)
    if not value:
        raise BadRequest(f"whatsapp: the form has no {name}")
    return value
