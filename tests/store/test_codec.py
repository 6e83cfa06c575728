"""Encoding of store records: exact round trips, and nothing identifying in a repr or an error."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.conversation import Conversation, Priority, RiskFlag, Status
from gateway.errors import StoreError, UnknownText
from gateway.messages import Attachment, ChannelName, Choice
from gateway.store import Author, Delivery, SystemText, TranscriptEntry
from gateway.store.codec import (
    decode_conversation,
    decode_entry_data,
    dumps,
    encode_conversation,
    encode_entry,
    encode_entry_data,
    flagged_entry_data,
    from_us,
    loads,
    to_us,
)
from gateway.store.texts import Reference, SharedText

zones = st.sampled_from([UTC, timezone(timedelta(hours=2))])
moments = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=zones)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)


@given(moments)
def test_microseconds_round_trip_exactly(moment: datetime) -> None:
    back = from_us(to_us(moment))
    assert back == moment and back.tzinfo is UTC


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        to_us(datetime(2030, 1, 1))


@given(
    engine=st.dictionaries(st.text(max_size=10), json_values, max_size=4),
    summary=st.lists(st.tuples(st.text(max_size=10), st.text(max_size=10)), max_size=3),
    status=st.sampled_from(list(Status)),
    priority=st.sampled_from(list(Priority)),
    created=moments,
    optional=st.none() | moments,
)
def test_conversation_round_trips(
    engine: dict[str, Any],
    summary: list[tuple[str, str]],
    status: Status,
    priority: Priority,
    created: datetime,
    optional: datetime | None,
) -> None:
    conversation = Conversation(
        "id", ChannelName.WHATSAPP, "whatsapp:+33600000000", "Loutre-2291", created, created, status=status,
        engine=engine, priority=priority, summary=summary, queued_at=optional, route="listener",
        closed_notice_for=optional, window_paused_for=optional,
    )  # fmt: skip
    assert decode_conversation(encode_conversation(conversation)) == conversation


def test_a_record_keeps_only_the_fields_set_and_records_written_before_still_read() -> None:
    now = datetime(2030, 1, 1, 9, tzinfo=UTC)
    conversation = Conversation.start(ChannelName.WHATSAPP, "whatsapp:+33600000000", now)
    data = encode_conversation(conversation)
    assert "listener" not in data and "closed_at" not in data and data["created_at"] == to_us(now)
    unset = dict.fromkeys(["flag", "listener", "queued_at", "taken_at", "closed_at", "left_at"])
    before = {**asdict(conversation), "created_at": now.isoformat(), "updated_at": now.isoformat(), **unset}
    assert decode_conversation(before) == conversation == decode_conversation(data)
    assert len(dumps(data)) < len(dumps(before)) - 150


def test_the_timers_stamps_kept_in_the_engine_state_by_older_versions_are_read_into_their_fields() -> None:
    queued, last = datetime(2030, 1, 1, 9, tzinfo=UTC), datetime(2030, 1, 1, 8, tzinfo=UTC)
    conversation = Conversation("id", ChannelName.WHATSAPP, "whatsapp:+33600000000", "Loutre-2291", last, last,
                                status=Status.QUEUED, queued_at=queued, last_inbound_at=last)  # fmt: skip
    old = encode_conversation(conversation)
    old.pop("closed_notice_for", None), old.pop("window_paused_for", None)
    old["engine"] = {"step": "topic", "closed_notice": queued.isoformat(), "window_paused": last.isoformat()}
    read = decode_conversation(old)
    assert (read.closed_notice_for, read.window_paused_for, read.engine) == (queued, last, {"step": "topic"})
    old["queued_at"], old["engine"] = None, {"closed_notice": "queued"}  # written while queued_at was unknown
    assert decode_conversation(old).closed_notice_for == last  # told (its creation stands in for the wait)


def test_reprs_hide_what_identifies_a_young_person() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    conversation = Conversation.start(ChannelName.WHATSAPP, "whatsapp:+33612345678", now)
    conversation.engine = {"fields": {"prenom": "Camille"}}
    conversation.summary = [("Prénom", "Camille")]
    entry = TranscriptEntry("e1", conversation.id, now, Author.USER, "je m'appelle Camille")
    for text in (repr(conversation), repr(entry)):
        assert "33612345678" not in text and "Camille" not in text
    assert conversation.pseudonym in repr(conversation)


def test_a_corrupt_record_names_only_its_kind() -> None:
    with pytest.raises(StoreError) as caught:
        loads("conversation", '{"sender": "whatsapp:+33612345678"}', decode_conversation)
    assert str(caught.value) == "a stored conversation record cannot be read (KeyError)"


entries = st.builds(
    TranscriptEntry,
    id=st.text(min_size=1, max_size=24),
    conversation_id=st.text(min_size=1, max_size=24),
    at=moments.map(lambda moment: moment.astimezone(UTC)),
    author=st.sampled_from(list(Author)),
    text=st.text(max_size=200),
    choices=st.lists(st.builds(Choice, st.text(max_size=10), st.text(max_size=20)), max_size=3).map(tuple),
    attachments=st.lists(
        st.builds(Attachment, st.sampled_from(["image", "file"]), st.none() | st.text(max_size=20)), max_size=2
    ).map(tuple),
    delivery=st.sampled_from(list(Delivery)),
    provider_message_id=st.none() | st.text(min_size=1, max_size=20),
    system=st.none()
    | st.builds(
        SystemText,
        st.text(min_size=1, max_size=20),
        st.lists(st.tuples(st.text(max_size=8), st.text(max_size=30)), max_size=3).map(tuple),
    ),
)


@given(entries)
def test_compact_entries_round_trip_and_old_records_still_read(entry: TranscriptEntry) -> None:
    compact = encode_entry_data(entry)
    assert decode_entry_data(entry.id, compact, entry.delivery, entry.provider_message_id) == entry
    old = dumps(encode_entry(entry))  # the form written before
    assert decode_entry_data(entry.id, old, entry.delivery, entry.provider_message_id) == entry
    assert len(compact) < len(old)


flags = st.builds(RiskFlag, st.sampled_from(["suicide", "imminent"]), st.floats(0, 1), st.sampled_from(["model"]))


@given(entries, st.none() | flags, flags)
def test_a_late_flag_lands_on_a_young_person_s_entry_in_either_form_never_over_a_stronger_one(
    entry: TranscriptEntry, kept: RiskFlag | None, late: RiskFlag
) -> None:
    entry = replace(entry, flag=kept)
    expected = replace(entry, flag=late) if late.replaces(kept) else entry
    for raw in (encode_entry_data(entry), dumps(encode_entry(entry))):  # its compact form, and the form before
        flagged = flagged_entry_data(raw, late)
        if entry.author is not Author.USER:
            assert flagged is None
            continue
        assert flagged is not None
        assert decode_entry_data(entry.id, flagged, entry.delivery, entry.provider_message_id) == expected
        assert (flagged == raw) is (expected.flag == kept)  # nothing to write when the flag it holds stays
        assert flagged_entry_data(flagged, late) == flagged  # the same flag again: the same


def test_a_corrupt_compact_entry_names_only_its_kind() -> None:
    with pytest.raises(StoreError, match="transcript record") as caught:
        decode_entry_data("e1", '["c1", "not a time", "user", "secret words"]', Delivery.SENT, None)
    assert "secret" not in str(caught.value)


@given(entries)
def test_an_entry_kept_by_reference_reads_back_its_shared_content(entry: TranscriptEntry) -> None:
    shared = {"ref1": SharedText(entry.text, entry.choices)}
    compact = encode_entry_data(entry, Reference("ref1", b""))
    assert json.loads(compact)[3:] == [["ref1"]]  # neither the text nor the choices
    found = decode_entry_data(entry.id, compact, entry.delivery, entry.provider_message_id, shared.__getitem__)
    assert (found.text, found.choices, found.at, found.author) == (entry.text, entry.choices, entry.at, entry.author)
    with pytest.raises(UnknownText):  # the store loads its shared texts on this, then decodes again
        decode_entry_data(entry.id, compact, entry.delivery, entry.provider_message_id)


def test_a_filled_template_keeps_its_values_and_reads_back_exactly() -> None:
    entry = TranscriptEntry("e1", "c1", datetime(2030, 1, 1, tzinfo=UTC), Author.BOT, "Tu es en position 3, {wait}.")
    shared = {"ref1": SharedText("Tu es en position {position}, {wait}.", ())}
    compact = encode_entry_data(entry, Reference("ref1", b"", {"position": "3", "wait": "{wait}"}))
    assert json.loads(compact)[3] == ["ref1", {"position": "3", "wait": "{wait}"}]
    assert decode_entry_data("e1", compact, Delivery.PENDING, None, shared.__getitem__) == entry


_JSON_LIKE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: (
        st.lists(inner, max_size=5).map(lambda v: v if len(v) % 2 else tuple(v))
        | st.dictionaries(st.text() | st.integers() | st.floats() | st.booleans() | st.none(), inner, max_size=5)
    ),
    max_leaves=30,
)
_FORMER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))  # ``dumps`` until the twenty-eighth pass


@given(_JSON_LIKE)
def test_dumps_writes_what_a_json_encoder_made_for_each_call_writes(data: object) -> None:
    assert dumps(data) == _FORMER.encode(data)


def test_dumps_fails_as_a_json_encoder_does_and_encodes_again_after() -> None:
    circular: list[Any] = [1]
    circular.append({"again": circular})
    with pytest.raises(ValueError, match="Circular reference detected"):
        dumps(circular)
    with pytest.raises(TypeError, match="Object of type object is not JSON serializable"):
        dumps({"a": [object()]})
    assert dumps({"a": [1, "é"], "b": None}) == '{"a":[1,"é"],"b":null}'
