"""The Redis store's key names, laid out for Redis Cluster: each script or transaction touches ONE hash slot.

Redis Cluster hashes only the part of a key between its first ``{`` and ``}`` (the hash tag) when there is one.
Keys that a script changes together share a tag:

* a conversation's keys: ``{<conversation id>}`` (record ``hg:c:``, transcript ``hg:t:`` holding the entries
  themselves and, once long, its index ``hg:ti:``, its entries awaiting a read receipt ``hg:tu:``, a watermark
  kept for a reply still pending ``hg:tw:``, processed marks ``hg:d:``, lock ``hg:l:``, outbox items
  ``hg:o:{<conversation id>}<item id>``: an item is resolved and shown on its transcript entry in one script);
* the waiting queue ``{queue}``, the outbox's lines, heads and pending set ``{outbox}``, the inbox ``{inbox}``, the
  late readings waiting ``{late}``, the conversation indexes ``{index}`` (status sets, creation, flagged), the
  de-duplication claims and processed marks ``{seen}``: each a group of global indexes changed together, one slot
  each;
* every other key is used alone (its whole name is hashed).

An operation that changes keys of two slots runs as steps, each atomic in its slot, in the order argued in
:mod:`gateway.store.redis`. docs/deployment.md has the table (key, slot, TTL, what it holds); the layout before
(``hg:conv:<id>``, ``hg:status:<status>``, ``hg:outbox:heads``…) and the one before this (``hg:conv:{<id>}``, an
entry key ``hg:e:{<entry id>}`` per transcript line, a key ``hg:provider:<id>`` per provider id…) are rewritten by
``gateway store migrate`` (:mod:`gateway.store.redis_migrate`).
"""

from __future__ import annotations

import base64
import hashlib

PREFIX = "hg:"
QUEUE = PREFIX + "{queue}:"  # entries, seq, names, waiting:<queue>, takes:<queue>, held:<listener>
# heads, urgent, urgent_to (redis_lua.py, ``_URGENT``), seq, conv:<conversation>, pending (``outbox_pending``),
# claim:<token>
OUTBOX = PREFIX + "{outbox}:"
INBOX = PREFIX + "{inbox}:"  # heads, urgent, urgent_to, seq, sender:<hash>, item:<id>, aside, aside:<id>
LATE = PREFIX + "{late}:"  # held, info: the messages waiting for their late reading (see ``late_member``)
INDEX = (
    PREFIX + "{index}:"
)  # status:<status>, created, flagged, told, read-late, ended:<who>, person:<hash>, people-made
SEEN = PREFIX + "{seen}:"  # c:<inbound key> (a claim), n:<conversation> (``claims_of``), <day>:<shard> (marks)
# Pub/sub channels (not keys: in Cluster, PUBLISH reaches every node's subscribers, whatever the name):
EVENTS_CHANNEL = PREFIX + "events"  # the events every instance's every subscription gets (presence, typing…)
CONVERSATION_EVENTS = PREFIX + "ev:c:"  # + a conversation's id: its events, for the instances following it
ANY_CONVERSATION_EVENTS = PREFIX + "ev:any"  # queue changes, alerts: the instances following every conversation
ALL_CONVERSATIONS = PREFIX + "ev:*"  # the pattern of an instance following every conversation (its console)


def key(*parts: str) -> str:
    """A key used alone: ``hg:active:<keyed hash>``, ``hg:timers``…"""
    return PREFIX + ":".join(parts)


def sessions_index(name: str) -> str:
    """A listener's console sessions (``RedisStore.put_session``): their keys, scored by their end (µs)."""
    return PREFIX + "session-index:" + name


SEALING = PREFIX + "sealing:{instances}"  # instance id -> "<data key id> <µs>": which key each seals with (sealing.py)
PRESENT = PREFIX + "present:{listeners}"  # listener name -> µs they were last at a console, on any instance
KEPT_RECEIPTS = PREFIX + "{rk}:kept"  # the provider ids of the receipts kept, scored by when they expire (µs)


def kept_receipt(provider_message_id: str) -> str:
    """A receipt that came before its send's record (``RedisStore.keep_receipt``): ``hg:rk:<digest of the provider
    id>``, used alone, with a TTL; the id itself is never in a key name."""
    return kept_receipt_of(hashlib.sha256(provider_message_id.encode()).digest()[:12])


def kept_receipt_of(digest: bytes) -> str:
    """:func:`kept_receipt` from the id's digest (``redis_providers.held_digest``: an entry's head holds no more)."""
    return key("rk", base64.urlsafe_b64encode(digest).decode())


def opening(digest: str) -> str:
    """A web chat opening key's conversation (``RedisStore.keep_opening``): ``hg:ok:<keyed hash of the key>``, used
    alone, with a TTL; the key itself is never stored."""
    return key("ok", digest)


def erased(digest: str) -> str:
    """A young person erased lately (``RedisStore.keep_erased``): ``hg:er:<keyed hash of the identity>``, used
    alone, with a TTL (the catch-up's window); its value the erasure's instant (µs), nothing else. Or a web chat
    conversation erased lately: ``hg:er:<keyed hash of its id>`` (``KeyedHash.erased_conversation``), 30 days."""
    return key("er", digest)


def tagged(kind: str, tag: str) -> str:
    """A key of the slot ``{tag}``: ``hg:c:{<conversation id>}``, ``hg:t:{<conversation id>}``…"""
    return f"{PREFIX}{kind}:{{{tag}}}"


def conversation(conversation_id: str) -> str:
    return tagged("c", conversation_id)


def transcript(conversation_id: str) -> str:
    """The conversation's transcript: a list of its entries themselves, ``<id>\\n<delivery code><provider
    id>\\n<sealed data>``, in the order they were written (one key, not one per entry)."""
    return tagged("t", conversation_id)


def transcript_index(conversation_id: str) -> str:
    """A long transcript's index (``redis_lua.INDEXED_FROM`` entries or more): a hash, entry id -> its place in the
    list, and ``#`` -> how many entries it indexes; made again from the list whenever not in step with it."""
    return tagged("ti", conversation_id)


def transcript_unread(conversation_id: str) -> str:
    """The transcript's entries awaiting a read receipt: a sorted set, entry id scored by the entry's time (µs),
    then by the time the outbox got the provider's answer once its send is recorded (``redis_lua._WATERMARKS``),
    joined when a reply's outbox item is put and left once the entry is read or failed, so that a watermark's
    receipt (Messenger's ``read``: every reply sent up to then) finds what it changes without reading the
    transcript (``redis_lua._MARK_UNTIL``)."""
    return tagged("tu", conversation_id)


def kept_watermark(conversation_id: str) -> str:
    """A watermark (Messenger's ``read``, or a ``delivery`` without message ids) that met a reply of the conversation
    still pending (accepted by Meta, its record not written yet): a hash, the delivery's code (``r``, ``d``) -> the
    newest such watermark (µs), never moved back, expiring with ``RECEIPT_KEPT_SECONDS``; the send's record applies
    it when the outbox got Meta's answer at or before it (``redis_lua._WATERMARKS``)."""
    return tagged("tw", conversation_id)


UNREAD_SINCE = PREFIX + "unread-since"
"""Since when (µs) every reply awaiting a read receipt joins its set (``transcript_unread``): written once, by the
first instance to open the store with them. A conversation created before may hold replies recorded by an earlier
version, never added: its set is made from its transcript once (``RedisStore.mark_until``)."""


def transcript_keys(conversation_id: str) -> list[str]:
    """The keys of the scripts that read or change a transcript's entries: the list, its index, its unread set."""
    return [transcript(conversation_id), transcript_index(conversation_id), transcript_unread(conversation_id)]


def done(conversation_id: str) -> str:
    """The inbound ids processed in the conversation (their digests, ``ids.seen_digest``), scored by when their
    mark expires (ms)."""
    return tagged("d", conversation_id)


def lock(conversation_id: str) -> str:
    return tagged("l", conversation_id)


def lock_writes(conversation_id: str) -> str:
    """How many fenced writes the lock's holder made under it, "<token>:<n>" (``redis_lua._FENCE``; since
    2026-12-07): as long as the lock, deleted with it; the conversation's slot."""
    return tagged("lw", conversation_id)


def leaving(conversation_id: str) -> str:
    """How the conversation's ending is listed as begun (``{queue}:leaving``, ``RedisStore.begin_leaving``), again
    in the conversation's slot: the lock of a message's processing reads it with the record (``lock_read``), so a
    message finds an ending cut short without a command more. Written after the list's field and deleted before it:
    never here when not listed there. A day's TTL, a backstop (the alert check unlists an ending within seconds)."""
    return tagged("lv", conversation_id)


LEAVING_KEPT_SECONDS = 24 * 3600


def erasing(conversation_id: str) -> str:
    """A web chat conversation's erasure begun (``RedisStore.keep_erased``'s ``conversation_id``, written with its
    mark ``hg:er:``, before anything of it goes), in the conversation's slot: the lock's script reads it with the
    record (``lock_read``), so a message waiting for the lock of a conversation whose erasure was cut before its
    record is refused without a command more; deleted with the record (one ``DEL``). The mark's TTL, a backstop."""
    return tagged("ea", conversation_id)


def outbox_item(conversation_id: str, item_id: str) -> str:
    """An outbox item, in its conversation's slot beside the transcript entry of the same id."""
    return tagged("o", conversation_id) + item_id


def items_listed(conversation_id: str) -> str:
    """The conversation's outbox items that neither its transcript nor its line may lead to: a set of item ids (one
    without a transcript entry, one kept resolved with a TTL), with the longest TTL of theirs (none while one has
    none), in the conversation's slot (``redis_lua._LISTED``): what an erasure or purge reads."""
    return tagged("ol", conversation_id)


ITEMS_MADE = PREFIX + "items-made"
"""Set once the outbox items a store held before ``items_listed`` were listed there (one SCAN of the keyspace, at
the first erasure or purge: ``redis_retention``), or at once on a store holding no conversation yet."""


def outbox_line(conversation_id: str) -> str:
    return OUTBOX + "conv:" + conversation_id


OUTBOX_PENDING = OUTBOX + "pending"
"""Every item listed in a line, ``<conversation id> <item id>`` scored by its creation (µs): the oldest pending reply
in one read, however many conversations wait (``outbox_oldest_pending``). It changes in the line's own steps."""


def outbox_pending(conversation_id: str, item_id: str) -> str:
    """A member of ``OUTBOX_PENDING``."""
    return conversation_id + " " + item_id


LATE_HELD = LATE + "held"
LATE_INFO = LATE + "info"
LATE_KEPT_SECONDS = 2 * 24 * 3600  # both keys' TTL, renewed at each record put: a backstop (the worker bounds ages)


def late_member(conversation_id: str, entry_id: str) -> str:
    """A message waiting for its late reading: a member of ``LATE_HELD`` (scored by its hold's end, µs) and a field
    of ``LATE_INFO`` (``<owner> <queued µs> <windows 0|1> <claims>``); neither id holds a space."""
    return conversation_id + " " + entry_id


def seen_claim(inbound_key: str) -> str:
    """A claim on an inbound message while it is processed (``c:<lease end>:<conversation>:<owner>``)."""
    return SEEN + "c:" + inbound_key


def claims_of(conversation_id: str) -> str:
    """The claims naming a conversation (their keys, ``seen_claim``), with the TTL of the last one written: kept by
    the scripts that write or delete a claim (``redis_lua._CLAIMS``), read by its erasure or purge; here only while
    such a claim is (a message in progress, or one whose owner died or whose release was lost)."""
    return SEEN + "n:" + conversation_id


CLAIM_KEPT_SECONDS = 8 * 24 * 3600  # a claim naming its conversation outlives its lease (``RedisStore.claim``)
CLAIMS_MADE = PREFIX + "claims-made"
"""Set once the claims a store held before ``claims_of`` were listed there (one SCAN of the keyspace, at the first
erasure or purge: ``redis_retention``), or at once on a store holding no conversation yet."""

SEEN_SHARDS = 128
SEEN_DAYS = 32  # a processed mark is kept at most this many days (the longest: a notice's code, 30 days)


def seen_shard(digest: str) -> int:
    """The shard of a processed mark, from its digest (``ids.seen_digest`` of the inbound key)."""
    return base64.urlsafe_b64decode(digest)[-1] % SEEN_SHARDS


def seen_marks(day: int, shard: int) -> str:
    """The processed marks expiring on a UTC day (days since the epoch): a hash whose fields are the digests of
    the inbound keys (``ids.seen_digest``: 16 characters, however long a provider's id), expiring at that day's
    end; ``SEEN_SHARDS`` of them a day keep each small (Redis's compact encoding, fields under 64 bytes)."""
    return f"{SEEN}{day}:{shard}"


FLAGGED = INDEX + "flagged"
"""The open conversations with a risk flag, scored by when their flag was last recorded (µs, ``codec.flagged_rank``):
the supervision board reads the latest (``RedisStore.flagged_conversations``). Joined before the record says so,
left after it no longer does (ended, erased), as the status sets. ``FLAGGED_MADE``, a member scored 0, says it was
made from the open conversations once (a store written before it had none): without it the first read makes it."""
FLAGGED_MADE = "#"  # never a conversation id (``new_conversation_id``: URL-safe base64)
TOLD = INDEX + "told"
"""The waiting conversations told, in this wait, that the line is closed and where to turn, scored by when (µs,
``codec.told_rank``): the supervision board counts them (``RedisStore.told_closed_waiting``, ``ZCARD``; since
2026-12-07, before every waiting record was read). Joined before the record says so, left after it no longer does
(taken, ended, back in a new wait, erased), as the status sets, in the same script. ``FLAGGED_MADE`` scored 0 marks
it made from the waiting records once (a store written before it had none): without it the first count makes it."""
READ_LATE = INDEX + "read-late"
"""The ended conversations in which a risk was read late, scored by when (µs): the supervision board reads those of
the last ``READ_LATE_HOURS`` (``RedisStore.read_late``). Left when a supervisor marks one seen or at its erasure;
those older than ``READ_LATE_HOURS`` and past the ``READ_LATE_KEPT`` latest dropped at each join."""


def ended(listener: str) -> str:
    """A listener's ended conversations (their history: ``RedisStore.ended_with``), scored by when each ended (µs,
    ``codec.ended_rank``), in slot ``{index}``: joined before the record says so (its end's save), left by its
    erasure; those ended over ``INDEXED_DAYS`` before the latest dropped at each join, the key gone ``INDEXED_DAYS``
    after its last join. A listener's name is no young person's."""
    return INDEX + "ended:" + listener


def person(identity: str) -> str:
    """A young person's conversations (``RedisStore.conversations_of``), scored by their creation (µs), under the
    keyed hash of their channel identity (``DataKeys.identity``, as ``hg:active:``; never the identity itself), in
    slot ``{index}``: joined before the record is written, left by its erasure and after its purge (which strips the
    identity); neither trimmed nor expiring (an erasure reads every conversation still naming the person here; until
    2026-12-06 trimmed and expiring as ``ended``), gone once emptied."""
    return INDEX + "person:" + identity


UNINDEXING = INDEX + "unindexing"
"""The erasures between a conversation's record and its places in the people's and listeners' indexes: a hash,
conversation id -> the JSON list of the indexes naming it (``K.person``, ``K.ended``), written before the record is
deleted and removed after those places (``redis_retention._unindex``), so that an erasure cut between the two and
made again, the record gone and with it the identity that names the person's index, still finds them. Since
2026-12-07: before, such a cut left the person's index naming the erased conversation for good."""


PEOPLE_MADE = INDEX + "people-made"
"""Set once ``ended`` and ``person`` were made from the conversations a store held before them (the last
``INDEXED_DAYS`` of the creation index): until then the first read makes them (``RedisStore._make_people``)."""
PEOPLE_MADE_2 = INDEX + "people-made:2"
"""Set once ``person`` was made again from every conversation still naming someone (a store written before
2026-12-06 kept 31 days of it, with a TTL): until then the first read makes it (``RedisStore._make_people``)."""


def status(name: str) -> str:
    return INDEX + "status:" + name


def uploads(conversation_id: str) -> str:
    """The conversation's web chat uploads (``RedisStore.put_upload``): a set of their keys (``<conversation
    id>/<hash>``, each stored at ``hg:upload:<key>``, used alone), joined before the upload is written and deleted
    after them by an erasure or purge (``redis_retention.forget``): here only for a conversation that has uploads."""
    return tagged("u", conversation_id)


UPLOADS_MADE = PREFIX + "uploads-made"
"""Set once the uploads a store held before ``uploads`` were listed there (one SCAN of the keyspace, at the first
erasure or purge: ``redis_retention``), or at once on a store holding no conversation yet."""


def client(client_key: str) -> str:
    """A web chat client's conversations in the bot or the queue (``Conversation.client``: a keyed hash), used
    alone: the ids are added before the record says so and removed after it no longer does."""
    return key("client", client_key)


def client_open(client_key: str) -> str:
    """A web chat client's conversations in the bot or the queue, exactly (since 2026-12-07): an id joins with its
    record's write that says open (one node: the next command of that pipeline, run only while the record is that
    one: ``client_open_add``; a Cluster: a ``SADD`` after it) and leaves before the record stops saying so (an
    ending's, an erasure's or a purge's). Listing fewer, never more (an old instance's ending aside: read then as
    :func:`client`'s set disagreeing), the gate reads it with :func:`client`'s set in one script (``client_count``):
    both the same, it is the count. Its hash tag is :func:`client`'s whole name, so both share a slot on a Cluster."""
    return tagged("client-open", client(client_key))


def client_read(client_key: str) -> str:
    """Set (``PX`` :data:`gateway.store.redis.CLIENT_READ_MS`) when the gate last read a full client's records
    (``client_count``), beside :func:`client_open` in its slot: at the cap the records are read again once it lapsed."""
    return tagged("client-read", client(client_key))
