"""An image a young person sends from the web chat: ``POST /chat/upload``, then an attachment like any other.

The page posts the file's bytes as the body, with its session token (``X-Chat-Token``) and a message id of its own
(``X-Upload-Id``, de-duplicated like a message's). Checked in this order, each refusal a JSON ``{"error": code}``
the page words in the young person's language: 400 ``bad_request`` (no token or id), 413 ``too_big`` (over
``GATEWAY_WEBCHAT_UPLOAD_MAX_BYTES``), 409 ``ended`` (no active conversation for this token: an upload never
starts one; nor one whose ending, cut short on Redis, is still listed as begun: that ending is completed first,
``Dispatcher.ending_completed``, and nothing is stored; nor one whose conversation is erased meanwhile: what it kept
of the image goes with the rest, ``_erased_meanwhile``), 429 ``too_many_images`` (a byte budget spent, below), 403
``blocked`` or 429 ``rate_limited`` (the gate), 503 ``busy`` (the images' pool full: ``images.Cleaning``), 415
``type`` or ``heic``, 413 ``too_large`` (too many pixels), 422 ``corrupt``. An accepted image is re-encoded without
metadata, at most ``GATEWAY_WEBCHAT_IMAGE_MAX_EDGE`` pixels on its long side and ``…_MAX_KEPT_BYTES``
(``gateway/images.py``; until 2026-12-07 at full size), kept in the store (``upload:<key>``, under the conversation
it found open; moved to the next one when that one ended meanwhile and the message went there,
:meth:`Uploads.moved`), and goes through the dispatcher as a message whose attachment it is: the listener sees it
through the console as any channel's (``gateway/console/media.py``, by :class:`Uploads` as the web chat's
:class:`~gateway.channels.base.MediaFetcher`). The 201 names the conversation it went to (since 2026-12-07:
chat.js follows it when it is another than the page's). Nothing of the image or the token is logged.

The bytes images keep in the store are budgeted (since 2026-12-07; until then only their count, under the message
limit: one network could write ~22 GB an hour, and a full Redis refuses every young person's message): per client
network an hour (``GATEWAY_WEBCHAT_IMAGE_BYTES_PER_NETWORK_HOUR``; inside a declared shared network its own, larger)
and per conversation a day (``…_PER_CONVERSATION``), in the rate limits' counters. Checked before the cleaning (a
refused image costs no CPU, nor a hit of the message limit: text is never refused for images), charged after it
with the bytes really kept, once per upload (a try sent again under the same id after a 5xx is not charged again,
nor refused for its own first charge). The charge decides too (``RateLimits.charge``, one step): of images sent at
once, one that finds the budget spent by another meanwhile is refused (429 ``too_many_images``, the bytes a budget
before it took given back); until 2026-12-07 concurrent uploads all passed it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Protocol

from aiohttp import web

from gateway import images
from gateway.dispatcher import Dispatcher
from gateway.errors import ConversationEnded, EndedMeanwhile, ImagesBusy, PermanentDelivery
from gateway.gate import Gate, Refusal
from gateway.messages import Attachment, ChannelName, Inbound
from gateway.proxies import ClientAddresses
from gateway.ratelimit import Charge, Limit, client_address
from gateway.store import ConversationStore, LockStore, RetentionStore, UploadStore
from gateway.untrusted import chat_token

PATH = "/chat/upload"
PREFIX = "upload:"
MAX_PIXELS = 40_000_000  # a 48-megapixel photo is 8000 × 6000: beyond that, a bomb rather than a screenshot
STATUS = {"type": 415, "heic": 415, "too_large": 413, "corrupt": 422}


class UploadsRoles(ConversationStore, UploadStore, RetentionStore, LockStore, Protocol):
    """What uploads need of the store (the image's message goes through the dispatcher; ``erase_conversation``
    only for what an image kept after its conversation's erasure, ``Uploads._erased_meanwhile``; the lock, to mark
    the client of the next conversation an image opens, ``Uploads._next_one``)."""


class Uploads:
    """The upload route and, for the console and the notices, the web chat's media fetcher."""

    def __init__(
        self, store: UploadsRoles, dispatcher: Dispatcher, gate: Gate, max_bytes: int,
        replicated: Callable[[], Awaitable[None]] | None = None, addresses: ClientAddresses | None = None,
        max_edge: int = images.MAX_EDGE, max_kept: int = images.MAX_KEPT, cleaning: images.Cleaning | None = None,
    ) -> None:  # fmt: skip
        self.store, self.dispatcher, self.gate, self.max_bytes = store, dispatcher, gate, max_bytes
        self.max_edge, self.max_kept = max_edge, max_kept  # what an image keeps at most (gateway/images.py)
        self.addresses = addresses or ClientAddresses()  # the client's network, for the new-chat limits
        # GATEWAY_REDIS_REPLICA_ACKS: awaited before the 201, the image's acknowledgement (ReplicasBehind: 503, the
        # page sends it again under the same id), as the ack of a text is; until 2026-12-07 the 201 did not wait
        self.replicated = replicated
        # the images' own threads (the app factory's, closed at its cleanup; until 2026-12-07 the loop's default
        # executor, which DNS lookups and Redis connects share)
        self.cleaning = cleaning or images.Cleaning()

    async def upload(self, request: web.Request) -> web.Response:
        token, upload_id = chat_token(request.headers.get("X-Chat-Token")), request.headers.get("X-Upload-Id", "")
        if token is None or not (0 < len(upload_id) <= 64 and upload_id.isascii()):
            return _refused(400, "bad_request")
        if request.content_length is not None and request.content_length > self.max_bytes:
            return _refused(413, "too_big")
        body = await request.read()  # bounded by the route's client_max_size (the app's body deadline read it)
        if len(body) > self.max_bytes:
            return _refused(413, "too_big")
        conversation = await self.store.find_active_conversation(ChannelName.WEBCHAT, token)
        if conversation is None or await self.dispatcher.ending_completed(conversation.id):
            return _refused(409, "ended")  # an ending cut short on Redis, listed: completed first, nothing stored
        key = f"{conversation.id}/{hashlib.sha256(upload_id.encode()).hexdigest()[:32]}"
        address = client_address(request, self.addresses)  # its network's keyed hash: written by the commit if missing
        budgets = self._budgets(conversation.id, address)
        for limit, subject in budgets:  # before the gate and the cleaning: a refused image costs neither
            if not await self.gate.limits.within(limit, subject, key):
                return _refused(429, "too_many_images")
        # every try counted (once=False): its id is the page's, and the image is cleaned after the gate; counted as
        # evidence (an image: forwarded_per_conversation), never under the typed messages' flood limit (until
        # 2026-12-07 it was: a young person's 20th screenshot in a minute was refused, and their words after it)
        shown = Inbound(ChannelName.WEBCHAT, token, upload_id, attachments=(Attachment("image"),))
        refusal = await self.gate.check(shown, once=False)
        if refusal is not None:
            return _refused(403, "blocked") if refusal is Refusal.BLOCKED else _refused(429, "rate_limited")
        try:
            image = await self.cleaning.clean(body, MAX_PIXELS, self.max_edge, self.max_kept)
        except images.ImageRefused as refused:
            return _refused(STATUS[refused.code], refused.code)
        except ImagesBusy:
            return _refused(503, "busy")  # nothing kept nor charged: the page sends it again under the same id
        if not await self._charge(budgets, len(image.data), key):
            return _refused(429, "too_many_images")
        await self.store.put_upload(key, image.content_type, image.data)
        attachment = Attachment("image", url=PREFIX + key, content_type=image.content_type)
        # this conversation erased while the image waited for its lock: nothing is opened for it
        # (until 2026-12-07 a new one was, greeting the erased young person again, the image in it)
        inbound = Inbound(ChannelName.WEBCHAT, token, upload_id, attachments=(attachment,), written_in=conversation.id,
                          client=self.gate.client_key(address))  # fmt: skip
        try:
            await self._deliver(inbound, address)
        except ConversationEnded:  # erased meanwhile, or its ending cut short, completed: as after any end
            await self._erased_meanwhile(conversation.id)
            return _refused(409, "ended")
        if self.replicated is not None:
            await self.replicated()
        # the conversation it went to, named (since 2026-12-07): the token's open one, as a message's socket follows
        # (``ChatSession._deliver``), which is another than the page follows when that one ended as the image waited
        # for its lock (the next one, opened for it or by another tab): chat.js follows it, after the ended one's end
        # (a hello naming it on its socket, ``ChatSession._open``). Until then the 201 named nothing: the page showed
        # the end, the image's bubble gone, and the conversation holding it was never shown
        following = await self.store.find_active_conversation(ChannelName.WEBCHAT, token)
        went = conversation.id if following is None else following.id  # ended since: the one it found open
        return web.json_response({"id": upload_id, "conversation": went}, status=201)

    async def _charge(self, budgets: tuple[tuple[Limit, str], ...], size: int, key: str) -> bool:
        """The bytes really kept charged under each budget, once for this upload (``key``: the id's); False when one
        was spent meanwhile (another image at once: ``RateLimits.charge`` decides, one step), what the budgets
        before it took given back (:meth:`RateLimits.refund`). Until 2026-12-07 nothing was refused here: two images
        at once, both within the budget before their cleaning, were both kept past it.

        Refused, every budget before the refusing one is given back, ``NOT_CHARGED`` ones too: the refund takes back
        only what this upload's mark says it took (idempotent, :meth:`RateLimits.refund`), so a try of this id that
        died between two budgets (an instance killed, Redis cut) is made whole by the next try refused. Until
        2026-12-07 (late) only this try's ``CHARGED`` were: the retry found the first budget ``NOT_CHARGED`` (the dead
        try's mark), the next ``REFUSED``, and the first budget stayed spent by an image never kept, for the rest of
        its window (``tests/test_uploads_budget.py::test_an_image_whose_instance_died_between_two_budgets_…``). A try
        that dies and is never sent again still leaves its first budgets charged until their windows end."""
        for n, (limit, subject) in enumerate(budgets):
            if await self.gate.limits.charge(limit, subject, size, key) is Charge.REFUSED:
                for taken, of in budgets[:n]:
                    await self.gate.limits.refund(taken, of, size, key)
                return False
        return True

    def _budgets(self, conversation_id: str, address: str) -> tuple[tuple[Limit, str], ...]:
        """The byte budgets an image of this conversation from this address is counted under: its client network's
        (the gate's networks; a declared shared network's client its own, larger) and its conversation's."""
        network = self.gate.networks.key(address)
        shared = self.gate.networks.is_shared(address)
        per_network = Limit.IMAGE_BYTES_PER_SHARED_NETWORK if shared else Limit.IMAGE_BYTES_PER_NETWORK
        return (per_network, network), (Limit.IMAGE_BYTES_PER_CONVERSATION, conversation_id)

    async def _deliver(self, inbound: Inbound, address: str) -> None:
        """The image's message to the dispatcher. Its conversation ended (not erased) while it waited for the lock, the
        sender with none other open (``EndedMeanwhile``: the store opened nothing): the next one is opened for it only
        within the new-chat limits (:meth:`_next_one`), its file moved there (:meth:`moved`), and it is sent again;
        refused, EndedMeanwhile (409 ``ended``: an upload never opens a conversation beyond them; its file stays with
        the ended one, whose retention takes it). Until 2026-12-07 the store opened the next one under the lock, no
        limit asked: two tabs racing "Terminer" against an image opened chats past the hourly limits."""
        try:
            await self.dispatcher.handle_inbound(inbound)
        except EndedMeanwhile:
            following = await self._next_one(inbound.sender, address)
            if following is None:
                raise
            moved = await self.moved(inbound, following)
            await self.dispatcher.handle_inbound(replace(moved, written_in=following))

    async def _next_one(self, token: str, address: str) -> str | None:
        """The id of the conversation the image goes into now: the one the sender has open (another tab's), else a
        new one if the new-chat limits let it open (``Gate.new_chat``: an image reads no risk; asked once), marked
        with the client's network as a page's is (its cap of open ones counts it) by the image's own commit
        (``Inbound.client``; until 2026-12-07 a write here between the opening and the image, which a crash between
        left out of the count until the page's next hello). None: refused."""
        found = await self.store.find_active_conversation(ChannelName.WEBCHAT, token)
        if found is not None:
            return found.id
        if await self.gate.new_chat(token, address) is not None:
            return None
        opened, _ = await self.store.active_conversation(ChannelName.WEBCHAT, token, self.dispatcher.clock())
        return opened.id

    async def _erased_meanwhile(self, conversation_id: str) -> None:
        """An image refused as its conversation was erased while it was cleaned and kept: what it kept under that
        conversation (the file, its listing) erased as the rest was (``erase_conversation`` again: the erasure's own
        last step, idempotent). Until 2026-12-07 the file of an image kept just after the erasure stayed, for good.
        A conversation still kept (ended, not erased) is left alone: its retention takes its uploads."""
        if await self.store.get_conversation(conversation_id) is None:
            await self.store.erase_conversation(conversation_id)

    async def moved(self, inbound: Inbound, conversation_id: str) -> Inbound:
        """The image taken in another conversation than the one it found open (ended meanwhile, not erased: the
        sender's next one, as a message then; ``Dispatcher.moved``, under that conversation's lock): its file kept
        under that conversation too, the message given with it (a read and a write more, only then). Until
        2026-12-07 the file stayed under the ended conversation's id: its purge deleted an image the next one still
        showed (the listener's fetch failed). The copy kept under the ended one goes with it (its purge, or the
        erasure, which takes every conversation of the young person)."""
        kept = f"{PREFIX}{inbound.written_in}/"
        attachments = []
        for attachment in inbound.attachments:
            url = attachment.url or ""
            found = await self.store.get_upload(url.removeprefix(PREFIX)) if url.startswith(kept) else None
            if found is not None:
                key = f"{conversation_id}/{url.removeprefix(kept)}"
                await self.store.put_upload(key, *found)
                attachment = replace(attachment, url=PREFIX + key)
            attachments.append(attachment)
        return replace(inbound, attachments=tuple(attachments))

    async def fetch_media(self, attachment: Attachment) -> tuple[bytes, str]:
        """A web chat attachment's bytes, from the store (never from anywhere else)."""
        url = attachment.url or ""
        found = await self.store.get_upload(url.removeprefix(PREFIX)) if url.startswith(PREFIX) else None
        if found is None:
            raise PermanentDelivery("webchat: the upload is not in the store")
        content_type, data = found
        return data, content_type


def _refused(status: int, code: str) -> web.Response:
    return web.json_response({"error": code}, status=status)
