"""What every channel adapter is, and the few things they all share.

The server calls an adapter through :class:`Channel` only: ``parse`` a provider's webhook request into a
:class:`Batch` (size limit first, then the signature on the raw bytes, then the body), answer the provider with
``acknowledge()``, and ``send`` one :class:`~gateway.messages.Outbound`. Abilities that only some platforms have
are separate small Protocols, checked with ``isinstance``: :class:`TypingIndicator`, :class:`MediaFetcher`,
:class:`ReplyWindow`, and :class:`Lifecycle` for adapters that hold connections to open and close.

The helpers below read a bounded body, split long texts, render choices as a numbered list and fetch media from
an allowlist of hosts. They never put message text, phone numbers or platform user ids in an exception.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar, runtime_checkable

import aiohttp
from aiohttp import web
from yarl import URL

from gateway import untrusted
from gateway.channels import links
from gateway.errors import BadRequest, PayloadTooLarge, PermanentDelivery, RetryableDelivery
from gateway.messages import (
    PART_SEPARATOR,
    Attachment,
    ChannelName,
    Choice,
    Departure,
    Echo,
    Inbound,
    Outbound,
    Receipt,
)

MEDIA_MAX_BYTES = 25_000_000  # WhatsApp's own limit is 16 MB, Messenger's 25 MB, Telegram's getFile 20 MB
MEDIA_MAX_REDIRECTS = 3
MEDIA_TIMEOUT = aiohttp.ClientTimeout(total=30)
SEND_TIMEOUT_SECONDS = 15.0  # a provider's answer to one send: every channel's, in all (docs/architecture.md)
# aiohttp's own timeouts off: a send's is ``gateway.loop_watch.timeout_unheld``'s (since 2026-12-08: aiohttp's
# deadline, due with the answer on a resume from a freeze, won and the accepted reply was sent again)
UNTIMED = aiohttp.ClientTimeout()
# How long a webhook of a provider that does not redeliver what got an error (Twilio: by default one retry, on a
# failed connection only, all within its 15 s read timeout) waits for the store before its 503: the store tried
# again meanwhile (``store_hold_seconds`` on the adapter; the others answer 503 at once and their provider redelivers)
STORE_HOLD_SECONDS = 10.0
# A contact card (WhatsApp's shared contact, a .vcf file): someone's phone number, never a file a listener downloads
CONTACT_CARD_TYPES = frozenset({"text/vcard", "text/x-vcard", "text/directory"})
CONTACT_CARD_SUFFIXES = (".vcf", ".vcard")
Part = TypeVar("Part")


@dataclass(frozen=True, slots=True)
class Batch:
    """Everything one webhook request carried: messages from young people, receipts for ours, young people
    who blocked the line or unsubscribed (or came back), and the page's messages sent from outside the gateway."""

    inbound: tuple[Inbound, ...] = ()
    receipts: tuple[Receipt, ...] = ()
    departures: tuple[Departure, ...] = ()
    echoes: tuple[Echo, ...] = ()
    too_old: int = 0  # events past the channel's accepted age (a replay): acknowledged and ignored


@runtime_checkable
class Channel(Protocol):
    """A messaging platform, seen from the server."""

    name: ChannelName

    async def parse(self, request: web.Request) -> Batch:
        """Read, verify and normalise a webhook request.

        Raises :class:`~gateway.errors.PayloadTooLarge` (413), :class:`~gateway.errors.BadSignature` (403) or
        :class:`~gateway.errors.BadRequest` (400), checked in that order.
        """
        ...

    def acknowledge(self) -> web.Response:
        """The response the provider expects for an accepted webhook request."""
        ...

    async def send(self, message: Outbound, first_part: int = 0) -> str | None:
        """Deliver one message from its part ``first_part`` on (a long text is split into parts); return the
        provider's id for it (when it was split, each part's sent, in order, joined by
        :data:`~gateway.messages.PART_SEPARATOR`: :func:`send_parts`).

        Raises :class:`~gateway.errors.RetryableDelivery`, whose ``parts_sent`` says where the next attempt
        resumes (see :func:`send_parts`), or :class:`~gateway.errors.PermanentDelivery`.
        """
        ...


@runtime_checkable
class Lifecycle(Protocol):
    """An adapter holding connections: ``start()`` inside the running loop, ``stop()`` at cleanup."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@runtime_checkable
class TypingIndicator(Protocol):
    """Show the young person that an answer is being written."""

    async def typing(self, recipient: str) -> None: ...


@runtime_checkable
class MediaFetcher(Protocol):
    """Download a file a young person sent, from the platform's own hosts only."""

    async def fetch_media(self, attachment: Attachment) -> tuple[bytes, str]: ...


@runtime_checkable
class ReplyWindow(Protocol):
    """How long after the young person's last message the platform lets ``author`` (bot/listener) answer."""

    def reply_window(self, author: str) -> datetime.timedelta: ...


async def read_body(request: web.Request, limit: int, channel: ChannelName) -> bytes:
    """The raw request body, refused with :class:`PayloadTooLarge` beyond ``limit`` bytes."""
    too_large = PayloadTooLarge(f"{channel}: request body is larger than {limit} bytes")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    try:  # read() stops at the app's client_max_size, and keeps the body for a reader after it
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise too_large from None
    if len(body) > limit:
        raise too_large
    return body


def load_json(raw: bytes, channel: ChannelName) -> object:
    """The JSON document in ``raw``; :class:`BadRequest` (naming no content) when it is not one."""
    try:
        return untrusted.load_json(raw)
    except ValueError:
        raise BadRequest(f"{channel}: request body is not JSON") from None


def split_text(text: str, limit: int, length: Callable[[str], int] = len) -> list[str]:
    """Cut ``text`` into parts of at most ``limit`` (as measured by ``length``): at the last line break in the
    second half of the part, else at the last space there, else in the middle of a word; never inside a helpline
    number or a URL (:mod:`gateway.channels.links`) that can go whole at the start of the next part."""
    parts: list[str] = []
    rest = text
    while length(rest) > limit:
        cut = _longest_prefix(rest, limit, length)
        for separator in ("\n", " "):
            boundary = rest.rfind(separator, 0, cut + 1)
            if boundary > cut // 2:
                cut = boundary
                break
        cut = _outside_links(rest, cut)
        part, rest = rest[:cut].rstrip(), rest[cut:].lstrip()
        if part:
            parts.append(part)
    if rest or not parts:
        parts.append(rest)
    return parts


def _outside_links(text: str, cut: int) -> int:
    """``cut``, or the start of the number or URL it would split (when that leaves something before it)."""
    for span in links.spans(text):
        if span.start < cut < span.end and span.start > 0:
            return span.start
        if span.start >= cut:
            break
    return cut


def _longest_prefix(text: str, limit: int, length: Callable[[str], int]) -> int:
    """The largest ``n`` with ``length(text[:n]) <= limit`` (at least 1, so splitting always progresses)."""
    low, high = 1, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if length(text[:middle]) <= limit:
            low = middle
        else:
            high = middle - 1
    return low


async def send_parts(
    parts: Sequence[Part], send_one: Callable[[int, Part], Awaitable[str | None]], first_part: int = 0
) -> str | None:
    """Send ``parts[first_part:]`` in order with ``send_one(index, part)``; their provider ids, joined by
    :data:`~gateway.messages.PART_SEPARATOR` (one part: its id alone), so that every part's status reaches the
    message's transcript entry (until 2026-12-05 only the last part's: a first part lost was never shown).

    A :class:`RetryableDelivery` on part ``n`` is raised again with ``parts_sent=n``: the parts before it were
    accepted, and the outbox's next attempt starts at part ``n``, so no part reaches the young person twice.
    """
    provider_ids: list[str] = []
    for index in range(first_part, len(parts)):
        try:
            provider_id = await send_one(index, parts[index])
        except RetryableDelivery as error:
            raise type(error)(str(error), error.retry_after, index, error.rate_limited) from None  # its kind kept
        if provider_id:
            provider_ids.append(provider_id)
    return PART_SEPARATOR.join(provider_ids) or None


def with_numbered_list(text: str, choices: Iterable[Choice]) -> str:
    """``text`` followed by ``1. Oui`` / ``2. Non`` lines: the engine understands an answer of ``2``."""
    lines = [f"{number}. {choice.label}" for number, choice in enumerate(choices, start=1)]
    if not lines:
        return text
    return "\n\n".join(part for part in (text, "\n".join(lines)) if part)


def truncate_label(label: str, limit: int) -> str:
    """``label`` cut to ``limit`` characters, ending with an ellipsis when it was cut."""
    return label if len(label) <= limit else label[: limit - 1] + "…"


def labels_fit(choices: tuple[Choice, ...], max_count: int, max_label: int) -> bool:
    """Whether ``choices`` can be shown as buttons: few enough, and still told apart once truncated."""
    if not choices or len(choices) > max_count:
        return False
    labels = [truncate_label(choice.label.strip(), max_label) for choice in choices]
    return all(labels) and len(set(labels)) == len(labels)


def retry_after_header(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header given in seconds; ``None`` when absent or not a number."""
    try:
        seconds = float(value) if value is not None else math.nan
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def is_contact_card(content_type: object, name: object = None) -> bool:
    """Whether a file of this type, or of this name, is a contact card (parameters and case aside; a type that is no
    text is not): a name ending ``.vcf`` or ``.vcard`` is one whatever type its sender's app gave it, or none."""
    if isinstance(name, str) and name.strip().lower().endswith(CONTACT_CARD_SUFFIXES):
        return True
    return isinstance(content_type, str) and content_type.partition(";")[0].strip().lower() in CONTACT_CARD_TYPES


def host_allowed(url: URL, allowed: Collection[str]) -> bool:
    """``url`` is http(s) and its host is in ``allowed``; an entry ``*.example.com`` allows subdomains only."""
    host = (url.host or "").lower().rstrip(".")
    if url.scheme not in ("http", "https") or not host:
        return False
    for pattern in allowed:
        pattern = pattern.lower()
        if host == pattern or (pattern.startswith("*.") and host.endswith(pattern[1:])):
            return True
    return False


@dataclass(frozen=True, slots=True)
class MediaSource:
    """Where a channel may fetch media from, and which of those hosts get its credentials."""

    channel: ChannelName
    allowed_hosts: frozenset[str]
    auth_hosts: frozenset[str] = frozenset()
    authorization: str | None = None  # an Authorization header value, sent to auth_hosts only


async def fetch_allowed(
    session: aiohttp.ClientSession, source: MediaSource, url: str, content_type: str | None = None
) -> tuple[bytes, str]:
    """GET ``url`` and the redirects it leads to, refusing any host outside ``source.allowed_hosts``.

    Credentials go only to ``source.auth_hosts``. Raises :class:`PermanentDelivery` for a refused host or
    answer, :class:`RetryableDelivery` for a network error or a 5xx.
    """
    target = URL(url)
    for _ in range(MEDIA_MAX_REDIRECTS + 1):
        if not host_allowed(target, source.allowed_hosts):
            raise PermanentDelivery(f"{source.channel}: media host is not one of the platform's own")
        authorization = source.authorization if target.host in source.auth_hosts else None
        headers = {"Authorization": authorization} if authorization else {}
        try:
            async with session.get(target, headers=headers, allow_redirects=False, timeout=MEDIA_TIMEOUT) as response:
                if response.status in (301, 302, 303, 307, 308) and "Location" in response.headers:
                    target = target.join(URL(response.headers["Location"]))
                    continue
                body = await _bounded_body(response, source.channel)
                return body, content_type or response.content_type
        except (aiohttp.ClientError, TimeoutError) as error:
            raise RetryableDelivery(f"{source.channel}: media download failed ({type(error).__name__})") from None
    raise PermanentDelivery(f"{source.channel}: media download redirected too many times")


async def _bounded_body(response: aiohttp.ClientResponse, channel: ChannelName) -> bytes:
    if response.status >= 500 or response.status == 429:
        raise RetryableDelivery(f"{channel}: media download answered HTTP {response.status}")
    if response.status >= 400:
        raise PermanentDelivery(f"{channel}: media download answered HTTP {response.status}")
    body = bytearray()
    async for chunk in response.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > MEDIA_MAX_BYTES:
            raise PermanentDelivery(f"{channel}: media is larger than {MEDIA_MAX_BYTES} bytes")
    return bytes(body)
