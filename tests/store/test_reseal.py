"""Key rotation through the real command (``gateway data-key rotate``), on each store: every record resealed under
the new key, the old key no longer needed, a store holding only the old key refused with the new key's id."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.crypto import DataKeys, key_id, new_key, parse_key
from gateway.errors import DataKeyError
from gateway.messages import ChannelName
from gateway.settings import Settings
from gateway.store import Author, InboxItem, OutboxItem, Store, TranscriptEntry, open_store
from gateway.store.codec import dumps, encode_conversation, encode_entry_data
from gateway.testing import DATA_KEY, SECRET_KEY

GATEWAY = Path(sys.executable).parent / "gateway"
T0 = datetime(2030, 3, 4, 10, 0, tzinfo=UTC)
WA = ChannelName.WHATSAPP
PHONE = "whatsapp:+33612345678"
TEXT = "je ne dors plus depuis des semaines"
PICTURE = b"\x89PNG\r\n\x1a\n" + b"la photo qu'il m'a envoyee" * 20


async def gateway(tmp_path: Path, *args: str, **env: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        str(GATEWAY), *args, env={**os.environ, **env}, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def env_keys(url: str, current: str, *old: str) -> DataKeys:
    return DataKeys.from_settings(
        Settings(store=url, data_key=current, data_keys_old=",".join(old), secret_key=SECRET_KEY)
    )


async def write_a_conversation(store: Store) -> str:
    conversation, _ = await store.active_conversation(WA, PHONE, T0)
    await store.append_transcript(TranscriptEntry("e1", conversation.id, T0, Author.USER, TEXT))
    await store.outbox_put(OutboxItem("o1", conversation.id, {"to": PHONE, "text": TEXT}, T0))
    await store.inbox_put([InboxItem("i1", "order-key", {"sender": PHONE, "text": TEXT}, T0)])
    await store.put_upload("u1", "image/png", PICTURE)
    return conversation.id


async def read_back(store: Store, conversation_id: str) -> None:
    found = await store.find_active_conversation(WA, PHONE)
    assert found is not None and found.id == conversation_id and found.sender == PHONE
    assert [entry.text for entry in await store.transcript(conversation_id)] == [TEXT]
    item = await store.outbox_get(conversation_id, "o1")
    assert item is not None and item.payload == {"to": PHONE, "text": TEXT}
    assert await store.inbox_waiting("order-key")
    assert await store.get_upload("u1") == ("image/png", PICTURE)


async def test_rotation_reseals_every_record_and_the_old_key_is_no_longer_needed(
    store_url: str, tmp_path: Path
) -> None:
    store = await open_store(store_url, keys=env_keys(store_url, DATA_KEY))
    try:
        conversation_id = await write_a_conversation(store)
    finally:
        await store.close()
    new = new_key()
    new_id = key_id(parse_key(new, "test"))

    rotate = {"GATEWAY_STORE": store_url, "GATEWAY_DATA_KEY": new, "GATEWAY_SECRET_KEY": SECRET_KEY}
    code, out, err = await gateway(tmp_path, "data-key", "rotate", **rotate, GATEWAY_DATA_KEYS_OLD=DATA_KEY)
    assert code == 0, err
    assert f"sealed with data key {new_id}" in out
    assert "1 conversation" in out and "1 entry" in out and "1 outbox" in out and "1 inbox" in out
    assert "1 upload" in out

    store = await open_store(store_url, keys=env_keys(store_url, new))  # the new key alone
    try:
        await read_back(store, conversation_id)
    finally:
        await store.close()
    store = await open_store(store_url, keys=env_keys(store_url, DATA_KEY))  # the old key alone
    try:
        with pytest.raises(DataKeyError, match=f"sealed with data key {new_id}, which this gateway does not have"):
            await store.get_conversation(conversation_id)
    finally:
        await store.close()
    code, out, _ = await gateway(tmp_path, "data-key", "rotate", **rotate)
    assert code == 0 and "resealed: nothing" in out  # nothing left under another key


async def test_the_embedded_key_file_rotates_and_a_file_from_before_encryption_is_sealed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/var/gateway.sqlite3"
    store = await open_store(url)  # the embedded default: var/data-keys
    try:
        conversation_id = await write_a_conversation(store)
        conversation = await store.get_conversation(conversation_id)
    finally:
        await store.close()
    assert conversation is not None
    before = DataKeys.for_store(url).current_id
    with sqlite3.connect(tmp_path / "var" / "gateway.sqlite3") as db:  # as a gateway without encryption wrote it
        db.execute("UPDATE conversations SET sender = ?, data = ?", (PHONE, dumps(encode_conversation(conversation))))
        entry = TranscriptEntry("e1", conversation_id, T0, Author.USER, TEXT)
        db.execute("UPDATE transcript SET data = ?", (encode_entry_data(entry),))

    code, out, err = await gateway(tmp_path, "data-key", "rotate", GATEWAY_STORE=url)
    assert code == 0, err
    after = DataKeys.for_store(url)
    assert after.ids == [after.current_id] and after.current_id != before  # the old key left the file
    assert f"the old keys {before} were removed" in out and "1 conversation" in out and "1 entry" in out
    store = await open_store(url)
    try:
        await read_back(store, conversation_id)
    finally:
        await store.close()
    raw = (tmp_path / "var" / "gateway.sqlite3").read_bytes()
    assert PHONE.encode() not in raw and TEXT.encode() not in raw  # the file was rewritten: no page keeps them


async def test_a_new_key_and_the_keys_in_use_shown_by_id_only(tmp_path: Path) -> None:
    code, out, _ = await gateway(tmp_path, "data-key", "new")
    new = out.strip()
    assert code == 0 and len(parse_key(new, "test")) == 32
    env = {"GATEWAY_STORE": f"sqlite:///{tmp_path}/gateway.sqlite3", "GATEWAY_SECRET_KEY": SECRET_KEY}
    code, out, _ = await gateway(
        tmp_path, "data-key", "show", **env, GATEWAY_DATA_KEY=new, GATEWAY_DATA_KEYS_OLD=DATA_KEY
    )
    old_id = key_id(parse_key(DATA_KEY, "test"))
    assert code == 0 and f"{key_id(parse_key(new, 'test'))} seals; {old_id} only open" in out
    assert new not in out and DATA_KEY not in out
    code, out, err = await gateway(tmp_path, "data-key", "show", **env, GATEWAY_DATA_KEY="not-a-key")
    assert code == 1 and "GATEWAY_DATA_KEY must be 32 random bytes" in err and "not-a-key" not in err + out
