"""Telegram: webhook updates checked by their secret token, the Bot API through python-telegram-bot.

Inbound: Telegram posts one JSON ``Update`` per request with ``X-Telegram-Bot-Api-Secret-Token`` (set by
:meth:`TelegramChannel.set_webhook`). ``update_id`` is the de-duplication key. Only private chats are read, and the
chat's service messages (a pinned message, an auto-delete timer) are no messages. A group's messages are never a
conversation: the bot added to a group or a supergroup (by mistake, by a class's group, by trolls) tells it once,
French then English, to write to it in private, and leaves it (``leaveChat``); a channel is left without a word. A
forwarded message is someone else's words: marked with an attachment of kind ``forwarded``. A button tap
(``callback_query``) is answered with ``answerCallbackQuery`` in the background, so the young person's spinner stops
whatever happens next. A young person who blocks the bot (``my_chat_member``, status ``kicked``) has left: a
:class:`Departure`; ``member`` (unblocked, restarted) lifts it.

Outbound: ``sendMessage`` with an inline keyboard for choices, one button per row; ``callback_data`` is the
choice's value when it fits in 64 bytes, else ``c:<number>``, read back as the answer ``<number>`` (the engine
understands "2"). Texts are split at 4096 UTF-16 units; helpline numbers and URLs go as ``phone_number`` and
``url`` entities, which Telegram's apps make tappable (``tel:`` links are not allowed in ``text_link``). PTB's
errors become ours in :meth:`TelegramChannel._call`. The calls go through a plain ``telegram.Bot``: webhooks are
read by our own server, so PTB's ``Application`` (updater, handlers, job queue) would have nothing to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hmac
import json
import logging
import re
import time
import warnings
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from http import HTTPStatus
from typing import Any, TypeVar

import aiohttp
from aiohttp import web
from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    MaybeInaccessibleMessage,
    Message,
    MessageEntity,
    Update,
)
from telegram import error as ptb
from telegram.constants import ChatAction, ChatMemberStatus, ChatType
from telegram.request import HTTPXRequest
from telegram.warnings import PTBDeprecationWarning
from yarl import URL

from gateway.channels import links
from gateway.channels.base import (
    SEND_TIMEOUT_SECONDS,
    Batch,
    MediaSource,
    fetch_allowed,
    is_contact_card,
    load_json,
    read_body,
    send_parts,
    split_text,
    with_numbered_list,
)
from gateway.errors import (
    BadRequest,
    BadSignature,
    ConfigError,
    CredentialsRefused,
    DeliveryError,
    PermanentDelivery,
    RecipientGone,
    RetryableDelivery,
)
from gateway.loop_watch import timeout_unheld
from gateway.messages import FORWARDED, Attachment, ChannelName, Choice, Departure, Inbound, Outbound
from gateway.settings import Settings
from gateway.supervisor import where

TEXT_LIMIT = 4096  # UTF-16 code units
KEYBOARD_MAX = 100
CALLBACK_DATA_MAX = 64  # bytes
INDEX_PREFIX = "c:"
# Telegram's own command for its START button, "Restart bot" and a deep link (``t.me/<bot>?start=<parameter>``: one
# word of A-Z, a-z, 0-9, _ and -), also typed: ``Inbound.restart``, never the young person's words
START_COMMAND = re.compile(r"/start(@\w+)?(\s+[\w-]{1,64})?", re.IGNORECASE | re.ASCII)
FILE_PREFIX = "tg-file:"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
WEBHOOK_PATH = "/webhooks/telegram"
ALLOWED_UPDATES = ["message", "edited_message", "callback_query", "my_chat_member"]
WEBHOOK_PORTS = frozenset({443, 80, 88, 8443})
API_HOST = "api.telegram.org"
# Service messages Telegram posts in a private chat as "message" updates, none of them written by the young person:
# a message pinned, the chat's auto-delete timer set (a young person hiding the chat), a live location's alert.
SERVICE = (
    "pinned_message", "message_auto_delete_timer_changed", "write_access_allowed", "chat_background_set",
    "proximity_alert_triggered", "forum_topic_created", "forum_topic_edited", "forum_topic_closed",
    "forum_topic_reopened", "general_forum_topic_hidden", "general_forum_topic_unhidden",
)  # fmt: skip
# Chats of many (a group, a supergroup, a channel): never a helpline conversation, left as soon as the bot is in one.
GROUPS = (ChatType.GROUP, ChatType.SUPERGROUP)
# Chats left in a minute with a word and a log line each: a group told is one of the bot's messages, counted by
# Telegram against the bot's whole rate (the young people's replies too). Past it (a troll adding the bot to many
# groups), the next ones are left without a word and without a line each, one WARNING saying so.
GROUPS_TOLD_PER_MINUTE = 20
PRESENT = (ChatMemberStatus.MEMBER, ChatMemberStatus.ADMINISTRATOR, ChatMemberStatus.RESTRICTED)
LEAVING_SECONDS = 60.0  # a chat being left is left once: the addition's my_chat_member and its service message
# Told to a group once, French then English, before the bot leaves it; ``{private}`` is the link to the bot's chat.
IN_A_GROUP = (
    "Je ne réponds pas dans les groupes 🙏 Pour parler en toute confidentialité à un·e écoutant·e, écris-moi en"
    " privé : {private}. Je quitte ce groupe.\n\n"
    "I don't answer in groups 🙏 To talk in confidence with a listener, write to me in private: {private}. I'm"
    " leaving this group."
)
# What a young person may share that has neither words nor a file we read: told as "other", its content not kept
# (a forwarded story is someone's post about them; a checklist, a poll, a contact card, a sticker, a game…).
SHARED_OTHER = ("contact", "sticker", "poll", "dice", "story", "checklist", "game", "paid_media", "giveaway", "invoice")
MALFORMED = (TypeError, ValueError, KeyError, AttributeError, IndexError, OverflowError, OSError, RecursionError)

# Refusals that no retry changes; checked before NetworkError, of which BadRequest is a subclass. Forbidden (the
# bot was blocked by the user, or the account is deleted) is the young person gone: checked first.
REFUSED = (ptb.BadRequest, ptb.ChatMigrated, ptb.Conflict, ptb.EndPointNotFound)
# The bot's token refused (PTB's InvalidToken: the Bot API's 401 "Unauthorized", a token revoked in @BotFather; its
# 404, a token malformed): the line's, not this young person's. No send of any chat goes until TELEGRAM_BOT_TOKEN is
# set again: the replies wait (CredentialsRefused), the Bot API asked again once a minute (gateway/outbox.py).
TOKEN_RETRY_SECONDS = 60.0
# Telegram's descriptions of an error told as it wrote them: only those known here, compared in lower case (PTB
# takes "Bad Request: " off and capitalizes what is left), setWebhook's "Bad webhook: …" among them in their known
# forms; any other is told by its class alone. Until 2026-12-08 any description of words only (no digit, no markup:
# DESCRIPTION, a pattern) was told as it came, and a username is words only: a description naming the young person's
# went to the outbox's WARNING line, to the failure kept for the listener, to the folded line of a failed button
# answer (tests/e2e/test_provider_error_privacy.py); and, until 2026-12-08 too, any description beginning "bad
# webhook" was told whatever followed, at any call (tests/channels/test_telegram.py).
KNOWN_DESCRIPTIONS = frozenset({
    "forbidden: bot was blocked by the user", "forbidden: user is deactivated",
    "forbidden: bot can't initiate conversation with a user", "forbidden: bot can't send messages to bots",
    "forbidden: bot was kicked from the group chat", "forbidden: bot was kicked from the supergroup chat",
    "forbidden: bot was kicked from the channel chat", "forbidden: bot is not a member of the group chat",
    "forbidden: bot is not a member of the supergroup chat", "forbidden: bot is not a member of the channel chat",
    "chat not found", "user not found", "peer_id_invalid", "chat_write_forbidden", "button_data_invalid",
    "message is too long", "message text is empty", "message to edit not found", "message to be replied not found",
    "query is too old and response timeout expired or query id is invalid", "query is too old",
    "have no rights to send a message", "not enough rights to send text messages to the chat",
    "wrong file identifier/http url specified", "invalid file_id", "file is too big",
    "group chat was upgraded to a supergroup chat", "unauthorized", "not found", "too many requests",
    "internal server error", "bad gateway",
    "bad webhook: https url must be provided for webhook", "bad webhook: an https url must be provided for webhook",
    "bad webhook: webhook can be set up only on ports 80, 88, 443 or 8443",
    "bad webhook: failed to resolve host: name or service not known",
})  # fmt: skip

T = TypeVar("T")
logger = logging.getLogger(__name__)


class TelegramChannel:
    """The Telegram adapter. Implements Channel, Lifecycle, TypingIndicator and MediaFetcher."""

    name = ChannelName.TELEGRAM

    def __init__(self, settings: Settings, session: aiohttp.ClientSession) -> None:
        self._settings = settings
        self._session = session
        api = settings.telegram_api_url.rstrip("/")
        token = settings.telegram_bot_token.get_secret_value()
        # The send timeout of every channel, not PTB's 5 s: a Bot API slow for 5–15 s had each reply it held sent
        # twice (the first request timed out, was taken all the same, and went again). It is ours, every call's
        # (:func:`_within`: ``timeout_unheld``), since 2026-12-08: PTB's (httpx's, through anyio) read and write
        # timeouts are off, else one due with an answer that came while the process was frozen could still win on
        # resume (the reply taken for timed out and sent again: tests/test_freeze.py, one run in two or three). A
        # connect or a wait for the pool keeps PTB's bound: nothing of the request has left then.
        limit = SEND_TIMEOUT_SECONDS
        request = _Requests(connect_timeout=limit, read_timeout=None, write_timeout=None)
        self._bot = Bot(
            token, base_url=f"{api}/bot", base_file_url=f"{api}/file/bot", request=request
        )  # no Application
        self._media = MediaSource(self.name, allowed_hosts=frozenset({API_HOST, URL(api).host or ""}))
        self._answering: set[asyncio.Task[None]] = set()
        self._answers_failing = _FailingCalls("answerCallbackQuery")
        self._leaving: dict[int, float] = {}  # the groups and channels being left, when (time.monotonic())
        self._left: list[float] = []  # when chats were left, the last minute (time.monotonic())
        self._leaving_failing = _FailingCalls("leaving a group (sendMessage, leaveChat)")
        self._refused_at_start: CredentialsRefused | None = None  # the token refused by getMe at start, until taken

    async def start(self, *, reachable: bool = False) -> None:
        """Open PTB's HTTP clients and check the token with getMe. Neither a token refused nor the Bot API out of
        reach stops the start-up (one channel's failure must not take the web chat and the other channels down with
        it, nor make a service manager restart the gateway in a loop): Telegram's replies wait in the outbox. Out of
        reach is a warning; a token refused is told and checked again by :meth:`confirm_token`. With ``reachable``
        (a command that only talks to the Bot API), out of reach is a RetryableDelivery and a token refused a
        ConfigError instead."""
        try:
            await _within(self._bot.initialize())
        except ptb.InvalidToken:
            if reachable:
                raise ConfigError("TELEGRAM_BOT_TOKEN was refused by the Telegram API") from None
            self._refused_at_start = _token_refused("telegram: InvalidToken at start (getMe)")
        except (ptb.NetworkError, TimeoutError) as error:
            if reachable:
                raise RetryableDelivery(f"telegram: network error ({type(error).__name__})") from None
            logger.warning(
                "telegram: the Telegram API is unreachable at start-up (%s): serving all the same, its replies wait"
                " in the outbox until it answers",
                type(error).__name__,
            )
        except (ptb.TelegramError, *MALFORMED) as error:  # a proxy's 403 page: PTB quotes it, the token too
            failure = _ours(error) if isinstance(error, ptb.TelegramError) else _not_the_apis(type(error).__name__)
            if reachable:
                raise failure from None
            logger.warning("telegram: getMe failed at start-up (%s): serving all the same, its replies wait in the"
                           " outbox until the Bot API answers", failure)  # fmt: skip

    async def confirm_token(
        self, refused: Callable[[str, CredentialsRefused], None], accepted: Callable[[str], None]
    ) -> None:
        """A supervised worker: a token refused at start (:meth:`start`) is told at once (``refused``: the outbox's
        one ``alert:`` line, ``/readyz``'s ``channels_refused``, the metric), then getMe is asked again every
        ``TELEGRAM_TOKEN_RETRY_SECONDS`` until the Bot API takes it (``accepted``: ``alert over``). Then, or when the
        token was taken at start, it waits for the gateway's end: a send refused later is the outbox's to tell."""
        if self._refused_at_start is not None:
            refused(self.name.value, self._refused_at_start)
            while self._refused_at_start is not None:
                await asyncio.sleep(self._settings.telegram_token_retry_seconds)
                # still refused, or out of reach (no answer within the send timeout: TimeoutError)
                with contextlib.suppress(ptb.InvalidToken, ptb.NetworkError, TimeoutError):
                    await _within(self._bot.initialize())
                    self._refused_at_start = None
            accepted(self.name.value)
        await asyncio.Event().wait()

    async def stop(self) -> None:
        """Let pending answerCallbackQuery calls and groups being left finish, then close PTB's HTTP clients."""
        await asyncio.gather(*self._answering, return_exceptions=True)  # each failure logged by its task's callback
        await self._bot.shutdown()

    async def parse(self, request: web.Request) -> Batch:
        raw = await read_body(request, self._settings.max_body_bytes, self.name)
        self._check_secret(request.headers.get(SECRET_HEADER, ""))
        update = self._update(load_json(raw, self.name))
        if update.callback_query is not None:
            self._answer_in_background(update.callback_query.id)
        shared = _shared_chat(update)
        if shared is not None:
            self._leave_in_background(*shared)
        inbound = _inbound(update)
        departure = _departure(update)
        return Batch(inbound=(inbound,) if inbound else (), departures=(departure,) if departure else ())

    def acknowledge(self) -> web.Response:
        return web.Response(text="ok")

    async def send(self, message: Outbound, first_part: int = 0) -> str | None:
        text, keyboard = render(message)
        parts = split_text(text, TEXT_LIMIT, _utf16_length)

        async def send_one(index: int, part: str) -> str | None:
            markup = keyboard if index == len(parts) - 1 else None
            entities = link_entities(part) or None
            request = self._bot.send_message(message.recipient, part, reply_markup=markup, entities=entities)
            sent = await self._call(request)
            if not isinstance(sent, Message):  # a 200 whose ``result`` is null: nothing says it was sent
                raise _not_the_apis("no message")
            return str(sent.message_id)

        return await send_parts(parts, send_one, first_part)

    async def typing(self, recipient: str) -> None:
        await self._call(self._bot.send_chat_action(chat_id=recipient, action=ChatAction.TYPING))

    async def fetch_media(self, attachment: Attachment) -> tuple[bytes, str]:
        if not (attachment.url or "").startswith(FILE_PREFIX):
            raise PermanentDelivery("telegram: the attachment is not a Telegram file")
        file = await self._call(self._bot.get_file((attachment.url or "").removeprefix(FILE_PREFIX)))
        if not file.file_path:
            raise PermanentDelivery("telegram: the file cannot be downloaded")
        return await fetch_allowed(self._session, self._media, file.file_path, attachment.content_type)

    async def set_webhook(self) -> None:
        """Register ``{public_url}/webhooks/telegram`` with the secret token and the updates we read.

        Pending updates are kept: they are young people's messages sent while no webhook was set.
        """
        url = webhook_url(self._settings)
        secret = self._settings.telegram_webhook_secret.get_secret_value()
        await self._call(self._bot.set_webhook(url=url, secret_token=secret, allowed_updates=ALLOWED_UPDATES))

    def _check_secret(self, given: str) -> None:
        secret = self._settings.telegram_webhook_secret.get_secret_value().encode()
        if not secret or not hmac.compare_digest(given.encode("utf-8", "replace"), secret):
            raise BadSignature(f"telegram: {SECRET_HEADER} is missing or wrong")

    def _update(self, document: object) -> Update:
        if not isinstance(document, dict) or _int_or_none(document.get("update_id")) is None:
            raise BadRequest("telegram: the body is not an update")
        try:
            update = Update.de_json(document, self._bot)
        except MALFORMED:
            raise BadRequest("telegram: the update is malformed") from None
        if not _whole(update):
            raise BadRequest("telegram: the update lacks a chat or a sender")
        return update

    def _answer_in_background(self, query_id: str) -> None:
        self._in_background(self._answer(query_id))

    def _in_background(self, call: Coroutine[Any, Any, None]) -> None:
        """A Bot API call made for one update beside its webhook (a tap's answer, a group left): kept until done,
        awaited by :meth:`stop`; an error it did not expect (a bug: it handles the API's own) is one ERROR line by
        class and place, never the update's ids, never "Task exception was never retrieved" at some later moment."""
        task = asyncio.create_task(call)
        self._answering.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._answering.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            logger.error("telegram: a call made beside a webhook failed with %s at %s", type(exc).__name__, where(exc))

    async def _answer(self, query_id: str) -> None:
        try:
            await self._call(self._bot.answer_callback_query(query_id))
        except DeliveryError as error:  # the button's spinner then stops by itself after a few seconds
            self._answers_failing.failed(error)
        else:
            self._answers_failing.answered()

    def _leave_in_background(self, chat_id: int, tell: bool) -> None:
        now = time.monotonic()
        self._leaving = {chat: at for chat, at in self._leaving.items() if now - at < LEAVING_SECONDS}
        if chat_id in self._leaving:
            return
        self._leaving[chat_id] = now
        self._left = [at for at in self._left if now - at < LEAVING_SECONDS]
        self._left.append(now)
        crowded = len(self._left) > GROUPS_TOLD_PER_MINUTE
        if len(self._left) == GROUPS_TOLD_PER_MINUTE + 1:
            logger.warning("telegram: the bot added to more than %d groups or channels in a minute: the next ones are "
                           "left without a word", GROUPS_TOLD_PER_MINUTE)  # fmt: skip
        self._in_background(self._leave(chat_id, tell and not crowded, quiet=crowded))

    async def _leave(self, chat_id: int, tell: bool, *, quiet: bool = False) -> None:
        """Tell a group to write in private (``tell``), then leave it: a failure to tell still leaves. Logged
        without the chat's id or title (``quiet``: not logged, one of many at once)."""
        failure: DeliveryError | None = None
        if tell:
            text = IN_A_GROUP.format(private=self._private_link())
            try:
                await self._call(self._bot.send_message(chat_id, text, entities=link_entities(text) or None))
            except DeliveryError as error:  # a group where the bot may not write: left all the same
                failure = error
        try:
            await self._call(self._bot.leave_chat(chat_id))
        except DeliveryError as error:
            failure = error
        if failure is not None:
            self._leaving_failing.failed(failure)
            return
        self._leaving_failing.answered()
        if quiet:
            return
        logger.info("telegram: the bot was in a group or a channel: %s, and left it",
                    "told it to write in private" if tell else "said nothing")  # fmt: skip

    def _private_link(self) -> str:
        """``https://t.me/<the bot's username>`` (known from getMe at start), else how to find it in the app."""
        with contextlib.suppress(RuntimeError):  # getMe not answered yet
            return f"https://t.me/{self._bot.username}"
        return "touche mon nom / tap my name"

    async def _call(self, request: Awaitable[T]) -> T:
        """Await one Bot API call, within the send timeout (:func:`_within`): the one place where PTB's errors become
        ours."""
        try:
            return await _within(request)
        except TimeoutError:  # our deadline (PTB's read and write timeouts are off): as PTB's TimedOut was
            raise RetryableDelivery("telegram: network error (TimedOut)") from None
        except ptb.RetryAfter as error:
            raise RetryableDelivery("telegram: flood control", _seconds(error), rate_limited=True) from None
        except _FloodControl:  # a 429 telling no retry_after: the channel paused for the reply's backoff
            raise RetryableDelivery("telegram: flood control", rate_limited=True) from None
        except ptb.TelegramError as error:
            raise _ours(error) from None
        except (KeyError, TypeError, AttributeError, ValueError) as error:  # PTB reading a 200 that is not its answer
            raise _not_the_apis(type(error).__name__) from None


async def _within(call: Awaitable[T]) -> T:
    """``call`` within ``SEND_TIMEOUT_SECONDS``, a deadline reached late because the loop was held (a frozen process)
    giving 1 s more to read an answer that came meanwhile (:func:`gateway.loop_watch.timeout_unheld`, since
    2026-12-08; TimeoutError past it)."""
    async with timeout_unheld(SEND_TIMEOUT_SECONDS):
        return await call


def _token_refused(said: str) -> CredentialsRefused:
    """The bot's token refused (at a send, or by getMe at start), told without it: PTB's message at start quotes it."""
    reason = "the bot token is refused (revoked in @BotFather, or wrong): set TELEGRAM_BOT_TOKEN again"
    return CredentialsRefused(f"{said}: {reason}", TOKEN_RETRY_SECONDS)


def _known(description: str) -> bool:
    """Whether ``description`` (PTB's message) is one of Telegram's that name nobody (:data:`KNOWN_DESCRIPTIONS`)."""
    said = description.strip().lower()
    return said in KNOWN_DESCRIPTIONS


def _not_the_apis(what: str) -> RetryableDelivery:
    """A success status whose answer is not the Bot API's (JSON without ``result``, a result that is not what was
    asked): retried, as a proxy's page is (:func:`_ours`); until 2026-12-05 PTB's KeyError or TypeError escaped the
    adapter and the outbox logged an "unexpected" ERROR for it."""
    return RetryableDelivery(f"telegram: {what}, from an answer that was not the Bot API's (a proxy at its address?)")


def _ours(error: ptb.TelegramError) -> DeliveryError:
    """PTB's error as ours, told in words that are safe to log, store as a send's failure and show a listener.

    PTB's message is not: for an answer that is not the Bot API's JSON (a proxy's or a firewall's error page at
    ``TELEGRAM_API_URL``) it quotes the whole raw answer, which may quote the request's URL and so the bot's token,
    and it adds an answer's unknown parameters as they came. Telegram's own description is kept only when it is
    one we know (:data:`KNOWN_DESCRIPTIONS`: "Forbidden: bot was blocked by the user", "Chat not found"); else the
    class alone (until 2026-12-08 any description of words only: a username is one).
    An answer that was not the Bot API's decides nothing about the young person: a 403 page is not "blocked by the
    user" (RecipientGone would stop every reply to them), a 404 page is not a refusal, a 200 page (a captive portal,
    a cache) or an empty 200 is not a send: retried, as an outage is. PTB raises the error pages' from its parse's
    TelegramError, and a success status's as that TelegramError itself, from the JSON decoder's ValueError: until
    2026-12-04 the latter failed the reply for good."""
    name = type(error).__name__
    if isinstance(error.__cause__, (ptb.TelegramError, ValueError)):  # PTB could not read the answer as JSON
        return _not_the_apis(name)
    said = f"telegram: {name}: {error.message}" if _known(error.message) else f"telegram: {name}"
    if isinstance(error, ptb.Forbidden):  # the bot blocked by the user, or the account deleted: the young person gone
        return RecipientGone(said)
    if isinstance(error, ptb.InvalidToken):  # every chat's sends alike: the line's token, never a young person's
        return _token_refused(said)
    if isinstance(error, REFUSED):  # checked before NetworkError, of which BadRequest is a subclass
        return PermanentDelivery(said)
    if isinstance(error, ptb.NetworkError):  # includes TimedOut
        return RetryableDelivery(f"telegram: network error ({name})")
    return PermanentDelivery(f"telegram: {name}")


class _FloodControl(ptb.NetworkError):
    """The Bot API's 429 whose answer tells no ``parameters.retry_after`` (a bare 429, a proxy's), which PTB raises as
    a plain NetworkError (its RetryAfter only with a retry_after), or one that is no wait (``_tells_retry_after``,
    since 2026-12-08): Telegram's flood control all the same."""


class _Requests(HTTPXRequest):
    """PTB's HTTPX requests, a 429 without a ``retry_after`` raised as :class:`_FloodControl` (since 2026-12-07:
    until then a network error, not a rate limit: every chat's reply asked the Bot API during the limit, each refused
    and spending a try; bench/chaos.py ``provider-429``, 129 sends refused in a 29 s limit). A 429 with one is left
    to PTB (its RetryAfter)."""

    async def do_request(self, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        code, payload = await super().do_request(*args, **kwargs)
        if code == HTTPStatus.TOO_MANY_REQUESTS and not _tells_retry_after(payload):
            raise _FloodControl("Too Many Requests")
        return code, payload


# A told wait beyond this (about 31 years) is none Telegram gives: taken as none told (PTB's timedelta of 1e20 s
# overflows)
TOLD_WAIT_MAX = 1e9


def _tells_retry_after(payload: bytes) -> bool:
    """Whether a Bot API answer holds a ``parameters.retry_after`` PTB makes a RetryAfter of that is a wait: a number
    (no bool), finite, above 0, ``TOLD_WAIT_MAX`` at most. Until 2026-12-08 any truthy one: a huge one raised PTB's
    OverflowError out of the adapter, NaN or a word (a date) was "an answer that was not the Bot API's" (no rate
    limit), a negative a wait told (``tests/channels/test_telegram.py``)."""
    try:
        document = json.loads(payload)
    except (ValueError, RecursionError):
        return False
    parameters = document.get("parameters") if isinstance(document, dict) else None
    told = parameters.get("retry_after") if isinstance(parameters, dict) else None
    return isinstance(told, int | float) and not isinstance(told, bool) and 0 < told <= TOLD_WAIT_MAX


class _FailingCalls:
    """A Bot API call made for every tap, told once while it keeps failing, not once a tap: the first failure is one
    WARNING line, the next ones are folded until a call succeeds again, then one INFO line says how many and for
    how long (a provider outage during a busy minute gave a line a tap: bench/chaos.py, 37 in a soak). The lines
    name the call and the error (ours, made in ``TelegramChannel._call``: never a chat id or a message)."""

    def __init__(self, call: str) -> None:
        self.call = call
        self._since: float | None = None  # the first failure of the current series; None while it succeeds
        self._folded = 0

    def failed(self, error: DeliveryError) -> None:
        if self._since is None:
            self._since, self._folded = time.monotonic(), 0
            logger.warning("telegram: %s failed: %s; the next failures are folded until it answers again",
                           self.call, error)  # fmt: skip
        else:
            self._folded += 1

    def answered(self) -> None:
        if self._since is None:
            return
        logger.info("telegram: %s answers again after %.0f s: %d more failures folded", self.call,
                    time.monotonic() - self._since, self._folded)  # fmt: skip
        self._since = None


def webhook_url(settings: Settings) -> str:
    """``GATEWAY_PUBLIC_URL/webhooks/telegram``, refused unless Telegram can call it (HTTPS on its ports)."""
    public = URL(settings.public_url)
    if public.scheme != "https" or public.port not in WEBHOOK_PORTS or not public.host:
        raise ConfigError(
            f"GATEWAY_PUBLIC_URL must be an https URL on port 443, 80, 88 or 8443 for Telegram (it is {public})"
        )
    return settings.public_url.rstrip("/") + WEBHOOK_PATH


def render(message: Outbound) -> tuple[str, InlineKeyboardMarkup | None]:
    """The text to send and the keyboard under its last part (a numbered list past 100 choices)."""
    if not message.choices:
        return message.text, None
    if len(message.choices) > KEYBOARD_MAX:
        return with_numbered_list(message.text, message.choices), None
    rows = [[_button(choice, number)] for number, choice in enumerate(message.choices, start=1)]
    return message.text, InlineKeyboardMarkup(rows)


def link_entities(text: str) -> list[MessageEntity]:
    """Helpline numbers as ``phone_number`` entities (tappable to call) and URLs as ``url`` ones, in UTF-16 units:
    the line's texts only (an outgoing message is never a young person's words)."""
    kinds = {"phone": MessageEntity.PHONE_NUMBER, "url": MessageEntity.URL}
    return [
        MessageEntity(kinds[span.kind], _utf16_length(text[: span.start]), _utf16_length(text[span.start : span.end]))
        for span in links.spans(text)
    ]


def _button(choice: Choice, number: int) -> InlineKeyboardButton:
    value = choice.value
    fits = 0 < len(value.encode()) <= CALLBACK_DATA_MAX and not value.startswith(INDEX_PREFIX)
    return InlineKeyboardButton(choice.label.strip() or str(number), callback_data=value if fits else f"c:{number}")


def _inbound(update: Update) -> Inbound | None:
    if update.message is not None:
        return _started(_from_message(update.update_id, update.message))
    if update.edited_message is not None:
        return _from_edit(update.update_id, update.edited_message)
    query = update.callback_query
    if query is not None and query.data is not None and query.message is not None:
        return _from_button(update.update_id, query.message, _text(query.data, "data"), query.from_user.language_code)
    return None


def _whole(update: Update) -> bool:
    """Whether the update has what the parse reads without asking: each message's chat, a tap's sender, a
    membership change's chat and new status. PTB leaves a field the body lacks as None, required or not."""
    query = update.callback_query
    messages: list[MaybeInaccessibleMessage | None] = [
        update.message,
        update.edited_message,
        update.channel_post,
        update.edited_channel_post,
    ]
    if query is not None:
        if query.from_user is None:
            return False
        messages.append(query.message)
    if any(message is not None and message.chat is None for message in messages):
        return False
    changed = update.my_chat_member
    return changed is None or (changed.chat is not None and changed.new_chat_member is not None)


def _departure(update: Update) -> Departure | None:
    """The young person blocked the bot (``kicked``) or unblocked / restarted it (``member``), in a private chat."""
    changed = update.my_chat_member
    if changed is None or changed.chat.type != ChatType.PRIVATE:
        return None
    status = changed.new_chat_member.status
    if status not in (ChatMemberStatus.BANNED, ChatMemberStatus.MEMBER):
        return None
    chat_id = _int_or_none(changed.chat.id)
    if chat_id is None:
        raise BadRequest("telegram: chat.id is not a whole number")
    return Departure(ChannelName.TELEGRAM, str(chat_id), left=status == ChatMemberStatus.BANNED, at=changed.date)


def _shared_chat(update: Update) -> tuple[int, bool] | None:
    """A group, a supergroup or a channel the bot is in: its id, and whether to tell it to write in private (the
    bot just added to a group, or a member's words there; never a channel, a service message, an edit or a tap)."""
    chat = update.effective_chat
    if chat is None or chat.type == ChatType.PRIVATE:
        return None
    chat_id = _int_or_none(chat.id)
    changed = update.my_chat_member
    if chat_id is None or (changed is not None and changed.new_chat_member.status not in PRESENT):
        return None  # the bot removed from the chat: nothing to leave
    if chat.type not in GROUPS:
        return chat_id, False
    message = update.message
    words = message is not None and (message.text is not None or message.caption is not None)
    return chat_id, changed is not None or words


def _from_message(update_id: int, message: Message) -> Inbound | None:
    if message.chat.type != ChatType.PRIVATE or any(getattr(message, name) is not None for name in SERVICE):
        return None  # a group's message, or the chat's own notice (SERVICE): nobody wrote to the line
    sender = message.from_user
    return Inbound(
        channel=ChannelName.TELEGRAM,
        sender=_chat_id(message),
        message_id=str(update_id),
        text=_text(message.text or message.caption or "", "text"),
        attachments=_attachments(message),
        language_hint=_language(sender.language_code if sender else None),
        sent_at=message.edit_date or message.date,  # an edit: when it was edited
    )


def _started(found: Inbound | None) -> Inbound | None:
    """``/start`` alone (or with a deep link's parameter), as Telegram sends it: the chat (re)opened with Telegram's
    button, as Messenger's Get Started (``Inbound.restart``); its text kept for a risk read in a parameter only."""
    if found is None or found.attachments or not START_COMMAND.fullmatch(found.text.strip()):
        return found
    return replace(found, restart=True)


def _from_edit(update_id: int, message: Message) -> Inbound | None:
    """A message the young person edited: its new words (``Inbound.edited``), under the update's own id. Nothing
    for an edit without words: a live location's moves come as edits, every few seconds."""
    found = _from_message(update_id, message)
    if found is None or not found.text.strip() or message.location is not None:
        return None
    return replace(found, attachments=(), edited=True)


def _from_button(update_id: int, message: Any, data: str, language: object) -> Inbound | None:
    if not isinstance(message, Message) or message.chat.type != ChatType.PRIVATE:
        return None
    number = data.removeprefix(INDEX_PREFIX)
    if data.startswith(INDEX_PREFIX) and number.isascii() and number.isdigit():
        text, payload = number, None
    else:
        text, payload = _label(message, data), data
    return Inbound(
        channel=ChannelName.TELEGRAM,
        sender=_chat_id(message),
        message_id=str(update_id),
        text=text,
        payload=payload,
        language_hint=_language(language),
    )


def _label(message: Message, data: str) -> str:
    """The label of the tapped button, found in the keyboard of the message it was under."""
    markup = message.reply_markup
    rows = markup.inline_keyboard if isinstance(markup, InlineKeyboardMarkup) else ()
    labels = [button.text for row in rows for button in row if button.callback_data == data]
    return _text(labels[0], "button text") if labels else ""


def _attachments(message: Message) -> tuple[Attachment, ...]:
    found: list[Attachment] = []
    if message.photo:
        found.append(_file("image", message.photo[-1].file_id, "image/jpeg"))
    document = message.document
    if document and is_contact_card(document.mime_type, document.file_name):  # a phone number: its kind, never its file
        found.append(Attachment("other"))
    elif message.document:
        name = _text(message.document.file_name or "", "file_name") or None
        found.append(_file("file", message.document.file_id, message.document.mime_type, name))
    for kind, media, default_type in (
        ("audio", message.voice, "audio/ogg"),
        ("audio", message.audio, None),
        ("video", message.video, None),
        ("video", message.video_note, "video/mp4"),
    ):
        if media is not None:
            found.append(_file(kind, media.file_id, getattr(media, "mime_type", None) or default_type))
    # Shared without words or a file: said by its kind only, never its content (coordinates, a phone number).
    if message.location is not None or message.venue is not None:
        found.append(Attachment("location"))
    elif any(getattr(message, name) is not None for name in SHARED_OTHER):
        found.append(Attachment("other"))
    if message.forward_origin is not None:  # someone else's message, passed on: never the young person's words
        found.append(Attachment(FORWARDED))
    return tuple(found)


def _file(kind: str, file_id: object, content_type: object, name: str | None = None) -> Attachment:
    content = _text(content_type, "mime_type") if content_type is not None else None
    return Attachment(kind, url=FILE_PREFIX + _text(file_id, "file_id"), content_type=content, name=name)


def _chat_id(message: Message) -> str:
    chat_id = _int_or_none(message.chat.id)
    if chat_id is None:
        raise BadRequest("telegram: chat.id is not a whole number")
    return str(chat_id)


def _language(value: object) -> str | None:
    return value if isinstance(value, str) and value.isascii() and 0 < len(value) <= 35 else None


def _text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise BadRequest(f"telegram: {what} is not a string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(f"telegram: {what} is not valid Unicode text") from None
    return value


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _seconds(error: ptb.RetryAfter) -> float:
    with warnings.catch_warnings():  # PTB 22 warns that retry_after will become a timedelta
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = error.retry_after
    return value.total_seconds() if isinstance(value, datetime.timedelta) else float(value)
