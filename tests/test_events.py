"""The events' one codec (``gateway/events.py``): the JSON the console's scripts and the other instances read, and
back; a type this version does not know, or a malformed event, decodes to None."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, get_args

import pytest

from gateway.conversation import RiskFlag, Status
from gateway.events import (
    Alert,
    DeliveryChanged,
    EntryAdded,
    Erased,
    Event,
    FlagRaised,
    LanguageChanged,
    ListenersOnline,
    NoteAdded,
    NoticesChanged,
    QueueChanged,
    Resync,
    SessionsEnded,
    StatusChanged,
    Typing,
    decode,
    encode,
)
from gateway.messages import Attachment, Choice
from gateway.store import Author, Delivery, SystemText, TranscriptEntry

AT = datetime(2026, 3, 10, 13, 0, tzinfo=UTC)
FLAG = RiskFlag("suicide", 0.91, "keywords", ("plus envie",))
ENTRY = TranscriptEntry(
    "e1", "c1", AT, Author.USER, "Bonjour", choices=(Choice("oui", "Oui"),),
    attachments=(Attachment("image", "https://cdn.example/1.jpg", "image/jpeg"),), delivery=Delivery.DELIVERED,
    flag=FLAG,
)  # fmt: skip
ENTRY_JSON = {
    "id": "e1", "author": "user", "text": "Bonjour", "choices": [{"value": "oui", "label": "Oui"}],
    "attachments": [{"kind": "image", "url": "https://cdn.example/1.jpg", "content_type": "image/jpeg", "name": None}],
    "at": "2026-03-10T13:00:00+00:00", "delivery": "delivered",
    "flag": {"risk": "suicide", "score": 0.91, "source": "keywords", "words": ["plus envie"]}, "system": None,
}  # fmt: skip
SYSTEM_ENTRY = TranscriptEntry(
    "e2", "c1", AT, Author.SYSTEM, "…", delivery=Delivery.PENDING,
    system=SystemText("left.blocked", (("channel", "telegram"),)),
)  # fmt: skip
SYSTEM_JSON = {
    "id": "e2", "author": "system", "text": "…", "choices": [], "attachments": [], "at": "2026-03-10T13:00:00+00:00",
    "delivery": "pending", "flag": None, "system": {"code": "left.blocked", "params": {"channel": "telegram"}},
}  # fmt: skip

WIRE: list[tuple[Event, dict[str, Any]]] = [
    (QueueChanged(), {"type": "queue"}),
    (EntryAdded("c1", ENTRY), {"type": "entry", "conversation_id": "c1", "entry": ENTRY_JSON}),
    (EntryAdded("c1", SYSTEM_ENTRY), {"type": "entry", "conversation_id": "c1", "entry": SYSTEM_JSON}),
    (NoteAdded("c1", ENTRY), {"type": "note", "conversation_id": "c1", "entry": ENTRY_JSON}),
    (FlagRaised("c1", "e1", FLAG),
     {"type": "flag", "conversation_id": "c1", "entry_id": "e1", "flag": ENTRY_JSON["flag"]}),
    (StatusChanged("c1", Status.QUEUED, "general"),
     {"type": "status", "conversation_id": "c1", "status": "queued", "queue": "general"}),
    (LanguageChanged("c1", "en"), {"type": "language", "conversation_id": "c1", "language": "en"}),
    (DeliveryChanged("c1", "e2", Delivery.READ),
     {"type": "delivery", "conversation_id": "c1", "id": "e2", "delivery": "read"}),
    (DeliveryChanged("c1", "e2", Delivery.FAILED, "HTTP 400"),
     {"type": "delivery", "conversation_id": "c1", "id": "e2", "delivery": "failed", "reason": "HTTP 400"}),
    (Typing("c1", "listener"), {"type": "typing", "conversation_id": "c1", "who": "listener"}),
    (NoticesChanged("c1"), {"type": "notices", "conversation_id": "c1"}),
    (Alert("login_locked", "anne", "5 failed logins"),
     {"type": "alert", "kind": "login_locked", "subject": "anne", "detail": "5 failed logins"}),
    (ListenersOnline("i1", ("ab12", "cd34")), {"type": "presence", "instance": "i1", "listeners": ["ab12", "cd34"]}),
    (SessionsEnded(session="k1"), {"type": "sessions_ended", "session": "k1", "listener": None}),
    (SessionsEnded(listener="d1"), {"type": "sessions_ended", "session": None, "listener": "d1"}),
    (Resync(), {"type": "resync"}),
    (Erased("c1", SYSTEM_ENTRY, "anne"),
     {"type": "erased", "conversation_id": "c1", "entry": SYSTEM_JSON, "listener": "anne"}),
]  # fmt: skip


@pytest.mark.parametrize(("event", "wire"), WIRE, ids=[type(event).__name__ for event, _ in WIRE])
def test_each_event_has_one_json_form_and_reads_back(event: Event, wire: dict[str, Any]) -> None:
    assert encode(event) == wire
    assert decode(json.loads(json.dumps(encode(event)))) == event


def test_every_event_type_is_covered() -> None:
    assert {type(event) for event, _ in WIRE} == set(get_args(Event))


@pytest.mark.parametrize(
    "data",
    [
        {"type": "from_a_newer_version", "conversation_id": "c1"},
        ["queue"],
        None,
    ],
)
def test_an_unknown_event_decodes_to_none(data: object) -> None:
    assert decode(data) is None


@pytest.mark.parametrize(
    "data",
    [
        {"type": "entry", "conversation_id": "c1"},
        {"type": "status", "conversation_id": "c1", "status": "sleeping"},
        {"type": "typing", "conversation_id": "c1", "who": "someone"},
        {"type": "language", "conversation_id": "c1", "language": None},
        {"type": "presence", "instance": "i1", "listeners": "anne"},
        {"type": "presence", "instance": 5, "listeners": []},
        {"type": "flag", "conversation_id": "c1", "entry_id": "e1", "flag": None},
        {"type": "delivery", "conversation_id": "c1", "id": "e1", "delivery": "queued"},
    ],
)
def test_a_known_event_that_cannot_be_read_decodes_to_a_resync(data: object) -> None:
    """Never missed without a word: its subscribers reload from the store (a newer instance, a rolling deploy)."""
    assert decode(data) == Resync()


def test_what_a_newer_version_adds_to_an_entry_is_read_as_this_one_can() -> None:
    attachment = {"kind": "image", "url": None, "content_type": None, "name": None, "size": 1}
    entry = {**ENTRY_JSON, "author": "supervisor", "delivery": "queued", "reply_to": "e0", "attachments": [attachment]}
    event = decode({"type": "entry", "conversation_id": "c1", "entry": entry})
    assert isinstance(event, EntryAdded)
    assert (event.entry.author, event.entry.delivery) == (Author.SYSTEM, Delivery.PENDING)  # never shown to the page
    assert event.entry.attachments == (Attachment("image"),)
