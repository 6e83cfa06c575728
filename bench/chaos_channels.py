"""The three platforms of ``bench/chaos.py``: each one's signed webhooks, and each one's fake API noting the replies
it accepted (which instance sent each, when, and whether that instance was still waiting for the answer).

The fakes are ``gateway/testing.py``'s (the tests' own), with one route more each: an instance's base URL is
``<fake>/<instance>-<generation>``, so the path says who sent a reply. A fake keeps no request log here (it would
only grow): it notes a :class:`Copy` per reply it answered with a 2xx.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

from aiohttp import web

from bench.load import SECRET, Step
from gateway.messages import ChannelName
from gateway.testing import (
    ACCOUNT_SID,
    BOT_TOKEN,
    WHATSAPP_FROM,
    FakeAPI,
    FakeGraphAPI,
    FakeTelegramAPI,
    FakeTwilioAPI,
    messenger_body,
    messenger_message,
    sign_twilio,
    signed_messenger,
    telegram_callback,
    telegram_headers,
    telegram_update,
    twilio_form,
)

CHANNELS = (ChannelName.MESSENGER, ChannelName.WHATSAPP, ChannelName.TELEGRAM)
PUBLIC_URL = "http://127.0.0.1:8080"  # the load balancer's address: Twilio signs it, both instances check it
TWILIO_TOKEN = "twilio-auth-token"  # FakeTwilioAPI's default auth token
TELEGRAM_SECRET = "bench-telegram-secret"
URL_VARIABLES = {  # the environment variable giving each channel's API base URL
    ChannelName.MESSENGER: "MESSENGER_API_URL",
    ChannelName.WHATSAPP: "TWILIO_API_URL",
    ChannelName.TELEGRAM: "TELEGRAM_API_URL",
}


def channels_env() -> dict[str, str]:
    """The settings that turn WhatsApp (Twilio) and Telegram on, beside ``bench/load.py``'s Messenger ones."""
    return {
        "GATEWAY_PUBLIC_URL": PUBLIC_URL,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": TWILIO_TOKEN, "TWILIO_WHATSAPP_FROM": WHATSAPP_FROM,
        "TELEGRAM_BOT_TOKEN": BOT_TOKEN, "TELEGRAM_WEBHOOK_SECRET": TELEGRAM_SECRET,
    }  # fmt: skip


@dataclass(frozen=True, slots=True)
class Copy:
    """One reply a fake accepted (answered 2xx)."""

    recipient: str
    text: str
    provider_id: str  # the id the fake gave it: what the transcript records once the gateway heard the answer
    sender: str  # the instance and its generation, from the path
    at: float  # monotonic
    held: float  # s from the request's arrival to its answer (a hang holds it)
    waited: float | None  # s from its arrival to the gateway hanging up (its send timed out, or it died), if it did
    # before the answer: then the gateway never heard of this copy

    @property
    def unanswered(self) -> bool:
        return self.waited is not None


class Noting(FakeAPI):
    """A fake noting the replies it accepted as :class:`Copy` (mixed in before one of ``gateway/testing.py``'s)."""

    channel: ChannelName

    def __init__(self) -> None:
        super().__init__()
        self.copies: list[Copy] = []
        self.on_accept: Callable[[ChannelName, Copy, str], None] | None = None  # the platform's receipts
        self.app.middlewares.insert(0, self._arrival)  # outermost: before a hang holds the request

    @web.middleware
    async def _arrival(self, request: web.Request, handler: Any) -> web.StreamResponse:
        request["arrived"] = time.monotonic()
        watch = asyncio.create_task(_note_hang_up(request))
        try:
            response: web.StreamResponse = await handler(request)
        except ConnectionResetError:  # the gateway gone before the request's body came (a kill): nothing accepted,
            return web.Response(status=400)  # nothing noted; unhandled, aiohttp logged a traceback in the run's output
        finally:
            watch.cancel()
        return response

    def reply(self, path: str, raw: bytes, answer: Any) -> tuple[str, str, str] | None:
        """(recipient, text, provider id) of an accepted request that sent a reply; None for another call."""
        raise NotImplementedError

    def status_callback(self, raw: bytes) -> str:
        """The URL the gateway asked status callbacks to (Twilio's ``StatusCallback``), or ''."""
        return ""

    async def _record(self, request: web.Request, raw: bytes, status: int, answer: Any = None) -> None:
        await super()._record(request, raw, status, answer)
        self.requests.clear()
        if 200 <= status < 300 and (found := self.reply(request.path, raw, answer)) is not None:
            transport, now = request.transport, time.monotonic()
            by = request.path.strip("/").split("/", 1)[0]
            gone = request.get("gone", now) if transport is None or transport.is_closing() else None
            waited = None if gone is None else gone - request["arrived"]
            copy = Copy(*found, by, now, now - request["arrived"], waited)
            self.copies.append(copy)
            if self.on_accept is not None:
                self.on_accept(self.channel, copy, self.status_callback(raw))


async def _note_hang_up(request: web.Request) -> None:
    """Note in ``request["gone"]`` when its client hung up (to a tenth of a second), while it is being answered."""
    while (transport := request.transport) is not None and not transport.is_closing():
        await asyncio.sleep(0.1)
    request["gone"] = time.monotonic()


class ChaosGraph(Noting, FakeGraphAPI):
    channel = ChannelName.MESSENGER  # its ``/{version}/me/messages`` route takes the instance's prefix as it is

    def reply(self, path: str, raw: bytes, answer: Any) -> tuple[str, str, str] | None:
        body = json.loads(raw)
        if "message" not in body or "message_id" not in answer:
            return None  # a typing indicator, or Graph's error object answered with a 200 (a rate limit's)
        return body["recipient"]["id"], str(body["message"].get("text", "")), answer["message_id"]


class ChaosTwilio(Noting, FakeTwilioAPI):
    """Twilio keeps every message a young person sent (``receive``, by the platforms' side before its webhook) and
    lists them to each instance's catch-up under its prefix, as it does under its own address."""

    channel = ChannelName.WHATSAPP

    def __init__(self) -> None:
        super().__init__()
        self.app.router.add_post("/{by}/2010-04-01/Accounts/{sid}/Messages.json", self._messages)

    async def _serve_media(self, request: web.Request) -> web.Response:
        """The list (a GET of ``Messages.json``) under an instance's prefix: read as Twilio's own address, so that
        its ``next_page_uri`` is one the client puts after its base URL (the prefix) once."""
        _, _, rest = request.path.lstrip("/").partition("/")
        if rest.startswith("2010-04-01/"):
            own = request.rel_url.with_path("/" + rest).with_query(request.rel_url.query)  # with_path drops the query
            return await super()._serve_media(request.clone(rel_url=own))
        return await super()._serve_media(request)

    def reply(self, path: str, raw: bytes, answer: Any) -> tuple[str, str, str] | None:
        form = dict(parse_qsl(raw.decode(), keep_blank_values=True))
        if "To" not in form:
            return None  # the catch-up's read of the list, or of a message's media
        return form["To"], form.get("Body", ""), answer["sid"]

    def status_callback(self, raw: bytes) -> str:
        return dict(parse_qsl(raw.decode(), keep_blank_values=True)).get("StatusCallback", "")


class ChaosTelegram(Noting, FakeTelegramAPI):
    channel = ChannelName.TELEGRAM

    def __init__(self) -> None:
        super().__init__()
        self.app.router.add_post("/{by}/bot{token}/{method}", self._method)

    def reply(self, path: str, raw: bytes, answer: Any) -> tuple[str, str, str] | None:
        if not path.endswith("/sendMessage"):
            return None  # getMe, answerCallbackQuery, sendChatAction
        form = dict(parse_qsl(raw.decode(), keep_blank_values=True))
        return form["chat_id"], form.get("text", ""), str(answer["result"]["message_id"])


def fakes() -> list[Noting]:
    return [ChaosGraph(), ChaosTwilio(), ChaosTelegram()]


def sender_id(channel: ChannelName, slot: int, number: int) -> str:
    """A young person's address on ``channel``: a page-scoped id, a WhatsApp number, a Telegram chat id."""
    if channel is ChannelName.WHATSAPP:
        return f"whatsapp:+33{slot:03d}{number:06d}"
    return f"{7 if channel is ChannelName.MESSENGER else 5}2{slot:04d}{number:08d}"


@dataclass(frozen=True, slots=True)
class Webhook:
    path: str
    raw: bytes
    headers: dict[str, str]
    message_id: str  # the platform's id for the message: the gateway's de-duplication key


def webhook(channel: ChannelName, sender: str, number: int, index: int, step: Step) -> Webhook:
    """The signed request each platform posts for ``step``, the ``index``-th message of ``sender``; ``number``
    grows with each message of the run (a Telegram ``update_id``, a Twilio ``MessageSid``)."""
    if channel is ChannelName.WHATSAPP:  # free-form WhatsApp has no buttons: the young person types the label
        form = twilio_form(sender, step.text, message_sid=f"SM{number:032x}")
        signature = sign_twilio(TWILIO_TOKEN, PUBLIC_URL + "/webhooks/whatsapp", form)
        headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature}
        return Webhook("/webhooks/whatsapp", urlencode(form).encode(), headers, form["MessageSid"])
    if channel is ChannelName.TELEGRAM:  # a choice is a tap on the keyboard under the bot's message
        chat = int(sender)
        update = (
            telegram_callback(number, chat, step.payload, [(step.text, step.payload)], query_id=f"q{number}")
            if step.payload is not None
            else telegram_update(number, chat, step.text)
        )
        return Webhook(
            "/webhooks/telegram", json.dumps(update).encode(), telegram_headers(TELEGRAM_SECRET), str(number)
        )
    mid = f"m_{sender}_{index}"
    raw, headers = signed_messenger(
        SECRET, messenger_body([messenger_message(sender, step.text, mid, quick_reply=step.payload)])
    )
    return Webhook("/webhooks/messenger", raw, headers, mid)
