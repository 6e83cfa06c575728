"""Packing a record before it is sealed (gateway/packing.py): shorter, read back exactly, and readable forever."""

from __future__ import annotations

import hashlib
import zlib
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.conversation import Conversation, Priority, Status
from gateway.crypto import DataKeys, key_id, parse_key
from gateway.errors import DataKeyError
from gateway.messages import ChannelName
from gateway.packing import PACKED, RECORD_V1, RECORD_WORDS_1, pack, unpack
from gateway.store.codec import dumps, encode_conversation
from gateway.testing import DATA_KEY, SECRET_KEY

NOW = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)
PACKED_V1_SAMPLE = (  # queued_record("en", "intimate_images") packed on 2026-12-07 (zlib 1.2.13)
    "0183a66203cf329fe0bc340b2f8ba86263337f77dfcab4b0e0725cc5253c69c3c4acb48d8dcd0c8d8c4d4ccdcc2dd0d2bb33"
    "d0bdf945ba261646861849dfd2ccccd8d4c2000ad03302ba2c09d922d9303135c92cd1d2dcc4d294f8421f35c912d35d412e"
    "ff4de04915dc9c416ad8835b77f190d61d4a7acdcc01b612f3129381ad2ef5d4bcb2fc4a6022cb01b6000bc00d5b50eaa541"
    "be81753e92a10d5ebc3988b00bf1873c55f29a1fb4250ecb602644f62fb037e909d70658b2187a5a44c970e89218d90f5d01"
    "9e6a0500"
)


def sealer() -> DataKeys:
    return DataKeys([parse_key(DATA_KEY, "test")], SECRET_KEY, source="test")


def queued_record(language: str = "fr", topic: str = "sextortion") -> str:
    """A record as the dispatcher saves one handed off by the default flow (fields as the engine writes them)."""
    engine = {
        "flow_version": "c1aeb6a97495", "channel": "whatsapp", "language": language, "finished": True,
        "fields": {"urgency": "no", "language": language, "age": "14", "who": "me", "topic": topic,
                   "details": "il menace d'envoyer les photos"},
        "how": {"urgency": "button", "language": "button", "age": "typed", "who": "button", "topic": "synonym:chantage",
                "details": "typed"},
        "said": "il menace d'envoyer les photos",
    }  # fmt: skip
    conversation = Conversation(
        id="0IvLSnf8J8Zs36OGMyfVSw", channel=ChannelName.WHATSAPP, sender="whatsapp:+33612345678",
        pseudonym="Castor-4821", created_at=NOW, updated_at=NOW, status=Status.QUEUED, engine=engine,
        flow_version="c1aeb6a97495", queue="listeners", priority=Priority.HIGH,
        summary=[("Danger immédiat", "Non"), ("Âge", "14"), ("Qui écrit", "Pour moi"),
                 ("Sujet", "Chantage, sextorsion")],
        route="illegal_content_open", last_inbound_at=NOW, queued_at=NOW, waiting_since=NOW,
        partners_given=("pharos",),
    )  # fmt: skip
    return dumps(encode_conversation(conversation))


def test_the_records_preset_dictionary_never_changes() -> None:
    """Records packed with it cannot be read without these exact bytes: a better dictionary takes a new head."""
    assert hashlib.sha256(RECORD_WORDS_1).hexdigest()[:16] == "0baf7c3fd14839c5"


def test_a_conversation_record_is_packed_with_its_dictionary_and_read_back_exactly() -> None:
    record = queued_record()
    packed = pack("conversation", record.encode())
    assert packed.startswith(RECORD_V1)
    # zlib alone (the form before) saved little on a record this size; its dictionary most of it
    assert len(packed) < len(zlib.compress(record.encode(), 1)) * 0.6
    assert unpack("conversation", packed).decode() == record
    keys = sealer()
    sealed = keys.seal("conversation", record)
    assert len(sealed) < len(record.encode()) // 2
    assert b"33612345678" not in sealed and b"photos" not in sealed
    assert keys.open("conversation", sealed) == record
    assert keys.open("conversation", sealed.decode("utf-8", "surrogateescape")) == record
    assert keys.reseal("conversation", sealed) is None  # sealed with the current key: nothing to rewrite


def test_a_record_packed_by_this_version_stays_readable() -> None:
    """Bytes this version wrote (kept here as written): a later zlib or Python must still read them."""
    record = queued_record("en", "intimate_images")
    assert unpack("conversation", bytes.fromhex(PACKED_V1_SAMPLE)).decode() == record


def test_a_record_is_packed_to_the_same_bytes_as_before_the_packers_memory_level() -> None:
    """The packer's memory level (8 since 2026-12-07, 9 before: a cost, not a format) changes no record's bytes."""
    record = queued_record("en", "intimate_images")
    assert pack("conversation", record.encode()) == bytes.fromhex(PACKED_V1_SAMPLE)
    for language, topic in (("fr", "sextortion"), ("en", "cyberharassment"), ("fr", "school_bullying")):
        data = queued_record(language, topic).encode()
        before = zlib.compressobj(6, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, RECORD_WORDS_1)
        assert pack("conversation", data) == RECORD_V1 + before.compress(data) + before.flush()


def test_records_sealed_before_the_dictionary_open_as_they_were() -> None:
    """Records sealed by earlier versions: zlib-packed (``PACKED``), and in clear JSON under the seal."""
    record = queued_record()
    raw, nonce = parse_key(DATA_KEY, "test"), b"\x05" * 12
    for plain in (PACKED + zlib.compress(record.encode(), 1), record.encode()):
        sealed = b"~g2" + bytes.fromhex(key_id(raw)) + nonce + AESGCM(raw).encrypt(nonce, plain, b"conversation")
        assert sealer().open("conversation", sealed) == record


def test_only_the_conversation_record_is_read_with_the_dictionary() -> None:
    """Another kind's text starting with the head byte is its own text (its kind never packs with a dictionary)."""
    text = b"\x01not packed"
    assert unpack("notice", text) == text
    assert pack("notice", b'{"a":1}') == b'{"a":1}'  # short, no dictionary: as it is
    assert not pack("entry", b'["",1,"user","bonjour"]').startswith(RECORD_V1)


def test_a_packed_record_cut_short_or_altered_is_refused_never_read_wrong() -> None:
    packed = pack("conversation", queued_record().encode())
    with pytest.raises(zlib.error):
        unpack("conversation", packed[: len(packed) // 2])
    keys = sealer()
    sealed = keys.seal("conversation", queued_record())
    with pytest.raises(DataKeyError, match="conversation record does not open"):
        keys.open("conversation", sealed[:-1] + bytes([sealed[-1] ^ 1]))


def test_a_record_the_dictionary_cannot_shorten_is_sealed_as_it_is() -> None:
    assert pack("conversation", b"{}") == b"{}"  # the head and deflate's least would make it longer


def test_a_packed_record_with_bytes_after_its_end_is_refused_never_read_as_whole() -> None:
    """``unpack`` gives back exactly what ``pack`` made or refuses: bytes after the packed stream (never written by
    ``pack``; AES-GCM would refuse them under a seal) are not dropped silently, for either head."""
    record = queued_record().encode()
    packed = pack("conversation", record)
    assert packed.startswith(RECORD_V1)
    zlibbed = PACKED + zlib.compress(record, 1)
    for whole in (packed, zlibbed):
        assert unpack("conversation", whole) == record
        with pytest.raises(zlib.error):
            unpack("conversation", whole + b"\x00")
    with pytest.raises(zlib.error):
        unpack("notice", zlibbed + b"{}")
