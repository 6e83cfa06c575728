"""Key rotation (``gateway data-key rotate``, the real command) and the inbound messages the inbox set aside (an item
that kept failing, kept for an operator to look at: SQLite's ``inbox_aside``, Redis's ``{inbox}:aside:<id>``), on
each store: the rotation reseals them with the other records, and once the old key is gone they still open.

Until 2026-12-07 the rotation left them under the old key while printing "every record is sealed with data key
K2": once the old key was forgotten (``GATEWAY_DATA_KEYS_OLD`` removed, as the rotation says to; the key file's old
keys dropped by the rotation itself) no one could ever open them again.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import redis.asyncio as redis

from gateway.crypto import key_id, new_key, parse_key
from gateway.store import InboxItem, Store
from gateway.store.redis_keys import INBOX
from gateway.store.sqlite import path_from_url
from gateway.testing import DATA_KEY, SECRET_KEY
from tests.store.test_reseal import PHONE, T0, TEXT, env_keys, gateway


async def set_aside_payload(store_url: str, item_id: str) -> bytes:
    """The set-aside item's payload as stored (sealed): what an operator looking at it has to open."""
    if store_url.startswith("sqlite:///"):
        with sqlite3.connect(path_from_url(store_url)) as db:
            row = db.execute("SELECT payload FROM inbox_aside WHERE id = ?", (item_id,)).fetchone()
        assert row is not None
        return row[0].encode() if isinstance(row[0], str) else bytes(row[0])
    client = redis.Redis.from_url(store_url)
    try:
        found = await client.hget(INBOX + "aside:" + item_id, "payload")
    finally:
        await client.aclose()
    assert found is not None
    return bytes(found)


async def test_the_inbound_messages_set_aside_are_resealed_and_open_once_the_old_key_is_gone(
    store: Store, store_url: str, tmp_path: Path
) -> None:
    await store.inbox_put([InboxItem("i1", "order-key", {"sender": PHONE, "text": TEXT}, T0)])
    assert await store.inbox_set_aside("i1", T0)
    assert await store.inbox_set_aside_count() == 1
    new = new_key()
    new_id = key_id(parse_key(new, "test"))

    rotate = {"GATEWAY_STORE": store_url, "GATEWAY_DATA_KEY": new, "GATEWAY_SECRET_KEY": SECRET_KEY}
    code, out, err = await gateway(tmp_path, "data-key", "rotate", **rotate, GATEWAY_DATA_KEYS_OLD=DATA_KEY)
    assert code == 0, err
    assert f"every record is sealed with data key {new_id}" in out, out
    assert "1 inbox set aside" in out, out  # before: not counted, left under the old key

    keys = env_keys(store_url, new)  # the old key forgotten, as the rotation says
    opened = keys.open("inbox", await set_aside_payload(store_url, "i1"))  # before: DataKeyError, the old key's id
    assert json.loads(opened) == {"sender": PHONE, "text": TEXT}
    code, out, err = await gateway(tmp_path, "data-key", "rotate", **rotate)
    assert code == 0 and "resealed: nothing" in out, out + err  # nothing left under another key
    assert await store.inbox_set_aside_count() == 1
