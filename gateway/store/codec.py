"""JSON encoding of the store's records, shared by both implementations.

Datetimes travel as integer microseconds since the epoch (the conversation record and transcript entries, where a
store must sort or compare them: SQLite columns, Redis scores), or as ISO 8601 text in UTC (the other records, and
conversation records written before). A naive datetime is a programming error and raises ValueError
before anything is written. A record that cannot be decoded raises StoreError naming the record kind only.

What identifies or quotes a young person is sealed on its way in and opened on its way out
(:func:`dumps_sealed`, :func:`loads_sealed`, with the store's :class:`~gateway.crypto.DataKeys`): both stores
call these, so encryption at rest is this one layer, not a concern of each store method.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, fields, replace
from datetime import UTC, datetime
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import TYPE_CHECKING, Any, TypeVar

from gateway.conversation import Conversation, Priority, RiskFlag, Status
from gateway.errors import StoreError, UnknownText
from gateway.messages import Attachment, ChannelName, Choice, Outbound
from gateway.store import (
    AuditEntry,
    Author,
    Block,
    Delivery,
    Listener,
    QueueEntry,
    SystemText,
    TranscriptEntry,
)
from gateway.store.texts import fill

if TYPE_CHECKING:
    from gateway.crypto import DataKeys
    from gateway.store.texts import Reference, SharedText

T = TypeVar("T")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_us(moment: datetime) -> int:
    """Microseconds since the epoch: exact, sortable."""
    if moment.tzinfo is None:
        raise ValueError("the store needs aware datetimes (UTC), got a naive one")
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(micros: int) -> datetime:
    return datetime.fromtimestamp(micros // 1_000_000, UTC).replace(microsecond=micros % 1_000_000)


def _text(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        raise ValueError("the store needs aware datetimes (UTC), got a naive one")
    return moment.astimezone(UTC).isoformat()


def _moment(stored: int | str | None) -> datetime | None:
    return None if stored is None else _required(stored)


def _required(stored: int | str) -> datetime:
    """A time as a record keeps it: microseconds (since this version), ISO 8601 text (before)."""
    return from_us(stored) if isinstance(stored, int) else datetime.fromisoformat(stored)


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))  # built once: ``json.dumps`` with options
# builds an encoder each call (about a third of a small record's encoding, nine times a message)
# ``_ENCODER.encode``'s own C encoder, made once too: ``JSONEncoder.encode`` made one at each call, with a fresh dict of
# the containers being encoded (its check for circular references). Made without that dict, it holds nothing between
# calls (threads may share it: SQLite's encodes on its own); a circular structure, which it would recurse into until
# RecursionError, and any other failure are encoded again by ``_ENCODER``, which raises its own error (about 1 µs of
# an event's 3.9; bench/README.md, "Twenty-eighth pass").
_C_ENCODE = (
    None
    if c_make_encoder is None
    else c_make_encoder(None, _ENCODER.default, encode_basestring, None, ":", ",", False, False, True)
)


def dumps(data: object) -> str:
    """``_ENCODER.encode(data)``, the same text (tests/store/test_codec.py compares them)."""
    if _C_ENCODE is None:
        return _ENCODER.encode(data)
    try:
        return "".join(_C_ENCODE(data, 0))
    except Exception:
        return _ENCODER.encode(data)  # its own error (TypeError, a circular structure's ValueError…)


def dumps_sealed(keys: DataKeys, kind: str, data: object) -> bytes:
    """A record's JSON, sealed with the current data key (the kind is bound to it)."""
    return keys.seal(kind, dumps(data))


PART = 500
"""Records decoded in one turn of the event loop at most (:func:`decoded_in_parts`, the Redis store's reads of many
records): ~50 ms of a 2-core machine at ~100 µs a record (AES-GCM and JSON)."""

R = TypeVar("R")


async def decoded_in_parts(raws: Sequence[R], decode: Callable[[R], T]) -> list[T]:
    """``decode`` of each raw record, :data:`PART` at a time with a turn of the event loop between the parts: a read of
    many records (a year's figures, an erasure looking through every conversation) leaves the gateway answering
    meanwhile. Until 2026-12-06 decoded in one block: 20,000 conversations held the loop 2–3 s."""
    decoded: list[T] = []
    for start in range(0, len(raws), PART):
        if start:
            await asyncio.sleep(0)
        decoded += [decode(raw) for raw in raws[start : start + PART]]
    return decoded


def loads_sealed(keys: DataKeys, kind: str, raw: str | bytes, decode: Callable[[Any], T]) -> T:
    """A record stored by :func:`dumps_sealed` (or in clear, written before encryption), decoded."""
    return loads(kind, keys.open(kind, raw), decode)


def loads(kind: str, raw: str | bytes, decode: Callable[[Any], T]) -> T:
    """Decode one stored record; StoreError (naming only the kind) if it is corrupt."""
    try:
        return decode(json.loads(raw))
    except (ValueError, KeyError, TypeError) as error:
        raise StoreError(f"a stored {kind} record cannot be read ({type(error).__name__})") from None


_MOMENTS = ("created_at", "updated_at", "last_inbound_at", "queued_at", "taken_at", "closed_at", "left_at",
            "waiting_since", "closed_notice_for", "closed_told_at", "window_paused_for", "erase_asked_at", "purged_at",
            "flagged_at", "page_opened_at", "page_answered_at", "standby_at", "unblocked_at")  # fmt: skip
_CONVERSATION_FIELDS = tuple(f.name for f in fields(Conversation))


def encode_conversation(conversation: Conversation) -> dict[str, Any]:
    """The record as JSON: times in microseconds, and only the fields that are set (an absent one is None).
    Records written before (ISO 8601 times, every field present) read as well. The fields are read, not
    ``dataclasses.asdict``-ed: that deep-copied the engine state at every save (3 % of a message's CPU)."""
    data = {name: getattr(conversation, name) for name in _CONVERSATION_FIELDS}
    for name in _MOMENTS:
        data[name] = None if data[name] is None else to_us(data[name])
    data["summary"] = [[label, value] for label, value in conversation.summary]
    data["flag"] = conversation.flag.to_dict() if conversation.flag else None
    data["partners_given"] = list(conversation.partners_given) or None
    data["partners_owed"] = list(conversation.partners_owed) or None
    data["interrupts_said"] = list(conversation.interrupts_said) or None
    return {name: value for name, value in data.items() if value is not None}


def decode_conversation(data: dict[str, Any]) -> Conversation:
    engine = dict(data["engine"])
    closed_notice, window_paused = engine.pop("closed_notice", None), engine.pop("window_paused", None)
    waiting_since = data.get("queued_at") or data["created_at"]
    return Conversation(
        id=data["id"],
        channel=ChannelName(data["channel"]),
        sender=data["sender"],
        pseudonym=data["pseudonym"],
        created_at=_required(data["created_at"]),
        updated_at=_required(data["updated_at"]),
        status=Status(data["status"]),
        engine=engine,
        flow_version=data["flow_version"],
        queue=data.get("queue"),
        priority=Priority(data["priority"]),
        summary=[(str(label), str(value)) for label, value in data["summary"]],
        route=data.get("route"),
        listener=data.get("listener"),
        outcome=data.get("outcome"),
        last_inbound_at=_moment(data.get("last_inbound_at")),
        queued_at=_moment(data.get("queued_at")),
        taken_at=_moment(data.get("taken_at")),
        waiting_since=_moment(data.get("waiting_since")),
        first_wait_seconds=data.get("first_wait_seconds"),
        closed_at=_moment(data.get("closed_at")),
        client=data.get("client"),
        left_at=_moment(data.get("left_at")),
        left_how=data.get("left_how"),
        unblocked_at=_moment(data.get("unblocked_at")),
        flag=RiskFlag.from_dict(data.get("flag")),
        # records written before these fields kept them in the engine state, as texts ("queued", "": no time)
        closed_notice_for=_moment(data.get("closed_notice_for") or _old_stamp(closed_notice, waiting_since)),
        closed_told_at=_moment(data.get("closed_told_at")),
        window_paused_for=_moment(
            data.get("window_paused_for") or _old_stamp(window_paused, data.get("last_inbound_at"))
        ),
        standby_at=_moment(data.get("standby_at")),
        erase_asked_at=_moment(data.get("erase_asked_at")),
        purged_at=_moment(data.get("purged_at")),
        flagged_at=_moment(data.get("flagged_at")),
        page_opened_at=_moment(data.get("page_opened_at")),
        partners_given=tuple(str(p) for p in data.get("partners_given", ())),
        partners_owed=tuple(str(p) for p in data.get("partners_owed", ())),
        interrupts_said=tuple(str(p) for p in data.get("interrupts_said", ())),
        alert=data.get("alert"),
        page_answered_at=_moment(data.get("page_answered_at")),
    )


def flagged_rank(conversation: Conversation) -> int | None:
    """The score of an open conversation with a risk flag in the store's index of them (``ConversationStore.
    flagged_conversations``): when its flag was last recorded (µs; a record flagged before ``flagged_at`` existed
    kept no time for it: its last change stands for it); None for a conversation the index leaves out (no flag, or
    ended)."""
    if conversation.flag is None or not conversation.active:
        return None
    return to_us(conversation.flagged_at or conversation.updated_at)


def told_rank(conversation: Conversation) -> int | None:
    """The score of a waiting conversation in the store's index of those told, in this wait (since
    ``waiting_since``), that the line is closed and where to turn (``ConversationStore.told_closed_waiting``, the
    supervision board's count): when they were told (µs); None for one the index leaves out (not waiting, never
    told, or told before this wait). Since 2026-12-07: before, the board read every waiting record for it."""
    told, since = conversation.closed_told_at, conversation.waiting_since or conversation.queued_at
    if told is None or conversation.status != Status.QUEUED or (since is not None and told < since):
        return None
    return to_us(told)


def ended_rank(conversation: Conversation) -> int | None:
    """The score of an ended conversation in the index of its listener's ended conversations (``ConversationStore.
    ended_with``): when it ended (µs: ``closed_at``, else its last change, as the console's history orders them);
    None for one the index leaves out (open, or ended naming no listener)."""
    if conversation.active or not conversation.listener:
        return None
    return to_us(conversation.closed_at or conversation.updated_at)


def _old_stamp(stamp: object, moment: int | str | None) -> int | str | None:
    """A stamp the timers kept in the engine state: the time it names (``moment`` when it names none)."""
    if not isinstance(stamp, str):
        return None
    return stamp if stamp not in ("queued", "") else moment


def encode_entry(entry: TranscriptEntry) -> dict[str, Any]:
    data = asdict(entry)
    data["at"] = _text(entry.at)
    data["flag"] = entry.flag.to_dict() if entry.flag else None
    data["system"] = _encode_system(entry.system)
    return data


def _encode_system(system: SystemText | None) -> list[Any] | None:
    return [system.code, [list(pair) for pair in system.params]] if system else None


def _decode_system(data: list[Any] | None) -> SystemText | None:
    if not data:
        return None
    code, params = data
    return SystemText(str(code), tuple((str(key), str(value)) for key, value in params))


def decode_entry(data: dict[str, Any]) -> TranscriptEntry:
    return TranscriptEntry(
        id=data["id"],
        conversation_id=data["conversation_id"],
        at=_required(data["at"]),
        author=Author.read(data["author"]),  # a newer version's (a rolling deploy): shown to listeners only
        text=data["text"],
        choices=tuple(Choice(str(choice["value"]), str(choice["label"])) for choice in data["choices"]),
        attachments=tuple(Attachment.known(attachment) for attachment in data["attachments"]),
        delivery=Delivery.read(data["delivery"]),
        provider_message_id=data["provider_message_id"],
        flag=RiskFlag.from_dict(data.get("flag")),  # entries written before the field existed have none
        system=_decode_system(data.get("system")),
    )


def encode_entry_data(
    entry: TranscriptEntry, shared: Reference | None = None, *, conversation_id: str | None = None
) -> str:
    """The compact form of an entry's content, without its id, delivery and provider id (stored beside it):
    ``[conversation, at µs, author, text]``, then the choices as ``[value, label]`` pairs, the attachments, the
    risk flag and a system entry's code, each when it or a later one is there. About half the size of
    :func:`encode_entry`'s JSON for a bot message. With ``shared`` (a bot message of flows.yaml's words, kept
    once in the shared texts: ``gateway/store/texts.py``), ``[conversation, at µs, author, [ref]]``, or for a filled
    template ``[…, [ref, {placeholder: value}]]``. ``conversation_id``: written in the entry's place (Redis writes
    "": the list is the conversation's), without a copy of the entry made for it."""
    conversation = entry.conversation_id if conversation_id is None else conversation_id
    if shared is not None:
        ref = [shared.ref, dict(shared.params)] if shared.params else [shared.ref]
        return dumps([conversation, to_us(entry.at), entry.author.value, ref])
    data: list[Any] = [conversation, to_us(entry.at), entry.author.value, entry.text]
    if entry.choices or entry.attachments or entry.flag or entry.system:
        data.append([[choice.value, choice.label] for choice in entry.choices])
    if entry.attachments or entry.flag or entry.system:
        data.append([asdict(attachment) for attachment in entry.attachments])
    if entry.flag or entry.system:
        data.append(entry.flag.to_dict() if entry.flag else None)
    if entry.system:
        data.append(_encode_system(entry.system))
    return dumps(data)


def entry_author_at(raw: str | bytes) -> tuple[Author, int]:
    """An entry's author and time (µs) from :func:`encode_entry_data`'s form or :func:`encode_entry`'s, without
    reading its text (a shared text's content is not needed)."""
    data = json.loads(raw)
    if isinstance(data, dict):
        return Author.read(data["author"]), to_us(_required(data["at"]))
    return Author.read(data[2]), int(data[1])


def decode_entry_data(
    entry_id: str, raw: str | bytes, delivery: Delivery, provider_message_id: str | None,
    shared: Callable[[str], SharedText] | None = None,
) -> TranscriptEntry:  # fmt: skip
    """An entry from :func:`encode_entry_data`'s form (``shared`` gives the content of a reference; UnknownText
    when it has not been loaded), or from :func:`encode_entry`'s (records written before); StoreError (naming
    only the kind) if it is corrupt."""
    try:
        data = json.loads(raw)
        if isinstance(data, dict):
            entry = decode_entry(data)
            return replace(entry, delivery=delivery, provider_message_id=provider_message_id)
        conversation_id, at_us, author, text, *rest = data
        choices = tuple(Choice(value, label) for value, label in (rest[0] if rest else ()))
        if isinstance(text, list):
            if shared is None:
                raise UnknownText("a transcript entry refers to a shared text not loaded")
            content = shared(str(text[0]))
            params = {str(k): str(v) for k, v in text[1].items()} if len(text) > 1 else {}
            text, choices = fill(content.text, params), content.choices
        return TranscriptEntry(
            id=entry_id,
            conversation_id=conversation_id,
            at=from_us(int(at_us)),
            author=Author.read(author),
            text=text,
            choices=choices,
            attachments=tuple(Attachment.known(a) for a in (rest[1] if len(rest) > 1 else ())),
            flag=RiskFlag.from_dict(rest[2] if len(rest) > 2 else None),
            system=_decode_system(rest[3] if len(rest) > 3 else None),
            delivery=delivery,
            provider_message_id=provider_message_id,
        )
    except (ValueError, KeyError, TypeError, IndexError) as error:
        raise StoreError(f"a stored transcript record cannot be read ({type(error).__name__})") from None


def flagged_entry_data(raw: str, flag: RiskFlag) -> str | None:
    """A young person's entry stored as :func:`encode_entry_data` writes it (or :func:`encode_entry`, records written
    before), with ``flag`` kept on it; ``raw`` itself when the flag it holds stays (the same, or a stronger one:
    :meth:`RiskFlag.replaces`); None when it is not a young person's entry (theirs never refer to a shared text)."""
    try:
        data = json.loads(raw)
        compact = isinstance(data, list)
        author, held = (data[2], data[6] if len(data) > 6 else None) if compact else (data["author"], data.get("flag"))
        if author != Author.USER.value:
            return None
        kept = RiskFlag.from_dict(held)
        if kept == flag or not flag.replaces(kept):
            return raw
        if not compact:
            return dumps(data | {"flag": flag.to_dict()})
        data += [[] for _ in range(6 - len(data))]  # the choices and attachments, when it had none
        return dumps([*data[:6], flag.to_dict(), *data[7:]])
    except (ValueError, KeyError, TypeError, IndexError) as error:
        raise StoreError(f"a stored transcript record cannot be read ({type(error).__name__})") from None


_OUTBOUND_KEYS = frozenset(f.name for f in fields(Outbound))


_ATTACHMENT_FIELDS = tuple(f.name for f in fields(Attachment))
_ENCODED = frozenset({"id", "conversation_id", "channel", "recipient", "text", "choices", "author", "attachments"})
assert _ENCODED == _OUTBOUND_KEYS, "encode_outbound writes every field of Outbound: it needs the new one"


def encode_outbound(outbound: Outbound) -> dict[str, Any]:
    """An outgoing message as the outbox item's payload (what ``dataclasses.asdict`` gave, the channel as its
    value). The fields are read, not ``asdict``-ed: its deep copy cost about 50 µs per reply under load."""
    return {
        "id": outbound.id, "conversation_id": outbound.conversation_id, "channel": outbound.channel.value,
        "recipient": outbound.recipient, "text": outbound.text,
        "choices": tuple({"value": c.value, "label": c.label} for c in outbound.choices), "author": outbound.author,
        "attachments": tuple({name: getattr(a, name) for name in _ATTACHMENT_FIELDS} for a in outbound.attachments),
    }  # fmt: skip


def decode_outbound(data: dict[str, Any]) -> Outbound:
    """The payload back; TypeError for a key this version does not know (a newer version wrote it), KeyError for
    a missing one: the outbox sets such an item aside."""
    unknown = data.keys() - _OUTBOUND_KEYS
    if unknown:
        raise TypeError(f"unknown outbound keys {sorted(unknown)}")
    return Outbound(
        id=str(data["id"]), conversation_id=str(data["conversation_id"]), channel=ChannelName(data["channel"]),
        recipient=str(data["recipient"]), text=str(data["text"]),
        choices=tuple(Choice(**c) for c in data.get("choices", ())), author=str(data.get("author", "bot")),
        attachments=tuple(Attachment(**a) for a in data.get("attachments", ())),
    )  # fmt: skip


def encode_queue_entry(entry: QueueEntry) -> dict[str, Any]:
    """No ``flag`` key without a flag (the entries written before it had none); a flag without its words."""
    data: dict[str, Any] = {
        "conversation_id": entry.conversation_id, "queue": entry.queue, "priority": str(entry.priority),
        "at": _text(entry.at), "taken_by": entry.taken_by,
    }  # fmt: skip
    if entry.flag is not None:
        data["flag"] = queue_flag(entry.flag)
    return data


def queue_flag(flag: RiskFlag) -> dict[str, object]:
    """A queue entry's flag as stored: its class, score and source, never the words of a message."""
    return replace(flag, words=()).to_dict()


def decode_queue_entry(data: dict[str, Any]) -> QueueEntry:
    return QueueEntry(
        conversation_id=data["conversation_id"],
        queue=data["queue"],
        priority=Priority(data["priority"]),
        at=_required(data["at"]),
        taken_by=data["taken_by"],
        flag=RiskFlag.from_dict(data.get("flag")),
    )


def encode_listener(listener: Listener) -> dict[str, Any]:
    return {**asdict(listener), "created_at": _text(listener.created_at)}


def decode_listener(data: dict[str, Any]) -> Listener:
    return Listener(
        name=data["name"],
        password_hash=data["password_hash"],
        supervisor=bool(data["supervisor"]),
        capacity=int(data["capacity"]),
        created_at=_moment(data["created_at"]),
    )


def encode_block(block: Block) -> dict[str, Any]:
    return {**asdict(block), "channel": str(block.channel), "until": _text(block.until), "at": _text(block.at)}


def decode_block(data: dict[str, Any]) -> Block:
    return Block(
        key=data["key"], channel=ChannelName(data["channel"]), until=_moment(data["until"]), reason=data["reason"],
        by=data["by"], at=_required(data["at"]), pseudonym=data.get("pseudonym", ""),
    )  # fmt: skip


def encode_audit(entry: AuditEntry) -> dict[str, Any]:
    return {**asdict(entry), "at": _text(entry.at)}


def decode_audit(data: dict[str, Any]) -> AuditEntry:
    return AuditEntry(at=_required(data["at"]), actor=data["actor"], action=data["action"],
                      subject=data.get("subject", ""), detail=data.get("detail", ""))  # fmt: skip
