"""Facebook Messenger: the webhook handshake, signed event batches, and the Send API.

Inbound: ``GET /webhooks/messenger`` answers Meta's ``hub.*`` handshake (:meth:`MessengerChannel.verify`);
``POST`` carries ``{"object": "page", "entry": [{"messaging": [...]}, ...]}`` signed with
``X-Hub-Signature-256`` (HMAC-SHA256 of the raw bytes keyed with the app secret). Every entry and every
messaging item is read, and every ``standby`` item (the young person's messages on a thread another app owns);
deliveries and reads become receipts. Echoes (a copy of every message the page sends): the
gateway's own (``MESSENGER_APP_ID``'s) are dropped; the page's sent from outside it (an admin in Meta's inbox, or
Meta's automated responses: no ``app_id``, or another app's) become :class:`~gateway.messages.Echo`, recorded for
the listeners, never sent; those of an app in ``MESSENGER_HUMAN_ECHO_APPS`` are a person's answer.
The body's shape is a few pydantic models (strict types): a body that does not fit is 400, naming the field.

Outbound: ``POST {messenger_api_url}/me/messages?access_token=…``. Bot messages go as ``RESPONSE`` (24-hour
window); a listener's as ``MESSAGE_TAG`` + ``HUMAN_AGENT`` (7 days, humans only). Choices become quick replies
when they fit (13 at most, titles of 20 characters still told apart), else a numbered list in the text.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import re
import time
from dataclasses import replace
from typing import Annotated, Any

import aiohttp
from aiohttp import web
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    StringConstraints,
    ValidationError,
)
from yarl import URL

from gateway.channels import links
from gateway.channels.base import (
    SEND_TIMEOUT_SECONDS,
    UNTIMED,
    Batch,
    MediaSource,
    fetch_allowed,
    labels_fit,
    load_json,
    read_body,
    retry_after_header,
    send_parts,
    split_text,
    truncate_label,
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
from gateway.messages import Attachment, ChannelName, Choice, Echo, Inbound, Outbound, Receipt
from gateway.settings import Settings

TEXT_LIMIT = 2000
QUICK_REPLY_MAX = 13
QUICK_REPLY_TITLE_MAX = 20
QUICK_REPLY_PAYLOAD_MAX = 1000
MEDIA_HOSTS = frozenset({"*.fbcdn.net", "*.facebook.com", "lookaside.fbsbx.com"})
GET_STARTED = "GET_STARTED"  # MESSENGER_GET_STARTED_PAYLOAD's default: the payload most pages give the button
ATTACHMENT_KINDS = {"image": "image", "audio": "audio", "video": "video", "file": "file", "location": "location"}

# Graph error codes worth another try: unknown, service unavailable, and the rate limits (the app's, a user's, the
# page's, a custom one, Messenger's), which pause every Messenger send (gateway/outbox.py).
RATE_LIMIT_CODES = frozenset({4, 17, 32, 613, 80006})
RETRYABLE_CODES = frozenset({1, 2}) | RATE_LIMIT_CODES
PERMANENT_REASONS = {
    (10, 2018278): "reply window closed (more than 24 hours since the person's last message)",
    (10, 2018065): "reply window closed for the HUMAN_AGENT tag (more than 7 days)",
    (100, 2018001): "no person matches this recipient",
    (551, 1545041): "this person is not available right now",
    (200, 2018108): "the person cannot be messaged (blocked or restricted)",
}
BLOCKED = frozenset({(200, 2018108)})  # Messenger sends no webhook when a person blocks a page: only this refusal
PERMANENT_CODES = {
    551: "this person is not available right now",
}
# The page access token expired or revoked (a password changed, the app removed, a permission withdrawn): no send of
# any conversation goes until MESSENGER_PAGE_ACCESS_TOKEN is renewed. Not this person's refusal: the replies wait
# (CredentialsRefused), the channel asked again once a minute, and the outbox shows it (gateway/outbox.py).
TOKEN_REFUSED = 190
TOKEN_RETRY_SECONDS = 60.0

JSONObject = dict[str, Any]


class MessengerChannel:
    """The Messenger adapter. Implements Channel, TypingIndicator, MediaFetcher and ReplyWindow."""

    name = ChannelName.MESSENGER

    def __init__(self, settings: Settings, session: aiohttp.ClientSession) -> None:
        self._settings = settings
        self._session = session
        api = URL(settings.messenger_api_url)
        self._send_url = api / "me" / "messages"
        self._media = MediaSource(self.name, allowed_hosts=MEDIA_HOSTS | {api.host or ""})

    async def verify(self, request: web.Request) -> web.Response:
        """``GET /webhooks/messenger``, routable as is: Meta's subscription handshake, 200 challenge or 403."""
        token = self._settings.messenger_verify_token.get_secret_value().encode()
        given = request.query.get("hub.verify_token", "").encode("utf-8", "replace")
        if request.query.get("hub.mode") != "subscribe" or not token or not hmac.compare_digest(given, token):
            return web.Response(status=403, text="verification token does not match")
        return web.Response(text=request.query.get("hub.challenge", ""))

    async def parse(self, request: web.Request) -> Batch:
        raw = await read_body(request, self._settings.max_body_bytes, self.name)
        self._check_signature(raw, request.headers.get("X-Hub-Signature-256", ""))
        return parse_events(load_json(raw, self.name), max_age_ms=self._settings.messenger_max_event_age * 1000,
                            get_started=self._settings.messenger_get_started_payload,
                            app_id=self._settings.messenger_app_id,
                            human_apps=self._settings.messenger_human_echo_app_ids())  # fmt: skip

    def acknowledge(self) -> web.Response:
        return web.Response(text="ok")

    async def send(self, message: Outbound, first_part: int = 0) -> str | None:
        async def send_one(index: int, part: JSONObject) -> str | None:
            body = {"recipient": {"id": message.recipient}, **_messaging_type(message.author), "message": part}
            return _message_id(await self._call(body))

        return await send_parts(render(message), send_one, first_part)

    async def typing(self, recipient: str) -> None:
        await self._call({"recipient": {"id": recipient}, "sender_action": "typing_on"})

    async def fetch_media(self, attachment: Attachment) -> tuple[bytes, str]:
        if not attachment.url:
            raise PermanentDelivery("messenger: the attachment has no url")
        return await fetch_allowed(self._session, self._media, attachment.url, attachment.content_type)

    def reply_window(self, author: str) -> datetime.timedelta:
        return datetime.timedelta(days=7) if author == "listener" else datetime.timedelta(hours=24)

    def _check_signature(self, raw: bytes, header: str) -> None:
        secret = self._settings.messenger_app_secret.get_secret_value().encode()
        expected = "sha256=" + hmac.new(secret, raw, hashlib.sha256).hexdigest()
        if not secret or not hmac.compare_digest(expected.encode(), header.lower().encode("utf-8", "replace")):
            raise BadSignature("messenger: X-Hub-Signature-256 is missing or wrong")

    async def _call(self, body: JSONObject) -> JSONObject:
        """POST to the Send API: the one place where Graph's answers and network errors become ours."""
        params = {"access_token": self._settings.messenger_page_access_token.get_secret_value()}
        try:
            async with (  # the send's timeout is :func:`timeout_unheld`'s, never aiohttp's (since 2026-12-08)
                timeout_unheld(SEND_TIMEOUT_SECONDS),
                self._session.post(self._send_url, params=params, json=body, timeout=UNTIMED) as response,
            ):
                document = _json_object(await response.read())
                if response.status < 300 and document is not None and "error" not in document:
                    return document
                if response.status < 300 and document is None:  # a captive portal's page, nothing: not Graph's answer
                    raise RetryableDelivery(f"messenger: HTTP {response.status} with an answer that was not Graph's")
                retry_after = retry_after_header(response.headers.get("Retry-After"))
                raise graph_error(response.status, document or {}, retry_after)  # a 200 with Graph's error object too
        except (aiohttp.ClientError, TimeoutError) as error:
            raise RetryableDelivery(f"messenger: network error ({type(error).__name__})") from None


def graph_error(status: int, document: JSONObject, retry_after: float | None) -> DeliveryError:
    """Map a Graph API error answer to :class:`RetryableDelivery` or :class:`PermanentDelivery`."""
    error = document.get("error")
    if not isinstance(error, dict):
        error = {}
    code, subcode = _int_or_none(error.get("code")), _int_or_none(error.get("error_subcode"))
    where = f"messenger: HTTP {status}, code {code}, subcode {subcode}"
    if code == TOKEN_REFUSED:
        reason = "the page access token is invalid or expired: renew MESSENGER_PAGE_ACCESS_TOKEN"
        return CredentialsRefused(f"{where}: {reason}", TOKEN_RETRY_SECONDS)
    if status == 429 or status >= 500 or code in RETRYABLE_CODES or error.get("is_transient") is True:
        limited = status == 429 or code in RATE_LIMIT_CODES
        return RetryableDelivery(f"{where}: try again later", retry_after, rate_limited=limited)
    reason = PERMANENT_REASONS.get((code or 0, subcode or 0)) or PERMANENT_CODES.get(code or 0, "refused")
    if (code, subcode) in BLOCKED:
        return RecipientGone(f"{where}: {reason}")
    return PermanentDelivery(f"{where}: {reason}")


def render(message: Outbound) -> list[JSONObject]:
    """The ``message`` objects to send, in order; quick replies ride on the last one."""
    text = links.plain(message.text)
    if _quick_replies_fit(message.choices):
        *first, last = split_text(text, TEXT_LIMIT)
        quick_replies = [_quick_reply(choice) for choice in message.choices]
        return [*({"text": part} for part in first), {"text": last, "quick_replies": quick_replies}]
    return [{"text": part} for part in split_text(with_numbered_list(text, message.choices), TEXT_LIMIT)]


def _quick_replies_fit(choices: tuple[Choice, ...]) -> bool:
    payloads_fit = all(0 < len(choice.value) <= QUICK_REPLY_PAYLOAD_MAX for choice in choices)
    return payloads_fit and labels_fit(choices, QUICK_REPLY_MAX, QUICK_REPLY_TITLE_MAX)


def _quick_reply(choice: Choice) -> JSONObject:
    title = truncate_label(choice.label.strip(), QUICK_REPLY_TITLE_MAX)
    return {"content_type": "text", "title": title, "payload": choice.value}


def _messaging_type(author: str) -> JSONObject:
    if author == "listener":
        return {"messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT"}
    return {"messaging_type": "RESPONSE"}


def _message_id(document: JSONObject) -> str | None:
    value = document.get("message_id")
    return value if isinstance(value, str) else None


def _json_object(raw: bytes) -> JSONObject | None:
    """Graph's answer, a JSON object; None when the body is not one (a proxy's page, nothing)."""
    try:
        document = load_json(raw, ChannelName.MESSENGER)
    except BadRequest:
        return None
    return document if isinstance(document, dict) else None


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# Reading webhook events: the body's shape as pydantic models (strict types, unknown keys ignored). A body that does
# not fit is 400, its message naming the field, never its value.


def _unicode(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("not valid Unicode text") from None
    return value


Text = Annotated[StrictStr, AfterValidator(_unicode)]
Id = Annotated[Text, StringConstraints(min_length=1)] | StrictInt  # Meta sends strings; whole numbers accepted too
MAX_TIMESTAMP_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z: beyond, not a time


class _Part(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, extra="ignore")


class _Sender(_Part):
    id: Id


class _QuickReply(_Part):
    payload: Text


class _AttachmentPayload(_Part):
    url: Text | None = None


class _Attachment(_Part):
    type: object = None
    payload: _AttachmentPayload | None = None


class _Message(_Part):
    mid: Text | None = None
    text: Text = ""
    is_echo: StrictBool = False
    # an echo's: the app the page sent it through (none: Meta's inbox); read as it is, never a 400 losing the batch
    app_id: object = None
    quick_reply: _QuickReply | None = None
    attachments: list[_Attachment] = []


class _Postback(_Part):
    mid: Text | None = None
    payload: Text = ""
    title: Text = ""
    # Meta's documented shape of a "Get Started" tapped after an m.me link, a QR code, an ad or the welcome screen;
    # only its presence is read (its ``ref`` may be missing or null: never a 400 that would lose the batch)
    referral: object = None


class _MessageEdit(_Part):
    mid: Text | None = None
    text: Text = ""
    num_edit: StrictInt | Text = 0


class _Delivery(_Part):
    watermark: StrictInt
    mids: list[Text] = []


class _Read(_Part):
    watermark: StrictInt


class _Referral(_Part):
    ref: Text = ""


class _Item(_Part):
    sender: _Sender
    recipient: object = None  # an echo's: the young person the page wrote to (read by ``_echo``, never a 400)
    timestamp: Annotated[StrictInt, Field(ge=0, le=MAX_TIMESTAMP_MS)] | None = None  # ms since 1970
    message: _Message | None = None
    postback: _Postback | None = None
    message_edit: _MessageEdit | None = None  # the ``message_edits`` webhook field: docs/channels.md
    delivery: _Delivery | None = None
    read: _Read | None = None
    referral: _Referral | None = None  # an m.me link (``?ref=``) followed into a thread the person already had


class _Entry(_Part):
    messaging: list[_Item] = []
    # the same events on a thread another app owns (Conversation Routing: a page admin in Meta's inbox, Meta's AI):
    # Meta's ``standby`` webhook field, delivered instead of ``messaging`` (``Inbound.standby``)
    standby: list[_Item] = []


class _Body(_Part):
    entry: list[_Entry]


def parse_events(
    document: object, *, max_age_ms: int | None = None, now_ms: int | None = None, get_started: str = GET_STARTED,
    app_id: str = "", human_apps: frozenset[str] = frozenset(),
) -> Batch:  # fmt: skip
    """The messages, receipts and echoes in a webhook body, every entry and every messaging item, oldest first (by
    their ``timestamp``, when every item has one; else in the body's order). A ``standby`` item (a thread another
    app owns: Conversation Routing) is read as a ``messaging`` one, its messages marked ``standby`` (the bot does not
    answer them, ``Dispatcher._process``), its postbacks and referrals left out (Meta's come without their payload).
    ``get_started``: the payload of the page's "Get Started" button (``MESSENGER_GET_STARTED_PAYLOAD``); ``app_id``:
    the gateway's app (``MESSENGER_APP_ID``), whose echoes are its own replies (:func:`_echo`); ``human_apps``: the
    apps whose echoes are a person's answer (``MESSENGER_HUMAN_ECHO_APPS``).

    An item whose ``timestamp`` is more than ``max_age_ms`` before ``now_ms`` (default: the clock) is counted in
    ``too_old`` and left out: a correctly signed body replayed long after is acknowledged and does nothing.
    """
    body = _body(document)  # malformed is 400, however old
    inbound: list[Inbound] = []
    receipts: list[Receipt] = []
    echoes: list[Echo] = []
    too_old = 0
    oldest = None if max_age_ms is None else (now_ms if now_ms is not None else int(time.time() * 1000)) - max_age_ms
    items = [(item, False) for entry in body.entry for item in entry.messaging]
    items += [(item, True) for entry in body.entry for item in entry.standby]
    if all(item.timestamp is not None for item, _ in items):  # a batch is not always in the order they were written
        items.sort(key=lambda pair: pair[0].timestamp or 0)  # stable: one time's items keep the body's order
    for item, standby in items:
        messages, statuses = _parse_item(item, get_started)
        if oldest is not None and item.timestamp is not None and item.timestamp < oldest:
            too_old += 1
            continue
        if standby:  # the young person's words on another app's thread; its buttons' taps (no payload) are not theirs
            messages = [replace(m, standby=True) for m in messages if not (m.opening or m.restart or m.menu)]
        inbound += messages
        receipts += statuses
        if item.message is not None and item.message.is_echo and (echo := _echo(item, app_id, human_apps)) is not None:
            echoes.append(echo)
    return Batch(inbound=tuple(inbound), receipts=tuple(receipts), echoes=tuple(echoes), too_old=too_old)


_FIELD = re.compile(r"[a-z_]{1,40}")  # a field of Meta's webhook, as the models above name them


def _body(document: object) -> _Body:
    try:
        return _Body.model_validate(document)
    except ValidationError as error:
        first = error.errors(include_input=False, include_url=False)[0]
        # the fields' names and the items' places only: never pydantic's own steps ("function-after[…]": a
        # validator's repr, a memory address)
        where = ".".join(str(part) for part in first["loc"] if isinstance(part, int) or _FIELD.fullmatch(part))
        raise BadRequest(f"messenger: {where or 'body'}: {first['msg']}") from None


def _parse_item(item: _Item, get_started: str) -> tuple[list[Inbound], list[Receipt]]:
    messages, receipts = _read_item(item, get_started)
    sent_at = _sent_at(item.timestamp)
    return [replace(m, sent_at=sent_at) for m in messages] if sent_at is not None else messages, receipts


def _read_item(item: _Item, get_started: str) -> tuple[list[Inbound], list[Receipt]]:
    sender = str(item.sender.id)
    if item.message is not None:
        return ([], []) if item.message.is_echo else ([_inbound_message(sender, item.timestamp, item.message)], [])
    if item.postback is not None:
        return [_inbound_postback(sender, item.timestamp, item.postback, get_started)], []
    if item.message_edit is not None:  # an edit without words or without the message it edits says nothing
        edit = item.message_edit
        return ([_inbound_edit(sender, edit.mid, edit)] if edit.mid and edit.text.strip() else []), []
    if item.delivery is not None:
        return [], _delivery_receipts(sender, item.delivery)
    if item.read is not None:
        return [], [Receipt(ChannelName.MESSENGER, sender, "read", watermark=item.read.watermark)]
    if item.referral is not None:  # the thread opened from the line's site, no words: greeted unless already talking
        mid = _mid(None, sender, item.timestamp, "referral:" + item.referral.ref)
        return [Inbound(channel=ChannelName.MESSENGER, sender=sender, message_id=mid, opening=True)], []
    return [], []


def _sent_at(timestamp: int | None) -> datetime.datetime | None:
    """When the young person did what the event says (its ``timestamp``, ms since 1970: an edit's is when it was
    edited), for the reply windows, which Meta counts from then (``Inbound.sent_at``); None without one."""
    if timestamp is None:
        return None
    return datetime.datetime.fromtimestamp(timestamp / 1000, datetime.UTC)


def _echo(item: _Item, app_id: str, human_apps: frozenset[str] = frozenset()) -> Echo | None:
    """An echo the page sent from outside the gateway: one naming no app (Meta's inbox, Business Suite, Meta's
    automated responses), one naming an app of ``human_apps``, or, with the gateway's ``app_id`` known, one naming
    another app; None for the gateway's own (its app's, or any other app's when ``app_id`` is unset: it cannot be
    told apart), or one without its recipient, its ``mid`` or anything said. ``human`` only for an app of
    ``human_apps``: nothing else in an echo tells a person's answer from an automated response's."""
    message = item.message
    assert message is not None and message.is_echo
    app = None if message.app_id is None else str(message.app_id)
    human = app is not None and app in human_apps and app != app_id
    if app is not None and not human and (not app_id or app == app_id):
        return None
    recipient = item.recipient.get("id") if isinstance(item.recipient, dict) else None
    if isinstance(recipient, bool) or not isinstance(recipient, str | int) or not str(recipient):
        return None
    if not message.mid or not (message.text.strip() or message.attachments):
        return None
    return Echo(
        channel=ChannelName.MESSENGER, recipient=str(recipient), message_id=message.mid, text=message.text,
        attachments=tuple(_attachment(a) for a in message.attachments), human=human,
    )  # fmt: skip


def _inbound_message(sender: str, timestamp: int | None, message: _Message) -> Inbound:
    payload = message.quick_reply.payload if message.quick_reply else None
    return Inbound(
        channel=ChannelName.MESSENGER,
        sender=sender,
        message_id=_mid(message.mid, sender, timestamp, payload),
        text=message.text,
        payload=payload,
        attachments=tuple(_attachment(a) for a in message.attachments),
    )


def _inbound_postback(sender: str, timestamp: int | None, postback: _Postback, get_started: str) -> Inbound:
    """A button of the page's own (the gateway sends quick replies, never postback buttons): its title is Meta's or
    the page's words, never the young person's. "Get Started" (the line's payload, or a postback with a ``referral``,
    Meta's shape of one tapped from a link) is ``restart``: no text, no payload; any other is ``menu``."""
    message_id = _mid(postback.mid, sender, timestamp, postback.payload)
    if postback.payload == get_started or postback.referral is not None:
        return Inbound(channel=ChannelName.MESSENGER, sender=sender, message_id=message_id, restart=True)
    return Inbound(
        channel=ChannelName.MESSENGER, sender=sender, message_id=message_id, text=postback.title,
        payload=postback.payload or None, menu=True,
    )  # fmt: skip


def _inbound_edit(sender: str, mid: str, edit: _MessageEdit) -> Inbound:
    """A message the young person edited: its new words (``Inbound.edited``), under an id of its own (the edited
    message's ``mid`` and how many times it was edited: Messenger allows five)."""
    return Inbound(
        channel=ChannelName.MESSENGER, sender=sender, message_id=f"{mid}#edit{edit.num_edit}", text=edit.text,
        edited=True,
    )  # fmt: skip


def _delivery_receipts(sender: str, delivery: _Delivery) -> list[Receipt]:
    mids: list[str | None] = list(delivery.mids)
    return [
        Receipt(ChannelName.MESSENGER, sender, "delivered", provider_message_id=mid, watermark=delivery.watermark)
        for mid in mids or [None]
    ]


def _attachment(attachment: _Attachment) -> Attachment:
    url = attachment.payload.url if attachment.payload else None
    kind = ATTACHMENT_KINDS.get(attachment.type, "other") if isinstance(attachment.type, str) else "other"
    return Attachment(kind=kind, url=url or None)


def _mid(mid: str | None, sender: str, timestamp: int | None, payload: str | None) -> str:
    """``mid`` when Meta gives one, else a digest of sender, time and payload (stable across retries)."""
    if mid is not None:
        return mid
    if timestamp is None:
        raise BadRequest("messenger: an event without mid has no timestamp")
    seed = f"{sender}\n{timestamp}\n{payload or ''}"
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()[:32]
