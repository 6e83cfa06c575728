"""Sealing records at rest (gateway/crypto.py): what is stored, which key opens it, what a wrong key says."""

from __future__ import annotations

import binascii
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.crypto import KEY_FILE, DataKeys, KeyFile, key_id, new_key, parse_key
from gateway.errors import ConfigError, DataKeyError
from gateway.settings import Settings
from gateway.testing import DATA_KEY, SECRET_KEY

TEXT = '{"sender":"whatsapp:+33612345678","text":"je me sens seul"}'


def keys(*texts: str) -> DataKeys:
    return DataKeys([parse_key(text, "test") for text in texts], SECRET_KEY, source="test")


def sealed_v1(key: str, kind: str, text: str) -> str:
    """A record as versions before the binary form sealed it: ``~g1:<key id>:<base64>``."""
    raw, nonce = parse_key(key, "test"), b"\x07" * 12
    body = nonce + AESGCM(raw).encrypt(nonce, text.encode(), kind.encode())
    return f"~g1:{key_id(raw)}:{binascii.b2a_base64(body, newline=False).decode()}"


def test_a_sealed_record_names_its_key_and_shows_nothing_of_its_content() -> None:
    sealer = keys(DATA_KEY)
    sealed = sealer.seal("entry", TEXT)
    assert sealed[:7] == b"~g2" + bytes.fromhex(sealer.current_id)
    assert len(sealed) == len(TEXT) + 3 + 4 + 12 + 16  # bytes, no base64 (an entry: never packed when short)
    assert b"33612345678" not in sealed and b"seul" not in sealed
    assert sealer.seal("entry", TEXT) != sealed  # a fresh nonce each time
    assert sealer.open("entry", sealed) == TEXT
    # as Redis's client hands it over: decoded as UTF-8 with surrogateescape, which gives the bytes back
    assert sealer.open("entry", sealed.decode("utf-8", "surrogateescape")) == TEXT
    record = sealer.seal("conversation", TEXT)  # a conversation record: packed (gateway/packing.py)
    assert b"33612345678" not in record and b"seul" not in record
    assert sealer.open("conversation", record) == TEXT


def test_a_long_record_is_sealed_compressed_and_opens_as_it_was() -> None:
    sealer = keys(DATA_KEY)
    record = '{"engine":{"vars":{"age":"15","topic":"harcelement"}},' + '"summary":[["Âge","15"]],' * 30 + '"x":1}'
    sealed = sealer.seal("conversation", record)
    assert len(sealed) < len(record.encode()) // 2  # its JSON repeats itself
    assert sealer.open("conversation", sealed) == record
    assert sealer.open("conversation", sealed.decode("utf-8", "surrogateescape")) == record
    assert sealer.reseal("conversation", sealed) is None
    assert len(sealer.seal("notice", TEXT)) == len(TEXT) + 35  # a short one is sealed as it is
    altered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(DataKeyError, match="conversation record does not open"):
        sealer.open("conversation", altered)


def test_records_sealed_by_earlier_versions_open_and_a_rotation_rewrites_them_in_the_binary_form() -> None:
    sealer = keys(DATA_KEY)
    before = sealed_v1(DATA_KEY, "entry", TEXT)
    assert sealer.open("entry", before) == TEXT and sealer.open("entry", before.encode()) == TEXT
    assert not sealer.is_current(before)
    resealed = sealer.reseal("entry", before)
    assert resealed is not None and resealed.startswith(b"~g2") and sealer.open("entry", resealed) == TEXT
    assert sealer.reseal("entry", resealed) is None
    with pytest.raises(DataKeyError, match=f"entry record does not open with data key {sealer.current_id}"):
        sealer.open("entry", before[:-6] + ("AAAAAA" if not before.endswith("AAAAAA") else "BBBBBB"))


def test_a_record_sealed_with_a_key_this_gateway_lacks_names_the_key_never_the_content() -> None:
    sealed = keys(new_key()).seal("entry", TEXT)
    with pytest.raises(DataKeyError) as raised:
        keys(DATA_KEY).open("entry", sealed)
    message = str(raised.value)
    assert sealed[3:7].hex() in message and "entry" in message
    assert "seul" not in message and "3361" not in message and sealed[7:40].hex() not in message


def test_an_altered_record_or_one_of_another_kind_does_not_open() -> None:
    sealer = keys(DATA_KEY)
    sealed = sealer.seal("entry", TEXT)
    with pytest.raises(DataKeyError, match=f"entry record does not open with data key {sealer.current_id}"):
        sealer.open("entry", sealed[:-1] + bytes([sealed[-1] ^ 1]))
    with pytest.raises(DataKeyError, match="conversation record does not open"):
        sealer.open("conversation", sealed)  # the kind is bound to the record


def test_old_keys_open_the_current_one_seals_and_records_from_before_are_read_as_they_are() -> None:
    old, new = new_key(), new_key()
    sealed_before = keys(old).seal("outbox", TEXT)
    rotating = keys(new, old)
    assert rotating.open("outbox", sealed_before) == TEXT
    assert not rotating.is_current(sealed_before)
    resealed = rotating.reseal("outbox", sealed_before)
    assert resealed is not None and rotating.is_current(resealed) and rotating.reseal("outbox", resealed) is None
    assert rotating.open("outbox", TEXT) == TEXT  # written in clear before encryption existed
    assert rotating.reseal("outbox", TEXT) is not None


def test_files_are_sealed_as_bytes_and_files_from_before_are_read_as_they_are() -> None:
    picture = b"\x89PNG\r\n\x1a\n" + b"the photo" * 50
    old, new = keys(DATA_KEY), keys(new_key(), DATA_KEY)
    sealed = old.seal_bytes("upload", picture)
    assert sealed.startswith(f"~g1:{old.current_id}:".encode()) and b"the photo" not in sealed
    assert new.open_bytes("upload", sealed) == picture and new.open_bytes("upload", picture) == picture
    resealed = new.reseal_bytes("upload", sealed)
    assert resealed is not None and new.reseal_bytes("upload", resealed) is None
    with pytest.raises(DataKeyError, match=f"sealed with data key {new.current_id}"):
        old.open_bytes("upload", resealed)
    with pytest.raises(DataKeyError, match="upload file does not open"):
        new.open_bytes("upload", resealed[:-1] + bytes([resealed[-1] ^ 1]))


def test_lookups_are_keyed_hashes_of_the_identity() -> None:
    one, same = keys(DATA_KEY), keys(new_key())  # the lookup secret is not the data key: rotation keeps lookups
    assert one.identity("whatsapp", "whatsapp:+33612345678") == same.identity("whatsapp", "whatsapp:+33612345678")
    other = DataKeys([parse_key(DATA_KEY, "test")], "another secret", source="test")
    assert other.identity("whatsapp", "whatsapp:+33612345678") != one.identity("whatsapp", "whatsapp:+33612345678")
    assert "3361" not in one.identity("whatsapp", "whatsapp:+33612345678")


def test_the_embedded_key_file_is_created_once_for_its_owner_only(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/var/gateway.sqlite3"
    first = DataKeys.for_store(url)
    path = tmp_path / "var" / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "var").stat().st_mode) == 0o700
    again = DataKeys.for_store(url)
    assert again.ids == first.ids and again.identity("telegram", "42") == first.identity("telegram", "42")
    path.chmod(0o644)  # a copy restored with a loose mode is tightened
    DataKeys.for_store(url)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_key_file_rotates_and_forgets(tmp_path: Path) -> None:
    file = KeyFile(tmp_path / KEY_FILE)
    before = file.load()
    sealed = before.seal("notice", TEXT)
    new_id = file.rotate()
    rotating = file.load()
    assert rotating.ids == [new_id, before.current_id] and rotating.open("notice", sealed) == TEXT
    assert file.forget_old() == [before.current_id]
    assert file.load().ids == [new_id]


def test_settings_name_a_bad_key_never_echo_it() -> None:
    with pytest.raises(ConfigError, match="GATEWAY_DATA_KEY must be 32 random bytes") as raised:
        Settings.from_env({"GATEWAY_DATA_KEY": "not-a-key", "GATEWAY_SECRET_KEY": SECRET_KEY}, env_file=None)
    assert "not-a-key" not in str(raised.value)
    with pytest.raises(ConfigError, match="GATEWAY_DATA_KEY needs GATEWAY_SECRET_KEY"):
        Settings.from_env({"GATEWAY_DATA_KEY": DATA_KEY}, env_file=None)
    with pytest.raises(ConfigError, match="GATEWAY_DATA_KEYS_OLD is set without GATEWAY_DATA_KEY"):
        Settings.from_env({"GATEWAY_DATA_KEYS_OLD": DATA_KEY}, env_file=None)
    with pytest.raises(ConfigError, match="Redis store"):
        DataKeys.from_settings(Settings(store="redis://127.0.0.1:6379/0"))
    settings = Settings.from_env({"GATEWAY_DATA_KEY": new_key(), "GATEWAY_DATA_KEYS_OLD": DATA_KEY,
                                  "GATEWAY_SECRET_KEY": SECRET_KEY}, env_file=None)  # fmt: skip
    loaded = DataKeys.from_settings(settings)
    assert loaded.ids[1] == key_id(parse_key(DATA_KEY, "test")) and DATA_KEY not in repr(settings)
