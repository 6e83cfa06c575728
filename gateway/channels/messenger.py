"""Facebook Messenger: the webhook handshake, signed event batches, and the Send API.

Inbound: ``GET /webhooks/messenger`` answers Meta's ``hub.*`` handshake (:meth:`MessengerChannel.verify`);
``POST`` carries ``{"object": "page", "entry": [{"messaging": [...]}, ...]}`` signed with
``X-Hub-Signature-256`` (HMAC-SHA256 of the raw bytes keyed with the app secret). Every entry and every
messaging item is read; echoes of the page's own messages are dropped; deliveries and reads become receipts.

Outbound: ``POST {messenger_api_url}/me/messages?access_token=…``. Bot messages go as ``RESPONSE`` (24-hour
window); a listener's as ``MESSAGE_TAG`` + ``HUMAN_AGENT`` (7 days, humans only). Choices become quick replies
when they fit (13 at most, titles of 20 characters still told apart), else a numbered list in the text.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import time
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from gateway.channels import links
from gateway.channels.base import (
    SEND_TIMEOUT,
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
    DeliveryError,
    PermanentDelivery,
    RecipientGone,
    RetryableDelivery,
)
from gateway.messages import Attachment, ChannelName, Choice, Inbound, Outbound, Receipt
from gateway.settings import Settings

TEXT_LIMIT = 2000
QUICK_REPLY_MAX = 13
QUICK_REPLY_TITLE_MAX = 20
QUICK_REPLY_PAYLOAD_MAX = 1000
MEDIA_HOSTS = frozenset({"*.fbcdn.net", "*.facebook.com", "lookaside.fbsbx.com"})
ATTACHMENT_KINDS = {"image": "image", "audio": "audio", "video": "video", "file": "file", "location": "location"}

# Graph error codes worth another try: unknown, service unavailable, and the rate limits.
RETRYABLE_CODES = frozenset({1, 2, 4, 17, 32, 613, 80006})
PERMANENT_REASONS = {
    (10, 2018278): "reply window closed (more than 24 hours since the person's last message)",
    (10, 2018065): "reply window closed for the HUMAN_AGENT tag (more than 7 days)",
    (100, 2018001): "no person matches this recipient",
    (551, 1545041): "this person is not available right now",
    (200, 2018108): "the person cannot be messaged (blocked or restricted)",
}
BLOCKED = frozenset({(200, 2018108)})  # Messenger sends no webhook when a person blocks a page: only this refusal
PERMANENT_CODES = {
    190: "the page access token is invalid or expired",
    551: "this person is not available right now",
}

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
        token = self._settings.messenger_verify_token.encode()
        given = request.query.get("hub.verify_token", "").encode("utf-8", "replace")
        if request.query.get("hub.mode") != "subscribe" or not token or not hmac.compare_digest(given, token):
            return web.Response(status=403, text="verification token does not match")
        return web.Response(text=request.query.get("hub.challenge", ""))

    async def parse(self, request: web.Request) -> Batch:
        raw = await read_body(request, self._settings.max_body_bytes, self.name)
        self._check_signature(raw, request.headers.get("X-Hub-Signature-256", ""))
        return parse_events(load_json(raw, self.name), max_age_ms=self._settings.messenger_max_event_age * 1000)

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
        secret = self._settings.messenger_app_secret.encode()
        expected = "sha256=" + hmac.new(secret, raw, hashlib.sha256).hexdigest()
        if not secret or not hmac.compare_digest(expected.encode(), header.lower().encode("utf-8", "replace")):
            raise BadSignature("messenger: X-Hub-Signature-256 is missing or wrong")

    async def _call(self, body: JSONObject) -> JSONObject:
        """POST to the Send API: the one place where Graph's answers and network errors become ours."""
        params = {"access_token": self._settings.messenger_page_access_token}
        try:
            async with self._session.post(self._send_url, params=params, json=body, timeout=SEND_TIMEOUT) as response:
                document = _json_object(await response.read())
                if response.status < 300:
                    return document
                raise graph_error(response.status, document, retry_after_header(response.headers.get("Retry-After")))
        except (aiohttp.ClientError, TimeoutError) as error:
            raise RetryableDelivery(f"messenger: network error ({type(error).__name__})") from None


def graph_error(status: int, document: JSONObject, retry_after: float | None) -> DeliveryError:
    """Map a Graph API error answer to :class:`RetryableDelivery` or :class:`PermanentDelivery`."""
    error = document.get("error")
    if not isinstance(error, dict):
        error = {}
    code, subcode = _int_or_none(error.get("code")), _int_or_none(error.get("error_subcode"))
    where = f"messenger: HTTP {status}, code {code}, subcode {subcode}"
    if status == 429 or status >= 500 or code in RETRYABLE_CODES or error.get("is_transient") is True:
        return RetryableDelivery(f"{where}: try again later", retry_after)
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


def _json_object(raw: bytes) -> JSONObject:
    try:
        document = load_json(raw, ChannelName.MESSENGER)
    except BadRequest:
        return {}
    return document if isinstance(document, dict) else {}


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# Reading webhook events. Every helper raises BadRequest naming the field, never its value.


def parse_events(document: object, *, max_age_ms: int | None = None, now_ms: int | None = None) -> Batch:
    """The messages and receipts in a webhook body, every entry and every messaging item.

    An item whose ``timestamp`` is more than ``max_age_ms`` before ``now_ms`` (default: the clock) is counted in
    ``too_old`` and left out: a correctly signed body replayed long after is acknowledged and does nothing.
    """
    inbound: list[Inbound] = []
    receipts: list[Receipt] = []
    too_old = 0
    oldest = None if max_age_ms is None else (now_ms if now_ms is not None else int(time.time() * 1000)) - max_age_ms
    for entry in _list(_object(document, "body").get("entry"), "entry"):
        for item in _list(_object(entry, "entry").get("messaging", []), "entry.messaging"):
            event = _object(item, "messaging item")
            messages, statuses = _parse_item(event)  # malformed is 400, however old
            stamp = event.get("timestamp")
            if oldest is not None and isinstance(stamp, int | float) and stamp < oldest:
                too_old += 1
                continue
            inbound += messages
            receipts += statuses
    return Batch(inbound=tuple(inbound), receipts=tuple(receipts), too_old=too_old)


def _parse_item(item: JSONObject) -> tuple[list[Inbound], list[Receipt]]:
    sender = _id(item.get("sender"), "sender")
    timestamp = item.get("timestamp")
    if "message" in item:
        message = _object(item["message"], "message")
        if message.get("is_echo"):
            return [], []
        return [_inbound_message(sender, timestamp, message)], []
    if "postback" in item:
        return [_inbound_postback(sender, timestamp, _object(item["postback"], "postback"))], []
    if "delivery" in item:
        return [], _delivery_receipts(sender, _object(item["delivery"], "delivery"))
    if "read" in item:
        watermark = _int(_object(item["read"], "read").get("watermark"), "read.watermark")
        return [], [Receipt(ChannelName.MESSENGER, sender, "read", watermark=watermark)]
    return [], []


def _inbound_message(sender: str, timestamp: object, message: JSONObject) -> Inbound:
    quick_reply = message.get("quick_reply")
    payload = _str(_object(quick_reply, "quick_reply").get("payload"), "quick_reply.payload") if quick_reply else None
    return Inbound(
        channel=ChannelName.MESSENGER,
        sender=sender,
        message_id=_mid(message, sender, timestamp, payload),
        text=_str(message.get("text", ""), "message.text"),
        payload=payload,
        attachments=tuple(_attachment(a) for a in _list(message.get("attachments", []), "attachments")),
        received_at=_time(timestamp),
    )


def _inbound_postback(sender: str, timestamp: object, postback: JSONObject) -> Inbound:
    payload = _str(postback.get("payload", ""), "postback.payload")
    return Inbound(
        channel=ChannelName.MESSENGER,
        sender=sender,
        message_id=_mid(postback, sender, timestamp, payload),
        text=_str(postback.get("title", ""), "postback.title"),
        payload=payload,
        received_at=_time(timestamp),
    )


def _delivery_receipts(sender: str, delivery: JSONObject) -> list[Receipt]:
    watermark = _int(delivery.get("watermark"), "delivery.watermark")
    mids: list[str | None] = [_str(mid, "delivery.mids") for mid in _list(delivery.get("mids", []), "delivery.mids")]
    return [
        Receipt(ChannelName.MESSENGER, sender, "delivered", provider_message_id=mid, watermark=watermark)
        for mid in mids or [None]
    ]


def _attachment(value: object) -> Attachment:
    attachment = _object(value, "attachment")
    payload = attachment.get("payload")
    url = _str(payload.get("url"), "attachment.payload.url") if isinstance(payload, dict) else None
    kind = ATTACHMENT_KINDS.get(str(attachment.get("type")), "other")
    return Attachment(kind=kind, url=url or None)


def _mid(event: JSONObject, sender: str, timestamp: object, payload: str | None) -> str:
    """``mid`` when Meta gives one, else a digest of sender, time and payload (stable across retries)."""
    mid = event.get("mid")
    if mid is not None:
        return _str(mid, "mid")
    seed = f"{sender}\n{_int(timestamp, 'timestamp')}\n{payload or ''}"
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()[:32]


def _time(timestamp: object) -> datetime.datetime | None:
    if timestamp is None:
        return None
    try:
        return datetime.datetime.fromtimestamp(_int(timestamp, "timestamp") / 1000, tz=datetime.UTC)
    except (OverflowError, ValueError, OSError):
        raise BadRequest("messenger: timestamp is out of range") from None


def _object(value: object, what: str) -> JSONObject:
    if not isinstance(value, dict):
        raise BadRequest(f"messenger: {what} is not an object")
    return value


def _list(value: object, what: str) -> list[object]:
    if not isinstance(value, list):
        raise BadRequest(f"messenger: {what} is not a list")
    return value


def _str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise BadRequest(f"messenger: {what} is not a string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(f"messenger: {what} is not valid Unicode text") from None
    return value


def _int(value: object, what: str) -> int:
    number = _int_or_none(value)
    if number is None:
        raise BadRequest(f"messenger: {what} is not a whole number")
    return number


def _id(value: object, what: str) -> str:
    """A ``{"id": "…"}`` object's id: Meta sends strings; whole numbers are accepted too."""
    identifier = _object(value, what).get("id")
    if isinstance(identifier, str) and identifier:
        return identifier
    return str(_int(identifier, f"{what}.id"))
