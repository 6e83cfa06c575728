"""Files a young person sent, as the console shows them.

A listener never sees a provider's URL (it can carry account ids): a transcript shows each attachment by its
number in the conversation, and ``GET /api/conversations/{id}/attachments/{n}`` fetches it server-side through
the channel adapter's :class:`~gateway.channels.base.MediaFetcher` (which only ever contacts the platform's own
hosts) and streams it back. Images, audio and video are shown inline; anything else is a download, sandboxed
and never sniffed, so a hostile file cannot run in the console's origin.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from aiohttp import web

from gateway.channels.base import MediaFetcher
from gateway.errors import DeliveryError
from gateway.events import entry_json
from gateway.messages import Attachment, ChannelName
from gateway.store import ConversationStore, TranscriptEntry, TranscriptStore

INLINE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp", "audio/mpeg", "audio/ogg",
                          "audio/mp4", "audio/aac", "audio/amr", "video/mp4", "video/3gpp", "video/webm"})  # fmt: skip
MAX_INDEX = 10_000


def attachments_of(transcript: Iterable[TranscriptEntry]) -> list[Attachment]:
    """Every attachment of a conversation, in transcript order: their positions are their numbers."""
    return [a for entry in transcript for a in entry.attachments]


def public_attachment(attachment: Attachment, number: int | None) -> dict[str, Any]:
    return {"kind": attachment.kind, "content_type": attachment.content_type, "name": attachment.name,
            "number": number, "fetchable": attachment.url is not None}  # fmt: skip


def console_transcript(transcript: Iterable[TranscriptEntry]) -> list[dict[str, Any]]:
    """The transcript as the console gets it: attachments numbered, without their provider URLs."""
    entries, number = [], 0
    for entry in transcript:
        event: dict[str, Any] = dict(entry_json(entry))
        event["attachments"] = [public_attachment(a, number + i) for i, a in enumerate(entry.attachments)]
        number += len(entry.attachments)
        entries.append(event)
    return entries


def public_event(event: Mapping[str, Any]) -> Mapping[str, Any]:
    """A live event without provider URLs (a new attachment's number comes with the conversation's reload)."""
    entry = event.get("entry")
    if not isinstance(entry, dict) or not entry.get("attachments"):
        return event
    attachments = [public_attachment(Attachment(**a), None) for a in entry["attachments"]]
    return {**event, "entry": {**entry, "attachments": attachments}}


class MediaRoles(ConversationStore, TranscriptStore, Protocol):
    """What attachments need of the store: the conversation and its transcript."""


class ConsoleMedia:
    def __init__(self, store: MediaRoles, fetchers: Mapping[ChannelName, MediaFetcher]) -> None:
        self.store, self.fetchers = store, fetchers

    async def attachment(self, request: web.Request) -> web.Response:
        number = _number(request.match_info["n"])
        conversation = await self.store.get_conversation(request.match_info["id"])
        if conversation is None or number is None:
            return _error(404, "not_found", "no such attachment")
        found = attachments_of(await self.store.transcript(conversation.id))
        if number >= len(found):
            return _error(404, "not_found", "no such attachment")
        fetcher, attachment = self.fetchers.get(conversation.channel), found[number]
        if fetcher is None or attachment.url is None:
            return _error(404, "not_fetchable", "this channel cannot fetch this attachment")
        try:
            data, content_type = await fetcher.fetch_media(attachment)
        except DeliveryError as exc:
            return _error(502, "media_unavailable", str(exc))
        return _file_response(data, content_type, attachment)


def _number(text: str) -> int | None:
    """An attachment's number in the path; None for "²" or thousands of digits (digits to isdigit, not to int)."""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 9 and int(text) < MAX_INDEX else None


def _file_response(data: bytes, content_type: str, attachment: Attachment) -> web.Response:
    kind = (content_type or "").split(";")[0].strip().lower()
    inline = kind in INLINE_TYPES
    headers = {
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, no-store",
        "Content-Disposition": "inline" if inline else f'attachment; filename="{_filename(attachment)}"',
    }
    return web.Response(body=data, content_type=kind if inline else "application/octet-stream", headers=headers)


def _filename(attachment: Attachment) -> str:
    name = "".join(c for c in (attachment.name or "") if c.isalnum() or c in "._-")[:80]
    return name or f"piece-jointe-{attachment.kind}"


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)
