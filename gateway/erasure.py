"""Erasure on request: everything the gateway keeps about one young person is deleted, and the audit log says so.

Three ways in, one path: ``gateway erase`` (by conversation, or by channel and identity), the supervisors'
``POST /api/conversations/{id}/erase`` (console/safety.py), and the young person writing the erasure phrase of
flows.yaml, then confirming (the dispatcher asks; :meth:`Eraser.erase_person` does it once the conversation's lock
is released).

"Everything" is every conversation of the same channel identity (``channel`` + sender): the conversation records,
transcripts (messages, listeners' notes, attachments, provider ids), outbox items of any status, timers, queue
and take entries, the de-duplication keys of the young person's messages (but on a provider channel,
``DELIVERED_AGAIN``: kept unlinked, a digest, their 8 days) and
the marks of the listeners' replies (the console's reply ids, kept 8 days: ``marks_of``), the evidence copies of the
notices raised from them, the inbox items still waiting or set aside, and the gate's notices to that sender
(``notice-<keyed hash>``). On WhatsApp, a keyed hash of the identity and the erasure's instant are kept for the
catch-up's window (``LISTED_FOR``, ``ErasedStore``): the catch-up leaves their messages whose webhook had failed.
The "earlier conversations" a listener sees go with them. Blocks stay: they hold only a keyed hash, and keeping
the line safe outweighs erasing a block (a supervisor lifts it by hand). A conversation a listener holds is ended
first: the listener is told by a system entry shown live (never stored, since the transcript is going).

An erasure cut short (Redis cut, the instance dead) is finished by asking again: what is keyed by the identity goes
first, then each conversation with its de-duplication marks, the one it was asked from (the console's, ``gateway
erase --conversation``'s, the young person's) last, its record last of all; so the same id (or the identity) still
finds everything left. The audit entry is written once, by the erasure that finishes.

The audit entry names the actor, the conversations' pseudonyms and counts: never an identity, id or text.

A young person's own erasure is listed as begun in the same commit as their confirming message
(``store.begin_erasure``), and done by :meth:`Eraser.finish_confirmed` (under the lock ``erasing-<id>``): right
after the message by the instance that processed it, or, when that instance died midway (``kill -9``, an OOM kill)
or gave up after its retries, by the alert check (``gateway/alerts.py``), which finds it listed. Their goodbye
(``erasure.done``) goes out before the record of the conversation asked from, the last step: a cut just after it is
told twice rather than never; a cut after the record leaves nothing to do but unlist it.

A supervisor's erasure (the console's) and ``gateway erase``'s are listed the same way, by the conversation erased
last (the one asked from; by identity, the open or newest one), with ``asked-by:`` and the actor and wording as its
key (:func:`asked_by`), before their first delete and under the same lock: one cut short (a crash, a 503 while Redis
restarts) is finished by the alert check, with no goodbye (none is said to the young person) and the original
actor in its one audit line. Until 2026-12-07 it was finished only if someone asked again, and a web chat page
coming back while it ran (``finish_cut``) wrote a second audit line. ``gateway erase --channel --identity`` of a
person with no conversation left is listed by the person (``PERSON`` and the keyed identity, the identity sealed in
the listing until it is done: ``IDENTITY``) since 2026-12-07; before, it was not listed at all.

The two may race: the young person's "oui" is committed under the conversation's lock only, while a supervisor's
erasure holds ``erasing-<id>``. Since 2026-12-07 the listing keeps both (``store.erasure_listed``: the asker's key,
a newline, the message's key; before, the second replaced the first), and the erasure that runs reads it again under
the last conversation's lock, after which no "oui" can come: the young person's confirmation there, they are told
(once: whoever finishes the listed erasure tells, the "oui"'s own ``finish_confirmed`` then finds it unlisted), and
the line names the supervisor. The listing says, rather than ``finish_confirmed``'s answer: once unlisted and erased
nothing is left to tell "erased by another" from "not erased" but a new record, and the alert check finishing it
needs both the actor and the goodbye from the listing alone.

The same race from two conversations of the person (a supervisor erasing from an earlier, closed one, the "oui" in
the open one) has two listings and two ``erasing-<id>`` locks: until 2026-12-07 both erasures ran at once (two audit
lines; the "oui"'s finding its record gone wrote "cut short before this line" and told nobody). Since, every erasure
of a person holds their lock too (``erasing-person-<keyed identity>``, inside ``erasing-<id>``), and the one that runs
takes the other's listing over (``_erase_one``): told once, one line naming the supervisor.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from gateway.clock import Clock, utcnow
from gateway.conversation import Conversation, Status
from gateway.crypto import DataKeys
from gateway.dispatcher import Dispatcher
from gateway.errors import DataKeyError
from gateway.events import EntryAdded, Erased, QueueChanged, StatusChanged
from gateway.flowset import FlowSet
from gateway.ids import seen_digest, seen_digests_of_entry
from gateway.language import language_of
from gateway.messages import ChannelName, Outbound
from gateway.store import (
    ASKED_BY,  # the key of an erasure listed for a supervisor or the CLI (:func:`asked_by`), not a message's
    LISTED_IDENTITY,
    LISTED_IDENTITY_KIND,
    PERSON_LISTED,
    AuditEntry,
    AuditStore,
    Author,
    BatchStore,
    ConversationStore,
    ErasedStore,
    EventStore,
    LockStore,
    OutboxItem,
    OutboxStore,
    QueueStore,
    RetentionStore,
    TranscriptEntry,
    TranscriptStore,
    erasure_askers,
)
from gateway.store.codec import encode_outbound
from gateway.understanding.late import LateReadings

log = logging.getLogger("gateway.erasure")
ERASING = "erasing-"  # the lock of a listed erasure (any of them since 2026-12-07), held by whoever does it
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FAR = datetime(9999, 1, 1, tzinfo=UTC)
# The channels whose provider lists a young person's messages again to the gateway (the WhatsApp catch-up reads
# Twilio's, which keeps them all, over its window of hours): the marks of their messages outlive the erasure, their
# 8 days (a digest of the provider's message id, unlinked from any conversation), as the confirming message's do.
# Until 2026-12-06 they were forgotten and the catch-up's next pass brought the erased person back.
LISTED_AGAIN = frozenset({ChannelName.WHATSAPP})
# The channels whose provider delivers a message processed already again (Meta and Telegram after a timeout or a lost
# acknowledgement, Twilio in its list): their young people's marks outlive the erasure, as WhatsApp's (until
# 2026-12-06 only WhatsApp's: a Messenger or Telegram redelivery after the erasure opened a new conversation with the
# erased words).
DELIVERED_AGAIN = LISTED_AGAIN | {ChannelName.MESSENGER, ChannelName.TELEGRAM}
# A message whose webhook failed has no mark to keep: Twilio lists it all the same. The erasure keeps, for the
# catch-up's window, a keyed hash of the identity (``KeyedHash.erased``) with its instant (``ErasedStore``), and the
# catch-up leaves a message of theirs dated more than ``ERASED_DOUBT`` (2 s) before it (until 2026-12-06 it opened a
# new conversation with the erased words; one dated closer may have been sent after the erasure: processed). The
# window's longest by default (``settings.WHATSAPP_CATCHUP_MAX_HOURS``), a minute for clocks.
LISTED_FOR = timedelta(days=8, minutes=1)
# A web chat page away during the erasure comes back naming the conversation it followed (chat.js keeps it until it
# sees its end, with no limit) and sends again what it never saw acknowledged: one reloaded, its words of the last hour
# (KEEP_MS); one left open, asleep on a phone or a closed laptop, its words however old. It must be told the
# conversation ended (``ChatSession._show_gone``), never given a new one holding the erased words; and a page whose
# conversation the store merely lost (a Redis failover) must get one that works. So the erasure of a web chat
# conversation keeps a keyed hash of its id (``KeyedHash.erased_conversation``, nothing of the person) for this long:
# a month covers a tab left asleep far beyond the hour a reload keeps; after it, such a page is greeted as a returning
# browser is, and what it still held from over a month ago goes into the new conversation (a few bytes a conversation).
WEBCHAT_ERASED_FOR = timedelta(days=30)
# The listing of an erasure by identity of a person with no conversation left (``Eraser.erase_identity``): its id is
# this and the keyed identity (``sender_key``; ``ERASING`` and it name the person's lock), its value the asker's line
# (:func:`asked_by`) then a newline and the identity sealed as records are (``IDENTITY``, ``DataKeys.seal`` of kind
# ``IDENTITY_KIND``): the WhatsApp catch-up's mark needs the identity itself, which nothing else keeps in clear or
# sealed once its conversations are gone. Kept only until the erasure finishes (its line and its unlisting go
# together). Since 2026-12-07; before, such an erasure was not listed, and one cut short left the gate's notices,
# the inbox entries and the catch-up's mark missing until someone asked again.
PERSON = PERSON_LISTED
IDENTITY = LISTED_IDENTITY  # resealed by ``gateway data-key rotate`` since 2026-12-07 (``store.reseal_listing``)
IDENTITY_KIND = LISTED_IDENTITY_KIND
PERSON_MOST = 10_000  # the conversations of one person read from their index at most (beyond: every record read)
LISTENER_NOTE = (
    "Conversation effacée à la demande de la personne : elle est terminée et son contenu supprimé. / "
    "Conversation erased at the person's request: it has ended and its content is deleted."
)


def asked_by(actor: str, how: str) -> str:
    """The key an erasure asked by a supervisor or the CLI is listed with (``store.begin_erasure``): the actor and
    the wording of its audit line, so that the alert check finishing it writes them (never an identity)."""
    return ASKED_BY + json.dumps([actor, how], ensure_ascii=False)


def _asker(key: str) -> tuple[str, str] | None:
    """The actor and wording of a key made by :func:`asked_by` (alone, or listed with a young person's confirmation:
    ``store.erasure_listed``); None for a young person's alone (their message's key)."""
    if not key.startswith(ASKED_BY):
        return None
    found = erasure_askers(key)
    if found is None:
        return "gateway", "asked by a supervisor or the CLI"
    return found[0], found[1]


def _also(key: str | None) -> tuple[str, ...]:
    """The actors of those who asked too, kept in the listing with the first asker (``store.erasure_listed``, since
    2026-12-07: before, only in the memory of the erasure that took the second's listing over)."""
    found = None if key is None or not key.startswith(ASKED_BY) else erasure_askers(key)
    return tuple(found[2:]) if found is not None else ()


def _confirmed(key: str | None) -> str | None:
    """The key of the young person's confirming message a listing holds (alone, or after a supervisor's or the
    CLI's, ``store.erasure_listed``: since 2026-12-07 both kept when they race); None when none confirmed (a
    person's listing's second part is their sealed identity, ``IDENTITY``: never a confirmation)."""
    if key is None:
        return None
    if not key.startswith(ASKED_BY):
        return key
    confirmed = key.partition("\n")[2]
    return None if not confirmed or confirmed.startswith(IDENTITY) else confirmed


@dataclass(frozen=True, slots=True)
class Removed:
    """What an erasure removed (counts and pseudonyms only: what the audit log and the CLI may show)."""

    conversations: int
    entries: int
    pseudonyms: tuple[str, ...]
    again: str = ""  # the keyed hash of the channel identity (``gateway erase --again``): "" when it had none left
    # Erased by another erasure of the person already under way, which took this one's listing over and wrote the one
    # audit line (its counts there): nothing counted here. Since 2026-12-07; before, the console and ``gateway erase``
    # said "0 conversation(s)" as though nothing had been erased.
    under_way: bool = False


class ErasureRoles(
    ConversationStore, TranscriptStore, LockStore, RetentionStore, OutboxStore, AuditStore, EventStore, QueueStore,
    BatchStore, ErasedStore,
    Protocol,
):  # fmt: skip
    """What an erasure does to the store."""


class Eraser:
    def __init__(
        self, store: ErasureRoles, dispatcher: Dispatcher, flows: FlowSet,
        sender_key: Callable[[ChannelName, str], str], *, clock: Clock, late: LateReadings | None = None,
        erased_key: Callable[[ChannelName, str], str] | None = None, listed_for: timedelta = LISTED_FOR,
        conversation_key: Callable[[str], str] | None = None, keys: DataKeys | None = None,
    ) -> None:  # fmt: skip
        """``erased_key`` (``KeyedHash.erased``) and ``listed_for`` (the WhatsApp catch-up's window): how an erased
        identity of a ``LISTED_AGAIN`` channel is kept for the catch-up, and how long (None: not kept).
        ``conversation_key`` (``KeyedHash.erased_conversation``): how an erased web chat conversation is marked
        erased for ``WEBCHAT_ERASED_FOR`` (None: not marked; its page would then be given a new conversation).
        ``keys`` (the store's data keys): how the identity of a person erased with no conversation left is sealed
        in their erasure's listing (``PERSON``) until it is done (None: not listed, as before 2026-12-07)."""
        self.store, self.dispatcher, self.flows = store, dispatcher, flows
        self.sender_key, self.clock = sender_key, clock
        self.late = late  # this process's late readings: an erased conversation's texts waiting there go at once
        self.erased_key, self.listed_for = erased_key, listed_for
        self.conversation_key, self.keys = conversation_key, keys

    async def erase_conversation(
        self, conversation_id: str, actor: str, how: str, *, timeout: float = 10.0, named: bool = True
    ) -> Removed | None:
        """Erase the person of this conversation (all their conversations); None if there is no such conversation.
        This one is erased last: an erasure cut short (Redis cut, the instance dead) is finished by asking again
        with the same id, which finds the person through it as long as anything of theirs is left; and, since
        2026-12-07, by the alert check: listed (``store.begin_erasure``, key :func:`asked_by`) before its first
        delete, unlisted with its audit line, under the lock ``erasing-<id>`` that :meth:`finish_confirmed` takes.
        Already listed by the young person's own (confirmed, cut short): that one is finished, their goodbye told;
        by a supervisor's or the CLI's: finished, its line naming that first asker, this one's actor merged into the
        listing (``store.erasure_listed``: ``asked too by``; until 2026-12-07 named nowhere) unless not ``named``
        (the web chat's ``finish_cut``, actor ``gateway``). Listed, its record gone (cut before its audit line): the
        line written, unlisted, nothing counted. There before its lock was had and gone after, not listed: erased by
        another erasure that held the lock meanwhile (``under_way``: the console's « déjà en cours », the CLI's
        ``already under way``); until 2026-12-07 None, a 404 "no such conversation" to the second supervisor."""
        there = await self.store.get_conversation(conversation_id) is not None  # before waiting for the lock
        async with self.store.lock(ERASING + conversation_id, timeout):
            key = (await self.store.erasures_begun()).get(conversation_id)
            conversation = await self.store.get_conversation(conversation_id)
            first = _asker(key) if key is not None and named else None
            if first is not None and first[0] != actor:  # merged into the listing (one call), beside the first
                await self.store.begin_erasure(conversation_id, asked_by(actor, how))
                key = (await self.store.erasures_begun()).get(conversation_id, key)
            if key is not None:
                asker = _asker(key)
                if asker is None or conversation is None:  # the young person's own (their goodbye), or one cut
                    return await self._finish(conversation_id, key, timeout)  # before its audit line
                actor, how = asker  # asked again (or its web chat page back): the line names who asked first
            if conversation is None:  # erased (its line written) while this one waited for the lock, or never there
                return Removed(0, 0, (), under_way=True) if there else None
            if key is None:  # before the first delete: a cut from here on is finished by the alert check
                await self.store.begin_erasure(conversation_id, asked_by(actor, how))
            if not conversation.sender:  # purged already: its identity is gone, only this record is left
                return await self._erase([conversation], conversation.channel, "", actor, how, unlist=conversation_id,
                                         timeout=timeout)  # fmt: skip
            return await self.erase_person(conversation.channel, conversation.sender, actor, how, last=conversation.id,
                                           unlist=conversation.id, timeout=timeout)  # fmt: skip

    async def erase_identity(
        self, channel: ChannelName, sender: str, actor: str, how: str, *, timeout: float = 10.0
    ) -> Removed:
        """``gateway erase --channel --identity`` (and ``--again``): the person's conversations erased as from the
        open one (else the newest), listed by it as :meth:`erase_conversation` lists (the alert check finishes it
        when cut short). With no conversation left (only the gate's notices, the inbox, the WhatsApp catch-up's
        mark), since 2026-12-07 listed by the person (``PERSON``: the keyed identity, the identity kept sealed in
        the listing until it is done) under their lock, before its first delete: one cut short is finished by the
        alert check (:meth:`finish_confirmed`). Until 2026-12-07 it was not listed, and one cut short left them
        until someone asked again. Without ``keys``, not listed (nothing to seal the identity with)."""
        found = await self._of_person(channel, sender, None)
        active = await self.store.find_active_conversation(channel, sender)
        last = active.id if active is not None else found[-1].id if found else None
        if last is not None:
            erased = await self.erase_conversation(last, actor, how, timeout=timeout)
            if erased is not None:
                return erased
        if self.keys is None:
            return await self.erase_person(channel, sender, actor, how, timeout=timeout)
        listing = PERSON + self.sender_key(channel, sender)
        sealed = self.keys.seal(IDENTITY_KIND, json.dumps([channel.value, sender], ensure_ascii=False))
        identity = IDENTITY + base64.b64encode(sealed).decode("ascii")
        async with self.store.lock(self._person_lock(channel, sender), timeout):  # ``ERASING`` + ``listing``
            await self.store.begin_erasure(listing, asked_by(actor, how) + "\n" + identity)  # merged with a cut one
            return await self._person_locked(channel, sender, actor, how, unlist=listing, timeout=timeout)

    async def erase_again(self, key: str, actor: str, how: str, *, timeout: float = 10.0) -> Removed:
        """``gateway erase --again KEY`` (an erasure done after the backup this store was restored from, done again):
        the person of a conversation whose identity hashes to KEY (``sender_key``) erased as :meth:`erase_identity`
        erases them; with none, what KEY names (:meth:`erase_key`)."""
        found = await self._keyed(key)
        if found:
            return await self.erase_identity(found[0].channel, found[0].sender, actor, how, timeout=timeout)
        return await self.erase_key(key, actor, how, timeout=timeout)

    async def _keyed(self, key: str) -> list[Conversation]:
        """A conversation still naming the person whose identity hashes to KEY. When the store indexes senders by
        that same keyed hash (``DataKeys.identity``: ``GATEWAY_DATA_KEY`` set, its lookups keyed with
        ``GATEWAY_SECRET_KEY`` as ``sender_key``), read from that index (``conversations_keyed``); else (the embedded
        key file's own lookup secret) every record read. Until 2026-12-07 every record was read and decrypted
        whatever the keys, O(history) for each erasure asked again (``gateway/cli_privacy.py``)."""
        probe = ChannelName.WEBCHAT, "keyed-lookup-probe"
        if self.keys is not None and self.keys.identity(*probe) == self.sender_key(*probe):
            return await self.store.conversations_keyed(key, 1)
        return [c for c in await self.store.list_conversations(EPOCH, FAR)
                if c.sender and self.sender_key(c.channel, c.sender) == key][:1]  # fmt: skip

    async def erase_key(self, key: str, actor: str, how: str, *, timeout: float = 10.0) -> Removed:
        """``gateway erase --again KEY`` in a store that holds no conversation of that person (a backup restored
        from before their erasure, their conversations purged or never opened): what is keyed by KEY itself, the
        keyed hash of their channel identity (``sender_key``), erased as :meth:`erase_identity` erases it (the
        gate's notices ``notice-KEY``, the inbox entries), listed by the person (``PERSON`` and KEY, no identity:
        a cut is finished by the alert check, :meth:`_by_key`) under their lock, one audit line. A listing of theirs
        holding their sealed identity (an erasure by identity cut short before the backup) is finished as it is:
        the catch-up's mark too. Since 2026-12-07; until then ``--again`` erased nothing here ("erased 0
        conversation(s)"), the notices and inbox entries staying. The WhatsApp catch-up's mark needs the identity
        itself (``KeyedHash.erased``), which KEY cannot give: not written (the audit line says so)."""
        listing = PERSON + key
        async with self.store.lock(ERASING + listing, timeout):  # the person's lock (``_person_lock``)
            await self.store.begin_erasure(listing, asked_by(actor, how))  # merged with one listed before
            listed = (await self.store.erasures_begun()).get(listing, asked_by(actor, how))
            return await self._finish_person(listing, listed, timeout)

    async def erase_person(
        self, channel: ChannelName, sender: str, actor: str, how: str, *, final_message: bool = False,
        keep_seen: Collection[str] = (), last: str | None = None, unlist: str | None = None, timeout: float = 10.0,
    ) -> Removed:  # fmt: skip
        """Erase every conversation of this channel identity. ``final_message``: the young person asked, and gets
        flows.yaml's ``erasure.done`` once it is done (``keep_seen``: the key of their confirming message, so that
        a redelivery of it is still a duplicate). ``last``: the conversation the erasure was asked from, erased
        after everything else of the person (their other conversations, the gate's notices, the inbox).
        ``timeout``: how long each conversation's lock is waited for (the caller's: the alert check's 2 s,
        ``alerts.REPAIR_LOCK_SECONDS``; until 2026-12-07 always 10 s, whatever the caller had asked)."""
        async with self.store.lock(self._person_lock(channel, sender), timeout):
            return await self._person_locked(channel, sender, actor, how, final_message=final_message,
                                             keep_seen=keep_seen, last=last, unlist=unlist,
                                             timeout=timeout)  # fmt: skip

    async def _person_locked(
        self, channel: ChannelName, sender: str, actor: str, how: str, *, final_message: bool = False,
        keep_seen: Collection[str] = (), last: str | None = None, unlist: str | None = None, timeout: float = 10.0,
    ) -> Removed:  # fmt: skip
        """:meth:`erase_person`, the person's lock held."""
        if unlist is not None and unlist not in await self.store.erasures_begun():
            return Removed(0, 0, (), under_way=True)  # taken over and done by another erasure of the person
            # while this one waited
        found = await self._of_person(channel, sender, last)

        async def goodbye() -> None:
            await self._goodbye(found, channel, sender)

        told = goodbye if final_message else None
        return await self._erase(found, channel, sender, actor, how, keep_seen, last, told, unlist=unlist,
                                 timeout=timeout)  # fmt: skip

    def _person_lock(self, channel: ChannelName, sender: str) -> str:
        """The lock every erasure of this channel identity holds (inside its ``erasing-<id>``, outside each
        conversation's), named by the keyed form of the identity: since 2026-12-07 two erasures of one person asked
        from two of their conversations (a supervisor's from an earlier one, the young person's "oui" in the open
        one) run one after the other; before, both ran at once (two audit lines, or the "oui"'s finding its record
        erased by the other: a line saying "cut short" and no goodbye)."""
        return ERASING + "person-" + self.sender_key(channel, sender)

    async def _of_person(self, channel: ChannelName, sender: str, last: str | None) -> list[Conversation]:
        """Every conversation of this channel identity, oldest first: read from the store's index of the person
        (``conversations_of``: their records only; until 2026-12-06 every record the store ever kept was read and
        decoded, O(history) for each erasure), with the one asked from (``last``) and the open one read by id, so
        that an entry the index lost (a cut) never leaves them behind. Past ``PERSON_MOST``, every record is read."""
        found = await self.store.conversations_of(channel, sender, EPOCH, FAR, PERSON_MOST)
        if len(found) >= PERSON_MOST:  # not expected of one person: nothing is left to a limit
            log.warning("erasure: over %d conversations indexed for one person: every record read", PERSON_MOST)
            found = [
                c
                for c in await self.store.list_conversations(EPOCH, FAR)
                if c.channel == channel and c.sender == sender
            ]
        known = {c.id for c in found}
        for extra in (
            None if last is None else await self.store.get_conversation(last),
            await self.store.find_active_conversation(channel, sender),
        ):
            if extra is not None and extra.id not in known and extra.channel == channel and extra.sender == sender:
                found.append(extra)
                known.add(extra.id)
        return sorted(found, key=lambda c: (c.created_at, c.id))

    async def finish_confirmed(self, conversation_id: str, key: str, *, timeout: float = 10.0) -> bool:
        """The erasure listed for this conversation (``store.begin_erasure``): a young person's (``key``, their
        confirming message's) or, since 2026-12-07, a supervisor's or the CLI's (:func:`asked_by`), done and unlisted
        under the lock ``erasing-<id>``, unless no longer listed (done meanwhile, by the instance that processed the
        message or asked, or by the alert check): whether it was done now. Called right after the message, and by the
        alert check for one cut short (its instance dead, its request failed). The record gone: everything was erased
        (and the goodbye sent) before it (:meth:`_erase`), only the audit line and the listing are left. ``timeout``
        is the wait for every lock it takes, each conversation's too (until 2026-12-07 only ``erasing-<id>``'s: the
        alert check's 2 s became 10 s for each conversation of that person whose lock was busy)."""
        async with self.store.lock(ERASING + conversation_id, timeout):
            listed = (await self.store.erasures_begun()).get(conversation_id)
            if listed is None:
                return False
            await self._finish(conversation_id, listed, timeout)
            return True

    async def _finish(self, conversation_id: str, key: str, timeout: float = 10.0) -> Removed:
        """The listed erasure of this conversation finished (under its lock ``erasing-<id>``): a young person's with
        their goodbye, their confirming message's mark kept; one asked by a supervisor or the CLI (:func:`asked_by`)
        with none (a supervisor's erasure says nothing to the young person), its actor and wording in the line; both
        listed (the young person confirmed while a supervisor's ran: ``store.erasure_listed``), the supervisor's line
        and the young person's goodbye."""
        if conversation_id.startswith(PERSON):  # a person's with no conversation left: ``ERASING`` + it is held,
            return await self._finish_person(conversation_id, key, timeout)  # their lock
        asker, confirmed = _asker(key), _confirmed(key)
        actor, how = asker or ("young person", "asked in the conversation")
        keep_seen = (confirmed,) if confirmed is not None else ()
        conversation = await self.store.get_conversation(conversation_id)
        if conversation is not None and conversation.sender:
            return await self.erase_person(conversation.channel, conversation.sender, actor, how,
                                           final_message=confirmed is not None, keep_seen=keep_seen,
                                           last=conversation_id, unlist=conversation_id, timeout=timeout)  # fmt: skip
        if conversation is not None:  # purged meanwhile: its identity is gone, nobody to tell
            return await self._erase([conversation], conversation.channel, "", actor, how, keep_seen,
                                     unlist=conversation_id, timeout=timeout)  # fmt: skip
        if conversation_id not in await self.store.erasures_begun():  # taken over by another erasure of the person
            return Removed(0, 0, (), under_way=True)  # (``_erase_one``, before this record went): it tells and
            # writes the line
        # erased to its last record, cut before its audit line (the line and the unlisting go together); the store's
        # erasure made again first: a cut just after the record left its places in the person's index, which it
        # finds without the record (until 2026-12-07 left for good: Redis's ``K.UNINDEXING``)
        await self.store.erase_conversation(conversation_id)
        async with self.store.batch():
            also = sorted(a for a in _also(key) if a != actor)  # the listing's others (since 2026-12-07)
            more = "; asked too by " + ", ".join(also) if also else ""
            detail = f"erased, cut short before this line, written when it was finished ({how}{more}; what it erased"
            detail += " is not counted)"
            await self.store.audit(AuditEntry(self.clock(), actor, "erase", "", detail))
            await self.store.end_erasure(conversation_id)
        return Removed(0, 0, ())

    async def _finish_person(self, listing: str, key: str, timeout: float) -> Removed:
        """The erasure listed by a person (``PERSON``, :meth:`erase_identity`) finished, their lock held: their
        identity opened from the listing (``DataKeyError`` when it does not open here: left listed, the alert check
        says so), everything of theirs erased, the line naming the asker, unlisted. Since 2026-12-07."""
        actor, how = _asker(key) or ("gateway", "asked by a supervisor or the CLI")
        if not key.partition("\n")[2]:  # listed by its keyed identity alone (``erase_key``): nothing to open
            return await self._by_key(listing, actor, how)
        channel, sender = self._identity(listing, key)
        return await self._person_locked(channel, sender, actor, how, unlist=listing, timeout=timeout)

    async def _by_key(self, listing: str, actor: str, how: str) -> Removed:
        """A person's listing with no identity (:meth:`erase_key`), their lock held: what its keyed identity names
        erased (the gate's notices, the inbox entries), one line naming the asker (and those who asked too),
        unlisted with it. Since 2026-12-07."""
        key = listing.removeprefix(PERSON)
        entries = await self.store.erase_conversation("notice-" + key)  # the gate's notices to this sender
        await self.store.inbox_forget(key)
        await self.store.forget_freed()
        final = (await self.store.erasures_begun()).get(listing)
        if final is None:  # done meanwhile by another erasure of the person (their lock was not held): its line
            return Removed(0, 0, (), under_way=True)
        also = sorted(a for a in _also(final) if a != actor)
        more = "; asked too by " + ", ".join(also) if also else ""
        detail = (f"0 conversation(s), {entries} entries erased ({how}{more}; by the keyed identity alone, no "
                  "conversation of theirs in the store: the WhatsApp catch-up's mark not written)")  # fmt: skip
        async with self.store.batch():  # the line and the unlisting together
            await self.store.audit(AuditEntry(self.clock(), actor, "erase", "", detail))
            await self.store.end_erasure(listing)
        log.info("erasure: 0 conversation(s) erased (%s); after restoring a backup made before this line, run:"
                 " gateway erase --again %s", how, key)  # fmt: skip
        return Removed(0, entries, (), key)

    def _identity(self, listing: str, key: str) -> tuple[ChannelName, str]:
        """The channel and identity a person's listing keeps sealed; ``DataKeyError`` (never the identity in its
        text) when it is missing, does not open with these keys or is not the listing's person."""
        sealed = key.partition("\n")[2]
        if self.keys is None or not sealed.startswith(IDENTITY):
            raise DataKeyError("a person's erasure listing has no identity this gateway can open")
        try:
            raw = base64.b64decode(sealed.removeprefix(IDENTITY), validate=True)
            channel, sender = json.loads(self.keys.open(IDENTITY_KIND, raw))
            person = ChannelName(channel), str(sender)
        except (binascii.Error, ValueError, TypeError):
            raise DataKeyError("a person's erasure listing holds an identity that does not open") from None
        if PERSON + self.sender_key(*person) != listing:
            raise DataKeyError("a person's erasure listing holds another person's identity")
        return person

    async def finish_cut(self, conversation_id: str) -> None:
        """An erasure of this conversation found cut short (or under way) by a web chat page's hello: its mark
        written (:meth:`_erase_one`'s first step), its record still there with the token's active key
        (``WebChatHub.erasure_cut``). Finished as asking again would (:meth:`erase_conversation`): the young person's
        own (listed: their goodbye, unlisted), a supervisor's (listed: its actor in the line), else (none listed: one
        begun before 2026-12-07) actor ``gateway``, its audit line as a first try's. Until 2026-12-07 that hello
        ("Nouvelle conversation", or a page back with its opening key) resumed the conversation being erased, its
        history shown. Since 2026-12-07 every erasure goes under the lock ``erasing-<id>``: one still under way is
        waited for, not run a second time (before, a second audit line, actor ``gateway``)."""
        await self.erase_conversation(
            conversation_id, "gateway", "cut short, finished when its web chat page came back", named=False
        )  # ``gateway`` is no asker: a listed erasure's line names its askers only

    async def _erase(
        self, found: list[Conversation], channel: ChannelName, sender: str, actor: str, how: str,
        keep_seen: Collection[str] = (), last: str | None = None,
        goodbye: Callable[[], Awaitable[None]] | None = None, *, unlist: str | None = None, timeout: float = 10.0,
    ) -> Removed:  # fmt: skip
        """Each step leaves what is left findable: what is keyed by the identity goes first, then each conversation
        with its de-duplication marks, the one asked from (``last``) at the end, its record last of all (the
        store's ``erase_conversation``); the audit entry once everything is gone. ``goodbye``: the young person told,
        just before that last conversation is erased (the store's last step), so that an erasure cut short and
        finished again (``finish_confirmed``) still finds someone to tell. The one listed (``unlist``) told too when
        its listing, read again under that last conversation's lock, holds their confirmation: a "oui" committed
        while a supervisor's erasure ran (before that lock: none can come after it) waits for this one, which
        unlists it; until 2026-12-07 nobody told them (``finish_confirmed`` found nothing listed)."""
        kept = {seen_digest(k) for k in keep_seen}
        if sender:
            if channel in LISTED_AGAIN and self.erased_key is not None:  # first: a pass meanwhile leaves theirs
                digest, seconds = self.erased_key(channel, sender), self.listed_for.total_seconds()
                await self.store.keep_erased(digest, utcnow(), seconds)  # Twilio's dates: the real clock
            key = self.sender_key(channel, sender)
            await self.store.erase_conversation("notice-" + key)  # the gate's notices to this sender
            await self.store.inbox_forget(key)  # the inbox orders by the same keyed form of the identity
        entries, ordered = 0, sorted(found, key=lambda c: c.id == last)  # stable: the others oldest first

        async def confirmed() -> None:  # the young person confirmed while it ran (the listing says: ``_erase_one``)
            await self._goodbye(found, channel, sender)

        askers: list[str] = []  # the actors of the other erasures of the person this one took over
        listed = unlist if sender and ordered and unlist == ordered[-1].id else None
        for conversation in ordered:
            last_one = conversation is ordered[-1]
            told = goodbye if last_one else None
            entries += await self._erase_one(conversation, kept, told, timeout, listed=listed, confirmed=confirmed,
                                             askers=askers)  # fmt: skip
        if goodbye is not None and not ordered:
            await goodbye()
        await self.store.forget_freed()
        erased = Removed(len(found), entries, tuple(c.pseudonym for c in found), key if sender else "")
        if erased.again:  # outside the store: a backup older than this erasure, restored, brings the person back
            log.info("erasure: %d conversation(s) erased (%s); after restoring a backup made before this line, run:"
                     " gateway erase --again %s", erased.conversations, how, erased.again)  # fmt: skip
        final = None if unlist is None else (await self.store.erasures_begun()).get(unlist)
        if final is not None and (asker := _asker(final)) is not None:  # the line names who asked first
            actor, how = asker
            if _confirmed(final) is not None:
                how += "; the young person confirmed it too"
        also = sorted({a for a in (*askers, *_also(final)) if a != actor})  # the listing's: a cut erasure's too
        if also:
            how += "; asked too by " + ", ".join(also)
        subject = ", ".join(erased.pseudonyms[:20]) or channel.value
        detail = f"{erased.conversations} conversation(s), {erased.entries} entries erased ({how})"
        async with self.store.batch():  # a young person's erasure unlisted with its line: a cut leaves both or neither
            await self.store.audit(AuditEntry(self.clock(), actor, "erase", subject, detail))
            if unlist is not None:
                await self.store.end_erasure(unlist)
        await self.store.publish(QueueChanged())
        return erased

    async def _erase_one(
        self, conversation: Conversation, kept: set[str], goodbye: Callable[[], Awaitable[None]] | None = None,
        timeout: float = 10.0, *, listed: str | None = None, confirmed: Callable[[], Awaitable[None]] | None = None,
        askers: list[str] | None = None,
    ) -> int:  # fmt: skip
        """One conversation, under its lock: its listeners told, the de-duplication keys of the young person's
        messages and the marks of the listeners' replies forgotten (read from its transcript and ``marks_of``, so
        before it goes: a cut after it keeps none), then everything keyed by its id. The entries erased. The
        young person's marks are named from their entries' ids (``seen_digests_of_entry``); until 2026-12-06 every
        mark kept was read to find them (on Redis a SCAN of the keyspace and an HKEYS of each day's hashes). A web
        chat conversation is marked erased first (``conversation_key``): a cut leaves the record and its mark.
        Its lock waited for ``timeout`` (the caller's; until 2026-12-07 always 10 s). ``listed``: the erasure's
        listing read again under the lock; the young person's confirmation there (``_confirmed``), they are told
        (``confirmed``, unless ``goodbye`` tells them already) and their confirming message's mark kept.

        Since 2026-12-07 any other conversation of the person listed by an erasure of its own (the young person's
        "oui" there, a supervisor's or the CLI's from it, waiting for the person's lock or cut short) is taken over
        here, before its record goes: its listing merged into ``listed`` and unlisted in one batch, its confirming
        message's mark kept, its asker's actor added to ``askers`` (the line notes them); the young person told once,
        at the last conversation, as the listing then says. Before, it was erased under that erasure's feet: its
        ``finish_confirmed`` found the record gone and wrote a "cut short" line, nobody told the young person. Since
        2026-12-07 too the listing keeps the other's asker beside the first (``store.erasure_listed``, a few names at
        most): an erasure cut after the takeover and finished by the alert check still names them (before, only
        ``askers``, this erasure's memory, did)."""
        async with self.store.lock(conversation.id, timeout):
            begun = await self.store.erasures_begun() if listed is not None else {}
            other = begun.get(conversation.id) if conversation.id != listed else None
            if listed is not None and other is not None:
                async with self.store.batch():  # moved whole: a cut leaves it here or there, never nowhere
                    await self.store.begin_erasure(listed, other)  # both parts merged (``store.erasure_listed``)
                    await self.store.end_erasure(conversation.id)
                if (mark := _confirmed(other)) is not None:
                    kept = kept | {seen_digest(mark)}
                if (asker := _asker(other)) is not None and askers is not None:
                    askers.extend((asker[0], *_also(other)))
            if listed == conversation.id and (key := _confirmed(begun.get(listed))):
                kept = kept | {seen_digest(key)}
                goodbye = goodbye or confirmed
            current = await self.store.get_conversation(conversation.id) or conversation
            if current.channel == ChannelName.WEBCHAT and self.conversation_key is not None:  # before the record goes:
                # a page naming it is told it ended, never a new conversation (``WEBCHAT_ERASED_FOR``)
                seconds = WEBCHAT_ERASED_FOR.total_seconds()
                await self.store.keep_erased(self.conversation_key(current.id), utcnow(), seconds,
                                             conversation_id=current.id)  # fmt: skip
            user_entries = {e.id for e in await self.store.transcript(current.id) if e.author is Author.USER}
            await self._end_for_listeners(current)
            seen = set(await self.store.marks_of(current.id))  # the processed marks saved with it (replies too)
            theirs = {d for e in user_entries for d in seen_digests_of_entry(e)}  # by name: none read
            seen.update(theirs)
            if current.channel in DELIVERED_AGAIN:  # without their marks, a redelivery (Twilio's list, Meta's or
                kept = kept | theirs  # Telegram's retry) is processed again: a new conversation with their words
            await self.store.forget_seen(sorted(seen - kept))
            if goodbye is not None:
                await goodbye()
            entries = await self.store.erase_conversation(current.id)
            if self.late is not None:  # other processes drop theirs at their next renewal (the records are gone)
                self.late.forget(current.id)
        return entries

    async def _end_for_listeners(self, conversation: Conversation) -> None:
        """Whoever has the conversation open in the console is told (an ``erased`` event with a system entry,
        shown live, never stored); an open conversation ends (a ``status`` event: queue, web chat page)."""
        now = self.clock()
        note = TranscriptEntry(id="x" + secrets.token_urlsafe(12), conversation_id=conversation.id, at=now,
                               author=Author.SYSTEM, text=LISTENER_NOTE)  # fmt: skip
        await self.store.publish(Erased(conversation.id, note, conversation.listener))
        if conversation.active:
            await self.store.publish(StatusChanged(conversation.id, Status.CLOSED, conversation.queue))

    async def _goodbye(self, found: list[Conversation], channel: ChannelName, sender: str) -> None:
        """flows.yaml's ``erasure.done`` (with the emergency numbers), sent once nothing else is left: on the web
        chat as a live frame to the page, elsewhere through the outbox under a new, unrelated id."""
        engine = self.flows.engine()
        latest = max(found, key=lambda c: c.created_at, default=None)
        language = language_of(latest, engine.flow) if latest else engine.flow.default_language
        spec = engine.flow.erasure  # None only if flows.yaml lost its erasure section since the question
        text = engine.text(spec.done, language) if spec is not None else engine.message("ended", language)
        now = self.clock()
        if channel == ChannelName.WEBCHAT:
            if latest is not None:
                entry = TranscriptEntry(id="x" + secrets.token_urlsafe(12), conversation_id=latest.id, at=now,
                                        author=Author.BOT, text=text)  # fmt: skip
                await self.store.publish(EntryAdded(latest.id, entry))
            return
        item_id = "x" + secrets.token_urlsafe(12)
        outbound = Outbound(id=item_id, conversation_id="erased-" + item_id, channel=channel, recipient=sender,
                            text=text, author="bot")  # fmt: skip
        await self.store.outbox_put(OutboxItem(item_id, outbound.conversation_id, encode_outbound(outbound), now))
        self.dispatcher.kick_outbox()
